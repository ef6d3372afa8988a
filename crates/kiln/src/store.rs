//! `Store<T>`: the owner of all runtime objects (instances, functions,
//! memories, tables, globals) and of the host's data `T`.

use crate::engine::Engine;
use crate::limits::{ResourceLimiter, ResourceLimiterAsync};
use crate::module::Module;
use crate::vm::store::{VmStore, VmStoreConfig};
use crate::vm::store_hooks::{HookError, VMStore};
use crate::vm::store_ids::{FuncId, IdVec, InstanceId};
use anyhow::Context as _;
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Identifies a store; handles carry it so that using a handle with the
/// wrong store is caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct StoreId(u64);

impl StoreId {
    /// The id of objects that belong to no store (shared memories).
    pub(crate) fn shared() -> StoreId {
        StoreId(0)
    }

    /// The id of the store whose raw layer is `vm`.
    fn of(vm: &VmStore) -> StoreId {
        StoreId(vm.id())
    }
}

/// A handle to one of a store's objects: its typed id in the store's list
/// of that kind ([`vm::store_ids`](crate::vm::store_ids)), tagged with the
/// store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Stored<I> {
    pub(crate) store: StoreId,
    pub(crate) index: I,
}

/// The collection of runtime objects that wasm executes against, plus
/// host data `T` available to host functions through [`Caller`](crate::Caller).
///
/// Objects created in a store live until the store is dropped. A store is
/// used by one thread at a time; many stores may run on many threads.
pub struct Store<T> {
    pub(crate) inner: Box<StoreInner<T>>,
}

/// A store's contents (internal).
#[doc(hidden)]
pub struct StoreInner<T> {
    pub(crate) opaque: StoreOpaque,
    pub(crate) data: T,
    pub(crate) limiter: Option<Limiter<T>>,
    pub(crate) epoch_callback: Option<EpochCallback<T>>,
}

/// A store's resource limiter, as installed: a function from the store's
/// data to the limiter.
pub(crate) enum Limiter<T> {
    /// Installed with [`Store::limiter`].
    Sync(Box<dyn (FnMut(&mut T) -> &mut dyn ResourceLimiter) + Send + Sync>),
    /// Installed with [`Store::limiter_async`].
    Async(Box<dyn (FnMut(&mut T) -> &mut dyn ResourceLimiterAsync) + Send + Sync>),
}

/// A store's limiter, borrowed.
enum LimiterRef<'a> {
    Sync(&'a mut dyn ResourceLimiter),
    Async(&'a mut dyn ResourceLimiterAsync),
}

/// Asks `$l` (a [`LimiterRef`]) `$method($args)`: directly for a
/// synchronous limiter, waiting on the running async call (`$cx`) for an
/// async one.
macro_rules! decide {
    ($cx:expr, $l:expr, $method:ident($($arg:expr),*)) => {
        match $l {
            LimiterRef::Sync(l) => l.$method($($arg),*),
            LimiterRef::Async(l) => {
                let mut fut = l.$method($($arg),*);
                crate::vm::async_call::block_on($cx, fut.as_mut())?
            }
        }
    };
}

type EpochCallback<T> = Box<dyn FnMut(StoreContextMut<'_, T>) -> anyhow::Result<UpdateDeadline> + Send + Sync>;

/// What an epoch-deadline callback decides.
pub enum UpdateDeadline {
    /// Keep running; the new deadline is this many ticks after the current epoch.
    Continue(u64),
    /// Yield to the executor (in an async call: its future returns
    /// `Pending` once), then keep running with the deadline this many
    /// ticks after the epoch at that point. In a synchronous call this is
    /// an error.
    Yield(u64),
    /// Wait for the future (in an async call, without blocking the
    /// thread), then keep running as for [`UpdateDeadline::Yield`].
    YieldCustom(u64, Pin<Box<dyn Future<Output = ()> + Send>>),
}

impl std::fmt::Debug for UpdateDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpdateDeadline::Continue(d) => f.debug_tuple("Continue").field(d).finish(),
            UpdateDeadline::Yield(d) => f.debug_tuple("Yield").field(d).finish(),
            UpdateDeadline::YieldCustom(d, _) => f.debug_tuple("YieldCustom").field(d).finish_non_exhaustive(),
        }
    }
}

