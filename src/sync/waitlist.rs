//! The FIFO of tasks waiting on a synchronization primitive.
//!
//! Every primitive keeps one behind its lock. A waiter is *linked* (in FIFO
//! order) until it is *granted* what it waits for; a granted waiter is
//! unlinked, so nobody grants it twice, but keeps its slot until its future
//! collects the grant or gives it back. That is what lets a waiter that was
//! already woken and is then cancelled hand its grant to the next waiter
//! (asyncio's rule R3), and waiters are served first come, first served (R4).

use slab::Slab;
use std::task::Waker;

const NIL: usize = usize::MAX;

struct Entry {
    waker: Waker,
    granted: bool,
    prev: usize,
    next: usize,
}

/// A FIFO of waiters with O(1) push, grant and removal.
pub(crate) struct WaitList {
    entries: Slab<Entry>,
    head: usize,
    tail: usize,
    /// Linked (not yet granted) waiters.
    linked: usize,
}

impl Default for WaitList {
    fn default() -> Self {
        WaitList::new()
    }
}

impl WaitList {
    pub(crate) const fn new() -> WaitList {
        WaitList {
            entries: Slab::new(),
            head: NIL,
            tail: NIL,
            linked: 0,
        }
    }

    /// Whether no waiter is left at all, counting granted ones that have not
    /// collected their grant yet (asyncio keeps those in its deque too).
    pub(crate) fn is_vacant(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of waiters waiting to be granted.
    pub(crate) fn len(&self) -> usize {
        self.linked
    }

    /// Appends a waiter; returns its key.
    pub(crate) fn push(&mut self, waker: &Waker) -> usize {
        let key = self.entries.insert(Entry {
            waker: waker.clone(),
            granted: false,
            prev: self.tail,
            next: NIL,
        });
        if self.tail == NIL {
            self.head = key;
        } else {
            self.entries[self.tail].next = key;
        }
        self.tail = key;
        self.linked += 1;
        key
    }

    /// Refreshes a waiter's waker.
    pub(crate) fn set_waker(&mut self, key: usize, waker: &Waker) {
        if let Some(entry) = self.entries.get_mut(key) {
            if !entry.waker.will_wake(waker) {
                entry.waker.clone_from(waker);
            }
        }
    }

    /// Whether the waiter was granted.
    pub(crate) fn is_granted(&self, key: usize) -> bool {
        self.entries.get(key).is_some_and(|e| e.granted)
    }

    fn unlink(&mut self, key: usize) {
        let (prev, next) = {
            let entry = &self.entries[key];
            (entry.prev, entry.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.entries[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.entries[next].prev = prev;
        }
        self.linked -= 1;
    }

    /// Grants the first waiter; returns its waker, to wake once the
    /// primitive's lock is released.
    #[must_use]
    pub(crate) fn grant_first(&mut self) -> Option<Waker> {
        if self.head == NIL {
            return None;
        }
        let key = self.head;
        self.unlink(key);
        let entry = &mut self.entries[key];
        entry.granted = true;
        Some(entry.waker.clone())
    }

    /// Grants every waiter.
    #[must_use]
    pub(crate) fn grant_all(&mut self) -> Vec<Waker> {
        let mut wakers = Vec::with_capacity(self.linked);
        while let Some(waker) = self.grant_first() {
            wakers.push(waker);
        }
        wakers
    }

    /// Removes a waiter (granted or not). Returns whether it had been
    /// granted: the caller then owns the grant (to use it or hand it on).
    pub(crate) fn remove(&mut self, key: usize) -> bool {
        let Some(entry) = self.entries.get(key) else {
            return false;
        };
        let granted = entry.granted;
        if !granted {
            self.unlink(key);
        }
        self.entries.remove(key);
        granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_in_fifo_order_and_removal_keeps_order() {
        let waker = Waker::noop();
        let mut list = WaitList::new();
        let a = list.push(waker);
        let b = list.push(waker);
        let c = list.push(waker);
        assert_eq!(list.len(), 3);
        assert!(!list.remove(b));
        assert!(list.grant_first().is_some());
        assert!(list.is_granted(a) && !list.is_granted(c));
        assert!(list.grant_first().is_some());
        assert!(list.is_granted(c));
        assert!(list.grant_first().is_none());
        assert!(list.remove(a) && list.remove(c));
        assert!(list.is_vacant());
    }
}
