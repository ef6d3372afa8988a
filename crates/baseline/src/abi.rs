//! The wasm calling convention (Cranelift's `tail` on x86-64), as far as
//! the baseline compiler uses it: the callee and caller VMContexts in rdi
//! and rsi, then integer arguments in rdx, rcx, r8, r9 and float arguments
//! in xmm0-xmm7, in order; the rest in 8-byte stack slots in order, in an
//! area of a multiple of 16 bytes that the caller reserves just above its
//! return address and the callee pops when it returns. Results come back
//! in rax, rcx, rdx, rsi, rdi, r8, r9, r10 and xmm0-xmm7; a signature with
//! more results (returned through memory) is declined.

use crate::compiler::{Declined, decline};
use crate::frame::ValType;
use crate::x64::asm::{Reg, Xmm};

/// Integer argument registers; the first two carry the VMContexts.
const INT_ARGS: [Reg; 6] = [Reg::Rdi, Reg::Rsi, Reg::Rdx, Reg::Rcx, Reg::R8, Reg::R9];
/// Integer result registers.
const INT_RESULTS: [Reg; 8] = [Reg::Rax, Reg::Rcx, Reg::Rdx, Reg::Rsi, Reg::Rdi, Reg::R8, Reg::R9, Reg::R10];
/// Float argument and result registers: xmm0 up to this.
const FLOAT_REGS: u8 = 8;

/// Where one argument or result travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    /// An integer register.
    Int(Reg),
    /// A float register.
    Float(Xmm),
    /// The stack slot at this offset in the argument area (from the
    /// stack pointer at the call; from rbp + 16 in the callee).
    Stack(i32),
}

/// Where a signature's wasm parameters go, and the size of its stack
/// argument area.
pub(crate) struct Args {
    /// One location per wasm parameter.
    pub(crate) locs: Vec<Loc>,
    /// Bytes of the stack argument area (a multiple of 16), which the
    /// callee pops.
    pub(crate) stack_bytes: u32,
}

/// The locations of parameters `params` (after the two VMContexts).
pub(crate) fn args(params: &[ValType]) -> Result<Args, Declined> {
    let (mut ints, mut floats, mut stack) = (2usize, 0u8, 0u32);
    let mut locs = Vec::with_capacity(params.len());
    for t in params {
        let loc = if t.is_float() && floats < FLOAT_REGS {
            floats += 1;
            Loc::Float(Xmm(floats - 1))
        } else if !t.is_float() && ints < INT_ARGS.len() {
            ints += 1;
            Loc::Int(INT_ARGS[ints - 1])
        } else {
            stack += 8;
            Loc::Stack((stack - 8) as i32)
        };
        locs.push(loc);
    }
    let stack_bytes = stack.next_multiple_of(16);
    if stack_bytes > u32::from(u16::MAX) {
        return decline("more stack arguments than a return can pop");
    }
    Ok(Args { locs, stack_bytes })
}

/// The registers of results `results`.
pub(crate) fn results(results: &[ValType]) -> Result<Vec<Loc>, Declined> {
    let (mut ints, mut floats) = (0usize, 0u8);
    let mut locs = Vec::with_capacity(results.len());
    for t in results {
        if t.is_float() && floats < FLOAT_REGS {
            floats += 1;
            locs.push(Loc::Float(Xmm(floats - 1)));
        } else if !t.is_float() && ints < INT_RESULTS.len() {
            ints += 1;
            locs.push(Loc::Int(INT_RESULTS[ints - 1]));
        } else {
            return decline("results returned through memory");
        }
    }
    Ok(locs)
}
