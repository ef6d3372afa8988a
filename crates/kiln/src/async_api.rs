//! The async embedding API: calls and instantiation as futures, host
//! functions that await, and yielding to the executor on epoch deadlines
//! (Wasmtime's shape: `call_async`, `func_wrap_async`, `instantiate_async`,
//! `epoch_deadline_async_yield_and_update`).
//!
//! Each entry point runs its synchronous counterpart on a fiber of the
//! store (`vm/async_call.rs`) and awaits it. Wherever that code must wait
//! (an async host function's future is pending, an epoch yield), the fiber
//! suspends and the future returns `Pending`; wasm frames stay on the
//! fiber's stack until the next poll. A store may mix synchronous and
//! async calls; what cannot wait in a synchronous call (an async host
//! function, an async yield) fails there with a clear error.

use crate::func::{Caller, Func, TypedFunc, WasmParams, WasmResults, WasmRet, WasmTyList};
use crate::instance::Instance;
use crate::linker::{InstancePre, Linker};
use crate::module::Module;
use crate::store::{AsContextMut, Store, StoreContextMut, StoreInner, UpdateDeadline};
use crate::types::FuncType;
use crate::values::Val;
use crate::vm;
use crate::vm::store_ids::InstanceId;
use crate::vm::vmcontext::ValRaw;
use anyhow::Result;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The future an async host function returns: it may borrow the
/// [`Caller`] it was given.
pub type HostFuture<'a, R> = Box<dyn Future<Output = R> + Send + 'a>;

/// Waits for futures inside a host function during an async call, without
/// blocking the thread (see [`Caller::async_waiter`]). Taken before the
/// host function borrows the store (its memory, say) for the wait.
#[derive(Clone)]
pub struct AsyncWaiter {
    cx: Arc<vm::async_call::AsyncCx>,
}

impl std::fmt::Debug for AsyncWaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncWaiter").field("can_wait", &self.can_wait()).finish()
    }
}

impl AsyncWaiter {
    /// Whether [`AsyncWaiter::block_on`] can wait here: an async call of
    /// the waiter's store is running on this thread and this code runs
    /// beneath it.
    pub fn can_wait(&self) -> bool {
        self.cx.on_fiber()
    }

    /// Waits for `fut`: the async call's future returns `Pending` until
    /// `fut` is ready (polled with the executor's task context), so the
    /// thread runs other tasks meanwhile.
    ///
    /// # Errors
    ///
    /// Not beneath an async call of the waiter's store (see
    /// [`AsyncWaiter::can_wait`]), or the call was cancelled while it
    /// waited (its future was dropped).
    pub fn block_on<F: Future>(&self, fut: F) -> Result<F::Output> {
        let mut fut = std::pin::pin!(fut);
        Ok(vm::async_call::block_on(&self.cx, fut.as_mut())?)
    }
}

impl<T> Caller<'_, T> {
    /// A waiter for this store's async call: a host function defined with
    /// [`Linker::func_wrap_waiting`] (or [`Linker::func_wrap_async`]) and
    /// called during [`Func::call_async`] can wait for a future with it
    /// without blocking the thread, even while it borrows the store (its
    /// memory, say). Elsewhere ([`AsyncWaiter::can_wait`] is false) its
    /// waits fail.
    pub fn async_waiter(&self) -> AsyncWaiter {
        AsyncWaiter { cx: self.store.opaque.vm().async_cx().clone() }
    }
}

/// Whether instantiating `module` in `store` may have to wait: it has a
/// start function (which may call async host functions), or the store's
/// limiter is async. Otherwise async instantiation runs synchronously,
/// with no fiber.
fn instantiation_may_wait<T>(store: &StoreInner<T>, module: &Module) -> bool {
    module.info().start.is_some() || store.has_async_limiter()
}

/// The result of an async call that found no stack to run on.
fn no_stack<R>(e: std::io::Error) -> Result<R> {
    Err(anyhow::Error::new(e).context("cannot map a stack for the async call"))
}

