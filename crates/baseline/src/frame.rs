//! The frame of a baseline-compiled function, and the types of the values
//! it holds.
//!
//! Every value has a home in the frame: the callee VMContext, then each
//! local, then each operand-stack depth, 8 bytes apiece below the frame
//! pointer. An operator loads its operands from their slots into scratch
//! registers, computes, and stores its result into the slot of the depth
//! it lands at (or, for an integer result, leaves it in
//! `compiler::RESULT_REGS` until something needs it in the slot). Because
//! a depth's slot never moves, the values a block leaves for its end are
//! already where the code after the end reads them (control flushes the
//! deferred values first), and a branch only copies when the values it
//! carries sit above the target's depth.
//!
//! ```text
//! rbp + 8        return address
//! rbp            caller's rbp
//! rbp - 8        callee VMContext
//! rbp - 16       the caller's rbx, while rbx holds memory 0's base
//! rbp - 24 - 8k  the caller's r12 + k (k < 4), while it holds a local
//! rbp - 56 - 8i  local i (parameters first)
//! below          operand-stack depth d at rbp - 56 - 8 * (locals + d)
//! ```
//!
//! A few integer locals live in r12-r15 instead of their slots
//! (`compiler::LOCAL_REGS`); their slots are written only when optimized
//! code takes the activation over (on-stack replacement), which reads the
//! locals there. The offsets of the VMContext and of the locals are
//! `kiln_environ::vmoffsets::baseline_frame`'s.

use crate::x64::asm::{Mem, Reg};

/// The value types the baseline compiler handles (others make it decline
/// the function).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValType {
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
}

impl ValType {
    /// Whether the value travels in a float register in calls.
    pub fn is_float(self) -> bool {
        matches!(self, ValType::F32 | ValType::F64)
    }

    /// The type for a wasm value type, if handled.
    pub fn from_wasm(t: kiln_environ::WasmValType) -> Option<ValType> {
        match t {
            kiln_environ::WasmValType::I32 => Some(ValType::I32),
            kiln_environ::WasmValType::I64 => Some(ValType::I64),
            kiln_environ::WasmValType::F32 => Some(ValType::F32),
            kiln_environ::WasmValType::F64 => Some(ValType::F64),
            _ => None,
        }
    }

    /// The type for a wasmparser value type, if handled.
    pub fn from_parser(t: wasmparser::ValType) -> Option<ValType> {
        match t {
            wasmparser::ValType::I32 => Some(ValType::I32),
            wasmparser::ValType::I64 => Some(ValType::I64),
            wasmparser::ValType::F32 => Some(ValType::F32),
            wasmparser::ValType::F64 => Some(ValType::F64),
            _ => None,
        }
    }
}

use kiln_environ::vmoffsets::baseline_frame;

/// Bytes per slot.
const SLOT: i32 = baseline_frame::SLOT;

/// Where the caller's rbx is kept while rbx holds memory 0's base
/// ([`crate::compiler::HEAP_BASE`]).
pub const SAVED_RBX: Mem = Mem { base: Reg::Rbp, index: None, disp: baseline_frame::VMCTX - SLOT };

/// Where the caller's value of `LOCAL_REGS[k]` is kept while that
/// register holds a local.
pub fn saved_local_reg(k: usize) -> Mem {
    Mem { base: Reg::Rbp, index: None, disp: baseline_frame::VMCTX - SLOT * (2 + k as i32) }
}

/// Slots between the frame pointer and local 0's (the VMContext's,
/// [`SAVED_RBX`] and the four of [`saved_local_reg`]).
const HEADER_SLOTS: u64 = (-baseline_frame::LOCAL_0 / SLOT) as u64 - 1;

/// Where the callee VMContext is kept.
pub const VMCTX: Mem = Mem { base: Reg::Rbp, index: None, disp: baseline_frame::VMCTX };

/// The frame's slot layout for one function.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Number of locals, parameters included.
    pub locals: u32,
}

impl Layout {
    /// The slot of local `i`.
    pub fn local(&self, i: u32) -> Mem {
        Mem::base_disp(Reg::Rbp, baseline_frame::local(i))
    }

    /// The slot of operand-stack depth `d` (0 is the bottom).
    pub fn depth(&self, d: usize) -> Mem {
        Mem::base_disp(Reg::Rbp, baseline_frame::LOCAL_0 - SLOT * (self.locals as i32 + d as i32))
    }

    /// Bytes below the frame pointer with `max_depth` operand slots, kept
    /// a multiple of 16 so calls see an aligned stack (the frame pointer
    /// itself is 16-byte aligned).
    pub fn frame_bytes(&self, max_depth: usize) -> u32 {
        let slots = HEADER_SLOTS + u64::from(self.locals) + max_depth as u64;
        (slots * SLOT as u64).next_multiple_of(16) as u32
    }

    /// Whether a frame with this many locals and operand slots stays
    /// addressable with 32-bit displacements (a limit far above anything
    /// the stack could hold).
    pub fn fits(locals: u64, max_depth: usize) -> bool {
        (HEADER_SLOTS + 1 + locals + max_depth as u64) * (SLOT as u64) < (1 << 30)
    }
}
