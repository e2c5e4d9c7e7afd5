//! The registry of a runtime's unfinished tasks, for `all_tasks()` and for
//! cancelling everything at shutdown.
//!
//! It is sharded by task id so that spawns and completions on different
//! workers rarely meet on one lock. Each registered task holds one reference
//! for the registry, given back when the task completes.

use super::raw::{RawTask, NOT_REGISTERED};
use super::AnyTask;
use crate::loom::{lock, Mutex};
use slab::Slab;

pub(crate) struct Registry {
    shards: Box<[Mutex<Shard>]>,
}

struct Shard {
    tasks: Slab<RawTask>,
    /// The runtime shut down: nothing may register any more.
    closed: bool,
}

impl Registry {
    /// A registry with a power-of-two number of shards, at least `min_shards`.
    pub(crate) fn new(min_shards: usize) -> Registry {
        let count = min_shards.max(1).next_power_of_two();
        Registry {
            shards: (0..count)
                .map(|_| {
                    Mutex::new(Shard {
                        tasks: Slab::new(),
                        closed: false,
                    })
                })
                .collect(),
        }
    }

    fn shard(&self, task: RawTask) -> &Mutex<Shard> {
        let index = task.header().id.as_u64() as usize & (self.shards.len() - 1);
        &self.shards[index]
    }

    /// Registers a task, taking over one of its references. Returns `false`
    /// (and takes nothing) once the registry is closed.
    pub(crate) fn insert(&self, task: RawTask) -> bool {
        let mut shard = lock(self.shard(task));
        if shard.closed {
            return false;
        }
        let entry = shard.tasks.vacant_entry();
        // Keys are dense (the slab reuses freed ones), so this needs more
        // than four billion unfinished tasks in one shard: memory runs out
        // long before.
        let key = u32::try_from(entry.key())
            .ok()
            .filter(|&key| key != NOT_REGISTERED)
            .expect("more than 4 billion unfinished tasks in one registry shard");
        entry.insert(task);
        // SAFETY: `registry_key` is guarded by this shard's lock, held here.
        unsafe { *task.header().registry_key.get() = key };
        true
    }

    /// Unregisters a finished task. Returns `true` if it was registered: the
    /// caller then owns the registry's reference and must drop it.
    #[must_use]
    pub(crate) fn remove(&self, task: RawTask) -> bool {
        let mut shard = lock(self.shard(task));
        // SAFETY: `registry_key` is guarded by this shard's lock, held here.
        let key =
            unsafe { std::mem::replace(&mut *task.header().registry_key.get(), NOT_REGISTERED) };
        if key == NOT_REGISTERED {
            return false;
        }
        shard.tasks.remove(key as usize);
        true
    }

    /// Handles to every registered task.
    pub(crate) fn snapshot(&self) -> Vec<AnyTask> {
        let mut tasks = Vec::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            tasks.extend(
                shard
                    .tasks
                    .iter()
                    .map(|(_, raw)| AnyTask::clone_from_raw(*raw)),
            );
        }
        tasks
    }

    /// Closes the registry and hands back the tasks still in it, each with
    /// the registry's reference.
    pub(crate) fn close(&self) -> Vec<RawTask> {
        let mut left = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            shard.closed = true;
            for raw in shard.tasks.drain() {
                // SAFETY: guarded by this shard's lock, held here.
                unsafe { *raw.header().registry_key.get() = NOT_REGISTERED };
                left.push(raw);
            }
        }
        left
    }
}
