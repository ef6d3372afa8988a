//! x86-64: the instruction encoder.

pub mod asm;
