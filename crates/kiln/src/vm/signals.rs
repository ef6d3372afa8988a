//! The process-wide signal handlers: installing them, telling a wasm trap
//! from any other fault, and passing everything else on to the handlers
//! that were installed before ours. The per-thread alternate signal stack
//! lives here too.
//!
//! - SIGSEGV, SIGBUS, SIGILL, SIGFPE: if this thread runs wasm and the
//!   faulting pc is a recorded trap site (`code_memory::lookup_trap_code`)
//!   — and, for a memory fault, the site is a linear-memory access whose
//!   address lies in a memory of the running store ([`fault_is_wasm_trap`])
//!   — the fault is a wasm trap: it is recorded with a backtrace and the
//!   thread resumes in the unwinder (`traphandlers::unwind_from_signal`).
//! - `EPOCH_SIGNAL`: epoch interruption (`epoch::signal`).
//! - Anything else goes to the previous handler, or gets the default
//!   action (the process dies), as if Kiln were not there.

use super::backtrace::capture_pcs;
use super::epoch::signal::{EPOCH_SIGNAL, handle_signal as handle_epoch_signal};
use super::traphandlers::{Activation, TrapReason, TrapRecord, current_activation, unwind_from_signal};
use kiln_environ::TrapCode;
use std::ptr;
use std::sync::Once;

// SAFETY: `sigaction` is a plain C struct for which all-zero bytes are a
// valid value (no handler, empty mask, no flags).
static mut PREV_HANDLERS: [libc::sigaction; 5] = [const { unsafe { std::mem::zeroed() } }; 5];
const SIGNALS: [libc::c_int; 5] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, EPOCH_SIGNAL];

/// Installs the process-wide signal handlers (once; every `Engine` calls
/// this when it is created).
pub fn init_traps() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (i, sig) in SIGNALS.iter().enumerate() {
            // SAFETY: installing a handler with a zeroed, then filled,
            // sigaction; the previous one is saved for chaining before any
            // fault can reach our handler (we are inside `call_once`).
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = handler as *const () as usize;
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

/// The handler of every signal in `SIGNALS`.
///
/// # Safety
///
/// Only installed as an `SA_SIGINFO` handler: the kernel calls it with
/// valid `info` and `ctx` for this signal.
unsafe extern "C" fn handler(signum: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    if signum == EPOCH_SIGNAL {
        // SAFETY: `info` and `ctx` are this signal's (the function's contract).
        if unsafe { handle_epoch_signal(info, ctx) } {
            return;
        }
    } else {
        let act = current_activation();
        // SAFETY: `info` and `ctx` are this signal's (the function's
        // contract); `act`, checked not null, is this thread's innermost live
        // activation.
        if !act.is_null() && unsafe { catch_trap(signum, info, ctx, act) } {
            return;
        }
    }
    // SAFETY: `info` and `ctx` are this signal's (the function's contract).
    unsafe { forward(signum, info, ctx) }
}

/// Turns the fault into a wasm trap of the activation `act` if it is one
/// (see the module docs); returns whether it was.
///
/// # Safety
///
/// `info` and `ctx` are the kernel-provided siginfo and context of this
/// signal; `act` is this thread's innermost live activation.
unsafe fn catch_trap(
    signum: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
    act: *const Activation,
) -> bool {
    // SAFETY: `ctx` is the kernel-provided context of this signal.
    let (pc, fp) = unsafe { super::arch::context_pc_fp(ctx) };
    let Some(code) = super::code_memory::lookup_trap_code(pc) else { return false };
    // SAFETY: `info` is this signal's siginfo, `act` this thread's
    // innermost live activation, and `pc` (a trap site) the wasm
    // instruction that faulted.
    if !unsafe { fault_is_wasm_trap(signum, info, act, code) } {
        return false;
    }
    // SAFETY: `act` is this thread's innermost live activation, whose store
    // context is alive; the faulting code is wasm running beneath it, so no
    // Rust code of this thread is using either concurrently.
    unsafe {
        let store_ctx = (*act).store_ctx;
        if (*store_ctx).fuel_in_pinned_reg {
            // Wasm keeps the fuel counter in the pinned register (see the
            // compiler's `translate/interrupt/fuel.rs`): what the trapping call
            // ran is charged to the store.
            (*store_ctx).fuel_consumed = super::arch::context_pinned_reg(ctx) as i64;
        }
        let pcs = capture_pcs(pc, fp, (*store_ctx).last_wasm_entry_fp, false);
        unwind_from_signal(act, ctx, TrapRecord { reason: TrapReason::Wasm(code), pcs });
    }
    true
}

/// Hands a signal that is not Kiln's to whoever was installed before us,
/// or gives it the default action.
///
/// # Safety
///
/// As for [`handler`].
unsafe fn forward(signum: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let i = SIGNALS.iter().position(|s| *s == signum).unwrap_or(0);
    // SAFETY: PREV_HANDLERS was written once before our handler was
    // installed and is only read afterwards; a previous SA_SIGINFO handler
    // is called as the kernel would have called it.
    unsafe {
        let prev: libc::sigaction = ptr::read(&raw const PREV_HANDLERS[i]);
        if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(prev.sa_sigaction);
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
unsafe fn fault_is_wasm_trap(
    signum: libc::c_int,
    info: *mut libc::siginfo_t,
    act: *const Activation,
    code: TrapCode,
) -> bool {
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
/// thread, before it first runs wasm), so the trap handler can run even
/// when the thread's stack is exhausted.
pub fn ensure_sigaltstack() {
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
        let p = libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
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
