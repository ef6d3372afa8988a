//! Untrusted bytes never become native code: precompiled artifacts are
//! not WebAssembly, and the directory cache refuses entries it did not
//! seal, symbolic links, and directories others can write.

use kiln::__private_testing::reseal_entry;
use kiln::*;
use kiln_environ::{EntryKind, PublicSeal, reseal};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const ADD_ONE: &str = r#"(module (func (export "f") (param i32) (result i32) local.get 0 i32.const 1 i32.add))"#;
const TIMES_TWO: &str = r#"(module (func (export "f") (param i32) (result i32) local.get 0 i32.const 2 i32.mul))"#;

/// A fresh empty directory (mode 0700) under the system temp dir, removed
/// afterwards.
fn temp_dir(name: &str) -> crate::scratch::ScratchDir {
    crate::scratch::ScratchDir::new("sec", name)
}

fn call_f(module: &Module, arg: i32) -> i32 {
    let mut store = Store::new(module.engine(), ());
    let i = Instance::new(&mut store, module, &[]).expect("instantiate");
    i.get_typed_func::<i32, i32>(&mut store, "f").expect("f").call(&mut store, arg).expect("call")
}

fn engine_with(cache: Arc<dyn Cache>) -> Engine {
    let mut config = Config::new();
    config.cache(cache);
    Engine::new(&config).expect("engine")
}

/// The only module entry in the cache at `root`.
fn module_entry(root: &Path) -> PathBuf {
    let entries: Vec<PathBuf> =
        std::fs::read_dir(root.join("modules")).expect("modules").flatten().map(|e| e.path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

/// Every function pack file in the cache at `root`.
fn function_packs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(root.join("functions")).expect("functions").flatten() {
        out.extend(std::fs::read_dir(d.path()).expect("fan-out dir").flatten().map(|e| e.path()));
    }
    out
}

/// The cache key a cache file is named after.
fn key_of(path: &Path) -> [u8; 32] {
    let name = path.file_name().and_then(|n| n.to_str()).expect("name");
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&name[2 * i..2 * i + 2], 16).expect("hex");
    }
    key
}

/// Rewrites `bytes`' last text bytes (the end of the code) with `ud2`-like
/// garbage, as an attacker patching code would.
fn patch_code(bytes: &mut [u8]) {
    let n = bytes.len();
    for b in &mut bytes[n - 16..] {
        *b = 0x0f;
    }
}

#[test]
fn artifacts_are_not_webassembly() -> Result<()> {
    let engine = Engine::default();
    let artifact = Module::new(&engine, ADD_ONE)?.serialize()?;
    assert!(Module::is_precompiled(&artifact));
    assert!(!Module::is_precompiled(b"\0asm\x01\0\0\0"));
    for err in [Module::new(&engine, &artifact).unwrap_err(), Module::from_binary(&engine, &artifact).unwrap_err()] {
        let msg = format!("{err:#}");
        assert!(
            msg.contains("precompiled") && msg.contains("deserialize") && msg.contains("--allow-precompiled"),
            "{msg}"
        );
    }
    // Whatever the file is called.
    let dir = temp_dir("not-wasm");
    for name in ["evil.cwasm", "innocent.wasm", "innocent.wat"] {
        let path = dir.join(name);
        std::fs::write(&path, &artifact)?;
        let msg = format!("{:#}", Module::from_file(&engine, &path).unwrap_err());
        assert!(msg.contains(name) && msg.contains("--allow-precompiled"), "{msg}");
    }
    Ok(())
}

#[test]
fn a_patched_artifact_passes_only_the_public_checksum() -> Result<()> {
    // The attack: overwrite code and recompute the (public) checksum. It
    // is an intact artifact by every check Kiln can make, which is why
    // loading one is `unsafe` and `Module::new` refuses it.
    let engine = Engine::default();
    let mut artifact = Module::new(&engine, ADD_ONE)?.serialize()?;
    patch_code(&mut artifact);
    assert!(Module::check_precompiled(&engine, &artifact).is_err(), "damage is detected");
    assert!(reseal(&mut artifact, &PublicSeal::artifact()));
    Module::check_precompiled(&engine, &artifact)?;
    assert!(Module::new(&engine, &artifact).is_err());
    Ok(())
}

