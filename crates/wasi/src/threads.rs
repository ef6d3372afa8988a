//! wasi-threads: the `wasi::thread-spawn` import (see [`WasiThreads`]).

use crate::errno::Errno;
use crate::linker::I32Exit;
use anyhow::{Context as _, Result, anyhow, bail};
use kiln::{Caller, ExternType, FuncType, InstancePre, Linker, Module, SharedMemory, Store, ValType};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// The import module of `thread-spawn`.
pub const THREADS_MODULE: &str = "wasi";

/// The import name of `thread-spawn`.
pub const THREAD_SPAWN: &str = "thread-spawn";

/// The export every spawned thread starts in: `(tid: i32, start_arg: i32)`.
pub const THREAD_START: &str = "wasi_thread_start";

/// Thread ids are below this (the proposal reserves the top bits).
pub const MAX_THREAD_ID: u32 = 0x1FFF_FFFF;

/// Default native stack of a spawned thread: room for the default wasm
/// stack limit and the host calls below it, like a main thread.
const DEFAULT_STACK: usize = 8 << 20;

/// How a spawned thread ended, when it did not return from
/// `wasi_thread_start`.
#[derive(Debug)]
pub enum ThreadExit {
    /// It called `proc_exit` with this status: the program asks to end.
    Exit(i32),
    /// It trapped, or a host function failed.
    Error(anyhow::Error),
}

impl ThreadExit {
    /// What [`WasiThreads`] does by default: ends the process with the
    /// `proc_exit` status (1 when outside 0..=255), or prints the error
    /// to standard error and ends with status 134 for a trap (like a
    /// process killed by `SIGABRT`, as `kiln run` does), 1 otherwise.
    pub fn exit_process(self, tid: u32) -> ! {
        match self {
            ThreadExit::Exit(code) => std::process::exit(u8::try_from(code).map_or(1, i32::from)),
            ThreadExit::Error(e) => {
                eprintln!("error: wasi thread {tid}: {e:#}");
                std::process::exit(if e.downcast_ref::<kiln::Trap>().is_some() { 134 } else { 1 })
            }
        }
    }
}

/// Whether `module` imports `wasi::thread-spawn`.
pub fn uses_threads(module: &Module) -> bool {
    module.imports().any(|i| i.module() == THREADS_MODULE && i.name() == THREAD_SPAWN)
}

/// Satisfies every shared-memory import of `module` (for wasi-libc,
/// `env::memory`) with a new [`SharedMemory`] of exactly the declared type,
/// defined in `linker` under the import's name; returns them. Instances
/// made from the linker (every thread of the program) then share them.
///
/// # Errors
///
/// A name is already defined in `linker` and shadowing is off, or the
/// memory cannot be created (its reservation failed).
pub fn define_shared_memories<T: 'static>(linker: &mut Linker<T>, module: &Module) -> Result<Vec<SharedMemory>> {
    let mut out = Vec::new();
    for import in module.imports() {
        if let ExternType::Memory(ty) = import.ty()
            && ty.is_shared()
        {
            let memory = SharedMemory::new(module.engine(), ty)
                .with_context(|| format!("creating the shared memory `{}::{}`", import.module(), import.name()))?;
            linker.define(import.module(), import.name(), memory.clone())?;
            out.push(memory);
        }
    }
    Ok(out)
}

