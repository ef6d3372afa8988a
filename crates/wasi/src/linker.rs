//! Binds the calls to `wasi_snapshot_preview1` imports of a `kiln::Linker`.
//!
//! A call needs the guest memory (from the store) and the WASI state (from
//! the store's data) at the same time, and `Memory::data_mut` borrows the
//! whole store. So each call takes the state out of the context
//! ([`WasiCtx::take`]): an owned state is moved out (leaving an empty
//! placeholder that allocates nothing) and put back before returning,
//! error or not; a shared one (wasi-threads) is a reference-counted lock,
//! cloned. WASI calls never re-enter wasm, so nothing can observe the
//! placeholder. A shared memory (threads) is copied from and to rather
//! than borrowed (see `memory.rs`).

use crate::ctx::{Access, WasiCtx};
use crate::errno::WasiResult;
use crate::memory::GuestMemory;
use crate::wait::Waiter;
use crate::{poll, preview1};
use kiln::{Caller, Extern, Linker};

/// The import module name of WASI preview 1.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// Returned (as the error of the guest's call) when the guest calls
/// `proc_exit`: the program asked to end with this status. Embedders
/// find it with `err.downcast_ref::<I32Exit>()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct I32Exit(pub i32);

impl std::fmt::Display for I32Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exited with status {}", self.0)
    }
}

impl std::error::Error for I32Exit {}

/// Runs `body` with the state and the caller's memory; returns the errno.
fn dispatch<T>(
    caller: &mut Caller<'_, T>,
    get: &impl Fn(&mut T) -> &mut WasiCtx,
    name: &str,
    args: impl FnOnce() -> String,
    body: impl FnOnce(&mut Access<'_>, &mut GuestMemory<'_>) -> WasiResult<()>,
) -> i32 {
    let cx = get(caller.data_mut());
    let trace = cx.trace;
    let mut taken = cx.take();
    let result = match caller.get_export("memory") {
        Some(Extern::Memory(m)) => body(&mut taken.access(), &mut GuestMemory::new(m.data_mut(&mut *caller))),
        Some(Extern::SharedMemory(m)) => body(&mut taken.access(), &mut GuestMemory::shared(&m)),
        _ => body(&mut taken.access(), &mut GuestMemory::new(&mut [])),
    };
    if trace {
        match result {
            Ok(()) => eprintln!("wasi: {name}{} -> success", args()),
            Err(e) => eprintln!("wasi: {name}{} -> {e}", args()),
        }
    }
    get(caller.data_mut()).restore(taken);
    match result {
        Ok(()) => 0,
        Err(e) => i32::from(e.raw()),
    }
}

/// Defines every `wasi_snapshot_preview1` function in `linker`. `get`
/// finds the [`WasiCtx`] in the store's data.
///
/// # Errors
///
/// A WASI function is already defined in `linker` and shadowing is off.
///
/// ```no_run
/// use kiln::{Engine, Linker, Module, Store};
/// use kiln_wasi::{I32Exit, WasiCtx, WasiCtxBuilder};
///
/// # fn main() -> anyhow::Result<()> {
/// let engine = Engine::default();
/// let mut linker: Linker<WasiCtx> = Linker::new(&engine);
/// kiln_wasi::add_to_linker(&mut linker, |cx| cx)?;
/// let ctx = WasiCtxBuilder::new().inherit_stdio().arg("hello.wasm").build();
/// let mut store = Store::new(&engine, ctx);
/// let module = Module::from_file(&engine, "hello.wasm")?;
/// let instance = linker.instantiate(&mut store, &module)?;
/// let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
/// let status = match start.call(&mut store, ()) {
///     Ok(()) => 0,
///     Err(e) => match e.downcast_ref::<I32Exit>() {
///         Some(exit) => exit.0,
///         None => return Err(e),
///     },
/// };
/// # let _ = status;
/// # Ok(())
/// # }
/// ```
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: impl Fn(&mut T) -> &mut WasiCtx + Send + Sync + Copy + 'static,
) -> anyhow::Result<()> {
    define(linker, get, false)
}

