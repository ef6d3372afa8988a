//! A cache in a directory, shared by processes.
//!
//! Layout: `<root>/modules/<hex key>` and `<root>/functions/<2 hex>/<hex key>`.
//! Writes go to a temporary file in the same directory and are renamed into
//! place, so readers never see a partial entry and concurrent writers of the
//! same key are harmless. A hit refreshes the file's modification time (a
//! function entry's at most once an hour); when the total size passes the
//! cap, the least recently used files are removed.
//!
//! Module entries (tens of MB for a large module) are written by a
//! background thread, so a compile does not wait for the disk: writing
//! 90 MB into the page cache took anywhere from 20 to 430 ms on the test
//! machine. A lookup of a key still being written waits for that write;
//! [`Cache::flush`] and dropping the cache wait for all of them.

use super::{Cache, CacheEntry, CacheKind, CacheStats, Counters};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// A directory of cache entries.
///
/// Module entries are stored in the background; a process that ends
/// without dropping the cache or calling [`Cache::flush`] (for example
/// through `std::process::exit`) may lose the last ones, which later
/// lookups then miss.
pub struct DirectoryCache {
    files: Arc<Files>,
    /// Module entries being written: `(key, writer)`.
    writing: Mutex<Vec<([u8; 32], JoinHandle<()>)>>,
}

/// The directory and its bookkeeping, shared with background writers.
struct Files {
    root: PathBuf,
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
    /// A cache rooted at `root` (created if missing) with the default size cap.
    ///
    /// # Errors
    ///
    /// The directory cannot be created.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<DirectoryCache> {
        let root = root.into();
        std::fs::create_dir_all(root.join("modules"))?;
        std::fs::create_dir_all(root.join("functions"))?;
        Ok(DirectoryCache {
            files: Arc::new(Files {
                root,
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
    /// No default location can be determined, or it cannot be created.
    pub fn at_default_location() -> std::io::Result<DirectoryCache> {
        let dir = Self::default_dir().ok_or_else(|| std::io::Error::other("no cache directory: set KILN_CACHE_DIR or HOME"))?;
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
    pub fn clear(&self) -> std::io::Result<()> {
        self.flush();
        for (p, _, _) in entries(&self.files.root, false) {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Waits for the writers of `key` (all writers if `None`).
    fn wait_for_writers(&self, key: Option<&[u8; 32]>) {
        let done: Vec<JoinHandle<()>> = {
            let mut w = self.writing.lock().unwrap_or_else(|e| e.into_inner());
            let (matching, rest) = std::mem::take(&mut *w).into_iter().partition(|(k, _)| key.is_none_or(|key| k == key));
            *w = rest;
            matching.into_iter().map(|(_, h)| h).collect()
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
            CacheKind::Function => self.root.join("functions").join(&hex[..2]).join(hex),
        }
    }

    /// Writes an entry to a temporary file and renames it into place.
    fn write(&self, kind: CacheKind, key: &[u8; 32], bytes: &[u8]) {
        let path = self.path(kind, key);
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = dir.join(format!(
            ".tmp-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
        ));
        let written = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
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

/// A function entry's modification time is refreshed by a hit only when
/// it is older than this: eviction then sees which functions are still in
/// use, without a system call per hit for the tens of thousands of
/// functions a large module's recompile reads.
const FUNCTION_REFRESH_AGE: Duration = Duration::from_secs(3600);

/// Reads a function entry, refreshing its modification time if stale.
fn read_function_entry(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let md = f.metadata()?;
    if older_than(&md, FUNCTION_REFRESH_AGE) {
        let _ = f.set_modified(SystemTime::now());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(md.len()).unwrap_or(0));
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
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
    fn get(&self, kind: CacheKind, key: &[u8; 32]) -> Option<CacheEntry> {
        let files = &self.files;
        let path = files.path(kind, key);
        let found = match kind {
            CacheKind::Module => {
                self.wait_for_writers(Some(key));
                std::fs::metadata(&path).ok().filter(|m| m.is_file()).map(|m| m.len() as usize)
            }
            CacheKind::Function => None,
        };
        match (kind, found) {
            (CacheKind::Module, Some(len)) => {
                // Refresh the modification time: it orders eviction.
                if let Ok(f) = std::fs::File::options().append(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                files.counters.lookup(kind, Some(len));
                Some(CacheEntry::File(path))
            }
            (CacheKind::Module, None) => {
                files.counters.lookup(kind, None);
                None
            }
            (CacheKind::Function, _) => match read_function_entry(&path) {
                Ok(bytes) => {
                    files.counters.lookup(kind, Some(bytes.len()));
                    Some(CacheEntry::Bytes(bytes.into()))
                }
                Err(_) => {
                    files.counters.lookup(kind, None);
                    None
                }
            },
        }
    }

    fn put(&self, kind: CacheKind, key: &[u8; 32], bytes: Vec<u8>) {
        match kind {
            CacheKind::Function => self.files.write(kind, key, &bytes),
            CacheKind::Module => {
                let (files, key_copy) = (self.files.clone(), *key);
                let spawned = std::thread::Builder::new()
                    .name("kiln-cache-writer".into())
                    .spawn(move || files.write(kind, &key_copy, &bytes));
                // Without a thread to be had, the entry is simply not stored.
                if let Ok(h) = spawned {
                    self.writing.lock().unwrap_or_else(|e| e.into_inner()).push((*key, h));
                }
            }
        }
    }

    fn flush(&self) {
        self.wait_for_writers(None);
    }

    fn remove(&self, kind: CacheKind, key: &[u8; 32]) {
        if kind == CacheKind::Module {
            self.wait_for_writers(Some(key));
        }
        let _ = std::fs::remove_file(self.files.path(kind, key));
    }

    fn stats(&self) -> CacheStats {
        self.files.counters.snapshot()
    }

    fn record(&self, saved: Duration, rejected: bool) {
        self.files.counters.record(saved, rejected);
    }
}
