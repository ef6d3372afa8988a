//! Epoch deadlines, pushed to the stores instead of polled by them.
//!
//! Polled mode: compiled code checks for an epoch interruption at every
//! loop header, so the check must be as cheap as possible: one load from
//! the pinned store context and a branch on it being non-zero
//! (`epoch_interrupt`). Nothing in
//! that check compares epochs. Instead the thread that advances an engine's
//! epoch (`Engine::increment_epoch`) takes the stores whose deadlines the
//! new epoch reached off a queue ordered by deadline (`Deadlines`), and
//! raises `epoch_interrupt` in each, once per deadline; a store that sets
//! a deadline already reached raises its own. A tick touches only the
//! stores it reaches, however many are registered.
//! The builtin behind the check (`new_epoch`) rechecks the real condition,
//! so a raised flag that has become stale (the deadline moved) is cleared
//! and execution continues.
//!
//! With `Tunables::epoch_signals` compiled code has no checks: raising a
//! flag also signals the thread running that store's wasm (its kernel id
//! is in `running_tid`), and the signal handler makes the wasm call the
//! same deadline logic where it was stopped (`signal.rs`).
//!
//! Ordering, so that no reached deadline goes unnoticed: a store writes its
//! deadline, clears the flag, then reads the epoch and raises the flag if
//! the deadline is reached; the advancing thread increments the epoch, then
//! reads each deadline. Whichever runs second sees the other's write.

pub mod signal;

use super::vmcontext::VMStoreContext;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, TryLockError};

/// An engine's epoch: the counter, and the deadlines of the stores that
/// use epoch interruption, to raise their flags when it advances.
#[derive(Default)]
pub struct Epoch {
    counter: AtomicU64,
    deadlines: Mutex<Deadlines>,
    /// An advance found `deadlines` locked: whoever holds the lock
    /// notifies for it after releasing (see `notify`).
    pending: AtomicBool,
}

/// The registered stores' deadlines, earliest first, so an advance looks
/// only at the stores it reaches (thousands of stores waiting in async
/// calls cost a tick nothing).
///
/// Each store has at most one live entry: `scheduled` holds its deadline.
/// A store that moves its deadline later keeps its entry; when that entry
/// comes due, the store's real deadline is read and the store queued
/// again if it is not reached yet. One that moves it earlier gets a new
/// entry; the old one is dropped when it comes up (it no longer matches
/// `scheduled`).
#[derive(Default)]
struct Deadlines {
    queue: BinaryHeap<Reverse<(u64, StoreCtxPtr)>>,
    scheduled: HashMap<StoreCtxPtr, u64>,
}