/// The future of an async call: on a fiber, or, in a store where nothing
/// can wait, already done.
enum AsyncCall<Fib, R> {
    Done(Option<Result<R>>),
    Fiber(Fib),
}

// Nothing in it is pinned: the result is only moved out, and the fiber's
// future is itself `Unpin`.
impl<Fib: Unpin, R> Unpin for AsyncCall<Fib, R> {}

impl<Fib: Future<Output = Result<R>> + Unpin, R> Future for AsyncCall<Fib, R> {
    type Output = Result<R>;

    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<R>> {
        match &mut *self {
            AsyncCall::Done(r) => match r.take() {
                Some(r) => std::task::Poll::Ready(r),
                None => panic!("an async call's future was polled after it completed"),
            },
            AsyncCall::Fiber(f) => Pin::new(f).poll(cx),
        }
    }
}

/// Runs `body` with the store as a future: on a fiber when the store may
/// have to wait (`StoreOpaque::may_wait`), otherwise directly, before the
/// future is even polled (nothing in the call can wait, so it would
/// complete at its first poll anyway).
///
/// # Errors
///
/// [`Config::async_stack_size`](crate::Config::async_stack_size) is not
/// larger than `max_wasm_stack` (at once); no stack could be had (when
/// polled); whatever `body` returns.
fn on_fiber<'a, T: Send + 'static, R: Send + 'a>(
    store: &'a mut StoreInner<T>,
    body: impl FnOnce(&mut StoreInner<T>) -> Result<R> + Send + 'a,
) -> Result<impl Future<Output = Result<R>> + Send + 'a> {
    on_fiber_if(store.opaque.may_wait(), store, body)
}

/// [`on_fiber`], on a fiber exactly when `fiber`.
fn on_fiber_if<'a, T: Send + 'static, R: Send + 'a>(
    fiber: bool,
    store: &'a mut StoreInner<T>,
    body: impl FnOnce(&mut StoreInner<T>) -> Result<R> + Send + 'a,
) -> Result<impl Future<Output = Result<R>> + Send + 'a> {
    store.opaque.engine().async_stack_size()?;
    if !fiber {
        return Ok(AsyncCall::Done(Some(body(store))));
    }
    Ok(AsyncCall::Fiber(vm::async_call::on_fiber(store, body, no_stack)))
}

impl Func {
    /// Calls the function as [`Func::call`] does, on a stack of its own,
    /// as a future: where wasm waits (an async host function, an epoch or
    /// fuel yield) the future returns `Pending` and the executor runs
    /// other tasks. The future is `Send` when the store's data is.
    ///
    /// Dropping the future before it completes cancels the call: the wasm
    /// frames are unwound as by a trap, and everything they hold freed.
    ///
    /// # Errors
    ///
    /// As [`Func::call`]; and when the async stack cannot be mapped, or
    /// [`Config::async_stack_size`](crate::Config::async_stack_size) is not
    /// larger than `max_wasm_stack`.
    ///
    /// # Panics
    ///
    /// As [`Func::call`].
    pub async fn call_async<T: Send + 'static>(
        &self,
        mut store: impl AsContextMut<Data = T>,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<()> {
        let func = self;
        on_fiber(store.as_context_mut().0, move |s| func.call(StoreContextMut(s), params, results))?.await
    }
}

impl<Params: WasmParams + Sync, Results: WasmResults> TypedFunc<Params, Results> {
    /// Calls the function as [`TypedFunc::call`] does, as a future (see
    /// [`Func::call_async`]).
    ///
    /// # Errors
    ///
    /// As [`TypedFunc::call`] and [`Func::call_async`].
    ///
    /// # Panics
    ///
    /// As [`TypedFunc::call`].
    pub async fn call_async<T: Send + 'static>(
        &self,
        mut store: impl AsContextMut<Data = T>,
        params: Params,
    ) -> Result<Results> {
        let func = self;
        on_fiber(store.as_context_mut().0, move |s| func.call(StoreContextMut(s), params))?.await
    }
}

