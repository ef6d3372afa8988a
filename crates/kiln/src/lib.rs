//! Kiln: a WebAssembly runtime with a Cranelift JIT and a Wasmtime-shaped
//! embedding API.
//!
//! # A tour
//!
//! Running wasm takes six steps, each with its type:
//!
//! 1. An [`Engine`] holds the settings ([`Config`]: features, fuel, epoch
//!    interruption, a compilation cache) and the compiler. Make one and
//!    share it: clones are cheap handles.
//! 2. A [`Module`] is compiled code, from binary or text ([`Module::new`]),
//!    ready to instantiate any number of times, on any thread.
//! 3. A [`Store<T>`](Store) owns instances and everything they create, and
//!    your data `T`, which host functions see. Limits are per store:
//!    [`Store::limiter`] with [`StoreLimits`], [`Store::set_fuel`],
//!    [`Store::set_epoch_deadline`].
//! 4. A [`Linker<T>`](Linker) names what modules import: host functions
//!    ([`Linker::func_wrap`]), other instances ([`Linker::instance`]), WASI
//!    (the `kiln-wasi` crate's `add_to_linker`).
//! 5. An [`Instance`] is a module instantiated in a store
//!    ([`Linker::instantiate`], or [`Instance::new`] with imports in order).
//! 6. Its exports are called through [`Func`] or, typed, [`TypedFunc`].
//!    Traps come back as errors holding a [`Trap`].
//!
//! ```
//! use kiln::{Caller, Engine, Linker, Module, Store};
//!
//! # fn main() -> anyhow::Result<()> {
//! let engine = Engine::default();
//! let module = Module::new(&engine, r#"
//!     (module
//!         (import "host" "log" (func $log (param i32)))
//!         (func (export "add") (param i32 i32) (result i32)
//!             (call $log (local.get 0))
//!             (i32.add (local.get 0) (local.get 1))))
//! "#)?;
//!
//! // The store's data, here the values logged, is what host functions share.
//! let mut linker: Linker<Vec<i32>> = Linker::new(&engine);
//! linker.func_wrap("host", "log", |mut caller: Caller<'_, Vec<i32>>, x: i32| caller.data_mut().push(x))?;
//! let mut store = Store::new(&engine, Vec::new());
//! let instance = linker.instantiate(&mut store, &module)?;
//!
//! let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add")?;
//! assert_eq!(add.call(&mut store, (2, 3))?, 5);
//! assert_eq!(store.data(), &[2]);
//! # Ok(())
//! # }
//! ```
//!
//! ## Limits and traps
//!
//! Fuel bounds how much wasm runs, deterministically; epochs bound how long
//! it runs ([`Engine::increment_epoch`] from any thread, or
//! [`Engine::start_epoch_ticker`]); [`StoreLimits`] bound memories and
//! tables. Running out is a [`Trap`] with its [`TrapCode`]:
//!
//! ```
//! use kiln::{Config, Engine, Instance, Module, Store, Trap, TrapCode};
//!
//! # fn main() -> anyhow::Result<()> {
//! let mut config = Config::new();
//! config.consume_fuel(true);
//! let engine = Engine::new(&config)?;
//! let module = Module::new(&engine, r#"(module (func (export "spin") (loop $l (br $l))))"#)?;
//! let mut store = Store::new(&engine, ());
//! store.set_fuel(10_000)?;
//! let spin = Instance::new(&mut store, &module, &[])?.get_typed_func::<(), ()>(&mut store, "spin")?;
//! let err = spin.call(&mut store, ()).unwrap_err();
//! assert_eq!(err.downcast_ref::<Trap>().map(Trap::code), Some(TrapCode::OutOfFuel));
//! # Ok(())
//! # }
//! ```
//!
//! ## Caches
//!
//! Compiling a large module takes seconds; [`Config::cache`] keeps compiled
//! modules and functions, in memory ([`MemoryCache`]) or on disk
//! ([`DirectoryCache`], shared by processes; its entries are authenticated,
//! so nobody else can slip machine code into it). One cache serves any
//! number of engines, of any settings. [`Module::serialize`] and the
//! `unsafe` [`Module::deserialize`] move compiled code around yourself, for
//! artifacts you trust. A [`CompileObserver`] watches a compilation
//! (progress, where the time goes).
//!
//! ```
//! use kiln::{Cache, Config, Engine, MemoryCache, Module};
//! use std::sync::Arc;
//!
//! # fn main() -> anyhow::Result<()> {
//! let cache = Arc::new(MemoryCache::new(64 << 20));
//! let mut config = Config::new();
//! config.cache(cache.clone());
//! let wat = r#"(module (func (export "f") (result i32) i32.const 1))"#;
//! Module::new(&Engine::new(&config)?, wat)?;
//! Module::new(&Engine::new(&config)?, wat)?; // another engine: found in the cache
//! assert_eq!(cache.stats().module_hits, 1);
//! # Ok(())
//! # }
//! ```
//!
//! ## WASI
//!
//! The `kiln-wasi` crate provides WASI preview 1 on a [`Linker`]: a
//! `WasiCtx` in the store's data gives the program its arguments,
//! environment, standard streams and preopened directories. The
//! `examples/` directory of the repository has a runnable example of each
//! of these (`cargo run --example wasi`).

