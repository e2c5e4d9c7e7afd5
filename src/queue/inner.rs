//! The state and the futures shared by the three queue kinds: asyncio's
//! `Queue` methods, with the storage (FIFO, LIFO, heap) as the only
//! difference. A bounded FIFO queue keeps its items in a lock-free
//! [`Ring`] and only its waiters behind a lock; the other queues keep
//! items and waiters behind one lock.

use super::ring::{self, Ring};
use super::QueueError;
use crate::error::{Error, Result};
use crate::loom::{lock, AtomicUsize, Mutex};
use crate::runtime::context;
use crate::sync::WaitList;
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::task::{Context, Poll, Waker};

/// The items of a queue, in the order of its kind.
pub(crate) enum Items<T> {
    Fifo(VecDeque<T>),
    Lifo(Vec<T>),
    /// A binary min-heap ordered by the function (`T::cmp`).
    Priority(Vec<T>, fn(&T, &T) -> Ordering),
}

impl<T> Items<T> {
    fn len(&self) -> usize {
        match self {
            Items::Fifo(items) => items.len(),
            Items::Lifo(items) | Items::Priority(items, _) => items.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, item: T) {
        match self {
            Items::Fifo(items) => items.push_back(item),
            Items::Lifo(items) => items.push(item),
            Items::Priority(heap, cmp) => {
                heap.push(item);
                let mut i = heap.len() - 1;
                while i > 0 {
                    let parent = (i - 1) / 2;
                    if cmp(&heap[i], &heap[parent]) != Ordering::Less {
                        break;
                    }
                    heap.swap(i, parent);
                    i = parent;
                }
            }
        }
    }

    fn pop(&mut self) -> Option<T> {
        match self {
            Items::Fifo(items) => items.pop_front(),
            Items::Lifo(items) => items.pop(),
            Items::Priority(heap, cmp) => {
                let item = heap.pop()?;
                if heap.is_empty() {
                    return Some(item);
                }
                let item = std::mem::replace(&mut heap[0], item);
                let (n, mut i) = (heap.len(), 0);
                loop {
                    let left = 2 * i + 1;
                    if left >= n {
                        break;
                    }
                    let right = left + 1;
                    let child = if right < n && cmp(&heap[right], &heap[left]) == Ordering::Less {
                        right
                    } else {
                        left
                    };
                    if cmp(&heap[child], &heap[i]) != Ordering::Less {
                        break;
                    }
                    heap.swap(i, child);
                    i = child;
                }
                Some(item)
            }
        }
    }

    /// Takes every item out, leaving an empty store of the same kind.
    fn take_all(&mut self) -> Items<T> {
        let empty = match self {
            Items::Fifo(_) => Items::Fifo(VecDeque::new()),
            Items::Lifo(_) => Items::Lifo(Vec::new()),
            Items::Priority(_, cmp) => Items::Priority(Vec::new(), *cmp),
        };
        std::mem::replace(self, empty)
    }
}

/// Who waits on a queue.
#[derive(Clone, Copy)]
enum Side {
    /// Gets, waiting for an item.
    Getters,
    /// Puts, waiting for a free slot.
    Putters,
    /// Joins, waiting until every item is marked done.
    Joiners,
}

#[derive(Default)]
struct Waiters {
    getters: WaitList,
    putters: WaitList,
    joiners: WaitList,
}

impl Waiters {
    fn list(&mut self, side: Side) -> &mut WaitList {
        match side {
            Side::Getters => &mut self.getters,
            Side::Putters => &mut self.putters,
            Side::Joiners => &mut self.joiners,
        }
    }
}

/// A queue whose items sit with its waiters behind one lock (LIFO,
/// priority and unbounded or very large FIFO queues).
struct State<T> {
    items: Items<T>,
    waiters: Waiters,
    /// Items put and not yet marked done.
    unfinished: usize,
    shutdown: bool,
}

impl<T> State<T> {
    fn full(&self, maxsize: usize) -> bool {
        maxsize > 0 && self.items.len() >= maxsize
    }

    /// Whether a waiter on `side` would not wait now.
    fn ready(&self, side: Side, maxsize: usize) -> bool {
        match side {
            Side::Getters => !self.items.is_empty() || self.shutdown,
            Side::Putters => !self.full(maxsize) || self.shutdown,
            Side::Joiners => self.unfinished == 0,
        }
    }

