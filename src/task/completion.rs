//! The completion record shared by tasks and [`Promise`](crate::Promise)s:
//! the outcome status, the wakers of everyone awaiting it, the done callbacks
//! and whether the failure was read (for the "never retrieved" report).
//!
//! It lives under the owner's lock; completing it hands back what must be
//! woken and called, so that nothing runs while the lock is held.

use super::recycle::RecycledBox;
use super::AnyTask;
use crate::error::Error;
use slab::Slab;
use std::mem::ManuallyDrop;
use std::sync::{Arc, Weak};
use std::task::Waker;

/// An internal observer of tasks (a task group, the tracker of a gather):
/// told which of its tasks is done, with no closure to allocate per task.
pub(crate) trait DoneHook: Send + Sync {
    /// `task`, registered with `token`, is done.
    fn task_done(&self, token: usize, task: &AnyTask);

    /// The task registered with `token` is completing: its outcome is
    /// decided, nobody can see it done yet, and its lock is held (take no
    /// task's lock here). Called only for a record that
    /// [announces its completion](Completion::announce_completion), before
    /// [`task_done`](Self::task_done), and only for a hook held strongly
    /// ([`HookRef::Strong`]: upgrading a weak one could make its last
    /// reference, dropped under the task's lock).
    fn completing(&self, _token: usize) {}
}

/// How a registration holds its [`DoneHook`].
pub(crate) enum HookRef {
    /// Kept alive by the registration (a tracker that must see every
    /// completion, even after its awaiter has gone).
    Strong(Arc<dyn DoneHook>),
    /// Not kept alive (a group, whose state holds its children: a strong
    /// reference would be a cycle).
    Weak(Weak<dyn DoneHook>),
}

/// The key a hook's registrations are removed by: its address.
pub(crate) fn hook_key(hook: *const dyn DoneHook) -> usize {
    hook as *const () as usize
}

impl HookRef {
    fn key(&self) -> usize {
        match self {
            HookRef::Strong(hook) => hook_key(Arc::as_ptr(hook)),
            HookRef::Weak(hook) => hook_key(Weak::as_ptr(hook)),
        }
    }
}

/// A done callback, erased. A user's callback already holds the handle it
/// will be called with; an internal hook is handed its task when it runs
/// (hooks are registered on tasks only, and run by their task's completion
/// or at once), so registering one takes no reference to the task.
pub(crate) enum StoredCallback {
    /// A callback of the user's; `key` identifies the user's callback object
    /// for removal.
    Closure {
        key: usize,
        call: Box<dyn FnOnce() + Send>,
    },
    /// An internal hook, told `token` and the task; its key is the hook's
    /// address.
    Hook { hook: HookRef, token: usize },
}

impl StoredCallback {
    /// The hook and its token, if this is an internal hook.
    fn into_hook(self) -> Result<(HookRef, usize), StoredCallback> {
        match self {
            StoredCallback::Hook { hook, token } => Ok((hook, token)),
            callback => Err(callback),
        }
    }

    /// The key the callback is removed by.
    fn key(&self) -> usize {
        match self {
            StoredCallback::Closure { key, .. } => *key,
            StoredCallback::Hook { hook, .. } => hook.key(),
        }
    }

    /// Runs the callback (a hook that is gone is skipped). `task`: the task
    /// whose completion runs it, `None` for a promise's callbacks and the
    /// ones run later through the runtime's queue, which are all users'.
    pub(crate) fn run(self, task: Option<&AnyTask>) {
        match self {
            StoredCallback::Closure { call, .. } => call(),
            StoredCallback::Hook { hook, token } => {
                let Some(task) = task else {
                    debug_assert!(false, "an internal hook run without its task");
                    return;
                };
                match hook {
                    HookRef::Strong(hook) => hook.task_done(token, task),
                    HookRef::Weak(hook) => {
                        if let Some(hook) = hook.upgrade() {
                            hook.task_done(token, task);
                        }
                    }
                }
            }
        }
    }
}

/// How a task or promise ended, without the success value (that is typed and
/// lives beside the record): what [`Completion::finish`] records.
pub(crate) enum Status {
    Succeeded,
    Failed(Error),
}

/// Where a record is, as read by [`Completion::status`].
pub(crate) enum StatusRef<'a> {
    Pending,
    Succeeded,
    Failed(&'a Error),
}

