//! A cache in a directory, shared by processes.
//!
//! Layout: `<root>/modules/<hex key>` and `<root>/functions/<2 hex>/<hex key>`.
//! Writes go to a temporary file in the same directory and are renamed into
//! place, so readers never see a partial entry and concurrent writers of the
//! same key are harmless. A hit refreshes the file's modification time; when
//! the total size passes the cap, the least recently used files are removed.

use super::{Cache, CacheEntry, CacheKind, CacheStats, Counters};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// A directory of cache entries.
pub struct DirectoryCache {
    root: PathBuf,
    max_bytes: u64,
    counters: Counters,
    /// Bytes written since the last size check.
    since_check: AtomicU64,
    evicting: Mutex<()>,
}

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
            root,
            max_bytes: DEFAULT_MAX_BYTES,
            counters: Counters::default(),
            since_check: AtomicU64::new(0),
            evicting: Mutex::new(()),
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
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, kind: CacheKind, key: &[u8; 32]) -> PathBuf {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        match kind {
            CacheKind::Module => self.root.join("modules").join(hex),
            CacheKind::Function => self.root.join("functions").join(&hex[..2]).join(hex),
        }
    }

    /// Total bytes of entries on disk.
    pub fn disk_usage(&self) -> u64 {
        entries(&self.root).iter().map(|(_, len, _)| len).sum()
    }

    /// Removes every entry.
    ///
    /// # Errors
    ///
    /// A file could not be removed.
    pub fn clear(&self) -> std::io::Result<()> {
        for (p, _, _) in entries(&self.root) {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn maybe_evict(&self, just_wrote: u64) {
        let since = self.since_check.fetch_add(just_wrote, Ordering::Relaxed) + just_wrote;
        if since < self.max_bytes / 16 {
            return;
        }
        let Ok(_guard) = self.evicting.try_lock() else { return };
        self.since_check.store(0, Ordering::Relaxed);
        let mut all = entries(&self.root);
        let mut total: u64 = all.iter().map(|(_, len, _)| len).sum();
        if total <= self.max_bytes {
            return;
        }
        all.sort_by_key(|(_, _, mtime)| *mtime);
        for (p, len, _) in all {
            if total <= self.max_bytes * 9 / 10 {
                break;
            }
            if std::fs::remove_file(&p).is_ok() {
                total = total.saturating_sub(len);
            }
        }
    }
}

/// Every entry file under `root`: (path, length, modification time).
fn entries(root: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("modules"), root.join("functions")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else if !e.file_name().to_string_lossy().starts_with('.') {
                out.push((e.path(), md.len(), md.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            }
        }
    }
    out
}

impl Cache for DirectoryCache {
    fn get(&self, kind: CacheKind, key: &[u8; 32]) -> Option<CacheEntry> {
        let path = self.path(kind, key);
        let found = match kind {
            CacheKind::Module => std::fs::metadata(&path).ok().filter(|m| m.is_file()).map(|m| m.len() as usize),
            CacheKind::Function => None,
        };
        match (kind, found) {
            (CacheKind::Module, Some(len)) => {
                // Refresh the modification time: it orders eviction.
                if let Ok(f) = std::fs::File::options().append(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                self.counters.lookup(kind, Some(len));
                Some(CacheEntry::File(path))
            }
            (CacheKind::Module, None) => {
                self.counters.lookup(kind, None);
                None
            }
            (CacheKind::Function, _) => match std::fs::read(&path) {
                Ok(bytes) => {
                    self.counters.lookup(kind, Some(bytes.len()));
                    Some(CacheEntry::Bytes(bytes.into()))
                }
                Err(_) => {
                    self.counters.lookup(kind, None);
                    None
                }
            },
        }
    }

    fn put(&self, kind: CacheKind, key: &[u8; 32], bytes: &[u8]) {
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

    fn remove(&self, kind: CacheKind, key: &[u8; 32]) {
        let _ = std::fs::remove_file(self.path(kind, key));
    }

    fn stats(&self) -> CacheStats {
        self.counters.snapshot()
    }

    fn record(&self, saved: Duration, rejected: bool) {
        self.counters.record(saved, rejected);
    }
}
