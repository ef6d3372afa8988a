//! The builtins that compiled code calls (the list is
//! `kiln_environ::foreach_builtin_function!`), and the table of their
//! addresses that every VMContext points to.
//!
//! One macro, [`define_builtins`], defines for each builtin taking the
//! VMContext:
//!
//! - `entries::NAME::raw`, the `unsafe extern "C"` function behind it: it turns the
//!   VMContext compiled code passes into a [`BuiltinCx`] (the one unsafe
//!   step), calls the safe body, and raises the body's error as a trap
//!   after the body's locals are dropped;
//! - `entries::NAME::stub`, the address compiled code calls: an assembly
//!   stub (`arch::builtin_stub!`) that records the calling wasm frame in
//!   the store context, so a trap raised in the builtin has a backtrace,
//!   then jumps to `raw`;
//! - its slot in [`BUILTINS`].
//!
//! The bodies (`mod body`) are safe Rust over a `BuiltinCx`. Builtins that
//! do not take the VMContext (`raw_memmove`, `raw_memset`) cannot trap and
//! are called directly, with no stub.

use super::instance::{Instance, instance_of_vmctx};
use super::store_hooks::{HookError, VMStore};
use super::traphandlers::{TrapReason, current_activation, raise};
use super::vmcontext::{VMContext, VMStoreContext, ValRaw};
use kiln_environ::TrapCode;
use kiln_environ::{FuncIndex, TagIndex};
use std::ptr::NonNull;

/// What a builtin body works on: the calling instance, and the store's
/// hooks (memory and table growth decisions, the epoch deadline). The
/// store owns the instance, so a body gets one or the other at a time
/// (each accessor borrows the whole context).
pub struct BuiltinCx {
    vmctx: NonNull<VMContext>,
}

impl BuiltinCx {
    /// The context of a builtin called with `vmctx`.
    ///
    /// # Safety
    ///
    /// `vmctx` is the live VMContext of an instance whose wasm is running on
    /// this thread and called the builtin (so its store is not borrowed by
    /// any Rust code), and the context is used only during that call.
    unsafe fn new(vmctx: NonNull<VMContext>) -> BuiltinCx {
        BuiltinCx { vmctx }
    }

    /// The calling instance.
    fn instance(&mut self) -> &mut Instance {
        // SAFETY: `vmctx` is a live instance's VMContext whose store nothing
        // else borrows during the call (the constructor's contract), and
        // this borrow of `self` excludes the hooks' for its duration.
        unsafe { instance_of_vmctx(self.vmctx) }
    }

    /// The store context of the calling instance's store.
    fn store_context(&self) -> &VMStoreContext {
        // SAFETY: the VMContext header of a live instance holds its store's
        // context, which outlives the call (the constructor's contract).
        unsafe { &*VMContext::store_context(self.vmctx) }
    }

    /// The raw store of the calling instance, taken from the innermost
    /// activation, whose call lends it.
    fn vm_store(&mut self) -> &mut super::store::VmStore {
        let act = current_activation();
        // SAFETY: as in `with_hooks`.
        unsafe { (*(*act).store).vm_store() }
    }

    /// Runs `f` with the store (its hooks: growth decisions, the epoch
    /// deadline), taken from the innermost activation, whose call lends it.
    fn with_hooks<R>(&mut self, f: impl FnOnce(&mut dyn VMStore) -> Result<R, HookError>) -> Result<R, TrapReason> {
        let act = current_activation();
        // SAFETY: a builtin runs beneath the call into wasm of its caller's
        // store, the innermost activation (live, not null), which holds that
        // store's exclusive borrow; no Rust code uses the store meanwhile, and
        // this borrow of `self` excludes `instance()` for its duration.
        f(unsafe { &mut *(*act).store }).map_err(TrapReason::from)
    }
}

/// A wasm trap with `code`.
fn trap(code: TrapCode) -> TrapReason {
    TrapReason::Wasm(code)
}

