//! The error type of spindle.
//!
//! Every fallible operation of the runtime returns [`Result<T>`]. An [`Error`]
//! is cheap to clone (one reference count), so the same failure can be handed
//! to every awaiter of a task, to `exception()` and to done callbacks, the way
//! asyncio hands the same exception object to all of them.
//!
//! User errors of any type that implements `std::error::Error` convert into an
//! [`Error`] with `?` and can be recovered with [`Error::downcast_ref`].

use std::fmt;
use std::io;
use std::sync::Arc;

/// `Result<T, spindle::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Ok(value)` with the error type fixed to [`Error`], for async blocks whose
/// error type cannot be inferred.
///
/// ```
/// let answer = spindle::run(async { spindle::Ok(42) }).unwrap();
/// assert_eq!(answer, 42);
/// ```
#[allow(non_snake_case)]
pub fn Ok<T>(value: T) -> Result<T> {
    Result::Ok(value)
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The task or future was cancelled (asyncio's `CancelledError`).
    Cancelled,
    /// A task panicked; the payload's message is kept.
    Panicked,
    /// The operation is not valid in the object's current state (asyncio's
    /// `InvalidStateError`), e.g. `result()` on a pending task.
    InvalidState,
    /// An argument was rejected (asyncio's `ValueError`/`TypeError`).
    InvalidArgument,
    /// The runtime has shut down, or no runtime is running on this thread
    /// (asyncio's `RuntimeError` for a missing or closed loop).
    Runtime,
    /// A time limit passed (asyncio's `TimeoutError`).
    Timeout,
    /// Several errors at once (asyncio's `ExceptionGroup`), from a
    /// [`TaskGroup`](crate::TaskGroup); see [`Error::as_group`].
    Group,
    /// An operating-system I/O failure (asyncio's `OSError`): connection
    /// refused or reset, address in use, too many open files...; see
    /// [`Error::io_error`].
    Io,
    /// A user error, wrapped from any `std::error::Error`.
    Other,
}

/// A failure of a task or of a runtime operation.
///
/// ```
/// use spindle::{Error, ErrorKind};
/// let err = Error::cancelled(Some("stop".into()));
/// assert!(err.is_cancelled());
/// assert_eq!(err.kind(), ErrorKind::Cancelled);
/// assert_eq!(err.cancel_message(), Some("stop"));
/// ```
#[derive(Clone)]
pub struct Error {
    repr: Arc<Repr>,
}

enum Repr {
    Cancelled(Option<Arc<str>>),
    Panicked(String),
    InvalidState(String),
    InvalidArgument(String),
    Runtime(String),
    Timeout,
    Group(ErrorGroup),
    Io(io::Error),
    Other(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl Error {
    fn new(repr: Repr) -> Self {
        Error {
            repr: Arc::new(repr),
        }
    }

    /// A cancellation, optionally carrying the message given to `cancel`.
    pub fn cancelled(message: Option<Arc<str>>) -> Self {
        Self::new(Repr::Cancelled(message))
    }

    /// An invalid-state error with a description.
    pub fn invalid_state(what: impl Into<String>) -> Self {
        Self::new(Repr::InvalidState(what.into()))
    }

    /// An invalid-argument error with a description.
    pub fn invalid_argument(what: impl Into<String>) -> Self {
        Self::new(Repr::InvalidArgument(what.into()))
    }

    /// A runtime error (no runtime, runtime shut down) with a description.
    pub fn runtime(what: impl Into<String>) -> Self {
        Self::new(Repr::Runtime(what.into()))
    }

    /// A timeout.
    pub fn timeout() -> Self {
        Self::new(Repr::Timeout)
    }

    /// A group of errors.
    pub fn group(group: ErrorGroup) -> Self {
        Self::new(Repr::Group(group))
    }

    /// Wraps a user error. An `std::io::Error` becomes an error of kind
    /// [`ErrorKind::Io`] (or, if it carries a spindle error that crossed an
    /// `io::Error`-returning interface, that error again).
    pub fn other(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        let error: Box<dyn std::error::Error + Send + Sync> = Box::new(error);
        match error.downcast::<io::Error>() {
            Result::Ok(io) => Error::io(*io),
            Err(other) => Self::new(Repr::Other(other)),
        }
    }

    /// An I/O error. One that carries a spindle error (see
    /// `From<Error> for io::Error`) gives that error back, so a cancellation
    /// that crossed a `futures-io` poll method is a cancellation again.
    ///
    /// ```
    /// use spindle::{Error, ErrorKind};
    /// let refused = Error::io(std::io::ErrorKind::ConnectionRefused.into());
    /// assert_eq!(refused.kind(), ErrorKind::Io);
    /// let cancel = Error::cancelled(None);
    /// let through_io = Error::io(std::io::Error::from(cancel.clone()));
    /// assert!(through_io.is_cancelled() && through_io.ptr_eq(&cancel));
    /// ```
    pub fn io(error: io::Error) -> Self {
        match error.downcast::<Carried>() {
            Result::Ok(carried) => carried.0,
            Err(error) => Self::new(Repr::Io(error)),
        }
    }

    /// Wraps a user error given as a message.
    ///
    /// ```
    /// let err = spindle::Error::msg("disk full");
    /// assert_eq!(err.to_string(), "disk full");
    /// ```
    pub fn msg(message: impl Into<String>) -> Self {
        Self::new(Repr::Other(message.into().into()))
    }

    pub(crate) fn panicked(payload: &(dyn std::any::Any + Send)) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "Box<dyn Any>".to_string()
        };
        Self::new(Repr::Panicked(message))
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match &*self.repr {
            Repr::Cancelled(_) => ErrorKind::Cancelled,
            Repr::Panicked(_) => ErrorKind::Panicked,
            Repr::InvalidState(_) => ErrorKind::InvalidState,
            Repr::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Repr::Runtime(_) => ErrorKind::Runtime,
            Repr::Timeout => ErrorKind::Timeout,
            Repr::Group(_) => ErrorKind::Group,
            Repr::Io(_) => ErrorKind::Io,
            Repr::Other(_) => ErrorKind::Other,
        }
    }

    /// Whether this is a cancellation.
    pub fn is_cancelled(&self) -> bool {
        matches!(&*self.repr, Repr::Cancelled(_))
    }

    /// Whether this is a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(&*self.repr, Repr::Timeout)
    }

    /// The group, if this error is a group of errors.
    pub fn as_group(&self) -> Option<&ErrorGroup> {
        match &*self.repr {
            Repr::Group(group) => Some(group),
            _ => None,
        }
    }

    /// The message of a cancellation, if it carried one.
    pub fn cancel_message(&self) -> Option<&str> {
        match &*self.repr {
            Repr::Cancelled(Some(message)) => Some(message),
            _ => None,
        }
    }

    /// The operating-system error, if this is an I/O failure.
    ///
    /// ```
    /// let err = spindle::Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    /// assert_eq!(err.io_error().map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionReset));
    /// ```
    pub fn io_error(&self) -> Option<&io::Error> {
        match &*self.repr {
            Repr::Io(error) => Some(error),
            _ => None,
        }
    }

    /// The wrapped user error, if it is of type `E`.
    ///
    /// ```
    /// let err = spindle::Error::from(std::io::Error::other("boom"));
    /// assert!(err.downcast_ref::<std::io::Error>().is_some());
    /// ```
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match &*self.repr {
            Repr::Other(inner) => inner.downcast_ref::<E>(),
            Repr::Io(error) => (error as &(dyn std::error::Error + 'static)).downcast_ref::<E>(),
            _ => None,
        }
    }

    /// Whether two handles refer to the same error value.
    pub fn ptr_eq(&self, other: &Error) -> bool {
        Arc::ptr_eq(&self.repr, &other.repr)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.repr {
            Repr::Cancelled(Some(message)) => write!(f, "cancelled: {message}"),
            Repr::Cancelled(None) => f.write_str("cancelled"),
            Repr::Panicked(message) => write!(f, "task panicked: {message}"),
            Repr::InvalidState(what) => write!(f, "invalid state: {what}"),
            Repr::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Repr::Runtime(what) => write!(f, "runtime error: {what}"),
            Repr::Timeout => f.write_str("timed out"),
            Repr::Group(group) => fmt::Display::fmt(group, f),
            Repr::Io(error) => fmt::Display::fmt(error, f),
            Repr::Other(inner) => fmt::Display::fmt(inner, f),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?}: {})", self.kind(), self)
    }
}

