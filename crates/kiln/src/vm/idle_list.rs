//! Released regions waiting for reuse, split per thread.
//!
//! Hosts instantiate from several threads at once (a request per thread),
//! and a single locked list of idle regions would be a point every thread
//! writes on every instantiation: even uncontended, its lock and its vector
//! move between the cores' caches each time. Instead the list is split into
//! shards, each on its own cache lines; a thread takes from and gives back
//! to its own shard (chosen once per thread, round-robin), so threads that
//! instantiate side by side touch disjoint memory. A thread whose shard is
//! empty takes from the others before the pool makes a new region, so no
//! idle region is stranded in another thread's shard.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Shards per list: enough that threads on a typical host rarely share one.
const SHARDS: usize = 16;

/// One shard, on its own pair of cache lines (adjacent-line prefetch).
#[repr(align(128))]
struct Shard<T>(Mutex<Vec<T>>);

/// A set of idle items split into per-thread shards (see the module docs).
pub struct IdleList<T> {
    shards: Box<[Shard<T>]>,
    /// Most items one shard keeps. A thread's shard alone may hold this
    /// many, so a single-threaded host sees exactly the whole limit, and
    /// each of N threads keeps up to it as well.
    per_shard: usize,
}

/// This thread's shard index.
fn my_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

impl<T> IdleList<T> {
    /// An empty list keeping up to `max` items per thread's shard.
    pub fn new(max: usize) -> Self {
        IdleList { shards: (0..SHARDS).map(|_| Shard(Mutex::new(Vec::new()))).collect(), per_shard: max }
    }

    /// An idle item: this thread's latest, else any other shard's.
    pub fn pop(&self) -> Option<T> {
        let mine = my_shard();
        (0..SHARDS).find_map(|i| self.shards[(mine + i) % SHARDS].0.lock().unwrap_or_else(|e| e.into_inner()).pop())
    }

    /// Keeps `item` in this thread's shard; hands it back when the shard is
    /// full, unless `always` (items that must not be lost, like fixed pool
    /// slots).
    pub fn push(&self, item: T, always: bool) -> Option<T> {
        let mut shard = self.shards[my_shard()].0.lock().unwrap_or_else(|e| e.into_inner());
        if always || shard.len() < self.per_shard {
            shard.push(item);
            None
        } else {
            Some(item)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::IdleList;

    #[test]
    fn items_come_back_and_shards_share() {
        let list = IdleList::new(1);
        assert_eq!(list.push(1, false), None);
        assert_eq!(list.push(2, false), Some(2), "the shard is full");
        assert_eq!(list.push(3, true), None, "always keeps");
        let other = std::thread::scope(|s| s.spawn(|| (list.pop(), list.pop(), list.pop())).join().unwrap());
        let mut got = [other.0, other.1];
        got.sort();
        assert_eq!(got, [Some(1), Some(3)], "another thread takes from this thread's shard");
        assert_eq!(other.2, None);
    }
}
