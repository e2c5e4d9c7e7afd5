//! The readiness of one registered I/O source, and the tasks waiting on it.
//!
//! # Protocol
//! The driver records what the OS reported in one atomic word: readiness
//! bits in the low half and an event counter (the *tick*) above them. It
//! never loses a report: it only adds bits.
//!
//! A waiter for an [`Interest`]:
//! 1. loads the word; if it shows the interest ready, it returns the
//!    [`ReadyEvent`] (bits and tick) and the caller tries its operation;
//! 2. otherwise it locks the waiter list, loads the word *again*, and only if
//!    it is still not ready stores its waker, then unlocks.
//!
//! The driver, for an event: (a) ORs the new bits in and bumps the tick
//! (`AcqRel`), then (b) locks the waiter list and wakes every waiter whose
//! interest the new bits satisfy.
//!
//! No lost wakeup: the waiter's second load (2) and the driver's wake (b)
//! are both made under the list lock, and (a) precedes (b). If (2) runs
//! first, the waker is stored before (b) looks; if (b) runs first, (a) is
//! visible to (2), which then sees the interest ready.
//!
//! An operation that finds the source not ready after all (`WouldBlock`)
//! clears the bits it was ready on, but only if the tick is still the one
//! its `ReadyEvent` saw (compare-and-swap): an event that arrived in between
//! keeps its bits. The closed bits are never cleared: end of stream is final.
//!
//! Orderings: the word is read with `Acquire` and written with `AcqRel`, so
//! an operation that sees a readiness bit also sees what the driver wrote
//! before it; the waiter list is a mutex. No other state is shared.

use crate::error::{Error, Result};
use crate::loom::{lock, AtomicUsize, Mutex};
use std::fmt;
use std::ops::BitOr;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::task::{Context, Poll, Waker};

/// The source can be read (or a read would report end of stream or an error).
const READABLE: usize = 1 << 0;
/// The source can be written (or a write would report an error).
const WRITABLE: usize = 1 << 1;
/// The peer closed its writing side: reads return end of stream. Final.
const READ_CLOSED: usize = 1 << 2;
/// The writing side is closed: writes fail. Final.
const WRITE_CLOSED: usize = 1 << 3;
/// The OS reported an error condition on the source.
const ERROR: usize = 1 << 4;
/// The runtime shut down: nothing will be reported any more. Final.
const SHUTDOWN: usize = 1 << 5;
/// The bits that a `WouldBlock` may clear.
const CLEARABLE: usize = READABLE | WRITABLE | ERROR;

/// Where the tick starts in the word.
const TICK_SHIFT: u32 = 16;
/// The readiness bits.
const READY_MASK: usize = (1 << TICK_SHIFT) - 1;
/// The tick, in place (16 bits: an operation's view is at most a few events old).
const TICK_MASK: usize = 0xFFFF << TICK_SHIFT;

/// Which readiness a task waits for: readable, writable, or both.
///
/// ```
/// use spindle::io::Interest;
/// let both = Interest::READABLE | Interest::WRITABLE;
/// assert!(both.is_readable() && both.is_writable());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u8);

impl Interest {
    /// Interest in reading.
    pub const READABLE: Interest = Interest(1);
    /// Interest in writing.
    pub const WRITABLE: Interest = Interest(2);

    /// Whether this includes reading.
    pub fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether this includes writing.
    pub fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }

    /// The readiness bits that satisfy this interest.
    fn mask(self) -> usize {
        let mut mask = ERROR | SHUTDOWN;
        if self.is_readable() {
            mask |= READABLE | READ_CLOSED;
        }
        if self.is_writable() {
            mask |= WRITABLE | WRITE_CLOSED;
        }
        mask
    }

    pub(crate) fn to_mio(self) -> mio::Interest {
        match (self.is_readable(), self.is_writable()) {
            (true, true) => mio::Interest::READABLE | mio::Interest::WRITABLE,
            (false, true) => mio::Interest::WRITABLE,
            _ => mio::Interest::READABLE,
        }
    }
}

impl BitOr for Interest {
    type Output = Interest;
    fn bitor(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.is_readable(), self.is_writable()) {
            (true, true) => f.write_str("READABLE | WRITABLE"),
            (false, true) => f.write_str("WRITABLE"),
            _ => f.write_str("READABLE"),
        }
    }
}

/// What a readiness wait found: the source's readiness at that moment.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ready(usize);

impl Ready {
    /// A read would not block.
    pub fn is_readable(self) -> bool {
        self.0 & (READABLE | READ_CLOSED | ERROR) != 0
    }