/// Makes room for an allocation of `size` bytes in the GC heap (a
/// builtin's first step, before it reads anything that a collection could
/// move): collects if it does not fit the heap's capacity, and asks the
/// store's resource limiter when the heap would grow past what it allowed;
/// if it refuses, only what a collection frees may be used.
///
/// # Errors
///
/// `allocation failed` when the limiter refused and a collection did not
/// free enough; the limiter's own error.
fn prepare_alloc(cx: &mut BuiltinCx, size: u64) -> Result<(), TrapReason> {
    if !cx.vm_store().has_gc_heap() {
        cx.with_hooks(|h| h.ensure_gc_heap())?;
    }
    let hint = if cx.vm_store().gc_wants_limit_hint() { cx.with_hooks(|h| Ok(h.gc_heap_size_limit()))? } else { None };
    while let Some((current, desired, maximum)) = cx.vm_store().gc_growth_request(size, hint) {
        let allowed = cx.with_hooks(|h| h.gc_heap_growing(current, desired, maximum))?;
        if !cx.vm_store().gc_growth_answer(size, desired, allowed) {
            return Err(trap(TrapCode::AllocationFailed));
        }
    }
    Ok(())
}

/// [`prepare_alloc`] for an array of `len` elements of `elem_size` bytes.
fn prepare_array_alloc(cx: &mut BuiltinCx, elem_size: u32, len: u32) -> Result<(), TrapReason> {
    let size = kiln_environ::gc_layout::array_size(elem_size, len).map_or(u64::MAX, u64::from);
    prepare_alloc(cx, size)
}

/// The safe bodies of the builtins, one per builtin taking the VMContext.
mod body {
    use super::*;
    use crate::vm::parking::{WaitResult, notify, wait};

    type R<T> = Result<T, TrapReason>;

    pub fn memory_grow(cx: &mut BuiltinCx, memory: u32, delta: u64) -> R<u64> {
        let m = cx.instance().memory(memory);
        let (current, desired, maximum) = (m.byte_len(), m.size_after_grow(delta), m.declared_max_bytes());
        let Some(desired) = desired else { return Ok(u64::MAX) };
        if delta != 0 && !cx.with_hooks(|h| h.memory_growing(current, desired, maximum))? {
            return Ok(u64::MAX);
        }
        Ok(match cx.instance().memory(memory).grow(delta) {
            Ok(Some(old)) => old,
            _ => u64::MAX,
        })
    }

    pub fn memory_init(cx: &mut BuiltinCx, memory: u32, data: u32, dst: u64, src: u32, len: u32) -> R<()> {
        cx.instance().memory_init(memory, data, dst, u64::from(src), u64::from(len)).map_err(trap)
    }

    pub fn data_drop(cx: &mut BuiltinCx, data: u32) -> R<()> {
        cx.instance().data_drop(data);
        Ok(())
    }

    pub fn table_grow(cx: &mut BuiltinCx, table: u32, delta: u64, init: usize) -> R<u64> {
        let t = cx.instance().table(table);
        let (current, maximum) = (t.size(), t.ty().maximum);
        let Some(desired) = current.checked_add(delta) else { return Ok(u64::MAX) };
        if delta != 0 && !cx.with_hooks(|h| h.table_growing(current, desired, maximum))? {
            return Ok(u64::MAX);
        }
        Ok(cx.instance().table_mut(table).grow(delta, init).unwrap_or(u64::MAX))
    }

    pub fn table_fill(cx: &mut BuiltinCx, table: u32, dst: u64, val: usize, len: u64) -> R<()> {
        if cx.instance().table_mut(table).fill(dst, val, len) { Ok(()) } else { Err(trap(TrapCode::TableOutOfBounds)) }
    }

