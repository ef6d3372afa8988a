//! Per-architecture code, one file per architecture with the same items:
//! `enter`/`kiln_unwind` (the host-to-wasm entry with its register save,
//! and the jump back on a trap), `enter_regs` (the direct entry with the
//! values in registers; x86-64 only, a stub elsewhere), signal-context
//! accessors, the epoch interruption stub (x86-64), the jump into an
//! exception handler and the register capture of conservative scans
//! (`resume_to_handler`, `callee_saved_registers`), the stack switch of
//! fibers (`fiber_enter`, `fiber_switch`), the entry of lazily compiled
//! functions' stubs (`kiln_lazy_entry`), and the macros defining the
//! builtins' entry stubs.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "aarch64")]
pub(crate) use aarch64::{builtin_stub, preserving_builtin_stub};
#[cfg(target_arch = "aarch64")]
pub use aarch64::{
    callee_saved_registers, context_pc_fp, context_pinned_reg, enter, enter_regs, fiber_enter, fiber_switch,
    kiln_lazy_entry, kiln_unwind, load_word, redirect, resume_to_handler, stack_pointer,
};
#[cfg(target_arch = "x86_64")]
pub(crate) use x86_64::{builtin_stub, preserving_builtin_stub};
#[cfg(target_arch = "x86_64")]
pub use x86_64::{
    call_from_signal, callee_saved_registers, context_pc_fp, context_pinned_reg, enter, enter_regs, fiber_enter,
    fiber_switch, kiln_epoch_stub, kiln_lazy_entry, kiln_unwind, load_word, redirect, resume_to_handler, stack_pointer,
};