#![deny(missing_docs)]
// Raw pointers are dereferenced in `vm` only; the rest of the crate is
// safe Rust over `vm`'s safe interface (the two `unsafe` API functions,
// `Module::deserialize{,_file}`, are allowed where they are declared).
#![deny(unsafe_code)]

mod async_api;
mod cache;
mod codegen;
mod compile;
mod compile_observer;
mod config;
mod engine;
mod exn;
mod externals;
mod fast_hash;
mod features;
mod func;
mod function_cache;
mod gc_refs;
mod instance;
mod lazy;
mod limits;
mod linker;
mod module;
mod profiling;
mod seal;
mod store;
mod tag;
mod trap;
mod types;
mod values;
#[allow(unsafe_code, reason = "the runtime's raw layer: the one place for unsafe code")]
pub(crate) mod vm;

pub use anyhow::{Error, Result};
pub use async_api::{AsyncWaiter, HostFuture};
pub use cache::{Cache, CacheEntry, CacheKind, CacheStats, DirectoryCache, MemoryCache};
pub use codegen::BaselineCompilation;
pub use compile_observer::{
    CompileObserver, CompilePhase, CompileTimings, FunctionOutcome, FunctionReport, FunctionTiming,
};
pub use config::{CompileStrategy, Config, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};
pub use engine::{Engine, EpochTicker};
pub use exn::{ExnRef, ThrownException};
pub use externals::{Extern, Global, Memory, MemoryAccessError, SharedMemory, Table};
pub use features::WasmFeature;
pub use func::{Caller, Func, IntoFunc, TypedFunc, WasmParams, WasmResults, WasmRet, WasmTy, WasmTyList, WithCaller};
pub use gc_refs::{ArrayRef, ArrayType, FieldType, GcHeapStats, RootScope, StorageType, StructRef, StructType};
pub use instance::Instance;
pub use kiln_environ::FuelCosts;
pub use limits::{LimitExceeded, ResourceLimiter, ResourceLimiterAsync, StoreLimits, StoreLimitsBuilder};
pub use linker::{InstancePre, Linker};
pub use module::Module;
pub use profiling::ProfilingStrategy;
pub use store::{AsContext, AsContextMut, Store, StoreContext, StoreContextMut, UpdateDeadline};
pub use tag::{Tag, TagType};
pub use trap::{FrameInfo, Trap, TrapCode, WasmBacktrace};
pub use types::{ExportType, ExternType, FuncType, GlobalType, ImportType, MemoryType, Mutability, TableType, ValType};
pub use values::{AnyRef, ExternRef, I31, V128, Val};

/// Hooks for Kiln's own tests (they break invariants on purpose); not part
/// of the API and not covered by semver.
#[doc(hidden)]
pub use vm::testing as __private_testing;

/// Gives the calling thread the lowest scheduling priority (Linux: nice
/// 19; threads it creates afterwards inherit it; no effect elsewhere), for
/// work that should only use cores nothing else wants, such as filling a
/// compilation cache after a program has run (`kiln run` does).
pub fn lowest_thread_priority() {
    vm::lazy_code::lowest_priority();
}
