//! The WASI sandbox under random path operations.
//!
//! The host builds a temporary tree:
//!
//! ```text
//! ROOT/
//!   sandbox/              preopen fd 3 (read-write or read-only)
//!     inner.txt
//!     esc_rel  -> ../outside          (symlinks planted by the host)
//!     esc_abs  -> ROOT/outside
//!     esc_file -> ../outside/plain.txt
//!   other/                preopen fd 4 (read-write or read-only)
//!   outside/              must never change, never be read
//!     kiln-secret-name-file, plain.txt (secret contents), kiln-secret-name-dir/
//!   kiln-secret-name-root
//! ```
//!
//! and a tiny wasm shim that imports WASI functions and exports a wrapper
//! for each, so that every call comes from wasm with the guest's memory, as
//! in a real program. A fuzzer-chosen sequence of calls (`path_open` with
//! random lookup flags, open flags, rights and fd flags; directory
//! creation, rename, symlink, hard link, unlink, rmdir, readlink, stat,
//! set-times; reads, writes, readdir, truncation, close, renumber on the
//! descriptors obtained) runs with paths built from a vocabulary of
//! `..`, `.`, absolute host paths, the planted symlinks and ordinary names.
//!
//! Afterwards the host checks that nothing outside the read-write preopens
//! changed (entries, kinds, sizes, contents, modification times, link
//! counts, symlink targets; read-only preopens must not change at all),
//! that no file appeared next to ROOT, at `/` or in the working directory
//! under a vocabulary name, that no WASI call trapped, and that the guest's
//! memory never held the secret file contents or names.

use arbitrary::{Result, Unstructured};
use kiln_wasi::{DirPerms, WasiCtx, WasiCtxBuilder};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Marker in every secret name and in the secret contents; the guest's
/// memory must never contain it.
const SECRET: &[u8] = b"kiln-secret";
const SECRET_CONTENTS: &[u8] = b"contents of kiln-secret files, never to be read by the guest\n";

/// The WASI functions the shim wraps: name and parameter types (every one
/// returns an errno).
const FUNCS: &[(&str, &str)] = &[
    ("path_open", "i32 i32 i32 i32 i32 i64 i64 i32 i32"),
    ("path_create_directory", "i32 i32 i32"),
    ("path_rename", "i32 i32 i32 i32 i32 i32"),
    ("path_symlink", "i32 i32 i32 i32 i32"),
    ("path_link", "i32 i32 i32 i32 i32 i32 i32"),
    ("path_unlink_file", "i32 i32 i32"),
    ("path_remove_directory", "i32 i32 i32"),
    ("path_readlink", "i32 i32 i32 i32 i32 i32"),
    ("path_filestat_get", "i32 i32 i32 i32 i32"),
    ("path_filestat_set_times", "i32 i32 i32 i32 i64 i64 i32"),
    ("fd_write", "i32 i32 i32 i32"),
    ("fd_pwrite", "i32 i32 i32 i64 i32"),
    ("fd_read", "i32 i32 i32 i32"),
    ("fd_readdir", "i32 i32 i32 i64 i32"),
    ("fd_close", "i32"),
    ("fd_filestat_set_size", "i32 i64"),
    ("fd_filestat_set_times", "i32 i64 i64 i32"),
    ("fd_allocate", "i32 i64 i64"),
    ("fd_renumber", "i32 i32"),
    ("fd_seek", "i32 i64 i32 i32"),
];

// Guest memory layout (two pages).
const OUT: i32 = 0; // result slots
const PATH_A: i32 = 1024;
const PATH_B: i32 = 2048;
const IOVS: i32 = 4096;
const BUF: i32 = 8192;
const BUF_LEN: i32 = 16384;
const DATA: i32 = 32768;

