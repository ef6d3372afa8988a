//! Fibers: running code on a stack of its own, which can stop part-way
//! (suspend) and continue later (resume), possibly on another thread.
//! Async calls into wasm run on fibers (`async_call.rs`), so that a host
//! function awaiting a future, or an epoch or fuel yield, can hand the
//! thread back to the executor with wasm frames still live.
//!
//! The switch is a few instructions of assembly (`arch::fiber_switch`):
//! push the callee-saved registers, store the stack pointer, load the other
//! stack's, pop its callee-saved registers, return on it. Everything a
//! caller may clobber is clobbered by the call to the switch as far as the
//! compiler is concerned, so nothing else needs saving. A fiber starts
//! with `arch::fiber_enter`, which saves the same frame, moves to the new
//! stack and *calls* [`fiber_main`] there, returning through the saved
//! frame when it returns: a body that never suspends is an ordinary call
//! and return, which the processor predicts (switches into and out of the
//! middle of a stack are returns it cannot predict).
//!
//! Thread-local state that describes "the wasm running on this thread" (the
//! activation chain, the stack's low end, the deadline hook in progress)
//! belongs to the fiber while it runs: [`Fiber::resume`] swaps it in and
//! out around the switch (`traphandlers::ThreadWasmState`), so a fiber
//! that suspended on one thread continues correctly on another, and the
//! thread's own state is untouched by it.
//!
//! Each stack has an inaccessible guard region below it: wasm never gets
//! there (its stack limit leaves `HOST_STACK_RESERVE` above the stack's
//! low end for host code), and host code that overflows faults instead of
//! writing over other memory.

use super::idle_list::IdleList;
use super::mmap::Mmap;
use super::traphandlers::ThreadWasmState;
use std::any::Any;
use std::io;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of inaccessible memory below every fiber stack.
pub const GUARD_SIZE: usize = 64 * 1024;

/// A fiber stack: a mapping whose lowest [`GUARD_SIZE`] bytes are
/// inaccessible and the rest read-write.
pub struct FiberStack {
    map: Mmap,
}

impl FiberStack {
    /// Maps a stack with `size` usable bytes (rounded up to whole pages)
    /// above its guard region.
    ///
    /// # Errors
    ///
    /// The size overflows, or the OS refuses the mapping.
    pub fn new(size: usize) -> io::Result<FiberStack> {
        let size =
            super::mmap::round_up_to_page(size.max(1)).ok_or_else(|| io::Error::other("stack size overflows"))?;
        let total = size.checked_add(GUARD_SIZE).ok_or_else(|| io::Error::other("stack size overflows"))?;
        let map = Mmap::reserve(total)?;
        map.make_accessible(GUARD_SIZE, size)?;
        Ok(FiberStack { map })
    }

    /// The usable bytes.
    pub fn size(&self) -> usize {
        self.map.len() - GUARD_SIZE
    }

    /// The lowest usable address (just above the guard region).
    pub fn low(&self) -> usize {
        self.map.as_ptr() as usize + GUARD_SIZE
    }

    /// One past the highest usable address (16-byte aligned: mappings are
    /// page aligned).
    pub fn top(&self) -> usize {
        self.map.as_ptr() as usize + self.map.len()
    }

    /// Gives the pages of the stack back to the OS (their contents read as
    /// zeros afterwards), keeping the mapping.
    pub fn release_pages(&self) {
        // SAFETY: the range is this stack's own read-write mapping, which
        // no fiber is using (the caller owns the stack, and a fiber borrows
        // it only while it exists); `MADV_DONTNEED` on private anonymous
        // memory only zeroes it.
        unsafe {
            libc::madvise((self.low()) as *mut libc::c_void, self.size(), libc::MADV_DONTNEED);
        }
    }
}

/// Idle stacks of the on-demand allocator kept per thread's shard.
const ON_DEMAND_IDLE_STACKS: usize = 16;

/// An engine's fiber stacks: idle ones kept for reuse (their pages given
/// back to the OS, the mapping kept), so that async calls map no memory
/// in the steady state. A store keeps the stack of its last async call
/// itself and returns it here when it is dropped. Under the pooling
/// allocator at most `limit` stacks exist at once.
pub struct StackPool {
    idle: IdleList<FiberStack>,
    /// Usable bytes of every stack.
    size: usize,
    /// Most stacks that may exist at once (pooling), or none.
    limit: Option<usize>,
    /// Stacks made and not yet freed.
    live: AtomicUsize,
}

impl StackPool {
    /// A pool making stacks of `size` bytes on demand, keeping a few idle.
    pub fn on_demand(size: usize) -> StackPool {
        StackPool { idle: IdleList::new(ON_DEMAND_IDLE_STACKS), size, limit: None, live: AtomicUsize::new(0) }
    }

    /// A pool of at most `total` stacks of `size` bytes.
    pub fn pooling(size: usize, total: usize) -> StackPool {
        StackPool { idle: IdleList::new(total), size, limit: Some(total), live: AtomicUsize::new(0) }
    }