    pub fn table_copy(cx: &mut BuiltinCx, dst_table: u32, src_table: u32, dst: u64, src: u64, len: u64) -> R<()> {
        let inst = cx.instance();
        let oob = || trap(TrapCode::TableOutOfBounds);
        if dst.checked_add(len).is_none_or(|e| e > inst.table(dst_table).size()) {
            return Err(oob());
        }
        if inst.table_ptr(dst_table) == inst.table_ptr(src_table) {
            return if inst.table_mut(dst_table).copy_within(dst, src, len) { Ok(()) } else { Err(oob()) };
        }
        if src.checked_add(len).is_none_or(|e| e > inst.table(src_table).size()) {
            return Err(oob());
        }
        // Two distinct tables: copy through a small buffer, reading
        // untouched source elements without storing them.
        let mut buf = [0usize; 256];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len() as u64);
            let chunk = &mut buf[..n as usize];
            if !inst.table(src_table).read_into(src + done, chunk) {
                return Err(oob());
            }
            let t = inst.table_mut(dst_table);
            for (k, v) in chunk.iter().enumerate() {
                t.set(dst + done + k as u64, *v);
            }
            done += n;
        }
        Ok(())
    }

    pub fn table_get_lazy(cx: &mut BuiltinCx, table: u32, index: u64) -> R<usize> {
        cx.instance().table_mut(table).get(index).ok_or(trap(TrapCode::TableOutOfBounds))
    }

    pub fn table_init(cx: &mut BuiltinCx, table: u32, elem: u32, dst: u64, src: u32, len: u32) -> R<()> {
        cx.instance().table_init(table, elem, dst, u64::from(src), u64::from(len)).map_err(trap)
    }

    pub fn elem_drop(cx: &mut BuiltinCx, elem: u32) -> R<()> {
        cx.instance().elem_drop(elem);
        Ok(())
    }

    pub fn osr_entry(cx: &mut BuiltinCx, func: u32, loop_index: u32) -> R<usize> {
        let module = cx.instance().module().clone();
        Ok(module.code.lazy().map_or(0, |lazy| lazy.osr_entry(func, loop_index)))
    }

    pub fn ref_func(cx: &mut BuiltinCx, func: u32) -> R<usize> {
        Ok(cx.instance().func_ref(FuncIndex::from_u32(func)) as usize)
    }

    pub fn gc_alloc(cx: &mut BuiltinCx, type_index: u32, size: u32) -> R<u64> {
        let type_id = cx.instance().module().type_ids[type_index as usize];
        let kind = kiln_environ::gc_layout::KIND_STRUCT;
        prepare_alloc(cx, u64::from(size))?;
        cx.vm_store().gc_alloc(type_id, kind, size).map(u64::from).ok_or(trap(TrapCode::AllocationFailed))
    }

    pub fn gc_alloc_array(cx: &mut BuiltinCx, type_index: u32, len: u32) -> R<u64> {
        let inst = cx.instance();
        let (_, elem_size) = inst.array_element(type_index).ok_or(trap(TrapCode::AllocationFailed))?;
        let type_id = inst.module().type_ids[type_index as usize];
        prepare_array_alloc(cx, elem_size, len)?;
        cx.vm_store().gc_alloc_array(type_id, elem_size, len).map(u64::from).ok_or(trap(TrapCode::AllocationFailed))
    }

    pub fn gc_box_extern(cx: &mut BuiltinCx, word: usize) -> R<u64> {
        prepare_alloc(cx, u64::from(kiln_environ::gc_layout::EXTERN_BOX_SIZE))?;
        cx.vm_store().gc_box_extern(word).map(u64::from).ok_or(trap(TrapCode::AllocationFailed))
    }

    pub fn gc_remember(cx: &mut BuiltinCx, obj: u64) -> R<()> {
        cx.vm_store().gc_remember(obj);
        Ok(())
    }

    pub fn array_new_data(cx: &mut BuiltinCx, type_index: u32, data: u32, offset: u32, len: u32) -> R<u64> {
        let (_, elem_size) = cx.instance().array_element(type_index).ok_or(trap(TrapCode::AllocationFailed))?;
        prepare_array_alloc(cx, elem_size, len)?;
        cx.instance().array_new_data(type_index, data, offset, len).map(u64::from).map_err(trap)
    }

    pub fn array_new_elem(cx: &mut BuiltinCx, type_index: u32, elem: u32, offset: u32, len: u32) -> R<u64> {
        let (_, elem_size) = cx.instance().array_element(type_index).ok_or(trap(TrapCode::AllocationFailed))?;
        prepare_array_alloc(cx, elem_size, len)?;
        cx.instance().array_new_elem(type_index, elem, offset, len).map(u64::from).map_err(trap)
    }

    pub fn array_init_data(
        cx: &mut BuiltinCx,
        type_index: u32,
        data: u32,
        array: u64,
        dst: u32,
        src: u32,
        len: u32,
    ) -> R<()> {
        cx.instance().array_init_data(type_index, data, array, dst, src, len).map_err(trap)
    }

    pub fn array_init_elem(
        cx: &mut BuiltinCx,
        type_index: u32,
        elem: u32,
        array: u64,
        dst: u32,
        src: u32,
        len: u32,
    ) -> R<()> {
        cx.instance().array_init_elem(type_index, elem, array, dst, src, len).map_err(trap)
    }

    pub fn is_subtype(cx: &mut BuiltinCx, actual: u32, expected: u32) -> R<u32> {
        Ok(u32::from(cx.vm_store().types.is_subtype(actual, expected)))
    }

    pub fn externref_retain(_cx: &mut BuiltinCx, _externref: usize) -> R<()> {
        Ok(())
    }

    pub fn externref_release(_cx: &mut BuiltinCx, _externref: usize) -> R<()> {
        Ok(())
    }

    /// Checks alignment, then bounds, of an atomic access of `size` bytes at
    /// `addr` in `memory`; returns its native address and whether the
    /// memory is shared.
    fn atomic_target(inst: &Instance, memory: u32, addr: u64, size: u64) -> R<(NonNull<u8>, bool)> {
        if !addr.is_multiple_of(size) {
            return Err(trap(TrapCode::HeapMisaligned));
        }
        let m = inst.memory(memory);
        if addr.checked_add(size).is_none_or(|e| e > m.byte_len() as u64) {
            return Err(trap(TrapCode::MemoryOutOfBounds));
        }
        // In bounds, so inside the memory's mapping, which is never at
        // address 0: the `None` case cannot happen.
        let target = NonNull::new(m.base().wrapping_add(addr as usize)).ok_or(trap(TrapCode::MemoryOutOfBounds))?;
        Ok((target, m.is_shared()))
    }

    pub fn memory_atomic_notify(cx: &mut BuiltinCx, memory: u32, addr: u64, count: u32) -> R<u32> {
        match atomic_target(cx.instance(), memory, addr, 4)? {
            (t, true) => Ok(notify(t, count)),
            // Nobody can wait on an unshared memory.
            (_, false) => Ok(0),
        }
    }

    /// The target of `memory.atomic.wait{32,64}`: aligned, in bounds, and in
    /// a shared memory.
    fn wait_target(cx: &mut BuiltinCx, memory: u32, addr: u64, size: u64) -> R<NonNull<u8>> {
        match atomic_target(cx.instance(), memory, addr, size)? {
            (t, true) => Ok(t),
            (_, false) => Err(trap(TrapCode::AtomicWaitNonSharedMemory)),
        }
    }

    pub fn memory_atomic_wait32(cx: &mut BuiltinCx, memory: u32, addr: u64, expected: u32, timeout: u64) -> R<u32> {
        let t = wait_target(cx, memory, addr, 4)?;
        // SAFETY: `t` is an aligned, in-bounds address of a live shared
        // memory (checked above); shared memories never shrink or move.
        wait_interruptibly(cx, t, || unsafe { crate::vm::parking::load32(t) }, u64::from(expected), timeout as i64)
    }

    pub fn memory_atomic_wait64(cx: &mut BuiltinCx, memory: u32, addr: u64, expected: u64, timeout: u64) -> R<u32> {
        let t = wait_target(cx, memory, addr, 8)?;
        // SAFETY: as in `memory_atomic_wait32`, with 8-byte alignment.
        wait_interruptibly(cx, t, || unsafe { crate::vm::parking::load64(t) }, expected, timeout as i64)
    }

    /// `memory.atomic.wait` that epoch interruption can reach: a thread
    /// parked past its store's epoch deadline leaves the queue and runs the
    /// deadline hook (which traps, or extends the deadline and the wait
    /// resumes).
    fn wait_interruptibly(
        cx: &mut BuiltinCx,
        addr: NonNull<u8>,
        load: impl Fn() -> u64,
        expected: u64,
        timeout_ns: i64,
    ) -> R<u32> {
        let deadline =
            (timeout_ns >= 0).then(|| std::time::Instant::now() + std::time::Duration::from_nanos(timeout_ns as u64));
        let epochs = cx.instance().module().tunables.epoch_interruption;
        loop {
            let ctx = cx.store_context();
            // SAFETY: a store context's epoch counter points at its engine's,
            // alive as long as the store.
            let epoch_passed = || epochs && crate::vm::epoch::deadline_reached(ctx, unsafe { &*ctx.epoch_counter });
            match wait(addr, &load, expected, deadline, epoch_passed) {
                WaitResult::Interrupted => cx.with_hooks(|h| h.new_epoch().map(drop))?,
                done => return Ok(done.code()),
            }
        }
    }

    pub fn throw(cx: &mut BuiltinCx, tag: u32, values: usize) -> R<()> {
        let t = TagIndex::from_u32(tag);
        let (id, payload) = {
            let inst = cx.instance();
            let info = inst.module().module();
            let params = info.func_type_at(info.tags[t.index()]).params();
            // SAFETY: compiled code passes a stack slot holding one value
            // slot per parameter of the tag's type, live during the call.
            let slots = unsafe { std::slice::from_raw_parts(values as *const ValRaw, params.len()) };
            // Only the bytes of each value's type were written.
            let payload: Box<[ValRaw]> = params.iter().zip(slots).map(|(t, v)| v.truncated_to(*t)).collect();
            (inst.id(), payload)
        };
        let vm = cx.vm_store();
        let tag = vm.instance_tag(id, t);
        let raw = vm.new_exn(tag, payload).map_err(|e| TrapReason::Host(anyhow::anyhow!(e)))?;
        // SAFETY: called by compiled code through the stub (which recorded
        // the frame), holding nothing to drop; `raw` is the store's object.
        unsafe { crate::vm::throw::throw(raw) }
    }

    pub fn throw_ref(cx: &mut BuiltinCx, exn: usize) -> R<()> {
        if exn == 0 {
            return Err(trap(TrapCode::NullReference));
        }
        if !cx.vm_store().exns().contains(exn) {
            return Err(TrapReason::Host(anyhow::anyhow!("internal: throw_ref of an object the store does not hold")));
        }
        // SAFETY: as in `throw`.
        unsafe { crate::vm::throw::throw(exn) }
    }

    pub fn new_epoch(cx: &mut BuiltinCx) -> R<()> {
        // The hook stores the new deadline in the store context, where
        // compiled code reloads it.
        cx.with_hooks(|h| h.new_epoch().map(drop))
    }

    pub fn out_of_fuel(cx: &mut BuiltinCx, threshold: u64) -> R<()> {
        // The hook refuels the counter in the store context, where
        // compiled code reloads it. The threshold is a signed count passed
        // in an `i64` parameter.
        cx.with_hooks(|h| h.out_of_fuel(threshold as i64))
    }
}

