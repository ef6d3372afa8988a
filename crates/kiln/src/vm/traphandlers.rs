//! Catching traps: activations and unwinding.
//!
//! Every call from the host into wasm goes through [`enter_wasm`] (or
//! [`enter_wasm_regs`], the direct entry of typed calls), which
//! saves the callee-saved registers and stack pointer in a small jump buffer
//! (our own `setjmp`: `arch::enter`) and records an [`Activation`] in a
//! thread-local linked list. A trap then ends up in `kiln_unwind`, which
//! restores that stack pointer and resumes after the saved point, skipping
//! every wasm frame in between:
//!
//! - Hardware traps (a guard-page fault, `ud2`, a divide fault) arrive as
//!   signals (`signals.rs` decides which faults are wasm traps). The handler
//!   records the trap and a backtrace in the innermost activation and
//!   rewrites the signal context so that returning from the handler
//!   continues in `kiln_unwind` with the jump buffer as its argument
//!   ([`unwind_from_signal`]).
//! - Errors from host functions and traps detected by builtins call
//!   [`raise`], which records the reason and jumps directly.
//!
//! The frames skipped by the jump are wasm frames, trampolines, and Rust
//! frames that hold no values needing `Drop` at the point of the jump (the
//! host-call shim and builtins move everything out before raising), so no
//! destructor is lost.

use super::arch;
use super::backtrace::capture_pcs;
use super::epoch::signal::{poll_epoch_signal, publish_running_thread};
use super::invoke::{RegArgs, RegResults};
use super::store_hooks::VMStore;
use super::vmcontext::{VMContext, VMStoreContext, ValRaw};
use kiln_environ::TrapCode;
use std::cell::{Cell, UnsafeCell};
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering;

/// Why execution stopped.
pub enum TrapReason {
    /// A wasm trap with its code.
    Wasm(TrapCode),
    /// A host function returned this error.
    Host(anyhow::Error),
    /// A host function panicked with this payload.
    Panic(Box<dyn std::any::Any + Send>),
    /// A wasm exception was thrown and nothing caught it: it is the
    /// store's pending exception.
    Exception,
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
pub struct JmpBuf {
    sp: usize,
    resume: usize,
}

/// One host-to-wasm call in progress on this thread (the innermost is
/// [`current_activation`]); linked to the one it is nested in.
pub struct Activation {
    /// Written by `arch::enter` before wasm runs.
    jmp: UnsafeCell<MaybeUninit<JmpBuf>>,
    /// Written once, by whatever jumps back through `jmp`, before it jumps.
    trap: UnsafeCell<MaybeUninit<TrapRecord>>,
    /// The activation this one is nested in (null for the outermost).
    pub prev: *const Activation,
    /// The store context of the store whose wasm this activation runs.
    pub store_ctx: *mut VMStoreContext,
    /// That store, exclusively borrowed by the call for the activation's
    /// lifetime: builtins and host functions reach it through here.
    pub store: *mut dyn VMStore,
}

/// Per-thread trap state, in one constant-initialized thread local so the
/// call path reads it with plain TLS loads.
struct ThreadState {
    /// The innermost activation (null when no wasm runs on this thread).
    current: Cell<*const Activation>,
    /// The lowest address of this thread's stack; 0 until the thread is
    /// prepared (see `prepare_thread`).
    stack_low: Cell<usize>,
}

thread_local! {
    static THREAD: ThreadState = const { ThreadState { current: Cell::new(ptr::null()), stack_low: Cell::new(0) } };
}

/// This thread's innermost activation (null when no wasm runs on it).
/// Async-signal-safe: a plain thread-local read.
pub fn current_activation() -> *const Activation {
    THREAD.with(|t| t.current.get())
}

/// The program counters of the wasm frames that called the host function
/// now running on this thread from `store`'s wasm, innermost first (what a
/// trap raised there would record); empty when this thread's innermost
/// activation is not `store`'s.
pub fn host_caller_pcs(store: &mut super::store::VmStore) -> Vec<usize> {
    let act = current_activation();
    let store_ctx = store.context_ptr();
    if act.is_null() {
        return Vec::new();
    }
    // SAFETY: `act` is this thread's innermost live activation (maintained
    // by `enter_wasm`); when it runs `store`'s wasm, its store context is
    // `store`'s, valid, and records the exit of the wasm that called out.
    unsafe {
        let act = &*act;
        if !ptr::eq(act.store_ctx, store_ctx) {
            return Vec::new();
        }
        let ctx = &*act.store_ctx;
        capture_pcs(ctx.last_wasm_exit_pc, ctx.last_wasm_exit_fp, ctx.last_wasm_entry_fp, true)
    }
}

/// The lowest usable address of the stack this thread runs wasm on (0
/// before it first ran any).
pub fn stack_low() -> usize {
    THREAD.with(|t| t.stack_low.get())
}

/// The thread-local state that describes the wasm running on a thread:
/// the innermost activation, the low end of the stack it runs on, and the
/// activation whose epoch deadline hook is running. A fiber has its own
/// (`fiber.rs`): it is swapped in while the fiber runs and out when it
/// suspends, so a fiber can continue on another thread.
pub struct ThreadWasmState {
    current: *const Activation,
    stack_low: usize,
    deadline_hook_act: *const Activation,
}

impl ThreadWasmState {
    /// The state of a fiber that has not run yet on the stack whose lowest
    /// usable address is `low`.
    pub fn for_stack(low: usize) -> ThreadWasmState {
        ThreadWasmState { current: ptr::null(), stack_low: low, deadline_hook_act: ptr::null() }
    }