/// The shim module: imports the WASI functions the oracle calls and exports `w_NAME` wrappers,
/// plus its memory.
pub fn shim_wat() -> String {
    let mut s = String::from("(module\n");
    for (name, params) in FUNCS {
        s.push_str(&format!(
            "  (import \"wasi_snapshot_preview1\" \"{name}\" (func ${name} (param {params}) (result i32)))\n"
        ));
    }
    s.push_str("  (memory (export \"memory\") 2)\n");
    for (name, params) in FUNCS {
        let gets: String = (0..params.split(' ').count()).map(|i| format!("local.get {i} ")).collect();
        s.push_str(&format!("  (func (export \"w_{name}\") (param {params}) (result i32) {gets}call ${name})\n"));
    }
    s.push(')');
    s
}

struct Shared {
    engine: kiln::Engine,
    module: kiln::Module,
    linker: kiln::Linker<WasiCtx>,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let mut config = kiln::Config::new();
        config.parallel_compilation(false);
        let engine = kiln::Engine::new(&config).expect("default engine");
        let module = kiln::Module::new(&engine, shim_wat()).expect("the WASI shim compiles");
        let mut linker = kiln::Linker::new(&engine);
        kiln_wasi::add_to_linker(&mut linker, |cx| cx).expect("WASI links");
        Shared { engine, module, linker }
    })
}

/// What the host sees of a file-system entry (not followed if a symlink).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    File { len: u64, contents: Vec<u8>, mtime: Option<std::time::SystemTime>, nlink: u64, mode: u32 },
    Dir { mtime: Option<std::time::SystemTime>, mode: u32 },
    Symlink(PathBuf),
    Other,
}

/// Every entry under `dir` (relative paths), except the subtrees in `skip`.
fn snapshot_tree(root: &Path, skip: &[PathBuf]) -> BTreeMap<PathBuf, Entry> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if skip.contains(&p) {
                continue;
            }
            let rel = p.strip_prefix(root).map(Path::to_path_buf).unwrap_or_else(|_| p.clone());
            let Ok(md) = std::fs::symlink_metadata(&p) else { continue };
            let entry = if md.file_type().is_symlink() {
                Entry::Symlink(std::fs::read_link(&p).unwrap_or_default())
            } else if md.is_dir() {
                stack.push(p.clone());
                Entry::Dir { mtime: md.modified().ok(), mode: md.mode() }
            } else if md.is_file() {
                let contents = std::fs::read(&p).unwrap_or_default();
                Entry::File { len: md.len(), contents, mtime: md.modified().ok(), nlink: md.nlink(), mode: md.mode() }
            } else {
                Entry::Other
            };
            out.insert(rel, entry);
        }
    }
    out
}

/// The host side of a run: the temporary tree and where things are.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    sandbox: PathBuf,
    other: PathBuf,
}

fn build_tree() -> std::io::Result<Tree> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().canonicalize()?;
    let sandbox = root.join("sandbox");
    let other = root.join("other");
    let outside = root.join("outside");
    std::fs::create_dir(&sandbox)?;
    std::fs::create_dir(&other)?;
    std::fs::create_dir(&outside)?;
    std::fs::create_dir(outside.join("kiln-secret-name-dir"))?;
    std::fs::write(outside.join("kiln-secret-name-file"), SECRET_CONTENTS)?;
    std::fs::write(outside.join("plain.txt"), SECRET_CONTENTS)?;
    std::fs::write(outside.join("kiln-secret-name-dir").join("deep.txt"), SECRET_CONTENTS)?;
    std::fs::write(root.join("kiln-secret-name-root"), SECRET_CONTENTS)?;
    std::fs::write(sandbox.join("inner.txt"), b"inside\n")?;
    std::fs::write(other.join("other.txt"), b"other\n")?;
    std::os::unix::fs::symlink("../outside", sandbox.join("esc_rel"))?;
    std::os::unix::fs::symlink(&outside, sandbox.join("esc_abs"))?;
    std::os::unix::fs::symlink("../outside/plain.txt", sandbox.join("esc_file"))?;
    std::os::unix::fs::symlink("../sandbox", other.join("to_sandbox"))?;
    Ok(Tree { _dir: dir, root, sandbox, other })
}

/// Ordinary names that paths are built from (also checked at `/` and in
/// the working directory).
const NAMES: &[&str] = &["a", "b", "sub", "inner.txt", "other.txt", "new.txt"];

