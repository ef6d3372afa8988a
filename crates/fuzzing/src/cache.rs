//! Compiled artifacts and caches under damage.
//!
//! A generated module is compiled and serialized; then:
//!
//! 1. the artifact loads back (`Module::deserialize` and
//!    `Module::deserialize_file`) and behaves exactly like the compiled
//!    module;
//! 2. the artifact with bytes changed, inserted or removed, truncated, or
//!    extended fails `Module::check_precompiled`, the checks
//!    `deserialize` runs before loading anything, never a crash (the
//!    mutations leave the stored tag alone: a serialized artifact's tag is
//!    a public checksum, and re-computing it makes the artifact "trusted"
//!    by definition, which is why `deserialize` is `unsafe`);
//! 3. an engine with other settings refuses the artifact, and one with the
//!    same settings accepts it;
//! 4. through a [`kiln::MemoryCache`] whose entries are damaged on the way
//!    out, and a [`kiln::DirectoryCache`] whose files are damaged on disk,
//!    compiling again succeeds (damaged entries are misses) and gives a
//!    module that behaves like a fresh compilation; an engine of other
//!    settings sharing the cache gets code for its own settings; and
//!    directory cache entries damaged and then re-sealed with a key other
//!    than the cache's secret one (what someone who can write the directory
//!    but not read the key can do) are all refused;
//! 5. the function-level cache reloads exactly the code an uncached
//!    compile produces, misses only what an edit changed, and misses
//!    everything when the context changes ([`crate::function_cache`]).

use crate::differential::compare_kiln;
use crate::generators::{self, KilnSettings, ModuleLimits, Proposals};
use arbitrary::{Result, Unstructured};
use kiln::{Cache, CacheEntry, CacheKind, CacheStats};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Byte range of the artifact tag (see the format in
/// `kiln_environ::serialize`); mutations leave it alone.
const ARTIFACT_CHECKSUM: std::ops::Range<usize> = 40..72;
/// Byte range of a function pack's tag.
const FUNCTION_CHECKSUM: std::ops::Range<usize> = 4..36;

/// One way of damaging bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// XOR the byte at this position (modulo the length) with the mask (non-zero).
    Flip(usize, u8),
    /// Keep only this many bytes (modulo the length).
    Truncate(usize),
    /// Append these bytes.
    Extend(Vec<u8>),
    /// Insert a byte at this position (modulo the length).
    Insert(usize, u8),
    /// Remove the byte at this position (modulo the length).
    Remove(usize),
}

impl Damage {
    /// Draws a damage from `u`.
    ///
    /// # Errors
    ///
    /// `u` is exhausted.
    pub fn arbitrary(u: &mut Unstructured<'_>) -> Result<Damage> {
        Ok(match u.int_in_range(0..=5)? {
            0 | 1 => Damage::Flip(u.arbitrary()?, u.int_in_range(1..=255)?),
            2 => Damage::Truncate(u.arbitrary()?),
            3 => Damage::Extend(u.arbitrary::<Vec<u8>>()?.into_iter().take(64).chain([0]).collect()),
            4 => Damage::Insert(u.arbitrary()?, u.arbitrary()?),
            _ => Damage::Remove(u.arbitrary()?),
        })
    }

    /// Applies the damage, never touching `keep` (a checksum field).
    /// Returns `None` if it would change nothing.
    pub fn apply(&self, bytes: &[u8], keep: std::ops::Range<usize>) -> Option<Vec<u8>> {
        let len = bytes.len();
        if len == 0 {
            return None;
        }
        // Positions outside `keep`, so the checksum field is never forged.
        let pos = |p: usize| {
            let p = p % len;
            if keep.contains(&p) { if keep.end < len { keep.end } else { 0 } } else { p }
        };
        let mut out = bytes.to_vec();
        match self {
            Damage::Flip(p, mask) => out[pos(*p)] ^= mask,
            Damage::Truncate(n) => out.truncate(n % len),
            Damage::Extend(more) => out.extend_from_slice(more),
            // Shifting bytes moves the checksum too; that is a change of other bytes, not a forgery.
            Damage::Insert(p, b) => out.insert(pos(*p), *b),
            Damage::Remove(p) => {
                out.remove(pos(*p));
            }
        }
        (out != bytes).then_some(out)
    }
}