/// What most records never need, allocated on first use: the done
/// callbacks, the wakers of awaiters after the first, and the owner's own
/// rarely used data (`X`: a task's name and cancel message). Keeping them
/// out of line keeps every task's header small (a task with one awaiter, no
/// callback, no name and no cancel message, the common case, allocates
/// nothing here).
#[derive(Default)]
struct Extra<X> {
    /// The first done callback kept here (the record's inline hook, if any,
    /// comes before it). Invariant: `None` only when `rest` has no callback
    /// either.
    first_callback: Option<StoredCallback>,
    /// The owner's cold data; it outlives the completion.
    cold: X,
    /// Rarer still, in a block of its own, so that the usual extra part (a
    /// group's or a gather's hook, a name) stays a small block that the
    /// allocator recycles fast.
    rest: Option<Box<Rest>>,
}

/// The awaiters after the first and the callbacks after the first.
#[derive(Default)]
struct Rest {
    /// Awaiters after the first: key `k > 0` is `more[k - 1]`.
    more: Slab<Waker>,
    /// The done callbacks after the first, in registration order.
    callbacks: Vec<StoredCallback>,
}

impl<X> Extra<X> {
    fn rest(&mut self) -> &mut Rest {
        self.rest.get_or_insert_with(Box::default)
    }
}

/// The done callbacks a completion released, in registration order
/// (iterate to run them).
#[derive(Default)]
pub(crate) struct Callbacks {
    first: Option<StoredCallback>,
    rest: Vec<StoredCallback>,
}

