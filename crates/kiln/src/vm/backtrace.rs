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
    // SAFETY: callers pass the frame recorded when wasm last called out of
    // (or was stopped in) the activation whose entry frame is `entry_fp`.
    for (ret, _) in unsafe { CallerFrames::new(fp, entry_fp) } {
        if pcs.len() >= MAX_FRAMES || !is_wasm_pc(ret - 1) {
            break;
        }
        pcs.push(ret - 1);
    }
    pcs
}

/// The callers of a wasm frame, innermost first, each as (the return
/// address into it, its frame pointer), up to (not including) the entry
/// trampoline of the activation; it also ends where the chain does not go
/// up the stack. Whoever walks it stops where a return address is not in
/// wasm code (a host frame).
pub struct CallerFrames {
    fp: usize,
    entry_fp: usize,
}

impl CallerFrames {
    /// The callers of the wasm frame whose frame pointer is `fp`, up to the
    /// entry trampoline whose frame pointer is `entry_fp`.
    ///
    /// # Safety
    ///
    /// `fp` is 0 or the frame pointer of a wasm frame (compiled with frame
    /// pointers kept) of a live activation on this thread whose entry
    /// trampoline's frame pointer is `entry_fp`, and the walk is used only
    /// while those frames are live and only as far as its caller's frames
    /// are wasm frames.
    pub unsafe fn new(fp: usize, entry_fp: usize) -> CallerFrames {
        CallerFrames { fp, entry_fp }
    }
}

impl Iterator for CallerFrames {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.fp == 0 {
            return None;
        }
        // SAFETY: `self.fp` is the frame pointer of a live wasm frame above
        // the entry trampoline (the constructor's contract, kept for each
        // caller the walker goes on to), pointing at the saved caller frame
        // pointer followed by the return address.
        let (next_fp, ret) = unsafe { (*(self.fp as *const usize), *((self.fp + 8) as *const usize)) };
        if next_fp == self.entry_fp || next_fp <= self.fp {
            self.fp = 0;
            return None;
        }
        self.fp = next_fp;
        Some((ret, next_fp))
    }
}