/// The part of a store that does not depend on `T` (internal): its id, its
/// engine, the raw objects (`VmStore`, which owns everything wasm can
/// reach), and the API-side bookkeeping.
#[doc(hidden)]
pub struct StoreOpaque {
    id: StoreId,
    engine: Engine,
    vm: VmStore,
    /// The module of each instance, by instance index.
    instance_modules: IdVec<InstanceId, Module>,
    /// Store function index of each linker host-function definition
    /// instantiated here, by the definition's address.
    linker_funcs: crate::fast_hash::FastHashMap<usize, FuncId>,
    /// Linker definitions whose addresses key `linker_funcs`.
    keep_alive: Vec<Arc<dyn Any + Send + Sync>>,
    /// Whether the contents of this store's memories and tables may differ
    /// from what instantiation mapped in: wasm ran, the host got a
    /// `Memory` or `Table` handle, or an instance wrote data segments
    /// eagerly (tables also record what the runtime writes into them).
    /// While false, dropping the store returns their regions to the
    /// allocator without resetting them (see `forget_unwritten_contents`).
    contents_exposed: bool,
    /// Whether a call into this store's wasm may have to wait (it has an
    /// async host function, an async limiter, an epoch callback or
    /// yields, or fuel yields): async calls then run on a fiber, and
    /// otherwise directly.
    may_wait: bool,
}

impl Drop for StoreOpaque {
    fn drop(&mut self) {
        if !self.contents_exposed {
            self.vm.forget_unwritten_contents();
        }
    }
}

