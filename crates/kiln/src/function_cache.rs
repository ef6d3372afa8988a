//! The function-level cache: the compiled functions of every module with
//! one environment live in two cache entries, packs
//! (`kiln_environ::FunctionPack`) filed under the environment's pack keys:
//! a *base* pack, rewritten rarely, and a pack of the functions compiled
//! *recently*, since the base was written.
//!
//! A compile that misses the module cache looks both packs up and checks
//! each one's tag once (one pass of the MAC over its bytes); each function
//! is then found by comparing its source with that of the base's entry at
//! its position (the base holds functions in the order of the module that
//! wrote it), or else by its key, and linked straight from the pack's
//! bytes. So the unchanged functions of an edited module cost time in
//! proportion to their bytes, with no file, MAC or allocation per function.
//!
//! When anything had to be compiled, Kiln writes a new recent pack: the
//! functions compiled now, the module's functions found in the old recent
//! pack, and the old recent pack's other functions that one of the last
//! [`KEEP_GENERATIONS`] writes used (a function edited back). An edit thus
//! writes a pack the size of what changed since the base, not of the whole
//! module. Once the recent pack would hold more than a
//! [`MERGE_FRACTION`]th of the base's bytes, or there is no base, the two
//! are merged into a new base instead: every function of this module, in
//! its order, then the packs' other functions, most recently used first,
//! up to as many bytes as this module's own (so another module of the same
//! environment compiled in turn with this one keeps finding its functions),
//! and the recent pack is removed.

use crate::cache::{Cache, CacheEntry, CacheKind};
use crate::seal::{EntrySeal, MacKeys};
use crate::vm::code_memory::MappedFile;
use kiln_environ::{
    CacheKey, FuncIndex, FunctionCode, FunctionKeys, FunctionPack, FunctionPackBuilder, PackedFunction,
};
use std::sync::Arc;
use std::time::Duration;

/// A recent pack's functions that this module does not use stay in the
/// next recent pack if one of this many latest writes used them.
pub(crate) const KEEP_GENERATIONS: u64 = 4;

/// The recent pack is merged into the base once it would hold more than
/// this fraction of the base's bytes.
pub(crate) const MERGE_FRACTION: usize = 4;

const BASE: usize = 0;
const RECENT: usize = 1;

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

/// Drops a damaged or foreign pack and counts it.
fn reject(cache: &dyn Cache, key: &CacheKey) {
    cache.remove(CacheKind::Functions, key);
    cache.record(Duration::ZERO, true);
}

/// Looks up the base and recent packs filed under `keys` (see
/// `FunctionKeys::pack_keys`). A file that cannot be mapped is a miss,
/// removed and counted as rejected.
pub(crate) fn lookup(cache: &dyn Cache, keys: &[CacheKey; 2]) -> [Option<PackBytes>; 2] {
    keys.map(|key| match cache.get(CacheKind::Functions, &key)? {
        CacheEntry::Bytes(b) => Some(PackBytes::Shared(b)),
        CacheEntry::File(f) => match MappedFile::new(&f) {
            Ok(m) => {
                // The tag check reads every byte.
                m.populate();
                Some(PackBytes::Mapped(m))
            }
            Err(_) => {
                reject(cache, &key);
                None
            }
        },
    })
}

/// The packs of a module's environment as found in a cache, with the
/// keys that name its functions: [`PackSource::open`] checks them.
pub(crate) struct PackSource {
    keys: FunctionKeys,
    pack_keys: [CacheKey; 2],
    bytes: [Option<PackBytes>; 2],
}

impl PackSource {
    /// Looks up the packs of the environment of `module` (laid out as
    /// `offsets`) in `cache`, for an engine with `salt`.
    pub(crate) fn lookup(
        cache: &dyn Cache,
        salt: &CacheKey,
        module: &kiln_environ::ModuleInfo,
        offsets: &kiln_environ::VMOffsets,
    ) -> PackSource {
        let keys = FunctionKeys::new(salt, module, offsets);
        let pack_keys = keys.pack_keys();
        let bytes = lookup(cache, &pack_keys);
        PackSource { keys, pack_keys, bytes }
    }

    /// The keys of the module's functions.
    pub(crate) fn keys(&self) -> &FunctionKeys {
        &self.keys
    }

    /// Checks the packs found ([`Packs::open`]).
    pub(crate) fn open<'a>(&'a self, cache: &'a dyn Cache, mac_keys: Option<&'a MacKeys>) -> Packs<'a> {
        Packs::open(cache, mac_keys, &self.keys, self.pack_keys, &self.bytes)
    }
}

/// A function found in a pack, checked: its source matches the module's
/// and its code is consistent.
#[derive(Clone, Copy)]
pub(crate) struct Hit<'a> {
    /// Its code.
    pub(crate) code: FunctionCode<'a>,
    /// Which pack it came from, and where in it.
    pack: u8,
    index: u32,
}

/// One of the module's distinct functions, for the packs written next.
#[derive(Clone, Copy)]
pub(crate) enum PackInput<'a> {
    /// Found in a pack.
    Found(Hit<'a>),
    /// Compiled now.
    Compiled {
        /// Its function key.
        key: CacheKey,
        /// How long compiling it took.
        compile_time: Duration,
        /// Its source (`FunctionKeys::source`).
        source: &'a [u8],
        /// The function, encoded.
        code: &'a [u8],
    },
}

/// Calls its argument with each of a module's distinct functions, in
/// order (as often as [`Packs::store`] needs to go through them).
pub(crate) type EachFunction<'f, 'a> = &'f dyn Fn(&mut dyn FnMut(PackInput<'a>));

