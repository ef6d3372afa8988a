//! Async calls into wasm: the call runs on a fiber (`fiber.rs`), and a
//! future drives the fiber. Each `poll` resumes the fiber with the poll's
//! task context; where the call must wait (an async host function's
//! future is pending, an epoch or fuel yield), [`block_on`] polls what it
//! waits for with that context and, if it is pending, suspends the fiber,
//! so the `poll` returns `Pending` with wasm frames still on the fiber's
//! stack. The next `poll`, on whatever thread, continues from there.
//!
//! The store reaches the running fiber through its [`AsyncCx`], shared by
//! the store and the futures of its async calls: the current poll's task
//! context and the fiber's suspend handle while a fiber of the store runs,
//! a cancellation flag, and the stack the store keeps for its next call.
//! Nested async calls (an async host function that itself calls wasm with
//! `call_async`) stack: each `poll` saves and restores the two pointers.
//!
//! Dropping a future whose fiber is suspended cancels the call: the fiber
//! is resumed with the cancellation flag raised, the suspension point
//! returns [`AsyncError::Cancelled`], which the host function or hook
//! there turns into a trap, and the trap unwinds the wasm frames as usual
//! until the fiber's body returns. Nothing on its stack is leaked or
//! freed while in use.

use super::fiber::{Fiber, FiberStack, StackPool, Suspend};
use super::store_hooks::VMStore;
use super::vmcontext::VMStoreContext;
use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::Ordering::{self, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize};
use std::task::{Context, Poll};

/// Why a suspension point could not wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncError {
    /// No async call of the store is running: the wait was reached from a
    /// synchronous call (`Func::call` rather than `call_async`).
    NotAsync,
    /// The future of the async call was dropped while it waited.
    Cancelled,
}

impl std::fmt::Display for AsyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AsyncError::NotAsync => f.write_str(
                "an async host function, async resource limiter or async yield was reached from a synchronous call: \
                 use the `_async` entry points (`call_async`, `instantiate_async`) for this store",
            ),
            AsyncError::Cancelled => f.write_str("the async call was cancelled (its future was dropped)"),
        }
    }
}

impl std::error::Error for AsyncError {}

/// A store's async state (see the module docs).
pub struct AsyncCx {
    /// The task context of the `poll` running a fiber of the store (null
    /// when none runs).
    poll_cx: AtomicPtr<Context<'static>>,
    /// The suspend handle of that fiber (null when none runs).
    suspend: AtomicPtr<Suspend>,
    /// Set while a dropped future's fiber is being run to its end.
    cancelled: AtomicBool,
    /// A stack kept for the store's next async call.
    spare_stack: Cell<Option<FiberStack>>,
    /// Where stacks come from, and where the spare one goes when the store
    /// is dropped.
    stacks: Arc<StackPool>,
    /// The usable range of the running fiber's stack (with `suspend`).
    fiber_low: AtomicUsize,
    /// (With `fiber_low`.)
    fiber_top: AtomicUsize,
}

impl Drop for AsyncCx {
    fn drop(&mut self) {
        if let Some(stack) = self.spare_stack.take() {
            self.stacks.give_back(stack);
        }
    }
}

// SAFETY: the fields a waiter on any thread may read are atomics; they are
// written only by whoever holds the store's exclusive borrow (the store's
// own calls, or the future of its async call), and the raw pointers in
// them are dereferenced only on the stack of the fiber they describe
// (`on_fiber`), while the `poll` that set them runs. `spare_stack` is
// touched only by the holder of the store's exclusive borrow (or by the
// last owner, when the state is dropped).
unsafe impl Send for AsyncCx {}
// SAFETY: as for `Send`.
unsafe impl Sync for AsyncCx {}

impl AsyncCx {
    /// A store's state before any async call; its stacks come from
    /// `stacks`.
    pub fn new(stacks: Arc<StackPool>) -> Arc<AsyncCx> {
        Arc::new(AsyncCx {
            poll_cx: AtomicPtr::new(ptr::null_mut()),
            suspend: AtomicPtr::new(ptr::null_mut()),
            cancelled: AtomicBool::new(false),
            spare_stack: Cell::new(None),
            stacks,
            fiber_low: AtomicUsize::new(0),
            fiber_top: AtomicUsize::new(0),
        })
    }

    /// Whether the code asking runs on the stack of the store's running
    /// async call (so [`block_on`] can wait): a fiber of the store is
    /// running, and the stack pointer is within that fiber's stack.
    pub fn on_fiber(&self) -> bool {
        if self.suspend.load(Relaxed).is_null() {
            return false;
        }
        let (low, top) = (self.fiber_low.load(Relaxed), self.fiber_top.load(Relaxed));
        (low..top).contains(&super::arch::stack_pointer())
    }
}