impl<T: 'static> Store<T> {
    /// Creates a store for `engine` holding `data`.
    pub fn new(engine: &Engine, data: T) -> Store<T> {
        let tunables = engine.tunables();
        let vm = VmStore::new(VmStoreConfig {
            epoch: engine.inner.epoch.clone(),
            fuel: tunables.consume_fuel,
            epoch_interruption: tunables.epoch_interruption,
            epoch_signals: tunables.epoch_signals,
            max_wasm_stack: engine.config().max_wasm_stack,
            types: engine.inner.types.clone(),
            max_gc_heap: engine.config().max_gc_heap,
            gc_zeal: engine.config().gc_zeal,
            stacks: engine.inner.allocator.stacks().clone(),
        });
        let inner = Box::new(StoreInner {
            opaque: StoreOpaque {
                id: StoreId::of(&vm),
                engine: engine.clone(),
                vm,
                instance_modules: IdVec::new(),
                linker_funcs: Default::default(),
                keep_alive: Vec::new(),
                contents_exposed: false,
                may_wait: false,
            },
            data,
            limiter: None,
            epoch_callback: None,
        });
        Store { inner }
    }

    /// Installs a resource limiter: `get` returns it from the store's data
    /// (for example `|data| &mut data.limits` with a [`StoreLimits`](crate::StoreLimits)).
    pub fn limiter(&mut self, get: impl (FnMut(&mut T) -> &mut dyn ResourceLimiter) + Send + Sync + 'static) {
        self.inner.limiter = Some(Limiter::Sync(Box::new(get)));
    }

    /// Installs an async resource limiter (replacing any limiter): `get`
    /// returns it from the store's data. Its decisions are awaited during
    /// async calls and async instantiation; a synchronous call or
    /// instantiation that needs one fails with an error saying so.
    pub fn limiter_async(
        &mut self,
        get: impl (FnMut(&mut T) -> &mut dyn ResourceLimiterAsync) + Send + Sync + 'static,
    ) {
        self.inner.limiter = Some(Limiter::Async(Box::new(get)));
        self.inner.opaque.note_may_wait();
    }

    /// Sets the fuel available to wasm (requires [`Config::consume_fuel`](crate::Config::consume_fuel)).
    ///
    /// # Errors
    ///
    /// Fuel consumption is not enabled in the engine's configuration.
    pub fn set_fuel(&mut self, fuel: u64) -> anyhow::Result<()> {
        self.inner.opaque.set_fuel(fuel)
    }

    /// The fuel left.
    ///
    /// # Errors
    ///
    /// Fuel consumption is not enabled in the engine's configuration.
    pub fn get_fuel(&self) -> anyhow::Result<u64> {
        self.inner.opaque.get_fuel()
    }

    /// Interrupts wasm once the engine's epoch reaches the current epoch
    /// plus `ticks_beyond_current` (requires
    /// [`Config::epoch_interruption`](crate::Config::epoch_interruption)).
    pub fn set_epoch_deadline(&mut self, ticks_beyond_current: u64) {
        self.inner.opaque.set_epoch_deadline(ticks_beyond_current);
    }

    /// When the deadline is reached, trap with [`TrapCode::Interrupt`](crate::TrapCode::Interrupt)
    /// (the default).
    pub fn epoch_deadline_trap(&mut self) {
        self.inner.epoch_callback = None;
    }

    /// When the deadline is reached, call `callback`: it returns
    /// [`UpdateDeadline::Continue`] to run on with a new deadline, or an
    /// error to stop (returned unchanged to the caller of wasm).
    pub fn epoch_deadline_callback(
        &mut self,
        callback: impl FnMut(StoreContextMut<'_, T>) -> anyhow::Result<UpdateDeadline> + Send + Sync + 'static,
    ) {
        self.inner.epoch_callback = Some(Box::new(callback));
        self.inner.opaque.note_may_wait();
    }

    /// The host data.
    pub fn data(&self) -> &T {
        &self.inner.data
    }

    /// The host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.inner.data
    }

    /// Consumes the store, returning the host data.
    pub fn into_data(self) -> T {
        let inner = *self.inner;
        inner.data
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.opaque.engine
    }

    /// Takes the exception that ended the last call into wasm that failed
    /// with [`ThrownException`](crate::ThrownException), if it was not
    /// taken yet.
    pub fn take_pending_exception(&mut self) -> Option<crate::ExnRef> {
        self.inner.opaque.take_pending_exception()
    }

    /// Makes `exn` the pending exception and returns the error that throws
    /// it: a host function that returns it throws `exn` into its wasm
    /// caller. Always `Err`.
    ///
    /// # Errors
    ///
    /// Always: [`ThrownException`](crate::ThrownException), or an error if
    /// `exn` belongs to another store.
    pub fn throw<R>(&mut self, exn: &crate::ExnRef) -> anyhow::Result<R> {
        Err(self.inner.opaque.throw(exn))
    }

    /// What the GC heap's collector has done and how full the heap is;
    /// `None` if the store has no GC heap (no module compiled with GC was
    /// instantiated in it and the host made no GC object).
    pub fn gc_heap_stats(&self) -> Option<crate::GcHeapStats> {
        self.inner.opaque.vm.gc_stats().map(|s| crate::GcHeapStats {
            collections: s.collections,
            major_collections: s.major_collections,
            live_bytes: s.live_bytes,
            capacity: s.capacity,
            used_bytes: s.used_bytes,
        })
    }

    /// Collects garbage: frees the GC objects (structs, arrays) that
    /// nothing reaches any more (not wasm, not a table, global or element
    /// segment, not a live host handle), moving the others, and drops the
    /// store's references to externrefs that are no longer reachable from
    /// its tables, globals, GC objects or the host. GC objects are also
    /// collected whenever an allocation finds the heap full; externrefs
    /// when wasm returns and their set has doubled since the last
    /// collection.
    pub fn gc(&mut self) {
        self.inner.opaque.vm.gc_collect(crate::vm::gc_heap::Collection::Major);
        self.inner.opaque.vm.collect_externrefs();
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Store<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("data", &self.inner.data).finish_non_exhaustive()
    }
}

