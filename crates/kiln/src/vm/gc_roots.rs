//! Finding the GC references in wasm frames, precisely: every wasm frame of
//! a store on this thread is found through the frame-pointer chain of each
//! of the store's activations, and each frame's stack map (looked up by the
//! return address of the call it is stopped in) says which of its stack
//! slots hold GC references at that call.
//!
//! The innermost activation's frames start at the store context's
//! `last_wasm_exit_*` records (written when wasm called out to the
//! builtin or host function that is now running); for each entry nested in
//! a host function, the context keeps the enclosing wasm's records
//! (`VMStoreContext::outer_frames`), so the walk goes on outwards from
//! there, one activation of the store at a time.

use super::backtrace::CallerFrames;
use super::code_memory::{CodeWalk, walk_code};
use super::traphandlers::current_activation;
use super::vmcontext::VMStoreContext;

/// Calls `f` with the address of every stack slot holding a GC reference in
/// the wasm frames of the store whose context is `store_ctx`, on this
/// thread, innermost first.
///
/// # Safety
///
/// The store's code is stopped in a call out of wasm on this thread (a
/// builtin or host function of the store runs), so that the context's and
/// its activations' frame records describe live frames; the addresses are
/// used only until that call returns.
pub unsafe fn for_each_frame_root(store_ctx: *const VMStoreContext, mut f: impl FnMut(*mut u64)) {
    // SAFETY: the store's live context (the function's contract).
    let ctx = unsafe { &*store_ctx };
    let mut records = [ctx.last_wasm_entry_fp, ctx.last_wasm_exit_fp, ctx.last_wasm_exit_pc];
    let mut outer = ctx.outer_frames.iter().rev();
    let mut act = current_activation();
    walk_code(|walk| {
        while !act.is_null() {
            // SAFETY: activations on this thread's list are live (each is
            // popped before its frame returns).
            let a = unsafe { &*act };
            if std::ptr::eq(a.store_ctx, store_ctx) {
                let [entry_fp, fp, pc] = records;
                // SAFETY: the records describe this activation's innermost
                // wasm frame, stopped in a call out (the contract for the
                // innermost; an enclosing activation's records were saved
                // when it called the host function that entered the next).
                unsafe { walk_activation(walk, pc, fp, entry_fp, &mut f) };
                match outer.next() {
                    Some(r) => records = *r,
                    None => break,
                }
            }
            act = a.prev;
        }
    });
}

/// Calls `f` with the GC-reference slots of the wasm frames from the one at
/// `fp` (stopped in the call returning to `pc`) up to the entry trampoline
/// whose frame pointer is `entry_fp`.
///
/// # Safety
///
/// As for `CallerFrames::new(fp, entry_fp)`, with `pc` the return address
/// of the call the frame at `fp` is stopped in.
unsafe fn walk_activation(
    walk: &mut CodeWalk<'_>,
    pc: usize,
    fp: usize,
    entry_fp: usize,
    f: &mut impl FnMut(*mut u64),
) {
    if pc == 0 || fp == 0 {
        return;
    }
    frame_roots(walk, pc, fp, f);
    // SAFETY: the function's contract; the walk stops at the first caller
    // that is not wasm.
    for (ret, caller_fp) in unsafe { CallerFrames::new(fp, entry_fp) } {
        if !walk.is_wasm_pc(ret.wrapping_sub(1)) {
            return;
        }
        frame_roots(walk, ret, caller_fp, f);
    }
}

/// The GC-reference slots of the frame at `fp`, stopped in the call
/// returning to `ret`: its stack pointer is `fp` minus the site's frame
/// offset, and each slot is an offset from it.
fn frame_roots(walk: &mut CodeWalk<'_>, ret: usize, fp: usize, f: &mut impl FnMut(*mut u64)) {
    walk.with_stack_map(ret, |frame_offset, slots| {
        let sp = fp.wrapping_sub(frame_offset as usize);
        for s in slots {
            f(sp.wrapping_add(*s as usize) as *mut u64);
        }
    });
}
