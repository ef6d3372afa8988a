//! Host functions as wasm sees them: a context whose first fields mirror
//! `kiln_environ::vmoffsets::host_func_ctx`, reached through a `VMFuncRef`
//! whose code pointer is the engine's wasm-to-host trampoline for the
//! function's signature.
//!
//! The context holds no pointer to its store: when wasm calls a host
//! function, the store is the one whose call into wasm is running on this
//! thread, and the shim takes it from the innermost activation (which holds
//! that call's exclusive borrow of the store).

use super::code_memory::ModuleCode;
use super::store_hooks::VMStore;
use super::store_ids::InstanceId;
use super::traphandlers::{TrapReason, current_activation, raise};
use super::vmcontext::{VMFuncRef, VMOpaqueContext, ValRaw};
use kiln_environ::FuncType;
use kiln_environ::vmoffsets::{HOST_FUNC_MAGIC, host_func_ctx};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::Arc;

/// The host closure behind a host function: gets the store, the calling
/// instance (if called from wasm) and the argument/result slots.
pub type HostFn<S> = dyn Fn(&mut S, Option<InstanceId>, &mut [ValRaw]) -> anyhow::Result<()> + Send + Sync;

/// A wasm-to-host trampoline: code compiled by Kiln for one function
/// signature, kept mapped for as long as any host function uses it.
#[derive(Clone)]
pub struct HostTrampoline {
    code: Arc<ModuleCode>,
}

impl HostTrampoline {
    /// The trampoline at the start of `code`, which holds the engine's
    /// compiled wasm-to-host trampoline of one signature (and nothing else).
    pub fn new(code: Arc<ModuleCode>) -> HostTrampoline {
        HostTrampoline { code }
    }

    fn addr(&self) -> *const u8 {
        self.code.text_addr(0)
    }
}

/// The callee context of a host function.
#[repr(C)]
pub struct VMHostFuncContext<S: 'static> {
    magic: u32,
    array_call: unsafe extern "C" fn(NonNull<VMOpaqueContext>, *mut VMOpaqueContext, *mut ValRaw, usize),
    func_ref: VMFuncRef,
    func: Arc<HostFn<S>>,
    /// The function's type (which result slots hold references).
    ty: Arc<FuncType>,
    _trampoline: HostTrampoline,
}

const _: () = {
    assert!(std::mem::offset_of!(VMHostFuncContext<()>, magic) == host_func_ctx::MAGIC as usize);
    assert!(std::mem::offset_of!(VMHostFuncContext<()>, array_call) == host_func_ctx::ARRAY_CALL as usize);
    assert!(std::mem::offset_of!(VMHostFuncContext<()>, func_ref) == host_func_ctx::FUNC_REF as usize);
};

// SAFETY: the raw pointers in `func_ref` point at the trampoline's code
// (kept mapped by `_trampoline`) and at this context itself; the closure and
// the type are `Send + Sync`.
unsafe impl<S> Send for VMHostFuncContext<S> {}
// SAFETY: as for `Send`: nothing is mutated through a shared reference.
unsafe impl<S> Sync for VMHostFuncContext<S> {}

impl<S: VMStore + 'static> VMHostFuncContext<S> {
    /// Creates the context for `func` of type `ty` (engine type id
    /// `type_id`), called from wasm through `trampoline`, the engine's
    /// trampoline for that type.
    pub fn new(func: Arc<HostFn<S>>, ty: Arc<FuncType>, type_id: u32, trampoline: HostTrampoline) -> Box<Self> {
        let mut ctx = Box::new(VMHostFuncContext {
            magic: HOST_FUNC_MAGIC,
            array_call: array_call_shim::<S>,
            func_ref: VMFuncRef { wasm_call: trampoline.addr(), vmctx: std::ptr::null_mut(), type_id },
            func,
            ty,
            _trampoline: trampoline,
        });
        ctx.func_ref.vmctx = (&raw mut *ctx).cast::<VMOpaqueContext>();
        ctx
    }
}

