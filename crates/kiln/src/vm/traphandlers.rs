//! Catching traps.
//!
//! Every call from the host into wasm goes through [`enter_wasm`], which
//! saves the callee-saved registers and stack pointer in a small jump buffer
//! (our own `setjmp`, in assembly below) and records an `Activation` in a
//! thread-local linked list. A trap then ends up in `kiln_unwind`, which
//! restores that stack pointer and resumes after the saved point, skipping
//! every wasm frame in between:
//!
//! - Hardware traps (a guard-page fault, `ud2`, a divide fault) arrive as
//!   signals. The process-wide handler checks that the faulting PC is in
//!   registered wasm code and has a trap-table entry; for a memory fault
//!   (SIGSEGV, SIGBUS) also that the entry is `MemoryOutOfBounds` and that
//!   the faulting address lies in the reservation or guard region of a
//!   linear memory of the innermost activation's store (the store's
//!   `VMStoreContext::memory_reservations`, see `fault_is_wasm_trap`). If so
//!   it records the trap and a backtrace in the innermost activation, and
//!   rewrites the signal context so that returning from the handler
//!   continues in `kiln_unwind` with the jump buffer as its argument. Any
//!   other fault, including a wasm access that faults outside every memory
//!   (a bounds-check bug), is passed to the handler that was installed
//!   before ours, or gets the default action (the process dies).
//! - Errors from host functions and traps detected by builtins call
//!   [`raise`], which records the reason and jumps directly.
//!
//! The frames skipped by the jump are wasm frames, trampolines, and Rust
//! frames that hold no values needing `Drop` at the point of the jump (the
//! host-call shim and builtins move everything out before raising), so no
//! destructor is lost.

use super::backtrace::capture_pcs;
use super::vmcontext::VMStoreContext;
use kiln_environ::TrapCode;
use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::Ordering;
use std::ptr;
use std::sync::Once;

/// Why execution stopped.
pub enum TrapReason {
    /// A wasm trap with its code.
    Wasm(TrapCode),
    /// A host function returned this error.
    Host(anyhow::Error),
    /// A host function panicked with this payload.
    Panic(Box<dyn std::any::Any + Send>),
}

impl From<super::store_hooks::HookError> for TrapReason {
    fn from(e: super::store_hooks::HookError) -> TrapReason {
        match e {
            super::store_hooks::HookError::Trap(code) => TrapReason::Wasm(code),
            super::store_hooks::HookError::Host(e) => TrapReason::Host(e),
        }
    }
}

/// A trap, as recorded at the point it happened.
pub struct TrapRecord {
    /// The reason.
    pub reason: TrapReason,
    /// Program counters of the wasm frames, innermost first.
    pub pcs: Vec<usize>,
}

/// Saved stack pointer and resume address (see the assembly below).
#[repr(C)]
struct JmpBuf {
    sp: usize,
    resume: usize,
}

struct Activation {
    jmp: UnsafeCell<JmpBuf>,
    trap: UnsafeCell<Option<TrapRecord>>,
    prev: *const Activation,
    store_ctx: *mut VMStoreContext,
}

/// Per-thread trap state, in one constant-initialized thread local so the
/// call path reads it with plain TLS loads.
struct ThreadState {
    /// The innermost activation (null when no wasm runs on this thread).
    current: Cell<*const Activation>,
    /// The lowest address of this thread's stack; 0 until the thread is
    /// prepared (see `prepare_thread`).
    stack_low: Cell<usize>,
    /// This thread's kernel id; 0 until the thread is prepared.
    tid: Cell<i32>,
    /// A one-shot timer that sends this thread the epoch signal again, for
    /// signals that found it outside wasm code (see `epoch_signal`).
    retry_timer: Cell<Option<usize>>,
    /// Whether `retry_timer` is armed and has not fired yet (re-arming it
    /// would postpone it, and a stream of signals could postpone it forever).
    retry_armed: Cell<bool>,
    /// The innermost activation while a deadline hook runs for it (null
    /// otherwise): signals then wait for the hook, which re-arms the retry
    /// itself, rather than interrupting a long callback every 0.5 ms.
    deadline_hook_act: Cell<*const Activation>,
}

