//! x86-64: entering and leaving wasm, signal contexts, the epoch stub and
//! the builtin stubs.

use crate::vm::invoke::{RegArgs, RegResults};
use crate::vm::traphandlers::{EntryTrampoline, JmpBuf};
use crate::vm::vmcontext::{VMContext, ValRaw};
use std::ptr::NonNull;

/// Saves the stack pointer and a resume address in `buf`, calls
/// `trampoline(callee, callee, values, wasm_call)`, returns 0; returns 1
/// instead when `kiln_unwind(buf)` jumps back.
///
/// Inline assembly rather than a separate function, so that the
/// callee-saved registers are spilled once, by the enclosing Rust frame:
/// r12-r15 are declared clobbered (the compiler saves whichever it uses
/// itself), and rbx and rbp, which Rust assembly may not name as operands,
/// are pushed here below the saved stack pointer, so the jump back restores
/// them too. After a jump back every other register is as the call left
/// it: everything the C ABI lets a callee clobber is declared clobbered,
/// and r12-r15 as well.
///
/// # Safety
///
/// `buf` points to a writable jump buffer that lives until this returns;
/// the trampoline's own contract holds for the other arguments.
#[inline(always)]
pub unsafe fn enter(
    buf: *mut JmpBuf,
    callee: NonNull<VMContext>,
    values: *mut ValRaw,
    wasm_call: *const u8,
    trampoline: EntryTrampoline,
) -> u32 {
    let r: u64;
    // SAFETY: the block keeps the stack balanced on both paths (the jump
    // back restores the stack pointer saved after the two pushes, and both
    // paths pop them); it is not `nostack`, so the stack is aligned for a
    // call at its start (two pushes keep it aligned) and the compiler keeps
    // nothing in a red zone; every register the call or the jump back may
    // change is an output or a clobber. `buf` and the trampoline's
    // arguments are the caller's contract.
    unsafe {
        core::arch::asm!(
            "push rbp",
            "push rbx",
            "mov [rdi], rsp",
            "lea rax, [rip + 2f]",
            "mov [rdi + 8], rax",
            // Arguments of the trampoline: callee, caller (= callee),
            // values (already in rdx), wasm_call (already in rcx).
            "mov rdi, rsi",
            "call r8",
            "xor eax, eax",
            "jmp 3f",
            "2:",
            "mov eax, 1",
            "3:",
            "pop rbx",
            "pop rbp",
            inout("rdi") buf => _,
            inout("rsi") callee.as_ptr() => _,
            inout("rdx") values => _,
            inout("rcx") wasm_call => _,
            inout("r8") trampoline => _,
            out("rax") r,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("C"),
        );
    }
    r as u32
}

