//! The WASI state: arguments, environment, and the descriptor table; the
//! context that holds it for a store (alone, or shared with other stores
//! for wasi-threads); and the builder an embedder configures it with.

use crate::errno::{Errno, WasiResult};
use crate::stdio::{InputStream, OutputStream, StdioKind, Stream};
use crate::types::rights;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// Most descriptors a guest may hold open at once (`mfile` beyond).
const MAX_FDS: usize = 16 * 1024;

/// What a guest may do beneath a preopened directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirPerms {
    /// Read files and list directories; anything that would change the
    /// tree (create, write, truncate, rename, link, remove, set times)
    /// fails with `perm`.
    ReadOnly,
    /// Everything, still only beneath the directory.
    ReadWrite,
}

/// A directory descriptor.
#[derive(Debug)]
pub(crate) struct DirFd {
    pub dir: cap_std::fs::Dir,
    pub perms: DirPerms,
    /// The listing `fd_readdir` pages through, read again at cookie 0.
    pub listing: Option<Vec<crate::preview1::Dirent>>,
}

/// A file descriptor for anything opened through a directory that is not
/// itself a directory. The file is reference-counted so that a call that
/// may wait on it (reads and writes) can hold it without holding the
/// descriptor table (see [`HostIo`]).
#[derive(Debug)]
pub(crate) struct FileFd {
    pub file: Arc<cap_std::fs::File>,
    pub filetype: u8,
}

/// The kinds of descriptors.
#[derive(Debug)]
pub(crate) enum Kind {
    File(FileFd),
    Dir(DirFd),
    Stream(Arc<Stream>),
    Listener(Arc<std::net::TcpListener>),
    Socket(Arc<std::net::TcpStream>),
}

/// The host object behind a descriptor, taken out of the table by calls
/// that may wait for it indefinitely (`fd_read`, `fd_write`, the socket
/// calls, `poll_oneoff`): they look the descriptor up, check it and clone
/// this while holding the state, then do the I/O without it, so a thread
/// blocked reading standard input does not stop the others' calls.
#[derive(Clone, Debug)]
pub(crate) enum HostIo {
    File { file: Arc<cap_std::fs::File>, filetype: u8 },
    Stream(Arc<Stream>),
    Listener(Arc<std::net::TcpListener>),
    Socket(Arc<std::net::TcpStream>),
}

impl HostIo {
    /// The host file descriptor, when there is one (in-memory streams
    /// have none).
    pub fn host_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            HostIo::File { file, .. } => Some(file.as_fd()),
            HostIo::Stream(s) => s.host_fd(),
            HostIo::Listener(l) => Some(l.as_fd()),
            HostIo::Socket(s) => Some(s.as_fd()),
        }
    }
}

/// One entry of the descriptor table.
#[derive(Debug)]
pub(crate) struct Descriptor {
    pub kind: Kind,
    pub base: u64,
    pub inheriting: u64,
    /// For a preopened directory: the guest path it is known by.
    pub preopen: Option<String>,
}

impl Descriptor {
    /// Fails with `notcapable` unless every right in `needed` is held.
    pub fn check(&self, needed: u64) -> WasiResult<()> {
        if self.base & needed == needed { Ok(()) } else { Err(Errno::NotCapable) }
    }

    /// The host object for a call that may wait on it; `None` for
    /// directories.
    pub fn host_io(&self) -> Option<HostIo> {
        Some(match &self.kind {
            Kind::File(f) => HostIo::File { file: f.file.clone(), filetype: f.filetype },
            Kind::Stream(s) => HostIo::Stream(s.clone()),
            Kind::Listener(l) => HostIo::Listener(l.clone()),
            Kind::Socket(s) => HostIo::Socket(s.clone()),
            Kind::Dir(_) => return None,
        })
    }
}

/// The WASI state proper: the program's arguments and environment and its
/// open descriptors. Every call body is a method on it (`preview1.rs`).
#[derive(Debug)]
pub(crate) struct WasiState {
    pub(crate) args: Vec<Vec<u8>>,
    pub(crate) env: Vec<Vec<u8>>,
    pub(crate) fds: BTreeMap<u32, Descriptor>,
}