/// Defines `wasi::thread-spawn` in `linker`. `get` finds the program's
/// [`WasiThreads`] in the store's data; when it returns `None`,
/// `thread-spawn` returns an error (`-6`) to the guest.
///
/// # Errors
///
/// `wasi::thread-spawn` is already defined and shadowing is off.
pub fn add_thread_spawn_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: impl Fn(&mut T) -> Option<&WasiThreads<T>> + Send + Sync + 'static,
) -> Result<()> {
    linker.func_wrap(
        THREADS_MODULE,
        THREAD_SPAWN,
        move |mut caller: Caller<'_, T>, start_arg: i32| -> Result<i32> {
            let Some(threads) = get(caller.data_mut()).cloned() else {
                return Ok(-i32::from(Errno::Again.raw()));
            };
            let result = threads.spawn(&mut caller, start_arg);
            if threads.inner.trace {
                match &result {
                    Ok(tid) => eprintln!("wasi: thread-spawn({start_arg}) -> thread {tid}"),
                    Err(e) => eprintln!("wasi: thread-spawn({start_arg}) -> {}: {e:#}", Errno::Again),
                }
            }
            Ok(match result {
                Ok(tid) => tid as i32,
                Err(_) => -i32::from(Errno::Again.raw()),
            })
        },
    )?;
    Ok(())
}

type NewData<T> = dyn Fn(&mut T) -> T + Send + Sync;
type Configure<T> = dyn Fn(&mut Store<T>) -> Result<()> + Send + Sync;
type OnExit = dyn Fn(u32, ThreadExit) + Send + Sync;

struct Inner<T> {
    pre: InstancePre<T>,
    new_data: Box<NewData<T>>,
    configure: Option<Box<Configure<T>>>,
    on_exit: Box<OnExit>,
    stack_size: usize,
    trace: bool,
    next_tid: AtomicU32,
}

/// What `thread-spawn` needs to start a thread: the program's module with
/// its imports resolved (an [`InstancePre`] from the linker that also
/// holds WASI, `thread-spawn` and the shared memory), and how to make a
/// new thread's store data. Clones share everything, including the
/// thread-id counter; every store of the program holds one in its data.
///
/// A wasi-threads program imports a shared memory (wasi-libc names it
/// `env::memory`), imports `wasi::thread-spawn(start_arg: i32) -> i32` and
/// exports `wasi_thread_start(tid: i32, start_arg: i32)`. Each call to
/// `thread-spawn` instantiates the same module again in a new [`Store`] on
/// the same engine, with the same imports (so the same shared memory), and
/// runs `wasi_thread_start(tid, start_arg)` in that instance on a new OS
/// thread. The new store's data comes from the spawning store's data
/// through a closure of the embedder, which shares the WASI context
/// ([`WasiCtx::share`](crate::WasiCtx::share)): every thread sees the same
/// descriptors, preopens, arguments and environment.
///
/// `thread-spawn` returns the new thread's id (from 1 up, unique, below
/// [`MAX_THREAD_ID`]), or `-6` (minus errno `again`) when the thread
/// cannot be created: ids are used up, the store has no [`WasiThreads`],
/// instantiation fails (a resource limit, say) or the OS refuses a thread.
///
/// **Ending.** Threads are detached; a thread that returns from
/// `wasi_thread_start` just ends. One that calls `proc_exit` or traps ends
/// the whole program: what that means is the embedder's choice, through
/// [`WasiThreadsBuilder::on_exit`]; by default the process exits (with the
/// `proc_exit` status, or after printing the trap with status 134), since
/// nothing else can stop the other threads (a thread blocked in
/// `memory.atomic.wait32` or a host call cannot be interrupted). The main
/// thread's `proc_exit` and traps come back from its `_start` call as
/// usual; when `_start` returns, the program is over even if other threads
/// still run (as in Wasmtime): an embedder that wants that exits the
/// process (`kiln run` does, by returning from `main`).
///
/// ```no_run
/// use kiln::{Engine, Linker, Module, Store};
/// use kiln_wasi::{I32Exit, WasiCtx, WasiCtxBuilder, WasiThreads};
///
/// struct Host {
///     wasi: WasiCtx,
///     threads: Option<WasiThreads<Host>>,
/// }
///
/// # fn main() -> anyhow::Result<()> {
/// let engine = Engine::default();
/// let module = Module::from_file(&engine, "threads.wasm")?;
/// let mut linker: Linker<Host> = Linker::new(&engine);
/// kiln_wasi::add_to_linker(&mut linker, |h| &mut h.wasi)?;
/// kiln_wasi::add_thread_spawn_to_linker(&mut linker, |h| h.threads.as_ref())?;
/// kiln_wasi::define_shared_memories(&mut linker, &module)?;
/// let pre = linker.instantiate_pre(&module)?;
/// // Each new thread's data: a handle on the same WASI state and threads.
/// let threads = WasiThreads::new(pre.clone(), |parent: &mut Host| Host {
///     wasi: parent.wasi.share(),
///     threads: parent.threads.clone(),
/// })?;
/// let wasi = WasiCtxBuilder::new().inherit_stdio().arg("threads.wasm").build();
/// let mut store = Store::new(&engine, Host { wasi, threads: Some(threads) });
/// let instance = pre.instantiate(&mut store)?;
/// let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
/// let code = match start.call(&mut store, ()) {
///     Ok(()) => 0,
///     Err(e) => e.downcast_ref::<I32Exit>().map(|x| x.0).ok_or(e)?,
/// };
/// std::process::exit(code); // ends the threads still running
/// # }
/// ```
pub struct WasiThreads<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for WasiThreads<T> {
    fn clone(&self) -> Self {
        WasiThreads { inner: self.inner.clone() }
    }
}