/// A path from the vocabulary.
fn path(u: &mut Unstructured<'_>, tree: &Tree) -> Result<String> {
    let abs_outside = tree.root.join("outside").display().to_string();
    let abs_root = tree.root.display().to_string();
    let abs_secret = tree.root.join("outside").join("plain.txt").display().to_string();
    let n = u.int_in_range(1..=4)?;
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        let part = match u.int_in_range(0..=16)? {
            0..=5 => NAMES[u.choose_index(NAMES.len())?].to_string(),
            6 | 7 => "..".into(),
            8 => ".".into(),
            9 => "".into(),
            10 => "outside".into(),
            11 => ["esc_rel", "esc_abs", "esc_file", "to_sandbox"][u.choose_index(4)?].into(),
            12 => "plain.txt".into(),
            13 => ["sandbox", "other"][u.choose_index(2)?].into(),
            14 => abs_outside.clone(),
            15 => abs_root.clone(),
            _ => abs_secret.clone(),
        };
        parts.push(part);
    }
    let mut p = parts.join("/");
    if u.ratio(1, 8)? {
        p.insert(0, '/');
    }
    if u.ratio(1, 8)? {
        p.push('/');
    }
    Ok(p)
}

/// A run: the store and instance, the descriptors known, a log.
struct Run {
    store: kiln::Store<WasiCtx>,
    instance: kiln::Instance,
    memory: kiln::Memory,
    fds: Vec<i32>,
    log: Vec<String>,
}

impl Run {
    fn write(&mut self, at: i32, bytes: &[u8]) {
        // The layout keeps every write inside the two pages.
        let _ = self.memory.write(&mut self.store, at as usize, bytes);
    }

    fn read_i32(&self, at: i32) -> i32 {
        let mut b = [0u8; 4];
        let _ = self.memory.read(&self.store, at as usize, &mut b);
        i32::from_le_bytes(b)
    }

    fn call(&mut self, name: &str, args: &[kiln::Val]) -> std::result::Result<i32, String> {
        let Some(f) = self.instance.get_func(&mut self.store, &format!("w_{name}")) else {
            return Err(format!("shim has no w_{name}"));
        };
        let mut out = [kiln::Val::I32(0)];
        let entry = format!("{name}{args:?}");
        match f.call(&mut self.store, args, &mut out) {
            Ok(()) => {
                let errno = out[0].i32().unwrap_or(-1);
                self.log.push(format!("{entry} -> {errno}"));
                Ok(errno)
            }
            Err(e) => {
                self.log.push(format!("{entry} -> trap"));
                Err(format!("WASI call {entry} failed instead of returning an errno: {e:#}"))
            }
        }
    }

    fn fd(&self, u: &mut Unstructured<'_>) -> Result<i32> {
        if u.ratio(1, 10)? {
            return u.int_in_range(0..=12);
        }
        Ok(self.fds[u.choose_index(self.fds.len())?])
    }

    fn put_path(&mut self, at: i32, p: &str) -> kiln::Val {
        self.write(at, p.as_bytes());
        kiln::Val::I32(p.len() as i32)
    }
}

/// The fuzz-target entry point.
///
/// # Errors
///
/// `u` does not hold enough data.
pub fn run(u: &mut Unstructured<'_>) -> Result<()> {
    match check(u) {
        Ok(Ok(())) => Ok(()),
        Ok(Err((msg, log))) => crate::fail("wasi", &[], &format!("{msg}\ncalls:\n  {}", log.join("\n  "))),
        Err(e) => Err(e),
    }
}