    /// asyncio's `put_nowait`; on success, the getter to wake.
    fn try_put(&mut self, item: T, maxsize: usize) -> Result<Option<Waker>, (T, QueueError)> {
        if self.shutdown {
            return Err((item, QueueError::ShutDown));
        }
        if self.full(maxsize) {
            return Err((item, QueueError::Full));
        }
        self.items.push(item);
        self.unfinished += 1;
        Ok(self.waiters.getters.grant_first())
    }

    /// asyncio's `get_nowait`; on success, the putter to wake.
    fn try_get(&mut self) -> Result<(T, Option<Waker>), QueueError> {
        match self.items.pop() {
            Some(item) => Ok((item, self.waiters.putters.grant_first())),
            None if self.shutdown => Err(QueueError::ShutDown),
            None => Err(QueueError::Empty),
        }
    }
}

/// A bounded FIFO queue: items in a lock-free [`Ring`], waiters behind a
/// lock of their own.
///
/// The wake-up handshake: a waiter registers under the lock and stores the
/// new count in `linked` (Release), then asks the ring again with a
/// read-modify-write of the counter the other side changes (`tail` for
/// getters, `head` for putters, `unfinished` for joiners: an AcqRel RMW
/// that adds nothing); a put, get or `task_done` changes that counter with
/// an RMW, then loads `linked` (Acquire). The two RMWs are ordered on the
/// counter: if the waiter's comes later it sees the change and does not
/// wait; if it comes first, the other side's RMW reads from it, so the
/// waiter's store to `linked` happens before the other side's load, which
/// finds the waiter and grants it. (Plain loads would need SeqCst fences on
/// both sides, which cost a store-buffer drain on every put and get.)
struct RingQueue<T> {
    ring: Ring<T>,
    waiters: Mutex<Waiters>,
    linked: Linked,
}

/// How many waiters of each side are linked (not yet granted): copies of
/// the lists' lengths, written under the waiters' lock and read without it
/// (Release and Acquire: the handshake of [`RingQueue`]), on a cache line
/// of their own.
#[repr(align(128))]
#[derive(Default)]
struct Linked {
    getters: AtomicUsize,
    putters: AtomicUsize,
    joiners: AtomicUsize,
}

impl Linked {
    fn of(&self, side: Side) -> &AtomicUsize {
        match side {
            Side::Getters => &self.getters,
            Side::Putters => &self.putters,
            Side::Joiners => &self.joiners,
        }
    }

    /// Copies the lengths after the lists changed (under their lock).
    fn update(&self, waiters: &Waiters) {
        self.getters.store(waiters.getters.len(), Release);
        self.putters.store(waiters.putters.len(), Release);
        self.joiners.store(waiters.joiners.len(), Release);
    }
}

impl<T> RingQueue<T> {
    fn ready(&self, side: Side) -> bool {
        match side {
            Side::Getters => self.ring.gettable(),
            Side::Putters => self.ring.puttable(),
            Side::Joiners => self.ring.all_done_sync(),
        }
    }

    /// After a change of the ring: grants the first waiter of `side`, if
    /// any (the other half of the handshake).
    fn grant_first(&self, side: Side) -> Option<Waker> {
        if self.linked.of(side).load(Acquire) == 0 {
            return None;
        }
        let mut waiters = lock(&self.waiters);
        let waker = waiters.list(side).grant_first();
        self.linked.update(&waiters);
        waker
    }

    /// The count of unfinished items reached zero: grants every joiner
    /// (the other half of the handshake).
    fn grant_joiners(&self) -> Vec<Waker> {
        if self.linked.joiners.load(Acquire) == 0 {
            return Vec::new();
        }
        let mut waiters = lock(&self.waiters);
        let joiners = waiters.joiners.grant_all();
        self.linked.update(&waiters);
        joiners
    }
}

// The locked variant stays inline, as queues always kept it: boxing it
// would add an indirection to every operation of those queues.
#[allow(clippy::large_enum_variant)]
enum Store<T> {
    Locked(Mutex<State<T>>),
    /// Boxed: its counters sit on cache lines of their own (hundreds of
    /// bytes), which locked queues should not pay for.
    Ring(Box<RingQueue<T>>),
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// A queue: its bound, its items and its waiters.
pub(crate) struct Core<T> {
    maxsize: usize,
    store: Store<T>,
}

impl<T> Core<T> {
    /// A queue of `items`' kind: a bounded FIFO queue whose slots fit in
    /// [`ring::fits`] gets a ring, the others a lock.
    pub(crate) fn new(maxsize: usize, items: Items<T>) -> Core<T> {
        let store = if matches!(items, Items::Fifo(_)) && ring::fits::<T>(maxsize) {
            Store::Ring(Box::new(RingQueue {
                ring: Ring::new(maxsize),
                waiters: Mutex::new(Waiters::default()),
                linked: Linked::default(),
            }))
        } else {
            Store::Locked(Mutex::new(State {
                items,
                waiters: Waiters::default(),
                unfinished: 0,
                shutdown: false,
            }))
        };
        Core { maxsize, store }
    }