/// Any standard error converts into an [`Error`], so `?` works on them inside
/// tasks. (For that reason `Error` itself does not implement
/// `std::error::Error`; use [`Error::as_std`] where one is required.)
impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Self {
        Error::other(error)
    }
}

impl Error {
    /// A view of this error as a `std::error::Error`, for APIs that need one.
    pub fn as_std(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        StdView::from_ref(self)
    }
}

/// `Error` seen through `std::error::Error` (see [`Error::as_std`]).
#[repr(transparent)]
struct StdView(Error);

impl StdView {
    fn from_ref(error: &Error) -> &StdView {
        // SAFETY: `StdView` is `repr(transparent)` over `Error`, so the two
        // references have the same layout and validity.
        unsafe { &*(error as *const Error as *const StdView) }
    }
}

impl fmt::Debug for StdView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for StdView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for StdView {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0.repr {
            Repr::Other(inner) => inner.source(),
            Repr::Io(error) => error.source(),
            _ => None,
        }
    }
}

/// A spindle error travelling inside an `io::Error` (see `From<Error> for
/// io::Error`); [`Error::io`] unwraps it.
struct Carried(Error);

impl fmt::Debug for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Carried {}

/// An [`Error`] as an `io::Error`, for `io::Result` interfaces such as the
/// `futures-io` traits. An I/O error is given back as it was; any other
/// error travels inside one (a cancellation with kind `Other`, never
/// `Interrupted`, which readers retry) and converts back with `?`.
impl From<Error> for io::Error {
    fn from(error: Error) -> io::Error {
        let repr = match Arc::try_unwrap(error.repr) {
            Result::Ok(Repr::Io(error)) => return error,
            Result::Ok(repr) => Arc::new(repr),
            Err(shared) => shared,
        };
        let kind = match &*repr {
            Repr::Io(error) => error.kind(),
            Repr::Timeout => io::ErrorKind::TimedOut,
            Repr::InvalidArgument(_) => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, Carried(Error { repr }))
    }
}

