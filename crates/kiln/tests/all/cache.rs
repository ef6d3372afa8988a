//! Compilation caches and precompiled artifacts.

use kiln::*;
use std::sync::Arc;

/// A fresh empty directory under the system temp dir, removed afterwards.
fn temp_dir(name: &str) -> crate::scratch::ScratchDir {
    crate::scratch::ScratchDir::new("test", name)
}

fn module_with(body_of_f3: &str) -> String {
    format!(
        r#"(module
            (func $f0 (export "f0") (param i32) (result i32) local.get 0 i32.const 1 i32.add)
            (func $f1 (export "f1") (param i32) (result i32) local.get 0 call $f0 i32.const 2 i32.mul)
            (func $f2 (export "f2") (param i32) (result i32) local.get 0 i32.const 3 i32.xor)
            (func $f3 (export "f3") (param i32) (result i32) {body_of_f3}))"#
    )
}

fn call(engine: &Engine, module: &Module, name: &str, arg: i32) -> i32 {
    let _ = engine;
    let mut store = Store::new(module.engine(), ());
    let i = Instance::new(&mut store, module, &[]).expect("instantiate");
    i.get_typed_func::<i32, i32>(&mut store, name).expect("func").call(&mut store, arg).expect("call")
}

#[test]
fn serialize_round_trip_in_memory_and_file() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(&engine, module_with("local.get 0 i32.const 10 i32.sub"))?;
    let bytes = module.serialize()?;
    // SAFETY: `bytes` was just made by `serialize` for this engine.
    let again = unsafe { Module::deserialize(&engine, &bytes)? };
    assert_eq!(call(&engine, &again, "f1", 4), 10);
    let dir = temp_dir("serialize");
    let path = dir.join("m.cwasm");
    std::fs::write(&path, &bytes)?;
    // SAFETY: as above; the file does not change while `mapped` lives.
    let mapped = unsafe { Module::deserialize_file(&engine, &path)? };
    assert_eq!(call(&engine, &mapped, "f3", 4), -6);
    Ok(())
}

#[test]
fn damaged_or_foreign_artifacts_are_refused() -> Result<()> {
    let engine = Engine::default();
    let bytes = Module::new(&engine, module_with("local.get 0"))?.serialize()?;
    // Another configuration.
    let mut other = Config::new();
    other.memory_guard_size(1 << 30);
    let err = Module::check_precompiled(&Engine::new(&other)?, &bytes).unwrap_err();
    assert!(format!("{err:#}").contains("different configuration"), "{err:#}");
    let mut other = Config::new();
    other.cranelift_nan_canonicalization(true);
    let err = Module::check_precompiled(&Engine::new(&other)?, &bytes).unwrap_err();
    assert!(format!("{err:#}").contains("enable_nan_canonicalization"), "{err:#}");
    let mut other = Config::new();
    other.cranelift_opt_level(OptLevel::None);
    let err = Module::check_precompiled(&Engine::new(&other)?, &bytes).unwrap_err();
    assert!(format!("{err:#}").contains("compiler target or flags"), "{err:#}");
    // Not an artifact, truncated, flipped bytes: errors, never crashes.
    assert!(Module::check_precompiled(&engine, b"\0asm\x01\0\0\0").is_err());
    for len in [0, 7, 8, 47, 48, 71, 72, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(Module::check_precompiled(&engine, &bytes[..len]).is_err(), "truncated to {len}");
    }
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut b = bytes.clone();
        let i = (x as usize) % b.len();
        b[i] ^= 1 << (x >> 61);
        if b == bytes {
            continue;
        }
        assert!(Module::check_precompiled(&engine, &b).is_err(), "flipped byte {i} accepted");
    }
    Ok(())
}

#[test]
fn two_engines_share_one_memory_cache() -> Result<()> {
    let cache = Arc::new(MemoryCache::new(64 << 20));
    let mut config = Config::new();
    config.cache(cache.clone());
    let a = Engine::new(&config)?;
    let b = Engine::new(&config)?;
    let text = module_with("local.get 0 i32.const 5 i32.shl");
    let m1 = Module::new(&a, &text)?;
    let after_first = cache.stats();
    assert_eq!(after_first.module_misses, 1);
    assert_eq!(after_first.function_misses, 4);
    let m2 = Module::new(&b, &text)?;
    let after_second = cache.stats();
    assert_eq!(after_second.module_hits, 1, "{after_second}");
    assert_eq!(after_second.function_misses, 4, "the second engine compiled nothing: {after_second}");
    assert_eq!(call(&a, &m1, "f3", 1), 32);
    assert_eq!(call(&b, &m2, "f3", 1), 32);
    Ok(())
}

