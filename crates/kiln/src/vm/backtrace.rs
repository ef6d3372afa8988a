//! Walking the frame-pointer chain of wasm frames.

use super::code_memory::is_wasm_pc;

/// Most frames recorded in one backtrace.
const MAX_FRAMES: usize = 4096;

/// Collects the program counters of the wasm frames starting at `(pc, fp)`
/// up to (not including) the entry trampoline whose frame pointer is
/// `entry_fp`. `pc_is_return_address` says whether `pc` itself is a return
/// address (when starting from an exit into the host) rather than the
/// faulting instruction.
pub fn capture_pcs(pc: usize, fp: usize, entry_fp: usize, pc_is_return_address: bool) -> Vec<usize> {
    let mut pcs = Vec::new();
    if pc == 0 || fp == 0 {
        return pcs;
    }
    pcs.push(if pc_is_return_address { pc - 1 } else { pc });
    let mut fp = fp;
    while pcs.len() < MAX_FRAMES {
        // SAFETY: `fp` is the frame pointer of a wasm frame (compiled with
        // frame pointers preserved) above the entry trampoline, so it points
        // at the saved caller frame pointer followed by the return address.
        let (next_fp, ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        if next_fp == entry_fp || next_fp <= fp || !is_wasm_pc(ret - 1) {
            break;
        }
        pcs.push(ret - 1);
        fp = next_fp;
    }
    pcs
}