/// Runs one sequence of calls drawn from `u`.
///
/// # Errors
///
/// `u` is exhausted before the sequence starts (outer error); the sandbox
/// was escaped or a call trapped (inner error: the message and the calls).
#[allow(clippy::type_complexity)]
pub fn check(u: &mut Unstructured<'_>) -> Result<std::result::Result<(), (String, Vec<String>)>> {
    let sandbox_rw = u.ratio(3, 4)?;
    let other_rw = u.ratio(1, 2)?;
    let ops = u.int_in_range(1..=48)?;
    let tree = match build_tree() {
        Ok(t) => t,
        Err(e) => return Ok(Err((format!("building the temporary tree: {e}"), vec![]))),
    };
    let perms = |rw: bool| if rw { DirPerms::ReadWrite } else { DirPerms::ReadOnly };
    // Everything the guest must not change.
    let mut skip = Vec::new();
    if sandbox_rw {
        skip.push(tree.sandbox.clone());
    }
    if other_rw {
        skip.push(tree.other.clone());
    }
    let before = snapshot_tree(&tree.root, &skip);
    let parent = tree.root.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let probes: Vec<PathBuf> =
        NAMES.iter().flat_map(|n| [PathBuf::from("/").join(n), PathBuf::from(n), parent.join(n)]).collect();
    let probes_before: Vec<bool> = probes.iter().map(|p| p.symlink_metadata().is_ok()).collect();

    let sh = shared();
    let ctx = {
        let mut b = WasiCtxBuilder::new();
        b.stdin(kiln_wasi::MemoryInputPipe::new(Vec::new()))
            .stdout(kiln_wasi::MemoryOutputPipe::new(4096))
            .stderr(kiln_wasi::MemoryOutputPipe::new(4096));
        let opened = b
            .preopened_dir(&tree.sandbox, "sandbox", perms(sandbox_rw))
            .and_then(|b| b.preopened_dir(&tree.other, "/other", perms(other_rw)));
        if let Err(e) = opened {
            return Ok(Err((format!("preopening: {e:#}"), vec![])));
        }
        b.build()
    };
    let mut store = kiln::Store::new(&sh.engine, ctx);
    let instance = match sh.linker.instantiate(&mut store, &sh.module) {
        Ok(i) => i,
        Err(e) => return Ok(Err((format!("instantiating the shim: {e:#}"), vec![]))),
    };
    let Some(memory) = instance.get_memory(&mut store, "memory") else {
        return Ok(Err(("the shim exports no memory".into(), vec![])));
    };
    let mut r = Run { store, instance, memory, fds: vec![3, 4], log: Vec::new() };
    // Write data the guest may write to files.
    r.write(DATA, b"WRITTEN-BY-GUEST\n");

    for _ in 0..ops {
        if u.is_empty() {
            break;
        }
        if let Err(msg) = step(u, &tree, &mut r)? {
            return Ok(Err((msg, r.log)));
        }
    }

    // Verdict.
    let after = snapshot_tree(&tree.root, &skip);
    if before != after {
        let mut diff = Vec::new();
        for (k, v) in &before {
            match after.get(k) {
                None => diff.push(format!("removed {}", k.display())),
                Some(w) if w != v => diff.push(format!("changed {}: {v:?} -> {w:?}", k.display())),
                _ => {}
            }
        }
        for (k, w) in &after {
            if !before.contains_key(k) {
                diff.push(format!("created {}: {w:?}", k.display()));
            }
        }
        let which =
            format!("(sandbox {}, other {})", if sandbox_rw { "rw" } else { "ro" }, if other_rw { "rw" } else { "ro" });
        return Ok(Err((format!("the guest changed what it must not {which}: {}", diff.join("; ")), r.log)));
    }
    for (p, was) in probes.iter().zip(probes_before) {
        if p.symlink_metadata().is_ok() != was {
            return Ok(Err((format!("{} appeared or disappeared on the host", p.display()), r.log)));
        }
    }
    let mem = r.memory.data(&r.store);
    if let Some(at) = mem.windows(SECRET.len()).position(|w| w == SECRET) {
        let end = (at + 64).min(mem.len());
        let shown = String::from_utf8_lossy(&mem[at.saturating_sub(32)..end]).into_owned();
        return Ok(Err((
            format!("secret data from outside the sandbox reached guest memory at {at:#x}: {shown:?}"),
            r.log,
        )));
    }
    Ok(Ok(()))
}

