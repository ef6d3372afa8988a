//! A cache in a directory, shared by processes.
//!
//! Layout: `<root>/modules/<hex key>`, `<root>/functions/<2 hex>/<hex key>`
//! (function packs) and `<root>/mac-key`, the cache's secret key (32
//! random bytes, created once). Writes go to a temporary file in the same
//! directory and are renamed into place, so readers never see a partial
//! entry and concurrent writers of the same key are harmless. A hit
//! refreshes the file's modification time; when the total size passes the
//! cap, the least recently used files are removed.
//!
//! Entries are machine code, so the directory is treated as hostile
//! ground: see "Compilation caches and artifacts" in
//! docs/ARCHITECTURE.md for the threat model. Directories are created
//! `0700` and files `0600`; a directory owned by another user or writable
//! by group or others is refused ([`DirectoryCache::new`] fails); entries
//! are opened without following symbolic links and used only if they are
//! regular files owned by this user and writable by nobody else; and Kiln
//! loads an entry only if its tag verifies under the key
//! ([`Cache::mac_key`]).
//!
//! Entries (tens of MB for a large module, module or pack) are written by
//! a background thread, so a compile does not wait for the disk, whose
//! write latency varies widely (bench/DESIGN-NOTES.md). A lookup of a key still being written waits for that write;
//! [`Cache::flush`] and dropping the cache wait for all of them.

use super::{Cache, CacheEntry, CacheKind, CacheStats, Counters};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// A directory of cache entries.
///
/// Entries are stored in the background; a process that ends without
/// dropping the cache or calling [`Cache::flush`] (for example through
/// `std::process::exit`) may lose the last ones, which later lookups then
/// miss.
pub struct DirectoryCache {
    files: Arc<Files>,
    /// Entries being written.
    writing: Mutex<Vec<Writer>>,
}

/// The background writer of an entry: `(kind, key, thread)`.
type Writer = (CacheKind, [u8; 32], JoinHandle<()>);

/// The directory and its bookkeeping, shared with background writers.
struct Files {
    root: PathBuf,
    /// The effective user id that must own every directory and entry.
    uid: u32,
    /// The secret key entries are sealed with.
    mac_key: [u8; 32],
    max_bytes: AtomicU64,
    counters: Counters,
    /// Bytes written since the last size check.
    since_check: AtomicU64,
    evicting: Mutex<()>,
}

/// Temporary files older than this are left over from a writer that
/// never finished (its process ended), and are removed.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Default size cap: 2 GiB.
const DEFAULT_MAX_BYTES: u64 = 2 << 30;