#[test]
fn cache_files_are_private() -> Result<()> {
    let scratch = temp_dir("private");
    let root = scratch.join("cache");
    let engine = engine_with(Arc::new(DirectoryCache::new(&root)?));
    call_f(&Module::new(&engine, ADD_ONE)?, 1);
    engine.cache().expect("cache").flush();
    let mode = |p: &Path| std::fs::symlink_metadata(p).expect("stat").mode() & 0o777;
    for dir in [root.clone(), root.join("modules"), root.join("functions")] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    assert_eq!(mode(&root.join("mac-key")), 0o600);
    assert_eq!(std::fs::read(root.join("mac-key"))?.len(), 32);
    let entries: Vec<PathBuf> = std::iter::once(module_entry(&root)).chain(function_packs(&root)).collect();
    assert!(entries.len() >= 2, "{entries:?}");
    for e in &entries {
        assert_eq!(mode(e), 0o600, "{}", e.display());
        assert_eq!(mode(e.parent().expect("parent")), 0o700, "{}", e.display());
    }
    // Another cache object on the same directory shares the key.
    let again = DirectoryCache::new(&root)?;
    assert_eq!(again.mac_key(), engine.cache().expect("cache").mac_key());
    let other = temp_dir("private-other");
    assert_ne!(DirectoryCache::new(&other)?.mac_key(), again.mac_key());
    Ok(())
}

/// Fills a cache at a new directory with `ADD_ONE`, then rewrites its
/// module entry with `rewrite`, and compiles again through a new cache
/// object (as a new process would). Returns the new cache's stats.
fn after_rewriting_the_module_entry(name: &str, rewrite: impl FnOnce(&Path, [u8; 32])) -> Result<CacheStats> {
    let root = temp_dir(name);
    {
        let engine = engine_with(Arc::new(DirectoryCache::new(&root)?));
        assert_eq!(call_f(&Module::new(&engine, ADD_ONE)?, 41), 42);
    }
    let entry = module_entry(&root);
    rewrite(&entry, key_of(&entry));
    let cache = Arc::new(DirectoryCache::new(&root)?);
    let engine = engine_with(cache.clone());
    assert_eq!(call_f(&Module::new(&engine, ADD_ONE)?, 41), 42, "the forged code did not run");
    cache.flush();
    let stats = cache.stats();
    // Replaced: the entry now on disk is a private regular file that a new
    // cache object hits.
    let md = std::fs::symlink_metadata(&entry)?;
    assert!(md.is_file() && md.mode() & 0o777 == 0o600, "{md:?}");
    let check = Arc::new(DirectoryCache::new(&root)?);
    let engine = engine_with(check.clone());
    assert_eq!(call_f(&Module::new(&engine, ADD_ONE)?, 1), 2);
    assert_eq!((check.stats().module_hits, check.stats().rejected), (1, 0), "{}", check.stats());
    Ok(stats)
}

#[test]
fn an_entry_sealed_with_another_key_is_refused_and_replaced() -> Result<()> {
    // Patched code, sealed under a key of the attacker's own, or under the
    // public key (what anyone can compute).
    let attacker_key = [0x5a; 32];
    for (name, key) in [("other-key", Some(attacker_key)), ("public-key", None)] {
        let stats = after_rewriting_the_module_entry(name, |entry, cache_key| {
            let mut bytes = std::fs::read(entry).expect("read");
            patch_code(&mut bytes);
            assert!(reseal_entry(&mut bytes, key.as_ref(), EntryKind::Module, &cache_key));
            std::fs::write(entry, &bytes).expect("write");
        })?;
        assert_eq!((stats.module_hits, stats.rejected), (1, 1), "{name}: {stats}");
    }
    Ok(())
}