/// A cache case.
#[derive(Clone, Debug)]
pub struct Case {
    /// The module.
    pub wasm: Vec<u8>,
    /// Settings of the engine that compiles and serializes.
    pub settings: KilnSettings,
    /// Settings of a second engine.
    pub other: KilnSettings,
    /// Damage applied to artifacts and cache entries.
    pub damage: Vec<Damage>,
}

/// Generates a case from `u`.
///
/// # Errors
///
/// `u` does not hold enough data.
pub fn generate(u: &mut Unstructured<'_>) -> Result<Case> {
    let allowed = Proposals { relaxed_simd: false, ..Proposals::ALL };
    let mut smith = generators::smith_config(u, ModuleLimits::EXECUTE, allowed)?;
    smith.canonicalize_nans = true;
    let mut settings = KilnSettings::arbitrary(u, generators::max_memory_bytes(&smith))?;
    settings.enable_proposals_of(&smith);
    let other = if u.ratio(1, 4)? {
        settings.clone()
    } else {
        let mut o = KilnSettings::arbitrary(u, generators::max_memory_bytes(&smith))?;
        o.enable_proposals_of(&smith);
        o
    };
    let n = u.int_in_range(1..=6)?;
    let mut damage = Vec::with_capacity(n);
    for _ in 0..n {
        damage.push(Damage::arbitrary(u)?);
    }
    let wasm = generators::smith_module(u, smith, Some(crate::differential::TERMINATION_FUEL))?;
    Ok(Case { wasm, settings, other, damage })
}

/// The fuzz-target entry point.
///
/// # Errors
///
/// `u` does not hold enough data.
pub fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let case = generate(u)?;
    if let Err((msg, artifact)) = case.check(u) {
        crate::fail("cache", artifact.as_deref().unwrap_or(&case.wasm), &format!("{msg}\n{:?}", case.settings));
    }
    Ok(())
}

type Failure = (String, Option<Vec<u8>>);

fn plain(msg: String) -> Failure {
    (msg, None)
}