/// Defines every `wasi_snapshot_preview1` function in `linker`, as
/// [`add_to_linker`] does, for guests run with
/// [`Func::call_async`](kiln::Func::call_async) on a tokio runtime: the
/// calls that wait (`poll_oneoff` on clocks and descriptors, and reads,
/// writes and accepts on stdin, pipes and sockets) wait on the executor
/// instead of blocking the thread, so a guest sleeping for a second costs
/// no thread. Called from a synchronous call (or with no tokio runtime
/// around the async one), they block as [`add_to_linker`]'s do.
///
/// # Errors
///
/// A WASI function is already defined in `linker` and shadowing is off.
pub fn add_to_linker_async<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: impl Fn(&mut T) -> &mut WasiCtx + Send + Sync + Copy + 'static,
) -> anyhow::Result<()> {
    define(linker, get, true)
}

/// The body of [`add_to_linker`] and, with `waits_async`, of
/// [`add_to_linker_async`].
fn define<T: 'static>(
    linker: &mut Linker<T>,
    get: impl Fn(&mut T) -> &mut WasiCtx + Send + Sync + Copy + 'static,
    waits_async: bool,
) -> anyhow::Result<()> {
    // `wasi!(f(..))` runs `WasiState::f` with the state held for the whole
    // call; `wasi!(wait module::f(..))` runs a call that may block, which
    // holds the state only while it needs it, and waits as `waits_async`
    // says.
    macro_rules! wasi {
        ($name:ident ( $($arg:ident : $ty:ty),* )) => {
            linker.func_wrap(
                MODULE,
                stringify!($name),
                move |mut caller: Caller<'_, T>, $($arg: $ty),*| -> anyhow::Result<i32> {
                    Ok(dispatch(&mut caller, &get, stringify!($name), || format!("{:?}", ($($arg,)*)),
                        |cx, mem| cx.with(|s| s.$name(mem, $($arg as _),*))))
                },
            )?;
        };
        (wait $module:ident :: $name:ident ( $($arg:ident : $ty:ty),* )) => {
            if waits_async {
                linker.func_wrap_waiting(
                    MODULE,
                    stringify!($name),
                    move |mut caller: Caller<'_, T>, $($arg: $ty),*| -> anyhow::Result<i32> {
                        let waiter = Waiter::Executor(caller.async_waiter(), Default::default());
                        let errno = dispatch(&mut caller, &get, stringify!($name), || format!("{:?}", ($($arg,)*)),
                            |cx, mem| $module::$name(cx, &waiter, mem, $($arg as _),*));
                        if waiter.cancelled() {
                            anyhow::bail!("the async call was cancelled");
                        }
                        Ok(errno)
                    },
                )?;
            } else {
                wasi!(@sync wait $module::$name($($arg: $ty),*));
            }
        };
        (@sync wait $module:ident :: $name:ident ( $($arg:ident : $ty:ty),* )) => {
            linker.func_wrap(
                MODULE,
                stringify!($name),
                move |mut caller: Caller<'_, T>, $($arg: $ty),*| -> anyhow::Result<i32> {
                    Ok(dispatch(&mut caller, &get, stringify!($name), || format!("{:?}", ($($arg,)*)),
                        |cx, mem| $module::$name(cx, &Waiter::Thread, mem, $($arg as _),*)))
                },
            )?;
        };
    }

    wasi!(args_get(argv: i32, argv_buf: i32));
    wasi!(args_sizes_get(argc: i32, argv_buf_size: i32));
    wasi!(environ_get(environ: i32, environ_buf: i32));
    wasi!(environ_sizes_get(count: i32, buf_size: i32));
    wasi!(clock_res_get(id: i32, out: i32));
    wasi!(clock_time_get(id: i32, precision: i64, out: i32));
    wasi!(fd_advise(fd: i32, offset: i64, len: i64, advice: i32));
    wasi!(fd_allocate(fd: i32, offset: i64, len: i64));
    wasi!(fd_close(fd: i32));
    wasi!(fd_datasync(fd: i32));
    wasi!(fd_fdstat_get(fd: i32, out: i32));
    wasi!(fd_fdstat_set_flags(fd: i32, flags: i32));
    wasi!(fd_fdstat_set_rights(fd: i32, base: i64, inheriting: i64));
    wasi!(fd_filestat_get(fd: i32, out: i32));
    wasi!(fd_filestat_set_size(fd: i32, size: i64));
    wasi!(fd_filestat_set_times(fd: i32, atim: i64, mtim: i64, flags: i32));
    wasi!(fd_pread(fd: i32, iovs: i32, iovs_len: i32, offset: i64, nread: i32));
    wasi!(fd_prestat_get(fd: i32, out: i32));
    wasi!(fd_prestat_dir_name(fd: i32, path: i32, path_len: i32));
    wasi!(fd_pwrite(fd: i32, iovs: i32, iovs_len: i32, offset: i64, nwritten: i32));
    wasi!(wait preview1::fd_read(fd: i32, iovs: i32, iovs_len: i32, nread: i32));
    wasi!(fd_readdir(fd: i32, buf: i32, buf_len: i32, cookie: i64, bufused: i32));
    wasi!(fd_renumber(fd: i32, to: i32));
    wasi!(fd_seek(fd: i32, offset: i64, whence: i32, out: i32));
    wasi!(fd_sync(fd: i32));
    wasi!(fd_tell(fd: i32, out: i32));
    wasi!(wait preview1::fd_write(fd: i32, iovs: i32, iovs_len: i32, nwritten: i32));
    wasi!(path_create_directory(fd: i32, path: i32, path_len: i32));
    wasi!(path_filestat_get(fd: i32, flags: i32, path: i32, path_len: i32, out: i32));
    wasi!(path_filestat_set_times(fd: i32, flags: i32, path: i32, path_len: i32, atim: i64, mtim: i64, fst_flags: i32));
    wasi!(path_link(old_fd: i32, old_flags: i32, old_path: i32, old_len: i32, new_fd: i32, new_path: i32, new_len: i32));
    wasi!(path_open(
        fd: i32,
        dirflags: i32,
        path: i32,
        path_len: i32,
        oflags: i32,
        base: i64,
        inheriting: i64,
        fdflags: i32,
        fd_out: i32
    ));
    wasi!(path_readlink(fd: i32, path: i32, path_len: i32, buf: i32, buf_len: i32, bufused: i32));
    wasi!(path_remove_directory(fd: i32, path: i32, path_len: i32));
    wasi!(path_rename(fd: i32, old_path: i32, old_len: i32, new_fd: i32, new_path: i32, new_len: i32));
    wasi!(path_symlink(old_path: i32, old_len: i32, fd: i32, new_path: i32, new_len: i32));
    wasi!(path_unlink_file(fd: i32, path: i32, path_len: i32));
    wasi!(wait poll::poll_oneoff(subs: i32, events: i32, nsubs: i32, nevents: i32));
    wasi!(proc_raise(sig: i32));
    wasi!(sched_yield());
    wasi!(random_get(buf: i32, len: i32));
    wasi!(wait preview1::sock_accept(fd: i32, flags: i32, fd_out: i32));
    wasi!(wait preview1::sock_recv(fd: i32, iovs: i32, iovs_len: i32, ri_flags: i32, ro_datalen: i32, ro_flags: i32));
    wasi!(wait preview1::sock_send(fd: i32, iovs: i32, iovs_len: i32, si_flags: i32, so_datalen: i32));
    wasi!(sock_shutdown(fd: i32, how: i32));

    linker.func_wrap(MODULE, "proc_exit", move |mut caller: Caller<'_, T>, code: i32| -> anyhow::Result<()> {
        if get(caller.data_mut()).trace {
            eprintln!("wasi: proc_exit({code})");
        }
        Err(I32Exit(code).into())
    })?;
    Ok(())
}
