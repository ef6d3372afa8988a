//! `kiln-cranelift`: Kiln's code generator. It implements
//! [`kiln_environ::Compiler`] by translating each wasm operator to Cranelift
//! IR (our own translator, the `translate` module), then letting Cranelift emit machine
//! code. Compiled code holds no host addresses: it reaches everything through
//! the VMContext whose layout `kiln-environ` defines.

#![deny(missing_docs)]

mod abi;
mod builtins;
mod compiler;
mod inline;
mod trampolines;
mod translate;
mod trap_codes;

pub use compiler::{CompilerOptions, CraneliftCompiler};