impl<T> StoreInner<T> {
    fn limiter(&mut self) -> Option<LimiterRef<'_>> {
        Some(match self.limiter.as_mut()? {
            Limiter::Sync(get) => LimiterRef::Sync(get(&mut self.data)),
            Limiter::Async(get) => LimiterRef::Async(get(&mut self.data)),
        })
    }

    /// Whether the store's limiter is async (`Store::limiter_async`).
    pub(crate) fn has_async_limiter(&self) -> bool {
        matches!(self.limiter, Some(Limiter::Async(_)))
    }

    /// Reads one of the limiter's fixed settings.
    fn limiter_setting<R>(
        &mut self,
        sync: impl FnOnce(&dyn ResourceLimiter) -> R,
        r#async: impl FnOnce(&dyn ResourceLimiterAsync) -> R,
    ) -> Option<R> {
        Some(match self.limiter()? {
            LimiterRef::Sync(l) => sync(l),
            LimiterRef::Async(l) => r#async(l),
        })
    }

    /// Asks the limiter whether a memory may grow (or be created, from 0).
    pub(crate) fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> anyhow::Result<bool> {
        let cx = self.opaque.vm.async_cx().clone();
        match self.limiter() {
            Some(l) => decide!(&cx, l, memory_growing(current, desired, maximum)),
            None => Ok(true),
        }
    }

    /// Asks the limiter whether a table may grow (or be created, from 0).
    pub(crate) fn table_growing(&mut self, current: u64, desired: u64, maximum: Option<u64>) -> anyhow::Result<bool> {
        let c = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let cx = self.opaque.vm.async_cx().clone();
        match self.limiter() {
            Some(l) => decide!(&cx, l, table_growing(c(current), c(desired), maximum.map(c))),
            None => Ok(true),
        }
    }

    /// Asks the limiter whether the GC heap may grow.
    pub(crate) fn gc_heap_growing(&mut self, current: u64, desired: u64, maximum: u64) -> anyhow::Result<bool> {
        let c = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let cx = self.opaque.vm.async_cx().clone();
        match self.limiter() {
            Some(l) => decide!(&cx, l, gc_heap_growing(c(current), c(desired), c(maximum))),
            None => Ok(true),
        }
    }

    /// The limiter's fixed cap on the GC heap, if it states one.
    pub(crate) fn gc_heap_size_limit(&mut self) -> Option<u64> {
        self.limiter_setting(|l| l.gc_heap_size_limit(), |l| l.gc_heap_size_limit()).flatten().map(|v| v as u64)
    }

    /// Makes room for a host allocation of `size` bytes in the GC heap:
    /// collects if it does not fit, and asks the limiter when the heap
    /// would grow past what it allowed (see `VmStore::gc_growth_request`).
    ///
    /// # Errors
    ///
    /// The limiter refused and a collection did not free enough, or it
    /// failed.
    pub(crate) fn gc_prepare_alloc(&mut self, size: u64) -> anyhow::Result<()> {
        let hint = self.gc_heap_size_limit();
        while let Some((current, desired, maximum)) = self.opaque.vm_mut().gc_growth_request(size, hint) {
            let allowed = self.gc_heap_growing(current, desired, maximum)?;
            if !self.opaque.vm_mut().gc_growth_answer(size, desired, allowed) {
                anyhow::bail!("allocation failed: the store's limiter keeps the GC heap at {current} bytes");
            }
        }
        Ok(())
    }

    /// Asks the limiter whether a new memory of `minimum` bytes, described
    /// by `name` in errors, may be created.
    ///
    /// # Errors
    ///
    /// The limiter refused (naming its limit if it states one) or failed.
    pub(crate) fn check_new_memory(
        &mut self,
        name: &str,
        minimum: usize,
        maximum: Option<usize>,
    ) -> anyhow::Result<()> {
        let allowed = self
            .memory_growing(0, minimum, maximum)
            .with_context(|| format!("{name} is too large for the store's limits"))?;
        if allowed {
            return Ok(());
        }
        let limit = self.limiter_setting(|l| l.memory_size_limit(), |l| l.memory_size_limit()).flatten();
        Err(crate::limits::refused("memory", name, minimum, limit))
    }

    /// Asks the limiter whether a new table of `minimum` elements,
    /// described by `name` in errors, may be created.
    ///
    /// # Errors
    ///
    /// The limiter refused (naming its limit if it states one) or failed.
    pub(crate) fn check_new_table(&mut self, name: &str, minimum: u64, maximum: Option<u64>) -> anyhow::Result<()> {
        let allowed = self
            .table_growing(0, minimum, maximum)
            .with_context(|| format!("{name} is too large for the store's limits"))?;
        if allowed {
            return Ok(());
        }
        let limit = self.limiter_setting(|l| l.table_elements_limit(), |l| l.table_elements_limit()).flatten();
        Err(crate::limits::refused("table", name, usize::try_from(minimum).unwrap_or(usize::MAX), limit))
    }

    /// The limiter's caps on instances, tables and memories.
    pub(crate) fn count_limits(&mut self) -> (usize, usize, usize) {
        let d = crate::limits::DEFAULT_COUNT_LIMIT;
        self.limiter_setting(
            |l| (l.instances(), l.tables(), l.memories()),
            |l| (l.instances(), l.tables(), l.memories()),
        )
        .unwrap_or((d, d, d))
    }
}

