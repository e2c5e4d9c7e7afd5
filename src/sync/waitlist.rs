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

/// A link to no entry.
const NIL: u32 = u32::MAX;
/// The `next` of a granted entry: it is unlinked, and that is how it is
/// told from a linked one (the entry stays 24 bytes).
const GRANTED: u32 = u32::MAX - 1;

/// One waiter. Links are `u32` slab keys: every parked task waiting on a
/// primitive pays for its entry, and 24 bytes instead of 40 is most of what
/// a waiter costs.
struct Entry {
    waker: Waker,
    prev: u32,
    next: u32,
}

impl Entry {
    fn is_granted(&self) -> bool {
        self.next == GRANTED
    }
}

/// The link for slab key `key`. Keys are dense (the slab reuses freed
/// ones), so a key past the links' range needs four billion waiters on one
/// primitive: memory runs out long before.
fn link(key: usize) -> u32 {
    u32::try_from(key)
        .ok()
        .filter(|&key| key < GRANTED)
        .expect("more than 4 billion waiters on one primitive")
}

/// Wakers collected under a primitive's lock, to wake once it is released.
/// The first is kept inline: a release usually wakes one waiter, and then
/// nothing is allocated.
#[derive(Default)]
pub(crate) struct Wakers {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl Wakers {
    pub(crate) fn push(&mut self, waker: Waker) {
        if self.first.is_none() {
            self.first = Some(waker);
        } else {
            self.rest.push(waker);
        }
    }

    /// Wakes them all, in order.
    pub(crate) fn wake_all(self) {
        self.first
            .into_iter()
            .chain(self.rest)
            .for_each(Waker::wake);
    }
}

/// A FIFO of waiters with O(1) push, grant and removal.
pub(crate) struct WaitList {
    entries: Slab<Entry>,
    head: u32,
    tail: u32,
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
        let slot = self.entries.vacant_entry();
        let key = slot.key();
        let this = link(key);
        slot.insert(Entry {
            waker: waker.clone(),
            prev: self.tail,
            next: NIL,
        });
        if self.tail == NIL {
            self.head = this;
        } else {
            self.entries[self.tail as usize].next = this;
        }
        self.tail = this;
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
        self.entries.get(key).is_some_and(Entry::is_granted)
    }

    fn unlink(&mut self, key: usize) {
        let (prev, next) = {
            let entry = &self.entries[key];
            (entry.prev, entry.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.entries[next as usize].prev = prev;
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
        let key = self.head as usize;
        self.unlink(key);
        let entry = &mut self.entries[key];
        entry.next = GRANTED;
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
        let granted = entry.is_granted();
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

    /// Every parked waiter pays for its entry (`benches/memory.rs`). The
    /// slab stores it in an enum shaped like this one (its `Entry` is
    /// private): the free-list key fits beside the waker's niche.
    #[test]
    fn an_entry_stays_small() {
        #[allow(dead_code)]
        enum SlabSlot {
            Vacant(usize),
            Occupied(Entry),
        }
        assert_eq!(std::mem::size_of::<Entry>(), 24);
        assert!(std::mem::size_of::<SlabSlot>() <= 24);
    }

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