thread_local! {
    static THREAD: ThreadState = const {
        ThreadState {
            current: Cell::new(ptr::null()),
            stack_low: Cell::new(0),
            tid: Cell::new(0),
            retry_timer: Cell::new(None),
            retry_armed: Cell::new(false),
            deadline_hook_act: Cell::new(ptr::null()),
        }
    };
}

/// Stack the host keeps for itself below the wasm stack limit: host
/// functions called from deep wasm recursion run in it.
const HOST_STACK_RESERVE: usize = 256 * 1024;

#[cfg(target_arch = "x86_64")]
mod arch {
    use super::EntryTrampoline;

    /// `fn(buf, callee, values, wasm_call, trampoline) -> u32`: saves the
    /// callee-saved registers and the stack pointer in `buf`, calls
    /// `trampoline(callee, callee, values, wasm_call)`, returns 0; returns 1
    /// instead when `kiln_unwind(buf)` jumps back.
    #[unsafe(naked)]
    pub unsafe extern "C" fn kiln_enter(
        _buf: *mut u8,
        _callee: *mut u8,
        _values: *mut u8,
        _wasm_call: *const u8,
        _trampoline: EntryTrampoline,
    ) -> u32 {
        core::arch::naked_asm!(
            "push rbp",
            "mov rbp, rsp",
            "push rbx",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            "sub rsp, 8",
            "mov [rdi], rsp",
            "lea rax, [rip + 2f]",
            "mov [rdi + 8], rax",
            // Arguments of the trampoline: callee, caller (= callee),
            // values (already in rdx), wasm_call (already in rcx).
            "mov rdi, rsi",
            "call r8",
            "xor eax, eax",
            "3:",
            "add rsp, 8",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbx",
            "pop rbp",
            "ret",
            "2:",
            "mov eax, 1",
            "jmp 3b",
        )
    }

    /// Restores the stack pointer saved in `buf` and resumes `kiln_enter`.
    #[unsafe(naked)]
    pub unsafe extern "C" fn kiln_unwind(_buf: *mut u8) -> ! {
        core::arch::naked_asm!("mov rsp, [rdi]", "jmp qword ptr [rdi + 8]")
    }

    /// Reads (pc, fp) from a signal context and redirects it to `target(arg)`.
    pub unsafe fn context_pc_fp(ctx: *mut libc::c_void) -> (usize, usize) {
        // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers.
        let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
        (uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize, uc.uc_mcontext.gregs[libc::REG_RBP as usize] as usize)
    }

    /// Reads Cranelift's pinned register (r15) from a signal context.
    pub unsafe fn context_pinned_reg(ctx: *mut libc::c_void) -> u64 {
        // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers.
        let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
        uc.uc_mcontext.gregs[libc::REG_R15 as usize] as u64
    }

    pub unsafe fn redirect(ctx: *mut libc::c_void, target: usize, arg: usize) {
        // SAFETY: as above; the kernel restores registers from this context
        // when the handler returns.
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
}

#[cfg(target_arch = "aarch64")]
mod arch {
    use super::EntryTrampoline;

