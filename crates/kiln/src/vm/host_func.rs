//! Host functions as wasm sees them: a context whose first fields mirror
//! `kiln_environ::vmoffsets::host_func_ctx`, reached through a `VMFuncRef`
//! whose code pointer is the engine's wasm-to-host trampoline for the
//! function's signature.

use super::traphandlers::{TrapReason, raise};
use super::vmcontext::{VMFuncRef, ValRaw};
use kiln_environ::vmoffsets::{HOST_FUNC_MAGIC, host_func_ctx};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// The host closure behind a host function: gets the store, the calling
/// instance (if called from wasm) and the argument/result slots.
pub type HostFn<S> = dyn Fn(&mut S, Option<usize>, &mut [ValRaw]) -> anyhow::Result<()> + Send + Sync;

/// The callee context of a host function.
#[repr(C)]
pub struct VMHostFuncContext<S: 'static> {
    magic: u32,
    array_call: unsafe extern "C" fn(*mut u8, *mut u8, *mut ValRaw, usize),
    func_ref: VMFuncRef,
    store: *mut S,
    func: Arc<HostFn<S>>,
}

const _: () = {
    assert!(std::mem::offset_of!(VMHostFuncContext<()>, magic) == host_func_ctx::MAGIC as usize);
    assert!(std::mem::offset_of!(VMHostFuncContext<()>, array_call) == host_func_ctx::ARRAY_CALL as usize);
    assert!(std::mem::offset_of!(VMHostFuncContext<()>, func_ref) == host_func_ctx::FUNC_REF as usize);
};

// SAFETY: the store pointer is only dereferenced by the shim while the
// owning store is executing wasm on this thread (it is `&mut`-borrowed by
// the call that entered wasm), and the closure is `Send + Sync`.
unsafe impl<S> Send for VMHostFuncContext<S> {}
// SAFETY: through a shared reference only the immutable parts are read
// (the function record, the `Send + Sync` closure); the store pointer is
// used by the shim alone, under the conditions given for `Send`.
unsafe impl<S> Sync for VMHostFuncContext<S> {}

impl<S: 'static> VMHostFuncContext<S> {
    /// Creates the context for `func` of engine type `type_id`, called from
    /// wasm through `trampoline`, inside the store at `store`.
    pub fn new(func: Arc<HostFn<S>>, type_id: u32, trampoline: *const u8, store: *mut S) -> Box<Self> {
        let mut ctx = Box::new(VMHostFuncContext {
            magic: HOST_FUNC_MAGIC,
            array_call: array_call_shim::<S>,
            func_ref: VMFuncRef { wasm_call: trampoline, vmctx: std::ptr::null_mut(), type_id },
            store,
            func,
        });
        ctx.func_ref.vmctx = (&mut *ctx as *mut Self).cast();
        ctx
    }

    /// The function reference wasm uses.
    pub fn func_ref(&self) -> *const VMFuncRef {
        &self.func_ref
    }

    /// The closure.
    pub fn func(&self) -> &Arc<HostFn<S>> {
        &self.func
    }
}

/// Called by the wasm-to-host trampoline with the host context as callee.
///
/// # Safety
///
/// `callee` is a live `VMHostFuncContext<S>` of a store of type `S` whose
/// wasm is running on this thread and called it, `caller` the calling
/// instance's live VMContext, and `values` points to `len` writable slots
/// holding the arguments.
unsafe extern "C" fn array_call_shim<S: 'static>(callee: *mut u8, caller: *mut u8, values: *mut ValRaw, len: usize) {
    let outcome = {
        // SAFETY: the trampoline passes the callee context of a host
        // function created for a store of type `S` (the array_call field of
        // that context is this very monomorphization), a live caller vmctx,
        // and `len` writable value slots.
        let (ctx, store, values, caller_id) = unsafe {
            let ctx = &*(callee as *const VMHostFuncContext<S>);
            let caller_id = super::instance::instance_id_of_vmctx(caller);
            (ctx, &mut *ctx.store, std::slice::from_raw_parts_mut(values, len), caller_id)
        };
        let func = ctx.func.clone();
        catch_unwind(AssertUnwindSafe(|| func(store, caller_id, values)))
    };
    match outcome {
        Ok(Ok(())) => {
            // With epoch signals, a deadline reached while the host ran
            // stops the caller here (no signal can stop Rust code).
            // SAFETY: `caller` is a live vmctx whose header holds its store
            // context; the host function's borrow of the store has ended.
            let ctx = unsafe { super::vmcontext::store_context_of_vmctx(caller) };
            // SAFETY: `ctx` is the caller's live store context, just read
            // from its VMContext header; the host function's borrow of the
            // store ended when it returned, so the store's hooks may run.
            if let Err(e) = unsafe { super::epoch::signal::poll_epoch_signal(ctx) } {
                raise(e.into());
            }
        }
        Ok(Err(e)) => raise(TrapReason::Host(e)),
        Err(panic) => raise(TrapReason::Panic(panic)),
    }
}