impl DirectoryCache {
    /// A cache rooted at `root` (created if missing, with mode `0700`) with
    /// the default size cap. Reads the cache's secret key from
    /// `root/mac-key`, or creates it (32 random bytes, mode `0600`).
    ///
    /// # Errors
    ///
    /// The directory cannot be created; it, or its `modules` or
    /// `functions` directory, is not a directory owned by this process's
    /// effective user, or is writable by group or others (so someone else
    /// could plant entries); the key file cannot be created or read, or is
    /// not a regular file of 32 bytes owned by this user and private to it.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<DirectoryCache> {
        let root = root.into();
        let uid = rustix::process::geteuid().as_raw();
        create_private_dir(&root)?;
        check_private_dir(&root, uid, true)?;
        for sub in ["modules", "functions"] {
            let dir = root.join(sub);
            create_private_dir(&dir)?;
            check_private_dir(&dir, uid, false)?;
        }
        let mac_key = load_or_create_key(&root, uid)?;
        Ok(DirectoryCache {
            files: Arc::new(Files {
                root,
                uid,
                mac_key,
                max_bytes: AtomicU64::new(DEFAULT_MAX_BYTES),
                counters: Counters::default(),
                since_check: AtomicU64::new(0),
                evicting: Mutex::new(()),
            }),
            writing: Mutex::new(Vec::new()),
        })
    }

    /// The default location: `$KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`,
    /// else `$HOME/.cache/kiln`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("KILN_CACHE_DIR") {
            return Some(d.into());
        }
        if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(d).join("kiln"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("kiln"))
    }

    /// A cache at [`DirectoryCache::default_dir`].
    ///
    /// # Errors
    ///
    /// No default location can be determined, or as [`DirectoryCache::new`].
    pub fn at_default_location() -> io::Result<DirectoryCache> {
        let dir = Self::default_dir()
            .ok_or_else(|| std::io::Error::other("no cache directory: set KILN_CACHE_DIR or HOME"))?;
        DirectoryCache::new(dir)
    }

    /// Sets the size cap in bytes (entries beyond it are evicted, least
    /// recently used first).
    pub fn with_max_bytes(self, max_bytes: u64) -> Self {
        self.files.max_bytes.store(max_bytes, Ordering::Relaxed);
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.files.root
    }

    /// Total bytes of entries on disk.
    pub fn disk_usage(&self) -> u64 {
        entries(&self.files.root, false).iter().map(|(_, len, _)| len).sum()
    }

    /// Removes every entry.
    ///
    /// # Errors
    ///
    /// A file could not be removed.
    pub fn clear(&self) -> io::Result<()> {
        self.flush();
        for (p, _, _) in entries(&self.files.root, false) {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Waits for the writers of the entry of `kind` under `key` (all
    /// writers if `None`).
    fn wait_for_writers(&self, entry: Option<(CacheKind, &[u8; 32])>) {
        let done: Vec<JoinHandle<()>> = {
            let mut w = self.writing.lock().unwrap_or_else(|e| e.into_inner());
            let (matching, rest) = std::mem::take(&mut *w)
                .into_iter()
                .partition(|(kind, k, _)| entry.is_none_or(|(ek, key)| *kind == ek && k == key));
            *w = rest;
            matching.into_iter().map(|(_, _, h)| h).collect()
        };
        for h in done {
            // A writer that panicked wrote nothing: the entry is a miss.
            let _ = h.join();
        }
    }
}

impl Drop for DirectoryCache {
    fn drop(&mut self) {
        self.wait_for_writers(None);
    }
}

impl Files {
    fn path(&self, kind: CacheKind, key: &[u8; 32]) -> PathBuf {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        match kind {
            CacheKind::Module => self.root.join("modules").join(hex),
            CacheKind::Functions => self.root.join("functions").join(&hex[..2]).join(hex),
        }
    }

    /// Writes an entry to a temporary file and renames it into place.
    fn write(&self, kind: CacheKind, key: &[u8; 32], bytes: &[u8]) {
        let path = self.path(kind, key);
        let Some(dir) = path.parent() else { return };
        if create_private_dir(dir).is_err() {
            return;
        }
        let tmp = temp_path(dir);
        let written = (|| -> io::Result<()> {
            let mut f = create_private_file(&tmp)?;
            f.write_all(bytes)?;
            f.flush()?;
            std::fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        self.counters.written(bytes.len());
        self.maybe_evict(bytes.len() as u64);
    }

    fn maybe_evict(&self, just_wrote: u64) {
        let since = self.since_check.fetch_add(just_wrote, Ordering::Relaxed) + just_wrote;
        let max_bytes = self.max_bytes.load(Ordering::Relaxed);
        if since < max_bytes / 16 {
            return;
        }
        let Ok(_guard) = self.evicting.try_lock() else { return };
        self.since_check.store(0, Ordering::Relaxed);
        let mut all = entries(&self.root, true);
        let mut total: u64 = all.iter().map(|(_, len, _)| len).sum();
        if total <= max_bytes {
            return;
        }
        all.sort_by_key(|(_, _, mtime)| *mtime);
        for (p, len, _) in all {
            if total <= max_bytes * 9 / 10 {
                break;
            }
            if std::fs::remove_file(&p).is_ok() {
                total = total.saturating_sub(len);
            }
        }
    }
}

/// The name of the cache's secret key file in its root directory.
const KEY_FILE: &str = "mac-key";

/// `O_NOFOLLOW`: a symbolic link in the last component is an error.
/// `O_NONBLOCK`: opening a FIFO planted as an entry does not block.
const OPEN_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;

/// Creates `dir` and any missing parents with mode `0700`.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Checks that `dir` is a directory owned by `uid` that nobody else can
/// write (following a symbolic link only for the root, which the user
/// names).
fn check_private_dir(dir: &Path, uid: u32, follow: bool) -> io::Result<()> {
    let md = if follow { std::fs::metadata(dir)? } else { std::fs::symlink_metadata(dir)? };
    let refuse =
        |why: String| Err(io::Error::new(io::ErrorKind::PermissionDenied, format!("{}: {why}", dir.display())));
    if !md.is_dir() {
        return refuse("not a directory".into());
    }
    if md.uid() != uid {
        return refuse(format!(
            "owned by uid {}, not by this user (uid {uid}), so it is not trusted as a cache",
            md.uid()
        ));
    }
    if md.mode() & 0o022 != 0 {
        return refuse(format!(
            "writable by group or others (mode {:04o}), so it is not trusted as a cache; `chmod go-w` it to use it",
            md.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Opens the regular file `path` for reading without following a symbolic
/// link, and checks that it is owned by `uid` and writable by nobody else
/// (so that its contents cannot change after Kiln has checked them).
fn open_entry(path: &Path, uid: u32) -> io::Result<(std::fs::File, std::fs::Metadata)> {
    let f = std::fs::File::options().read(true).custom_flags(OPEN_FLAGS).open(path)?;
    let md = f.metadata()?;
    if !md.is_file() || md.uid() != uid || md.mode() & 0o022 != 0 {
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, "not a private regular file"));
    }
    Ok((f, md))
}

/// Creates `path`, which must not exist, with mode `0600`.
fn create_private_file(path: &Path) -> io::Result<std::fs::File> {
    std::fs::File::options().write(true).create_new(true).mode(0o600).custom_flags(OPEN_FLAGS).open(path)
}

/// A fresh temporary file name in `dir`.
fn temp_path(dir: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    dir.join(format!(
        ".tmp-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
    ))
}

/// Reads the cache's key from `root`, creating it first if there is none.
/// A new key is written to a temporary file and hard-linked into place,
/// so concurrent creators agree on whichever link came first.
fn load_or_create_key(root: &Path, uid: u32) -> io::Result<[u8; 32]> {
    let path = root.join(KEY_FILE);
    match read_key(&path, uid) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    let mut key = [0u8; 32];
    let mut filled = 0;
    while filled < key.len() {
        filled += rustix::rand::getrandom(&mut key[filled..], rustix::rand::GetRandomFlags::empty())
            .map_err(io::Error::from)?;
    }
    let tmp = temp_path(root);
    let linked = (|| -> io::Result<()> {
        create_private_file(&tmp)?.write_all(&key)?;
        match std::fs::hard_link(&tmp, &path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    linked?;
    read_key(&path, uid)
}

/// Reads a key file: a regular file of exactly 32 bytes, owned by `uid`
/// and accessible to nobody else.
fn read_key(path: &Path, uid: u32) -> io::Result<[u8; 32]> {
    let (mut f, md) = open_entry(path, uid).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => e,
        _ => io::Error::new(e.kind(), format!("{}: cannot use as the cache key: {e}", path.display())),
    })?;
    if md.mode() & 0o077 != 0 || md.len() != 32 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{}: the cache key must be 32 bytes readable only by its owner (mode 0600)", path.display()),
        ));
    }
    let mut key = [0u8; 32];
    f.read_exact(&mut key)?;
    Ok(key)
}

/// Whether a file was last modified more than `age` ago.
fn older_than(md: &std::fs::Metadata, age: Duration) -> bool {
    md.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|a| a > age)
}

/// Every file under `root`'s entry directories, with its metadata.
fn files(root: &Path) -> Vec<(std::fs::DirEntry, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("modules"), root.join("functions")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e, md));
            }
        }
    }
    out
}