/// Waits for `fut` on the running fiber: polls it with the task context of
/// the `poll` that runs the fiber, suspending the fiber while it is
/// pending.
///
/// # Errors
///
/// [`AsyncError::NotAsync`] when no async call of the store runs;
/// [`AsyncError::Cancelled`] when the call's future was dropped meanwhile
/// (`fut` is then dropped unfinished by the caller).
#[inline(always)]
pub fn block_on<F: Future + ?Sized>(cx: &AsyncCx, mut fut: Pin<&mut F>) -> Result<F::Output, AsyncError> {
    if !cx.on_fiber() {
        return Err(AsyncError::NotAsync);
    }
    loop {
        let task = cx.poll_cx.load(Relaxed);
        if cx.cancelled.load(Relaxed) || task.is_null() {
            return Err(AsyncError::Cancelled);
        }
        // SAFETY: `poll_cx` is set by the `poll` that resumed this fiber,
        // which is blocked in `Fiber::resume` until the fiber suspends:
        // the context outlives this use.
        if let Poll::Ready(v) = fut.as_mut().poll(unsafe { &mut *task }) {
            return Ok(v);
        }
        let suspend = cx.suspend.load(Relaxed);
        // SAFETY: the handle of the running fiber (set by the same `poll`),
        // which lives on that fiber's stack or in its future.
        unsafe { (*suspend).suspend() };
    }
}

/// Waits, as [`block_on`] does, for the future `make` builds from
/// `store` (an async host function's body, which may borrow the store):
/// the store's async state is reached without a reference count.
///
/// # Errors
///
/// As for [`block_on`].
#[inline(always)]
pub fn wait_for<S: VMStore, R>(
    store: &mut S,
    make: impl FnOnce(&mut S) -> Pin<Box<dyn Future<Output = R> + Send + '_>>,
) -> Result<R, AsyncError> {
    let cx: *const AsyncCx = Arc::as_ptr(store.vm_store().async_cx());
    let mut fut = make(store);
    // SAFETY: the store owns its async state (through the `Arc`) and
    // outlives this call; the state is a separate allocation, used through
    // shared references only.
    block_on(unsafe { &*cx }, fut.as_mut())
}

/// Suspends the running fiber once, asking to be polled again at once:
/// lets the executor run other tasks (epoch and fuel yields).
///
/// # Errors
///
/// As for [`block_on`].
pub fn yield_now(cx: &AsyncCx) -> Result<(), AsyncError> {
    struct YieldOnce(bool);
    impl Future for YieldOnce {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            task.waker().wake_by_ref();
            Poll::Pending
        }
    }
    block_on(cx, std::pin::pin!(YieldOnce(false)))
}

/// The future of a call running on a fiber: see the module docs. It
/// allocates nothing: the fiber's shared state and the result live at the
/// top of the fiber's stack, which is the store's spare one when it has
/// one, and the body moves onto the fiber at the first poll.
pub struct FiberFuture<'a, S, F, R> {
    /// `None` when no stack could be had (`early` is then the result).
    fiber: Option<Fiber<R>>,
    /// The result when the call could not start.
    early: Option<R>,
    /// The body, until the first poll hands it to the fiber.
    body: Option<F>,
    /// The borrowed store (exclusively, for `'a`).
    store: *mut S,
    /// The store's async state (owned by the store, which outlives `'a`).
    cx: *const AsyncCx,
    /// The store's context, whose running thread (epoch signals) follows
    /// the fiber between threads.
    store_ctx: *mut VMStoreContext,
    /// Wasm of the store was running on the fiber when it last suspended.
    was_running: bool,
    _borrow: PhantomData<&'a mut S>,
}

// SAFETY: the future owns the fiber and everything on its stack: the
// body (`F: Send`), the store it borrows exclusively (`S: Send`), wasm
// frames, host functions' frames and futures (required `Send`), and the
// runtime's own frames, whose thread-local state moves with the fiber
// (`ThreadWasmState`). The pointers are the borrowed store's. Nothing in
// there is tied to the thread that last polled it.
unsafe impl<S: Send, F: Send, R: Send> Send for FiberFuture<'_, S, F, R> {}

// The future holds no self-references: everything the fiber points to is
// on the fiber's stack or in the store.
impl<S, F, R> Unpin for FiberFuture<'_, S, F, R> {}

/// Runs `body` with `store` on a fiber, as a future (see the module
/// docs). The fiber's stack is the store's spare one, or one from the
/// engine's pool; when none can be had (the pool's limit is reached, or
/// the OS refuses a mapping), the future's result is `no_stack` of the
/// error, and `body` never runs.
pub fn on_fiber<'a, S, F, R>(store: &'a mut S, body: F, no_stack: fn(std::io::Error) -> R) -> FiberFuture<'a, S, F, R>
where
    S: VMStore + Send,
    F: FnOnce(&mut S) -> R + Send + 'a,
    R: Send + 'a,
{
    let vm = store.vm_store();
    let cx: *const AsyncCx = Arc::as_ptr(vm.async_cx());
    let store_ctx = vm.context_ptr();
    // SAFETY: the store owns its `AsyncCx` (through the `Arc`) and
    // outlives the borrow.
    let stack = match unsafe { (*cx).spare_stack.take() } {
        Some(s) => Ok(s),
        // SAFETY: as above.
        None => unsafe { (*cx).stacks.take() },
    };
    let (fiber, early) = match stack {
        Ok(stack) => (Some(Fiber::new(stack)), None),
        Err(e) => (None, Some(no_stack(e))),
    };
    FiberFuture { fiber, early, body: Some(body), store, cx, store_ctx, was_running: false, _borrow: PhantomData }
}

