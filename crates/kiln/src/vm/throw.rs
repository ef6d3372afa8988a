//! Throwing an exception: finding the wasm frame whose handler catches it
//! and resuming there.
//!
//! A throw starts at the wasm frame that last called out of wasm (a
//! `throw` builtin, or the host function that threw), recorded in the
//! store context, and follows the frame-pointer chain towards the entry of
//! the innermost activation. Each return address is looked up in its
//! module's exception table (`kiln_environ::ExnTable`): a call made inside
//! a `try_table` has an entry listing its handlers in the order they are
//! tried. A tagged handler matches when the tag it names, found through
//! the catching frame's own VMContext (spilled at a recorded offset), is
//! the exception's tag (the same definition address); a catch-all matches
//! anything. The first match resumes at its handler with the stack and
//! frame pointers of its frame and the exception in the first payload
//! register (`arch::resume_to_handler`). With no match before the
//! activation's entry, the exception becomes the store's pending exception
//! and the activation ends like a trap, with `TrapReason::Exception`.
//!
//! Traps never come here: only the `throw` builtins and host functions
//! that return `ThrownException` do, so wasm handlers never catch traps.
//! The frames skipped by the jump are wasm frames, trampolines and Rust
//! frames holding nothing that needs dropping (as for `raise`).

use super::arch;
use super::backtrace::CallerFrames;
use super::code_memory::{CodeWalk, walk_code};
use super::exn::VMExn;
use super::traphandlers::{TrapReason, current_activation, raise};
use super::vmcontext::VMTagDefinition;
use std::ptr::NonNull;

/// Throws exception object `raw`, which belongs to the store of this
/// thread's innermost activation, from the wasm frame that last called out.
///
/// # Safety
///
/// Called from a builtin or host-call shim running beneath that
/// activation, after the calling wasm frame was recorded in the store
/// context, with no live values that need dropping; `raw` is a live
/// object of the store.
pub unsafe fn throw(raw: usize) -> ! {
    let act = current_activation();
    if act.is_null() {
        eprintln!("kiln: exception thrown outside of wasm");
        std::process::abort();
    }
    // SAFETY: the innermost live activation and its store context (the
    // contract); `raw` is a live object.
    let (ctx, tag) = unsafe { (&*(*act).store_ctx, (*(raw as *const VMExn)).tag()) };
    let (pc, fp, entry_fp) = (ctx.last_wasm_exit_pc, ctx.last_wasm_exit_fp, ctx.last_wasm_entry_fp);
    // The registry lock is released before jumping (the guard must drop).
    if let Some((handler, sp, fp)) = walk_code(|walk| find_handler(walk, pc, fp, entry_fp, tag)) {
        // SAFETY: a handler of a live frame of this activation, found in
        // its module's table; nothing below needs dropping (the contract).
        unsafe { arch::resume_to_handler(handler, sp, fp, raw, 0) }
    }
    // SAFETY: the activation lends its store for the call (as builtins use it).
    unsafe { (*(*act).store).vm_store().exns_mut().set_pending(raw) };
    raise(TrapReason::Exception)
}

/// The first handler catching exceptions of the tag defined at `tag`, in
/// the wasm frames from the one at `fp` (which a call returning to `pc`
/// left) up to the entry trampoline whose frame pointer is `entry_fp`: its
/// address, and the stack and frame pointers it expects.
fn find_handler(
    walk: &mut CodeWalk<'_>,
    pc: usize,
    fp: usize,
    entry_fp: usize,
    tag: NonNull<VMTagDefinition>,
) -> Option<(usize, usize, usize)> {
    if pc == 0 || fp == 0 {
        return None;
    }
    if let Some((handler, sp)) = frame_handler(walk, pc, fp, tag) {
        return Some((handler, sp, fp));
    }
    // SAFETY: `fp` is the frame that last called out of wasm in the
    // activation whose entry frame is `entry_fp` (recorded by the stub or
    // trampoline the throw came through), and the walk stops at the first
    // caller that is not wasm.
    for (ret, caller_fp) in unsafe { CallerFrames::new(fp, entry_fp) } {
        if !walk.is_wasm_pc(ret.wrapping_sub(1)) {
            return None;
        }
        if let Some((handler, sp)) = frame_handler(walk, ret, caller_fp, tag) {
            return Some((handler, sp, caller_fp));
        }
    }
    None
}

/// The handler (its address and the stack pointer it expects) of the call
/// returning to `pc` in the frame at `fp` that catches exceptions of the
/// tag defined at `tag`, if any.
fn frame_handler(
    walk: &mut CodeWalk<'_>,
    pc: usize,
    fp: usize,
    tag: NonNull<VMTagDefinition>,
) -> Option<(usize, usize)> {
    walk.with_exn_site(pc, |site, text| {
        let sp = fp.checked_sub(site.frame_offset as usize)?;
        // SAFETY: the table says the frame's VMContext is spilled here;
        // the frame is live (it is on the chain being walked).
        let vmctx = unsafe { *((sp + site.vmctx_offset as usize) as *const usize) };
        for h in site.handlers() {
            let matches = match h.tag_location() {
                None => true,
                Some((offset, imported)) => {
                    let slot = vmctx + offset as usize;
                    // SAFETY: the compiler recorded the offset of a tag of
                    // the frame's module in its live VMContext: an imported
                    // tag's pointer, or a defined tag's definition.
                    let def = if imported { unsafe { *(slot as *const usize) } } else { slot };
                    def == tag.as_ptr() as usize
                }
            };
            if matches {
                return Some((text + h.offset as usize, sp));
            }
        }
        None
    })
    .flatten()
}
