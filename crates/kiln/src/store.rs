//! `Store<T>`: the owner of all runtime objects (instances, functions,
//! memories, tables, globals) and of the host's data `T`.

use crate::engine::Engine;
use crate::func::Func;
use crate::module::Module;
use crate::vm;
use crate::vm::externref::{ExternData, externref_to_raw};
use crate::vm::global::GlobalStorage;
use crate::vm::instance::Instance as VmInstance;
use crate::vm::memory::Memory as VmMemory;
use crate::vm::table::Table as VmTable;
use crate::limits::ResourceLimiter;
use anyhow::Context as _;
use crate::vm::store_hooks::{HookError, VMStore};
use crate::vm::vmcontext::VMStoreContext;
use kiln_environ as env;
use std::any::Any;
use std::collections::HashSet;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies a store; handles carry it so that using a handle with the
/// wrong store is caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct StoreId(u64);

impl StoreId {
    /// The id of objects that belong to no store (shared memories).
    pub(crate) fn shared() -> StoreId {
        StoreId(0)
    }

    /// A fresh id. Threads reserve ids in blocks, so that threads creating
    /// stores side by side do not all write one shared counter.
    fn next() -> StoreId {
        const BLOCK: u64 = 1024;
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            /// The next id of this thread's block, and the block's end.
            static RESERVED: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
        }
        RESERVED.with(|r| {
            let (mut next, mut end) = r.get();
            if next == end {
                next = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
                end = next + BLOCK;
            }
            r.set((next + 1, end));
            StoreId(next)
        })
    }
}

/// An index into one of a store's object lists, tagged with the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Stored {
    pub(crate) store: StoreId,
    pub(crate) index: usize,
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
    pub(crate) limiter: Option<LimiterFn<T>>,
    pub(crate) epoch_callback: Option<EpochCallback<T>>,
}

type LimiterFn<T> = Box<dyn (FnMut(&mut T) -> &mut dyn ResourceLimiter) + Send + Sync>;

type EpochCallback<T> = Box<dyn FnMut(StoreContextMut<'_, T>) -> anyhow::Result<UpdateDeadline> + Send + Sync>;

/// What an epoch-deadline callback decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateDeadline {
    /// Keep running; the new deadline is this many ticks after the current epoch.
    Continue(u64),
}

pub(crate) struct InstanceData {
    pub(crate) handle: Box<VmInstance>,
    pub(crate) module: Module,
    /// Store function index of module functions, created on demand.
    pub(crate) funcs: crate::fast_hash::FastHashMap<u32, usize>,
    pub(crate) memories: Vec<usize>,
    pub(crate) tables: Vec<usize>,
    pub(crate) globals: Vec<usize>,
}

pub(crate) enum MemoryEntry {
    Host(Box<VmMemory>),
    Instance { instance: usize, index: u32 },
    /// A shared memory imported into an instance of this store.
    Shared(Arc<VmMemory>),
}

pub(crate) enum TableEntry {
    Host(Box<VmTable>),
    Instance { instance: usize, index: u32 },
}

pub(crate) struct GlobalEntry {
    pub(crate) ty: env::GlobalType,
    pub(crate) storage: GlobalStorage,
}

pub(crate) enum FuncKind {
    /// A wasm function, called from the host through this entry trampoline.
    Wasm { trampoline: usize },
    /// A host function: index into `host_funcs`.
    Host { ctx: usize },
}

pub(crate) struct FuncEntry {
    pub(crate) func_ref: usize,
    pub(crate) ty: Arc<env::FuncType>,
    pub(crate) kind: FuncKind,
}

