//! Implementations of the builtins that compiled code calls (the list is
//! `kiln_environ::foreach_builtin_function!`), and the table of their
//! addresses that every VMContext points to.
//!
//! Compiled code calls each builtin through a tiny assembly stub that first
//! records the calling wasm frame (frame pointer and return address) in the
//! store context, so that a trap raised inside the builtin has a backtrace,
//! then tail-jumps to the Rust implementation.

use super::instance::instance_of_vmctx;
use super::store_hooks::{HookError, VMStore};
use super::traphandlers::{TrapReason, raise};
use kiln_environ::TrapCode;

fn trap(code: TrapCode) -> ! {
    raise(TrapReason::Wasm(code))
}

/// Runs a builtin body against the instance owning `vmctx`; traps with the
/// returned code on error. The body's locals are all dropped before a trap
/// is raised.
fn with_instance<R>(vmctx: *mut u8, f: impl FnOnce(&mut super::instance::Instance) -> Result<R, TrapCode>) -> R {
    // SAFETY: builtins are only called by compiled code, which passes its
    // own live VMContext.
    let r = f(unsafe { instance_of_vmctx(vmctx) });
    match r {
        Ok(v) => v,
        Err(code) => trap(code),
    }
}

/// Runs a store hook for the store owning `vmctx`; raises on error.
fn with_hooks<R>(vmctx: *mut u8, f: impl FnOnce(&mut dyn VMStore) -> Result<R, HookError>) -> R {
    // SAFETY: builtins are called by compiled code with its live VMContext,
    // whose header holds the store context; the store registered its hooks
    // there when it was created and outlives every call into its wasm.
    let r = unsafe {
        let ctx = &*super::vmcontext::store_context_of_vmctx(vmctx);
        match ctx.hooks {
            Some(mut h) => f(h.as_mut()),
            None => Err(HookError::Trap(TrapCode::Interrupt)),
        }
    };
    r.unwrap_or_else(|e| raise(e.into()))
}

/// `memory.atomic.wait` that epoch interruption can reach: a thread parked
/// past its store's epoch deadline leaves the queue and runs the deadline
/// hook (which traps, or extends the deadline and the wait resumes).
fn wait_interruptibly(vmctx: *mut u8, addr: usize, load: impl Fn() -> u64, expected: u64, timeout_ns: i64) -> u32 {
    use super::parking::{WaitResult, wait};
    let deadline = (timeout_ns >= 0).then(|| std::time::Instant::now() + std::time::Duration::from_nanos(timeout_ns as u64));
    // SAFETY: builtins are called with their caller's live VMContext.
    let epochs = unsafe { instance_of_vmctx(vmctx) }.module().tunables.epoch_interruption;
    let epoch_passed = || {
        // SAFETY: the VMContext header holds the live store context, whose
        // epoch counter points at the engine's (alive as long as the store).
        epochs && unsafe {
            let ctx = &*super::vmcontext::store_context_of_vmctx(vmctx);
            super::epoch::deadline_reached(ctx, &*ctx.epoch_counter)
        }
    };
    loop {
        match wait(addr, &load, expected, deadline, epoch_passed) {
            WaitResult::Interrupted => with_hooks(vmctx, |h| h.new_epoch().map(drop)),
            done => return done.code(),
        }
    }
}

mod imp {
    use super::*;

    pub extern "C" fn memory_grow(vmctx: *mut u8, memory: u32, delta: u64) -> u64 {
        let (current, desired, maximum) = with_instance(vmctx, |inst| {
            let m = inst.memory(memory);
            Ok((m.byte_len(), m.size_after_grow(delta), m.declared_max_bytes()))
        });
        let Some(desired) = desired else { return u64::MAX };
        if delta != 0 && !with_hooks(vmctx, |h| h.memory_growing(current, desired, maximum)) {
            return u64::MAX;
        }
        with_instance(vmctx, |inst| Ok(match inst.memory(memory).grow(delta) {
            Ok(Some(old)) => old,
            _ => u64::MAX,
        }))
    }

    pub extern "C" fn memory_init(vmctx: *mut u8, memory: u32, data: u32, dst: u64, src: u32, len: u32) {
        with_instance(vmctx, |inst| inst.memory_init(memory, data, dst, u64::from(src), u64::from(len)))
    }

    pub extern "C" fn data_drop(vmctx: *mut u8, data: u32) {
        with_instance(vmctx, |inst| {
            inst.data_drop(data);
            Ok(())
        })
    }

