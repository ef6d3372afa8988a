//! Epoch interruption by signal (`Tunables::epoch_signals`, x86-64).
//!
//! The thread that advances the epoch raises a store's flag and sends
//! [`EPOCH_SIGNAL`] to the thread running that store's wasm (`epoch/mod.rs`).
//! Compiled code has no epoch checks; instead the handler, when the signal
//! finds the thread at an instruction of a compiled wasm function, makes
//! that instruction "call" `kiln_epoch_stub` (`arch::call_from_signal`),
//! which saves every register Rust may clobber, runs the store's deadline
//! logic (trap, callback, or clearing a stale flag) exactly like the polled
//! `new_epoch` builtin, restores everything and returns to the interrupted
//! instruction. A trap unwinds from there like any builtin's, with a
//! backtrace starting at the interrupted instruction.
//!
//! A signal that finds the thread elsewhere (a builtin, a host function, a
//! trampoline, Rust glue, or a wasm frame of another store) cannot stop it
//! there; the flag stays raised and the thread's one-shot retry timer sends
//! the signal again shortly, until it lands in wasm or the flag is cleared.
//! Entering wasm and returning from a host function run the deadline logic
//! if the flag is raised ([`poll_epoch_signal`]); compiled code polls after
//! builtin calls.

use crate::vm::store_hooks::{HookError, VMStore};
use crate::vm::traphandlers::{Activation, current_activation};
use crate::vm::vmcontext::VMStoreContext;
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::Ordering;

/// The signal that delivers epoch interruptions: ignored by default, so a
/// stray one harms no thread.
pub const EPOCH_SIGNAL: libc::c_int = libc::SIGURG;

/// This thread's part in epoch delivery, in one constant-initialized
/// thread local.
struct ThreadEpoch {
    /// This thread's kernel id; 0 until the thread is prepared.
    tid: Cell<i32>,
    /// A one-shot timer that sends this thread the epoch signal again, for
    /// signals that found it outside wasm code.
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
    static THREAD: ThreadEpoch = const {
        ThreadEpoch {
            tid: Cell::new(0),
            retry_timer: Cell::new(None),
            retry_armed: Cell::new(false),
            deadline_hook_act: Cell::new(ptr::null()),
        }
    };
}

/// Prepares the current thread for receiving epoch signals (once per
/// thread, before it first runs wasm): records its kernel id and creates
/// its retry timer.
pub fn prepare_thread() {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    THREAD.with(|t| {
        t.tid.set(tid);
        t.retry_timer.set(retry::create(tid));
    });
}

/// Whether a deadline hook is running on this thread (its activation is
/// recorded).
#[inline]
pub fn deadline_hook_running() -> bool {
    THREAD.with(|t| !t.deadline_hook_act.get().is_null())
}

/// Replaces this thread's record of the activation whose deadline hook is
/// running (see `ThreadEpoch::deadline_hook_act`); returns the old one.
/// Fibers carry their own across suspensions (`traphandlers::ThreadWasmState`).
#[inline]
pub fn swap_deadline_hook_act(act: *const Activation) -> *const Activation {
    THREAD.with(|t| t.deadline_hook_act.replace(act))
}

/// Records this thread as the one running `ctx`'s wasm, for the thread
/// advancing the epoch to signal; returns the previous value. The caller
/// then reads the flag: the advancing thread raises the flag before it
/// reads the id, so one of the two sees the other's write.
pub fn publish_running_thread(ctx: &VMStoreContext) -> i32 {
    let tid = THREAD.with(|t| t.tid.get());
    ctx.running_tid.swap(tid, Ordering::SeqCst)
}

/// Sends the epoch signal to thread `tid` of this process.
pub fn send_epoch_signal(tid: i32) {
    if THREAD.with(|t| t.tid.get()) == tid {
        // This thread, in Rust code (a host function or the deadline
        // callback moved the deadline): no wasm to stop yet.
        retry::arm();
        return;
    }
    // SAFETY: tgkill only delivers a signal; a thread id that is no longer
    // running wasm (or no longer exists) ignores it or gets ESRCH.
    unsafe {
        libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, EPOCH_SIGNAL);
    }
}