/// Saves the stack pointer and a resume address in `buf` as [`enter`]
/// does, records an entry frame for backtraces, and calls the wasm
/// function `wasm_call` of instance `callee` directly, with the arguments
/// `args` in the registers of Cranelift's `tail` convention (integers in
/// rdx, rcx, r8, r9 after the two contexts in rdi and rsi; floats in
/// xmm0-xmm7, when `FLOATS`) and `pinned` in the pinned register (r15).
/// Returns 0, the results as the convention returns them (integers in
/// rax, rcx, rdx, rsi; floats in xmm0-xmm3, when `FLOATS`) and r15; or 1
/// when `kiln_unwind(buf)` jumps back (the rest then unspecified).
///
/// The entry frame is this block's own: rbp is set to the stack pointer
/// after the two pushes and stored at `entry_fp`, so the callee saves it as
/// its caller's frame pointer and frame walks stop there, as they stop at
/// an entry trampoline's frame.
///
/// # Safety
///
/// `buf` points to a writable jump buffer and `entry_fp` to a writable
/// word, both living until this returns; `wasm_call` is a wasm function of
/// instance `callee` whose signature passes every parameter and result in
/// registers (see `invoke::reg_shape`: no stack arguments, no return
/// area), and `entry_fp` is the entry frame field of its store's context.
#[inline(always)]
pub unsafe fn enter_regs<const FLOATS: bool>(
    buf: *mut JmpBuf,
    entry_fp: *mut usize,
    callee: NonNull<VMContext>,
    wasm_call: *const u8,
    pinned: u64,
    args: &RegArgs,
) -> (u32, RegResults, u64) {
    let mut out = RegResults::default();
    let (code, pinned_out): (u64, u64);
    // Shared by both variants: everything up to and after the call.
    macro_rules! body {
        ($($operands:tt)*) => {
            core::arch::asm!(
                "push rbp",
                "push rbx",
                "mov [r12], rsp",
                "lea rbx, [rip + 2f]",
                "mov [r12 + 8], rbx",
                "mov rbp, rsp",
                "mov [r13], rbp",
                "mov rsi, rdi",
                "call r14",
                "xor r11d, r11d",
                "jmp 3f",
                "2:",
                "mov r11d, 1",
                "3:",
                "pop rbx",
                "pop rbp",
                inout("r12") buf => _,
                inout("r13") entry_fp => _,
                inout("r14") wasm_call => _,
                inout("r15") pinned => pinned_out,
                inout("rdi") callee.as_ptr() => _,
                out("rsi") out.ints[3],
                out("r11") code,
                $($operands)*
                clobber_abi("C"),
            )
        };
    }
    // SAFETY: as for `enter`, the block keeps the stack balanced and
    // aligned for the call on both paths, and declares every register the
    // call or the jump back may change (r12-r15 are operands, the rest of
    // what a `tail` callee may clobber is covered by the C ABI's clobbers:
    // the callee-saved sets of the two conventions are the same, bar the
    // pinned r15). The callee's signature takes no stack arguments and
    // needs no return area (the caller's contract), so the registers set
    // here are all it reads and the registers read back all it writes.
    unsafe {
        if FLOATS {
            body!(
                inout("rdx") args.ints[0] => out.ints[2],
                inout("rcx") args.ints[1] => out.ints[1],
                in("r8") args.ints[2],
                in("r9") args.ints[3],
                out("rax") out.ints[0],
                inout("xmm0") args.floats[0] => out.floats[0],
                inout("xmm1") args.floats[1] => out.floats[1],
                inout("xmm2") args.floats[2] => out.floats[2],
                inout("xmm3") args.floats[3] => out.floats[3],
                in("xmm4") args.floats[4],
                in("xmm5") args.floats[5],
                in("xmm6") args.floats[6],
                in("xmm7") args.floats[7],
            );
        } else {
            body!(
                inout("rdx") args.ints[0] => out.ints[2],
                inout("rcx") args.ints[1] => out.ints[1],
                in("r8") args.ints[2],
                in("r9") args.ints[3],
                out("rax") out.ints[0],
            );
        }
    }
    (code as u32, out, pinned_out)
}

/// Restores the stack pointer saved in `buf` and resumes [`enter`].
///
/// # Safety
///
/// `buf` is the jump buffer of an [`enter`] call still on this thread's
/// stack; every frame above it may be discarded (nothing in them needs
/// dropping).
#[unsafe(naked)]
pub unsafe extern "C" fn kiln_unwind(_buf: *mut JmpBuf) -> ! {
    core::arch::naked_asm!("mov rsp, [rdi]", "jmp qword ptr [rdi + 8]")
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
    (uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize, uc.uc_mcontext.gregs[libc::REG_RBP as usize] as usize)
}

/// Reads Cranelift's pinned register (r15) from a signal context.
///
/// # Safety
///
/// As for [`context_pc_fp`].
pub unsafe fn context_pinned_reg(ctx: *mut libc::c_void) -> u64 {
    // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers.
    let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
    uc.uc_mcontext.gregs[libc::REG_R15 as usize] as u64
}

/// Makes the interrupted thread resume, when the handler returns, in
/// `target` with `arg` as its first argument.
///
/// # Safety
///
/// As for [`context_pc_fp`]; and `target` must be code that is correct to
/// run on the interrupted thread's stack with only that argument (the
/// unwinder, whose argument is a live jump buffer of this thread).
pub unsafe fn redirect(ctx: *mut libc::c_void, target: usize, arg: usize) {
    // SAFETY: `ctx` is the live `ucontext_t` of the signal being handled
    // (the function's contract); the kernel restores registers from it when
    // the handler returns.
    let uc = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
    uc.uc_mcontext.gregs[libc::REG_RIP as usize] = target as i64;
    uc.uc_mcontext.gregs[libc::REG_RDI as usize] = arg as i64;
}

