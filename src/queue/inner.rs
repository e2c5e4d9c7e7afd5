//! The state and the futures shared by the three queue kinds: asyncio's
//! `Queue` methods, with the storage (FIFO, LIFO, heap) as the only
//! difference.

use super::QueueError;
use crate::error::{Error, Result};
use crate::loom::{lock, Mutex};
use crate::runtime::context;
use crate::sync::WaitList;
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
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

struct State<T> {
    items: Items<T>,
    getters: WaitList,
    putters: WaitList,
    joiners: WaitList,
    /// Items put and not yet marked done.
    unfinished: usize,
    shutdown: bool,
}

impl<T> State<T> {
    fn full(&self, maxsize: usize) -> bool {
        maxsize > 0 && self.items.len() >= maxsize
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
        Ok(self.getters.grant_first())
    }

    /// asyncio's `get_nowait`; on success, the putter to wake.
    fn try_get(&mut self) -> Result<(T, Option<Waker>), QueueError> {
        match self.items.pop() {
            Some(item) => Ok((item, self.putters.grant_first())),
            None if self.shutdown => Err(QueueError::ShutDown),
            None => Err(QueueError::Empty),
        }
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// A queue: its bound and its state behind one lock.
pub(crate) struct Core<T> {
    maxsize: usize,
    state: Mutex<State<T>>,
}

impl<T> Core<T> {
    pub(crate) fn new(maxsize: usize, items: Items<T>) -> Core<T> {
        Core {
            maxsize,
            state: Mutex::new(State {
                items,
                getters: WaitList::new(),
                putters: WaitList::new(),
                joiners: WaitList::new(),
                unfinished: 0,
                shutdown: false,
            }),
        }
    }

    pub(crate) fn maxsize(&self) -> usize {
        self.maxsize
    }

    pub(crate) fn qsize(&self) -> usize {
        lock(&self.state).items.len()
    }

    pub(crate) fn full(&self) -> bool {
        lock(&self.state).full(self.maxsize)
    }

    pub(crate) fn put(&self, item: T) -> Put<'_, T> {
        Put {
            core: self,
            item: Some(item),
            key: None,
        }
    }

    pub(crate) fn put_nowait(&self, item: T) -> Result<()> {
        let outcome = lock(&self.state).try_put(item, self.maxsize);
        match outcome {
            Ok(getter) => {
                wake(getter);
                Ok(())
            }
            // The item is dropped here, outside the lock.
            Err((_item, err)) => Err(err.into()),
        }
    }

    pub(crate) fn get(&self) -> Get<'_, T> {
        Get {
            core: self,
            key: None,
            done: false,
        }
    }

    pub(crate) fn get_nowait(&self) -> Result<T> {
        let outcome = lock(&self.state).try_get();
        let (item, putter) = outcome?;
        wake(putter);
        Ok(item)
    }

    pub(crate) fn task_done(&self) -> Result<()> {
        let joiners = {
            let mut state = lock(&self.state);
            if state.unfinished == 0 {
                return Err(Error::invalid_state("task_done() called too many times"));
            }
            state.unfinished -= 1;
            if state.unfinished == 0 {
                state.joiners.grant_all()
            } else {
                Vec::new()
            }
        };
        joiners.into_iter().for_each(Waker::wake);
        Ok(())
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
        let dropped = {
            let mut state = lock(&self.state);
            state.shutdown = true;
            let dropped = if immediate {
                let dropped = state.items.take_all();
                state.unfinished = state.unfinished.saturating_sub(dropped.len());
                if state.unfinished == 0 {
                    wakers.extend(state.joiners.grant_all());
                }
                Some(dropped)
            } else {
                None
            };
            // Every getter and putter re-checks: gets drain what is left,
            // then fail; puts fail.
            wakers.extend(state.getters.grant_all());
            wakers.extend(state.putters.grant_all());
            dropped
        };
        // The items are dropped outside the lock.
        drop(dropped);
        wakers.into_iter().for_each(Waker::wake);
    }

