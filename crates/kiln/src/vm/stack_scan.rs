//! Conservative scanning of this thread's stack, for collections that run
//! while wasm is on it (see `exn.rs`): every whole word between the
//! collecting frame and the outermost activation, and the callee-saved
//! registers, are treated as possible references.

use super::arch;
use super::traphandlers::{Activation, current_activation};

/// Calls `f` with every word of this thread's stack from the caller's
/// frame up to the outermost live activation, and with the callee-saved
/// registers as the caller has them. Nothing is called when no wasm runs
/// on this thread.
#[inline(never)]
pub fn scan_stack(mut f: impl FnMut(usize)) {
    let regs = arch::callee_saved_registers();
    let mut act = current_activation();
    let mut top = 0usize;
    while !act.is_null() {
        top = act as usize + std::mem::size_of::<Activation>();
        // SAFETY: the activation list holds only live activations of this
        // thread (maintained by `enter_wasm`).
        act = unsafe { (*act).prev };
    }
    if top == 0 {
        return;
    }
    regs.iter().copied().for_each(&mut f);
    let sp = arch::stack_pointer() & !7;
    let mut at = sp;
    while at + 8 <= top {
        // SAFETY: `[sp, top)` is this thread's own stack between the
        // current frame and a live frame above it, mapped and readable,
        // and `at` is aligned; the words are only compared as integers,
        // never dereferenced.
        f(unsafe { arch::load_word(at) });
        at += 8;
    }
}