impl WasiState {
    /// No arguments, environment or descriptors; allocates nothing.
    fn empty() -> WasiState {
        WasiState { args: Vec::new(), env: Vec::new(), fds: BTreeMap::new() }
    }

    /// The descriptor `fd`, or `badf`.
    pub(crate) fn get(&self, fd: u32) -> WasiResult<&Descriptor> {
        self.fds.get(&fd).ok_or(Errno::Badf)
    }

    /// The descriptor `fd`, mutably, or `badf`.
    pub(crate) fn get_mut(&mut self, fd: u32) -> WasiResult<&mut Descriptor> {
        self.fds.get_mut(&fd).ok_or(Errno::Badf)
    }

    /// Adds `d` under the lowest free number.
    pub(crate) fn insert(&mut self, d: Descriptor) -> WasiResult<u32> {
        if self.fds.len() >= MAX_FDS {
            return Err(Errno::Mfile);
        }
        let mut fd = 0u32;
        for &used in self.fds.keys() {
            if used != fd {
                break;
            }
            fd += 1;
        }
        self.fds.insert(fd, d);
        Ok(fd)
    }
}

/// Where a context keeps its state.
#[derive(Debug)]
enum State {
    /// One store's alone: calls move it out of the store and back, no lock.
    Owned(WasiState),
    /// Shared by several stores (wasi-threads): calls lock it.
    Shared(Arc<Mutex<WasiState>>),
}

fn lock(m: &Mutex<WasiState>) -> MutexGuard<'_, WasiState> {
    // A panic in a call leaves a usable table behind; keep going.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The WASI state of one store: the program's arguments and environment
/// and its open descriptors. Build one with [`WasiCtxBuilder`] and reach it
/// from the store's data through the closure given to
/// [`add_to_linker`](crate::add_to_linker).
///
/// A context starts out owned by its store. [`share`](Self::share) turns
/// it into a handle on state that other stores (the threads of a
/// wasi-threads program) share: all of them then see the same
/// descriptors, preopens, arguments and environment.
#[derive(Debug)]
pub struct WasiCtx {
    state: State,
    pub(crate) trace: bool,
}

/// The state taken out of the store for one call (see `linker.rs`).
pub(crate) enum Taken {
    Owned(WasiState),
    Shared(Arc<Mutex<WasiState>>),
}

impl Taken {
    /// The call's access to the state.
    pub fn access(&mut self) -> Access<'_> {
        match self {
            Taken::Owned(s) => Access::Owned(s),
            Taken::Shared(m) => Access::Shared(m),
        }
    }
}

/// A call's access to the state: direct for an owned context, through the
/// lock for a shared one. [`with`](Self::with) holds the lock only for its
/// closure, so calls that wait do their waiting outside it.
pub(crate) enum Access<'a> {
    Owned(&'a mut WasiState),
    Shared(&'a Mutex<WasiState>),
}

impl Access<'_> {
    /// Runs `f` with the state (locked, when it is shared).
    pub fn with<R>(&mut self, f: impl FnOnce(&mut WasiState) -> R) -> R {
        match self {
            Access::Owned(s) => f(s),
            Access::Shared(m) => f(&mut lock(m)),
        }
    }
}

impl WasiCtx {
    /// A builder with no arguments, no environment, empty standard input,
    /// discarded output and no preopened directories.
    pub fn builder() -> WasiCtxBuilder {
        WasiCtxBuilder::new()
    }