#[test]
fn a_valid_entry_moved_to_another_key_is_refused() -> Result<()> {
    // A genuine entry of this cache (of TIMES_TWO), filed under ADD_ONE's key.
    let stats = after_rewriting_the_module_entry("moved", |entry, _| {
        let root = entry.parent().and_then(Path::parent).expect("root");
        let engine = engine_with(Arc::new(DirectoryCache::new(root).expect("cache")));
        assert_eq!(call_f(&Module::new(&engine, TIMES_TWO).expect("compile"), 21), 42);
        engine.cache().expect("cache").flush();
        let other =
            std::fs::read_dir(root.join("modules")).expect("modules").flatten().map(|e| e.path()).find(|p| p != entry);
        std::fs::copy(other.expect("second entry"), entry).expect("copy");
    })?;
    assert_eq!(stats.rejected, 1, "{stats}");
    Ok(())
}

/// Compiles ADD_ONE into a fresh cache at `root`, removes its module
/// entry (so the next compile goes function by function), lets `rewrite`
/// change the one function pack, then compiles ADD_ONE again through a new
/// cache object and checks the code still works. Returns that cache's
/// counters.
fn after_rewriting_the_function_pack(name: &str, rewrite: impl FnOnce(&Path, [u8; 32])) -> Result<CacheStats> {
    let root = temp_dir(name);
    {
        let engine = engine_with(Arc::new(DirectoryCache::new(&root)?));
        call_f(&Module::new(&engine, ADD_ONE)?, 1);
    }
    std::fs::remove_file(module_entry(&root))?;
    let packs = function_packs(&root);
    assert_eq!(packs.len(), 1, "{packs:?}");
    rewrite(&packs[0], key_of(&packs[0]));
    let cache = Arc::new(DirectoryCache::new(&root)?);
    let engine = engine_with(cache.clone());
    assert_eq!(call_f(&Module::new(&engine, ADD_ONE)?, 41), 42);
    Ok(cache.stats())
}

#[test]
fn tampered_function_packs_are_refused() -> Result<()> {
    // Patched code: left as is (the tag no longer matches), or re-sealed
    // under a key of the attacker's own, or under the public key.
    for (name, reseal_with) in
        [("pack-flipped", None), ("pack-other-key", Some(Some([7u8; 32]))), ("pack-public-key", Some(None))]
    {
        let stats = after_rewriting_the_function_pack(name, |pack, key| {
            let mut bytes = std::fs::read(pack).expect("read");
            patch_code(&mut bytes);
            if let Some(secret) = reseal_with {
                assert!(reseal_entry(&mut bytes, secret.as_ref(), EntryKind::Functions, &key));
            }
            std::fs::write(pack, &bytes).expect("write");
        })?;
        assert_eq!((stats.function_hits, stats.function_misses, stats.rejected), (0, 1, 1), "{name}: {stats}");
    }
    // Untouched, for comparison: a hit.
    let stats = after_rewriting_the_function_pack("pack-intact", |_, _| {})?;
    assert_eq!((stats.function_hits, stats.function_misses, stats.rejected), (1, 0, 0), "{stats}");
    Ok(())
}

#[test]
fn a_valid_function_pack_moved_to_another_key_is_refused() -> Result<()> {
    // A genuine pack of this cache, of a module with another environment
    // (a memory), filed under ADD_ONE's pack key.
    const WITH_MEMORY: &str =
        r#"(module (memory 1) (func (export "f") (param i32) (result i32) local.get 0 i32.const 1 i32.add))"#;
    let stats = after_rewriting_the_function_pack("pack-moved", |pack, _| {
        let root = pack.ancestors().nth(3).expect("root");
        let engine = engine_with(Arc::new(DirectoryCache::new(root).expect("cache")));
        assert_eq!(call_f(&Module::new(&engine, WITH_MEMORY).expect("compile"), 1), 2);
        engine.cache().expect("cache").flush();
        let other = function_packs(root).into_iter().find(|p| p != pack);
        std::fs::copy(other.expect("second pack"), pack).expect("copy");
    })?;
    assert_eq!((stats.function_hits, stats.rejected), (0, 1), "{stats}");
    Ok(())
}