impl<T: 'static> VMStore for StoreInner<T> {
    fn vm_store(&mut self) -> &mut VmStore {
        &mut self.opaque.vm
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn new_epoch(&mut self) -> Result<u64, HookError> {
        let deadline = self.opaque.vm.epoch_deadline();
        if !self.opaque.vm.epoch_deadline_reached() {
            // A stale flag (the deadline moved since it was raised): clear
            // it, re-raising it if the deadline is reached meanwhile.
            self.opaque.vm.set_epoch_deadline(deadline);
            return Ok(deadline);
        }
        let Some(mut cb) = self.epoch_callback.take() else {
            return Err(HookError::Trap(crate::TrapCode::Interrupt));
        };
        let r = cb(StoreContextMut(self));
        self.epoch_callback = Some(cb);
        let delta = match r {
            Ok(UpdateDeadline::Continue(delta)) => delta,
            Ok(UpdateDeadline::Yield(delta)) => {
                crate::vm::async_call::yield_now(self.opaque.vm.async_cx()).map_err(|e| HookError::Host(e.into()))?;
                delta
            }
            Ok(UpdateDeadline::YieldCustom(delta, mut fut)) => {
                crate::vm::async_call::block_on(self.opaque.vm.async_cx(), fut.as_mut())
                    .map_err(|e| HookError::Host(e.into()))?;
                delta
            }
            Err(e) => return Err(HookError::Host(e)),
        };
        self.opaque.set_epoch_deadline(delta);
        Ok(self.opaque.vm.epoch_deadline())
    }

    fn out_of_fuel(&mut self, threshold: i64) -> Result<(), HookError> {
        let vm = &mut self.opaque.vm;
        if vm.context().fuel_consumed < threshold {
            return Ok(());
        }
        if !vm.has_fuel_reserve() {
            return Err(HookError::Trap(crate::TrapCode::OutOfFuel));
        }
        if vm.fuel_yield_interval().is_some() {
            crate::vm::async_call::yield_now(vm.async_cx()).map_err(|e| HookError::Host(e.into()))?;
        }
        if self.opaque.vm.refuel_from_reserve(threshold) {
            Ok(())
        } else {
            Err(HookError::Trap(crate::TrapCode::OutOfFuel))
        }
    }

    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool, HookError> {
        StoreInner::memory_growing(self, current, desired, maximum).map_err(HookError::Host)
    }

    fn table_growing(&mut self, current: u64, desired: u64, maximum: Option<u64>) -> Result<bool, HookError> {
        StoreInner::table_growing(self, current, desired, maximum).map_err(HookError::Host)
    }

    fn gc_heap_growing(&mut self, current: u64, desired: u64, maximum: u64) -> Result<bool, HookError> {
        StoreInner::gc_heap_growing(self, current, desired, maximum).map_err(HookError::Host)
    }

    fn gc_heap_size_limit(&mut self) -> Option<u64> {
        StoreInner::gc_heap_size_limit(self)
    }

    fn ensure_gc_heap(&mut self) -> Result<(), HookError> {
        let allocator = &self.opaque.engine.inner.allocator;
        self.opaque
            .vm
            .ensure_gc_heap(allocator)
            .map_err(|e| HookError::Host(anyhow::Error::new(e).context("cannot reserve the store's GC heap")))
    }
}