#[test]
fn one_edited_function_recompiles_alone() -> Result<()> {
    let cache = Arc::new(MemoryCache::new(64 << 20));
    let mut config = Config::new();
    config.cache(cache.clone());
    let engine = Engine::new(&config)?;
    Module::new(&engine, module_with("local.get 0 i32.const 7 i32.add"))?;
    let before = cache.stats();
    let edited = Module::new(&engine, module_with("local.get 0 i32.const 9 i32.mul"))?;
    let after = cache.stats();
    assert_eq!(after.function_hits - before.function_hits, 3, "{after}");
    assert_eq!(after.function_misses - before.function_misses, 1, "{after}");
    assert_eq!(call(&engine, &edited, "f3", 2), 18);
    assert_eq!(call(&engine, &edited, "f1", 2), 6);
    Ok(())
}

#[test]
fn identical_functions_compile_once() -> Result<()> {
    let cache = Arc::new(MemoryCache::new(64 << 20));
    let mut config = Config::new();
    config.cache(cache.clone());
    let engine = Engine::new(&config)?;
    let mut text = String::from("(module");
    for i in 0..20 {
        text.push_str(&format!(r#" (func (export "g{i}") (param i32) (result i32) local.get 0 i32.const 3 i32.mul)"#));
    }
    text.push(')');
    let module = Module::new(&engine, &text)?;
    assert_eq!(cache.stats().function_misses, 1);
    assert_eq!(call(&engine, &module, "g17", 5), 15);
    Ok(())
}

#[test]
fn directory_cache_survives_engines_and_repairs_damage() -> Result<()> {
    let dir = temp_dir("dircache");
    let text = module_with("local.get 0 i32.popcnt");
    {
        let mut config = Config::new();
        config.cache(Arc::new(DirectoryCache::new(&dir)?));
        let engine = Engine::new(&config)?;
        assert_eq!(call(&engine, &Module::new(&engine, &text)?, "f3", 7), 3);
    }
    let modules: Vec<_> = std::fs::read_dir(dir.join("modules"))?.flatten().collect();
    assert_eq!(modules.len(), 1);
    // A new cache object on the same directory (as another process would): a hit.
    let cache = Arc::new(DirectoryCache::new(&dir)?);
    let mut config = Config::new();
    config.cache(cache.clone());
    let engine = Engine::new(&config)?;
    assert_eq!(call(&engine, &Module::new(&engine, &text)?, "f3", 7), 3);
    assert_eq!(cache.stats().module_hits, 1);
    // Damage the entry: it is rejected, recompiled, and replaced.
    let entry = modules[0].path();
    let mut bytes = std::fs::read(&entry)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&entry, &bytes)?;
    assert_eq!(call(&engine, &Module::new(&engine, &text)?, "f3", 7), 3);
    let s = cache.stats();
    assert_eq!(s.rejected, 1, "{s}");
    cache.flush();
    let before = cache.stats();
    assert_eq!(call(&engine, &Module::new(&engine, &text)?, "f3", 7), 3);
    assert_eq!(cache.stats().module_hits, before.module_hits + 1, "entry replaced by a good one");
    // Truncated entries too.
    std::fs::write(&entry, &bytes[..100])?;
    assert_eq!(call(&engine, &Module::new(&engine, &text)?, "f3", 7), 3);
    assert_eq!(cache.stats().rejected, 2);
    Ok(())
}

/// A cache whose module lookups all find the last module stored, as if
/// every module's key collided with it.
#[derive(Default)]
struct CollidingCache {
    last_module: std::sync::Mutex<Option<Arc<[u8]>>>,
    rejected: std::sync::atomic::AtomicU64,
}

impl Cache for CollidingCache {
    fn mac_key(&self) -> Option<[u8; 32]> {
        None
    }
    fn get(&self, kind: CacheKind, _key: &[u8; 32]) -> Option<CacheEntry> {
        match kind {
            CacheKind::Module => self.last_module.lock().unwrap().clone().map(CacheEntry::Bytes),
            CacheKind::Functions => None,
        }
    }
    fn put(&self, kind: CacheKind, _key: &[u8; 32], bytes: Vec<u8>) {
        if kind == CacheKind::Module {
            *self.last_module.lock().unwrap() = Some(bytes.into());
        }
    }
    fn remove(&self, _kind: CacheKind, _key: &[u8; 32]) {}
    fn stats(&self) -> CacheStats {
        CacheStats { rejected: self.rejected.load(std::sync::atomic::Ordering::Relaxed), ..CacheStats::default() }
    }
    fn record(&self, _saved: std::time::Duration, rejected: bool) {
        if rejected {
            self.rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

#[test]
fn an_entry_for_other_module_bytes_is_never_used() -> Result<()> {
    let cache = Arc::new(CollidingCache::default());
    let mut config = Config::new();
    config.cache(cache.clone());
    let engine = Engine::new(&config)?;
    let identity = module_with("local.get 0");
    let popcnt = module_with("local.get 0 i32.popcnt");
    assert_eq!(call(&engine, &Module::new(&engine, &identity)?, "f3", 7), 7);
    assert_eq!(call(&engine, &Module::new(&engine, &popcnt)?, "f3", 7), 3);
    assert_eq!(cache.stats().rejected, 1);
    // Same bytes: the entry is used.
    assert_eq!(call(&engine, &Module::new(&engine, &popcnt)?, "f3", 7), 3);
    assert_eq!(cache.stats().rejected, 1);
    Ok(())
}

#[test]
fn directory_cache_under_concurrent_writers() -> Result<()> {
    let dir = temp_dir("dircache-concurrent");
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let dir = dir.to_path_buf();
            std::thread::spawn(move || -> Result<()> {
                let mut config = Config::new();
                config.cache(Arc::new(DirectoryCache::new(&dir)?));
                let engine = Engine::new(&config)?;
                for k in 0..5 {
                    let text = module_with(&format!("local.get 0 i32.const {} i32.add", k + t % 2));
                    assert_eq!(call(&engine, &Module::new(&engine, &text)?, "f3", 1), 1 + k + t % 2);
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread")?;
    }
    Ok(())
}

#[test]
fn directory_cache_writes_modules_in_the_background_but_never_loses_them() -> Result<()> {
    let dir = temp_dir("dircache-background");
    // A size check after every module write (1/16 of the cap), no eviction.
    let cache = Arc::new(DirectoryCache::new(&dir)?.with_max_bytes(256 << 10));
    // Left over by a writer whose process ended: removed once stale.
    let stale = dir.join("modules").join(".tmp-stale");
    let fresh = dir.join("modules").join(".tmp-fresh");
    std::fs::write(&stale, b"partial")?;
    std::fs::write(&fresh, b"partial")?;
    std::fs::File::options()
        .append(true)
        .open(&stale)?
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))?;
    let mut config = Config::new();
    config.cache(cache.clone());
    let engine = Engine::new(&config)?;
    let text = module_with("local.get 0 i32.clz");
    Module::new(&engine, &text)?;
    // Looked up again at once: the lookup waits for the writer and hits.
    assert_eq!(call(&engine, &Module::new(&engine, &text)?, "f3", 1), 31);
    assert_eq!(cache.stats().module_hits, 1);
    for k in 0..3 {
        Module::new(&engine, module_with(&format!("local.get 0 i32.const {k} i32.sub")))?;
    }
    // Dropping the last handle on the cache waits for the writers.
    drop((engine, config));
    drop(Arc::into_inner(cache).expect("no other handle on the cache"));
    let mut names: Vec<String> = std::fs::read_dir(dir.join("modules"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 5, "{names:?}");
    assert_eq!(names[0], ".tmp-fresh");
    assert!(!stale.exists());
    Ok(())
}

#[test]
fn directory_cache_function_hits_keep_entries_from_eviction() -> Result<()> {
    let dir = temp_dir("dircache-lru");
    let text = module_with("local.get 0 i32.ctz");
    {
        let mut config = Config::new();
        config.cache(Arc::new(DirectoryCache::new(&dir)?));
        let engine = Engine::new(&config)?;
        Module::new(&engine, &text)?;
    }
    // One function pack; make it look two hours old, and drop the module
    // entry so the next compile goes function by function.
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    let mut packs = Vec::new();
    for sub in std::fs::read_dir(dir.join("functions"))?.flatten() {
        for e in std::fs::read_dir(sub.path())?.flatten() {
            std::fs::File::options().append(true).open(e.path())?.set_modified(two_hours_ago)?;
            packs.push(e.path());
        }
    }
    assert_eq!(packs.len(), 1, "{packs:?}");
    for e in std::fs::read_dir(dir.join("modules"))?.flatten() {
        std::fs::remove_file(e.path())?;
    }
    // Every function is a hit, so the pack is not rewritten: the hit
    // itself marks it as recently used.
    let cache = Arc::new(DirectoryCache::new(&dir)?);
    let mut config = Config::new();
    config.cache(cache.clone());
    let engine = Engine::new(&config)?;
    Module::new(&engine, &text)?;
    let s = cache.stats();
    assert_eq!((s.function_hits, s.function_misses), (4, 0), "{s}");
    let modified = std::fs::metadata(&packs[0])?.modified()?;
    assert!(modified > two_hours_ago + std::time::Duration::from_secs(3600), "{modified:?}");
    Ok(())
}

#[test]
fn function_packs_keep_recent_functions_of_other_modules() -> Result<()> {
    // Three modules of one environment compiled in turn: each compile
    // after the first finds the others' functions still in the pack.
    let cache = Arc::new(MemoryCache::new(64 << 20));
    let mut config = Config::new();
    config.cache(cache.clone());
    let engine = Engine::new(&config)?;
    let texts: Vec<String> =
        (0..3).map(|k| module_with(&format!("local.get 0 i32.const {} i32.rotl", k + 1))).collect();
    for t in &texts {
        Module::new(&engine, t)?;
    }
    // Only f3 differs between them. With a data segment added (another
    // module entry, the same environment), every function of each is a hit.
    let before = cache.stats();
    for (k, t) in texts.iter().enumerate() {
        let with_data = t.replacen("(module", &format!("(module (data \"{k}\")"), 1);
        let edited = Module::new(&engine, &with_data)?;
        assert_eq!(call(&engine, &edited, "f3", 1), 1 << (k + 1));
    }
    let after = cache.stats();
    assert_eq!(after.function_misses - before.function_misses, 0, "{after}");
    assert_eq!(after.function_hits - before.function_hits, 12, "{after}");
    Ok(())
}

#[test]
fn memory_cache_respects_its_budget() -> Result<()> {
    let cache = Arc::new(MemoryCache::new(40_000));
    let mut config = Config::new();
    config.cache(cache.clone());
    let engine = Engine::new(&config)?;
    for k in 0..50 {
        Module::new(&engine, module_with(&format!("local.get 0 i32.const {k} i32.add")))?;
        assert!(cache.size() <= 40_000);
    }
    Ok(())
}

/// A module of `n` functions `f0`.. (each adds its own constant), with
/// the constant of each function in `edited` changed.
fn many_functions(n: usize, edited: &[usize]) -> String {
    let mut text = String::from("(module");
    for i in 0..n {
        let c = if edited.contains(&i) { 1000 + i } else { i };
        text.push_str(&format!(
            r#" (func (export "f{i}") (param i32) (result i32) local.get 0 i32.const {c} i32.add)"#
        ));
    }
    text.push(')');
    text
}

/// The function pack files of the directory cache at `dir`: (path, bytes).
fn pack_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir.join("functions")).expect("functions").flatten() {
        for e in std::fs::read_dir(sub.path()).expect("fan-out").flatten() {
            out.push((e.path(), std::fs::read(e.path()).expect("read")));
        }
    }
    out.sort_by_key(|(_, b)| std::cmp::Reverse(b.len()));
    out
}

#[test]
fn edits_write_a_small_recent_pack_until_it_is_merged_into_the_base() -> Result<()> {
    let dir = temp_dir("dircache-recent");
    let compile = |text: &str| -> Result<CacheStats> {
        let cache = Arc::new(DirectoryCache::new(&dir)?);
        let mut config = Config::new();
        config.cache(cache.clone());
        let engine = Engine::new(&config)?;
        let module = Module::new(&engine, text)?;
        assert_eq!(call(&engine, &module, "f3", 1), if text.contains("i32.const 1003") { 1004 } else { 4 });
        drop((module, engine, config));
        cache.flush();
        Ok(cache.stats())
    };
    let n = 40;
    compile(&many_functions(n, &[]))?;
    let packs = pack_files(&dir);
    assert_eq!(packs.len(), 1, "a base pack only");
    let base = packs[0].clone();
    // Each edit (cumulative, as from one build to the next) compiles one
    // function and rewrites only the recent pack, until that would pass a
    // quarter of the base: then the two are merged.
    let mut edited = Vec::new();
    let mut merged_after = None;
    for k in 0..n {
        edited.push(k);
        let s = compile(&many_functions(n, &edited))?;
        assert_eq!((s.function_hits, s.function_misses), (n as u64 - 1, 1), "edit {k}: {s}");
        let packs = pack_files(&dir);
        if packs.len() == 1 {
            merged_after = Some(k);
            assert_ne!(packs[0].1, base.1, "a new base");
            break;
        }
        assert_eq!(packs.len(), 2, "edit {k}");
        assert_eq!(packs[0], base, "edit {k}: the base is untouched");
        assert!(packs[1].1.len() * 4 <= base.1.len() + 4096, "edit {k}: the recent pack stays small");
    }
    let merged_after = merged_after.expect("merged at some point");
    assert!(merged_after >= 3, "merged after {merged_after} edits");
    // After the merge, everything is still found; an edit back to an
    // earlier version (a module never compiled before) finds that version
    // too, kept beside the new base's own functions.
    let s = compile(&many_functions(n, &edited[1..]))?;
    assert_eq!((s.function_hits, s.function_misses), (n as u64, 0), "{s}");
    Ok(())
}

#[test]
fn a_damaged_recent_pack_is_refused_and_the_base_still_used() -> Result<()> {
    let dir = temp_dir("dircache-recent-damaged");
    let compile = |text: &str| -> Result<CacheStats> {
        let cache = Arc::new(DirectoryCache::new(&dir)?);
        let mut config = Config::new();
        config.cache(cache.clone());
        let engine = Engine::new(&config)?;
        let module = Module::new(&engine, text)?;
        assert_eq!(call(&engine, &module, "f5", 1), if text.contains("i32.const 1005") { 1006 } else { 6 });
        drop((module, engine, config));
        cache.flush();
        Ok(cache.stats())
    };
    compile(&many_functions(30, &[]))?;
    let edited = many_functions(30, &[5]);
    compile(&edited)?;
    let packs = pack_files(&dir);
    assert_eq!(packs.len(), 2);
    let (recent, mut bytes) = packs[1].clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    std::fs::write(&recent, &bytes)?;
    for e in std::fs::read_dir(dir.join("modules"))?.flatten() {
        std::fs::remove_file(e.path())?;
    }
    let s = compile(&edited)?;
    assert_eq!((s.function_hits, s.function_misses, s.rejected), (29, 1, 1), "{s}");
    Ok(())
}

#[test]
fn a_cached_body_invalid_in_its_new_module_is_refused() -> Result<()> {
    // `data.drop 0` is valid only in a module with a data segment 0. Both
    // modules have one environment (data segments are not part of it) and
    // the same bodies, so the second finds every function in the cache,
    // and must still validate them.
    let cache = Arc::new(MemoryCache::new(64 << 20));
    let mut config = Config::new();
    config.cache(cache.clone());
    let engine = Engine::new(&config)?;
    let f = r#"(func (export "f") data.drop 0) (func (export "g") (param i32) (result i32) local.get 0)"#;
    Module::new(&engine, format!(r#"(module (memory 1) {f} (data "x"))"#))?;
    let err = Module::new(&engine, format!("(module (memory 1) {f})")).unwrap_err();
    assert!(format!("{err:#}").contains("data"), "{err:#}");
    let s = cache.stats();
    assert_eq!((s.function_hits, s.function_misses), (2, 2), "found in the cache, then refused: {s}");
    Ok(())
}

#[test]
fn functions_that_moved_are_found_by_key() -> Result<()> {
    // A function inserted first (not exported, so the environment stays
    // the same): every other function moves one place, misses the base's
    // entry at its new position, and is found by its key.
    let cache = Arc::new(MemoryCache::new(64 << 20));
    let mut config = Config::new();
    config.cache(cache.clone());
    let engine = Engine::new(&config)?;
    let text = many_functions(20, &[]);
    Module::new(&engine, &text)?;
    let before = cache.stats();
    let moved =
        Module::new(&engine, text.replacen("(module", "(module (func (param i32) (result i32) i32.const 99)", 1))?;
    let after = cache.stats();
    assert_eq!(
        (after.function_hits - before.function_hits, after.function_misses - before.function_misses),
        (20, 1),
        "{after}"
    );
    assert_eq!(call(&engine, &moved, "f7", 1), 8);
    Ok(())
}