    pub(crate) fn maxsize(&self) -> usize {
        self.maxsize
    }

    pub(crate) fn qsize(&self) -> usize {
        match &self.store {
            Store::Locked(state) => lock(state).items.len(),
            Store::Ring(queue) => queue.ring.len(),
        }
    }

    pub(crate) fn full(&self) -> bool {
        match &self.store {
            Store::Locked(state) => lock(state).full(self.maxsize),
            Store::Ring(queue) => queue.ring.len() >= self.maxsize,
        }
    }

    pub(crate) fn put(&self, item: T) -> Put<'_, T> {
        Put {
            core: self,
            item: Some(item),
            key: None,
        }
    }

    /// asyncio's `put_nowait`, waking a getter; the item comes back on
    /// failure.
    fn try_put(&self, item: T) -> Result<(), (T, QueueError)> {
        let getter = match &self.store {
            Store::Locked(state) => lock(state).try_put(item, self.maxsize)?,
            Store::Ring(queue) => {
                queue.ring.push(item)?;
                queue.grant_first(Side::Getters)
            }
        };
        wake(getter);
        Ok(())
    }

    pub(crate) fn put_nowait(&self, item: T) -> Result<()> {
        // On failure the item is dropped here, outside any lock.
        self.try_put(item).map_err(|(_item, err)| err.into())
    }

    pub(crate) fn get(&self) -> Get<'_, T> {
        Get {
            core: self,
            key: None,
            done: false,
        }
    }

    /// asyncio's `get_nowait`, waking a putter.
    fn try_get(&self) -> Result<T, QueueError> {
        let (item, putter) = match &self.store {
            Store::Locked(state) => {
                let outcome = lock(state).try_get();
                outcome?
            }
            Store::Ring(queue) => {
                let item = queue.ring.pop()?;
                (item, queue.grant_first(Side::Putters))
            }
        };
        wake(putter);
        Ok(item)
    }

    pub(crate) fn get_nowait(&self) -> Result<T> {
        Ok(self.try_get()?)
    }

    pub(crate) fn task_done(&self) -> Result<()> {
        let too_many = || Error::invalid_state("task_done() called too many times");
        let joiners = match &self.store {
            Store::Locked(state) => {
                let mut state = lock(state);
                if state.unfinished == 0 {
                    return Err(too_many());
                }
                state.unfinished -= 1;
                if state.unfinished == 0 {
                    state.waiters.joiners.grant_all()
                } else {
                    Vec::new()
                }
            }
            Store::Ring(queue) => match queue.ring.task_done() {
                None => return Err(too_many()),
                Some(true) => queue.grant_joiners(),
                Some(false) => Vec::new(),
            },
        };
        joiners.into_iter().for_each(Waker::wake);
        Ok(())
    }

    /// Whether every item put was marked done.
    fn all_done(&self) -> bool {
        match &self.store {
            Store::Locked(state) => lock(state).unfinished == 0,
            Store::Ring(queue) => queue.ring.unfinished() == 0,
        }
    }

