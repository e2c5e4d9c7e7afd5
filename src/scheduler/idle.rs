//! The idle/park protocol: which workers sleep, and who wakes whom.
//!
//! One atomic word counts the *unparked* workers and, among them, the
//! *searching* ones (awake, out of local work, stealing). A list of sleeping
//! workers sits behind a mutex.
//!
//! ```text
//!   usize::BITS-1 ......... 16  15 ........ 0
//!  [ unparked workers        ][ searching    ]
//! ```
//!
//! Rules:
//! 1. A producer that made work available (local push, injector push, a
//!    wake) calls [`Idle::worker_to_notify`]: after a `SeqCst` fence it wakes
//!    one sleeper only if *no* worker is searching and some worker sleeps.
//!    The woken worker starts out searching. So at most one worker is woken
//!    per burst of work, and searchers are never woken in a herd.
//! 2. At most half the workers search at once ([`Idle::try_start_searching`]).
//! 3. A searcher that finds work stops searching; if it was the last one it
//!    wakes another worker (rule 1), so parallelism ramps up while work lasts.
//! 4. A worker about to sleep ([`Idle::park`]) removes itself from the
//!    counts, then (after a `SeqCst` fence) looks at every queue once more;
//!    if it finds work it takes itself off the sleeper list again
//!    ([`Idle::unpark_self`]) instead of sleeping.
//! 5. A worker whose own sleep in the driver (or its own timers) woke tasks
//!    into its own queue stays awake *without* searching: it runs them
//!    itself, and wakes a helper (rule 1) only if it queued more than the
//!    one it runs next. One ready socket then costs no futex wake of a
//!    second worker that would find nothing to steal.
//!
//! No lost wakeup (proof sketch). Take work W pushed by producer P, and the
//! last worker S that goes to sleep without having seen W. P does
//! `push(W); fence(SeqCst); load(counts)`; S does
//! `rmw(counts) (SeqCst); fence(SeqCst); check(queues)`. By the `SeqCst`
//! total order either S's check follows P's push (S sees W: contradiction),
//! or P's load follows S's decrement. In the latter case P sees S not
//! counted as unparked, so unless a worker is searching, P wakes a sleeper.
//! If one was searching, the last searcher to stop either finds work (and by
//! rule 3 wakes a worker when it was the last searcher) or parks through
//! rule 4 and re-checks after its own decrement, which follows P's push.
//! Either way some worker is awake and will reach W. Rule 5 skips the wake
//! only for a task its own, awake worker runs next: no other worker needs
//! to reach it.
//!
//! Orderings: every access to the word is `SeqCst`, paired with the `SeqCst`
//! fences above; the sleeper list is only read and written under its mutex.

use crate::loom::{fence, lock, AtomicUsize, Mutex};
use std::sync::atomic::Ordering::SeqCst;

const SEARCHING_MASK: usize = (1 << 16) - 1;
const UNPARKED_ONE: usize = 1 << 16;

pub(crate) struct Idle {
    counts: AtomicUsize,
    workers: usize,
    sleepers: Mutex<Sleepers>,
}

struct Sleepers {
    /// Indices of the sleeping workers, most recent last.
    list: Vec<usize>,
    /// `asleep[i]`: worker `i` is in `list`.
    asleep: Vec<bool>,
}

fn searching(counts: usize) -> usize {
    counts & SEARCHING_MASK
}

fn unparked(counts: usize) -> usize {
    counts / UNPARKED_ONE
}

impl Idle {
    /// All `workers` start unparked and not searching.
    pub(crate) fn new(workers: usize) -> Idle {
        assert!(workers > 0 && workers < SEARCHING_MASK);
        Idle {
            counts: AtomicUsize::new(workers * UNPARKED_ONE),
            workers,
            sleepers: Mutex::new(Sleepers {
                list: Vec::with_capacity(workers),
                asleep: vec![false; workers],
            }),
        }
    }

    fn should_wake(&self) -> bool {
        let counts = self.counts.load(SeqCst);
        searching(counts) == 0 && unparked(counts) < self.workers
    }