    /// A write would not block.
    pub fn is_writable(self) -> bool {
        self.0 & (WRITABLE | WRITE_CLOSED | ERROR) != 0
    }

    /// The peer closed its writing side (reads reach end of stream).
    pub fn is_read_closed(self) -> bool {
        self.0 & READ_CLOSED != 0
    }

    /// The writing side is closed.
    pub fn is_write_closed(self) -> bool {
        self.0 & WRITE_CLOSED != 0
    }

    /// The OS reported an error condition.
    pub fn is_error(self) -> bool {
        self.0 & ERROR != 0
    }

    /// The readiness bits of a mio event.
    pub(crate) fn from_mio(event: &mio::event::Event) -> usize {
        let mut bits = 0;
        if event.is_readable() || event.is_priority() {
            bits |= READABLE;
        }
        if event.is_writable() {
            bits |= WRITABLE;
        }
        if event.is_read_closed() {
            bits |= READ_CLOSED;
        }
        if event.is_write_closed() {
            bits |= WRITE_CLOSED;
        }
        if event.is_error() {
            bits |= ERROR;
        }
        bits
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ready")
            .field("readable", &self.is_readable())
            .field("writable", &self.is_writable())
            .field("read_closed", &self.is_read_closed())
            .field("write_closed", &self.is_write_closed())
            .field("error", &self.is_error())
            .finish()
    }
}

/// A readiness a waiter saw, to clear it if the operation would block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadyEvent {
    tick: usize,
    ready: usize,
    interest: Interest,
}

impl ReadyEvent {
    pub(crate) fn ready(self) -> Ready {
        Ready(self.ready)
    }
}

/// Which of the two single-waiter slots a poll-style caller uses.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    fn interest(self) -> Interest {
        match self {
            Direction::Read => Interest::READABLE,
            Direction::Write => Interest::WRITABLE,
        }
    }
}

/// The readiness of one source and its waiters.
pub(crate) struct ScheduledIo {
    /// Readiness bits and tick (see the module docs).
    readiness: AtomicUsize,
    waiters: Mutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    /// The poll-style reader (`AsyncRead`): one waker, replaced on each poll.
    reader: Option<Waker>,
    /// The poll-style writer (`AsyncWrite`).
    writer: Option<Waker>,
    /// Readiness futures, any number, each with its own key.
    list: Vec<ListWaiter>,
    next_key: u64,
}

struct ListWaiter {
    key: u64,
    interest: Interest,
    waker: Waker,
}