#[test]
fn a_symlinked_entry_is_refused_and_its_target_untouched() -> Result<()> {
    let scratch = temp_dir("symlink-target");
    let outside = scratch.join("target");
    let mut target_state = None;
    let stats = after_rewriting_the_module_entry("symlink", |entry, _| {
        // The target holds the genuine entry: following the link would load it.
        std::fs::copy(entry, &outside).expect("copy");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
        std::fs::File::options().write(true).open(&outside).expect("open").set_modified(old).expect("set mtime");
        std::fs::remove_file(entry).expect("remove");
        std::os::unix::fs::symlink(&outside, entry).expect("symlink");
        target_state = Some((
            std::fs::read(&outside).expect("read"),
            std::fs::metadata(&outside).expect("stat").modified().expect("mtime"),
        ));
    })?;
    assert_eq!((stats.module_hits, stats.rejected), (0, 1), "{stats}");
    let (bytes, mtime) = target_state.expect("rewritten");
    assert_eq!(std::fs::read(&outside)?, bytes, "target unchanged");
    assert_eq!(std::fs::metadata(&outside)?.modified()?, mtime, "target's mtime unchanged");
    Ok(())
}

#[test]
fn a_fifo_entry_does_not_block() -> Result<()> {
    let stats = after_rewriting_the_module_entry("fifo", |entry, _| {
        std::fs::remove_file(entry).expect("remove");
        let made = std::process::Command::new("mkfifo").arg(entry).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    })?;
    assert_eq!(stats.rejected, 1, "{stats}");
    Ok(())
}

#[test]
fn a_shared_entry_file_is_refused() -> Result<()> {
    // Writable by others: its code could change after Kiln checked it.
    let stats = after_rewriting_the_module_entry("shared-file", |entry, _| {
        std::fs::set_permissions(entry, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    })?;
    assert_eq!((stats.module_hits, stats.rejected), (0, 1), "{stats}");
    Ok(())
}

#[test]
fn directories_others_can_write_are_not_used() -> Result<()> {
    for (what, mode) in [("root", 0o777), ("root", 0o775), ("modules", 0o757)] {
        let root = temp_dir("writable");
        DirectoryCache::new(&root)?;
        let dir = if what == "root" { root.to_path_buf() } else { root.join(what) };
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
        let err = DirectoryCache::new(&root).err().expect("refused");
        assert!(err.to_string().contains("writable by group or others"), "{what} {mode:o}: {err}");
    }
    // Readable by others is fine (an old cache made with 0755).
    let root = temp_dir("readable");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
    DirectoryCache::new(&root)?;
    // A key file others can read is refused.
    std::fs::set_permissions(root.join("mac-key"), std::fs::Permissions::from_mode(0o644))?;
    let err = DirectoryCache::new(&root).err().expect("refused");
    assert!(err.to_string().contains("mac-key"), "{err}");
    Ok(())
}

#[test]
fn a_directory_owned_by_another_user_is_not_used() -> Result<()> {
    let me = std::fs::metadata(temp_dir("me"))?.uid();
    // As root, make one; otherwise use one that exists: `/`.
    let scratch = temp_dir("foreign");
    let foreign = scratch.join("cache");
    std::fs::create_dir(&foreign)?;
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o700))?;
    let dir = match std::os::unix::fs::chown(&foreign, Some(me.wrapping_add(4242)), None) {
        Ok(()) => foreign,
        Err(_) => PathBuf::from("/"),
    };
    assert_ne!(std::fs::metadata(&dir)?.uid(), me, "{}", dir.display());
    let err = DirectoryCache::new(&dir).err().expect("refused");
    assert!(err.to_string().contains("owned by uid"), "{err}");
    Ok(())
}