    pub extern "C" fn table_grow(vmctx: *mut u8, table: u32, delta: u64, init: usize) -> u64 {
        let (current, maximum) = with_instance(vmctx, |inst| {
            let t = inst.table(table);
            Ok((t.size(), t.ty().maximum))
        });
        let Some(desired) = current.checked_add(delta) else { return u64::MAX };
        if delta != 0 && !with_hooks(vmctx, |h| h.table_growing(current, desired, maximum)) {
            return u64::MAX;
        }
        with_instance(vmctx, |inst| Ok(inst.table_mut(table).grow(delta, init).unwrap_or(u64::MAX)))
    }

    pub extern "C" fn table_fill(vmctx: *mut u8, table: u32, dst: u64, val: usize, len: u64) {
        with_instance(vmctx, |inst| {
            if inst.table_mut(table).fill(dst, val, len) { Ok(()) } else { Err(TrapCode::TableOutOfBounds) }
        })
    }

    pub extern "C" fn table_copy(vmctx: *mut u8, dst_table: u32, src_table: u32, dst: u64, src: u64, len: u64) {
        with_instance(vmctx, |inst| {
            let dst_size = inst.table(dst_table).size();
            if dst.checked_add(len).is_none_or(|e| e > dst_size) {
                return Err(TrapCode::TableOutOfBounds);
            }
            if inst.table_ptr(dst_table) == inst.table_ptr(src_table) {
                return if inst.table_mut(dst_table).copy_within(dst, src, len) { Ok(()) } else { Err(TrapCode::TableOutOfBounds) };
            }
            if src.checked_add(len).is_none_or(|e| e > inst.table(src_table).size()) {
                return Err(TrapCode::TableOutOfBounds);
            }
            // Two distinct tables: copy through a small buffer, reading
            // untouched source elements without storing them.
            let mut buf = [0usize; 256];
            let mut done = 0;
            while done < len {
                let n = (len - done).min(buf.len() as u64);
                let chunk = &mut buf[..n as usize];
                if !inst.table(src_table).read_into(src + done, chunk) {
                    return Err(TrapCode::TableOutOfBounds);
                }
                let t = inst.table_mut(dst_table);
                for (k, v) in chunk.iter().enumerate() {
                    t.set(dst + done + k as u64, *v);
                }
                done += n;
            }
            Ok(())
        })
    }

    pub extern "C" fn table_get_lazy(vmctx: *mut u8, table: u32, index: u64) -> usize {
        with_instance(vmctx, |inst| inst.table_mut(table).get(index).ok_or(TrapCode::TableOutOfBounds))
    }

    pub extern "C" fn table_init(vmctx: *mut u8, table: u32, elem: u32, dst: u64, src: u32, len: u32) {
        with_instance(vmctx, |inst| inst.table_init(table, elem, dst, u64::from(src), u64::from(len)))
    }

    pub extern "C" fn elem_drop(vmctx: *mut u8, elem: u32) {
        with_instance(vmctx, |inst| {
            inst.elem_drop(elem);
            Ok(())
        })
    }

    pub extern "C" fn ref_func(vmctx: *mut u8, func: u32) -> usize {
        with_instance(vmctx, |inst| Ok(inst.func_ref(func) as usize))
    }

    /// Checks alignment, then bounds, of an atomic access of `size` bytes at
    /// `addr` in `memory`; returns its native address.
    fn atomic_target(inst: &super::super::instance::Instance, memory: u32, addr: u64, size: u64) -> Result<usize, TrapCode> {
        if !addr.is_multiple_of(size) {
            return Err(TrapCode::HeapMisaligned);
        }
        let m = inst.memory(memory);
        if addr.checked_add(size).is_none_or(|e| e > m.byte_len() as u64) {
            return Err(TrapCode::MemoryOutOfBounds);
        }
        Ok(m.base() as usize + addr as usize)
    }

    pub extern "C" fn memory_atomic_notify(vmctx: *mut u8, memory: u32, addr: u64, count: u32) -> u32 {
        let target = with_instance(vmctx, |inst| atomic_target(inst, memory, addr, 4).map(|t| (t, inst.memory(memory).is_shared())));
        match target {
            (t, true) => crate::vm::parking::notify(t, count),
            // Nobody can wait on an unshared memory.
            (_, false) => 0,
        }
    }

    pub extern "C" fn memory_atomic_wait32(vmctx: *mut u8, memory: u32, addr: u64, expected: u32, timeout: u64) -> u32 {
        let t = with_instance(vmctx, |inst| {
            let t = atomic_target(inst, memory, addr, 4)?;
            if inst.memory(memory).is_shared() { Ok(t) } else { Err(TrapCode::AtomicWaitNonSharedMemory) }
        });
        // SAFETY: `t` is an aligned, in-bounds address of a live shared
        // memory (checked above); shared memories never shrink or move.
        wait_interruptibly(vmctx, t, || unsafe { crate::vm::parking::load32(t) }, u64::from(expected), timeout as i64)
    }