impl Case {
    /// Runs every check, drawing call arguments from `args`.
    ///
    /// # Errors
    ///
    /// A description of the failure, with the artifact concerned if any.
    pub fn check(&self, args: &mut Unstructured<'_>) -> std::result::Result<(), Failure> {
        let engine = kiln::Engine::new(&self.settings.config()).map_err(|e| plain(format!("engine: {e:#}")))?;
        let module = kiln::Module::from_binary(&engine, &self.wasm)
            .map_err(|e| plain(format!("Kiln refused a valid module: {e:#}")))?;
        let artifact = module.serialize().map_err(|e| plain(format!("serialize: {e:#}")))?;
        let dir = tempfile::tempdir().map_err(|e| plain(format!("tempdir: {e}")))?;

        // 1. Round trip, from memory and from a file.
        // SAFETY: `artifact` was just produced by `serialize` in this
        // process, for this engine.
        let loaded = unsafe { kiln::Module::deserialize(&engine, &artifact) }
            .map_err(|e| (format!("a fresh artifact was refused: {e:#}"), Some(artifact.clone())))?;
        compare_kiln((module.clone(), &self.settings), (loaded, &self.settings), args)
            .map_err(|e| (format!("deserialized module behaves differently: {e}"), Some(artifact.clone())))?;
        let path = dir.path().join("module.cwasm");
        std::fs::write(&path, &artifact).map_err(|e| plain(format!("write: {e}")))?;
        // SAFETY: as above; the file is written once and not changed while
        // `mapped` lives.
        let mapped = unsafe { kiln::Module::deserialize_file(&engine, &path) }
            .map_err(|e| (format!("a fresh artifact file was refused: {e:#}"), Some(artifact.clone())))?;
        compare_kiln((module.clone(), &self.settings), (mapped, &self.settings), args)
            .map_err(|e| (format!("module mapped from a file behaves differently: {e}"), Some(artifact.clone())))?;

        // 2. Damaged artifacts are refused.
        for d in &self.damage {
            let Some(bad) = d.apply(&artifact, ARTIFACT_CHECKSUM) else { continue };
            if kiln::Module::check_precompiled(&engine, &bad).is_ok() {
                return Err((format!("artifact damaged by {d:?} passed Module::check_precompiled"), Some(bad)));
            }
        }

        // 3. Another engine: refused exactly when the settings that shape
        //    compiled code differ.
        let other_engine = kiln::Engine::new(&self.other.config()).map_err(|e| plain(format!("engine: {e:#}")))?;
        // The allocation strategy and the compile strategy are runtime
        // choices: they do not change compiled code, so artifacts move
        // freely between pooling and on-demand, lazy and eager engines.
        let same_code = KilnSettings { pooling: false, lazy: None, ..self.other.clone() }
            == KilnSettings { pooling: false, lazy: None, ..self.settings.clone() };
        match (kiln::Module::check_precompiled(&other_engine, &artifact), same_code) {
            (Ok(_), false) => {
                return Err((
                    format!("artifact of an engine with {:?} accepted by one with {:?}", self.settings, self.other),
                    Some(artifact),
                ));
            }
            (Err(e), true) => {
                return Err((
                    format!("artifact refused by another engine with the same settings: {e:#}"),
                    Some(artifact),
                ));
            }
            _ => {}
        }

        // 4. Caches.
        let memory = Arc::new(DamagingCache::new(kiln::MemoryCache::new(64 << 20)));
        let accepted = std::cell::RefCell::new(Vec::new());
        self.check_cache(memory.clone(), &module, args, |d| {
            accepted.borrow_mut().extend(memory.accepted_damaged());
            memory.arm(d.clone());
        })?;
        accepted.borrow_mut().extend(memory.accepted_damaged());
        if let Some((kind, _)) = accepted.borrow().first() {
            return Err(plain(format!(
                "a damaged {kind:?} cache entry was used (not removed) with damage {:?}",
                self.damage
            )));
        }
        let cache_dir = dir.path().join("cache");
        let directory = Arc::new(kiln::DirectoryCache::new(&cache_dir).map_err(|e| plain(format!("cache dir: {e}")))?);
        self.check_cache(directory.clone(), &module, args, |d| {
            damage_files(&cache_dir, d, false);
        })?;
        self.check_forgeries(&directory, &cache_dir, &module, args)?;

        // 5. The function-level cache.
        let pick = self.damage.len() + self.wasm.len();
        crate::function_cache::check(&self.wasm, &self.settings, pick).map_err(plain)?;
        Ok(())
    }

    /// Damages the directory cache's entries, re-seals them with the
    /// public key (all an attacker who can write the directory but cannot
    /// read its key can do), and checks that compiling again refuses every
    /// one of them and behaves like a fresh compile.
    /// (`fresh` is compiled without the cache: entries are rewritten in
    /// place here, which would change the code of a module mapped from
    /// them.)
    fn check_forgeries(
        &self,
        cache: &Arc<kiln::DirectoryCache>,
        root: &std::path::Path,
        fresh: &kiln::Module,
        args: &mut Unstructured<'_>,
    ) -> std::result::Result<(), Failure> {
        let mut config = self.settings.config();
        config.cache(cache.clone());
        cache.flush();
        for d in &self.damage {
            // A lazily compiled module writes its entries when it is
            // dropped (the last iteration's `again`): they land before the
            // forging, not after it.
            cache.flush();
            let module_files = std::fs::read_dir(root.join("modules")).map(|r| r.count()).unwrap_or(0);
            let forged = damage_files(root, d, true);
            let before = cache.stats();
            let engine = kiln::Engine::new(&config).map_err(|e| plain(format!("engine: {e:#}")))?;
            let again = kiln::Module::from_binary(&engine, &self.wasm)
                .map_err(|e| plain(format!("compiling through a cache with forged entries ({d:?}): {e:#}")))?;
            cache.flush();
            let after = cache.stats();
            // With every module entry forged, this module's entry is one:
            // the lookup finds it, and it must be rejected (an accepted
            // one would have ended the compile with nothing rejected).
            let all_forged = forged.iter().filter(|k| **k == CacheKind::Module).count() == module_files;
            if all_forged && module_files > 0 && after.rejected == before.rejected {
                return Err(plain(format!(
                    "a forged module cache entry (damage {d:?}, re-sealed with the public key) was used: {after}"
                )));
            }
            compare_kiln((fresh.clone(), &self.settings), (again, &self.settings), args).map_err(|e| {
                plain(format!("module from a cache with forged entries ({d:?}) behaves differently: {e}"))
            })?;
        }
        Ok(())
    }