    #[unsafe(naked)]
    pub unsafe extern "C" fn kiln_enter(
        _buf: *mut u8,
        _callee: *mut u8,
        _values: *mut u8,
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

    #[unsafe(naked)]
    pub unsafe extern "C" fn kiln_unwind(_buf: *mut u8) -> ! {
        core::arch::naked_asm!("ldr x9, [x0]", "mov sp, x9", "ldr x9, [x0, #8]", "br x9")
    }

    pub unsafe fn context_pc_fp(ctx: *mut libc::c_void) -> (usize, usize) {
        // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers.
        let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
        (uc.uc_mcontext.pc as usize, uc.uc_mcontext.regs[29] as usize)
    }

    /// Reads Cranelift's pinned register (x21) from a signal context.
    pub unsafe fn context_pinned_reg(ctx: *mut libc::c_void) -> u64 {
        // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers.
        let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
        uc.uc_mcontext.regs[21]
    }

    pub unsafe fn redirect(ctx: *mut libc::c_void, target: usize, arg: usize) {
        // SAFETY: as above.
        let uc = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
        uc.uc_mcontext.pc = target as u64;
        uc.uc_mcontext.regs[0] = arg as u64;
    }

    #[inline(always)]
    pub fn stack_pointer() -> usize {
        let sp: usize;
        // SAFETY: reads a register, no memory access.
        unsafe { core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
        sp
    }
}

/// An array-to-wasm entry trampoline: `(callee_vmctx, caller_vmctx,
/// values, wasm_call)`.
pub type EntryTrampoline = unsafe extern "C" fn(*mut u8, *mut u8, *mut u8, *const u8);

/// Prepares the current thread for running wasm the first time it does:
/// records the low end of its stack and installs an alternate signal stack.
/// Returns the stack's lowest address.
#[cold]
fn prepare_thread() -> usize {
    ensure_sigaltstack();
    let mut low = 0usize;
    // SAFETY: standard pthread attribute queries on the current thread, with
    // an attribute object initialized by the call and destroyed afterwards.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) == 0 {
            let mut addr: *mut libc::c_void = ptr::null_mut();
            let mut size: libc::size_t = 0;
            if libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0 {
                low = addr as usize;
            }
            libc::pthread_attr_destroy(&mut attr);
        }
    }
    let low = low.max(1);
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    THREAD.with(|t| {
        t.stack_low.set(low);
        t.tid.set(tid);
        t.retry_timer.set(epoch_retry::create(tid));
    });
    low
}

/// Calls the wasm function `wasm_call` of instance `callee` through its
/// signature's entry `trampoline`, so that a trap anywhere inside returns
/// here as `Err` instead of crashing. `max_wasm_stack` bounds the stack wasm
/// may use below this point when no wasm is running on this store yet.
///
/// This is the whole host-to-wasm fast path: a few thread-local loads and
/// stores, the register save of `kiln_enter`, and the trampoline.
///
/// # Safety
///
/// `store_ctx` is the store's context, valid and not otherwise borrowed
/// during the call; `trampoline` is the entry trampoline of exactly the
/// signature of `wasm_call`, a live function of instance `callee` of that
/// store; `values` has a slot for every parameter and result, holding
/// arguments of the right types. The process's trap handlers are installed
/// (every `Engine` does that when created).
#[inline]
pub unsafe fn enter_wasm(
    store_ctx: *mut VMStoreContext,
    max_wasm_stack: usize,
    trampoline: EntryTrampoline,
    callee: *mut u8,
    values: *mut u8,
    wasm_call: *const u8,
) -> Result<(), Box<TrapRecord>> {
    // SAFETY: the caller passes the store's context, valid and not otherwise
    // borrowed during this call.
    let ctx = unsafe { &mut *store_ctx };
    let saved = (ctx.stack_limit, ctx.last_wasm_entry_fp, ctx.last_wasm_exit_fp, ctx.last_wasm_exit_pc);
    if ctx.stack_limit == usize::MAX {
        let mut low = THREAD.with(|t| t.stack_low.get());
        if low == 0 {
            low = prepare_thread();
        }
        let by_config = arch::stack_pointer().saturating_sub(max_wasm_stack);
        ctx.stack_limit = by_config.max(low.saturating_add(HOST_STACK_RESERVE));
    }
    let saved_tid = if ctx.epoch_signals {
        let prev = publish_running_thread(ctx);
        // A deadline reached before the call interrupts it at its start, as
        // the first check of polled code would.
        // SAFETY: as above; the store's hooks may run (the store is borrowed
        // for this call only through `store_ctx`).
        if let Err(e) = unsafe { poll_epoch_signal(store_ctx) } {
            // SAFETY: as above.
            unsafe { restore_entry_state(store_ctx, saved, Some(prev)) };
            return Err(Box::new(TrapRecord { reason: e.into(), pcs: vec![] }));
        }
        Some(prev)
    } else {
        None
    };
    let act = Activation {
        jmp: UnsafeCell::new(JmpBuf { sp: 0, resume: 0 }),
        trap: UnsafeCell::new(None),
        prev: THREAD.with(|t| t.current.get()),
        store_ctx,
    };
    THREAD.with(|t| t.current.set(&act));
    // SAFETY: `kiln_enter` follows the C ABI and preserves callee-saved
    // registers on both of its return paths; the trampoline's contract is
    // the caller's.
    let r = unsafe { arch::kiln_enter(act.jmp.get().cast(), callee, values, wasm_call, trampoline) };
    THREAD.with(|t| t.current.set(act.prev));
    // SAFETY: as above; no wasm is running on this store context now.
    unsafe { restore_entry_state(store_ctx, saved, saved_tid) };
    if r == 0 { Ok(()) } else { Err(take_trap(&act)) }
}

/// Puts back what `enter_wasm` changed in the store context.
///
/// # Safety
///
/// `store_ctx` is valid and not otherwise borrowed.
unsafe fn restore_entry_state(store_ctx: *mut VMStoreContext, saved: (usize, usize, usize, usize), tid: Option<i32>) {
    // SAFETY: per the contract.
    let ctx = unsafe { &mut *store_ctx };
    (ctx.stack_limit, ctx.last_wasm_entry_fp, ctx.last_wasm_exit_fp, ctx.last_wasm_exit_pc) = saved;
    if let Some(tid) = tid {
        ctx.running_tid.store(tid, Ordering::SeqCst);
    }
}

/// Records this thread as the one running `ctx`'s wasm, for the thread
/// advancing the epoch to signal; returns the previous value. The caller
/// then reads the flag: the advancing thread raises the flag before it
/// reads the id, so one of the two sees the other's write.
fn publish_running_thread(ctx: &VMStoreContext) -> i32 {
    let tid = THREAD.with(|t| t.tid.get());
    ctx.running_tid.swap(tid, Ordering::SeqCst)
}

/// Sends the epoch signal to thread `tid` of this process (see
/// `epoch_signal`).
pub fn send_epoch_signal(tid: i32) {
    if THREAD.with(|t| t.tid.get()) == tid {
        // This thread, in Rust code (a host function or the deadline
        // callback moved the deadline): no wasm to stop yet.
        epoch_retry::arm();
        return;
    }
    // SAFETY: tgkill only delivers a signal; a thread id that is no longer
    // running wasm (or no longer exists) ignores it or gets ESRCH.
    unsafe {
        libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, EPOCH_SIGNAL);
    }
}

