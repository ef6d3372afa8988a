//! An in-memory LRU cache with a byte budget.

use super::{Cache, CacheEntry, CacheKind, CacheStats, Counters};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Keeps entries in memory, evicting the least recently used once the
/// total size exceeds the budget.
pub struct MemoryCache {
    budget: usize,
    state: Mutex<State>,
    counters: Counters,
}

/// An entry's bytes and its last-use tick.
type Entry = (Arc<[u8]>, u64);

#[derive(Default)]
struct State {
    entries: HashMap<(CacheKind, [u8; 32]), Entry>,
    by_age: BTreeMap<u64, (CacheKind, [u8; 32])>,
    clock: u64,
    size: usize,
}

impl MemoryCache {
    /// A cache holding at most `budget_bytes` of entries.
    pub fn new(budget_bytes: usize) -> MemoryCache {
        MemoryCache { budget: budget_bytes, state: Mutex::new(State::default()), counters: Counters::default() }
    }

    /// Bytes currently held.
    pub fn size(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).size
    }
}

impl State {
    fn touch(&mut self, k: (CacheKind, [u8; 32])) {
        if let Some((_, age)) = self.entries.get_mut(&k) {
            self.by_age.remove(age);
            self.clock += 1;
            *age = self.clock;
            self.by_age.insert(self.clock, k);
        }
    }

    fn remove(&mut self, k: &(CacheKind, [u8; 32])) {
        if let Some((bytes, age)) = self.entries.remove(k) {
            self.by_age.remove(&age);
            self.size -= bytes.len();
        }
    }
}

impl Cache for MemoryCache {
    /// `None`: entries live in this process's memory, which nobody else
    /// can write, so they are only checksummed.
    fn mac_key(&self) -> Option<[u8; 32]> {
        None
    }

    fn get(&self, kind: CacheKind, key: &[u8; 32]) -> Option<CacheEntry> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let found = s.entries.get(&(kind, *key)).map(|(b, _)| b.clone());
        if found.is_some() {
            s.touch((kind, *key));
        }
        drop(s);
        self.counters.lookup(kind, found.as_ref().map(|b| b.len()));
        found.map(CacheEntry::Bytes)
    }

    fn put(&self, kind: CacheKind, key: &[u8; 32], bytes: Vec<u8>) {
        if bytes.len() > self.budget {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.remove(&(kind, *key));
        while s.size + bytes.len() > self.budget {
            let Some((_, oldest)) = s.by_age.pop_first() else { break };
            if let Some((b, _)) = s.entries.remove(&oldest) {
                s.size -= b.len();
            }
        }
        s.clock += 1;
        let age = s.clock;
        let len = bytes.len();
        s.entries.insert((kind, *key), (Arc::from(bytes), age));
        s.by_age.insert(age, (kind, *key));
        s.size += len;
        drop(s);
        self.counters.written(len);
    }

    fn remove(&self, kind: CacheKind, key: &[u8; 32]) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).remove(&(kind, *key));
    }

    fn stats(&self) -> CacheStats {
        self.counters.snapshot()
    }

    fn record(&self, saved: Duration, rejected: bool) {
        self.counters.record(saved, rejected);
    }

    fn record_functions(&self, hits: u64, misses: u64) {
        self.counters.functions(hits, misses);
    }
}
