//! A worker's run queue: a crossbeam-deque FIFO `Worker` that other workers
//! steal from, kept within its first buffer on a runtime with several
//! workers, the tasks beyond going to the injector.
//!
//! crossbeam's deque doubles its buffer when a push finds it full and halves
//! it when a pop leaves it a quarter full. A worker whose queue swings
//! between a few tasks and thousands (a fork-join tree, a burst of spawns)
//! then reallocates its buffer again and again, and each of those
//! allocations, above glibc's small-request sizes, makes malloc consolidate
//! every freed small block first (14% of the time of fib(25) through task
//! groups on two workers). So the deque of a worker among several holds at
//! most [`CAPACITY`] tasks, the size of its first buffer, which it then
//! never leaves, and the tasks beyond go to the injector, where every
//! worker finds them (tokio's local queue overflows into its injector the
//! same way); there is no order to keep between workers. Batches taken from
//! the injector or stolen from another worker are limited to the room left.
//!
//! The only worker of a runtime keeps one unbounded deque: its queue is
//! asyncio's single FIFO ready queue, which an injector in between would
//! reorder. (Measured: a private overflow queue behind a bounded deque kept
//! the order but made fib(25) on one worker twice as slow: without the
//! consolidations, glibc hands out scattered blocks to the breadth-first
//! tree the FIFO builds.)

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

/// The most tasks the stealable deque of a worker among several holds:
/// crossbeam's first (and smallest) buffer, which a deque that never holds
/// more never resizes.
pub(crate) const CAPACITY: usize = 64;

/// One worker's queue of runnable tasks (see the module documentation);
/// generic so that its order can be tested with plain values.
pub(crate) struct RunQueue<T> {
    deque: Worker<T>,
    /// At most [`CAPACITY`] tasks in the deque, the rest to the injector
    /// (a worker among several).
    bounded: bool,
}

impl<T> RunQueue<T> {
    /// The queue of a worker; `alone` if it is its runtime's only worker.
    pub(crate) fn new(alone: bool) -> RunQueue<T> {
        RunQueue {
            deque: Worker::new_fifo(),
            bounded: !alone,
        }
    }

    /// The handle other workers steal with.
    pub(crate) fn stealer(&self) -> Stealer<T> {
        self.deque.stealer()
    }

    /// How many more tasks the deque takes (`None`: no limit).
    fn room(&self) -> Option<usize> {
        // Stealers only ever shorten the deque: its length read here is an
        // upper bound.
        self.bounded
            .then(|| CAPACITY.saturating_sub(self.deque.len()))
    }

    /// Queues `task` at the back of the deque, or of `injector` if the
    /// deque is full.
    pub(crate) fn push(&self, task: T, injector: &Injector<T>) {
        match self.room() {
            Some(0) => injector.push(task),
            _ => self.deque.push(task),
        }
    }

    /// The task at the front.
    pub(crate) fn pop(&self) -> Option<T> {
        self.deque.pop()
    }

    /// Tasks queued here (may be a little high while another worker steals).
    pub(crate) fn len(&self) -> usize {
        self.deque.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.deque.is_empty()
    }

    /// Takes a task from `injector` to run now, and moves a batch after it
    /// into this queue as far as there is room.
    pub(crate) fn take_from_injector(&self, injector: &Injector<T>) -> Steal<T> {
        match self.room() {
            None => injector.steal_batch_and_pop(&self.deque),
            Some(0) => injector.steal(),
            Some(room) => injector.steal_batch_with_limit_and_pop(&self.deque, room + 1),
        }
    }

    /// Moves a batch of `injector`'s tasks to the back of this queue.
    /// `Empty` when nothing more can be moved (the injector is empty, or the
    /// bounded deque is full).
    pub(crate) fn move_from_injector(&self, injector: &Injector<T>) -> Steal<()> {
        match self.room() {
            None => injector.steal_batch(&self.deque),
            Some(0) => Steal::Empty,
            Some(room) => injector.steal_batch_with_limit(&self.deque, room),
        }
    }

    /// Steals about half of another worker's queue: one task to run now, the
    /// rest (as far as there is room) into this queue.
    pub(crate) fn steal_from(&self, victim: &Stealer<T>) -> Steal<T> {
        match self.room() {
            None => victim.steal_batch_and_pop(&self.deque),
            Some(0) => victim.steal(),
            Some(room) => victim.steal_batch_with_limit_and_pop(&self.deque, room + 1),
        }
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;

    fn drain<T>(queue: &RunQueue<T>) -> Vec<T> {
        std::iter::from_fn(|| queue.pop()).collect()
    }

    #[test]
    fn the_only_workers_queue_is_one_unbounded_fifo() {
        let injector = Injector::new();
        let queue = RunQueue::new(true);
        for i in 0..1000 {
            queue.push(i, &injector);
        }
        assert!(injector.is_empty());
        assert_eq!(queue.len(), 1000);
        for i in 1000..1100 {
            injector.push(i);
        }
        while let Steal::Success(()) = queue.move_from_injector(&injector) {}
        assert!(injector.is_empty());
        assert_eq!(drain(&queue), (0..1100).collect::<Vec<_>>());
        assert!(queue.is_empty());
    }

    #[test]
    fn a_worker_among_several_overflows_into_the_injector() {
        let injector = Injector::new();
        let queue = RunQueue::new(false);
        for i in 0..100 {
            queue.push(i, &injector);
        }
        assert_eq!(queue.len(), CAPACITY);
        assert_eq!(drain(&queue), (0..CAPACITY).collect::<Vec<_>>());
        let mut overflowed = Vec::new();
        while let Steal::Success(i) = injector.steal() {
            overflowed.push(i);
        }
        assert_eq!(overflowed, (CAPACITY..100).collect::<Vec<_>>());
    }

    #[test]
    fn batches_from_the_injector_fit_the_room_left() {
        let injector = Injector::new();
        let queue = RunQueue::new(false);
        for i in 0..CAPACITY - 3 {
            queue.push(i, &injector);
        }
        for i in 1000..1100 {
            injector.push(i);
        }
        assert_eq!(queue.take_from_injector(&injector), Steal::Success(1000));
        assert!(queue.len() <= CAPACITY);
        while let Steal::Success(()) = queue.move_from_injector(&injector) {}
        assert_eq!(queue.len(), CAPACITY, "filled up to its room, no further");
        assert!(!injector.is_empty());
        let order = drain(&queue);
        assert_eq!(order[..CAPACITY - 3], (0..CAPACITY - 3).collect::<Vec<_>>());
        assert!(order[CAPACITY - 3..].windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn stealing_fills_only_the_room_left() {
        let injector = Injector::new();
        let victim = RunQueue::new(false);
        let thief = RunQueue::new(false);
        for i in 0..CAPACITY {
            victim.push(i, &injector);
        }
        for i in 0..CAPACITY - 2 {
            thief.push(100 + i, &injector);
        }
        assert_eq!(thief.steal_from(&victim.stealer()), Steal::Success(0));
        assert!(thief.len() <= CAPACITY);
        assert_eq!(victim.len() + thief.len(), 2 * CAPACITY - 3);
    }
}