impl ScheduledIo {
    /// A record that assumes the source readable and writable until an
    /// operation says otherwise: the first read or write is tried at once,
    /// without a round trip through the driver.
    pub(crate) fn new() -> ScheduledIo {
        ScheduledIo {
            readiness: AtomicUsize::new(READABLE | WRITABLE),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    /// The driver reports `bits` (steps (a) and (b) of the protocol).
    pub(crate) fn report(&self, bits: usize) {
        let mut current = self.readiness.load(Acquire);
        loop {
            let tick = (current & TICK_MASK).wrapping_add(1 << TICK_SHIFT) & TICK_MASK;
            let next = tick | (current & READY_MASK) | bits;
            match self
                .readiness
                .compare_exchange_weak(current, next, AcqRel, Acquire)
            {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.wake(bits);
    }

    /// The runtime shut down: every waiter, now and later, gets an error.
    pub(crate) fn shut_down(&self) {
        self.readiness.fetch_or(SHUTDOWN, AcqRel);
        self.wake(SHUTDOWN);
    }

    fn wake(&self, bits: usize) {
        let ready = |interest: Interest| interest.mask() & bits != 0;
        // Most sources have one reader and one writer: no allocation then.
        let mut wakers: [Option<Waker>; 2] = [None, None];
        let mut more = Vec::new();
        {
            let mut waiters = lock(&self.waiters);
            if ready(Interest::READABLE) {
                wakers[0] = waiters.reader.take();
            }
            if ready(Interest::WRITABLE) {
                wakers[1] = waiters.writer.take();
            }
            if !waiters.list.is_empty() {
                waiters.list.retain_mut(|waiter| {
                    if ready(waiter.interest) {
                        more.push(waiter.waker.clone());
                        false
                    } else {
                        true
                    }
                });
            }
        }
        // Woken outside the lock: a waker may run code that polls this
        // source again.
        for waker in wakers.into_iter().flatten().chain(more) {
            waker.wake();
        }
    }

    /// The current readiness for `interest`, if any (step 1).
    fn ready_now(&self, interest: Interest) -> Option<Result<ReadyEvent>> {
        let word = self.readiness.load(Acquire);
        let ready = word & interest.mask();
        if ready & SHUTDOWN != 0 {
            return Some(Err(Error::runtime(
                "the runtime shut down: its I/O driver is gone",
            )));
        }
        (ready != 0).then_some(Ok(ReadyEvent {
            tick: word & TICK_MASK,
            ready,
            interest,
        }))
    }

    /// Polls for `interest` as the waiter with `key` (a readiness future;
    /// `key` is assigned on the first `Pending`).
    pub(crate) fn poll_ready_keyed(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        key: &mut Option<u64>,
    ) -> Poll<Result<ReadyEvent>> {
        if let Some(ready) = self.ready_now(interest) {
            return Poll::Ready(ready);
        }
        let mut waiters = lock(&self.waiters);
        if let Some(ready) = self.ready_now(interest) {
            return Poll::Ready(ready);
        }
        let waiters = &mut *waiters;
        match key.and_then(|k| waiters.list.iter_mut().find(|w| w.key == k)) {
            Some(waiter) => waiter.waker.clone_from(cx.waker()),
            None => {
                let k = waiters.next_key;
                waiters.next_key += 1;
                *key = Some(k);
                waiters.list.push(ListWaiter {
                    key: k,
                    interest,
                    waker: cx.waker().clone(),
                });
            }
        }
        Poll::Pending
    }

    /// Removes the waiter with `key` (a readiness future dropped while waiting).
    pub(crate) fn forget(&self, key: u64) {
        lock(&self.waiters).list.retain(|w| w.key != key);
    }

    /// Polls for one direction as its single poll-style waiter.
    pub(crate) fn poll_ready_slot(
        &self,
        cx: &mut Context<'_>,
        direction: Direction,
    ) -> Poll<Result<ReadyEvent>> {
        let interest = direction.interest();
        if let Some(ready) = self.ready_now(interest) {
            return Poll::Ready(ready);
        }
        let mut waiters = lock(&self.waiters);
        if let Some(ready) = self.ready_now(interest) {
            return Poll::Ready(ready);
        }
        let slot = match direction {
            Direction::Read => &mut waiters.reader,
            Direction::Write => &mut waiters.writer,
        };
        match slot {
            Some(waker) => waker.clone_from(cx.waker()),
            None => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The operation after `event` would block: clear what it saw, unless a
    /// newer event arrived meanwhile.
    pub(crate) fn clear(&self, event: ReadyEvent) {
        let clear = event.ready & event.interest.mask() & CLEARABLE;
        let mut current = self.readiness.load(Acquire);
        while current & TICK_MASK == event.tick {
            match self
                .readiness
                .compare_exchange_weak(current, current & !clear, AcqRel, Acquire)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize as StdAtomic, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Counter(StdAtomic);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Arc<Counter>, Waker) {
        let counter = Arc::new(Counter(StdAtomic::new(0)));
        (counter.clone(), Waker::from(counter))
    }

    #[test]
    fn starts_ready_then_waits_after_a_clear() {
        let io = ScheduledIo::new();
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let Poll::Ready(Ok(event)) = io.poll_ready_slot(&mut cx, Direction::Read) else {
            panic!("a new source is assumed readable");
        };
        io.clear(event);
        assert!(io.poll_ready_slot(&mut cx, Direction::Read).is_pending());
        // Writable is untouched by clearing the read side.
        assert!(io.poll_ready_slot(&mut cx, Direction::Write).is_ready());
        io.report(READABLE);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(io.poll_ready_slot(&mut cx, Direction::Read).is_ready());
    }

    #[test]
    fn a_clear_with_a_stale_tick_keeps_the_newer_event() {
        let io = ScheduledIo::new();
        let (_, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let Poll::Ready(Ok(stale)) = io.poll_ready_slot(&mut cx, Direction::Read) else {
            panic!("ready");
        };
        io.report(READABLE);
        io.clear(stale);
        assert!(io.poll_ready_slot(&mut cx, Direction::Read).is_ready());
    }

    #[test]
    fn keyed_waiters_are_woken_by_their_interest_and_forgotten_on_drop() {
        let io = ScheduledIo::new();
        let (_, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        for direction in [Direction::Read, Direction::Write] {
            let Poll::Ready(Ok(event)) = io.poll_ready_slot(&mut cx, direction) else {
                panic!("ready");
            };
            io.clear(event);
        }
        let (reads, read_waker) = counting_waker();
        let (writes, write_waker) = counting_waker();
        let (mut read_key, mut write_key) = (None, None);
        let reader = Context::from_waker(&read_waker);
        let writer = Context::from_waker(&write_waker);
        assert!(io
            .poll_ready_keyed(&mut { reader }, Interest::READABLE, &mut read_key)
            .is_pending());
        assert!(io
            .poll_ready_keyed(&mut { writer }, Interest::WRITABLE, &mut write_key)
            .is_pending());
        io.report(WRITABLE);
        assert_eq!(
            (
                reads.0.load(Ordering::SeqCst),
                writes.0.load(Ordering::SeqCst)
            ),
            (0, 1)
        );
        io.forget(read_key.unwrap());
        io.report(READABLE);
        assert_eq!(
            reads.0.load(Ordering::SeqCst),
            0,
            "a forgotten waiter is not woken"
        );
    }

    #[test]
    fn shutdown_fails_every_wait() {
        let io = ScheduledIo::new();
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut key = None;
        let Poll::Ready(Ok(event)) = io.poll_ready_keyed(&mut cx, Interest::READABLE, &mut key)
        else {
            panic!("ready");
        };
        io.clear(event);
        assert!(io
            .poll_ready_keyed(&mut cx, Interest::READABLE, &mut key)
            .is_pending());
        io.shut_down();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        let Poll::Ready(Err(err)) = io.poll_ready_keyed(&mut cx, Interest::READABLE, &mut key)
        else {
            panic!("an error after shutdown");
        };
        assert_eq!(err.kind(), crate::ErrorKind::Runtime);
    }
}

#[cfg(all(test, spindle_loom))]
mod loom_tests {
    use super::*;
    use crate::loom::model::WakeCounter;
    use crate::loom::thread;
    use std::sync::Arc;

    /// A new source, made not readable by a clear.
    fn drained() -> Arc<ScheduledIo> {
        let io = Arc::new(ScheduledIo::new());
        let (_, waker) = WakeCounter::new();
        let Poll::Ready(Ok(event)) =
            io.poll_ready_slot(&mut Context::from_waker(&waker), Direction::Read)
        else {
            panic!("a new source is assumed readable");
        };
        io.clear(event);
        io
    }

    /// The driver reports readiness while a reader polls (steps 1-2 against
    /// (a)-(b)): the poll sees it or the reader is woken.
    #[test]
    fn a_report_racing_with_a_poll_is_never_lost() {
        loom::model(|| {
            let io = drained();
            let driver = {
                let io = io.clone();
                thread::spawn(move || io.report(READABLE))
            };
            let (wakes, waker) = WakeCounter::new();
            let polled = io.poll_ready_slot(&mut Context::from_waker(&waker), Direction::Read);
            driver.join().unwrap();
            assert!(polled.is_ready() || wakes.wakes() == 1, "wakeup lost");
        });
    }

    /// An operation clears the readiness it saw while the driver reports a
    /// new event: the new event is never cleared.
    #[test]
    fn a_stale_clear_racing_with_a_report_keeps_the_new_event() {
        loom::model(|| {
            let io = Arc::new(ScheduledIo::new());
            let (_, waker) = WakeCounter::new();
            let mut cx = Context::from_waker(&waker);
            let Poll::Ready(Ok(seen)) = io.poll_ready_slot(&mut cx, Direction::Read) else {
                panic!("a new source is assumed readable");
            };
            let driver = {
                let io = io.clone();
                thread::spawn(move || io.report(READABLE))
            };
            io.clear(seen);
            driver.join().unwrap();
            assert!(
                io.poll_ready_slot(&mut cx, Direction::Read).is_ready(),
                "the new event was cleared"
            );
        });
    }

    /// A readiness future waits while the runtime shuts down: it gets the
    /// shutdown error now or is woken to get it.
    #[test]
    fn shutdown_racing_with_a_keyed_wait_is_never_lost() {
        loom::model(|| {
            let io = drained();
            let stopper = {
                let io = io.clone();
                thread::spawn(move || io.shut_down())
            };
            let (wakes, waker) = WakeCounter::new();
            let mut cx = Context::from_waker(&waker);
            let mut key = None;
            let first = io.poll_ready_keyed(&mut cx, Interest::READABLE, &mut key);
            stopper.join().unwrap();
            match first {
                Poll::Ready(outcome) => assert!(outcome.is_err(), "ready after a clear"),
                Poll::Pending => assert_eq!(wakes.wakes(), 1, "wakeup lost"),
            }
            let again = io.poll_ready_keyed(&mut cx, Interest::READABLE, &mut key);
            assert!(matches!(again, Poll::Ready(Err(_))));
        });
    }
}