    /// Rule 1: called after making work available. Returns the worker to
    /// unpark, already counted as unparked and searching.
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        fence(SeqCst);
        if !self.should_wake() {
            return None;
        }
        let mut sleepers = lock(&self.sleepers);
        if !self.should_wake() {
            return None;
        }
        let index = sleepers.list.pop()?;
        sleepers.asleep[index] = false;
        self.counts.fetch_add(UNPARKED_ONE + 1, SeqCst);
        Some(index)
    }

    /// Rule 2: becomes a searcher unless half the workers already search.
    pub(crate) fn try_start_searching(&self) -> bool {
        let counts = self.counts.load(SeqCst);
        if 2 * searching(counts) >= self.workers {
            return false;
        }
        self.counts.fetch_add(1, SeqCst);
        true
    }

    /// Rule 3: a searcher found work. Returns `true` if it was the last
    /// searcher (the caller then notifies another worker).
    #[must_use]
    pub(crate) fn stop_searching(&self) -> bool {
        let previous = self.counts.fetch_sub(1, SeqCst);
        debug_assert!(searching(previous) > 0);
        searching(previous) == 1
    }

    /// Rule 4, first half: worker `index` goes on the sleeper list. The
    /// caller must re-check the queues before actually sleeping.
    pub(crate) fn park(&self, index: usize, was_searching: bool) {
        let mut sleepers = lock(&self.sleepers);
        let decrement = UNPARKED_ONE + usize::from(was_searching);
        self.counts.fetch_sub(decrement, SeqCst);
        sleepers.list.push(index);
        sleepers.asleep[index] = true;
        drop(sleepers);
        fence(SeqCst);
    }

    /// Rule 4, second half: worker `index` found work after [`park`](Self::park)
    /// and stays awake: as a searcher if `searching` (it found work in other
    /// queues, to steal), or not (its own driver or timers woke tasks into
    /// its own queue, which it runs itself). Returns `false` if a producer
    /// already took it off the list (and counted it as searching) in the
    /// meantime.
    pub(crate) fn unpark_self(&self, index: usize, searching: bool) -> bool {
        let mut sleepers = lock(&self.sleepers);
        if !sleepers.asleep[index] {
            return false;
        }
        sleepers.asleep[index] = false;
        sleepers.list.retain(|&i| i != index);
        self.counts
            .fetch_add(UNPARKED_ONE + usize::from(searching), SeqCst);
        true
    }

    /// Whether worker `index` is still on the sleeper list (a wake that did
    /// not come from [`worker_to_notify`](Self::worker_to_notify) is spurious).
    pub(crate) fn is_asleep(&self, index: usize) -> bool {
        lock(&self.sleepers).asleep[index]
    }

    /// Number of workers currently searching (for tests and debugging).
    #[cfg(all(test, not(spindle_loom)))]
    pub(crate) fn searching(&self) -> usize {
        searching(self.counts.load(SeqCst))
    }
}

#[cfg(all(test, not(spindle_loom)))]
mod tests {
    use super::*;

    #[test]
    fn wakes_one_sleeper_only_when_nobody_searches() {
        let idle = Idle::new(4);
        assert_eq!(idle.worker_to_notify(), None, "everyone is awake");
        idle.park(2, false);
        idle.park(3, false);
        assert_eq!(idle.worker_to_notify(), Some(3));
        assert_eq!(idle.searching(), 1);
        assert_eq!(idle.worker_to_notify(), None, "a searcher exists");
        assert!(idle.stop_searching());
        assert_eq!(idle.worker_to_notify(), Some(2));
        assert!(!idle.is_asleep(2));
    }

    #[test]
    fn at_most_half_search() {
        let idle = Idle::new(4);
        assert!(idle.try_start_searching());
        assert!(idle.try_start_searching());
        assert!(!idle.try_start_searching());
    }

    #[test]
    fn unpark_self_after_notify_is_refused() {
        let idle = Idle::new(2);
        idle.park(1, false);
        assert_eq!(idle.worker_to_notify(), Some(1));
        assert!(!idle.unpark_self(1, true));
        idle.park(0, true);
        assert!(idle.unpark_self(0, true));
        assert_eq!(idle.searching(), 1);
    }

    #[test]
    fn a_worker_woken_by_its_own_events_is_awake_but_not_searching() {
        let idle = Idle::new(2);
        idle.park(0, false);
        idle.park(1, false);
        assert!(idle.unpark_self(1, false));
        assert_eq!(idle.searching(), 0);
        // Nobody searches and worker 0 sleeps: new work wakes it.
        assert_eq!(idle.worker_to_notify(), Some(0));
    }
}

#[cfg(all(test, spindle_loom))]
mod loom_tests {
    use super::*;
    use crate::loom::{thread, Arc, AtomicBool};
    use std::sync::atomic::Ordering::SeqCst;

    /// A producer publishes work while the only worker goes to sleep: either
    /// the worker sees the work in its re-check, or the producer wakes it.
    #[test]
    fn no_lost_wakeup() {
        loom::model(|| {
            let idle = Arc::new(Idle::new(1));
            let work = Arc::new(AtomicBool::new(false));
            let producer = {
                let (idle, work) = (idle.clone(), work.clone());
                thread::spawn(move || {
                    work.store(true, SeqCst);
                    idle.worker_to_notify()
                })
            };
            idle.park(0, false);
            let saw_work = work.load(SeqCst) && idle.unpark_self(0, true);
            let woken = producer.join().unwrap();
            assert!(saw_work || woken == Some(0), "wakeup lost");
        });
    }
}