/// Several errors raised together, asyncio's `ExceptionGroup`: what a
/// [`TaskGroup`](crate::TaskGroup) fails with. Groups can nest. Like
/// Python's `except*`, a group can be split by a condition on its errors
/// into the part that matches and the rest, both keeping the nesting.
///
/// ```
/// use spindle::{Error, ErrorGroup, ErrorKind};
/// let group = ErrorGroup::new("unhandled errors in a TaskGroup", vec![
///     Error::timeout(),
///     Error::from(std::io::Error::other("disk")),
///     Error::group(ErrorGroup::new("inner", vec![Error::timeout()])),
/// ]);
/// let (timeouts, rest) = group.split(|e| e.kind() == ErrorKind::Timeout);
/// assert_eq!(timeouts.unwrap().leaves().len(), 2);
/// let rest = rest.unwrap();
/// assert_eq!(rest.len(), 1);
/// assert!(rest.errors()[0].downcast_ref::<std::io::Error>().is_some());
/// let (io, _) = group.split_by::<std::io::Error>();
/// assert_eq!(io.unwrap().len(), 1);
/// ```
#[derive(Clone)]
pub struct ErrorGroup {
    message: Arc<str>,
    errors: Arc<[Error]>,
}

impl ErrorGroup {
    /// A group with a message and its errors (in order).
    pub fn new(message: impl Into<String>, errors: Vec<Error>) -> ErrorGroup {
        ErrorGroup {
            message: Arc::from(message.into()),
            errors: errors.into(),
        }
    }

    /// The group's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The errors directly in this group (nested groups appear as one error).
    pub fn errors(&self) -> &[Error] {
        &self.errors
    }

    /// The number of errors directly in this group.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Whether the group holds no error.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Iterates over the errors directly in this group.
    pub fn iter(&self) -> std::slice::Iter<'_, Error> {
        self.errors.iter()
    }

    /// Every error that is not itself a group, depth first.
    pub fn leaves(&self) -> Vec<Error> {
        let mut leaves = Vec::new();
        for error in self.errors.iter() {
            match error.as_group() {
                Some(group) => leaves.extend(group.leaves()),
                None => leaves.push(error.clone()),
            }
        }
        leaves
    }

    /// Splits the group like Python's `ExceptionGroup.split`: the errors for
    /// which `condition` holds and the rest, as two groups with this group's
    /// message and nesting (`None` for an empty side). A nested group for
    /// which `condition` holds as a whole goes to the matching side whole.
    pub fn split(
        &self,
        condition: impl Fn(&Error) -> bool,
    ) -> (Option<ErrorGroup>, Option<ErrorGroup>) {
        self.split_with(&condition)
    }

    fn split_with(
        &self,
        condition: &dyn Fn(&Error) -> bool,
    ) -> (Option<ErrorGroup>, Option<ErrorGroup>) {
        let mut matching = Vec::new();
        let mut rest = Vec::new();
        for error in self.errors.iter() {
            if condition(error) {
                matching.push(error.clone());
                continue;
            }
            match error.as_group() {
                Some(group) => {
                    let (m, r) = group.split_with(condition);
                    matching.extend(m.map(Error::group));
                    rest.extend(r.map(Error::group));
                }
                None => rest.push(error.clone()),
            }
        }
        let side = |errors: Vec<Error>| {
            (!errors.is_empty()).then(|| ErrorGroup {
                message: self.message.clone(),
                errors: errors.into(),
            })
        };
        (side(matching), side(rest))
    }

    /// Splits by the type of user error, like `except* E`: the errors that
    /// wrap an `E` and the rest.
    pub fn split_by<E: std::error::Error + 'static>(
        &self,
    ) -> (Option<ErrorGroup>, Option<ErrorGroup>) {
        self.split(|error| error.downcast_ref::<E>().is_some())
    }
}

impl<'a> IntoIterator for &'a ErrorGroup {
    type Item = &'a Error;
    type IntoIter = std::slice::Iter<'a, Error>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl From<ErrorGroup> for Error {
    fn from(group: ErrorGroup) -> Error {
        Error::group(group)
    }
}

impl fmt::Display for ErrorGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{} ({n} sub-exception{})",
            self.message,
            if n == 1 { "" } else { "s" }
        )?;
        for (i, error) in self.errors.iter().enumerate() {
            write!(f, "{}{error}", if i == 0 { ": " } else { "; " })?;
        }
        fmt::Result::Ok(())
    }
}

impl fmt::Debug for ErrorGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorGroup")
            .field("message", &self.message)
            .field("errors", &self.errors)
            .finish()
    }
}