    /// Exchanges this state with the current thread's, preparing the thread
    /// for wasm first if it never ran any.
    #[inline]
    pub fn swap_with_thread(&mut self) {
        THREAD.with(|t| {
            if t.stack_low.get() == 0 {
                prepare_thread();
            }
            self.current = t.current.replace(self.current);
            self.stack_low = t.stack_low.replace(self.stack_low);
        });
        if !self.deadline_hook_act.is_null() || super::epoch::signal::deadline_hook_running() {
            self.deadline_hook_act = super::epoch::signal::swap_deadline_hook_act(self.deadline_hook_act);
        }
    }
}

/// Prepares the current thread for running wasm if it never has (its
/// alternate signal stack, its epoch-signal identity).
pub fn ensure_thread_prepared() {
    if THREAD.with(|t| t.stack_low.get()) == 0 {
        prepare_thread();
    }
}

/// Stack the host keeps for itself below the wasm stack limit: host
/// functions called from deep wasm recursion run in it.
const HOST_STACK_RESERVE: usize = 256 * 1024;

/// An array-to-wasm entry trampoline: `(callee_vmctx, caller_vmctx,
/// values, wasm_call)`. Both contexts are the callee instance's (never
/// null); `values` is the argument/result array.
pub type EntryTrampoline = unsafe extern "C" fn(NonNull<VMContext>, NonNull<VMContext>, *mut ValRaw, *const u8);

/// Prepares the current thread for running wasm the first time it does:
/// records the low end of its stack and installs an alternate signal stack.
/// Returns the stack's lowest address.
#[cold]
fn prepare_thread() -> usize {
    super::signals::ensure_sigaltstack();
    super::epoch::signal::prepare_thread();
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
    THREAD.with(|t| t.stack_low.set(low));
    low
}

/// Calls the wasm function `wasm_call` of instance `callee` through its
/// signature's entry `trampoline`, so that a trap anywhere inside returns
/// here as `Err` instead of crashing. `max_wasm_stack` bounds the stack wasm
/// may use below this point when no wasm is running on this store yet.
///
/// This is the whole host-to-wasm path of calls with arguments in value
/// slots: a few thread-local loads and stores, the register save around
/// `arch::enter`, and the trampoline.
///
/// # Safety
///
/// `store` is a live store, exclusively borrowed by the caller for the
/// whole call (builtins and host functions reborrow it through the
/// activation), and `store_ctx` its context; `trampoline` is the entry trampoline of exactly the
/// signature of `wasm_call`, a live function of instance `callee` of that
/// store; `values` has a slot for every parameter and result, holding
/// arguments of the right types. The process's trap handlers are installed
/// (every `Engine` does that when created).
#[inline]
pub unsafe fn enter_wasm(
    store: *mut dyn VMStore,
    store_ctx: *mut VMStoreContext,
    max_wasm_stack: usize,
    trampoline: EntryTrampoline,
    callee: NonNull<VMContext>,
    values: *mut ValRaw,
    wasm_call: *const u8,
) -> Result<(), Box<TrapRecord>> {
    // SAFETY: the function's contract, which is `arch::enter`'s (and
    // `enter_with`'s for the rest).
    unsafe {
        enter_with(store, store_ctx, max_wasm_stack, |buf| arch::enter(buf, callee, values, wasm_call, trampoline))
    }
}

/// Calls the wasm function `wasm_call` of instance `callee` directly, with
/// its arguments and results in registers (`arch::enter_regs`: no entry
/// trampoline, no value slots), catching traps as [`enter_wasm`] does.
/// `FLOATS` says whether float registers carry arguments or results.
///
/// The direct entry does what the entry trampoline does besides moving
/// values: it records the entry frame, and loads the pinned register (the
/// fuel counter when the store consumes fuel, else the store context,
/// which compiled code keeps there for polled epoch checks, or ignores),
/// storing the fuel counter back after a normal return.
///
/// # Safety
///
/// As for [`enter_wasm`], without the trampoline and the slots; and
/// `wasm_call`'s signature passes every parameter and result in registers
/// (`invoke::reg_shape` is `Some` for it).
#[inline(always)]
pub unsafe fn enter_wasm_regs<const FLOATS: bool>(
    store: *mut dyn VMStore,
    store_ctx: *mut VMStoreContext,
    max_wasm_stack: usize,
    callee: NonNull<VMContext>,
    wasm_call: *const u8,
    args: &RegArgs,
) -> Result<RegResults, Box<TrapRecord>> {
    let mut results = MaybeUninit::<RegResults>::uninit();
    // SAFETY: the function's contract; the closure runs with the store's
    // context exclusively the call's (wasm has not started or has returned)
    // when it reads and writes the fuel counter, and passes the context's
    // own entry-frame field.
    unsafe {
        enter_with(store, store_ctx, max_wasm_stack, |buf| {
            let fuel = (*store_ctx).fuel_in_pinned_reg;
            let pinned = if fuel { (*store_ctx).fuel_consumed as u64 } else { store_ctx as u64 };
            let entry_fp = &raw mut (*store_ctx).last_wasm_entry_fp;
            let (code, out, pinned) = arch::enter_regs::<FLOATS>(buf, entry_fp, callee, wasm_call, pinned, args);
            if code == 0 {
                if fuel {
                    (*store_ctx).fuel_consumed = pinned as i64;
                }
                results.write(out);
            }
            code
        })?;
        // SAFETY: `enter_with` returns `Ok` only when the entry returned 0,
        // after which the results were written.
        Ok(results.assume_init())
    }
}

/// The body of [`enter_wasm`] and [`enter_wasm_regs`]: the stack limit,
/// the activation, and `enter`, which runs `arch::enter` or
/// `arch::enter_regs` with the activation's jump buffer and returns what
/// it returned.
///
/// # Safety
///
/// As for [`enter_wasm`]; `enter` does nothing but call one of the two
/// arch entries, with the jump buffer it is given and arguments meeting
/// that entry's contract, and read or write the store's context.
#[inline(always)]
unsafe fn enter_with(
    store: *mut dyn VMStore,
    store_ctx: *mut VMStoreContext,
    max_wasm_stack: usize,
    enter: impl FnOnce(*mut JmpBuf) -> u32,
) -> Result<(), Box<TrapRecord>> {
    // SAFETY: the caller lends the live store for the call; its context is
    // a separate (boxed) allocation that nothing else uses meanwhile.
    let ctx = unsafe { &mut *store_ctx };
    if ctx.stack_limit == usize::MAX {
        // The outermost entry into this store's wasm: no wasm of the store
        // is on any stack, so the frame records (`last_wasm_*`) hold
        // nothing anyone reads (they are read only beneath an activation
        // of the store, after this call's entry and builtin stubs have
        // written them); only the stack limit needs putting back.
        let mut low = THREAD.with(|t| t.stack_low.get());
        if low == 0 {
            low = prepare_thread();
        }
        let by_config = arch::stack_pointer().saturating_sub(max_wasm_stack);
        ctx.stack_limit = by_config.max(low.saturating_add(HOST_STACK_RESERVE));
        // SAFETY: the function's contract.
        let r = unsafe { run(store, store_ctx, enter) };
        // SAFETY: the store's live context; the wasm this call ran has
        // returned or been unwound, so nothing else uses it.
        unsafe { (*store_ctx).stack_limit = usize::MAX };
        r
    } else {
        // Nested in a host function called by this store's wasm: that
        // wasm's frame records and limit are restored for it afterwards.
        let saved = [ctx.last_wasm_entry_fp, ctx.last_wasm_exit_fp, ctx.last_wasm_exit_pc];
        // Kept where a walk over all of the store's wasm frames (GC roots)
        // finds the enclosing wasm's frames (see `VMStoreContext::outer_frames`).
        ctx.outer_frames.push(saved);
        // SAFETY: the function's contract.
        let r = unsafe { run(store, store_ctx, enter) };
        // SAFETY: as above.
        let ctx = unsafe { &mut *store_ctx };
        ctx.outer_frames.pop();
        [ctx.last_wasm_entry_fp, ctx.last_wasm_exit_fp, ctx.last_wasm_exit_pc] = saved;
        r
    }
}

/// Publishes the running thread (epoch signals), pushes the activation
/// and enters wasm through `enter`; the stack limit is already set.
///
/// # Safety
///
/// As for [`enter_with`].
#[inline(always)]
unsafe fn run(
    store: *mut dyn VMStore,
    store_ctx: *mut VMStoreContext,
    enter: impl FnOnce(*mut JmpBuf) -> u32,
) -> Result<(), Box<TrapRecord>> {
    let act = Activation {
        jmp: UnsafeCell::new(MaybeUninit::uninit()),
        trap: UnsafeCell::new(MaybeUninit::uninit()),
        prev: THREAD.with(|t| t.current.get()),
        store_ctx,
        store,
    };
    THREAD.with(|t| t.current.set(&act));
    // SAFETY: the store's live context (the caller's contract); no
    // reference to it is held across the entry, which writes it.
    let saved_tid = if unsafe { (*store_ctx).epoch_signals } {
        // SAFETY: as above.
        let ctx = unsafe { &*store_ctx };
        // Published with the activation already pushed: a signal from here
        // on finds it (and retries until the thread is in wasm), and one
        // sent before was sent because the flag was raised, which the poll
        // below sees. The epoch raises a store's flag once per deadline.
        let prev = publish_running_thread(ctx);
        // A deadline reached before the call interrupts it at its start,
        // as the first check of polled code would.
        // SAFETY: the store is live and lent to this call (the
        // function's contract), and no wasm of it runs yet, so its hooks
        // may run (nothing raises through this activation: hooks return
        // their errors).
        if let Err(e) = unsafe { poll_epoch_signal(store) } {
            ctx.running_tid.store(prev, Ordering::SeqCst);
            THREAD.with(|t| t.current.set(act.prev));
            return Err(Box::new(TrapRecord { reason: e.into(), pcs: vec![] }));
        }
        Some(prev)
    } else {
        None
    };
    // `enter` writes the jump buffer before anything can jump back with
    // it, and restores what the Rust code here relies on on both of its
    // return paths (the caller's contract).
    let r = enter(act.jmp.get().cast());
    THREAD.with(|t| t.current.set(act.prev));
    if let Some(tid) = saved_tid {
        // SAFETY: as above; the entry has returned.
        unsafe { (*store_ctx).running_tid.store(tid, Ordering::SeqCst) };
    }
    if r == 0 { Ok(()) } else { Err(take_trap(&act)) }
}

#[cold]
fn take_trap(act: &Activation) -> Box<TrapRecord> {
    // SAFETY: `raise` or the signal handler stored the trap before jumping
    // back (the only ways back with a non-zero result); it is read once.
    Box::new(unsafe { (*act.trap.get()).assume_init_read() })
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
        (*act.trap.get()).write(TrapRecord { reason, pcs });
        arch::kiln_unwind(act.jmp.get().cast())
    }
}

/// Ends the innermost activation `act` with `record` from a signal
/// handler: stores the record and makes the thread resume, when the
/// handler returns, in `kiln_unwind` with `act`'s jump buffer.
///
/// # Safety
///
/// `ctx` is the kernel-provided context of the signal being handled, which
/// stopped this thread in wasm code running beneath `act`, this thread's
/// innermost live activation.
pub unsafe fn unwind_from_signal(act: *const Activation, ctx: *mut libc::c_void, record: TrapRecord) {
    // SAFETY: per the contract, `act` is live and nothing else on this
    // thread uses it while wasm beneath it is stopped; `kiln_unwind` with
    // its jump buffer is the way back to `enter_wasm`.
    unsafe {
        let act = &*act;
        (*act.trap.get()).write(record);
        arch::redirect(ctx, arch::kiln_unwind as *const () as usize, act.jmp.get() as usize);
    }
}