    /// Fills `cache` by compiling with it, damages its entries with each
    /// damage in turn (`damage`), and compiles again.
    fn check_cache(
        &self,
        cache: Arc<dyn Cache>,
        fresh: &kiln::Module,
        args: &mut Unstructured<'_>,
        damage: impl Fn(&Damage),
    ) -> std::result::Result<(), Failure> {
        let engine_with = |settings: &KilnSettings| {
            let mut config = settings.config();
            config.cache(cache.clone());
            kiln::Engine::new(&config).map_err(|e| plain(format!("engine: {e:#}")))
        };
        let compile = |engine: &kiln::Engine, when: &str| {
            kiln::Module::from_binary(engine, &self.wasm)
                .map_err(|e| plain(format!("compiling through the cache ({when}): {e:#}")))
        };
        let first = compile(&engine_with(&self.settings)?, "empty cache")?;
        compare_kiln((fresh.clone(), &self.settings), (first, &self.settings), args)
            .map_err(|e| plain(format!("module compiled through an empty cache behaves differently: {e}")))?;
        for d in &self.damage {
            damage(d);
            // A new engine, so nothing is remembered outside the cache.
            let again = compile(&engine_with(&self.settings)?, &format!("entries damaged by {d:?}"))?;
            compare_kiln((fresh.clone(), &self.settings), (again, &self.settings), args)
                .map_err(|e| plain(format!("module from a cache damaged by {d:?} behaves differently: {e}")))?;
        }
        // An engine with other settings sharing the cache.
        if self.other != self.settings {
            let other_engine = kiln::Engine::new(&self.other.config()).map_err(|e| plain(format!("engine: {e:#}")))?;
            let reference = kiln::Module::from_binary(&other_engine, &self.wasm)
                .map_err(|e| plain(format!("Kiln refused a valid module: {e:#}")))?;
            let shared = compile(&engine_with(&self.other)?, "other settings")?;
            compare_kiln((reference, &self.other), (shared, &self.other), args).map_err(|e| {
                plain(format!(
                    "cache shared with an engine of other settings ({:?}) gave different code: {e}",
                    self.other
                ))
            })?;
        }
        Ok(())
    }
}

/// Damages every entry file under `root`'s `modules` and `functions`
/// directories (module artifacts and function packs, leaving their tags
/// alone); with `forge`, then re-seals each with the public key instead
/// of the cache's secret one. Returns the kinds of the entries changed.
fn damage_files(root: &std::path::Path, d: &Damage, forge: bool) -> Vec<CacheKind> {
    let mut changed = Vec::new();
    let mut stack = vec![root.join("modules"), root.join("functions")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let kind = if p.parent().is_some_and(|d| d.ends_with("modules")) {
                CacheKind::Module
            } else {
                CacheKind::Functions
            };
            let keep = if kind == CacheKind::Module { ARTIFACT_CHECKSUM } else { FUNCTION_CHECKSUM };
            let key = p.file_name().and_then(|n| n.to_str()).and_then(hex_key);
            if let Ok(bytes) = std::fs::read(&p)
                && let Some(mut bad) = d.apply(&bytes, keep)
            {
                if forge && let Some(key) = key {
                    kiln::__private_testing::reseal_entry(&mut bad, None, kind, &key);
                }
                if std::fs::write(&p, bad).is_ok() {
                    changed.push(kind);
                }
            }
        }
    }
    changed
}