impl<S: 'static> VMHostFuncContext<S> {
    /// The function record wasm sees (lives as long as this boxed context).
    pub fn func_ref(&self) -> NonNull<VMFuncRef> {
        NonNull::from(&self.func_ref)
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
/// `callee` is a live `VMHostFuncContext<S>`, called from wasm of a store
/// whose call into wasm is the innermost activation on this thread;
/// `caller` is the calling instance's live VMContext (kept raw and opaque
/// at this C boundary: it is checked for null and for an instance's magic,
/// not trusted, before its instance is looked up), and `values` points to
/// `len` writable slots holding the arguments.
unsafe extern "C" fn array_call_shim<S: VMStore + 'static>(
    callee: NonNull<VMOpaqueContext>,
    caller: *mut VMOpaqueContext,
    values: *mut ValRaw,
    len: usize,
) {
    let act = current_activation();
    let outcome = {
        // SAFETY: per the contract: `callee` is a live context of this very
        // monomorphization (its `array_call` field is this function), the
        // innermost activation is live and holds the exclusive borrow of the
        // running store, which no Rust code uses while its wasm runs, and
        // `values` has `len` slots.
        let (ctx, store, values, caller_id) = unsafe {
            let ctx = callee.cast::<VMHostFuncContext<S>>().as_ref();
            let caller_id = super::instance::instance_id_of_vmctx(caller);
            (ctx, &mut *(*act).store, std::slice::from_raw_parts_mut(values, len), caller_id)
        };
        match store.as_any_mut().downcast_mut::<S>() {
            Some(store) => {
                // The closure and the type live in their `Arc`s' shared
                // allocations, which the context keeps alive as long as
                // the store (contexts are freed only with it, and the call
                // borrows it): borrowing them through the `Arc`s' pointers
                // needs no reference count, and does not borrow the
                // context, which lives in the store the closure gets.
                // SAFETY: as just said.
                let (func, ty) = unsafe { (&*Arc::as_ptr(&ctx.func), &*Arc::as_ptr(&ctx.ty)) };
                catch_unwind(AssertUnwindSafe(|| {
                    // The GC references the host function roots (its
                    // arguments and anything it made) are released when it
                    // returns; its results are in `values` by then.
                    let mark = store.vm_store().gc_roots_mark();
                    let r = func(store, caller_id, values);
                    store.vm_store().release_gc_roots(mark);
                    r?;
                    check_results(store, ty, values)
                }))
            }
            None => Ok(Err(anyhow::anyhow!("host function called from a store of another type"))),
        }
    };
    match outcome {
        Ok(Ok(())) => {
            // With epoch signals, a deadline reached while the host ran
            // stops the caller here (no signal can stop Rust code).
            // SAFETY: the activation is live and lends its store; the host
            // function's borrow of it ended when it returned, so its hooks
            // may run.
            if let Err(e) = unsafe { super::epoch::signal::poll_epoch_signal((*act).store) } {
                raise(e.into());
            }
        }
        Ok(Err(e)) => {
            // A thrown exception (`StoreContextMut::throw`, or one passed on
            // from a nested call into wasm) is thrown on into the caller.
            let pending = if e.is::<crate::ThrownException>() {
                // SAFETY: as above; the host function has returned, so its
                // borrow of the store ended.
                unsafe { (*(*act).store).vm_store().exns_mut().take_pending() }
            } else {
                None
            };
            match pending {
                Some(raw) => {
                    drop(e);
                    // SAFETY: the wasm-to-host trampoline recorded the
                    // calling frame; nothing here needs dropping any more;
                    // `raw` is the store's pending object.
                    unsafe { super::throw::throw(raw) }
                }
                None => raise(TrapReason::Host(e)),
            }
        }
        Err(panic) => raise(TrapReason::Panic(panic)),
    }
}

/// Checks that the reference results a host function wrote are references
/// of its store: compiled code trusts them.
fn check_results(store: &mut dyn VMStore, ty: &FuncType, values: &[ValRaw]) -> anyhow::Result<()> {
    let vm = store.vm_store();
    for (t, v) in ty.results().iter().zip(values) {
        if !vm.holds_value(*t, *v) {
            anyhow::bail!("host function returned a reference that is not of this store");
        }
    }
    Ok(())
}
