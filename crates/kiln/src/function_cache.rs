//! The function-level cache: the compiled functions of every module with
//! one environment live in one cache entry, a pack
//! (`kiln_environ::FunctionPack`), filed under the environment's pack key.
//!
//! A compile that misses the module cache looks the pack up once and
//! checks its tag once (one pass of the MAC over its bytes); each function
//! is then a binary search of the pack's index and is linked straight from
//! the pack's bytes. So the unchanged functions of an edited module cost
//! time in proportion to their bytes, with no file, MAC or allocation per
//! function. When anything had to be compiled, a new pack replaces the
//! old one: every function of this module, plus the old pack's other
//! functions that one of the last [`KEEP_GENERATIONS`] packs used (a
//! function edited back, or another module of the same environment
//! compiled in turn with this one), up to as many bytes as this module's
//! own functions.

use crate::cache::{Cache, CacheEntry, CacheKind};
use crate::seal::EntrySeal;
use crate::vm::code_memory::MappedFile;
use kiln_environ::{CacheKey, FunctionPack, FunctionPackBuilder};
use std::sync::Arc;
use std::time::Duration;

/// Functions the old pack held but this module did not use stay in the new
/// one if one of this many latest packs used them.
pub(crate) const KEEP_GENERATIONS: u64 = 4;

/// The bytes of a pack found in the cache.
pub(crate) enum PackBytes {
    /// Held in memory.
    Shared(Arc<[u8]>),
    /// A file, mapped.
    Mapped(MappedFile),
}

impl PackBytes {
    /// The bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            PackBytes::Shared(b) => b,
            PackBytes::Mapped(m) => m.bytes(),
        }
    }
}

/// Looks up the pack filed under `key`. A file that cannot be mapped is a
/// miss, removed and counted as rejected.
pub(crate) fn lookup(cache: &dyn Cache, key: &CacheKey) -> Option<PackBytes> {
    match cache.get(CacheKind::Functions, key)? {
        CacheEntry::Bytes(b) => Some(PackBytes::Shared(b)),
        CacheEntry::File(f) => match MappedFile::new(&f) {
            Ok(m) => Some(PackBytes::Mapped(m)),
            Err(_) => {
                reject(cache, key);
                None
            }
        },
    }
}

/// The pack in `bytes` if its tag verifies with `seal`; otherwise the
/// entry is removed and counted as rejected.
pub(crate) fn verified<'a>(cache: &dyn Cache, key: &CacheKey, bytes: &'a PackBytes, seal: &EntrySeal<'_>) -> Option<FunctionPack<'a>> {
    let pack = FunctionPack::parse(bytes.bytes(), seal);
    if pack.is_none() {
        reject(cache, key);
    }
    pack
}

/// Drops a damaged or foreign pack and counts it.
fn reject(cache: &dyn Cache, key: &CacheKey) {
    cache.remove(CacheKind::Functions, key);
    cache.record(Duration::ZERO, true);
}

/// One function of the module being compiled, for the new pack.
pub(crate) struct PackInput<'a> {
    /// Its function key.
    pub(crate) key: CacheKey,
    /// How long compiling it took (when it was compiled).
    pub(crate) compile_time: Duration,
    /// Its callees (`FunctionKeys::callees`).
    pub(crate) callees: &'a [u8],
    /// The function, encoded.
    pub(crate) code: &'a [u8],
    /// Its position in the old pack, if it came from there.
    pub(crate) old_index: Option<usize>,
}

/// Stores the new pack under `key`: `functions` (this module's distinct
/// functions), then what it keeps of `old` (see the module docs).
pub(crate) fn store(cache: &dyn Cache, key: &CacheKey, seal: &EntrySeal<'_>, old: Option<&FunctionPack<'_>>, functions: &[PackInput<'_>]) {
    let generation = old.map_or(1, |p| p.generation().saturating_add(1));
    let mut builder = FunctionPackBuilder::new();
    for f in functions {
        builder.push(&f.key, f.compile_time, generation, f.callees, f.code);
    }
    if let Some(old) = old {
        let own = builder.data_len();
        let mut used = vec![false; old.len()];
        for i in functions.iter().filter_map(|f| f.old_index) {
            if let Some(u) = used.get_mut(i) {
                *u = true;
            }
        }
        let mut others: Vec<_> = old
            .functions()
            .filter(|f| generation - f.generation.min(generation) <= KEEP_GENERATIONS && !used.get(f.index).copied().unwrap_or(true))
            .collect();
        // The most recently used first.
        others.sort_by_key(|f| std::cmp::Reverse(f.generation));
        let mut kept = 0;
        for f in others {
            kept += f.callees.len() + f.bytes.len();
            if kept > own {
                break;
            }
            builder.push(&f.key, f.compile_time, f.generation, f.callees, f.bytes);
        }
    }
    if let Some(bytes) = builder.finish(generation, seal) {
        cache.put(CacheKind::Functions, key, bytes);
    }
}
