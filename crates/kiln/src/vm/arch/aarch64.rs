//! aarch64: entering and leaving wasm, signal contexts and the builtin
//! stubs (epoch interruption by signal is x86-64 only).

use crate::vm::invoke::{RegArgs, RegResults};
use crate::vm::traphandlers::{EntryTrampoline, JmpBuf};
use crate::vm::vmcontext::{VMContext, ValRaw};
use std::ptr::NonNull;

/// The host-to-wasm entry, as on x86-64: [`kiln_enter`].
///
/// # Safety
///
/// As for [`kiln_enter`].
#[inline(always)]
pub unsafe fn enter(
    buf: *mut JmpBuf,
    callee: NonNull<VMContext>,
    values: *mut ValRaw,
    wasm_call: *const u8,
    trampoline: EntryTrampoline,
) -> u32 {
    // SAFETY: the caller's contract is `kiln_enter`'s.
    unsafe { kiln_enter(buf, callee, values, wasm_call, trampoline) }
}

/// The direct entry of x86-64, which aarch64 does not have: signatures
/// never get a register shape here (`invoke::reg_shape` is `None`), so
/// nothing calls this.
///
/// # Safety
///
/// None needed: it only panics.
#[inline(always)]
pub unsafe fn enter_regs<const FLOATS: bool>(
    _buf: *mut JmpBuf,
    _entry_fp: *mut usize,
    _callee: NonNull<VMContext>,
    _wasm_call: *const u8,
    _pinned: u64,
    _args: &RegArgs,
) -> (u32, RegResults, u64) {
    unreachable!("no direct entry into wasm on aarch64")
}

/// As on x86-64: saves the callee-saved registers (x19-x28, x29/x30,
/// d8-d15) and the stack pointer in `buf`, calls the trampoline, returns 0;
/// 1 when `kiln_unwind(buf)` jumps back.
///
/// # Safety
///
/// `buf` points to a writable jump buffer that lives until this returns;
/// the trampoline's own contract holds for the other arguments.
#[unsafe(naked)]
pub unsafe extern "C" fn kiln_enter(
    _buf: *mut JmpBuf,
    _callee: NonNull<VMContext>,
    _values: *mut ValRaw,
    _wasm_call: *const u8,
    _trampoline: EntryTrampoline,
) -> u32 {
    core::arch::naked_asm!(
        "stp x29, x30, [sp, #-16]!",
        "mov x29, sp",
        "stp x19, x20, [sp, #-16]!",
        "stp x21, x22, [sp, #-16]!",
        "stp x23, x24, [sp, #-16]!",
        "stp x25, x26, [sp, #-16]!",
        "stp x27, x28, [sp, #-16]!",
        "stp d8, d9, [sp, #-16]!",
        "stp d10, d11, [sp, #-16]!",
        "stp d12, d13, [sp, #-16]!",
        "stp d14, d15, [sp, #-16]!",
        "mov x9, sp",
        "str x9, [x0]",
        "adr x9, 2f",
        "str x9, [x0, #8]",
        "mov x0, x1",
        "blr x4",
        "mov w0, #0",
        "3:",
        "ldp d14, d15, [sp], #16",
        "ldp d12, d13, [sp], #16",
        "ldp d10, d11, [sp], #16",
        "ldp d8, d9, [sp], #16",
        "ldp x27, x28, [sp], #16",
        "ldp x25, x26, [sp], #16",
        "ldp x23, x24, [sp], #16",
        "ldp x21, x22, [sp], #16",
        "ldp x19, x20, [sp], #16",
        "ldp x29, x30, [sp], #16",
        "ret",
        "2:",
        "mov w0, #1",
        "b 3b",
    )
}

/// Restores the stack pointer saved in `buf` and resumes `kiln_enter`.
///
/// # Safety
///
/// `buf` is the jump buffer of a `kiln_enter` call still on this thread's
/// stack; every frame above it may be discarded (nothing in them needs
/// dropping).
#[unsafe(naked)]
pub unsafe extern "C" fn kiln_unwind(_buf: *mut JmpBuf) -> ! {
    core::arch::naked_asm!("ldr x9, [x0]", "mov sp, x9", "ldr x9, [x0, #8]", "br x9")
}

/// Reads the interrupted (pc, fp) from a signal context.
///
/// # Safety
///
/// `ctx` is the `ucontext_t` the kernel passed to an `SA_SIGINFO` handler
/// that is still running.
pub unsafe fn context_pc_fp(ctx: *mut libc::c_void) -> (usize, usize) {
    // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    (uc.uc_mcontext.pc as usize, uc.uc_mcontext.regs[29] as usize)
}