impl Instance {
    /// Instantiates `module` as [`Instance::new`] does, running its start
    /// function (which may call async host functions) as a future.
    ///
    /// # Errors
    ///
    /// As [`Instance::new`] and [`Func::call_async`].
    pub async fn new_async<T: Send + 'static>(
        mut store: impl AsContextMut<Data = T>,
        module: &Module,
        imports: &[crate::Extern],
    ) -> Result<Instance> {
        let store = store.as_context_mut().0;
        let fiber = instantiation_may_wait(store, module);
        on_fiber_if(fiber, store, move |s| Instance::new(StoreContextMut(s), module, imports))?.await
    }
}

impl<T: Send + 'static> Linker<T> {
    /// Defines `module::name` as a host function whose body is async: `f`
    /// gets the [`Caller`] and the arguments (a tuple of [`WasmTy`](crate::WasmTy)
    /// values) and returns a boxed future of the results (values, or a
    /// `Result` of them). Wasm calling it waits for the future without
    /// blocking the thread: only reachable from async calls
    /// ([`Func::call_async`], [`Linker::instantiate_async`]); from a
    /// synchronous call it traps with an error saying so.
    ///
    /// # Errors
    ///
    /// The name is already defined and shadowing is off.
    pub fn func_wrap_async<Params, Results, F>(&mut self, module: &str, name: &str, f: F) -> Result<&mut Self>
    where
        Params: WasmTyList + 'static,
        Results: WasmRet + 'static,
        F: for<'a> Fn(Caller<'a, T>, Params) -> HostFuture<'a, Results> + Send + Sync + 'static,
    {
        let ty = FuncType::new(Params::valtypes(), Results::valtypes()).0;
        let body = move |store: &mut StoreInner<T>, caller: Option<InstanceId>, values: &mut [ValRaw]| -> Result<()> {
            let params = Params::load(&mut store.opaque, values);
            let results = vm::async_call::wait_for(store, |store| Pin::from(f(Caller { store, caller }, params)))?;
            results.store_results(&mut store.opaque, values)
        };
        self.define_host_func(module, name, ty, Arc::new(body), true)
    }

    /// Defines `module::name` as a dynamically typed host function whose
    /// body is async (see [`Linker::func_new`] and
    /// [`Linker::func_wrap_async`]).
    ///
    /// # Errors
    ///
    /// The name is already defined and shadowing is off.
    pub fn func_new_async<F>(&mut self, module: &str, name: &str, ty: FuncType, f: F) -> Result<&mut Self>
    where
        F: for<'a> Fn(Caller<'a, T>, &'a [Val], &'a mut [Val]) -> HostFuture<'a, Result<()>> + Send + Sync + 'static,
    {
        let body = crate::func::dynamic_host_fn(ty.0.clone(), move |caller: Caller<'_, T>, params, results| {
            let cx = caller.store.opaque.vm().async_cx().clone();
            let mut fut = Pin::from(f(caller, params, results));
            vm::async_call::block_on(&cx, fut.as_mut())?
        });
        self.define_host_func(module, name, ty.0, body, true)
    }

    /// Instantiates `module` as [`Linker::instantiate`] does, as a future:
    /// its start function may call async host functions.
    ///
    /// # Errors
    ///
    /// As [`Linker::instantiate`] and [`Func::call_async`].
    pub async fn instantiate_async(&self, mut store: impl AsContextMut<Data = T>, module: &Module) -> Result<Instance>
    where
        T: Send,
    {
        let store = store.as_context_mut().0;
        let fiber = instantiation_may_wait(store, module);
        on_fiber_if(fiber, store, move |s| self.instantiate(StoreContextMut(s), module))?.await
    }
}