/// The current stack pointer (approximately).
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads a register, no memory access.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// Makes the instruction at which a signal stopped the thread "call"
/// `target`: pushes the interrupted pc as a return address and resumes the
/// thread in `target` (used by epoch interruption; Cranelift code keeps
/// nothing below the stack pointer, so the push clobbers nothing).
///
/// # Safety
///
/// As for [`context_pc_fp`]; the interrupted instruction is in compiled
/// wasm code, and `target` saves and restores everything that code may
/// hold in registers (as [`kiln_epoch_stub`] does) before returning.
pub unsafe fn call_from_signal(ctx: *mut libc::c_void, target: usize) {
    // SAFETY: per the contract, a live signal context of a thread stopped in
    // wasm code, whose stack has room for one more word below its pointer.
    unsafe {
        let uc = &mut *(ctx as *mut libc::ucontext_t);
        let pc = uc.uc_mcontext.gregs[libc::REG_RIP as usize];
        let sp = uc.uc_mcontext.gregs[libc::REG_RSP as usize] as usize - 8;
        *(sp as *mut i64) = pc;
        uc.uc_mcontext.gregs[libc::REG_RSP as usize] = sp as i64;
        uc.uc_mcontext.gregs[libc::REG_RIP as usize] = target as i64;
    }
}

/// Entered from the epoch signal handler as if the interrupted wasm
/// instruction had called it ([`call_from_signal`]). Saves what Rust may
/// clobber (caller-saved integer registers, flags, XMM0-15 with `fxsave`;
/// Cranelift uses no other vector state), calls the deadline logic,
/// restores, and returns to the interrupted instruction.
///
/// # Safety
///
/// Only entered through [`call_from_signal`] from the epoch handler.
#[unsafe(naked)]
pub unsafe extern "C" fn kiln_epoch_stub() {
    core::arch::naked_asm!(
        "pushfq",
        "push rax",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "push rbp",
        "mov rbp, rsp",
        "and rsp, -64",
        "sub rsp, 512",
        "fxsave64 [rsp]",
        "call {handler}",
        "fxrstor64 [rsp]",
        "mov rsp, rbp",
        "pop rbp",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rax",
        "popfq",
        "ret",
        handler = sym crate::vm::epoch::signal::on_epoch_interrupt,
    )
}

