//! The C API library built again as an example cdylib
//! (`target/<profile>/examples/libkiln.so`), from the same sources as the
//! crate's library, for the C tests (`tests/c_api.rs`).
//!
//! Cargo builds a package's examples for `cargo test` but not a library
//! that is only a cdylib/staticlib (rust-lang/cargo#8311), so this target
//! is how the tests get a `libkiln.so` built from the sources under test,
//! with the same dependency features as the test build. The module list is
//! `src/lib.rs`'s; `tests/c_api.rs` checks the two agree.

#![allow(non_camel_case_types, reason = "the C API's type names, as the standard spells them")]

#[path = "../src/error.rs"]
pub mod error;
#[path = "../src/extern_.rs"]
pub mod extern_;
#[path = "../src/ffi.rs"]
pub mod ffi;
#[path = "../src/func.rs"]
pub mod func;
#[path = "../src/instance.rs"]
pub mod instance;
#[path = "../src/kiln_ext.rs"]
pub mod kiln_ext;
#[path = "../src/module.rs"]
pub mod module;
#[path = "../src/refs.rs"]
pub mod refs;
#[path = "../src/store.rs"]
pub mod store;
#[path = "../src/trap.rs"]
pub mod trap;
#[path = "../src/types.rs"]
pub mod types;
#[path = "../src/val.rs"]
pub mod val;
#[path = "../src/vec.rs"]
pub mod vec;
#[path = "../src/wasi.rs"]
pub mod wasi;