#[cold]
fn take_trap(act: &Activation) -> Box<TrapRecord> {
    // SAFETY: the trap was stored by `raise` or the signal handler before
    // jumping back; nothing else accesses it now.
    let trap = unsafe { (*act.trap.get()).take() };
    Box::new(trap.unwrap_or(TrapRecord { reason: TrapReason::Wasm(TrapCode::UnreachableCodeReached), pcs: vec![] }))
}

/// Stops the innermost wasm activation on this thread with `reason`, as a
/// trap at the frame that last called out of wasm. Must only be called from
/// builtins and host-call shims, i.e. while wasm is on the stack, with no
/// live values that need dropping.
pub fn raise(reason: TrapReason) -> ! {
    let act = THREAD.with(|t| t.current.get());
    if act.is_null() {
        // Not reachable through the public API: builtins and shims only run
        // beneath `enter_wasm`.
        eprintln!("kiln: trap raised outside of wasm");
        std::process::abort();
    }
    // SAFETY: `act` is the innermost live activation of this thread (the
    // list is maintained by `enter_wasm`), and its store context is valid.
    unsafe {
        let act = &*act;
        let ctx = &*act.store_ctx;
        let pcs = capture_pcs(ctx.last_wasm_exit_pc, ctx.last_wasm_exit_fp, ctx.last_wasm_entry_fp, true);
        *act.trap.get() = Some(TrapRecord { reason, pcs });
        arch::kiln_unwind(act.jmp.get().cast())
    }
}

// SAFETY: `sigaction` is a plain C struct for which all-zero bytes are a
// valid value (no handler, empty mask, no flags).
static mut PREV_HANDLERS: [libc::sigaction; 5] = [const { unsafe { std::mem::zeroed() } }; 5];
const SIGNALS: [libc::c_int; 5] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, EPOCH_SIGNAL];