impl<T> std::fmt::Debug for WasiThreads<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasiThreads")
            .field("next_tid", &self.inner.next_tid.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> WasiThreads<T> {
    /// Threads of `pre`'s module, whose stores get their data from
    /// `new_data(spawning store's data)`; the defaults of
    /// [`WasiThreadsBuilder`] for the rest.
    ///
    /// # Errors
    ///
    /// As [`WasiThreadsBuilder::build`].
    pub fn new(pre: InstancePre<T>, new_data: impl Fn(&mut T) -> T + Send + Sync + 'static) -> Result<Self> {
        Self::builder(pre, new_data).build()
    }

    /// A builder, to set more than [`new`](Self::new) does.
    pub fn builder(
        pre: InstancePre<T>,
        new_data: impl Fn(&mut T) -> T + Send + Sync + 'static,
    ) -> WasiThreadsBuilder<T> {
        WasiThreadsBuilder {
            pre,
            new_data: Box::new(new_data),
            configure: None,
            on_exit: Box::new(|tid, exit: ThreadExit| exit.exit_process(tid)),
            stack_size: DEFAULT_STACK,
            trace: false,
        }
    }

    /// The next thread id, unless they are used up.
    fn next_tid(&self) -> Result<u32> {
        self.inner
            .next_tid
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| (t < MAX_THREAD_ID).then_some(t + 1))
            .map_err(|_| anyhow!("all {} thread ids are used", MAX_THREAD_ID - 1))
    }

    /// Starts a thread running `wasi_thread_start(tid, start_arg)`;
    /// returns its id.
    fn spawn(&self, caller: &mut Caller<'_, T>, start_arg: i32) -> Result<u32> {
        let inner = &self.inner;
        let tid = self.next_tid()?;
        let data = (inner.new_data)(caller.data_mut());
        let mut store = Store::new(caller.engine(), data);
        if let Some(configure) = &inner.configure {
            configure(&mut store)?;
        }
        let instance = inner.pre.instantiate(&mut store)?;
        let start = instance.get_typed_func::<(i32, i32), ()>(&mut store, THREAD_START)?;
        let threads = self.clone();
        std::thread::Builder::new()
            .name(format!("wasi-thread-{tid}"))
            .stack_size(inner.stack_size)
            .spawn(move || {
                if let Err(e) = start.call(&mut store, (tid as i32, start_arg)) {
                    let exit = match e.downcast_ref::<I32Exit>() {
                        Some(code) => ThreadExit::Exit(code.0),
                        None => ThreadExit::Error(e),
                    };
                    (threads.inner.on_exit)(tid, exit);
                }
            })
            .context("the OS refused a new thread")?;
        Ok(tid)
    }
}