/// Handles an `EPOCH_SIGNAL` delivery; returns whether the signal was
/// Kiln's to handle (else it is passed on to the previous handler).
///
/// # Safety
///
/// Called from the signal handler with the kernel-provided `info` and
/// `ctx` of this signal.
pub unsafe fn handle_signal(info: *mut libc::siginfo_t, ctx: *mut libc::c_void) -> bool {
    // SAFETY: the kernel passes a valid siginfo to SA_SIGINFO handlers.
    if unsafe { (*info).si_code } == libc::SI_TIMER {
        THREAD.with(|t| t.retry_armed.set(false));
    }
    let act = current_activation();
    // SAFETY: `ctx` is this signal's context; `act`, when not null, is this
    // thread's innermost live activation.
    !act.is_null() && unsafe { interrupt(act, ctx) }
}

/// Interrupts the wasm beneath `act` if a deadline of a store on this
/// thread's activation stack was reached; returns whether the signal was
/// Kiln's.
///
/// # Safety
///
/// `ctx` is the kernel-provided context of this signal; `act` is the
/// thread's innermost live activation.
#[cfg(target_arch = "x86_64")]
unsafe fn interrupt(act: *const Activation, ctx: *mut libc::c_void) -> bool {
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
            let (pc, fp) = crate::vm::arch::context_pc_fp(ctx);
            if crate::vm::code_memory::is_wasm_function_pc_nonblocking(pc) == Some(true) {
                // Backtraces of a trap raised by the deadline logic start
                // at the interrupted instruction (recorded as if it were a
                // return address, as for a builtin's caller).
                (*store).last_wasm_exit_pc = pc + 1;
                (*store).last_wasm_exit_fp = fp;
                crate::vm::arch::call_from_signal(ctx, crate::vm::arch::kiln_epoch_stub as *const () as usize);
                return true;
            }
        }
        retry::arm();
        true
    }
}

/// Epoch signals are only used on x86-64.
///
/// # Safety
///
/// None needed; the signature matches the x86-64 version.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn interrupt(_act: *const Activation, _ctx: *mut libc::c_void) -> bool {
    false
}

/// Runs the store's deadline logic (`VMStore::new_epoch`) if `store` uses
/// epoch signals and its flag is raised: for the points where control
/// comes back to wasm from code a signal cannot stop (host functions) or
/// enters it.
///
/// # Safety
///
/// `store` is a live store that no Rust code is using (its hooks run): the
/// store of a call into wasm, from inside that call.
pub unsafe fn poll_epoch_signal(store: *mut dyn VMStore) -> Result<(), HookError> {
    // SAFETY: per the contract.
    let ctx = unsafe { (*store).vm_store().context() };
    if !ctx.epoch_signals || ctx.epoch_interrupt.load(Ordering::SeqCst) == 0 {
        return Ok(());
    }
    // SAFETY: per the contract.
    unsafe { run_deadline_hook(store) }
}

/// The store's deadline logic, as the `new_epoch` builtin runs it.
///
/// # Safety
///
/// As for [`poll_epoch_signal`].
unsafe fn run_deadline_hook(store: *mut dyn VMStore) -> Result<(), HookError> {
    let act = current_activation();
    let outer = THREAD.with(|t| t.deadline_hook_act.replace(act));
    // SAFETY: per the contract, the store is live and unused.
    let r = unsafe { (*store).new_epoch().map(drop) };
    THREAD.with(|t| t.deadline_hook_act.set(outer));
    // SAFETY: as above; atomic and plain reads of its context.
    let still = unsafe {
        let ctx = (*store).vm_store().context();
        ctx.epoch_signals && ctx.epoch_interrupt.load(Ordering::SeqCst) != 0
    };
    if r.is_ok() && still {
        // Still reached (the callback kept the deadline, or the epoch moved
        // past the new one meanwhile): interrupt again soon.
        retry::arm();
    }
    r
}

/// The deadline logic for an interrupted wasm instruction, called by
/// `kiln_epoch_stub`.
#[cfg(target_arch = "x86_64")]
pub extern "C" fn on_epoch_interrupt() {
    let act = current_activation();
    // SAFETY: the stub is only entered from the handler, for this thread's
    // live innermost activation (not null: the handler checked), whose
    // store is lent to the call and not used by Rust code while its wasm
    // runs.
    // The interrupted frame has no stack map: no collection may run until
    // the stub returns to it (allocation grows the heap instead).
    // SAFETY: as below.
    unsafe { (*(*act).store).vm_store().forbid_gc() };
    // SAFETY: as above.
    let r = unsafe { run_deadline_hook((*act).store) };
    // SAFETY: as above; the hook's borrow of the store has ended.
    unsafe { (*(*act).store).vm_store().allow_gc() };
    if let Err(e) = r {
        crate::vm::traphandlers::raise(e.into());
    }
}

/// Each thread's one-shot timer that re-sends it the epoch signal.
mod retry {
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
