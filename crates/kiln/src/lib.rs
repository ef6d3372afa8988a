//! Kiln: a WebAssembly runtime with a Cranelift JIT and a Wasmtime-shaped
//! embedding API.
//!
//! ```
//! use kiln::{Engine, Instance, Module, Store};
//!
//! # fn main() -> anyhow::Result<()> {
//! let engine = Engine::default();
//! let module = Module::new(&engine, r#"
//!     (module (func (export "add") (param i32 i32) (result i32)
//!         local.get 0 local.get 1 i32.add))
//! "#)?;
//! let mut store = Store::new(&engine, ());
//! let instance = Instance::new(&mut store, &module, &[])?;
//! let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add")?;
//! assert_eq!(add.call(&mut store, (2, 3))?, 5);
//! # Ok(())
//! # }
//! ```
//!
//! Traps come back as errors holding a [`Trap`]; host functions defined
//! with [`Func::wrap`] or [`Linker::func_wrap`] receive a [`Caller`] for
//! the store's data and the calling instance's exports.

#![deny(missing_docs)]

mod cache;
mod compile;
mod compile_observer;
mod config;
mod engine;
mod externals;
mod fast_hash;
mod func;
mod instance;
mod limits;
mod linker;
mod module;
mod profiling;
mod seal;
mod store;
mod trap;
mod types;
mod values;
pub(crate) mod vm;

pub use anyhow::{Error, Result};
pub use cache::{Cache, CacheEntry, CacheKind, CacheStats, DirectoryCache, MemoryCache};
pub use compile_observer::{CompileObserver, CompilePhase, CompileTimings, FunctionOutcome, FunctionReport, FunctionTiming};
pub use config::{Config, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};
pub use engine::{Engine, EpochTicker};
pub use kiln_environ::FuelCosts;
pub use externals::{Extern, Global, Memory, MemoryAccessError, SharedMemory, Table};
pub use func::{Caller, Func, IntoFunc, TypedFunc, WasmParams, WasmResults, WasmRet, WasmTy, WasmTyList, WithCaller};
pub use instance::Instance;
pub use limits::{LimitExceeded, ResourceLimiter, StoreLimits, StoreLimitsBuilder};
pub use linker::{InstancePre, Linker};
pub use module::Module;
pub use profiling::ProfilingStrategy;
pub use store::{AsContext, AsContextMut, Store, StoreContext, StoreContextMut, UpdateDeadline};
pub use trap::{FrameInfo, Trap, TrapCode, WasmBacktrace};
pub use types::{ExportType, ExternType, FuncType, GlobalType, ImportType, MemoryType, Mutability, TableType, ValType};
pub use values::{ExternRef, V128, Val};

/// Hooks for Kiln's own tests (they break invariants on purpose); not part
/// of the API and not covered by semver.
#[doc(hidden)]
pub use vm::testing as __private_testing;