/// Configures [`WasiThreads`].
pub struct WasiThreadsBuilder<T> {
    pre: InstancePre<T>,
    new_data: Box<NewData<T>>,
    configure: Option<Box<Configure<T>>>,
    on_exit: Box<OnExit>,
    stack_size: usize,
    trace: bool,
}

impl<T: Send + 'static> WasiThreadsBuilder<T> {
    /// Runs `f` on each new thread's store before the module is
    /// instantiated in it: set its resource limiter, fuel, epoch deadline.
    /// An error fails the `thread-spawn` call (`-6`).
    pub fn configure_store(mut self, f: impl Fn(&mut Store<T>) -> Result<()> + Send + Sync + 'static) -> Self {
        self.configure = Some(Box::new(f));
        self
    }

    /// Called on the thread that ended, with its id, when a spawned thread
    /// calls `proc_exit` or traps. The program should end: the default,
    /// [`ThreadExit::exit_process`], ends the process. A handler that
    /// returns lets the other threads go on.
    pub fn on_exit(mut self, f: impl Fn(u32, ThreadExit) + Send + Sync + 'static) -> Self {
        self.on_exit = Box::new(f);
        self
    }

    /// The native stack size of spawned threads (default 8 MiB). Kiln
    /// bounds wasm's stack use by what the thread actually has, so a small
    /// stack means an earlier stack-overflow trap, not a crash.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// Prints every `thread-spawn` call and its result to standard error.
    pub fn trace(mut self, on: bool) -> Self {
        self.trace = on;
        self
    }

    /// The threads context.
    ///
    /// # Errors
    ///
    /// The module does not export `wasi_thread_start` as a function of
    /// `(i32, i32)` with no results, or exports a `memory` that is not
    /// shared (each thread would get a memory of its own).
    pub fn build(self) -> Result<WasiThreads<T>> {
        let module = self.pre.module();
        let want = FuncType::new([ValType::I32, ValType::I32], []);
        match module.get_export(THREAD_START) {
            Some(ExternType::Func(ty)) if ty == want => {}
            Some(ExternType::Func(ty)) => {
                bail!(
                    "wasi-threads: the module's `{THREAD_START}` has type {ty:?}; it must take (i32, i32) and return nothing"
                )
            }
            _ => bail!("wasi-threads: the module does not export a function `{THREAD_START}`"),
        }
        if let Some(ExternType::Memory(ty)) = module.get_export("memory")
            && !ty.is_shared()
        {
            bail!("wasi-threads: the module's memory is not shared; threads need a shared memory (import one)");
        }
        Ok(WasiThreads {
            inner: Arc::new(Inner {
                pre: self.pre,
                new_data: self.new_data,
                configure: self.configure,
                on_exit: self.on_exit,
                stack_size: self.stack_size,
                trace: self.trace,
                next_tid: AtomicU32::new(1),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_ids_are_positive_unique_and_run_out() {
        let engine = kiln::Engine::default();
        let module = Module::new(
            &engine,
            r#"(module (import "env" "memory" (memory 1 1 shared)) (func (export "wasi_thread_start") (param i32 i32)))"#,
        )
        .unwrap();
        let mut linker: Linker<()> = Linker::new(&engine);
        assert_eq!(define_shared_memories(&mut linker, &module).unwrap().len(), 1);
        let threads = WasiThreads::new(linker.instantiate_pre(&module).unwrap(), |_: &mut ()| ()).unwrap();
        let other = threads.clone();
        assert_eq!(threads.next_tid().unwrap(), 1);
        assert_eq!(other.next_tid().unwrap(), 2);
        threads.inner.next_tid.store(MAX_THREAD_ID - 1, Ordering::Relaxed);
        assert_eq!(other.next_tid().unwrap(), MAX_THREAD_ID - 1);
        assert!(threads.next_tid().is_err());
        assert!(other.next_tid().is_err());
    }

    #[test]
    fn threads_contexts_can_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<WasiThreads<()>>();
        send_sync::<WasiThreads<crate::WasiCtx>>();
    }
}