    /// An idle stack, or a new one.
    ///
    /// # Errors
    ///
    /// The pool's limit is reached, or the OS refuses the mapping.
    pub fn take(&self) -> io::Result<FiberStack> {
        if let Some(s) = self.idle.pop() {
            return Ok(s);
        }
        let live = self.live.fetch_add(1, Ordering::SeqCst);
        if let Some(limit) = self.limit
            && live >= limit
        {
            self.live.fetch_sub(1, Ordering::SeqCst);
            return Err(io::Error::other(format!(
                "all {limit} async stacks of the pooling allocator are in use (PoolingAllocationConfig::total_stacks)"
            )));
        }
        FiberStack::new(self.size).inspect_err(|_| {
            self.live.fetch_sub(1, Ordering::SeqCst);
        })
    }

    /// Takes back a stack no fiber uses any more: its pages go back to the
    /// OS, the mapping is kept for reuse (or unmapped when enough are idle).
    pub fn give_back(&self, stack: FiberStack) {
        if stack.size() != self.size {
            return;
        }
        stack.release_pages();
        if let Some(extra) = self.idle.push(stack, self.limit.is_some()) {
            drop(extra);
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The state a fiber and whoever resumes it share. It lives at the top of
/// the fiber's stack (above the body's frames and the result slot), where
/// both sides find it and it never moves, so a [`Fiber`] is a plain value
/// that allocates nothing and may move between resumes.
struct Shared {
    /// The fiber's stack pointer while it is not running.
    fiber_sp: usize,
    /// The resumer's stack pointer while the fiber runs.
    parent_sp: usize,
    /// The fiber's body has returned (its result is in the slot).
    finished: bool,
    /// The fiber's body panicked with this payload (passed on by `resume`).
    panic: Option<Box<dyn Any + Send>>,
    /// While the fiber runs: the thread's own wasm state, put back when it
    /// suspends. While it is suspended: the fiber's.
    thread_state: ThreadWasmState,
    /// The handle the body suspends with (its address is handed out).
    suspend: Suspend,
}

/// Bytes at the top of a fiber's stack kept for its [`Shared`] state.
const SHARED_BYTES: usize = std::mem::size_of::<Shared>().next_multiple_of(64);

/// Bytes below [`SHARED_BYTES`] kept for the result slot, an `Option<R>`.
const fn slot_bytes<R>() -> usize {
    std::mem::size_of::<Option<R>>().next_multiple_of(64)
}

/// A fiber on a [`FiberStack`], running a body that returns `R`.
pub struct Fiber<R> {
    stack: Option<FiberStack>,
    started: bool,
    _result: PhantomData<R>,
}

/// The handle a fiber's body suspends itself with.
pub struct Suspend {
    shared: *mut Shared,
}

impl Suspend {
    /// Stops the fiber: the `resume` that ran it returns `None`. Returns
    /// when the fiber is resumed.
    ///
    /// Call it only on the fiber this handle belongs to, while it runs
    /// (the async layer keeps it that way: `async_call.rs`).
    #[inline(always)]
    pub fn suspend(&self) {
        // SAFETY: `shared` is the fiber's shared state, at the top of its
        // stack, alive as long as the fiber; the fiber is the one running
        // (see above), so `parent_sp` is the resumer's saved stack
        // pointer, blocked in `fiber_switch` until this switch.
        unsafe {
            let shared = self.shared;
            super::arch::fiber_switch(&raw mut (*shared).fiber_sp, (*shared).parent_sp);
        }
    }
}

impl<R> Fiber<R> {
    /// A fiber that will run on `stack`, started by its first resume.
    ///
    /// # Panics
    ///
    /// The stack is too small to hold the shared state and the result
    /// (it is pages, so only for results of many kilobytes).
    pub fn new(stack: FiberStack) -> Fiber<R> {
        assert!(stack.size() > 2 * (SHARED_BYTES + slot_bytes::<R>()), "fiber stack too small for its result");
        let shared = (stack.top() - SHARED_BYTES) as *mut Shared;
        let state = Shared {
            fiber_sp: 0,
            parent_sp: 0,
            finished: false,
            panic: None,
            thread_state: ThreadWasmState::for_stack(stack.low()),
            suspend: Suspend { shared },
        };
        // SAFETY: the top of the stack is this fiber's own writable memory,
        // aligned (the stack top is page aligned), not used by any frame
        // (frames start below the slot).
        unsafe {
            shared.write(state);
            slot::<R>(&stack).write(None);
        }
        Fiber { stack: Some(stack), started: false, _result: PhantomData }
    }

    fn shared(&self) -> *mut Shared {
        self.stack.as_ref().map_or(std::ptr::null_mut(), |s| (s.top() - SHARED_BYTES) as *mut Shared)
    }

    /// The handle that suspends this fiber (at a fixed address while the
    /// fiber exists).
    pub fn suspend_handle(&self) -> *const Suspend {
        // SAFETY: the shared state is alive while the fiber has its stack.
        unsafe { &raw const (*self.shared()).suspend }
    }

    /// The usable range of the fiber's stack, `(low, top)`.
    pub fn stack_range(&self) -> (usize, usize) {
        self.stack.as_ref().map_or((0, 0), |s| (s.low(), s.top()))
    }

    /// Whether the body has returned.
    pub fn finished(&self) -> bool {
        // SAFETY: the fiber is not running (this runs on the resumer's
        // side), so nothing writes the state meanwhile.
        self.stack.is_some() && unsafe { (*self.shared()).finished }
    }

    /// Whether the fiber has been resumed at least once.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Runs the fiber until its body suspends (`None`) or returns
    /// (`Some` of its result). The first resume starts the body taken out
    /// of `*body` (later ones ignore `body`). A panic in the body is
    /// resumed here.
    ///
    /// # Panics
    ///
    /// Panics if the body has already returned, or passes on the body's
    /// panic.
    #[inline(always)]
    pub fn resume<F: FnOnce(&Suspend) -> R>(&mut self, body: &mut Option<F>) -> Option<R> {
        assert!(self.stack.is_some() && !self.finished(), "resumed a finished fiber");
        let shared = self.shared();
        let stack = self.stack.as_ref().expect("checked above");
        // SAFETY: `shared` is alive (at the top of the stack `self` owns);
        // the fiber is not running, so nothing else accesses it until the
        // switch. On the first resume the body starts on the stack below
        // the result slot (this fiber's own, unused, large enough: checked
        // in `new`), with `fiber_main` taking it out of `*body`, which
        // outlives this call; later ones switch to `fiber_sp`, where the
        // fiber's last `suspend` left it.
        unsafe {
            (*shared).thread_state.swap_with_thread();
            if self.started {
                super::arch::fiber_switch(&raw mut (*shared).parent_sp, (*shared).fiber_sp);
            } else {
                self.started = true;
                let top = stack.top() - SHARED_BYTES - slot_bytes::<R>();
                super::arch::fiber_enter(
                    &raw mut (*shared).parent_sp,
                    top,
                    fiber_main::<F, R> as *const () as usize,
                    shared.cast(),
                    std::ptr::from_mut(body).cast(),
                );
            }
            (*shared).thread_state.swap_with_thread();
            if let Some(p) = (*shared).panic.take() {
                resume_unwind(p);
            }
            if (*shared).finished { (*slot::<R>(stack)).take() } else { None }
        }
    }

    /// Takes the stack back from a fiber whose body has returned (or never
    /// started), for reuse.
    pub fn take_stack(&mut self) -> Option<FiberStack> {
        if !self.finished() && self.started {
            return None;
        }
        let stack = self.stack.take()?;
        // SAFETY: the state and slot were written by `new` and nothing runs
        // on the stack any more.
        unsafe {
            ((stack.top() - SHARED_BYTES) as *mut Shared).drop_in_place();
            slot::<R>(&stack).drop_in_place();
        }
        Some(stack)
    }
}

impl<R> Drop for Fiber<R> {
    fn drop(&mut self) {
        if self.stack.is_some() && self.started && !self.finished() {
            // Frames of the body are still on the stack, and their values
            // were never dropped: freeing the stack would free memory they
            // may own or point into. The async layer always runs a body to
            // its end (cancelling it) before dropping the fiber; if that
            // ever failed, leaking the stack is the safe outcome.
            debug_assert!(false, "a suspended fiber was dropped");
            std::mem::forget(self.stack.take());
            return;
        }
        drop(self.take_stack());
    }
}

/// The result slot of a fiber returning `R` on `stack`.
fn slot<R>(stack: &FiberStack) -> *mut Option<R> {
    (stack.top() - SHARED_BYTES - slot_bytes::<R>()) as *mut Option<R>
}

/// The first frame of a fiber (called by `arch::fiber_enter` on the
/// fiber's stack): takes the body, runs it, stores its result or panic and
/// marks the fiber finished; `fiber_enter` then returns to whoever resumed
/// the fiber last.
///
/// # Safety
///
/// Called once per fiber, on its stack, with its shared state and the
/// `*mut Option<F>` holding the body that `Fiber::resume` passed (valid
/// until the first switch back).
unsafe extern "C" fn fiber_main<F: FnOnce(&Suspend) -> R, R>(shared: *mut u8, body: *mut u8) {
    let shared = shared.cast::<Shared>();
    // SAFETY: per the contract; the body moves onto this stack here.
    let body = unsafe { (*body.cast::<Option<F>>()).take() };
    // SAFETY: the shared state outlives the fiber's frames.
    let suspend = unsafe { &(*shared).suspend };
    let r = catch_unwind(AssertUnwindSafe(move || body.map(|f| f(suspend))));
    // SAFETY: the shared state and the result slot (just below it) outlive
    // the fiber's frames; the resumer reads them only after `finished` is
    // set and the fiber returned.
    unsafe {
        match r {
            Ok(v) => *(shared.cast::<u8>().sub(slot_bytes::<R>()).cast::<Option<R>>()) = v,
            Err(p) => (*shared).panic = Some(p),
        }
        (*shared).finished = true;
    }
}