impl<T: 'static> Linker<T> {
    /// Defines `module::name` as a host function from a Rust closure, as
    /// [`Linker::func_wrap`] does, whose body may wait during async calls
    /// through [`Caller::async_waiter`] (a synchronous body that waits
    /// while it borrows the store, its memory say, which an async body
    /// cannot). Like an async host function, it makes the stores it is
    /// instantiated in run their async calls on a fiber; from a
    /// synchronous call its waits fail.
    ///
    /// # Errors
    ///
    /// The name is already defined and shadowing is off.
    pub fn func_wrap_waiting<Params, Results>(
        &mut self,
        module: &str,
        name: &str,
        f: impl crate::func::IntoFunc<T, Params, Results>,
    ) -> Result<&mut Self> {
        let (ty, body) = f.into_host_fn();
        self.define_host_func(module, name, ty, body, true)
    }
}

impl<T: Send + 'static> InstancePre<T> {
    /// Instantiates the module as [`InstancePre::instantiate`] does, as a
    /// future (see [`Linker::instantiate_async`]).
    ///
    /// # Errors
    ///
    /// As [`InstancePre::instantiate`] and [`Func::call_async`].
    pub async fn instantiate_async(&self, mut store: impl AsContextMut<Data = T>) -> Result<Instance> {
        let store = store.as_context_mut().0;
        let fiber = instantiation_may_wait(store, self.module());
        on_fiber_if(fiber, store, move |s| self.instantiate(StoreContextMut(s)))?.await
    }
}

impl<T: 'static> Store<T> {
    /// When the epoch deadline is reached during an async call, yield to
    /// the executor (the call's future returns `Pending` once, asking to
    /// be polled again), then continue with the deadline `delta` ticks
    /// after the epoch at that point. This time-slices guests: with an
    /// epoch ticker, no guest keeps a thread longer than `delta` ticks.
    /// During a synchronous call the deadline traps with an error instead.
    /// Requires [`Config::epoch_interruption`](crate::Config::epoch_interruption).
    pub fn epoch_deadline_async_yield_and_update(&mut self, delta: u64) {
        self.inner.epoch_callback = Some(Box::new(move |_| Ok(UpdateDeadline::Yield(delta))));
        self.inner.opaque.note_may_wait();
    }

    /// During async calls, yield to the executor every `interval` units of
    /// fuel consumed (the call's future returns `Pending` once, asking to
    /// be polled again), so a guest cannot keep a thread for more than an
    /// interval's worth of work; fuel still runs out, with a trap, when
    /// the store's fuel (see [`Store::set_fuel`]) is spent. Yields happen
    /// where fuel is checked (loop headers and function entries), so they
    /// are deterministic: the same program with the same fuel yields at the
    /// same points. `None` turns yields off. A synchronous call that
    /// reaches a yield point fails with an error saying so.
    ///
    /// # Errors
    ///
    /// Fuel is not enabled ([`Config::consume_fuel`](crate::Config::consume_fuel)),
    /// fuel checks were compiled without yield support
    /// ([`Config::fuel_async_yields`](crate::Config::fuel_async_yields)), or
    /// `interval` is `Some(0)`.
    pub fn fuel_async_yield_interval(&mut self, interval: Option<u64>) -> Result<()> {
        let tunables = self.engine().tunables();
        if !tunables.consume_fuel {
            anyhow::bail!("fuel is not enabled in this engine's configuration (Config::consume_fuel)");
        }
        if interval.is_some() && !tunables.fuel_async_yields {
            anyhow::bail!("fuel yields need fuel checks compiled for them: Config::fuel_async_yields(true)");
        }
        if interval == Some(0) {
            anyhow::bail!("the fuel yield interval must not be 0");
        }
        self.inner.opaque.vm_mut().set_fuel_yield_interval(interval);
        if interval.is_some() {
            self.inner.opaque.note_may_wait();
        }
        Ok(())
    }
}
