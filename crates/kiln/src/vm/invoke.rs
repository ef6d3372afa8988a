//! Calling into wasm, and inspecting function references.

use super::instance::{Instance, instance_of_vmctx};
use super::traphandlers::{EntryTrampoline, TrapRecord, enter_wasm};
use super::vmcontext::{VMFuncRef, VMStoreContext, ValRaw};
use kiln_environ::vmoffsets::VMCTX_MAGIC;

/// Calls the wasm function `func_ref` through the array-call `trampoline`
/// of its signature, with arguments in `values` and results written back
/// into it.
///
/// Callers (the `Func` API) guarantee: `trampoline` is the entry trampoline
/// compiled for exactly the signature of `func_ref`, which is a live wasm
/// function of the store owning `store_ctx`; `values` has at least as many
/// slots as the signature's parameters and results, holding arguments of
/// the right types.
#[inline]
pub fn invoke_wasm(
    store_ctx: *mut VMStoreContext,
    max_wasm_stack: usize,
    trampoline: *const u8,
    func_ref: *const VMFuncRef,
    values: &mut [ValRaw],
) -> Result<(), Box<TrapRecord>> {
    // SAFETY: per the contract above, `func_ref` is live, `trampoline` is
    // an entry trampoline for its signature and `values` is large enough;
    // the callee is an instance, so it is its own caller context.
    unsafe {
        let fr = &*func_ref;
        let trampoline = std::mem::transmute::<*const u8, EntryTrampoline>(trampoline);
        enter_wasm(store_ctx, max_wasm_stack, trampoline, fr.vmctx, values.as_mut_ptr().cast(), fr.wasm_call)
    }
}

/// Runs `f` with `n` zeroed value slots (at most [`MAX_STACK_VALUES`]) on
/// the stack: the typed call path's argument/result buffer, zeroing only
/// the slots it uses.
#[inline(always)]
pub fn with_stack_values<R>(n: usize, f: impl FnOnce(&mut [ValRaw]) -> R) -> R {
    let mut buf = [const { std::mem::MaybeUninit::<ValRaw>::uninit() }; MAX_STACK_VALUES];
    let n = n.min(MAX_STACK_VALUES);
    for slot in &mut buf[..n] {
        slot.write(ValRaw::default());
    }
    // SAFETY: the first `n` slots were just initialized; `MaybeUninit<T>`
    // has the layout of `T`.
    let values = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<ValRaw>(), n) };
    f(values)
}

/// The largest number of slots [`with_stack_values`] provides: 16
/// parameters or results, plus one so an empty signature still has a slot.
pub const MAX_STACK_VALUES: usize = 17;

/// What a function reference points at.
#[derive(Debug, Clone, Copy)]
pub enum FuncRefOwner {
    /// A function of an instance: store-wide instance index and module function index.
    Instance {
        /// Store-wide instance index.
        instance: usize,
        /// Module function index.
        func: u32,
    },
    /// A host function.
    Host,
}

/// The engine type id and owner of a live, non-null function reference.
///
/// Callers pass only pointers that came out of wasm or a table of the same
/// store (every such pointer is a live `VMFuncRef`).
pub fn funcref_info(func_ref: usize) -> (u32, FuncRefOwner) {
    // SAFETY: per the contract, a live VMFuncRef.
    let fr = unsafe { &*(func_ref as *const VMFuncRef) };
    // SAFETY: every callee context begins with a 4-byte magic.
    let is_instance = unsafe { *(fr.vmctx as *const u32) } == VMCTX_MAGIC;
    if !is_instance {
        return (fr.type_id, FuncRefOwner::Host);
    }
    // SAFETY: an instance VMContext (checked magic) of a live instance.
    let inst: &Instance = unsafe { instance_of_vmctx(fr.vmctx) };
    let info = inst.module().module();
    let base = fr.vmctx as usize + inst.module().offsets.funcref(0) as usize;
    let slot = (func_ref - base) / kiln_environ::vmoffsets::func_ref::SIZE as usize;
    let first_defined = info.escaping_funcs.partition_point(|f| *f < info.num_imported_funcs);
    let func = info.escaping_funcs[first_defined + slot];
    (fr.type_id, FuncRefOwner::Instance { instance: inst.id(), func })
}