/// Reads Cranelift's pinned register (x21) from a signal context.
///
/// # Safety
///
/// As for [`context_pc_fp`].
pub unsafe fn context_pinned_reg(ctx: *mut libc::c_void) -> u64 {
    // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    uc.uc_mcontext.regs[21]
}

/// Makes the interrupted thread resume, when the handler returns, in
/// `target` with `arg` as its first argument.
///
/// # Safety
///
/// As for [`context_pc_fp`]; and `target` must be code that is correct to
/// run on the interrupted thread's stack with only that argument.
pub unsafe fn redirect(ctx: *mut libc::c_void, target: usize, arg: usize) {
    // SAFETY: `ctx` is the live `ucontext_t` of the signal being handled
    // (the function's contract); the kernel restores registers from it when
    // the handler returns.
    let uc = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
    uc.uc_mcontext.pc = target as u64;
    uc.uc_mcontext.regs[0] = arg as u64;
}

/// The current stack pointer (approximately).
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads a register, no memory access.
    unsafe { core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// Defines builtin entry `$name`: a stub that records the calling wasm
/// frame (frame pointer and link register) in the store context, so a trap
/// raised in the builtin has a backtrace, then branches to `$target` with
/// the arguments untouched.
macro_rules! builtin_stub {
    ($name:ident, $target:path, ($($ty:ty),*) $(-> $ret:ty)?) => {
        /// Entry stub of the builtin of the same name (see `vm::arch`).
        ///
        /// # Safety
        ///
        /// Called only by compiled wasm, with its own live VMContext first.
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name($(_: $ty),*) $(-> $ret)? {
            core::arch::naked_asm!(
                "ldr x16, [x0, #{store}]",
                "str x29, [x16, #{fp}]",
                "str x30, [x16, #{pc}]",
                "b {target}",
                store = const kiln_environ::vmoffsets::vmctx_header::STORE_CONTEXT,
                fp = const kiln_environ::vmoffsets::store_context::LAST_WASM_EXIT_FP,
                pc = const kiln_environ::vmoffsets::store_context::LAST_WASM_EXIT_PC,
                target = sym $target,
            )
        }
    };
}
pub(crate) use builtin_stub;

/// Builtins with the `preserve_all` convention are only used on x86-64;
/// elsewhere they get the plain stub.
macro_rules! preserving_builtin_stub {
    ($name:ident, $target:path $(, $extra:ty)*) => {
        $crate::vm::arch::builtin_stub!($name, $target, (std::ptr::NonNull<$crate::vm::vmcontext::VMContext> $(, $extra)*));
    };
}
pub(crate) use preserving_builtin_stub;

/// Resumes at the exception handler `pc` of a wasm frame: sets the stack
/// and frame pointers to `sp` and `fp`, the exception payload registers
/// (x0, x1) to `payload0` and `payload1`, and branches. No other register
/// is restored: the calls that handlers are attached to use Cranelift's
/// `tail` convention, across whose exceptional edge every register is
/// clobbered.
///
/// # Safety
///
/// `(pc, sp, fp)` is a handler of a call site of a wasm frame still on this
/// thread's stack, found through the module's exception table, and every
/// frame below it may be discarded (nothing in them needs dropping).
#[unsafe(naked)]
pub unsafe extern "C" fn resume_to_handler(
    _pc: usize,
    _sp: usize,
    _fp: usize,
    _payload0: usize,
    _payload1: usize,
) -> ! {
    core::arch::naked_asm!("mov sp, x1", "mov x29, x2", "mov x16, x0", "mov x0, x3", "mov x1, x4", "br x16")
}

/// The callee-saved registers (x19-x29) as they are at the call site, for
/// a conservative scan of what the frames above may keep in them.
#[inline(always)]
pub fn callee_saved_registers() -> [usize; 11] {
    let mut r = [0usize; 11];
    // SAFETY: stores registers into the local array, which the pointer
    // operand addresses.
    unsafe {
        core::arch::asm!(
            "stp x19, x20, [{p}]", "stp x21, x22, [{p}, #16]", "stp x23, x24, [{p}, #32]",
            "stp x25, x26, [{p}, #48]", "stp x27, x28, [{p}, #64]", "str x29, [{p}, #80]",
            p = in(reg) r.as_mut_ptr(),
            options(nostack, preserves_flags),
        );
    }
    r
}

/// The word at `addr`, read by one instruction the compiler cannot see
/// into (a conservative stack scan reads words of suspended frames, some of
/// which no Rust value ever initialized).
///
/// # Safety
///
/// `addr` is 8-byte aligned, mapped and readable.
#[inline(always)]
pub unsafe fn load_word(addr: usize) -> usize {
    let v: usize;
    // SAFETY: the caller's contract; a plain load, no other effect.
    unsafe {
        core::arch::asm!("ldr {v}, [{a}]", v = out(reg) v, a = in(reg) addr, options(nostack, readonly, preserves_flags))
    };
    v
}

/// Switches stacks: saves the callee-saved registers (x19-x30, d8-d15) on
/// the current stack, stores the stack pointer at `save`, loads `to`,
/// restores the registers saved there and returns to the saved x30.
/// Returns when something switches back to the stack pointer stored at
/// `save`.
///
/// # Safety
///
/// `save` is writable; `to` is a stack pointer stored by an earlier switch
/// away from a stack that is still mapped and whose frames are all live, or
/// one saved by [`fiber_enter`].
#[unsafe(naked)]
pub unsafe extern "C" fn fiber_switch(_save: *mut usize, _to: usize) {
    core::arch::naked_asm!(
        "sub sp, sp, #160",
        "stp x19, x20, [sp, #0]",
        "stp x21, x22, [sp, #16]",
        "stp x23, x24, [sp, #32]",
        "stp x25, x26, [sp, #48]",
        "stp x27, x28, [sp, #64]",
        "stp x29, x30, [sp, #80]",
        "stp d8, d9, [sp, #96]",
        "stp d10, d11, [sp, #112]",
        "stp d12, d13, [sp, #128]",
        "stp d14, d15, [sp, #144]",
        "mov x8, sp",
        "str x8, [x0]",
        "mov sp, x1",
        "ldp x19, x20, [sp, #0]",
        "ldp x21, x22, [sp, #16]",
        "ldp x23, x24, [sp, #32]",
        "ldp x25, x26, [sp, #48]",
        "ldp x27, x28, [sp, #64]",
        "ldp x29, x30, [sp, #80]",
        "ldp d8, d9, [sp, #96]",
        "ldp d10, d11, [sp, #112]",
        "ldp d12, d13, [sp, #128]",
        "ldp d14, d15, [sp, #144]",
        "add sp, sp, #160",
        "ret",
    )
}

/// Starts a fiber: saves the callee-saved registers as [`fiber_switch`]
/// does, stores the stack pointer at `save`, moves to the stack whose top
/// is `top` and calls `entry(a0, a1)` there. When `entry` returns, goes
/// back to the stack pointer then stored at `save` (this call's frame, or
/// the frame of whichever `fiber_switch` resumed the fiber last), restores
/// the registers saved there and returns.
///
/// # Safety
///
/// `save` is writable and stays valid until the fiber's body returns;
/// `top` is the 16-byte-aligned top of a mapped stack nothing else uses;
/// `entry` is an `extern "C" fn(*mut u8, *mut u8)` that runs the body.
#[unsafe(naked)]
pub unsafe extern "C" fn fiber_enter(_save: *mut usize, _top: usize, _entry: usize, _a0: *mut u8, _a1: *mut u8) {
    core::arch::naked_asm!(
        "sub sp, sp, #160",
        "stp x19, x20, [sp, #0]",
        "stp x21, x22, [sp, #16]",
        "stp x23, x24, [sp, #32]",
        "stp x25, x26, [sp, #48]",
        "stp x27, x28, [sp, #64]",
        "stp x29, x30, [sp, #80]",
        "stp d8, d9, [sp, #96]",
        "stp d10, d11, [sp, #112]",
        "stp d12, d13, [sp, #128]",
        "stp d14, d15, [sp, #144]",
        "mov x8, sp",
        "str x8, [x0]",
        // `save` stays in x19, which `entry` preserves.
        "mov x19, x0",
        "mov sp, x1",
        "mov x29, xzr",
        "mov x0, x3",
        "mov x1, x4",
        "blr x2",
        "ldr x8, [x19]",
        "mov sp, x8",
        "ldp x19, x20, [sp, #0]",
        "ldp x21, x22, [sp, #16]",
        "ldp x23, x24, [sp, #32]",
        "ldp x25, x26, [sp, #48]",
        "ldp x27, x28, [sp, #64]",
        "ldp x29, x30, [sp, #80]",
        "ldp d8, d9, [sp, #96]",
        "ldp d10, d11, [sp, #112]",
        "ldp d12, d13, [sp, #128]",
        "ldp d14, d15, [sp, #144]",
        "add sp, sp, #160",
        "ret",
    )
}

/// Lazy compilation is implemented for x86-64 only (`Config::compile_strategy`
/// compiles eagerly elsewhere), so no stub ever reaches this entry; it
/// exists so the code that fills the entry slot builds everywhere.
///
/// # Safety
///
/// Never called.
#[unsafe(naked)]
pub unsafe extern "C" fn kiln_lazy_entry() {
    core::arch::naked_asm!("udf #0")
}