/// The packs of a module's environment, verified.
pub(crate) struct Packs<'a> {
    cache: &'a dyn Cache,
    function_keys: &'a FunctionKeys,
    keys: [CacheKey; 2],
    seals: [EntrySeal<'a>; 2],
    packs: [Option<FunctionPack<'a>>; 2],
}

impl<'a> Packs<'a> {
    /// Checks the packs in `bytes` (found under `keys`) with the cache's
    /// seal; one whose tag does not verify is removed, counted as
    /// rejected, and treated as missing.
    pub(crate) fn open(
        cache: &'a dyn Cache,
        mac_keys: Option<&'a MacKeys>,
        function_keys: &'a FunctionKeys,
        keys: [CacheKey; 2],
        bytes: &'a [Option<PackBytes>; 2],
    ) -> Packs<'a> {
        let seals = keys.map(|k| EntrySeal::new(mac_keys, CacheKind::Functions, &k));
        let packs = [BASE, RECENT].map(|p| {
            let found = bytes[p].as_ref()?;
            let pack = FunctionPack::parse(found.bytes(), &seals[p]);
            if pack.is_none() {
                reject(cache, &keys[p]);
            }
            pack
        });
        Packs { cache, function_keys, keys, seals, packs }
    }

    /// Defined function `func` (the `index`th), whose body is `body`, if a
    /// pack has it (its source matches and its code is consistent): the
    /// base's entry at `index` if that is the one, else the entry filed
    /// under the function's key. Otherwise the key, if the function has
    /// one (it is to be compiled and stored under it).
    pub(crate) fn find(&self, index: usize, func: FuncIndex, body: &[u8]) -> Result<Hit<'a>, Option<CacheKey>> {
        let hit = |p: usize, f: PackedFunction<'a>| {
            if !self.function_keys.source_matches(func, body, f.source) {
                return None;
            }
            Some(Hit { code: f.code()?, pack: p as u8, index: u32::try_from(f.index).ok()? })
        };
        if let Some(h) = self.packs[BASE].as_ref().and_then(|b| b.functions_at(index)).and_then(|f| hit(BASE, f)) {
            return Ok(h);
        }
        let key = self.function_keys.key(func, body);
        let found = key
            .and_then(|key| [BASE, RECENT].into_iter().find_map(|p| hit(p, self.packs[p].as_ref()?.get(&key, index)?)));
        found.ok_or(key)
    }

    /// The stored function behind `hit`.
    pub(crate) fn function(&self, hit: &Hit<'a>) -> Option<PackedFunction<'a>> {
        self.packs.get(usize::from(hit.pack))?.as_ref()?.functions_at(hit.index as usize)
    }

    /// Writes the packs that follow these, for a module whose distinct
    /// functions `each` goes through (see the module docs).
    pub(crate) fn store(&self, each: EachFunction<'_, 'a>) {
        let generation = self.packs.iter().flatten().map(|p| p.generation()).max().unwrap_or(0).saturating_add(1);
        let mut used = self.packs.map(|p| vec![false; p.map_or(0, |p| p.len())]);
        each(&mut |f| {
            if let PackInput::Found(hit) = f
                && let Some(u) = used.get_mut(usize::from(hit.pack)).and_then(|u| u.get_mut(hit.index as usize))
            {
                *u = true;
            }
        });
        let unused = |p: usize| {
            let used = &used[p];
            self.packs[p]
                .iter()
                .flat_map(|pack| pack.functions())
                .filter(move |f| !used.get(f.index).copied().unwrap_or(true))
        };
        // Pushes `f` (at `generation`) if `take` says so.
        let push_each = |builder: &mut FunctionPackBuilder<'a>, take: &dyn Fn(&PackInput<'a>) -> bool| {
            each(&mut |f| {
                if !take(&f) {
                    return;
                }
                match f {
                    PackInput::Found(hit) => {
                        if let Some(p) = self.function(&hit) {
                            builder.push(&p.key, p.compile_time, generation, p.source, p.bytes);
                        }
                    }
                    PackInput::Compiled { key, compile_time, source, code } => {
                        builder.push(&key, compile_time, generation, source, code)
                    }
                }
            });
        };

        let mut recent = FunctionPackBuilder::new();
        push_each(&mut recent, &|f| !matches!(f, PackInput::Found(hit) if usize::from(hit.pack) == BASE));
        for f in unused(RECENT).filter(|f| generation - f.generation.min(generation) <= KEEP_GENERATIONS) {
            recent.push(&f.key, f.compile_time, f.generation, f.source, f.bytes);
        }
        if let Some(base) = &self.packs[BASE]
            && recent.data_len() <= base.data_len() / MERGE_FRACTION
        {
            if let Some(bytes) = recent.finish(generation, &self.seals[RECENT]) {
                self.cache.put(CacheKind::Functions, &self.keys[RECENT], bytes);
            }
            return;
        }

        let mut base = FunctionPackBuilder::new();
        push_each(&mut base, &|_| true);
        let own = base.data_len();
        let mut others: Vec<PackedFunction<'_>> = unused(RECENT).chain(unused(BASE)).collect();
        // The most recently used first (of equal generations, the recent
        // pack's first).
        others.sort_by_key(|f| std::cmp::Reverse(f.generation));
        let mut kept = 0;
        for f in others {
            kept += f.source.len() + f.bytes.len();
            if kept > own {
                break;
            }
            base.push(&f.key, f.compile_time, f.generation, f.source, f.bytes);
        }
        if let Some(bytes) = base.finish(generation, &self.seals[BASE]) {
            self.cache.put(CacheKind::Functions, &self.keys[BASE], bytes);
            if self.packs[RECENT].is_some() {
                self.cache.remove(CacheKind::Functions, &self.keys[RECENT]);
            }
        }
    }
}
