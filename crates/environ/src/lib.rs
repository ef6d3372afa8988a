//! `kiln-environ`: the compiler-independent part of Kiln.
//!
//! It turns wasm bytes into a validated [`ModuleInfo`] plus function bodies
//! ([`translate_module`]), defines the layout of every runtime structure that
//! compiled code touches ([`VMOffsets`] and the fixed layouts beside it), the
//! list of runtime builtins ([`foreach_builtin_function!`]), the
//! [`Compiler`] trait, and the compiled-artifact format ([`link`],
//! [`CompiledModuleInfo`]). It knows nothing of Cranelift, and the compiler
//! forbids it any unsafe code (`forbid(unsafe_code)` below).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod artifact;
mod blob;
mod builtins;
mod cache_key;
mod compile;
mod const_expr;
mod error;
mod exn_table;
mod function_code;
mod function_pack;
pub mod gc_layout;
pub mod gc_ref;
mod index;
mod lazy_stubs;
mod local_uses;
mod module;
mod serialize;
mod stack_maps;
mod translate;
mod trap;
mod tunables;
mod types;
pub mod vmoffsets;

pub use artifact::*;
pub use blob::*;
pub use builtins::{BuiltinFunctionIndex, OSR_HOT_CALLS};
pub use cache_key::*;
pub use compile::*;
pub use const_expr::*;
pub use error::*;
pub use exn_table::*;
pub use function_code::*;
pub use function_pack::*;
pub use index::*;
pub use lazy_stubs::*;
pub use local_uses::*;
pub use module::*;
pub use serialize::*;
pub use stack_maps::*;
pub use translate::*;
pub use trap::*;
pub use tunables::*;
pub use types::*;
pub use vmoffsets::{GLOBAL_SIZE, VAL_RAW_SIZE, VMOffsets, funcref_slot};
pub use wasmparser;

/// Tag bit of funcref table elements: set when the element is initialized
/// (the rest of the word is the `VMFuncRef` pointer, 0 for null); an element
/// of 0 has not been initialized yet and is computed on first use from the
/// module's [`LazyTable`].
pub const FUNCREF_INIT_BIT: usize = 1;

/// Kiln's version, part of every cache key and artifact header.
pub const KILN_VERSION: &str = env!("CARGO_PKG_VERSION");
