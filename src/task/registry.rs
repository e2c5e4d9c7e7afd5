//! The registry of a runtime's unfinished tasks, for `all_tasks()` and for
//! cancelling everything at shutdown.
//!
//! It is sharded by task id so that spawns and completions on different
//! workers rarely meet on one lock. Each registered task holds one reference
//! for the registry, given back when the task completes.
//!
//! A shard is a vector of slots indexed by the key stored in the task's
//! header, and a stack of the free keys. Registering writes the task's
//! slot; unregistering only pushes the key on the free stack: a free key's
//! slot keeps a stale pointer that nothing dereferences, because the rare
//! walks over the slots (`snapshot`, `close`) first mark the free keys and
//! skip them. A slot written at completion, in completion order, was a
//! cache miss per task with a million tasks (a slab's free list, threaded
//! through its slots, would also *load* one slot per spawn). The most
//! recently freed key is reused first.
//!
//! That slot's line is then usually cold (last written when the key was
//! first used), and the store miss stalls the unlock that follows it. So each
//! shard keeps the address of the slot its next registration will write, and
//! a spawn prefetches that line before it builds the task
//! ([`Registry::prefetch_slot`]); the address is a hint, read without the
//! lock, and a prefetch of a stale one is harmless.
//!
//! On a runtime with several workers, tasks completed on a worker leave in
//! batches ([`Registry::take_key`], then [`Registry::remove_batch`]), one
//! lock per shard per batch.

use super::raw::{RawTask, NOT_REGISTERED};
use super::AnyTask;
use super::TaskId;
use crate::loom::{lock, AtomicPtr, Mutex};
use std::sync::atomic::Ordering::Relaxed;

pub(crate) struct Registry {
    shards: Box<[Padded]>,
}

/// A shard on cache lines of its own: a spawn on one thread and a
/// completion on another that use neighbouring shards do not contend.
#[repr(align(128))]
struct Padded {
    shard: Mutex<Shard>,
    /// The slot the shard's next registration will write (see the module
    /// documentation): a prefetch hint, written under the lock.
    next_slot: AtomicPtr<RawTask>,
}

struct Shard {
    /// The registered tasks by key. The slot of a key in `free` is stale:
    /// its task may be gone.
    slots: Vec<RawTask>,
    /// The keys of the free slots, the most recently freed last.
    free: Vec<u32>,
    /// The runtime shut down: nothing may register any more.
    closed: bool,
}

/// A finished task waiting, with its key, to leave the registry in a batch.
pub(crate) struct Unregistering {
    shard: u32,
    key: u32,
    task: RawTask,
}

impl Registry {
    /// A registry with a power-of-two number of shards, at least `min_shards`.
    pub(crate) fn new(min_shards: usize) -> Registry {
        let count = min_shards.max(1).next_power_of_two();
        let registry = Registry {
            shards: (0..count)
                .map(|_| Padded {
                    shard: Mutex::new(Shard {
                        slots: Vec::new(),
                        free: Vec::new(),
                        closed: false,
                    }),
                    next_slot: AtomicPtr::new(std::ptr::null_mut()),
                })
                .collect(),
        };
        // The hint is read without the lock on purpose (a stale value only
        // costs a useless prefetch): not a race for helgrind to report.
        #[cfg(spindle_helgrind)]
        for padded in registry.shards.iter() {
            crate::valgrind::atomic_only(&padded.next_slot);
        }
        registry
    }

    fn shard_index(&self, id: TaskId) -> usize {
        id.as_u64() as usize & (self.shards.len() - 1)
    }

    fn padded(&self, id: TaskId) -> &Padded {
        &self.shards[self.shard_index(id)]
    }

    /// Starts loading the slot that registering the task `id`
    /// will probably write: called before the task is built, so that the
    /// miss overlaps that work instead of stalling the registration's unlock.
    pub(crate) fn prefetch_slot(&self, id: TaskId) {
        crate::prefetch::prefetch(self.padded(id).next_slot.load(Relaxed));
    }

    /// Registers a task, taking over one of its references. Returns `false`
    /// (and takes nothing) once the registry is closed.
    pub(crate) fn insert(&self, task: RawTask) -> bool {
        let padded = self.padded(task.header().id);
        let mut shard = lock(&padded.shard);
        if shard.closed {
            return false;
        }
        let key = match shard.free.pop() {
            Some(key) => {
                shard.slots[key as usize] = task;
                key
            }
            None => {
                // Keys are dense (freed ones are reused), so this needs more
                // than four billion unfinished tasks in one shard: memory
                // runs out long before.
                let key = u32::try_from(shard.slots.len())
                    .ok()
                    .filter(|&key| key != NOT_REGISTERED)
                    .expect("more than 4 billion unfinished tasks in one registry shard");
                shard.slots.push(task);
                key
            }
        };
        padded.next_slot.store(shard.next_slot(), Relaxed);
        task.header().registry_key.store(key, Relaxed);
        true
    }