    pub(crate) fn join(&self) -> Join<'_, T> {
        Join {
            core: self,
            key: None,
            done: false,
        }
    }

    pub(crate) fn shutdown(&self, immediate: bool) {
        let mut wakers = Vec::new();
        match &self.store {
            Store::Locked(state) => {
                let dropped = {
                    let mut state = lock(state);
                    state.shutdown = true;
                    let dropped = if immediate {
                        let dropped = state.items.take_all();
                        state.unfinished = state.unfinished.saturating_sub(dropped.len());
                        if state.unfinished == 0 {
                            wakers.extend(state.waiters.joiners.grant_all());
                        }
                        Some(dropped)
                    } else {
                        None
                    };
                    // Every getter and putter re-checks: gets drain what is
                    // left, then fail; puts fail.
                    wakers.extend(state.waiters.getters.grant_all());
                    wakers.extend(state.waiters.putters.grant_all());
                    dropped
                };
                // The items are dropped outside the lock.
                drop(dropped);
            }
            Store::Ring(queue) => {
                let all_done = if immediate {
                    // The items are dropped by the drain, under no lock.
                    let dropped = queue.ring.drain();
                    queue.ring.finish_dropped(dropped) == 0
                } else {
                    queue.ring.shut();
                    false
                };
                let mut waiters = lock(&queue.waiters);
                if all_done {
                    wakers.extend(waiters.joiners.grant_all());
                }
                wakers.extend(waiters.getters.grant_all());
                wakers.extend(waiters.putters.grant_all());
                queue.linked.update(&waiters);
            }
        }
        wakers.into_iter().for_each(Waker::wake);
    }

    pub(crate) fn fmt_as(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (qsize, getters, putters, unfinished, shutdown) = match &self.store {
            Store::Locked(state) => {
                let state = lock(state);
                (
                    state.items.len(),
                    state.waiters.getters.len(),
                    state.waiters.putters.len(),
                    state.unfinished as u64,
                    state.shutdown,
                )
            }
            Store::Ring(queue) => (
                queue.ring.len(),
                queue.linked.getters.load(Relaxed),
                queue.linked.putters.load(Relaxed),
                queue.ring.unfinished(),
                queue.ring.is_shut(),
            ),
        };
        f.debug_struct(name)
            .field("maxsize", &self.maxsize)
            .field("qsize", &qsize)
            .field("getters", &getters)
            .field("putters", &putters)
            .field("unfinished", &unfinished)
            .field("shutdown", &shutdown)
            .finish()
    }

    /// Registers a waiter on `side`, unless it would not wait now: then
    /// `None`, and the caller checks again.
    fn register(&self, side: Side, waker: &Waker) -> Option<usize> {
        match &self.store {
            Store::Locked(state) => {
                let mut state = lock(state);
                if state.ready(side, self.maxsize) {
                    return None;
                }
                Some(state.waiters.list(side).push(waker))
            }
            Store::Ring(queue) => {
                let key = {
                    let mut waiters = lock(&queue.waiters);
                    let key = waiters.list(side).push(waker);
                    queue.linked.update(&waiters);
                    key
                };
                if queue.ready(side) {
                    self.leave(side, key);
                    return None;
                }
                Some(key)
            }
        }
    }

    /// Whether the registered waiter `key` was granted; if so it is
    /// removed, else its waker is refreshed.
    fn collect_grant(&self, side: Side, key: usize, waker: &Waker) -> bool {
        let take = |waiters: &mut Waiters| {
            let list = waiters.list(side);
            if list.is_granted(key) {
                list.remove(key);
                true
            } else {
                list.set_waker(key, waker);
                false
            }
        };
        match &self.store {
            Store::Locked(state) => take(&mut lock(state).waiters),
            // A granted waiter is no longer linked: `linked` stays right.
            Store::Ring(queue) => take(&mut lock(&queue.waiters)),
        }
    }

    /// A waiter leaves (cancelled, dropped, or not needing to wait): a
    /// wake-up it was given and cannot use goes to the next getter (putter)
    /// if there is an item (a free slot) for it. Joiners hand nothing on.
    fn leave(&self, side: Side, key: usize) {
        let next = match &self.store {
            Store::Locked(state) => {
                let mut state = lock(state);
                let granted = state.waiters.list(side).remove(key);
                let hand_on = granted
                    && match side {
                        Side::Getters => !state.items.is_empty(),
                        Side::Putters => !state.full(self.maxsize),
                        Side::Joiners => false,
                    };
                hand_on
                    .then(|| state.waiters.list(side).grant_first())
                    .flatten()
            }
            Store::Ring(queue) => {
                let mut waiters = lock(&queue.waiters);
                let granted = waiters.list(side).remove(key);
                let hand_on = granted
                    && match side {
                        Side::Getters => queue.ring.len() > 0,
                        Side::Putters => queue.ring.len() < self.maxsize,
                        Side::Joiners => false,
                    };
                let next = hand_on.then(|| waiters.list(side).grant_first()).flatten();
                queue.linked.update(&waiters);
                next
            }
        };
        wake(next);
    }
}

/// The future of a queue's `get`: the next item, waiting while the queue
/// is empty.
#[must_use = "futures do nothing unless awaited"]
pub struct Get<'a, T> {
    core: &'a Core<T>,
    key: Option<usize>,
    done: bool,
}