/// The key a cache file is named after (64 hex digits).
fn hex_key(name: &str) -> Option<[u8; 32]> {
    let mut key = [0u8; 32];
    if name.len() != 64 {
        return None;
    }
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(name.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

/// A cache that damages the entries it returns while armed (the stored
/// entries stay intact, so each lookup sees fresh damage), and remembers
/// which damaged entries it handed out and which entries Kiln removed:
/// Kiln must remove every damaged entry it is given (that is how it
/// refuses one).
pub struct DamagingCache<C> {
    inner: C,
    state: Mutex<Damaging>,
}

#[derive(Default)]
struct Damaging {
    damage: Option<Damage>,
    handed_out: Vec<(CacheKind, [u8; 32])>,
    removed: Vec<(CacheKind, [u8; 32])>,
}

impl<C: Cache> DamagingCache<C> {
    /// Wraps `inner`, unarmed.
    pub fn new(inner: C) -> Self {
        DamagingCache { inner, state: Mutex::new(Damaging::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Damaging> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Damages every entry returned from now on with `d`.
    pub fn arm(&self, d: Damage) {
        self.state().damage = Some(d);
    }

    /// The damaged entries handed out since the last call that Kiln did
    /// not remove (it used them: a bug). Forgets both lists.
    pub fn accepted_damaged(&self) -> Vec<(CacheKind, [u8; 32])> {
        let mut s = self.state();
        let handed_out = std::mem::take(&mut s.handed_out);
        let removed = std::mem::take(&mut s.removed);
        handed_out.into_iter().filter(|k| !removed.contains(k)).collect()
    }
}

impl<C: Cache> Cache for DamagingCache<C> {
    fn mac_key(&self) -> Option<[u8; 32]> {
        self.inner.mac_key()
    }

    fn get(&self, kind: CacheKind, key: &[u8; 32]) -> Option<CacheEntry> {
        let entry = self.inner.get(kind, key)?;
        let damage = self.state().damage.clone();
        let Some(d) = damage else { return Some(entry) };
        let bytes: Arc<[u8]> = match entry {
            CacheEntry::Bytes(b) => b,
            CacheEntry::File(mut f) => {
                use std::io::Read;
                let mut v = Vec::new();
                f.read_to_end(&mut v).ok()?;
                v.into()
            }
        };
        let keep = match kind {
            CacheKind::Module => ARTIFACT_CHECKSUM,
            CacheKind::Functions => FUNCTION_CHECKSUM,
        };
        match d.apply(&bytes, keep) {
            Some(bad) => {
                self.state().handed_out.push((kind, *key));
                Some(CacheEntry::Bytes(Arc::from(bad)))
            }
            None => Some(CacheEntry::Bytes(bytes)),
        }
    }

    fn put(&self, kind: CacheKind, key: &[u8; 32], bytes: Vec<u8>) {
        self.inner.put(kind, key, bytes);
    }

    fn flush(&self) {
        self.inner.flush();
    }

    fn remove(&self, kind: CacheKind, key: &[u8; 32]) {
        self.state().removed.push((kind, *key));
        self.inner.remove(kind, key);
    }

    fn stats(&self) -> CacheStats {
        self.inner.stats()
    }

    fn record(&self, saved: Duration, rejected: bool) {
        self.inner.record(saved, rejected);
    }

    fn record_functions(&self, hits: u64, misses: u64) {
        self.inner.record_functions(hits, misses);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Damaged module and function entries are handed out, and Kiln
    /// removes every one of them.
    #[test]
    fn damaged_entries_are_handed_out_and_removed() -> anyhow::Result<()> {
        let wasm = wat::parse_str(
            r#"(module (func (export "f") (result i32) i32.const 1) (func (export "g") (result i32) i32.const 2))"#,
        )?;
        let cache = Arc::new(DamagingCache::new(kiln::MemoryCache::new(1 << 20)));
        let engine = || {
            let mut c = KilnSettings::default().config();
            c.cache(cache.clone());
            kiln::Engine::new(&c)
        };
        kiln::Module::from_binary(&engine()?, &wasm)?;
        cache.arm(Damage::Flip(100, 1));
        kiln::Module::from_binary(&engine()?, &wasm)?;
        let s = cache.state();
        assert!(s.handed_out.iter().any(|(k, _)| *k == CacheKind::Module), "{:?}", s.handed_out);
        assert!(s.handed_out.iter().any(|(k, _)| *k == CacheKind::Functions), "{:?}", s.handed_out);
        drop(s);
        assert_eq!(cache.accepted_damaged(), vec![]);
        Ok(())
    }
}
