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
//! compiler is concerned, so nothing else needs saving. A new fiber's stack
//! is laid out as if it had switched away from `arch::fiber_start`, which
//! calls [`fiber_main`].
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

/// The state a fiber and whoever resumes it share (boxed: both sides hold
/// its address).
struct Shared {
    /// The fiber's stack pointer while it is not running.
    fiber_sp: usize,
    /// The resumer's stack pointer while the fiber runs.
    parent_sp: usize,
    /// The fiber's body has returned.
    finished: bool,
    /// The fiber's body panicked with this payload (passed on by `resume`).
    panic: Option<Box<dyn Any + Send>>,
    /// While the fiber runs: the thread's own wasm state, put back when it
    /// suspends. While it is suspended: the fiber's.
    thread_state: ThreadWasmState,
}

/// The body of a fiber.
type Body<'a> = Box<dyn FnOnce(&Suspend) + 'a>;

/// A fiber running `Body` on a [`FiberStack`].
pub struct Fiber<'a> {
    /// The state shared with the fiber (from `Box::into_raw`, freed on
    /// drop; only ever accessed through this pointer).
    shared: *mut Shared,
    stack: Option<FiberStack>,
    /// The body, boxed twice so it travels as one thin pointer, until the
    /// first resume hands it to the fiber.
    body: Option<Box<Body<'a>>>,
    started: bool,
}

/// The handle a fiber's body suspends itself with.
pub struct Suspend {
    shared: *mut Shared,
}

impl Suspend {
    /// Stops the fiber: the `resume` that ran it returns `false`. Returns
    /// when the fiber is resumed.
    ///
    /// Call it only on the fiber this handle belongs to, while it runs
    /// (the async layer keeps it that way: `async_call.rs`).
    pub fn suspend(&self) {
        // SAFETY: `shared` is the fiber's shared state, alive as long as
        // the fiber; the fiber is the one running (see above), so
        // `parent_sp` is the resumer's saved stack pointer, blocked in
        // `fiber_switch` until this switch.
        unsafe {
            let shared = self.shared;
            super::arch::fiber_switch(&raw mut (*shared).fiber_sp, (*shared).parent_sp);
        }
    }
}

impl<'a> Fiber<'a> {
    /// A fiber that will run `body` on `stack` when first resumed.
    pub fn new(stack: FiberStack, body: impl FnOnce(&Suspend) + 'a) -> Fiber<'a> {
        let thread_state = ThreadWasmState::for_stack(stack.low());
        let shared = Box::new(Shared { fiber_sp: 0, parent_sp: 0, finished: false, panic: None, thread_state });
        Fiber {
            shared: Box::into_raw(shared),
            stack: Some(stack),
            body: Some(Box::new(Box::new(body))),
            started: false,
        }
    }

    /// The handle that suspends this fiber, for code running on it that
    /// cannot receive the one its body gets.
    pub fn suspend_handle(&self) -> Suspend {
        Suspend { shared: self.shared }
    }

    /// The usable range of the fiber's stack, `(low, top)`.
    pub fn stack_range(&self) -> (usize, usize) {
        self.stack.as_ref().map_or((0, 0), |s| (s.low(), s.top()))
    }

    /// Whether the body has returned.
    pub fn finished(&self) -> bool {
        // SAFETY: `shared` is alive until drop; the fiber is not running
        // (this runs on the resumer's side).
        unsafe { (*self.shared).finished }
    }

    /// Whether the fiber has been resumed at least once.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Runs the fiber until its body suspends (`false`) or returns
    /// (`true`). A panic in the body is resumed here.
    ///
    /// # Panics
    ///
    /// Panics if the body has already returned, or passes on the body's
    /// panic.
    pub fn resume(&mut self) -> bool {
        assert!(!self.finished(), "resumed a finished fiber");
        let shared = self.shared;
        if !self.started {
            self.started = true;
            let stack = self.stack.as_ref().expect("a fiber keeps its stack until it is dropped");
            let body = Box::into_raw(self.body.take().expect("the body is taken only here"));
            // SAFETY: the stack is this fiber's own, unused, and at least a
            // page; the frame is read by the first switch to it. `shared`
            // is alive and the fiber not running.
            unsafe { (*shared).fiber_sp = super::arch::fiber_init(stack.top(), shared.cast(), body.cast()) };
        }
        // SAFETY: `shared` is alive; the fiber is not running, so nothing
        // else accesses it until the switch. `fiber_sp` is the fiber's
        // saved stack pointer: the frame `fiber_init` made, or the one its
        // last `suspend` left; its stack outlives the switch (owned by
        // `self`).
        unsafe {
            (*shared).thread_state.swap_with_thread();
            super::arch::fiber_switch(&raw mut (*shared).parent_sp, (*shared).fiber_sp);
            (*shared).thread_state.swap_with_thread();
            if let Some(p) = (*shared).panic.take() {
                resume_unwind(p);
            }
            (*shared).finished
        }
    }

    /// Takes the stack back from a fiber whose body has returned (or never
    /// started), for reuse.
    pub fn into_stack(mut self) -> Option<FiberStack> {
        if self.finished() || !self.started { self.stack.take() } else { None }
    }
}

impl Drop for Fiber<'_> {
    fn drop(&mut self) {
        if self.started && !self.finished() {
            // Frames of the body are still on the stack, and their values
            // were never dropped: freeing the stack would free memory they
            // may own or point into. The async layer always runs a body to
            // its end (cancelling it) before dropping the fiber; if that
            // ever failed, leaking the stack (and the shared state its
            // frames point to) is the safe outcome.
            debug_assert!(false, "a suspended fiber was dropped");
            std::mem::forget(self.stack.take());
            return;
        }
        // SAFETY: from `Box::into_raw` in `new`, freed once, here; the
        // fiber is not running and will not run again.
        drop(unsafe { Box::from_raw(self.shared) });
    }
}

/// Where a new fiber starts (called by `arch::fiber_start` on the fiber's
/// stack): runs the body, records a panic, marks the fiber finished and
/// switches back for the last time.
///
/// # Safety
///
/// Called once per fiber, on its stack, with its shared state and the body
/// that `Fiber::resume` put in its initial frame.
pub unsafe extern "C" fn fiber_main(shared: *mut u8, body: *mut u8) -> ! {
    let shared = shared.cast::<Shared>();
    {
        // SAFETY: `body` is the `Box<Body>` leaked by `resume` for this
        // fiber, taken back exactly once, here.
        let body = unsafe { Box::from_raw(body.cast::<Body<'static>>()) };
        let suspend = Suspend { shared };
        let r = catch_unwind(AssertUnwindSafe(move || body(&suspend)));
        // SAFETY: the fiber's shared state outlives it (owned by `Fiber`).
        unsafe {
            if let Err(p) = r {
                (*shared).panic = Some(p);
            }
            (*shared).finished = true;
        }
    }
    // SAFETY: as in `Suspend::suspend`; nothing on this stack needs
    // dropping any more, and a finished fiber is never switched to again.
    unsafe {
        super::arch::fiber_switch(&raw mut (*shared).fiber_sp, (*shared).parent_sp);
    }
    // Not reachable: a finished fiber is never resumed (`resume` asserts).
    std::process::abort()
}