impl StoreOpaque {
    /// This store's id.
    pub(crate) fn id(&self) -> StoreId {
        self.id
    }

    /// The engine.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The raw objects.
    pub(crate) fn vm(&self) -> &VmStore {
        &self.vm
    }

    /// The raw objects, mutably.
    pub(crate) fn vm_mut(&mut self) -> &mut VmStore {
        &mut self.vm
    }

    /// The module of instance `i`.
    pub(crate) fn instance_module(&self, i: InstanceId) -> &Module {
        &self.instance_modules[i]
    }

    /// Records that instance `i` (just created by the `VmStore`) is of
    /// `module`.
    pub(crate) fn push_instance_module(&mut self, i: InstanceId, module: Module) {
        let pushed = self.instance_modules.push(module);
        debug_assert_eq!(i, pushed);
    }

    /// The store function made for linker definition `key` (its address),
    /// if any.
    pub(crate) fn linker_func(&self, key: usize) -> Option<FuncId> {
        self.linker_funcs.get(&key).copied()
    }

    /// Records the store function made for linker definition `def`, and
    /// keeps the definition alive so its address is never reused.
    pub(crate) fn set_linker_func(&mut self, def: Arc<dyn Any + Send + Sync>, func: FuncId) {
        self.linker_funcs.insert(Arc::as_ptr(&def).cast::<()>() as usize, func);
        self.keep_alive.push(def);
    }

    /// Reserves room for `n` more linker functions.
    pub(crate) fn reserve_linker_funcs(&mut self, n: usize) {
        self.linker_funcs.reserve(n);
        self.keep_alive.reserve(n);
    }

    /// Notes that calls into this store's wasm may have to wait (see
    /// `may_wait`).
    pub(crate) fn note_may_wait(&mut self) {
        self.may_wait = true;
    }

    /// Whether calls into this store's wasm may have to wait.
    pub(crate) fn may_wait(&self) -> bool {
        self.may_wait
    }

    /// Notes that the contents of this store's memories and tables may now
    /// differ from what instantiation mapped in (see `contents_exposed`).
    pub(crate) fn expose_contents(&mut self) {
        self.contents_exposed = true;
    }

    pub(crate) fn set_fuel(&mut self, fuel: u64) -> anyhow::Result<()> {
        if !self.engine.tunables().consume_fuel {
            anyhow::bail!("fuel is not enabled in this engine's configuration (Config::consume_fuel)");
        }
        self.vm.set_fuel(fuel);
        Ok(())
    }

    pub(crate) fn get_fuel(&self) -> anyhow::Result<u64> {
        if !self.engine.tunables().consume_fuel {
            anyhow::bail!("fuel is not enabled in this engine's configuration (Config::consume_fuel)");
        }
        Ok(self.vm.fuel())
    }

    pub(crate) fn set_epoch_deadline(&mut self, ticks: u64) {
        let deadline = self.vm.current_epoch().saturating_add(ticks);
        self.vm.set_epoch_deadline(deadline);
    }

    /// # Panics
    ///
    /// Panics if `s` belongs to another store: mixing stores is a
    /// programming error, like indexing out of bounds.
    #[inline]
    pub(crate) fn check<I>(&self, s: &Stored<I>) {
        assert_eq!(s.store, self.id, "object used with a store it does not belong to");
    }