/// The part of a store that does not depend on `T` (internal).
#[doc(hidden)]
pub struct StoreOpaque {
    pub(crate) id: StoreId,
    pub(crate) engine: Engine,
    pub(crate) vm: Box<VMStoreContext>,
    pub(crate) instances: Vec<InstanceData>,
    pub(crate) memories: Vec<MemoryEntry>,
    pub(crate) tables: Vec<TableEntry>,
    pub(crate) globals: Vec<GlobalEntry>,
    pub(crate) funcs: Vec<FuncEntry>,
    pub(crate) host_funcs: Vec<Box<dyn Any + Send + Sync>>,
    pub(crate) funcs_by_ref: crate::fast_hash::FastHashMap<usize, usize>,
    pub(crate) linker_funcs: crate::fast_hash::FastHashMap<usize, usize>,
    /// Linker definitions whose addresses key `linker_funcs`.
    pub(crate) keep_alive: Vec<Arc<dyn Any + Send + Sync>>,
    pub(crate) externrefs: ExternRefRoots,
    /// Whether the contents of this store's memories and tables may differ
    /// from what instantiation mapped in: wasm ran, the host got a
    /// `Memory` or `Table` handle, or an instance wrote data segments
    /// eagerly (tables also record what the runtime writes into them).
    /// While false, dropping the store returns their regions to the
    /// allocator without resetting them (see `forget_unwritten_contents`).
    pub(crate) contents_exposed: bool,
}

impl Drop for StoreOpaque {
    fn drop(&mut self) {
        if self.engine.tunables().epoch_interruption {
            self.engine.inner.epoch.unregister(NonNull::from(&*self.vm));
        }
        if !self.contents_exposed {
            for inst in &mut self.instances {
                inst.handle.forget_unwritten_contents();
            }
        }
    }
}

/// Strong references to every externref that has been handed to wasm.
#[derive(Default)]
pub(crate) struct ExternRefRoots {
    live: Vec<Arc<ExternData>>,
    set: HashSet<usize>,
    last_live: usize,
}

impl<T: 'static> Store<T> {
    /// Creates a store for `engine` holding `data`.
    pub fn new(engine: &Engine, data: T) -> Store<T> {
        let mut inner = Box::new(StoreInner {
            opaque: StoreOpaque {
                id: StoreId::next(),
                engine: engine.clone(),
                vm: Box::default(),
                instances: Vec::new(),
                memories: Vec::new(),
                tables: Vec::new(),
                globals: Vec::new(),
                funcs: Vec::new(),
                host_funcs: Vec::new(),
                funcs_by_ref: Default::default(),
                linker_funcs: Default::default(),
                keep_alive: Vec::new(),
                externrefs: ExternRefRoots::default(),
                contents_exposed: false,
            },
            data,
            limiter: None,
            epoch_callback: None,
        });
        let p: *mut StoreInner<T> = &mut *inner;
        inner.opaque.vm.store = p.cast();
        inner.opaque.vm.epoch_counter = engine.inner.epoch.counter();
        inner.opaque.vm.fuel_in_pinned_reg = engine.tunables().consume_fuel;
        inner.opaque.vm.epoch_signals = engine.tunables().epoch_signals;
        if engine.tunables().epoch_interruption {
            engine.inner.epoch.register(NonNull::from(&*inner.opaque.vm));
        }
        let hooks: &mut dyn VMStore = &mut *inner;
        inner.opaque.vm.hooks = Some(NonNull::from(hooks));
        Store { inner }
    }

    /// Installs a resource limiter: `get` returns it from the store's data
    /// (for example `|data| &mut data.limits` with a [`StoreLimits`](crate::StoreLimits)).
    pub fn limiter(&mut self, get: impl (FnMut(&mut T) -> &mut dyn ResourceLimiter) + Send + Sync + 'static) {
        self.inner.limiter = Some(Box::new(get));
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

    /// Drops the store's references to externrefs that are no longer
    /// reachable from its tables, globals or the host. Runs automatically
    /// when wasm returns and the set has doubled since the last collection.
    pub fn gc(&mut self) {
        self.inner.opaque.collect_externrefs();
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Store<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("data", &self.inner.data).finish_non_exhaustive()
    }
}

impl<T> StoreInner<T> {
    fn limiter(&mut self) -> Option<&mut dyn ResourceLimiter> {
        let get = self.limiter.as_mut()?;
        Some(get(&mut self.data))
    }

    /// Asks the limiter whether a memory may grow (or be created, from 0).
    pub(crate) fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> anyhow::Result<bool> {
        match self.limiter() {
            Some(l) => l.memory_growing(current, desired, maximum),
            None => Ok(true),
        }
    }