/// The shared entry of lazily compiled functions' stubs
/// (`kiln_environ::StubLayout`): reached by a stub's `call` the first time
/// its function is called, with the stub's return address on top of the
/// stack and the wasm caller's return address beneath it. Saves every
/// register that can carry an argument of Cranelift's `tail` convention
/// (rdi, rsi, rdx, rcx, r8, r9, xmm0-7) and the other caller-saved
/// general-purpose registers, has `vm::lazy_code::lazy_compile_for_call`
/// compile the function (or find it compiled), restores them, drops the
/// stub's return address and jumps to the code: the callee starts with
/// the registers and stack its caller left, stack arguments included.
///
/// # Safety
///
/// Only reached through a stub of registered lazy code, entered as a call
/// of a wasm function (the callee's VMContext in rdi).
#[unsafe(naked)]
pub unsafe extern "C" fn kiln_lazy_entry() {
    core::arch::naked_asm!(
        "push rbp",
        "mov rbp, rsp",
        "sub rsp, 208",
        "and rsp, -16",
        "mov [rsp], rax", "mov [rsp + 8], rcx", "mov [rsp + 16], rdx",
        "mov [rsp + 24], rsi", "mov [rsp + 32], rdi", "mov [rsp + 40], r8",
        "mov [rsp + 48], r9", "mov [rsp + 56], r10",
        "movdqu [rsp + 64], xmm0", "movdqu [rsp + 80], xmm1",
        "movdqu [rsp + 96], xmm2", "movdqu [rsp + 112], xmm3",
        "movdqu [rsp + 128], xmm4", "movdqu [rsp + 144], xmm5",
        "movdqu [rsp + 160], xmm6", "movdqu [rsp + 176], xmm7",
        // (stub return address, callee vmctx, caller's fp, caller's return address)
        "mov rsi, rdi",
        "mov rdi, [rbp + 8]",
        "mov rdx, [rbp]",
        "mov rcx, [rbp + 16]",
        "call {target}",
        "mov r11, rax",
        "movdqu xmm0, [rsp + 64]", "movdqu xmm1, [rsp + 80]",
        "movdqu xmm2, [rsp + 96]", "movdqu xmm3, [rsp + 112]",
        "movdqu xmm4, [rsp + 128]", "movdqu xmm5, [rsp + 144]",
        "movdqu xmm6, [rsp + 160]", "movdqu xmm7, [rsp + 176]",
        "mov rax, [rsp]", "mov rcx, [rsp + 8]", "mov rdx, [rsp + 16]",
        "mov rsi, [rsp + 24]", "mov rdi, [rsp + 32]", "mov r8, [rsp + 40]",
        "mov r9, [rsp + 48]", "mov r10, [rsp + 56]",
        "mov rsp, rbp",
        "pop rbp",
        "lea rsp, [rsp + 8]",
        "jmp r11",
        target = sym crate::vm::lazy_code::lazy_compile_for_call,
    )
}

/// Defines builtin entry `$name`: a stub that records the calling wasm
/// frame (its frame pointer and our return address) in the store context,
/// so a trap raised in the builtin has a backtrace, then tail-jumps to
/// `$target` with the arguments untouched.
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
                "mov rax, [rdi + {store}]",
                "mov [rax + {fp}], rbp",
                "mov r11, [rsp]",
                "mov [rax + {pc}], r11",
                "jmp {target}",
                store = const kiln_environ::vmoffsets::vmctx_header::STORE_CONTEXT,
                fp = const kiln_environ::vmoffsets::store_context::LAST_WASM_EXIT_FP,
                pc = const kiln_environ::vmoffsets::store_context::LAST_WASM_EXIT_PC,
                target = sym $target,
            )
        }
    };
}
pub(crate) use builtin_stub;

/// Like `builtin_stub!`, for builtins called with Cranelift's
/// `preserve_all` convention: also saves every general-purpose register
/// the System V ABI lets a callee clobber and all sixteen XMM registers
/// (compiled code uses no wider vector registers), calls `$target`, and
/// restores everything. Only for builtins taking the VMContext and at
/// most one more integer argument (`$extra`, in rsi, which the stub leaves
/// as it found it for the call), and returning nothing.
macro_rules! preserving_builtin_stub {
    ($name:ident, $target:path $(, $extra:ty)?) => {
        /// Register-preserving entry stub of the builtin of the same name
        /// (see `vm::arch`).
        ///
        /// # Safety
        ///
        /// Called only by compiled wasm, with its own live VMContext.
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name(_vmctx: std::ptr::NonNull<$crate::vm::vmcontext::VMContext> $(, _: $extra)?) {
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
                target = sym $target,
            )
        }
    };
}
pub(crate) use preserving_builtin_stub;

/// Resumes at the exception handler `pc` of a wasm frame: sets the stack
/// and frame pointers to `sp` and `fp`, the exception payload registers
/// (rax, rdx) to `payload0` and `payload1`, and jumps. No other register
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
    core::arch::naked_asm!("mov rax, rcx", "mov rsp, rsi", "mov rbp, rdx", "mov rdx, r8", "jmp rdi")
}