/// Builtins that take no VMContext: called directly by compiled code,
/// which has checked their arguments.
mod direct {
    /// `memory.copy`'s copy, and `array.copy`'s and `array.new_data`'s.
    ///
    /// # Safety
    ///
    /// Compiled code checked both ranges before the call: against their
    /// memories' current lengths (memories never shrink), against the GC
    /// arrays' lengths (no collection runs during the call), or against
    /// the data segment's length (its bytes live as long as the module).
    pub unsafe extern "C" fn raw_memmove(dst: usize, src: usize, len: u64) {
        // SAFETY: per the contract; `copy` allows overlap. Raw copies
        // because a shared memory may be accessed by other threads
        // meanwhile.
        unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, len as usize) }
    }

    /// `memory.fill`'s fill.
    ///
    /// # Safety
    ///
    /// As for [`raw_memmove`], for the one destination range.
    pub unsafe extern "C" fn raw_memset(dst: usize, val: u32, len: u64) {
        // SAFETY: per the contract.
        unsafe { std::ptr::write_bytes(dst as *mut u8, val as u8, len as usize) }
    }
}

macro_rules! rust_ty {
    (vmctx) => { NonNull<VMContext> };
    (i32) => { u32 };
    (i64) => { u64 };
    (ptr) => { usize };
}