    /// Asks the limiter whether a table may grow (or be created, from 0).
    pub(crate) fn table_growing(&mut self, current: u64, desired: u64, maximum: Option<u64>) -> anyhow::Result<bool> {
        let c = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        match self.limiter() {
            Some(l) => l.table_growing(c(current), c(desired), maximum.map(c)),
            None => Ok(true),
        }
    }

    /// Asks the limiter whether a new memory of `minimum` bytes, described
    /// by `name` in errors, may be created.
    ///
    /// # Errors
    ///
    /// The limiter refused (naming its limit if it states one) or failed.
    pub(crate) fn check_new_memory(&mut self, name: &str, minimum: usize, maximum: Option<usize>) -> anyhow::Result<()> {
        let allowed =
            self.memory_growing(0, minimum, maximum).with_context(|| format!("{name} is too large for the store's limits"))?;
        if allowed {
            return Ok(());
        }
        let limit = self.limiter().and_then(|l| l.memory_size_limit());
        Err(crate::limits::refused("memory", name, minimum, limit))
    }

    /// Asks the limiter whether a new table of `minimum` elements,
    /// described by `name` in errors, may be created.
    ///
    /// # Errors
    ///
    /// The limiter refused (naming its limit if it states one) or failed.
    pub(crate) fn check_new_table(&mut self, name: &str, minimum: u64, maximum: Option<u64>) -> anyhow::Result<()> {
        let allowed =
            self.table_growing(0, minimum, maximum).with_context(|| format!("{name} is too large for the store's limits"))?;
        if allowed {
            return Ok(());
        }
        let limit = self.limiter().and_then(|l| l.table_elements_limit());
        Err(crate::limits::refused("table", name, usize::try_from(minimum).unwrap_or(usize::MAX), limit))
    }

    /// The limiter's caps on instances, tables and memories.
    pub(crate) fn count_limits(&mut self) -> (usize, usize, usize) {
        match self.limiter() {
            Some(l) => (l.instances(), l.tables(), l.memories()),
            None => (crate::limits::DEFAULT_COUNT_LIMIT, crate::limits::DEFAULT_COUNT_LIMIT, crate::limits::DEFAULT_COUNT_LIMIT),
        }
    }
}

impl<T: 'static> VMStore for StoreInner<T> {
    fn new_epoch(&mut self) -> Result<u64, HookError> {
        let epoch = self.opaque.engine.inner.epoch.counter();
        let deadline = self.opaque.vm.epoch_deadline.load(std::sync::atomic::Ordering::SeqCst);
        if !crate::vm::epoch::deadline_reached(&self.opaque.vm, epoch) {
            // A stale flag (the deadline moved since it was raised): clear
            // it, re-raising it if the deadline is reached meanwhile.
            crate::vm::epoch::set_deadline(&self.opaque.vm, epoch, deadline);
            return Ok(deadline);
        }
        let Some(mut cb) = self.epoch_callback.take() else {
            return Err(HookError::Trap(crate::TrapCode::Interrupt));
        };
        let r = cb(StoreContextMut(self));
        self.epoch_callback = Some(cb);
        match r {
            Ok(UpdateDeadline::Continue(delta)) => {
                self.opaque.set_epoch_deadline(delta);
                Ok(self.opaque.vm.epoch_deadline.load(std::sync::atomic::Ordering::SeqCst))
            }
            Err(e) => Err(HookError::Host(e)),
        }
    }

    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool, HookError> {
        StoreInner::memory_growing(self, current, desired, maximum).map_err(HookError::Host)
    }

    fn table_growing(&mut self, current: u64, desired: u64, maximum: Option<u64>) -> Result<bool, HookError> {
        StoreInner::table_growing(self, current, desired, maximum).map_err(HookError::Host)
    }
}

impl StoreOpaque {
    pub(crate) fn set_fuel(&mut self, fuel: u64) -> anyhow::Result<()> {
        if !self.engine.tunables().consume_fuel {
            anyhow::bail!("fuel is not enabled in this engine's configuration (Config::consume_fuel)");
        }
        self.vm.fuel_consumed = -(i64::try_from(fuel).unwrap_or(i64::MAX));
        Ok(())
    }