    pub(crate) fn stored<I>(&self, index: I) -> Stored<I> {
        Stored { store: self.id, index }
    }

    /// The `Func` of function `f` of instance `instance`, created on first use.
    pub(crate) fn instance_func(
        &mut self,
        instance: InstanceId,
        f: kiln_environ::FuncIndex,
    ) -> anyhow::Result<crate::func::Func> {
        let i = self.vm.instance_func(instance, f).map_err(anyhow::Error::msg)?;
        Ok(crate::func::Func(self.stored(i)))
    }

    /// The `Func` for a raw function reference that came out of wasm or a
    /// table of this store (`0` is null).
    pub(crate) fn func_from_raw(&mut self, raw: usize) -> Option<crate::func::Func> {
        let i = self.vm.func_from_raw(raw)?;
        Some(crate::func::Func(self.stored(i)))
    }
}

/// A shared borrow of a store, as taken by APIs that only read.
pub struct StoreContext<'a, T>(pub(crate) &'a StoreInner<T>);

/// An exclusive borrow of a store, as taken by APIs that run wasm or
/// change state.
pub struct StoreContextMut<'a, T>(pub(crate) &'a mut StoreInner<T>);

impl<T> StoreContext<'_, T> {
    /// The host data.
    pub fn data(&self) -> &T {
        &self.0.data
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.0.opaque.engine
    }
}

impl<T> StoreContextMut<'_, T> {
    /// The host data.
    pub fn data(&self) -> &T {
        &self.0.data
    }

    /// As [`Store::take_pending_exception`].
    pub fn take_pending_exception(&mut self) -> Option<crate::ExnRef> {
        self.0.opaque.take_pending_exception()
    }

    /// As [`Store::throw`]: a host function returns this to throw `exn`
    /// into its wasm caller.
    ///
    /// # Errors
    ///
    /// Always, as [`Store::throw`].
    pub fn throw<R>(&mut self, exn: &crate::ExnRef) -> anyhow::Result<R> {
        Err(self.0.opaque.throw(exn))
    }

    /// The host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.0.data
    }

    /// As [`Store::gc`]; also from a host function that wasm called (its
    /// wasm callers' references are roots too).
    pub fn gc(&mut self) {
        self.0.opaque.vm.gc_collect(crate::vm::gc_heap::Collection::Major);
        self.0.opaque.vm.collect_externrefs();
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.0.opaque.engine
    }
}

/// Anything that can lend a shared store borrow: `&Store<T>`,
/// `&mut Store<T>`, `Caller<T>`, and the context types.
pub trait AsContext {
    /// The host data type of the store.
    type Data;
    /// Borrows the store.
    fn as_context(&self) -> StoreContext<'_, Self::Data>;
}

/// Anything that can lend an exclusive store borrow.
pub trait AsContextMut: AsContext {
    /// Borrows the store mutably.
    fn as_context_mut(&mut self) -> StoreContextMut<'_, Self::Data>;
}

impl<T> AsContext for Store<T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(&self.inner)
    }
}

impl<T> AsContextMut for Store<T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut(&mut self.inner)
    }
}

impl<T> AsContext for StoreContext<'_, T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(self.0)
    }
}

impl<T> AsContext for StoreContextMut<'_, T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(self.0)
    }
}

impl<T> AsContextMut for StoreContextMut<'_, T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut(self.0)
    }
}

impl<C: AsContext + ?Sized> AsContext for &C {
    type Data = C::Data;
    fn as_context(&self) -> StoreContext<'_, C::Data> {
        (**self).as_context()
    }
}

impl<C: AsContext + ?Sized> AsContext for &mut C {
    type Data = C::Data;
    fn as_context(&self) -> StoreContext<'_, C::Data> {
        (**self).as_context()
    }
}

impl<C: AsContextMut + ?Sized> AsContextMut for &mut C {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, C::Data> {
        (**self).as_context_mut()
    }
}
