//! Compilation caches shared by any number of engines (and, through the
//! directory cache, processes).
//!
//! Two kinds of entries go through a [`Cache`]: whole compiled modules
//! (the `.cwasm` artifact format, keyed by the module bytes and the engine's
//! code-generation settings) and function packs: the compiled functions of
//! the modules that share an environment (types, imports, tables, memories,
//! globals), each filed inside the pack under its function key (the
//! function body and the parts of the module it depends on; see
//! `kiln_environ::FunctionKeys`). Entries are opaque bytes to the cache.
//! Kiln seals every entry it stores with a tag: a keyed BLAKE3 MAC under
//! the cache's secret key ([`Cache::mac_key`]), bound to the entry's key
//! and kind. It checks the tag before decoding anything, so a corrupt,
//! truncated, foreign or forged entry is treated as a miss and replaced:
//! entries are machine code, and whoever could plant one could run code
//! in every process that uses the cache (see "Compilation caches and
//! artifacts" in docs/ARCHITECTURE.md for the threat model).

mod directory;
mod memory;

pub use directory::DirectoryCache;
pub use memory::MemoryCache;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What a cache entry holds: a whole compiled module (artifact format) or
/// a pack of compiled functions.
pub use kiln_environ::EntryKind as CacheKind;

/// A cache entry as returned by [`Cache::get`].
#[derive(Debug)]
pub enum CacheEntry {
    /// The entry's bytes.
    Bytes(std::sync::Arc<[u8]>),
    /// An open file holding the entry's bytes, which Kiln maps instead of
    /// reading. The cache must have checked that nobody but this process's
    /// user can change it (a regular file, not reached through a symbolic
    /// link, owned by this user and not writable by others): Kiln checks
    /// the entry's tag once and then executes code mapped from the file.
    File(std::fs::File),
}

/// Counters a cache keeps. All of them only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Module lookups that found an entry.
    pub module_hits: u64,
    /// Module lookups that found nothing.
    pub module_misses: u64,
    /// Functions found in the function cache (one function pack lookup
    /// finds all of a module's unchanged functions).
    pub function_hits: u64,
    /// Functions looked for in the function cache and compiled.
    pub function_misses: u64,
    /// Bytes returned by lookups.
    pub bytes_read: u64,
    /// Bytes stored.
    pub bytes_written: u64,
    /// Compile time the hits saved, as recorded when the entries were made.
    pub time_saved: Duration,
    /// Entries found damaged or foreign (each also counted as a miss).
    pub rejected: u64,
}

impl std::fmt::Display for CacheStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "modules: {} hits, {} misses; functions: {} hits, {} misses; {} bytes read, {} bytes written; \
             {:.1} ms of compilation saved; {} damaged entries replaced",
            self.module_hits,
            self.module_misses,
            self.function_hits,
            self.function_misses,
            self.bytes_read,
            self.bytes_written,
            self.time_saved.as_secs_f64() * 1000.0,
            self.rejected
        )
    }
}

/// A store of compiled code, passed to [`Config::cache`](crate::Config::cache)
/// and shareable by any number of engines. Implementations must be
/// thread-safe; they need not be durable (a lost entry is just a miss).
pub trait Cache: Send + Sync {
    /// The secret key Kiln seals this cache's entries with (see the module
    /// docs), or `None` for a cache whose storage nobody but this process
    /// can write, such as process memory: its entries are then only
    /// checksummed, which detects damage but not tampering.
    ///
    /// A cache whose entries live where anyone else could write them (a
    /// directory, a server) must return a random key that those writers
    /// cannot read, and return the same key for as long as its entries
    /// should stay valid.
    fn mac_key(&self) -> Option<[u8; 32]>;
    /// Looks up an entry.
    fn get(&self, kind: CacheKind, key: &[u8; 32]) -> Option<CacheEntry>;
    /// Stores an entry, replacing any previous one. The cache may finish
    /// storing it later (see [`Cache::flush`]), but a `get` of the same key
    /// from this object must then find it.
    fn put(&self, kind: CacheKind, key: &[u8; 32], bytes: Vec<u8>);
    /// Waits until every entry given to [`Cache::put`] is stored. The
    /// default does nothing (for caches that store synchronously).
    fn flush(&self) {}
    /// Drops an entry (Kiln calls this for entries it found damaged).
    fn remove(&self, kind: CacheKind, key: &[u8; 32]);
    /// The counters.
    fn stats(&self) -> CacheStats;
    /// Records that a hit saved `saved` of compilation, and that an entry
    /// was rejected (`rejected`); called by Kiln after decoding an entry.
    fn record(&self, saved: Duration, rejected: bool);
    /// Records that a compile found `hits` functions in the function
    /// cache and compiled `misses`; called by Kiln once per compile that
    /// missed the module cache. The default does nothing.
    fn record_functions(&self, hits: u64, misses: u64) {
        let _ = (hits, misses);
    }
}

/// Counters shared by the built-in caches.
#[derive(Default)]
pub(crate) struct Counters {
    module_hits: AtomicU64,
    module_misses: AtomicU64,
    function_hits: AtomicU64,
    function_misses: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    saved_ns: AtomicU64,
    rejected: AtomicU64,
}

impl Counters {
    /// Counts a lookup that found `found` bytes (or nothing). Function
    /// hits and misses are counted per function, by [`Counters::functions`].
    pub(crate) fn lookup(&self, kind: CacheKind, found: Option<usize>) {
        if kind == CacheKind::Module {
            let counter = if found.is_some() { &self.module_hits } else { &self.module_misses };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(n) = found {
            self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn functions(&self, hits: u64, misses: u64) {
        self.function_hits.fetch_add(hits, Ordering::Relaxed);
        self.function_misses.fetch_add(misses, Ordering::Relaxed);
    }

    pub(crate) fn written(&self, n: usize) {
        self.bytes_written.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn record(&self, saved: Duration, rejected: bool) {
        self.saved_ns.fetch_add(saved.as_nanos().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
        if rejected {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStats {
            module_hits: l(&self.module_hits),
            module_misses: l(&self.module_misses),
            function_hits: l(&self.function_hits),
            function_misses: l(&self.function_misses),
            bytes_read: l(&self.bytes_read),
            bytes_written: l(&self.bytes_written),
            time_saved: Duration::from_nanos(l(&self.saved_ns)),
            rejected: l(&self.rejected),
        }
    }
}