    pub extern "C" fn memory_atomic_wait64(vmctx: *mut u8, memory: u32, addr: u64, expected: u64, timeout: u64) -> u32 {
        let t = with_instance(vmctx, |inst| {
            let t = atomic_target(inst, memory, addr, 8)?;
            if inst.memory(memory).is_shared() { Ok(t) } else { Err(TrapCode::AtomicWaitNonSharedMemory) }
        });
        // SAFETY: as in `memory_atomic_wait32`, with 8-byte alignment.
        wait_interruptibly(vmctx, t, || unsafe { crate::vm::parking::load64(t) }, expected, timeout as i64)
    }

    pub extern "C" fn new_epoch(vmctx: *mut u8) {
        // The hook stores the new deadline in the store context, where
        // compiled code reloads it.
        with_hooks(vmctx, |h| h.new_epoch().map(drop))
    }

    pub extern "C" fn externref_retain(_vmctx: *mut u8, _externref: usize) {}

    pub extern "C" fn externref_release(_vmctx: *mut u8, _externref: usize) {}

    pub extern "C" fn raw_memmove(dst: usize, src: usize, len: u64) {
        // SAFETY: compiled code checked both ranges against their memories'
        // current lengths before the call (memories never shrink); `copy`
        // allows overlap. Raw copies because a shared memory may be accessed
        // by other threads meanwhile.
        unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, len as usize) }
    }

    pub extern "C" fn raw_memset(dst: usize, val: u32, len: u64) {
        // SAFETY: as in `raw_memmove`, for the one destination range.
        unsafe { std::ptr::write_bytes(dst as *mut u8, val as u8, len as usize) }
    }
}

/// The address compiled code calls for a builtin: a stub recording the
/// calling frame for builtins that take the VMContext (they can trap or run
/// host code), the implementation itself for raw ones (which cannot). On
/// x86-64 the builtins that `preserves_all_registers` get stubs that also
/// save and restore every register compiled code may use.
macro_rules! builtin_entry {
    ((vmctx) new_epoch) => { preserving_stub!(new_epoch) };
    ((vmctx $($rest:ident)*) $name:ident) => { stubs::$name };
    (($($rest:ident)*) $name:ident) => { imp::$name };
}

#[cfg(target_arch = "x86_64")]
macro_rules! preserving_stub {
    ($name:ident) => {
        preserving::$name
    };
}

#[cfg(not(target_arch = "x86_64"))]
macro_rules! preserving_stub {
    ($name:ident) => {
        stubs::$name
    };
}

/// Stubs for builtins called with Cranelift's `preserve_all` convention:
/// they save every general-purpose register the System V ABI lets a callee
/// clobber and all sixteen XMM registers (compiled code uses no wider
/// vector registers), record the calling wasm frame like the other stubs,
/// call the implementation, and restore everything.
#[cfg(target_arch = "x86_64")]
mod preserving {
    macro_rules! preserving_stubs {
        ($($name:ident)*) => {$(
            #[unsafe(naked)]
            pub unsafe extern "C" fn $name(_vmctx: *mut u8) {
                core::arch::naked_asm!(
                    "push rbp",
                    "mov rbp, rsp",
                    "push rax", "push rcx", "push rdx", "push rsi", "push rdi",
                    "push r8", "push r9", "push r10", "push r11",
                    // 9 pushes after rbp leave rsp 8 mod 16: 264 bytes of
                    // XMM save area realign it for the call.
                    "sub rsp, 264",
                    "movdqu [rsp], xmm0", "movdqu [rsp + 16], xmm1",
                    "movdqu [rsp + 32], xmm2", "movdqu [rsp + 48], xmm3",
                    "movdqu [rsp + 64], xmm4", "movdqu [rsp + 80], xmm5",
                    "movdqu [rsp + 96], xmm6", "movdqu [rsp + 112], xmm7",
                    "movdqu [rsp + 128], xmm8", "movdqu [rsp + 144], xmm9",
                    "movdqu [rsp + 160], xmm10", "movdqu [rsp + 176], xmm11",
                    "movdqu [rsp + 192], xmm12", "movdqu [rsp + 208], xmm13",
                    "movdqu [rsp + 224], xmm14", "movdqu [rsp + 240], xmm15",
                    // The calling wasm frame: its frame pointer (saved at
                    // [rbp]) and our return address.
                    "mov rax, [rdi + {store}]",
                    "mov r11, [rbp]",
                    "mov [rax + {fp}], r11",
                    "mov r11, [rbp + 8]",
                    "mov [rax + {pc}], r11",
                    "call {target}",
                    "movdqu xmm0, [rsp]", "movdqu xmm1, [rsp + 16]",
                    "movdqu xmm2, [rsp + 32]", "movdqu xmm3, [rsp + 48]",
                    "movdqu xmm4, [rsp + 64]", "movdqu xmm5, [rsp + 80]",
                    "movdqu xmm6, [rsp + 96]", "movdqu xmm7, [rsp + 112]",
                    "movdqu xmm8, [rsp + 128]", "movdqu xmm9, [rsp + 144]",
                    "movdqu xmm10, [rsp + 160]", "movdqu xmm11, [rsp + 176]",
                    "movdqu xmm12, [rsp + 192]", "movdqu xmm13, [rsp + 208]",
                    "movdqu xmm14, [rsp + 224]", "movdqu xmm15, [rsp + 240]",
                    "add rsp, 264",
                    "pop r11", "pop r10", "pop r9", "pop r8",
                    "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rax",
                    "pop rbp",
                    "ret",
                    store = const kiln_environ::vmoffsets::vmctx_header::STORE_CONTEXT,
                    fp = const kiln_environ::vmoffsets::store_context::LAST_WASM_EXIT_FP,
                    pc = const kiln_environ::vmoffsets::store_context::LAST_WASM_EXIT_PC,
                    target = sym super::imp::$name,
                )
            }
        )*};
    }