    /// Unregisters a finished task. Returns `true` if it was registered: the
    /// caller then owns the registry's reference and must drop it.
    #[must_use]
    pub(crate) fn remove(&self, task: RawTask) -> bool {
        let padded = self.padded(task.header().id);
        let mut shard = lock(&padded.shard);
        let removed = shard.remove(task);
        padded.next_slot.store(shard.next_slot(), Relaxed);
        removed
    }

    /// Takes a finished task's key (its header is hot at completion) for a
    /// later [`remove_batch`](Self::remove_batch); `None` if it is not
    /// registered. Until the batch is removed, its slot still holds the
    /// registry's reference, which keeps the task alive.
    pub(crate) fn take_key(&self, task: RawTask) -> Option<Unregistering> {
        // Only `close` may race with this, and it stores the same.
        let key = take_registry_key(task)?;
        Some(Unregistering {
            shard: self.shard_index(task.header().id) as u32,
            key,
            task,
        })
    }

    /// Frees the keys of a batch from [`take_key`](Self::take_key), one
    /// lock per shard, and moves the tasks whose registry reference the
    /// caller now owns into `released` (to drop after this returns:
    /// dropping may run user code). A task of a shard closed meanwhile is
    /// left alone, not even looked at: `close` took its reference.
    pub(crate) fn remove_batch(&self, batch: &mut Vec<Unregistering>, released: &mut Vec<RawTask>) {
        batch.sort_unstable_by_key(|entry| entry.shard);
        for run in batch.chunk_by(|a, b| a.shard == b.shard) {
            let padded = &self.shards[run[0].shard as usize];
            let mut shard = lock(&padded.shard);
            if shard.closed {
                continue;
            }
            shard.free.extend(run.iter().map(|entry| entry.key));
            padded.next_slot.store(shard.next_slot(), Relaxed);
            drop(shard);
            released.extend(run.iter().map(|entry| entry.task));
        }
        batch.clear();
    }

    /// Handles to every registered task that is not done. A completing task
    /// is marked complete before it leaves the registry; in between it is
    /// left out here, so that a task whose `done()` is already true is
    /// never listed (asyncio's `all_tasks`).
    pub(crate) fn snapshot(&self) -> Vec<AnyTask> {
        let mut tasks = Vec::new();
        for padded in self.shards.iter() {
            let shard = lock(&padded.shard);
            tasks.extend(
                shard
                    .registered()
                    .filter(|raw| !raw.header().state.load().is_complete())
                    .map(AnyTask::clone_from_raw),
            );
        }
        tasks
    }

    /// Closes the registry and hands back the tasks still in it, each with
    /// the registry's reference.
    pub(crate) fn close(&self) -> Vec<RawTask> {
        let mut left = Vec::new();
        for padded in self.shards.iter() {
            let mut shard = lock(&padded.shard);
            shard.closed = true;
            let registered: Vec<RawTask> = shard.registered().collect();
            shard.slots = Vec::new();
            shard.free = Vec::new();
            for raw in registered {
                raw.header().registry_key.store(NOT_REGISTERED, Relaxed);
                left.push(raw);
            }
        }
        left
    }
}

impl Shard {
    /// Unregisters a task of this shard (its lock held); `true` if it was
    /// registered. The slot is left stale (see the module documentation).
    fn remove(&mut self, task: RawTask) -> bool {
        let Some(key) = take_registry_key(task) else {
            return false;
        };
        self.free.push(key);
        true
    }

    /// The address of the slot the next registration will write (the last
    /// freed key's, or the one past the end); only ever prefetched.
    fn next_slot(&self) -> *mut RawTask {
        let key = self
            .free
            .last()
            .map_or(self.slots.len(), |&key| key as usize);
        self.slots.as_ptr().wrapping_add(key).cast_mut()
    }

    /// The registered tasks: the slots whose keys are not free (a free
    /// key's slot is stale and is not read).
    fn registered(&self) -> impl Iterator<Item = RawTask> + '_ {
        let mut free = vec![false; self.slots.len()];
        for &key in &self.free {
            free[key as usize] = true;
        }
        self.slots
            .iter()
            .zip(free)
            .filter(|(_, free)| !free)
            .map(|(raw, _)| *raw)
    }
}

/// Marks a task unregistered and returns the key it had (`None` if it had
/// none). A plain load and store: the shard lock, or the task's completion
/// on this thread, orders them (no read-modify-write needed).
fn take_registry_key(task: RawTask) -> Option<u32> {
    let key = task.header().registry_key.load(Relaxed);
    if key == NOT_REGISTERED {
        return None;
    }
    task.header().registry_key.store(NOT_REGISTERED, Relaxed);
    Some(key)
}