    /// Another handle to this context's state, for the store of another
    /// thread: from now on both (and every further handle) share one
    /// descriptor table, one set of preopens, arguments and environment.
    /// The first call turns this context into a shared one, whose calls
    /// take a lock (held only while the table is used: a call waiting
    /// for input or for `poll_oneoff` does not stop other threads' calls).
    ///
    /// ```
    /// use kiln_wasi::WasiCtxBuilder;
    ///
    /// let mut main = WasiCtxBuilder::new().arg("prog").build();
    /// assert!(!main.is_shared());
    /// let thread = main.share();
    /// assert!(main.is_shared() && thread.is_shared());
    /// ```
    pub fn share(&mut self) -> WasiCtx {
        let shared = match &mut self.state {
            State::Shared(m) => m.clone(),
            State::Owned(s) => {
                let m = Arc::new(Mutex::new(std::mem::replace(s, WasiState::empty())));
                self.state = State::Shared(m.clone());
                m
            }
        };
        WasiCtx { state: State::Shared(shared), trace: self.trace }
    }

    /// Whether this context shares its state with others
    /// ([`share`](Self::share)).
    pub fn is_shared(&self) -> bool {
        matches!(self.state, State::Shared(_))
    }

    /// Takes the state out for a call, leaving an empty placeholder that
    /// allocates nothing when it is owned.
    pub(crate) fn take(&mut self) -> Taken {
        match &mut self.state {
            State::Owned(s) => Taken::Owned(std::mem::replace(s, WasiState::empty())),
            State::Shared(m) => Taken::Shared(m.clone()),
        }
    }

    /// Puts back what [`take`](Self::take) took.
    pub(crate) fn restore(&mut self, taken: Taken) {
        if let (State::Owned(s), Taken::Owned(t)) = (&mut self.state, taken) {
            *s = t;
        }
    }

    /// Runs `f` with the state (tests).
    #[cfg(test)]
    pub(crate) fn with_state<R>(&mut self, f: impl FnOnce(&mut WasiState) -> R) -> R {
        let mut t = self.take();
        let r = t.access().with(f);
        self.restore(t);
        r
    }
}

/// Configures a [`WasiCtx`]: arguments, environment, standard streams,
/// preopened directories and sockets. Descriptors are numbered in order:
/// 0, 1, 2 for the standard streams, then each preopen as it was added.
///
/// ```no_run
/// use kiln_wasi::{DirPerms, MemoryOutputPipe, WasiCtxBuilder};
///
/// # fn main() -> anyhow::Result<()> {
/// let stdout = MemoryOutputPipe::new(1 << 20);
/// let ctx = WasiCtxBuilder::new()
///     .args(["prog.wasm", "--verbose"])
///     .env("LANG", "C")
///     .stdout(stdout.clone())
///     .preopened_dir("/tmp/sandbox", "/data", DirPerms::ReadWrite)?
///     .build();
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct WasiCtxBuilder {
    args: Vec<Vec<u8>>,
    env: Vec<Vec<u8>>,
    stdin: InputStream,
    stdout: OutputStream,
    stderr: OutputStream,
    preopens: Vec<Descriptor>,
    trace: bool,
}

fn bytes(s: impl AsRef<OsStr>) -> Vec<u8> {
    s.as_ref().as_bytes().to_vec()
}

