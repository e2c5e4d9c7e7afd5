//! Seeded cancellation storms shared by the sync and queue tests.

use spindle::Task;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// SplitMix64: a small seeded generator (no dependency).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The storm's seed: `SPINDLE_STORM_SEED` if set, else `default`.
pub fn storm_seed(default: u64) -> u64 {
    std::env::var("SPINDLE_STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Cancels random live tasks of `tasks` (a few of them hard-aborted) until
/// `stop` is set, from its own task: cancellations race with wake-ups.
pub fn chaos(
    tasks: Arc<Mutex<Vec<spindle::AnyTask>>>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Task<usize> {
    spindle::spawn(async move {
        let mut rng = Rng(seed);
        let mut hits = 0;
        while !stop.load(Ordering::SeqCst) {
            let victim = {
                let tasks = tasks.lock().unwrap();
                let n = tasks.len();
                (n > 0).then(|| tasks[n - 1 - rng.below(n.min(32) as u64) as usize].clone())
            };
            if let Some(victim) = victim {
                let hit = if rng.below(10) == 0 {
                    victim.abort()
                } else {
                    victim.cancel()
                };
                hits += usize::from(hit);
            }
            if rng.below(4) == 0 {
                spindle::sleep(Duration::from_micros(rng.below(500))).await?;
            } else {
                spindle::yield_now().await?;
            }
        }
        spindle::Ok(hits)
    })
}

/// Counts a task's end (return, cancel or abort) exactly once: when its
/// future is dropped.
pub struct Ended(pub Arc<AtomicUsize>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
