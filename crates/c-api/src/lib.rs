//! Kiln's C API: the standard WebAssembly C API (`include/wasm.h`) and
//! Kiln's extensions (`include/kiln.h`), built as `libkiln.so` and
//! `libkiln.a`.
//!
//! Every `extern "C"` function here is one declared in those headers; the
//! headers are the documentation of what each does. This crate is the one
//! place outside `kiln/src/vm/` with `unsafe` code: a C API receives raw
//! pointers. The dereferences are gathered in [`ffi`] (borrowing an
//! argument, reading a vector, writing an out-parameter, taking back a
//! box), each with the contract it relies on; the rest of the crate works
//! on references those helpers hand out.
//!
//! Rules every entry point follows:
//!
//! - A null pointer where the API needs an object is refused: the function
//!   returns NULL, false, zero or a trap, and records a message that
//!   `kiln_last_error_message` returns.
//! - Nothing panics across the boundary: entry points that call into Kiln
//!   or into user callbacks run inside [`ffi::guard`], which turns a panic
//!   into the same failure result.
//! - Objects of another store, wrong vector sizes and values of the wrong
//!   type are checked before Kiln sees them (Kiln would panic on a foreign
//!   object): a trap or a failure result.

#![allow(non_camel_case_types, reason = "the C API's type names, as the standard spells them")]

pub mod error;
pub mod extern_;
pub mod ffi;
pub mod func;
pub mod instance;
pub mod kiln_ext;
pub mod module;
pub mod refs;
pub mod store;
pub mod trap;
pub mod types;
pub mod val;
pub mod vec;
pub mod wasi;
