//! The completion record shared by tasks and [`Promise`](crate::Promise)s:
//! the outcome status, the wakers of everyone awaiting it, the done callbacks
//! and whether the failure was read (for the "never retrieved" report).
//!
//! It lives under the owner's lock; completing it hands back what must be
//! woken and called, so that nothing runs while the lock is held.

use crate::error::Error;
use slab::Slab;
use std::task::Waker;

/// A done callback, erased: it already holds the handle it will be called
/// with. The key identifies the user's callback object for removal.
pub(crate) struct StoredCallback {
    pub(crate) key: usize,
    pub(crate) call: Box<dyn FnOnce() + Send>,
}

/// How a task or promise ended, without the success value (that is typed and
/// lives beside the record).
pub(crate) enum Status {
    Pending,
    Succeeded,
    Failed(Error),
}

/// The wakers of the awaiters. The first one is stored inline: most tasks
/// and promises have exactly one awaiter, and it then costs no allocation.
/// Key 0 is the inline slot, key `k > 0` is `more[k - 1]`.
#[derive(Default)]
pub(crate) struct Waiters {
    first: Option<Waker>,
    more: Slab<Waker>,
}

impl Waiters {
    const fn new() -> Waiters {
        Waiters {
            first: None,
            more: Slab::new(),
        }
    }

    fn get_mut(&mut self, key: usize) -> Option<&mut Waker> {
        match key {
            0 => self.first.as_mut(),
            k => self.more.get_mut(k - 1),
        }
    }

    fn insert(&mut self, waker: Waker) -> usize {
        if self.first.is_none() {
            self.first = Some(waker);
            0
        } else {
            self.more.insert(waker) + 1
        }
    }

    fn remove(&mut self, key: usize) {
        match key {
            0 => self.first = None,
            k => {
                self.more.try_remove(k - 1);
            }
        }
    }

    /// Wakes every waiter.
    pub(crate) fn wake_all(self) {
        if let Some(waker) = self.first {
            waker.wake();
        }
        for (_, waker) in self.more {
            waker.wake();
        }
    }
}

pub(crate) struct Completion {
    pub(crate) status: Status,
    waiters: Waiters,
    callbacks: Vec<StoredCallback>,
    /// The failure was read (awaited, `result()`, `exception()`).
    pub(crate) retrieved: bool,
}

/// What completing a record released: to be woken and called outside the lock.
#[must_use]
pub(crate) struct Released {
    pub(crate) waiters: Waiters,
    pub(crate) callbacks: Vec<StoredCallback>,
}

impl Released {
    /// Wakes every waiter. Callbacks are returned for the caller to schedule.
    pub(crate) fn wake_all(self) -> Vec<StoredCallback> {
        self.waiters.wake_all();
        self.callbacks
    }
}

impl Completion {
    pub(crate) const fn new() -> Completion {
        Completion {
            status: Status::Pending,
            waiters: Waiters::new(),
            callbacks: Vec::new(),
            retrieved: false,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        !matches!(self.status, Status::Pending)
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        matches!(&self.status, Status::Failed(e) if e.is_cancelled())
    }

    /// Records the outcome and releases the waiters and callbacks.
    pub(crate) fn finish(&mut self, status: Status) -> Released {
        debug_assert!(!self.is_done());
        self.status = status;
        Released {
            waiters: std::mem::take(&mut self.waiters),
            callbacks: std::mem::take(&mut self.callbacks),
        }
    }

    /// Registers (or refreshes) the waker of one awaiter. `key` is the
    /// awaiter's slot, kept by the awaiter between polls.
    pub(crate) fn register(&mut self, key: &mut Option<usize>, waker: &Waker) {
        if let Some(existing) = key.and_then(|k| self.waiters.get_mut(k)) {
            if !existing.will_wake(waker) {
                existing.clone_from(waker);
            }
            return;
        }
        *key = Some(self.waiters.insert(waker.clone()));
    }

    /// Removes an awaiter that goes away before completion.
    pub(crate) fn unregister(&mut self, key: &mut Option<usize>) {
        if let Some(k) = key.take() {
            if !self.is_done() {
                self.waiters.remove(k);
            }
        }
    }

    /// Adds a done callback; if the record is already done the callback is
    /// returned to be scheduled right away.
    pub(crate) fn add_callback(&mut self, callback: StoredCallback) -> Option<StoredCallback> {
        if self.is_done() {
            Some(callback)
        } else {
            self.callbacks.push(callback);
            None
        }
    }

    /// Removes every registration of the callback with `key`; returns how many.
    pub(crate) fn remove_callbacks(&mut self, key: usize) -> usize {
        let before = self.callbacks.len();
        self.callbacks.retain(|c| c.key != key);
        before - self.callbacks.len()
    }

    /// The failure, marking it read; `None` if pending or succeeded.
    pub(crate) fn read_error(&mut self) -> Option<Error> {
        match &self.status {
            Status::Failed(e) => {
                self.retrieved = true;
                Some(e.clone())
            }
            _ => None,
        }
    }

    /// The failure that nobody read, for the report when the owner is dropped.
    pub(crate) fn unretrieved_error(&self) -> Option<&Error> {
        match &self.status {
            Status::Failed(e) if !self.retrieved && !e.is_cancelled() => Some(e),
            _ => None,
        }
    }
}