/// Every entry file under `root`: (path, length, modification time).
/// With `remove_stale_temps`, temporary files older than
/// [`STALE_TEMP_AGE`] (left by writers that never finished) are removed
/// on the way.
fn entries(root: &Path, remove_stale_temps: bool) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    for (e, md) in files(root) {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') {
            out.push((e.path(), md.len(), md.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        } else if remove_stale_temps && name.starts_with(".tmp-") && older_than(&md, STALE_TEMP_AGE) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    out
}

impl Cache for DirectoryCache {
    fn mac_key(&self) -> Option<[u8; 32]> {
        Some(self.files.mac_key)
    }

    fn get(&self, kind: CacheKind, key: &[u8; 32]) -> Option<CacheEntry> {
        let files = &self.files;
        let path = files.path(kind, key);
        self.wait_for_writers(Some((kind, key)));
        let found = open_entry(&path, files.uid).map(|(f, md)| {
            // Refresh the modification time: it orders eviction.
            let _ = f.set_modified(SystemTime::now());
            (CacheEntry::File(f), md.len())
        });
        match found {
            Ok((entry, len)) => {
                files.counters.lookup(kind, Some(usize::try_from(len).unwrap_or(usize::MAX)));
                Some(entry)
            }
            Err(e) => {
                files.counters.lookup(kind, None);
                if e.kind() != io::ErrorKind::NotFound {
                    // A symbolic link, a foreign or shared file, a FIFO:
                    // never used; removed so a fresh entry replaces it.
                    files.counters.record(Duration::ZERO, true);
                    let _ = std::fs::remove_file(&path);
                }
                None
            }
        }
    }

    fn put(&self, kind: CacheKind, key: &[u8; 32], bytes: Vec<u8>) {
        let (files, key_copy) = (self.files.clone(), *key);
        let spawned = std::thread::Builder::new()
            .name("kiln-cache-writer".into())
            .spawn(move || files.write(kind, &key_copy, &bytes));
        // Without a thread to be had, the entry is simply not stored.
        if let Ok(h) = spawned {
            self.writing.lock().unwrap_or_else(|e| e.into_inner()).push((kind, *key, h));
        }
    }

    fn flush(&self) {
        self.wait_for_writers(None);
    }

    fn remove(&self, kind: CacheKind, key: &[u8; 32]) {
        self.wait_for_writers(Some((kind, key)));
        let _ = std::fs::remove_file(self.files.path(kind, key));
    }

    fn stats(&self) -> CacheStats {
        self.files.counters.snapshot()
    }

    fn record(&self, saved: Duration, rejected: bool) {
        self.files.counters.record(saved, rejected);
    }

    fn record_functions(&self, hits: u64, misses: u64) {
        self.files.counters.functions(hits, misses);
    }
}