/// One random call. Outer error: input exhausted; inner: a trap.
fn step(u: &mut Unstructured<'_>, tree: &Tree, r: &mut Run) -> Result<std::result::Result<(), String>> {
    use kiln::Val::{I32, I64};
    let op = u.int_in_range(0..=19)?;
    let result = match op {
        0..=4 => {
            let fd = r.fd(u)?;
            let p = path(u, tree)?;
            let len = r.put_path(PATH_A, &p);
            let dirflags = i32::from(u.ratio(1, 2)?);
            let oflags = u.int_in_range(0..=15)?;
            let all = u.ratio(1, 2)?;
            let base: i64 = if all { 0x1fff_ffff } else { u.arbitrary()? };
            let inheriting: i64 = if all { 0x1fff_ffff } else { u.arbitrary()? };
            let fdflags = u.int_in_range(0..=31)?;
            let res = r.call(
                "path_open",
                &[
                    I32(fd),
                    I32(dirflags),
                    I32(PATH_A),
                    len,
                    I32(oflags),
                    I64(base),
                    I64(inheriting),
                    I32(fdflags),
                    I32(OUT),
                ],
            );
            if let Ok(0) = res {
                let new = r.read_i32(OUT);
                r.fds.push(new);
            }
            res
        }
        5 => {
            let fd = r.fd(u)?;
            let p = path(u, tree)?;
            let len = r.put_path(PATH_A, &p);
            r.call("path_create_directory", &[I32(fd), I32(PATH_A), len])
        }
        6 => {
            let (fd, nfd) = (r.fd(u)?, r.fd(u)?);
            let (a, b) = (path(u, tree)?, path(u, tree)?);
            let (la, lb) = (r.put_path(PATH_A, &a), r.put_path(PATH_B, &b));
            r.call("path_rename", &[I32(fd), I32(PATH_A), la, I32(nfd), I32(PATH_B), lb])
        }
        7 => {
            let fd = r.fd(u)?;
            let (target, p) = (path(u, tree)?, path(u, tree)?);
            let (lt, lp) = (r.put_path(PATH_A, &target), r.put_path(PATH_B, &p));
            r.call("path_symlink", &[I32(PATH_A), lt, I32(fd), I32(PATH_B), lp])
        }
        8 => {
            let (fd, nfd) = (r.fd(u)?, r.fd(u)?);
            let flags = i32::from(u.ratio(1, 4)?);
            let (a, b) = (path(u, tree)?, path(u, tree)?);
            let (la, lb) = (r.put_path(PATH_A, &a), r.put_path(PATH_B, &b));
            r.call("path_link", &[I32(fd), I32(flags), I32(PATH_A), la, I32(nfd), I32(PATH_B), lb])
        }
        9 => {
            let fd = r.fd(u)?;
            let p = path(u, tree)?;
            let len = r.put_path(PATH_A, &p);
            let name = if u.ratio(1, 2)? { "path_unlink_file" } else { "path_remove_directory" };
            r.call(name, &[I32(fd), I32(PATH_A), len])
        }
        10 => {
            let fd = r.fd(u)?;
            let p = path(u, tree)?;
            let len = r.put_path(PATH_A, &p);
            let buf_len = u.int_in_range(0..=BUF_LEN)?;
            r.call("path_readlink", &[I32(fd), I32(PATH_A), len, I32(BUF), I32(buf_len), I32(OUT)])
        }
        11 => {
            let fd = r.fd(u)?;
            let flags = i32::from(u.ratio(1, 2)?);
            let p = path(u, tree)?;
            let len = r.put_path(PATH_A, &p);
            r.call("path_filestat_get", &[I32(fd), I32(flags), I32(PATH_A), len, I32(BUF)])
        }
        12 => {
            let fd = r.fd(u)?;
            let flags = i32::from(u.ratio(1, 2)?);
            let p = path(u, tree)?;
            let len = r.put_path(PATH_A, &p);
            let (atim, mtim): (i64, i64) = (u.arbitrary()?, u.arbitrary()?);
            let fst = u.int_in_range(0..=15)?;
            r.call("path_filestat_set_times", &[I32(fd), I32(flags), I32(PATH_A), len, I64(atim), I64(mtim), I32(fst)])
        }
        13 => {
            let fd = r.fd(u)?;
            let len: i32 = u.int_in_range(0..=17)?;
            r.write(IOVS, &DATA.to_le_bytes());
            r.write(IOVS + 4, &len.to_le_bytes());
            if u.ratio(1, 2)? {
                r.call("fd_write", &[I32(fd), I32(IOVS), I32(1), I32(OUT)])
            } else {
                let off = u.int_in_range(0..=1 << 20)?;
                r.call("fd_pwrite", &[I32(fd), I32(IOVS), I32(1), I64(off), I32(OUT)])
            }
        }
        14 => {
            let fd = r.fd(u)?;
            r.write(IOVS, &BUF.to_le_bytes());
            r.write(IOVS + 4, &BUF_LEN.to_le_bytes());
            r.call("fd_read", &[I32(fd), I32(IOVS), I32(1), I32(OUT)])
        }
        15 => {
            let fd = r.fd(u)?;
            let cookie = i64::from(u.int_in_range(0..=8)?);
            r.call("fd_readdir", &[I32(fd), I32(BUF), I32(BUF_LEN), I64(cookie), I32(OUT)])
        }
        16 => {
            let fd = r.fd(u)?;
            if u.ratio(1, 2)? {
                r.call("fd_close", &[I32(fd)])
            } else {
                let to = r.fd(u)?;
                r.call("fd_renumber", &[I32(fd), I32(to)])
            }
        }
        17 => {
            let fd = r.fd(u)?;
            let size = i64::from(u.int_in_range(0..=4096)?);
            if u.ratio(1, 2)? {
                r.call("fd_filestat_set_size", &[I32(fd), I64(size)])
            } else {
                r.call("fd_allocate", &[I32(fd), I64(0), I64(size)])
            }
        }
        18 => {
            let fd = r.fd(u)?;
            let (atim, mtim): (i64, i64) = (u.arbitrary()?, u.arbitrary()?);
            let fst = u.int_in_range(0..=15)?;
            r.call("fd_filestat_set_times", &[I32(fd), I64(atim), I64(mtim), I32(fst)])
        }
        _ => {
            let fd = r.fd(u)?;
            let off = i64::from(u.int_in_range(-8..=4096)?);
            let whence = u.int_in_range(0..=2)?;
            r.call("fd_seek", &[I32(fd), I64(off), I32(whence), I32(OUT)])
        }
    };
    Ok(result.map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The oracle notices the changes it is meant to catch.
    #[test]
    fn tree_snapshots_see_changes_outside() -> std::io::Result<()> {
        let t = build_tree()?;
        let skip = vec![t.sandbox.clone(), t.other.clone()];
        let before = snapshot_tree(&t.root, &skip);
        // Inside the skipped preopen: not a change.
        std::fs::write(t.sandbox.join("new.txt"), b"x")?;
        assert_eq!(before, snapshot_tree(&t.root, &skip));
        let outside = t.root.join("outside");
        // Contents, a new entry, a hard link (link count), a time.
        std::fs::write(outside.join("plain.txt"), b"changed")?;
        assert_ne!(before, snapshot_tree(&t.root, &skip));
        let t = build_tree()?;
        let before = snapshot_tree(&t.root, &skip_of(&t));
        std::fs::hard_link(t.root.join("outside/plain.txt"), t.sandbox.join("stolen"))?;
        assert_ne!(before, snapshot_tree(&t.root, &skip_of(&t)));
        let t = build_tree()?;
        let before = snapshot_tree(&t.root, &skip_of(&t));
        std::fs::File::options()
            .write(true)
            .open(t.root.join("outside/plain.txt"))?
            .set_modified(std::time::SystemTime::UNIX_EPOCH)?;
        assert_ne!(before, snapshot_tree(&t.root, &skip_of(&t)));
        Ok(())
    }

    fn skip_of(t: &Tree) -> Vec<PathBuf> {
        vec![t.sandbox.clone(), t.other.clone()]
    }

    #[test]
    fn shim_compiles_and_sequences_run() {
        let data = crate::seeded_bytes(7, 4096);
        let mut u = Unstructured::new(&data);
        assert!(matches!(check(&mut u), Ok(Ok(()))));
    }
}