    preserving_stubs!(new_epoch);

    const _: () = assert!(
        kiln_environ::BuiltinFunctionIndex::new_epoch.preserves_all_registers()
    );
}

macro_rules! rust_ty {
    (vmctx) => { *mut u8 };
    (i32) => { u32 };
    (i64) => { u64 };
    (ptr) => { usize };
}

macro_rules! define_builtins {
    ($( $(#[$attr:meta])* $name:ident( $($pname:ident: $pty:ident),* ) $(-> $ret:ident)?; )*) => {
        /// Addresses of the builtin stubs, in `BuiltinFunctionIndex` order.
        #[repr(C)]
        pub struct VMBuiltinFunctions {
            $( $name: unsafe extern "C" fn($(rust_ty!($pty)),*) $(-> rust_ty!($ret))?, )*
        }

        #[allow(dead_code, reason = "raw builtins have stubs that are never used")]
        mod stubs {
            $(
                #[cfg(target_arch = "x86_64")]
                #[unsafe(naked)]
                pub unsafe extern "C" fn $name($(_: rust_ty!($pty)),*) $(-> rust_ty!($ret))? {
                    core::arch::naked_asm!(
                        "mov rax, [rdi + {store}]",
                        "mov [rax + {fp}], rbp",
                        "mov r11, [rsp]",
                        "mov [rax + {pc}], r11",
                        "jmp {target}",
                        store = const kiln_environ::vmoffsets::vmctx_header::STORE_CONTEXT,
                        fp = const kiln_environ::vmoffsets::store_context::LAST_WASM_EXIT_FP,
                        pc = const kiln_environ::vmoffsets::store_context::LAST_WASM_EXIT_PC,
                        target = sym super::imp::$name,
                    )
                }

                #[cfg(target_arch = "aarch64")]
                #[unsafe(naked)]
                pub unsafe extern "C" fn $name($(_: rust_ty!($pty)),*) $(-> rust_ty!($ret))? {
                    core::arch::naked_asm!(
                        "ldr x16, [x0, #{store}]",
                        "str x29, [x16, #{fp}]",
                        "str x30, [x16, #{pc}]",
                        "b {target}",
                        store = const kiln_environ::vmoffsets::vmctx_header::STORE_CONTEXT,
                        fp = const kiln_environ::vmoffsets::store_context::LAST_WASM_EXIT_FP,
                        pc = const kiln_environ::vmoffsets::store_context::LAST_WASM_EXIT_PC,
                        target = sym super::imp::$name,
                    )
                }
            )*
        }

        /// The one table of builtin addresses.
        pub static BUILTINS: VMBuiltinFunctions = VMBuiltinFunctions { $( $name: builtin_entry!(($($pty)*) $name), )* };

        const _: () = assert!(
            std::mem::size_of::<VMBuiltinFunctions>() == kiln_environ::BuiltinFunctionIndex::COUNT as usize * 8
        );
    };
}

kiln_environ::foreach_builtin_function!(define_builtins);