impl WasiCtxBuilder {
    /// An empty configuration (see [`WasiCtx::builder`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one argument. The first is conventionally the program name.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(bytes(arg));
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator>(&mut self, args: I) -> &mut Self
    where
        I::Item: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(bytes));
        self
    }

    /// Appends the host process's own arguments.
    pub fn inherit_args(&mut self) -> &mut Self {
        self.args.extend(std::env::args_os().map(bytes));
        self
    }

    /// Sets environment variable `key` to `value` (a later setting of the
    /// same key replaces an earlier one).
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        let key = bytes(key);
        self.env.retain(|kv| !(kv.starts_with(&key) && kv.get(key.len()) == Some(&b'=')));
        let mut kv = key;
        kv.push(b'=');
        kv.extend_from_slice(value.as_ref().as_bytes());
        self.env.push(kv);
        self
    }

    /// Sets several environment variables.
    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(&mut self, vars: impl IntoIterator<Item = (K, V)>) -> &mut Self {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Copies the host process's whole environment.
    pub fn inherit_env(&mut self) -> &mut Self {
        for (k, v) in std::env::vars_os() {
            self.env(k, v);
        }
        self
    }

    /// Where standard input (fd 0) comes from: an [`InputStream`], a
    /// [`MemoryInputPipe`](crate::MemoryInputPipe) or a `std::fs::File`.
    pub fn stdin(&mut self, s: impl Into<InputStream>) -> &mut Self {
        self.stdin = s.into();
        self
    }

    /// Where standard output (fd 1) goes: an [`OutputStream`], a
    /// [`MemoryOutputPipe`](crate::MemoryOutputPipe) or a `std::fs::File`.
    pub fn stdout(&mut self, s: impl Into<OutputStream>) -> &mut Self {
        self.stdout = s.into();
        self
    }

    /// Where standard error (fd 2) goes.
    pub fn stderr(&mut self, s: impl Into<OutputStream>) -> &mut Self {
        self.stderr = s.into();
        self
    }

    /// Standard input is the host process's.
    pub fn inherit_stdin(&mut self) -> &mut Self {
        self.stdin(InputStream::Inherit)
    }

    /// Standard output is the host process's.
    pub fn inherit_stdout(&mut self) -> &mut Self {
        self.stdout(OutputStream::Inherit)
    }

    /// Standard error is the host process's.
    pub fn inherit_stderr(&mut self) -> &mut Self {
        self.stderr(OutputStream::Inherit)
    }

    /// All three standard streams are the host process's.
    pub fn inherit_stdio(&mut self) -> &mut Self {
        self.inherit_stdin().inherit_stdout().inherit_stderr()
    }

    /// Gives the guest the host directory `host_dir` under the name
    /// `guest_path` (for example `"/"`, `"."` or `"/data"`). The guest can
    /// reach nothing outside it: not through `..`, absolute paths or
    /// symbolic links.
    ///
    /// # Errors
    ///
    /// `host_dir` cannot be opened as a directory.
    pub fn preopened_dir(
        &mut self,
        host_dir: impl AsRef<Path>,
        guest_path: impl AsRef<str>,
        perms: DirPerms,
    ) -> anyhow::Result<&mut Self> {
        let host_dir = host_dir.as_ref();
        let dir = cap_std::fs::Dir::open_ambient_dir(host_dir, cap_std::ambient_authority())
            .with_context(|| format!("cannot open directory `{}`", host_dir.display()))?;
        Ok(self.preopened_cap_dir(dir, guest_path, perms))
    }

    /// Like [`preopened_dir`](Self::preopened_dir), for a directory the
    /// embedder already opened with cap-std.
    pub fn preopened_cap_dir(
        &mut self,
        dir: cap_std::fs::Dir,
        guest_path: impl AsRef<str>,
        perms: DirPerms,
    ) -> &mut Self {
        self.preopens.push(Descriptor {
            kind: Kind::Dir(DirFd { dir, perms, listing: None }),
            base: rights::DIRECTORY,
            inheriting: rights::DIRECTORY | rights::FILE,
            preopen: Some(guest_path.as_ref().to_string()),
        });
        self
    }

    /// Gives the guest a listening TCP socket, which it can `sock_accept`
    /// connections from. Sockets are numbered after all preopened
    /// directories (wasi-libc stops looking for directories at the first
    /// descriptor that is not one).
    pub fn preopened_listener(&mut self, listener: std::net::TcpListener) -> &mut Self {
        self.preopens.push(Descriptor {
            kind: Kind::Listener(Arc::new(listener)),
            base: rights::LISTENER,
            inheriting: rights::SOCKET,
            preopen: None,
        });
        self
    }

    /// Gives the guest a connected TCP socket (numbered like
    /// [`preopened_listener`](Self::preopened_listener)).
    pub fn preopened_socket(&mut self, stream: std::net::TcpStream) -> &mut Self {
        self.preopens.push(Descriptor {
            kind: Kind::Socket(Arc::new(stream)),
            base: rights::SOCKET,
            inheriting: 0,
            preopen: None,
        });
        self
    }

    /// Prints every WASI call, its arguments and its result to the host's
    /// standard error (a debugging aid).
    pub fn trace_calls(&mut self, on: bool) -> &mut Self {
        self.trace = on;
        self
    }

    /// The context. Leaves this builder empty, ready to configure another.
    pub fn build(&mut self) -> WasiCtx {
        let b = std::mem::take(self);
        let mut fds = BTreeMap::new();
        let stream =
            |s: Stream, base| Descriptor { kind: Kind::Stream(Arc::new(s)), base, inheriting: 0, preopen: None };
        fds.insert(0, stream(Stream::Input(b.stdin), rights::STREAM & !rights::FD_WRITE));
        fds.insert(1, stream(Stream::Output(b.stdout, StdioKind::Stdout), rights::STREAM & !rights::FD_READ));
        fds.insert(2, stream(Stream::Output(b.stderr, StdioKind::Stderr), rights::STREAM & !rights::FD_READ));
        // Directories first: wasi-libc looks for preopens from fd 3 up and
        // stops at the first descriptor that is not one.
        let (dirs, sockets): (Vec<_>, Vec<_>) = b.preopens.into_iter().partition(|d| d.preopen.is_some());
        for (i, d) in dirs.into_iter().chain(sockets).enumerate() {
            fds.insert(3 + i as u32, d);
        }
        WasiCtx { state: State::Owned(WasiState { args: b.args, env: b.env, fds }), trace: b.trace }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_numbers_descriptors() {
        let tmp = std::env::temp_dir();
        let mut b = WasiCtxBuilder::new();
        b.arg("a").args(["b", "c"]).env("X", "1").env("Y", "2").env("X", "3");
        b.preopened_dir(&tmp, "/tmp", DirPerms::ReadOnly).unwrap();
        let mut ctx = b.build();
        ctx.with_state(|s| {
            assert_eq!(s.args, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
            assert_eq!(s.env, vec![b"Y=2".to_vec(), b"X=3".to_vec()]);
            assert_eq!(s.fds.len(), 4);
            assert_eq!(s.fds[&3].preopen.as_deref(), Some("/tmp"));
        });
        assert!(WasiCtxBuilder::new().preopened_dir("/definitely/not/here", "/", DirPerms::ReadWrite).is_err());
    }

    #[test]
    fn inherits_the_host_process() {
        let mut b = WasiCtxBuilder::new();
        b.inherit_args().inherit_env().env("KILN_EXTRA", "1");
        let mut ctx = b.build();
        ctx.with_state(|s| {
            assert_eq!(s.args.len(), std::env::args_os().count());
            assert_eq!(s.env.len(), std::env::vars_os().count() + 1);
            assert!(s.env.contains(&b"KILN_EXTRA=1".to_vec()));
        });
    }

    #[test]
    fn contexts_can_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<WasiCtx>();
        send_sync::<WasiCtxBuilder>();
    }

    #[test]
    fn lowest_free_descriptor() {
        let mut ctx = WasiCtxBuilder::new().build();
        ctx.with_state(|s| {
            s.fds.remove(&1);
            let d = || Descriptor {
                kind: Kind::Stream(Arc::new(Stream::Input(InputStream::Empty))),
                base: 0,
                inheriting: 0,
                preopen: None,
            };
            assert_eq!(s.insert(d()), Ok(1));
            assert_eq!(s.insert(d()), Ok(3));
        });
    }

    #[test]
    fn shared_contexts_see_one_table() {
        let mut main = WasiCtxBuilder::new().arg("prog").build();
        let mut other = main.share();
        let mut third = other.share();
        assert!(main.is_shared() && other.is_shared() && third.is_shared());
        let d = Descriptor {
            kind: Kind::Stream(Arc::new(Stream::Input(InputStream::Empty))),
            base: 0,
            inheriting: 0,
            preopen: None,
        };
        assert_eq!(other.with_state(|s| s.insert(d)), Ok(3));
        assert!(main.with_state(|s| s.fds.contains_key(&3)));
        assert_eq!(third.with_state(|s| s.args.clone()), vec![b"prog".to_vec()]);
        // The table outlives the first handle.
        drop(main);
        assert!(third.with_state(|s| s.fds.contains_key(&3)));
    }
}