impl Callbacks {
    /// A single callback.
    pub(crate) fn one(callback: StoredCallback) -> Callbacks {
        Callbacks {
            first: Some(callback),
            rest: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

impl IntoIterator for Callbacks {
    type Item = StoredCallback;
    type IntoIter =
        std::iter::Chain<std::option::IntoIter<StoredCallback>, std::vec::IntoIter<StoredCallback>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

/// The completion record. `X` is the owner's cold data, kept out of line
/// with the other rarely used parts (see [`Completion::cold`]).
///
/// Its first observer is inline ([`FirstObserver`]): the first awaiter
/// (key 0), or an internal hook registered while the record had no
/// awaiter and no callback. Most tasks and promises have exactly one
/// awaiter, and a group's child or a gathered task usually has its hook
/// only: neither allocates the extra part.
pub(crate) struct Completion<X = ()> {
    /// The failure, once failed.
    failure: Option<Error>,
    /// The first observer; which one `first_kind` says.
    first: FirstObserver,
    extra: Option<RecycledBox<Extra<X>>>,
    /// What `first` holds.
    first_kind: FirstKind,
    /// The token of the inline hook (a hook whose token does not fit is
    /// kept in the extra part instead).
    first_token: u32,
    /// The outcome is recorded.
    done: bool,
    /// The failure was read (awaited, `result()`, `exception()`).
    pub(crate) retrieved: bool,
    /// The hooks are told before the record is done
    /// ([`DoneHook::completing`]).
    announces: bool,
}

/// The record's inline observer, as `Completion::first_kind` says: an
/// awaiter's waker or an internal hook (an `Arc` or a `Weak`, turned into
/// its pointer). Not an enum: a waker or a hook with its token and kind
/// would take 24 bytes, and the record (part of every task) has room for 16
/// and, in the padding beside its flags, the kind and the token.
union FirstObserver {
    empty: (),
    awaiter: ManuallyDrop<Waker>,
    hook: *const dyn DoneHook,
}

/// What [`FirstObserver`] holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FirstKind {
    Empty,
    /// `awaiter`: the waker of the awaiter of key 0.
    Awaiter,
    /// `hook`: from `Arc::into_raw` ([`HookRef::Strong`]).
    StrongHook,
    /// `hook`: from `Weak::into_raw` ([`HookRef::Weak`]).
    WeakHook,
}

// SAFETY: the only field that is not `Send` by itself is the inline hook's
// pointer, which stands for an `Arc` or a `Weak` of a `dyn DoneHook`, and
// `DoneHook` is `Send + Sync`.
unsafe impl<X: Send> Send for Completion<X> {}

/// What completing a record released: to be woken and called outside the lock.
#[must_use]
pub(crate) struct Released {
    first: Option<Waker>,
    /// The inline hook, which runs before the extra part's callbacks.
    hook: Option<StoredCallback>,
    /// The extra part's first callback.
    first_callback: Option<StoredCallback>,
    /// The other awaiters and callbacks, still in their block (`None` in
    /// the common case: nothing to move or free).
    rest: Option<Box<Rest>>,
}

impl Released {
    /// Takes the done callbacks, in registration order; `None` if there
    /// are none.
    #[inline]
    pub(crate) fn take_callbacks(&mut self) -> Option<Callbacks> {
        // (No first callback means no other: see `Extra::first_callback`.)
        if self.hook.is_none() && self.first_callback.is_none() {
            return None;
        }
        self.take_some_callbacks()
    }

    /// [`take_callbacks`](Self::take_callbacks) when there is one at least.
    fn take_some_callbacks(&mut self) -> Option<Callbacks> {
        let (hook, first_callback) = (self.hook.take(), self.first_callback.take());
        let (first, second) = match hook {
            Some(hook) => (hook, first_callback),
            None => (first_callback?, None),
        };
        let mut rest = self
            .rest
            .as_mut()
            .map(|rest| std::mem::take(&mut rest.callbacks))
            .unwrap_or_default();
        if let Some(second) = second {
            rest.insert(0, second);
        }
        Some(Callbacks {
            first: Some(first),
            rest,
        })
    }

    /// Starts loading what the first done callback will touch first, if it
    /// is an internal hook (a task group's state, when the group's child
    /// completes): usually a cold line, which the caller reaches after
    /// some work of its own.
    #[inline]
    pub(crate) fn prefetch_first_hook(&self) {
        let first = self.hook.as_ref().or(self.first_callback.as_ref());
        if let Some(StoredCallback::Hook { hook, .. }) = first {
            crate::prefetch::prefetch(hook.key() as *const u8);
        }
    }

    /// Wakes every awaiter.
    #[inline]
    pub(crate) fn wake_waiters(self) {
        if let Some(waker) = self.first {
            waker.wake();
        }
        if let Some(rest) = self.rest {
            for (_, waker) in rest.more {
                waker.wake();
            }
        }
    }

    /// Wakes every awaiter and returns the callbacks for the caller to
    /// schedule; `None` if there are none (the usual case: nothing to drop).
    #[inline]
    pub(crate) fn wake_all(mut self) -> Option<Callbacks> {
        let callbacks = self.take_callbacks();
        self.wake_waiters();
        callbacks
    }
}

impl<X> Completion<X> {
    /// The inline awaiter's waker, if the inline observer is an awaiter.
    fn first_awaiter_mut(&mut self) -> Option<&mut Waker> {
        match self.first_kind {
            // SAFETY: the kind says `awaiter` is the live field.
            FirstKind::Awaiter => Some(unsafe { &mut *self.first.awaiter }),
            _ => None,
        }
    }

    /// Takes the inline awaiter's waker, if the inline observer is an
    /// awaiter.
    fn take_first_awaiter(&mut self) -> Option<Waker> {
        if self.first_kind != FirstKind::Awaiter {
            return None;
        }
        self.first_kind = FirstKind::Empty;
        // SAFETY: the kind said `awaiter` was the live field; it is now
        // marked empty, so the waker is moved out exactly once.
        Some(unsafe { ManuallyDrop::take(&mut self.first.awaiter) })
    }

    /// Makes `waker` the inline observer (which is empty).
    fn set_first_awaiter(&mut self, waker: Waker) {
        debug_assert!(self.first_kind == FirstKind::Empty);
        self.first = FirstObserver {
            awaiter: ManuallyDrop::new(waker),
        };
        self.first_kind = FirstKind::Awaiter;
    }

    /// Makes the hook the inline observer (which is empty).
    fn set_first_hook(&mut self, hook: HookRef, token: u32) {
        debug_assert!(self.first_kind == FirstKind::Empty);
        let (hook, kind) = match hook {
            HookRef::Strong(hook) => (Arc::into_raw(hook), FirstKind::StrongHook),
            HookRef::Weak(hook) => (Weak::into_raw(hook), FirstKind::WeakHook),
        };
        self.first = FirstObserver { hook };
        self.first_kind = kind;
        self.first_token = token;
    }

    /// The key of the inline hook, if the inline observer is a hook.
    fn first_hook_key(&self) -> Option<usize> {
        match self.first_kind {
            // SAFETY: the kind says `hook` is the live field.
            FirstKind::StrongHook | FirstKind::WeakHook => {
                Some(hook_key(unsafe { self.first.hook }))
            }
            _ => None,
        }
    }

    /// Takes the inline hook as a callback, if the inline observer is a
    /// hook.
    fn take_first_hook(&mut self) -> Option<StoredCallback> {
        let kind = self.first_kind;
        if !matches!(kind, FirstKind::StrongHook | FirstKind::WeakHook) {
            return None;
        }
        self.first_kind = FirstKind::Empty;
        // SAFETY: the kind said `hook` was the live field, made by
        // `into_raw` of the `Arc` or `Weak` it names; it is now marked
        // empty, so that reference is taken back exactly once.
        let hook = unsafe {
            let hook = self.first.hook;
            if kind == FirstKind::StrongHook {
                HookRef::Strong(Arc::from_raw(hook))
            } else {
                HookRef::Weak(Weak::from_raw(hook))
            }
        };
        Some(StoredCallback::Hook {
            hook,
            token: self.first_token as usize,
        })
    }
}

impl<X> Drop for Completion<X> {
    fn drop(&mut self) {
        drop(self.take_first_awaiter());
        drop(self.take_first_hook());
    }
}

impl<X: Default> Completion<X> {
    pub(crate) const fn new() -> Completion<X> {
        Completion {
            failure: None,
            first: FirstObserver { empty: () },
            extra: None,
            first_kind: FirstKind::Empty,
            first_token: 0,
            done: false,
            retrieved: false,
            announces: false,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.failure.as_ref().is_some_and(Error::is_cancelled)
    }

    /// Pending, succeeded, or failed with which error.
    pub(crate) fn status(&self) -> StatusRef<'_> {
        match (&self.failure, self.done) {
            (Some(error), _) => StatusRef::Failed(error),
            (None, true) => StatusRef::Succeeded,
            (None, false) => StatusRef::Pending,
        }
    }

    fn extra(&mut self) -> &mut Extra<X> {
        self.extra.get_or_insert_with(RecycledBox::default)
    }

    /// The owner's cold data, if any was ever written.
    pub(crate) fn cold(&self) -> Option<&X> {
        self.extra.as_ref().map(|extra| &extra.cold)
    }

    /// The owner's cold data, made (allocated) on first use.
    pub(crate) fn cold_mut(&mut self) -> &mut X {
        &mut self.extra().cold
    }

    /// The owner's cold data, if any was ever written, to change.
    pub(crate) fn cold_if_any(&mut self) -> Option<&mut X> {
        self.extra.as_mut().map(|extra| &mut extra.cold)
    }

    /// From now on, [`announce_completing`](Self::announce_completing) tells
    /// the hooks (for an observer that needs the order in which tasks
    /// complete, which their done hooks do not always run in).
    pub(crate) fn announce_completion(&mut self) {
        self.announces = true;
    }

    /// Tells every internal hook that the owner is completing, if the
    /// record [announces its completion](Self::announce_completion). Call
    /// under the owner's lock, before anyone can see it done.
    #[inline]
    pub(crate) fn announce_completing(&self) {
        if self.announces {
            self.tell_hooks_completing();
        }
    }

    /// Tells the strongly held hooks ([`DoneHook::completing`]).
    #[cold]
    #[inline(never)]
    fn tell_hooks_completing(&self) {
        if self.first_kind == FirstKind::StrongHook {
            // SAFETY: the kind says `hook` is the live field, the pointer of
            // an `Arc` this record holds (`Arc::into_raw`): the hook is
            // alive while the record is, and a shared borrow of it for
            // this call is sound.
            let hook = unsafe { &*self.first.hook };
            hook.completing(self.first_token as usize);
        }
        let Some(extra) = self.extra.as_ref() else {
            return;
        };
        let rest = extra.rest.iter().flat_map(|rest| rest.callbacks.iter());
        for callback in extra.first_callback.iter().chain(rest) {
            if let StoredCallback::Hook {
                hook: HookRef::Strong(hook),
                token,
            } = callback
            {
                hook.completing(*token);
            }
        }
    }

    /// Records the outcome and releases the waiters and callbacks.
    #[inline]
    pub(crate) fn finish(&mut self, status: Status) -> Released {
        debug_assert!(!self.is_done());
        self.done = true;
        if let Status::Failed(error) = status {
            self.failure = Some(error);
        }
        let (first_callback, rest) = match self.extra.as_mut() {
            Some(extra) => (extra.first_callback.take(), extra.rest.take()),
            None => (None, None),
        };
        Released {
            first: self.take_first_awaiter(),
            hook: self.take_first_hook(),
            first_callback,
            rest,
        }
    }

    /// Registers (or refreshes) the waker of one awaiter. `key` is the
    /// awaiter's slot, kept by the awaiter between polls.
    pub(crate) fn register(&mut self, key: &mut Option<usize>, waker: &Waker) {
        let existing = match *key {
            Some(0) => self.first_awaiter_mut(),
            Some(k) => self
                .extra
                .as_mut()
                .and_then(|extra| extra.rest.as_mut())
                .and_then(|rest| rest.more.get_mut(k - 1)),
            None => None,
        };
        if let Some(existing) = existing {
            if !existing.will_wake(waker) {
                existing.clone_from(waker);
            }
            return;
        }
        if let Some(hook) = self.take_first_hook() {
            // The inline place goes to the awaiter (an awaiter elsewhere
            // takes a block of its own); the hook moves ahead of the extra
            // part's callbacks, which were all registered after it.
            let extra = self.extra();
            if let Some(next) = extra.first_callback.replace(hook) {
                extra.rest().callbacks.insert(0, next);
            }
        }
        *key = Some(if self.first_kind == FirstKind::Empty {
            self.set_first_awaiter(waker.clone());
            0
        } else {
            self.extra().rest().more.insert(waker.clone()) + 1
        });
    }

    /// Removes an awaiter that goes away before completion.
    pub(crate) fn unregister(&mut self, key: &mut Option<usize>) {
        let Some(k) = key.take() else {
            return;
        };
        if self.is_done() {
            return;
        }
        if k == 0 {
            drop(self.take_first_awaiter());
        } else if let Some(rest) = self.extra.as_mut().and_then(|extra| extra.rest.as_mut()) {
            rest.more.try_remove(k - 1);
        }
    }

    /// Adds a done callback; if the record is already done the callback is
    /// returned to be scheduled right away.
    pub(crate) fn add_callback(&mut self, callback: StoredCallback) -> Option<StoredCallback> {
        if self.is_done() {
            return Some(callback);
        }
        // An internal hook goes inline if it is the first observer of all
        // (so that it still runs before every later callback).
        let inline = self.first_kind == FirstKind::Empty
            && self
                .extra
                .as_ref()
                .is_none_or(|extra| extra.first_callback.is_none());
        let callback = match callback.into_hook() {
            Ok((hook, token)) => match u32::try_from(token) {
                Ok(token) if inline => {
                    self.set_first_hook(hook, token);
                    return None;
                }
                _ => StoredCallback::Hook { hook, token },
            },
            Err(callback) => callback,
        };
        let extra = self.extra();
        if extra.first_callback.is_none() {
            extra.first_callback = Some(callback);
        } else {
            extra.rest().callbacks.push(callback);
        }
        None
    }

    /// Removes every registration of the callback with `key`; returns how many.
    pub(crate) fn remove_callbacks(&mut self, key: usize) -> usize {
        let mut removed = 0;
        if self.first_hook_key() == Some(key) {
            drop(self.take_first_hook());
            removed += 1;
        }
        let Some(extra) = self.extra.as_deref_mut() else {
            return removed;
        };
        if extra
            .first_callback
            .as_ref()
            .is_some_and(|c| c.key() == key)
        {
            extra.first_callback = None;
            removed += 1;
        }
        if let Some(rest) = extra.rest.as_mut() {
            let before = rest.callbacks.len();
            rest.callbacks.retain(|c| c.key() != key);
            removed += before - rest.callbacks.len();
            if extra.first_callback.is_none() && !rest.callbacks.is_empty() {
                extra.first_callback = Some(rest.callbacks.remove(0));
            }
        }
        removed
    }

    /// The failure, marking it read; `None` if pending or succeeded.
    pub(crate) fn read_error(&mut self) -> Option<Error> {
        let error = self.failure.clone()?;
        self.retrieved = true;
        Some(error)
    }

    /// The failure that nobody read, for the report when the owner is dropped.
    pub(crate) fn unretrieved_error(&self) -> Option<&Error> {
        self.failure
            .as_ref()
            .filter(|e| !self.retrieved && !e.is_cancelled())
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// The record is part of every task: it keeps what is rarely used out
    /// of line (a regression guard for the bytes of a parked task).
    #[test]
    fn the_record_is_small() {
        assert!(std::mem::size_of::<Completion>() <= 40);
    }

    /// The usual extra part (one callback, a task's cold data) stays a
    /// block of at most 80 bytes, which glibc serves from its per-thread
    /// cache (a regression guard for named tasks and tasks with a done
    /// callback).
    #[test]
    fn the_usual_extra_part_is_a_small_block() {
        assert!(std::mem::size_of::<Extra<crate::task::raw::Cold>>() <= 80);
    }

    #[test]
    fn every_awaiter_is_woken_once_and_removed_ones_not_at_all() {
        let counts: Vec<_> = (0..4)
            .map(|_| Arc::new(Count(AtomicUsize::new(0))))
            .collect();
        let mut record = Completion::<()>::new();
        let mut keys = [None; 4];
        for (key, count) in keys.iter_mut().zip(&counts) {
            record.register(key, &Waker::from(count.clone()));
        }
        assert_eq!(keys, [Some(0), Some(1), Some(2), Some(3)]);
        // Registering again refreshes, it does not add.
        record.register(&mut keys[2], &Waker::from(counts[2].clone()));
        assert_eq!(keys[2], Some(2));
        record.unregister(&mut keys[1]);
        record.unregister(&mut keys[0]);
        assert_eq!(keys[0], None);
        let mut released = record.finish(Status::Succeeded);
        assert!(released.take_callbacks().is_none());
        released.wake_waiters();
        let woken: Vec<usize> = counts.iter().map(|c| c.0.load(SeqCst)).collect();
        assert_eq!(woken, [0, 0, 1, 1]);
    }

    #[test]
    fn callbacks_are_released_in_order_and_removable_by_key() {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut record = Completion::<()>::new();
        for (key, label) in [(7, "a"), (8, "b"), (7, "c"), (9, "d")] {
            let order = order.clone();
            let call = Box::new(move || order.lock().unwrap().push(label));
            assert!(record
                .add_callback(StoredCallback::Closure { key, call })
                .is_none());
        }
        assert_eq!(record.remove_callbacks(7), 2);
        assert_eq!(record.remove_callbacks(42), 0);
        let order_e = order.clone();
        let call = Box::new(move || order_e.lock().unwrap().push("e"));
        assert!(record
            .add_callback(StoredCallback::Closure { key: 10, call })
            .is_none());
        for callback in record.finish(Status::Succeeded).wake_all().unwrap() {
            callback.run(None);
        }
        assert_eq!(*order.lock().unwrap(), ["b", "d", "e"]);
        let late = StoredCallback::Closure {
            key: 1,
            call: Box::new(|| {}),
        };
        assert!(
            record.add_callback(late).is_some(),
            "a done record hands it back"
        );
    }

    /// A hook that counts nothing: the tests below only look at where its
    /// registrations go and in which order they are released.
    struct Hook;
    impl DoneHook for Hook {
        fn task_done(&self, _token: usize, _task: &AnyTask) {}
    }

    /// The released callbacks as (key, token or `usize::MAX` for a
    /// closure), in order.
    fn released(record: &mut Completion<()>) -> Vec<(usize, usize)> {
        let mut released = record.finish(Status::Succeeded);
        let callbacks = released.take_callbacks().unwrap_or_default();
        released.wake_waiters();
        callbacks
            .into_iter()
            .map(|callback| match &callback {
                StoredCallback::Hook { token, .. } => (callback.key(), *token),
                StoredCallback::Closure { key, .. } => (*key, usize::MAX),
            })
            .collect()
    }

    fn closure(key: usize) -> StoredCallback {
        StoredCallback::Closure {
            key,
            call: Box::new(|| {}),
        }
    }

    #[test]
    fn a_first_hook_is_kept_inline_and_released_before_later_callbacks() {
        let hook = Arc::new(Hook);
        let key = hook_key(Arc::as_ptr(&hook) as *const dyn DoneHook);
        let mut record = Completion::<()>::new();
        assert!(record
            .add_callback(StoredCallback::Hook {
                hook: HookRef::Strong(hook.clone()),
                token: 5
            })
            .is_none());
        assert!(record.extra.is_none(), "no extra part for a lone hook");
        assert_eq!(Arc::strong_count(&hook), 2);
        assert!(record.add_callback(closure(1)).is_none());
        assert!(record
            .add_callback(StoredCallback::Hook {
                hook: HookRef::Weak(Arc::downgrade(&hook) as Weak<dyn DoneHook>),
                token: 6
            })
            .is_none());
        assert_eq!(released(&mut record), [(key, 5), (1, usize::MAX), (key, 6)]);
        assert_eq!(Arc::strong_count(&hook), 1, "the strong hook was released");
        assert_eq!(Arc::weak_count(&hook), 0, "and the weak one");
    }

    #[test]
    fn an_awaiter_takes_the_inline_place_and_the_hook_keeps_its_turn() {
        let hook = Arc::new(Hook);
        let key = hook_key(Arc::as_ptr(&hook) as *const dyn DoneHook);
        let mut record = Completion::<()>::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut awaiter = None;
        // An awaiter first: the hook goes to the extra part.
        record.register(&mut awaiter, &waker);
        assert_eq!(awaiter, Some(0));
        let strong = || HookRef::Strong(hook.clone() as Arc<dyn DoneHook>);
        let add = |record: &mut Completion<()>, token| {
            record.add_callback(StoredCallback::Hook {
                hook: strong(),
                token,
            })
        };
        assert!(add(&mut record, 1).is_none());
        record.unregister(&mut awaiter);
        // The inline place is free again, but a callback is registered
        // already: a later hook must not run before it.
        assert!(add(&mut record, 2).is_none());
        assert_eq!(released(&mut record), [(key, 1), (key, 2)]);

        let mut record = Completion::<()>::new();
        assert!(add(&mut record, 3).is_none());
        assert!(record.add_callback(closure(9)).is_none());
        // The awaiter takes the inline place from the hook, which still
        // runs first.
        record.register(&mut awaiter, &waker);
        assert_eq!(awaiter, Some(0));
        let mut second = None;
        record.register(&mut second, &waker);
        assert_eq!(second, Some(1));
        assert_eq!(released(&mut record), [(key, 3), (9, usize::MAX)]);
        assert_eq!(count.0.load(SeqCst), 2, "both awaiters woken");
        assert_eq!(Arc::strong_count(&hook), 1);
    }

    #[test]
    fn an_inline_hook_is_removable_and_dropped_with_the_record() {
        let hook = Arc::new(Hook);
        let key = hook_key(Arc::as_ptr(&hook) as *const dyn DoneHook);
        let mut record = Completion::<()>::new();
        let weak = Arc::downgrade(&hook) as Weak<dyn DoneHook>;
        assert!(record
            .add_callback(StoredCallback::Hook {
                hook: HookRef::Weak(weak),
                token: 0
            })
            .is_none());
        assert!(record.add_callback(closure(4)).is_none());
        assert_eq!(Arc::weak_count(&hook), 1);
        assert_eq!(record.remove_callbacks(key), 1);
        assert_eq!(Arc::weak_count(&hook), 0);
        assert_eq!(released(&mut record), [(4, usize::MAX)]);

        // Never completed (a task freed unrun): dropping the record
        // releases the inline hook.
        let mut record = Completion::<()>::new();
        let strong = HookRef::Strong(hook.clone());
        assert!(record
            .add_callback(StoredCallback::Hook {
                hook: strong,
                token: 0
            })
            .is_none());
        assert_eq!(Arc::strong_count(&hook), 2);
        drop(record);
        assert_eq!(Arc::strong_count(&hook), 1);
    }

    /// A token too large for the inline place goes to the extra part.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_hook_with_a_large_token_is_kept_in_the_extra_part() {
        let hook = Arc::new(Hook);
        let key = hook_key(Arc::as_ptr(&hook) as *const dyn DoneHook);
        let mut record = Completion::<()>::new();
        let token = u32::MAX as usize + 1;
        assert!(record
            .add_callback(StoredCallback::Hook {
                hook: HookRef::Strong(hook.clone()),
                token
            })
            .is_none());
        assert!(record.extra.is_some());
        assert_eq!(released(&mut record), [(key, token)]);
    }
}