/// The address compiled code calls for builtin `$name`: the register
/// preserving stub for builtins with `preserves_all_registers`, the plain
/// stub for other builtins taking the VMContext, the function itself for
/// the others.
macro_rules! builtin_entry {
    ((vmctx) new_epoch) => {
        preserving::new_epoch
    };
    ((vmctx i64) out_of_fuel) => {
        preserving::out_of_fuel
    };
    ((vmctx $($rest:ident)*) $name:ident) => {
        entries::$name::stub
    };
    (($($rest:ident)*) $name:ident) => {
        direct::$name
    };
}

/// Defines `entries::NAME::{raw, stub}` for a builtin taking the VMContext
/// (nothing for the direct ones).
macro_rules! define_entry {
    ($name:ident (vmctx: vmctx $(, $pname:ident: $pty:ident)*) $(-> $ret:ident)?) => {
        #[allow(dead_code, reason = "new_epoch and out_of_fuel are called through register-preserving stubs instead")]
        pub mod $name {
            use super::super::*;

            /// The builtin's C entry point, behind its stub.
            ///
            /// # Safety
            ///
            /// Called only by compiled wasm (through the stub), with its own
            /// live VMContext (never null, hence `NonNull` in the C
            /// signature: the same ABI as a raw pointer); no Rust code holds
            /// the store meanwhile.
            pub unsafe extern "C" fn raw(vmctx: NonNull<VMContext> $(, $pname: rust_ty!($pty))*) $(-> rust_ty!($ret))? {
                // SAFETY: per the contract.
                let mut cx = unsafe { BuiltinCx::new(vmctx) };
                let result = body::$name(&mut cx $(, $pname)*);
                match result {
                    Ok(v) => v,
                    Err(reason) => raise(reason),
                }
            }

            crate::vm::arch::builtin_stub!(stub, raw, (NonNull<VMContext> $(, rust_ty!($pty))*) $(-> rust_ty!($ret))?);
        }
    };
    ($name:ident ($($pname:ident: $pty:ident),*) $(-> $ret:ident)?) => {};
}