/// The signal that delivers epoch interruptions (`Tunables::epoch_signals`):
/// ignored by default, so a stray one harms no thread.
pub const EPOCH_SIGNAL: libc::c_int = libc::SIGURG;

/// Installs the process-wide trap handlers (once).
pub fn init_traps() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (i, sig) in SIGNALS.iter().enumerate() {
            // SAFETY: installing a handler with a zeroed, then filled,
            // sigaction; the previous one is saved for chaining before any
            // fault can reach our handler (we are inside `call_once`).
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = trap_handler as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                let prev = &raw mut PREV_HANDLERS[i];
                if libc::sigaction(*sig, &sa, prev) != 0 {
                    panic!("kiln: cannot install the {sig} signal handler");
                }
            }
        }
    });
}

unsafe extern "C" fn trap_handler(signum: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let act = THREAD.with(|t| t.current.get());
    if signum == EPOCH_SIGNAL {
        // SAFETY: the kernel passes a valid siginfo to SA_SIGINFO handlers.
        if unsafe { (*info).si_code } == libc::SI_TIMER {
            THREAD.with(|t| t.retry_armed.set(false));
        }
        // SAFETY: `ctx` is the kernel-provided context of this signal and
        // `act` this thread's innermost activation.
        if !act.is_null() && unsafe { epoch_signal(act, ctx) } {
            return;
        }
    } else if !act.is_null() {
        // SAFETY: `ctx` is the kernel-provided context of this signal.
        let (pc, fp) = unsafe { arch::context_pc_fp(ctx) };
        if let Some(code) = super::code_memory::lookup_trap_code(pc)
            // SAFETY: `info` is the kernel-provided siginfo of this signal,
            // `act` this thread's innermost live activation, and `pc` (just
            // found to be a trap site) the wasm instruction that faulted.
            && unsafe { fault_is_wasm_trap(signum, info, act, code) }
        {
            // SAFETY: `act` is this thread's innermost live activation; the
            // faulting code is wasm running beneath it, so no Rust code of
            // this thread is using the activation concurrently.
            unsafe {
                let act = &*act;
                if (*act.store_ctx).fuel_in_pinned_reg {
                    // Wasm keeps the fuel counter in the pinned register
                    // (see the compiler's `translate/interrupt.rs`): what
                    // the trapping call ran is charged to the store.
                    (*act.store_ctx).fuel_consumed = arch::context_pinned_reg(ctx) as i64;
                }
                let entry_fp = (*act.store_ctx).last_wasm_entry_fp;
                let pcs = capture_pcs(pc, fp, entry_fp, false);
                *act.trap.get() = Some(TrapRecord { reason: TrapReason::Wasm(code), pcs });
                arch::redirect(ctx, arch::kiln_unwind as *const () as usize, act.jmp.get() as usize);
            }
            return;
        }
    }
    // Not ours: hand the signal to whoever was installed before us.
    let i = SIGNALS.iter().position(|s| *s == signum).unwrap_or(0);
    // SAFETY: PREV_HANDLERS was written once before our handler was
    // installed and is only read afterwards.
    unsafe {
        let prev: libc::sigaction = ptr::read(&raw const PREV_HANDLERS[i]);
        if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = std::mem::transmute(prev.sa_sigaction);
            f(signum, info, ctx);
        } else if signum == EPOCH_SIGNAL && (prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN) {
            // Ignored by default: nothing to do, and our handler stays.
        } else if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
            // Restore the default action and return: the faulting
            // instruction runs again and the default action happens.
            libc::sigaction(signum, &prev, ptr::null_mut());
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
            f(signum);
        }
    }
}

