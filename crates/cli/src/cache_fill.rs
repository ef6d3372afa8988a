//! Filling the cache after a tiered run (`-C tiering=y`): a short run
//! ends before the background compiler has replaced its baseline code,
//! and baseline code is never cached, so the next run would compile the
//! same functions again. Instead, `kiln run` starts itself again, detached
//! (no standard streams, so nothing waits for it), at the lowest priority
//! and with `KILN_FILL_CACHE` set, to compile the module with Cranelift
//! into the cache; the next run then starts from a complete artifact.
//!
//! One filler per module file at a time: a lock file in the temporary
//! directory (`kiln-fill-*.lock`, holding the module file's path), named
//! after the file's path, size and modification time. The run locks it
//! (`flock`, exclusive, without waiting; held by a live filler means one
//! is at work) and hands the open file to the filler as its standard
//! input, so the filler holds the same lock from its first instruction
//! to its exit, whatever ends it. The filler removes the file when done;
//! one left behind by a filler that was killed is not locked, and the
//! next run takes it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The environment variable that makes `kiln run` fill the cache and stop.
pub const FILL_VAR: &str = "KILN_FILL_CACHE";

/// Whether this process is a filler.
pub fn is_filler() -> bool {
    std::env::var_os(FILL_VAR).is_some()
}

/// The lock file of module file `file`.
fn lock_path(file: &Path) -> Option<PathBuf> {
    let meta = std::fs::metadata(file).ok()?;
    let modified = meta.modified().ok()?.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    let path = std::fs::canonicalize(file).ok()?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let key = format!("{}\0{}\0{}", path.display(), meta.len(), modified.as_nanos());
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    Some(std::env::temp_dir().join(format!("kiln-fill-{h:016x}.lock")))
}

/// Takes the lock of `file`, unless a live filler holds it: returns the
/// lock file's path and the open file holding the lock, which now holds
/// the module file's canonical path.
fn take_lock(file: &Path) -> Option<(PathBuf, std::fs::File)> {
    use std::io::Write;
    let lock = lock_path(file)?;
    let name = std::fs::canonicalize(file).ok()?;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(&lock).ok()?;
    // `kiln cache clear` looking for fillers at work holds a shared lock
    // on each lock file for an instant (`busy_fillers`): only a lock
    // still held a millisecond later is a filler's.
    let mut tries = 0;
    loop {
        match f.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if tries < 5 => {
                tries += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(_) => return None,
        }
    }
    f.set_len(0).ok()?;
    f.write_all(name.to_string_lossy().as_bytes()).ok()?;
    Some((lock, f))
}

/// Starts a filler for module file `file` with this process's arguments
/// (so that it builds the same engine), unless one is at work already.
/// Failing to start one is not an error: the next run compiles instead.
pub fn spawn(file: &Path) {
    let Some((lock, held)) = take_lock(file) else { return };
    let Ok(exe) = std::env::current_exe() else {
        let _ = std::fs::remove_file(&lock);
        return;
    };
    // The filler's standard input is the locked file: the lock belongs to
    // the open file, which the filler then shares, so it stays held after
    // this process ends and until the filler does.
    let started = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(FILL_VAR, &lock)
        .stdin(Stdio::from(held))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if started.is_err() {
        let _ = std::fs::remove_file(&lock);
    }
}

/// In a filler: removes its lock file (the lock itself goes with the
/// process).
pub fn release() {
    if let Some(lock) = std::env::var_os(FILL_VAR) {
        let lock = PathBuf::from(lock);
        // Only ever a lock this module named.
        if lock.file_name().is_some_and(|n| n.to_string_lossy().starts_with("kiln-fill-")) {
            let _ = std::fs::remove_file(lock);
        }
    }
}

/// How many cache fillers are at work: lock files in the temporary
/// directory whose lock is held (one left by a killed filler is not).
/// On Linux the kernel's list of locks says which are held; elsewhere
/// each file's lock is tried (shared, for an instant, which a run taking
/// the lock at that moment waits out: see `take_lock`).
pub fn busy_fillers() -> usize {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else { return 0 };
    let held = flock_inodes();
    dir.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("kiln-fill-"))
        .filter(|e| match &held {
            Some(held) => {
                use std::os::unix::fs::MetadataExt;
                e.metadata().is_ok_and(|m| held.contains(&m.ino()))
            }
            None => std::fs::File::open(e.path())
                .is_ok_and(|f| matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))),
        })
        .count()
}

/// The inode numbers of the files someone holds an `flock` on, from
/// `/proc/locks` (Linux), where each line ends in `MAJOR:MINOR:INODE`
/// and a range.
fn flock_inodes() -> Option<std::collections::HashSet<u64>> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    Some(
        locks
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("FLOCK"))
            .filter_map(|l| l.split_whitespace().nth(5)?.rsplit(':').next()?.parse().ok())
            .collect(),
    )
}

/// Waits until no cache filler is at work, `limit` at most (a filler
/// compiles one module, so it ends). Returns how many still were when it
/// stopped waiting.
pub fn wait_for_fillers(limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let busy = busy_fillers();
        if busy == 0 || Instant::now() >= deadline {
            return busy;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