impl<T> Future for Get<'_, T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        std::task::ready!(crate::scheduler::coop::poll_proceed(cx));
        let this = &mut *self;
        if this.done {
            return Poll::Ready(Err(Error::invalid_state("get polled after completion")));
        }
        let core = this.core;
        let mut checked = false;
        if let Some(key) = this.key {
            if let Some(cancel) = context::take_current_cancel() {
                this.key = None;
                this.done = true;
                core.leave(Side::Getters, key);
                return Poll::Ready(Err(cancel));
            }
            checked = true;
            if !core.collect_grant(Side::Getters, key, cx.waker()) {
                return Poll::Pending;
            }
            this.key = None;
        }
        // asyncio: `while self.empty(): if shut down: raise; wait`.
        loop {
            match core.try_get() {
                Err(QueueError::Empty) => {}
                outcome => {
                    this.done = true;
                    return Poll::Ready(outcome.map_err(Error::from));
                }
            }
            if checked {
                if let Some(key) = core.register(Side::Getters, cx.waker()) {
                    this.key = Some(key);
                    return Poll::Pending;
                }
                continue;
            }
            if let Some(cancel) = context::take_current_cancel() {
                this.done = true;
                return Poll::Ready(Err(cancel));
            }
            checked = true;
        }
    }
}

impl<T> Drop for Get<'_, T> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.core.leave(Side::Getters, key);
        }
    }
}

impl<T> fmt::Debug for Get<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Get").finish_non_exhaustive()
    }
}

/// The future of a queue's `put`: inserts the item, waiting while the queue
/// is full. If it fails or is cancelled, nothing is inserted and the item is
/// dropped.
#[must_use = "futures do nothing unless awaited"]
pub struct Put<'a, T> {
    core: &'a Core<T>,
    /// `None` once the put is over.
    item: Option<T>,
    key: Option<usize>,
}

// The item is never pinned: it is moved into the queue.
impl<T> Unpin for Put<'_, T> {}

impl<T> Future for Put<'_, T> {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        std::task::ready!(crate::scheduler::coop::poll_proceed(cx));
        let this = &mut *self;
        if this.item.is_none() {
            return Poll::Ready(Err(Error::invalid_state("put polled after completion")));
        }
        let core = this.core;
        let mut checked = false;
        if let Some(key) = this.key {
            if let Some(cancel) = context::take_current_cancel() {
                this.key = None;
                core.leave(Side::Putters, key);
                this.item = None;
                return Poll::Ready(Err(cancel));
            }
            checked = true;
            if !core.collect_grant(Side::Putters, key, cx.waker()) {
                return Poll::Pending;
            }
            this.key = None;
        }
        // asyncio: `while self.full(): if shut down: raise; wait`.
        loop {
            let item = this.item.take().expect("checked above");
            match core.try_put(item) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err((item, QueueError::Full)) => this.item = Some(item),
                // The item is dropped: a failed put inserts nothing.
                Err((_item, err)) => return Poll::Ready(Err(err.into())),
            }
            if checked {
                if let Some(key) = core.register(Side::Putters, cx.waker()) {
                    this.key = Some(key);
                    return Poll::Pending;
                }
                continue;
            }
            if let Some(cancel) = context::take_current_cancel() {
                this.item = None;
                return Poll::Ready(Err(cancel));
            }
            checked = true;
        }
    }
}

impl<T> Drop for Put<'_, T> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.core.leave(Side::Putters, key);
        }
    }
}

impl<T> fmt::Debug for Put<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Put").finish_non_exhaustive()
    }
}

/// The future of a queue's `join`: waits until every item put was marked
/// done.
#[must_use = "futures do nothing unless awaited"]
pub struct Join<'a, T> {
    core: &'a Core<T>,
    key: Option<usize>,
    done: bool,
}

impl<T> Future for Join<'_, T> {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        std::task::ready!(crate::scheduler::coop::poll_proceed(cx));
        let this = &mut *self;
        if this.done {
            return Poll::Ready(Err(Error::invalid_state("join polled after completion")));
        }
        let core = this.core;
        if let Some(key) = this.key {
            if let Some(cancel) = context::take_current_cancel() {
                core.leave(Side::Joiners, key);
                this.key = None;
                this.done = true;
                return Poll::Ready(Err(cancel));
            }
            if !core.collect_grant(Side::Joiners, key, cx.waker()) {
                return Poll::Pending;
            }
            this.key = None;
            this.done = true;
            return Poll::Ready(Ok(()));
        }
        if core.all_done() {
            this.done = true;
            return Poll::Ready(Ok(()));
        }
        if let Some(cancel) = context::take_current_cancel() {
            this.done = true;
            return Poll::Ready(Err(cancel));
        }
        match core.register(Side::Joiners, cx.waker()) {
            Some(key) => {
                this.key = Some(key);
                Poll::Pending
            }
            None => {
                this.done = true;
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<T> Drop for Join<'_, T> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.core.leave(Side::Joiners, key);
        }
    }
}

impl<T> fmt::Debug for Join<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join").finish_non_exhaustive()
    }
}
