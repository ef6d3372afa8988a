//! WASI preview 1 (`wasi_snapshot_preview1`) for Kiln.
//!
//! Every preview-1 function is provided: arguments and environment,
//! clocks, randomness, files and directories beneath preopened
//! directories, `poll_oneoff`, `proc_exit`, and sockets the embedder
//! preopens. Calls that cannot be supported return the proper errno; a
//! guest pointer outside its memory is `fault`. Nothing a guest does makes
//! the host panic or trap, except `proc_exit`, which ends the guest's call
//! with the error [`I32Exit`].
//!
//! wasi-threads (the `wasi::thread-spawn` import, for modules built for
//! `wasm32-wasi-threads`) is opt-in: see [`WasiThreads`] and
//! [`add_thread_spawn_to_linker`]. Its threads share one WASI state
//! ([`WasiCtx::share`]).
//!
//! Filesystem access goes through [`cap_std`]: each preopened directory is
//! a `cap_std::fs::Dir`, and every path is resolved beneath it, so `..`,
//! absolute paths and symbolic links cannot leave it, even while another
//! process changes the tree.
//!
//! ```no_run
//! use kiln::{Engine, Linker, Module, Store};
//! use kiln_wasi::{DirPerms, I32Exit, MemoryOutputPipe, WasiCtx, WasiCtxBuilder};
//!
//! # fn main() -> anyhow::Result<()> {
//! let engine = Engine::default();
//! let module = Module::from_file(&engine, "program.wasm")?;
//! let mut linker: Linker<WasiCtx> = Linker::new(&engine);
//! kiln_wasi::add_to_linker(&mut linker, |cx| cx)?;
//!
//! let stdout = MemoryOutputPipe::new(1 << 20);
//! let ctx = WasiCtxBuilder::new()
//!     .args(["program.wasm", "input.txt"])
//!     .stdout(stdout.clone())
//!     .inherit_stderr()
//!     .preopened_dir("data", ".", DirPerms::ReadOnly)?
//!     .build();
//! let mut store = Store::new(&engine, ctx);
//! let instance = linker.instantiate(&mut store, &module)?;
//! let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
//! let code = match start.call(&mut store, ()) {
//!     Ok(()) => 0,
//!     Err(e) => e.downcast_ref::<I32Exit>().map(|e| e.0).ok_or(e)?,
//! };
//! println!("exit {code}: {}", stdout.contents_string());
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod ctx;
mod errno;
mod linker;
mod memory;
mod poll;
mod preview1;
mod stdio;
mod threads;
pub mod types;
mod wait;

pub use ctx::{DirPerms, WasiCtx, WasiCtxBuilder};
pub use errno::Errno;
pub use linker::{I32Exit, MODULE, add_to_linker, add_to_linker_async};
pub use stdio::{InputStream, MemoryInputPipe, MemoryOutputPipe, OutputStream};
pub use threads::{
    MAX_THREAD_ID, THREAD_SPAWN, THREAD_START, THREADS_MODULE, ThreadExit, WasiThreads, WasiThreadsBuilder,
    add_thread_spawn_to_linker, define_shared_memories, uses_threads,
};

/// Whether `module` imports anything from `wasi_snapshot_preview1`.
pub fn uses_wasi(module: &kiln::Module) -> bool {
    module.imports().any(|i| i.module() == MODULE)
}
