//! Kiln's baseline compiler: one pass over a function's operators, straight
//! to x86-64 machine code, with no intermediate representation and no
//! register allocator. It compiles tens of times faster than Cranelift
//! and its code runs several times slower, which is the right trade for
//! code's first calls (docs/ARCHITECTURE.md, "Baseline compiler").
//!
//! [`compile_function`] either compiles a function or declines it
//! ([`Declined`]) when it uses something this compiler does not handle;
//! the caller then compiles it with Cranelift. The code it produces
//! follows the same calling convention, frame-pointer chain, trap table
//! and address map as Cranelift's, so the two kinds of code call each
//! other directly and the runtime cannot tell them apart.

mod abi;
mod calls;
mod compiler;
mod control;
mod frame;
mod memory;
mod numeric;
pub mod x64;

pub use compiler::{CpuFeatures, Declined, HOT_COUNT, Options, RegisterLocals, compile_function};

/// A string naming this build of the baseline compiler (its version and a
/// hash of its sources), for cache keys and artifact headers.
pub fn fingerprint() -> &'static str {
    concat!("kiln-baseline-", env!("CARGO_PKG_VERSION"), "-", env!("KILN_BASELINE_SOURCE_HASH"))
}