    pub(crate) fn fmt_as(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct(name)
            .field("maxsize", &self.maxsize)
            .field("qsize", &state.items.len())
            .field("getters", &state.getters.len())
            .field("putters", &state.putters.len())
            .field("unfinished", &state.unfinished)
            .field("shutdown", &state.shutdown)
            .finish()
    }

    /// A getter leaves (cancelled or dropped): a wake-up it was given and
    /// cannot use goes to the next getter.
    fn leave_getters(&self, key: usize) {
        let next = {
            let mut state = lock(&self.state);
            if state.getters.remove(key) && !state.items.is_empty() {
                state.getters.grant_first()
            } else {
                None
            }
        };
        wake(next);
    }

    /// A putter leaves: a free slot it was told about goes to the next
    /// putter.
    fn leave_putters(&self, key: usize) {
        let next = {
            let mut state = lock(&self.state);
            if state.putters.remove(key) && !state.full(self.maxsize) {
                state.putters.grant_first()
            } else {
                None
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
                core.leave_getters(key);
                return Poll::Ready(Err(cancel));
            }
            checked = true;
            let mut state = lock(&core.state);
            if !state.getters.is_granted(key) {
                state.getters.set_waker(key, cx.waker());
                return Poll::Pending;
            }
            state.getters.remove(key);
            this.key = None;
        }
        loop {
            let mut state = lock(&core.state);
            // asyncio: `while self.empty(): if shut down: raise; wait`.
            if !state.items.is_empty() || state.shutdown {
                let outcome = state.try_get();
                drop(state);
                this.done = true;
                return Poll::Ready(match outcome {
                    Ok((item, putter)) => {
                        wake(putter);
                        Ok(item)
                    }
                    Err(err) => Err(err.into()),
                });
            }
            if checked {
                this.key = Some(state.getters.push(cx.waker()));
                return Poll::Pending;
            }
            drop(state);
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
            self.core.leave_getters(key);
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
                core.leave_putters(key);
                this.item = None;
                return Poll::Ready(Err(cancel));
            }
            checked = true;
            let mut state = lock(&core.state);
            if !state.putters.is_granted(key) {
                state.putters.set_waker(key, cx.waker());
                return Poll::Pending;
            }
            state.putters.remove(key);
            this.key = None;
        }
        loop {
            let mut state = lock(&core.state);
            // asyncio: `while self.full(): if shut down: raise; wait`.
            if !state.full(core.maxsize) || state.shutdown {
                let item = this.item.take().expect("checked above");
                let outcome = state.try_put(item, core.maxsize);
                drop(state);
                return Poll::Ready(match outcome {
                    Ok(getter) => {
                        wake(getter);
                        Ok(())
                    }
                    Err((_item, err)) => Err(err.into()),
                });
            }
            if checked {
                this.key = Some(state.putters.push(cx.waker()));
                return Poll::Pending;
            }
            drop(state);
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
            self.core.leave_putters(key);
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
                lock(&core.state).joiners.remove(key);
                this.key = None;
                this.done = true;
                return Poll::Ready(Err(cancel));
            }
            let mut state = lock(&core.state);
            if state.joiners.is_granted(key) {
                state.joiners.remove(key);
                this.key = None;
                this.done = true;
                return Poll::Ready(Ok(()));
            }
            state.joiners.set_waker(key, cx.waker());
            return Poll::Pending;
        }
        if lock(&core.state).unfinished == 0 {
            this.done = true;
            return Poll::Ready(Ok(()));
        }
        if let Some(cancel) = context::take_current_cancel() {
            this.done = true;
            return Poll::Ready(Err(cancel));
        }
        let mut state = lock(&core.state);
        if state.unfinished == 0 {
            this.done = true;
            return Poll::Ready(Ok(()));
        }
        this.key = Some(state.joiners.push(cx.waker()));
        Poll::Pending
    }
}

impl<T> Drop for Join<'_, T> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.core.state).joiners.remove(key);
        }
    }
}

impl<T> fmt::Debug for Join<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join").finish_non_exhaustive()
    }
}