    pub(crate) fn get_fuel(&self) -> anyhow::Result<u64> {
        if !self.engine.tunables().consume_fuel {
            anyhow::bail!("fuel is not enabled in this engine's configuration (Config::consume_fuel)");
        }
        Ok(u64::try_from(-self.vm.fuel_consumed.min(0)).unwrap_or(0))
    }

    pub(crate) fn set_epoch_deadline(&mut self, ticks: u64) {
        let epoch = self.engine.inner.epoch.counter();
        let deadline = epoch.load(std::sync::atomic::Ordering::SeqCst).saturating_add(ticks);
        crate::vm::epoch::set_deadline(&self.vm, epoch, deadline);
    }

    /// Panics if `s` belongs to another store: mixing stores is a
    /// programming error, like indexing out of bounds.
    #[inline]
    pub(crate) fn check(&self, s: &Stored) {
        assert_eq!(s.store, self.id, "object used with a store it does not belong to");
    }

    pub(crate) fn stored(&self, index: usize) -> Stored {
        Stored { store: self.id, index }
    }

    pub(crate) fn max_wasm_stack(&self) -> usize {
        self.engine.config().max_wasm_stack
    }

    pub(crate) fn vm_ptr(&mut self) -> *mut VMStoreContext {
        &mut *self.vm
    }

    /// Whether wasm of this store is running (a host function is being
    /// called from it).
    pub(crate) fn wasm_active(&self) -> bool {
        self.vm.stack_limit != usize::MAX
    }

    /// Adds a memory this store's wasm can now access, returning its index,
    /// and lists its reservation for the trap handler (the one way entries
    /// are added, so every memory in `memories` is listed). An
    /// [`MemoryEntry::Instance`] entry's instance must be in `instances`.
    pub(crate) fn push_memory(&mut self, entry: MemoryEntry) -> usize {
        let i = self.memories.len();
        self.memories.push(entry);
        let reservation = self.memory(i).reservation();
        self.vm.memory_reservations.push(reservation);
        i
    }

    pub(crate) fn memory(&self, i: usize) -> &VmMemory {
        match &self.memories[i] {
            MemoryEntry::Host(m) => m,
            MemoryEntry::Instance { instance, index } => self.instances[*instance].handle.memory(*index),
            MemoryEntry::Shared(m) => m,
        }
    }

    pub(crate) fn memory_mut(&mut self, i: usize) -> &mut VmMemory {
        match &mut self.memories[i] {
            MemoryEntry::Host(m) => m,
            MemoryEntry::Instance { instance, index } => self.instances[*instance].handle.memory_mut(*index),
            // `Memory` handles are never created for shared memories (their
            // exports are `SharedMemory`s), so this arm is not reached.
            MemoryEntry::Shared(_) => unreachable!("shared memories have no exclusive access"),
        }
    }

    pub(crate) fn memory_ptr(&mut self, i: usize) -> NonNull<VmMemory> {
        match &mut self.memories[i] {
            MemoryEntry::Host(m) => NonNull::from(&mut **m),
            MemoryEntry::Instance { instance, index } => self.instances[*instance].handle.memory_ptr(*index),
            MemoryEntry::Shared(m) => NonNull::from(&**m),
        }
    }

    pub(crate) fn table(&self, i: usize) -> &VmTable {
        match &self.tables[i] {
            TableEntry::Host(t) => t,
            TableEntry::Instance { instance, index } => self.instances[*instance].handle.table(*index),
        }
    }

    pub(crate) fn table_mut(&mut self, i: usize) -> &mut VmTable {
        match &mut self.tables[i] {
            TableEntry::Host(t) => t,
            TableEntry::Instance { instance, index } => self.instances[*instance].handle.table_mut(*index),
        }
    }

    pub(crate) fn table_ptr(&mut self, i: usize) -> NonNull<VmTable> {
        match &mut self.tables[i] {
            TableEntry::Host(t) => NonNull::from(&mut **t),
            TableEntry::Instance { instance, index } => self.instances[*instance].handle.table_ptr(*index),
        }
    }