/// Whether a `signum` fault at a trap site recorded with `code` is that
/// wasm trap. An illegal instruction or arithmetic fault there is: the
/// instruction at the site is the trap (`ud2`, a division). A memory fault
/// (SIGSEGV, SIGBUS) is only if the site is a linear-memory access
/// (`MemoryOutOfBounds`), the kernel raised the signal for that access, and
/// the faulting address lies in the reservation or guard region of a memory
/// of the store running: that is the out-of-bounds access the guard region
/// exists to catch. A fault anywhere else means compiled code computed an
/// address it should not have (a bounds-check bug), which must crash the
/// process like any other wild access rather than pass for a harmless trap.
///
/// # Safety
///
/// `info` is the kernel-provided siginfo of this signal; `act` is this
/// thread's innermost live activation, and the signal was raised by the
/// wasm code running beneath it, at a trap site.
unsafe fn fault_is_wasm_trap(signum: libc::c_int, info: *mut libc::siginfo_t, act: *const Activation, code: TrapCode) -> bool {
    if signum != libc::SIGSEGV && signum != libc::SIGBUS {
        return true;
    }
    if code != TrapCode::MemoryOutOfBounds {
        return false;
    }
    // SAFETY: the kernel passes a valid siginfo to SA_SIGINFO handlers, and
    // `si_addr` is the faulting address for a kernel-raised SIGSEGV/SIGBUS
    // (`si_code > 0`; a signal sent by a process has `si_code <= 0` and no
    // address, and is no fault at all).
    let addr = unsafe {
        if (*info).si_code <= 0 {
            return false;
        }
        (*info).si_addr() as usize
    };
    // SAFETY: the activation and its store context are alive while linked.
    // The reservation list is written only by Rust code holding the store's
    // exclusive borrow, so on the one thread using the store, which is also
    // the only thread running the store's wasm (wasm is entered under that
    // borrow). This thread was executing that wasm when it faulted (`pc` is
    // a trap site of compiled code, and wasm of the innermost activation's
    // store is the only wasm that can run beneath it), so no write to the
    // list is half done: a push completes, and is in memory, before control
    // gets back into wasm (through an opaque call), and a signal arriving in
    // the middle of a push would find the pc in Rust code and not get here.
    // Reading the list takes no lock and allocates nothing.
    unsafe { (*(*act).store_ctx).memory_reservations.contains(addr) }
}