macro_rules! define_builtins {
    ($( $(#[$attr:meta])* $name:ident( $($pname:ident: $pty:ident),* ) $(-> $ret:ident)?; )*) => {
        /// Addresses of the builtin entries, in `BuiltinFunctionIndex` order.
        #[repr(C)]
        pub struct VMBuiltinFunctions {
            $( $name: unsafe extern "C" fn($(rust_ty!($pty)),*) $(-> rust_ty!($ret))?, )*
        }

        /// Each builtin's C entry point (`raw`) and stub (`stub`).
        mod entries {
            $( define_entry!($name ($($pname: $pty),*) $(-> $ret)?); )*
        }

        /// The one table of builtin addresses.
        pub static BUILTINS: VMBuiltinFunctions = VMBuiltinFunctions { $( $name: builtin_entry!(($($pty)*) $name), )* };

        const _: () = assert!(
            std::mem::size_of::<VMBuiltinFunctions>() == kiln_environ::BuiltinFunctionIndex::COUNT as usize * 8
        );
    };
}

/// Register-preserving stubs of the builtins Cranelift calls with
/// `preserve_all` (x86-64; elsewhere plain stubs).
mod preserving {
    crate::vm::arch::preserving_builtin_stub!(new_epoch, super::entries::new_epoch::raw);
    crate::vm::arch::preserving_builtin_stub!(out_of_fuel, super::entries::out_of_fuel::raw, u64);

    const _: () = assert!(kiln_environ::BuiltinFunctionIndex::new_epoch.preserves_all_registers());
    const _: () = assert!(kiln_environ::BuiltinFunctionIndex::out_of_fuel.preserves_all_registers());
}

kiln_environ::foreach_builtin_function!(define_builtins);