    /// Adds a function entry and returns its handle.
    pub(crate) fn push_func(&mut self, entry: FuncEntry) -> Func {
        let idx = self.funcs.len();
        self.funcs_by_ref.insert(entry.func_ref, idx);
        self.funcs.push(entry);
        Func(self.stored(idx))
    }

    /// The `Func` of function `f` of instance `instance`, created on first use.
    pub(crate) fn instance_func(&mut self, instance: usize, f: u32) -> anyhow::Result<Func> {
        if let Some(&i) = self.instances[instance].funcs.get(&f) {
            return Ok(Func(self.stored(i)));
        }
        let data = &mut self.instances[instance];
        let func_ref = data.handle.func_ref(f) as usize;
        if let Some(&i) = self.funcs_by_ref.get(&func_ref) {
            self.instances[instance].funcs.insert(f, i);
            return Ok(Func(self.stored(i)));
        }
        let (type_id, owner) = vm::funcref_info(func_ref);
        let ty = self.engine.inner.types.get(type_id);
        let kind = match owner {
            vm::FuncRefOwner::Instance { instance: owner, func } => {
                let rt = self.instances[owner].handle.module().clone();
                let t = rt.module().functions[func as usize];
                let trampoline = rt
                    .array_trampoline(t)
                    .ok_or_else(|| anyhow::anyhow!("function {func} cannot be called from the host"))?;
                FuncKind::Wasm { trampoline: trampoline as usize }
            }
            vm::FuncRefOwner::Host => anyhow::bail!("unregistered host function reference"),
        };
        let func = self.push_func(FuncEntry { func_ref, ty, kind });
        self.instances[instance].funcs.insert(f, func.0.index);
        Ok(func)
    }

    /// The `Func` for a raw function reference that came out of wasm or a
    /// table of this store (`0` is null).
    pub(crate) fn func_from_raw(&mut self, raw: usize) -> Option<Func> {
        if raw == 0 {
            return None;
        }
        if let Some(&i) = self.funcs_by_ref.get(&raw) {
            return Some(Func(self.stored(i)));
        }
        match vm::funcref_info(raw).1 {
            vm::FuncRefOwner::Instance { instance, func } => self.instance_func(instance, func).ok(),
            vm::FuncRefOwner::Host => None,
        }
    }

    /// Roots `r` in this store and returns its raw form for wasm.
    pub(crate) fn externref_to_raw(&mut self, r: &Arc<ExternData>) -> usize {
        let raw = externref_to_raw(r);
        if self.externrefs.set.insert(raw) {
            self.externrefs.live.push(r.clone());
        }
        raw
    }

    /// Collects externrefs if wasm is idle and the root set doubled.
    #[inline]
    pub(crate) fn maybe_collect_externrefs(&mut self) {
        let r = &self.externrefs;
        if r.live.len() >= 1024 && r.live.len() >= 2 * r.last_live && !self.wasm_active() {
            self.collect_externrefs();
        }
    }

    pub(crate) fn collect_externrefs(&mut self) {
        if self.wasm_active() {
            return;
        }
        let mut reachable: HashSet<usize> = HashSet::new();
        for i in 0..self.tables.len() {
            reachable.extend(self.table(i).externrefs().iter().copied().filter(|v| *v != 0));
        }
        for g in &self.globals {
            if g.ty.content == env::WasmValType::EXTERNREF {
                let v = g.storage.get().get_ptr();
                if v != 0 {
                    reachable.insert(v);
                }
            }
        }
        for data in &self.instances {
            let info = data.module.info();
            for g in 0..info.globals.len() as u32 {
                if info.globals[g as usize].content == env::WasmValType::EXTERNREF {
                    let v = GlobalStorage::of_instance(data.handle.global_ptr(g)).get().get_ptr();
                    if v != 0 {
                        reachable.insert(v);
                    }
                }
            }
        }
        let roots = &mut self.externrefs;
        roots.live.retain(|r| reachable.contains(&externref_to_raw(r)));
        roots.set = roots.live.iter().map(externref_to_raw).collect();
        roots.last_live = roots.live.len();
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

    /// The host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.0.data
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