impl Deadlines {
    /// Makes sure `ctx` is looked at once the epoch reaches `deadline`.
    fn schedule(&mut self, ctx: StoreCtxPtr, deadline: u64) {
        match self.scheduled.get(&ctx) {
            Some(&at) if at <= deadline => {}
            _ => {
                self.scheduled.insert(ctx, deadline);
                self.queue.push(Reverse((deadline, ctx)));
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct StoreCtxPtr(NonNull<VMStoreContext>);

// SAFETY: only the context's atomic fields (`epoch_deadline`,
// `epoch_interrupt`, `running_tid`) are touched through this pointer, from
// any thread, and the pointer is removed from the queue before the context
// is freed (see `register`).
unsafe impl Send for StoreCtxPtr {}

impl Epoch {
    /// The counter, for store contexts and VMContexts to point at.
    pub fn counter(&self) -> &AtomicU64 {
        &self.counter
    }

    /// The current epoch.
    pub fn current(&self) -> u64 {
        self.counter.load(Ordering::SeqCst)
    }

    /// Advances the epoch by one and raises the interrupt flag of every
    /// registered store whose deadline it reached. Never blocks: when the
    /// deadline queue is locked, its holder does the notifying.
    pub fn increment(&self) {
        self.counter.fetch_add(1, Ordering::SeqCst);
        self.notify();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Deadlines> {
        self.deadlines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a store context to be notified when the epoch reaches its
    /// deadline.
    ///
    /// # Safety
    ///
    /// `ctx` stays at this address, alive, until it is passed to
    /// [`Epoch::unregister`], which must happen before it is freed.
    pub unsafe fn register(&self, ctx: &VMStoreContext) {
        let deadline = ctx.epoch_deadline.load(Ordering::SeqCst);
        self.lock().schedule(StoreCtxPtr(NonNull::from(ctx)), deadline);
        self.notify_if_pending();
    }

    /// Sets a registered store's deadline to the absolute epoch
    /// `deadline`, raising its interrupt flag if it is already reached and
    /// clearing it otherwise (see [`set_deadline`]), and queues the store
    /// to be looked at when the epoch gets there.
    pub fn set_deadline(&self, ctx: &VMStoreContext, deadline: u64) {
        ctx.epoch_deadline.store(deadline, Ordering::SeqCst);
        // Queued after the deadline is written: an advance that pops the
        // entry reads the new deadline; one that ran before it is caught
        // by the check in `set_deadline` below, which reads the epoch last.
        self.lock().schedule(StoreCtxPtr(NonNull::from(ctx)), deadline);
        self.notify_if_pending();
        set_deadline(ctx, &self.counter, deadline);
    }

    /// Removes a store context added by `register`.
    ///
    /// # Safety
    ///
    /// None beyond `register`'s; the function is `unsafe` to keep the pair
    /// together (after this, `ctx` may be freed).
    pub unsafe fn unregister(&self, ctx: &VMStoreContext) {
        let ctx = StoreCtxPtr(NonNull::from(ctx));
        {
            let mut d = self.lock();
            if d.scheduled.remove(&ctx).is_some() {
                d.queue.retain(|Reverse((_, c))| *c != ctx);
            }
        }
        self.notify_if_pending();
    }

    fn notify_if_pending(&self) {
        if self.pending.load(Ordering::SeqCst) {
            self.notify();
        }
    }

    /// Raises the flag of every registered store whose deadline the current
    /// epoch reached. If the queue is locked, leaves `pending` set and tries
    /// once more: either that succeeds, or the holder, which checks
    /// `pending` after it releases the lock, sees the flag and notifies.
    fn notify(&self) {
        loop {
            let mut d = match self.deadlines.try_lock() {
                Ok(g) => g,
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    self.pending.store(true, Ordering::SeqCst);
                    match self.deadlines.try_lock() {
                        Err(TryLockError::WouldBlock) => return,
                        _ => continue,
                    }
                }
            };
            self.pending.store(false, Ordering::SeqCst);
            let now = self.counter.load(Ordering::SeqCst);
            while let Some(&Reverse((at, p))) = d.queue.peek() {
                if at > now {
                    break;
                }
                d.queue.pop();
                if d.scheduled.get(&p) != Some(&at) {
                    // Superseded by an earlier entry of the same store.
                    continue;
                }
                d.scheduled.remove(&p);
                // SAFETY: `p` is scheduled, so registered, so its context
                // is alive (it is unregistered before it is freed, and we
                // hold the queue's lock); only the atomic fields are read.
                let (deadline, interrupt) = unsafe { atomics(p.0) };
                let deadline = deadline.load(Ordering::SeqCst);
                if deadline > now {
                    // Moved later since: look again then.
                    d.schedule(p, deadline);
                    continue;
                }
                interrupt.store(1, Ordering::SeqCst);
                // SAFETY: as above.
                unsafe { signal_running_thread(p.0) };
            }
            drop(d);
            if !self.pending.load(Ordering::SeqCst) {
                return;
            }
        }
    }
}

/// With epoch signals, sends the epoch signal to the thread running the
/// store's wasm, if one is (see `signal.rs`), when the deadline is reached.
/// Once is enough: a signal that arrives while the thread is outside wasm
/// code is retried by the thread itself, and a thread that starts running
/// the store's wasm later publishes itself before it polls the flag
/// (`traphandlers::run`).
///
/// # Safety
///
/// `ctx` must point to a live `VMStoreContext`.
unsafe fn signal_running_thread(ctx: NonNull<VMStoreContext>) {
    // SAFETY: per the contract; `epoch_signals` is written before the
    // context is registered (the list's lock orders it) and never after,
    // `running_tid` is atomic.
    unsafe {
        let p = ctx.as_ptr();
        signal_if_running(std::ptr::addr_of!((*p).epoch_signals).read(), &*std::ptr::addr_of!((*p).running_tid));
    }
}

/// Sends the epoch signal to the thread whose id is in `running_tid`, if
/// the store uses epoch signals and wasm of it is running.
fn signal_if_running(signals: bool, running_tid: &AtomicI32) {
    let tid = running_tid.load(Ordering::SeqCst);
    if signals && tid != 0 {
        signal::send_epoch_signal(tid);
    }
}

/// The deadline and interrupt flag of a store context, as atomics.
///
/// # Safety
///
/// `ctx` must point to a live `VMStoreContext`.
unsafe fn atomics<'a>(ctx: NonNull<VMStoreContext>) -> (&'a AtomicU64, &'a AtomicU64) {
    // SAFETY: per the contract; references to the two atomic fields only,
    // never to the whole context, which its store mutates meanwhile.
    unsafe {
        let p = ctx.as_ptr();
        (&*std::ptr::addr_of!((*p).epoch_deadline), &*std::ptr::addr_of!((*p).epoch_interrupt))
    }
}

/// Sets a store's deadline to the absolute epoch `deadline` of an engine
/// whose counter is `epoch`, raising the interrupt flag if it is already
/// reached and clearing it otherwise.
pub fn set_deadline(ctx: &VMStoreContext, epoch: &AtomicU64, deadline: u64) {
    ctx.epoch_deadline.store(deadline, Ordering::SeqCst);
    ctx.epoch_interrupt.store(0, Ordering::SeqCst);
    if epoch.load(Ordering::SeqCst) >= deadline {
        ctx.epoch_interrupt.store(1, Ordering::SeqCst);
        // Wasm of this store may be running (a host function or the
        // deadline callback set the deadline): with signals, nothing polls
        // the flag, so it is told.
        signal_if_running(ctx.epoch_signals, &ctx.running_tid);
    }
}

/// Whether the engine's epoch `epoch` has reached the store's deadline.
pub fn deadline_reached(ctx: &VMStoreContext, epoch: &AtomicU64) -> bool {
    epoch.load(Ordering::SeqCst) >= ctx.epoch_deadline.load(Ordering::SeqCst)
}