impl<S, F, R> FiberFuture<'_, S, F, R> {
    /// Resumes the fiber with task context `task` (null while cancelling);
    /// returns the body's result once it finished. The first resume
    /// starts `body`.
    #[inline(always)]
    fn resume_with<B: FnOnce(&Suspend) -> R>(
        &mut self,
        task: *mut Context<'static>,
        body: &mut Option<B>,
    ) -> Option<R> {
        let fiber = self.fiber.as_mut()?;
        // SAFETY: the store, which owns the state, outlives the future.
        let cx = unsafe { &*self.cx };
        if self.was_running {
            super::traphandlers::ensure_thread_prepared();
            // SAFETY: the borrowed store's context; `running_tid` is atomic.
            unsafe { super::epoch::signal::publish_running_thread(&*self.store_ctx) };
        }
        // Put the store's async state back even if the body panics.
        struct Restore<'c>(&'c AsyncCx, *mut Context<'static>, *mut Suspend, (usize, usize));
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.poll_cx.store(self.1, Relaxed);
                self.0.suspend.store(self.2, Relaxed);
                self.0.fiber_low.store(self.3.0, Relaxed);
                self.0.fiber_top.store(self.3.1, Relaxed);
            }
        }
        // Loads and stores rather than swaps: only this thread writes the
        // fields now, and a swap would be a locked instruction.
        let restore = Restore(
            cx,
            cx.poll_cx.load(Relaxed),
            cx.suspend.load(Relaxed),
            (cx.fiber_low.load(Relaxed), cx.fiber_top.load(Relaxed)),
        );
        let (low, top) = fiber.stack_range();
        cx.poll_cx.store(task, Relaxed);
        cx.suspend.store(fiber.suspend_handle().cast_mut(), Relaxed);
        cx.fiber_low.store(low, Relaxed);
        cx.fiber_top.store(top, Relaxed);
        let result = fiber.resume(body);
        drop(restore);
        if result.is_some() {
            self.was_running = false;
            if let Some(stack) = fiber.take_stack() {
                // Keep it for the store's next call, unless a nested call's
                // stack is kept already.
                if let Some(other) = cx.spare_stack.replace(Some(stack)) {
                    cx.stacks.give_back(other);
                }
            }
            self.fiber = None;
        } else {
            // No thread runs the store's wasm while the fiber waits: the
            // epoch must not signal the thread that last ran it.
            // SAFETY: as above.
            let tid = unsafe { &(*self.store_ctx).running_tid };
            // (Only stores with epoch signals publish a thread: the others
            // pay a load, not a locked exchange.)
            self.was_running = tid.load(Ordering::Relaxed) != 0 && tid.swap(0, Ordering::SeqCst) != 0;
        }
        result
    }
}

impl<S, F: FnOnce(&mut S) -> R, R> Future for FiberFuture<'_, S, F, R> {
    type Output = R;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, task: &mut Context<'_>) -> Poll<R> {
        let this = &mut *self;
        if let Some(r) = this.early.take() {
            return Poll::Ready(r);
        }
        if this.fiber.is_none() {
            panic!("an async call's future was polled after it completed");
        }
        // The fiber's body on the first poll: the caller's, with the store
        // (moved onto the fiber's stack by the first resume).
        let store = this.store;
        let mut body = this.body.take().map(|f| {
            move |_: &Suspend| {
                // SAFETY: the future borrows the store exclusively and
                // touches it only through `AsyncCx` while the fiber lives.
                f(unsafe { &mut *store })
            }
        });
        match this.resume_with((task as *mut Context<'_>).cast(), &mut body) {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }
}

impl<S, F, R> Drop for FiberFuture<'_, S, F, R> {
    fn drop(&mut self) {
        match &self.fiber {
            Some(f) if f.started() && !f.finished() => {}
            _ => return,
        }
        // Cancel: run the body to its end with every suspension point
        // failing (see the module docs).
        // SAFETY: the store outlives the future.
        let cx = unsafe { &*self.cx };
        let outer = cx.cancelled.load(Relaxed);
        cx.cancelled.store(true, Relaxed);
        while self.resume_with(ptr::null_mut(), &mut None::<fn(&Suspend) -> R>).is_none() && self.fiber.is_some() {}
        cx.cancelled.store(outer, Relaxed);
    }
}