/// Makes sure this thread has an alternate signal stack (called once per
/// thread, by `prepare_thread`), so the trap
/// handler can run even when the thread's stack is exhausted.
fn ensure_sigaltstack() {
    struct AltStack(*mut libc::c_void, usize);
    impl Drop for AltStack {
        fn drop(&mut self) {
            // SAFETY: disables the alternate stack this thread installed,
            // then unmaps it; no signal handler can be using it because this
            // runs at thread exit outside any handler.
            unsafe {
                let ss = libc::stack_t { ss_sp: ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
                libc::sigaltstack(&ss, ptr::null_mut());
                libc::munmap(self.0, self.1);
            }
        }
    }
    thread_local! {
        static ALT: std::cell::RefCell<Option<AltStack>> = const { std::cell::RefCell::new(None) };
    }
    // SAFETY: queries and, if absent, installs a freshly mapped alternate
    // signal stack for the current thread.
    unsafe {
        let mut old: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(ptr::null(), &mut old);
        if old.ss_flags & libc::SS_DISABLE == 0 && old.ss_size >= 32 * 1024 {
            return;
        }
        let size = 64 * 1024;
        let p = libc::mmap(ptr::null_mut(), size, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        if p == libc::MAP_FAILED {
            return;
        }
        let ss = libc::stack_t { ss_sp: p, ss_flags: 0, ss_size: size };
        if libc::sigaltstack(&ss, ptr::null_mut()) == 0 {
            ALT.with(|a| *a.borrow_mut() = Some(AltStack(p, size)));
        } else {
            libc::munmap(p, size);
        }
    }
}

// Epoch interruption by signal (`Tunables::epoch_signals`).
//
// The thread that advances the epoch raises a store's flag and sends
// `EPOCH_SIGNAL` to the thread running that store's wasm (`epoch.rs`).
// Compiled code has no epoch checks; instead the handler, when the signal
// finds the thread at an instruction of a compiled wasm function, makes
// that instruction "call" `kiln_epoch_stub`: it pushes the interrupted pc
// on the thread's stack as a return address and resumes the thread in the
// stub. (Cranelift code keeps nothing below the stack pointer, so the push
// clobbers nothing.) The stub saves every register the Rust code may
// clobber — the caller-saved integer registers, the flags, all sixteen XMM
// registers (Cranelift uses no other vector state) — runs the store's
// deadline logic (trap,
// callback, or clearing a stale flag) exactly like the polled `new_epoch`
// builtin, restores everything and returns to the interrupted instruction.
// A trap unwinds from there like any builtin's, with a backtrace starting
// at the interrupted instruction.
//
// A signal that finds the thread elsewhere (a builtin, a host function,
// a trampoline, Rust glue, or a wasm frame of another store) cannot stop it
// there; the flag stays raised and the thread's one-shot retry timer sends
// the signal again shortly, until it lands in wasm or the flag is cleared.
// Entering wasm and returning from a host function run the deadline logic
// if the flag is raised (`poll_epoch_signal`); compiled code polls after
// builtin calls.

/// Handles `EPOCH_SIGNAL` for a thread with a live activation `act`;
/// returns whether the signal was Kiln's to handle (else it is passed on).
///
/// # Safety
///
/// `ctx` is the kernel-provided context of this signal; `act` is the
/// thread's innermost live activation.
#[cfg(target_arch = "x86_64")]
unsafe fn epoch_signal(act: *const Activation, ctx: *mut libc::c_void) -> bool {
    if THREAD.with(|t| t.deadline_hook_act.get()) == act {
        return true;
    }
    // SAFETY: the activations and their store contexts are alive while
    // linked; only atomics and plain words are read or written, and this
    // thread, which owns them, is stopped in the handler.
    unsafe {
        let mut pending = false;
        let mut a = act;
        while !a.is_null() {
            let c = (*a).store_ctx;
            if (*c).epoch_signals && (*c).epoch_interrupt.load(Ordering::SeqCst) != 0 {
                pending = true;
                break;
            }
            a = (*a).prev;
        }
        if !pending {
            // Stale (the deadline moved, or the store's call returned) or
            // not ours at all; with an activation live, ours is likelier.
            return (*(*act).store_ctx).epoch_signals;
        }
        let store = (*act).store_ctx;
        if (*store).epoch_signals && (*store).epoch_interrupt.load(Ordering::SeqCst) != 0 {
            let (pc, fp) = arch::context_pc_fp(ctx);
            if super::code_memory::is_wasm_function_pc_nonblocking(pc) == Some(true) {
                // Backtraces of a trap raised by the deadline logic start
                // at the interrupted instruction (recorded as if it were a
                // return address, as for a builtin's caller).
                (*store).last_wasm_exit_pc = pc + 1;
                (*store).last_wasm_exit_fp = fp;
                let uc = &mut *(ctx as *mut libc::ucontext_t);
                let sp = uc.uc_mcontext.gregs[libc::REG_RSP as usize] as usize - 8;
                *(sp as *mut usize) = pc;
                uc.uc_mcontext.gregs[libc::REG_RSP as usize] = sp as i64;
                uc.uc_mcontext.gregs[libc::REG_RIP as usize] = kiln_epoch_stub as *const () as usize as i64;
                return true;
            }
        }
        epoch_retry::arm();
        true
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn epoch_signal(_act: *const Activation, _ctx: *mut libc::c_void) -> bool {
    // Epoch signals are only used on x86-64 (`Config::epoch_interruption`).
    false
}

/// Entered from the epoch signal handler as if the interrupted wasm
/// instruction had called it (see above). Saves what Rust may clobber,
/// calls `on_epoch_interrupt`, restores, returns to the interrupted
/// instruction. (No fuel counter to hand over: engines with fuel poll
/// for epochs instead.)
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
unsafe extern "C" fn kiln_epoch_stub() {
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
        handler = sym on_epoch_interrupt,
    )
}

/// Runs the store's deadline logic (`VMStore::new_epoch`) if `ctx` uses
/// epoch signals and its flag is raised: for the points where control
/// comes back to wasm from code a signal cannot stop (host functions) or
/// enters it.
///
/// # Safety
///
/// `ctx` is a live store context whose store is not otherwise borrowed
/// (its hooks run).
pub unsafe fn poll_epoch_signal(ctx: *mut VMStoreContext) -> Result<(), super::store_hooks::HookError> {
    // SAFETY: per the contract.
    unsafe {
        if !(*ctx).epoch_signals || (*ctx).epoch_interrupt.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        run_deadline_hook(ctx)
    }
}

/// The store's deadline logic, as the `new_epoch` builtin runs it.
///
/// # Safety
///
/// As for `poll_epoch_signal`.
unsafe fn run_deadline_hook(ctx: *mut VMStoreContext) -> Result<(), super::store_hooks::HookError> {
    let act = THREAD.with(|t| t.current.get());
    let outer = THREAD.with(|t| t.deadline_hook_act.replace(act));
    // SAFETY: per the contract; the hooks pointer was registered by the
    // store, which outlives its context's use here.
    let r = unsafe {
        match (*ctx).hooks {
            Some(mut h) => h.as_mut().new_epoch().map(drop),
            None => Err(super::store_hooks::HookError::Trap(TrapCode::Interrupt)),
        }
    };
    THREAD.with(|t| t.deadline_hook_act.set(outer));
    // SAFETY: as above.
    if r.is_ok() && unsafe { (*ctx).epoch_signals && (*ctx).epoch_interrupt.load(Ordering::SeqCst) != 0 } {
        // Still reached (the callback kept the deadline, or the epoch moved
        // past the new one meanwhile): interrupt again soon.
        epoch_retry::arm();
    }
    r
}

/// The deadline logic for an interrupted wasm instruction, as the polled
/// `new_epoch` builtin runs it.
#[cfg(target_arch = "x86_64")]
extern "C" fn on_epoch_interrupt() {
    let act = THREAD.with(|t| t.current.get());
    // SAFETY: the stub is only entered from the handler, for this thread's
    // live innermost activation, whose store context outlives the call.
    if let Err(e) = unsafe { run_deadline_hook((*act).store_ctx) } {
        raise(e.into());
    }
}

/// Each thread's one-shot timer that re-sends it the epoch signal.
mod epoch_retry {
    use super::{EPOCH_SIGNAL, THREAD};

    /// How long a signal that found the thread outside wasm waits to try
    /// again.
    const RETRY_NS: i64 = 500_000;

    struct Timer(libc::timer_t);

    impl Drop for Timer {
        fn drop(&mut self) {
            THREAD.with(|t| t.retry_timer.set(None));
            // SAFETY: deletes the timer this thread created, at thread exit.
            unsafe { libc::timer_delete(self.0) };
        }
    }

    thread_local! {
        static OWNED: std::cell::RefCell<Option<Timer>> = const { std::cell::RefCell::new(None) };
    }

    /// Creates the calling thread's timer (thread id `tid`), deleted when
    /// the thread exits. `None` if the system refuses (then retries wait
    /// for the next epoch advance).
    pub(super) fn create(tid: i32) -> Option<usize> {
        if !cfg!(target_arch = "x86_64") {
            return None;
        }
        // SAFETY: a zeroed sigevent is valid; the fields set select
        // delivery of EPOCH_SIGNAL to this thread.
        let timer = unsafe {
            let mut ev: libc::sigevent = std::mem::zeroed();
            ev.sigev_notify = libc::SIGEV_THREAD_ID;
            ev.sigev_signo = EPOCH_SIGNAL;
            ev.sigev_notify_thread_id = tid;
            let mut timer: libc::timer_t = std::ptr::null_mut();
            if libc::timer_create(libc::CLOCK_MONOTONIC, &mut ev, &mut timer) != 0 {
                return None;
            }
            timer
        };
        OWNED.with(|o| *o.borrow_mut() = Some(Timer(timer)));
        Some(timer as usize)
    }

    /// Arms the calling thread's timer (a plain system call: callable from
    /// the signal handler).
    pub(super) fn arm() {
        let Some(timer) = THREAD.with(|t| t.retry_timer.get()) else { return };
        if THREAD.with(|t| t.retry_armed.replace(true)) {
            return;
        }
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: 0, tv_nsec: RETRY_NS },
        };
        // SAFETY: `timer` is this thread's live timer (cleared before it is
        // deleted).
        unsafe { libc::timer_settime(timer as libc::timer_t, 0, &spec, std::ptr::null_mut()) };
    }
}