/// The callee-saved registers (rbx, rbp, r12-r15) as they are at the call
/// site, for a conservative scan of what the frames above may keep in them.
#[inline(always)]
pub fn callee_saved_registers() -> [usize; 6] {
    let mut r = [0usize; 6];
    // SAFETY: stores registers into the local array, which the pointer
    // operand addresses.
    unsafe {
        core::arch::asm!(
            "mov [{p}], rbx", "mov [{p} + 8], rbp", "mov [{p} + 16], r12",
            "mov [{p} + 24], r13", "mov [{p} + 32], r14", "mov [{p} + 40], r15",
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
        core::arch::asm!("mov {v}, [{a}]", v = out(reg) v, a = in(reg) addr, options(nostack, readonly, preserves_flags))
    };
    v
}

/// Switches stacks: pushes where to continue and the callee-saved
/// registers (rbp, rbx, r12-r15), stores the stack pointer at `save`, loads
/// `to` as the stack pointer, pops the callee-saved registers saved there
/// and jumps to where that side continues. Returns when something switches
/// back to the stack pointer stored at `save`.
///
/// Always inlined, with no call or return of its own: the processor
/// predicts return addresses with a stack of the calls it has seen, which
/// a switch leaves holding the other stack's calls. A switch that returned
/// would miss that prediction at once, and the frames above it on the new
/// side would each miss one more. Here the jump at each switch site has
/// its own, usually constant, target, which the branch predictor learns,
/// and the predicted returns are the ones pushed on this stack before it
/// was left (measured in bench/ASYNC.md). The saved layout, a continuation
/// address under six registers, is the one a call to a switch function
/// leaves, so [`fiber_enter`]'s return also lands here.
///
/// # Safety
///
/// `save` is writable; `to` is a stack pointer stored by an earlier switch
/// away from a stack that is still mapped and whose frames are all live, or
/// one saved by [`fiber_enter`].
#[inline(always)]
pub unsafe fn fiber_switch(save: *mut usize, to: usize) {
    // SAFETY: the caller's contract. The other side preserves rbx, rbp and
    // r12-r15 (they are pushed here and popped by whoever switches back)
    // and may change every register the C ABI lets a call change, which
    // is what `clobber_abi` declares; the stack pointer comes back to what
    // it was, with nothing left pushed.
    unsafe {
        core::arch::asm!(
            "lea rax, [rip + 2f]",
            "push rax",
            "push rbp",
            "push rbx",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            "mov [rdi], rsp",
            "mov rsp, rsi",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbx",
            "pop rbp",
            "pop rax",
            "jmp rax",
            "2:",
            in("rdi") save,
            in("rsi") to,
            clobber_abi("C"),
        );
    }
}

/// Starts a fiber: pushes the callee-saved registers as [`fiber_switch`]
/// does, stores the stack pointer at `save`, moves to the stack whose top
/// is `top` and calls `entry(a0, a1)` there. When `entry` returns, goes
/// back to the stack pointer then stored at `save` (this call's frame, or
/// the frame of whichever `fiber_switch` resumed the fiber last), pops the
/// callee-saved registers saved there and continues on that stack.
///
/// A fiber that never suspends thus runs as an ordinary call and return,
/// which the processor's return prediction follows: the continuation
/// saved at `save` is then still this call's return address, and this
/// returns. One that did suspend was last resumed by an inlined
/// [`fiber_switch`], which made no call, so this jumps to its
/// continuation instead (a return would unbalance the predicted returns).
///
/// # Safety
///
/// `save` is writable and stays valid until the fiber's body returns;
/// `top` is the 16-byte-aligned top of a mapped stack nothing else uses;
/// `entry` is an `extern "C" fn(*mut u8, *mut u8)` that runs the body.
#[unsafe(naked)]
pub unsafe extern "C" fn fiber_enter(_save: *mut usize, _top: usize, _entry: usize, _a0: *mut u8, _a1: *mut u8) {
    core::arch::naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        // `save` stays in rbx and this call's return address in r12,
        // which `entry` preserves.
        "mov rbx, rdi",
        "mov r12, [rsp + 48]",
        "mov rsp, rsi",
        // A null frame pointer: frame walks stop at the fiber's first frame.
        "xor ebp, ebp",
        "mov rdi, rcx",
        "mov rsi, r8",
        "call rdx",
        "mov rsp, [rbx]",
        // Pops leave the flags alone.
        "cmp r12, [rsp + 48]",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "jne 2f",
        "ret",
        "2:",
        "pop rcx",
        "jmp rcx",
    )
}
