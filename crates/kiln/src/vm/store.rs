//! The raw half of a store: the context compiled code reads, the
//! instances, and every memory, table, global, function and externref the
//! store's wasm can reach, each addressed by an index into this store.
//!
//! Everything that needs a raw pointer to stay valid lives here, owned:
//! `VmStore` hands the API layer indices and safe methods, and checks
//! whatever comes back in (an index of this store, a reference value it
//! knows) before compiled code can see it. The generic store (the API's
//! `StoreInner<T>`) owns one `VmStore` and implements [`VMStore`] over it;
//! calls into wasm borrow that whole store for their duration, and the
//! activation they push carries the borrow, which is how builtins and host
//! functions reach the store again (see `traphandlers.rs`).

mod gc;

use super::allocator::Allocator;
use super::epoch::Epoch;
use super::exn::{ExnHeap, VMExn};
use super::externref::{ExternData, externref_to_raw};
use super::global::GlobalStorage;
use super::host_func::{HostFn, HostTrampoline, VMHostFuncContext};
use super::instance::{Imports, Instance, InstantiationError};
use super::invoke::{RegArgs, RegResults};
use super::memory::{Memory, MemoryError};
use super::module_runtime::ModuleRuntime;
use super::send_sync_ptr::SendSyncPtr;
use super::store_hooks::VMStore;
use super::store_ids::{FuncId, GlobalId, IdVec, InstanceId, MemoryId, ObjectId, TableId, TagId};
use super::table::Table;
use super::traphandlers::{EntryTrampoline, TrapReason, TrapRecord, enter_wasm, enter_wasm_regs};
use super::vmcontext::{VMContext, VMFuncRef, VMOpaqueContext, VMStoreContext, VMTagDefinition, ValRaw};
use crate::fast_hash::FastHashMap;
use kiln_environ::gc_layout::{KIND_ARRAY, KIND_EXTERN_BOX, KIND_MASK, KIND_STRUCT};
use kiln_environ::{
    FuncIndex, FuncType, GlobalIndex, GlobalType, MemoryIndex, TableIndex, TableType, TagIndex, WasmHeapType,
    WasmValType,
};
use std::any::Any;
use std::collections::HashSet;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a store memory index refers to.
enum MemoryEntry {
    /// Created by the host.
    Host(Box<Memory>),
    /// Defined by an instance: (instance, module memory index).
    Instance(InstanceId, u32),
    /// A shared memory imported into an instance of this store.
    Shared(Arc<Memory>),
}

/// What a store table index refers to.
enum TableEntry {
    /// Created by the host.
    Host(Box<Table>),
    /// Defined by an instance: (instance, module table index).
    Instance(InstanceId, u32),
}

/// A tag: its type (engine form) and definition, which is its identity.
struct TagEntry {
    ty: Arc<FuncType>,
    def: NonNull<VMTagDefinition>,
    /// The definition, for a tag the host created (instances own theirs).
    _owned: Option<Box<VMTagDefinition>>,
}

/// A global: its type and storage.
struct GlobalEntry {
    ty: GlobalType,
    storage: GlobalStorage,
}

/// How a function is called from the host.
#[derive(Clone, Copy)]
enum FuncKind {
    /// A wasm function, called through this entry trampoline.
    Wasm(EntryTrampoline),
    /// A host function: index into `host_funcs`.
    Host(usize),
}

/// A function: its record (what wasm sees), type and kind.
struct FuncEntry {
    func_ref: NonNull<VMFuncRef>,
    ty: Arc<FuncType>,
    kind: FuncKind,
    /// Whether any parameter is a reference (checked on every call).
    ref_params: bool,
    /// The signature's register shape (`invoke::func_reg_shape`).
    reg_shape: Option<u64>,
}

/// An instance and the store indices of its items.
struct InstanceEntry {
    handle: Box<Instance>,
    /// Store function index of module functions, created on demand.
    funcs: FastHashMap<FuncIndex, FuncId>,
    memories: Vec<MemoryId>,
    tables: Vec<TableId>,
    globals: Vec<GlobalId>,
    tags: Vec<TagId>,
}

/// Strong references to every externref that has been handed to wasm, by
/// raw value.
#[derive(Default)]
struct ExternRefRoots {
    live: FastHashMap<usize, Arc<ExternData>>,
    last_live: usize,
}

/// An item imported by an instantiation, as an index into this store (or
/// a shared memory, which belongs to no store).
pub enum Import {
    /// A function of this store.
    Func(FuncId),
    /// A table of this store.
    Table(TableId),
    /// A memory of this store.
    Memory(MemoryId),
    /// A shared memory.
    SharedMemory(Arc<Memory>),
    /// A global of this store.
    Global(GlobalId),
    /// A tag of this store.
    Tag(TagId),
}

/// What a function is, for the API layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuncOwner {
    /// A function of an instance of this store.
    Wasm,
    /// A host function: index into the store's host-function contexts.
    Host(usize),
}

/// The raw half of a store (see the module docs).
pub struct VmStore {
    /// Process-unique: tells the store's [`CallTarget`]s from others'.
    id: u64,
    /// The stack wasm may use below the host's frame that first enters it.
    max_wasm_stack: usize,
    /// Boxed: compiled code and the epoch thread hold its address.
    ctx: Box<VMStoreContext>,
    /// The engine's epoch (the context points at its counter).
    epoch: Arc<Epoch>,
    /// Whether the context is registered with the epoch (epoch
    /// interruption), to be unregistered before it is freed.
    registered: bool,
    instances: IdVec<InstanceId, InstanceEntry>,
    memories: IdVec<MemoryId, MemoryEntry>,
    tables: IdVec<TableId, TableEntry>,
    globals: IdVec<GlobalId, GlobalEntry>,
    funcs: IdVec<FuncId, FuncEntry>,
    tags: IdVec<TagId, TagEntry>,
    funcs_by_ref: FastHashMap<usize, FuncId>,
    host_funcs: Vec<Box<dyn Any + Send + Sync>>,
    externrefs: ExternRefRoots,
    exns: ExnHeap,
    /// The GC heap, created when the first module compiled with GC is
    /// instantiated (before any of its code runs).
    gc_heap: Option<Box<super::gc_heap::GcHeap>>,
    /// The engine's type registry.
    pub(crate) types: Arc<crate::engine::TypeRegistry>,
    /// Most bytes of GC objects the store may hold.
    max_gc_heap: u64,
    /// Collection stress for tests (`GcHeap::set_zeal`).
    gc_zeal: Option<u32>,
    /// While above 0, collections are forbidden (`forbid_gc`).
    no_gc: u32,
    /// The GC references host handles hold.
    host_roots: super::host_roots::HostRoots,
    /// The state of the store's async calls (`async_call.rs`).
    async_cx: Arc<super::async_call::AsyncCx>,
    /// Fuel not yet given to the counter (see `set_fuel`).
    fuel_reserve: u64,
    /// Wasm yields every this many units of fuel (async calls).
    fuel_yield_interval: Option<u64>,
}

// SAFETY: the raw pointers (function records, the context's epoch counter)
// point into objects this store owns (instances' VMContexts, host function
// contexts) or keeps alive (`epoch`), which move with it; the store is used
// by one thread at a time through `&mut`, like any owned data.
unsafe impl Send for VmStore {}
// SAFETY: through `&VmStore` nothing is mutated (reads of types, sizes and
// contents only); every mutation takes `&mut VmStore`.
unsafe impl Sync for VmStore {}

/// How a store runs wasm, fixed when it is created.
pub struct VmStoreConfig {
    /// The engine's epoch counter (always needed: instances point at it).
    pub epoch: Arc<Epoch>,
    /// Whether compiled code consumes fuel.
    pub fuel: bool,
    /// Whether the store uses epoch interruption (it is then registered
    /// with the epoch).
    pub epoch_interruption: bool,
    /// Whether epoch interruption comes by signal.
    pub epoch_signals: bool,
    /// The stack wasm may use below the host's frame that first enters it.
    pub max_wasm_stack: usize,
    /// The engine's type registry (subtyping between engine type ids).
    pub types: Arc<crate::engine::TypeRegistry>,
    /// Most bytes of GC objects the store may hold.
    pub max_gc_heap: u64,
    /// With `Some(n)`, every GC allocation goes through the runtime and
    /// every `n`th collects (a test of the stack maps and roots).
    pub gc_zeal: Option<u32>,
    /// The engine's async call stacks.
    pub stacks: Arc<super::fiber::StackPool>,
}

impl Drop for VmStore {
    fn drop(&mut self) {
        if self.registered {
            // SAFETY: registered in `new`, and still alive (boxed, freed
            // after this).
            unsafe { self.epoch.unregister(&self.ctx) };
        }
    }
}

impl VmStore {
    /// An empty store.
    pub fn new(config: VmStoreConfig) -> VmStore {
        let mut ctx: Box<VMStoreContext> = Box::default();
        ctx.epoch_counter = config.epoch.counter();
        ctx.type_displays = config.types.display_table();
        ctx.fuel_in_pinned_reg = config.fuel;
        ctx.epoch_signals = config.epoch_signals;
        if config.epoch_interruption {
            // SAFETY: the context is boxed (its address is stable) and
            // unregistered in `drop` before the box is freed.
            unsafe { config.epoch.register(&ctx) };
        }
        VmStore {
            id: next_store_id(),
            max_wasm_stack: config.max_wasm_stack,
            types: config.types,
            max_gc_heap: config.max_gc_heap,
            gc_zeal: config.gc_zeal,
            no_gc: 0,
            host_roots: Default::default(),
            async_cx: super::async_call::AsyncCx::new(config.stacks),
            fuel_reserve: 0,
            fuel_yield_interval: None,
            ctx,
            epoch: config.epoch,
            registered: config.epoch_interruption,
            instances: IdVec::new(),
            memories: IdVec::new(),
            tables: IdVec::new(),
            globals: IdVec::new(),
            funcs: IdVec::new(),
            tags: IdVec::new(),
            funcs_by_ref: FastHashMap::default(),
            host_funcs: Vec::new(),
            externrefs: ExternRefRoots::default(),
            exns: ExnHeap::default(),
            gc_heap: None,
        }
    }

    // ---- the context ----

    /// This store's process-unique id (never 0).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The function `func` resolved for repeated calls, or `None` if it
    /// is a host function.
    ///
    /// # Panics
    ///
    /// `func` is out of bounds.
    pub fn call_target(&self, func: FuncId) -> Option<CallTarget> {
        let entry = &self.funcs[func];
        let FuncKind::Wasm(trampoline) = entry.kind else { return None };
        Some(CallTarget {
            store: self.id,
            func,
            func_ref: SendSyncPtr::new(entry.func_ref),
            trampoline,
            slots: entry.ty.params().len().max(entry.ty.results().len()).max(1),
            ref_params: entry.ref_params,
            reg_shape: entry.reg_shape,
        })
    }

    /// The state of the store's async calls.
    pub fn async_cx(&self) -> &Arc<super::async_call::AsyncCx> {
        &self.async_cx
    }

    /// The context compiled code reads (fuel, deadline, limits).
    pub fn context(&self) -> &VMStoreContext {
        &self.ctx
    }

    /// The context, for the call path (its address is fixed: boxed).
    pub(super) fn context_ptr(&mut self) -> *mut VMStoreContext {
        &mut *self.ctx
    }

    /// Sets the fuel left to `fuel` units. The counter compiled code
    /// decrements gets at most one yield interval of it (all of it without
    /// one, up to `i64::MAX`); the rest waits in the reserve, from which
    /// `refuel_from_reserve` tops the counter up when it runs out.
    pub fn set_fuel(&mut self, fuel: u64) {
        let slice = fuel.min(self.fuel_yield_interval.unwrap_or(u64::MAX)).min(i64::MAX as u64);
        self.fuel_reserve = fuel - slice;
        self.ctx.fuel_consumed = -(slice as i64);
    }

    /// The fuel left: the reserve plus what the counter has left (a
    /// counter past zero, which compiled code may leave between checks,
    /// takes from the reserve).
    pub fn fuel(&self) -> u64 {
        let left = i128::from(self.fuel_reserve) - i128::from(self.ctx.fuel_consumed);
        u64::try_from(left.max(0)).unwrap_or(u64::MAX)
    }

    /// Makes wasm yield every `interval` units of fuel (`None`: never),
    /// keeping the fuel left unchanged.
    pub fn set_fuel_yield_interval(&mut self, interval: Option<u64>) {
        let fuel = self.fuel();
        self.fuel_yield_interval = interval;
        self.set_fuel(fuel);
    }

    /// The fuel yield interval.
    pub fn fuel_yield_interval(&self) -> Option<u64> {
        self.fuel_yield_interval
    }

    /// Whether fuel is left in the reserve (beyond the counter).
    pub fn has_fuel_reserve(&self) -> bool {
        self.fuel_reserve > 0
    }

    /// Moves fuel from the reserve into the counter, a yield interval at a
    /// time, until the counter is below `threshold` (the count at which
    /// compiled code found it exhausted); returns whether it got there.
    pub fn refuel_from_reserve(&mut self, threshold: i64) -> bool {
        while self.ctx.fuel_consumed >= threshold {
            if self.fuel_reserve == 0 {
                return false;
            }
            let slice = self.fuel_reserve.min(self.fuel_yield_interval.unwrap_or(u64::MAX)).min(i64::MAX as u64);
            self.fuel_reserve -= slice;
            self.ctx.fuel_consumed = self.ctx.fuel_consumed.saturating_sub(slice as i64);
        }
        true
    }

    /// The engine's current epoch.
    pub fn current_epoch(&self) -> u64 {
        self.epoch.current()
    }

    /// Sets the epoch deadline to the absolute epoch `deadline` (raising
    /// the interrupt flag if it is already reached).
    pub fn set_epoch_deadline(&mut self, deadline: u64) {
        if self.registered {
            self.epoch.set_deadline(&self.ctx, deadline);
        } else {
            super::epoch::set_deadline(&self.ctx, self.epoch.counter(), deadline);
        }
    }

    /// The absolute epoch deadline.
    pub fn epoch_deadline(&self) -> u64 {
        self.ctx.epoch_deadline.load(Ordering::SeqCst)
    }

    /// Whether the engine's epoch has reached the deadline.
    pub fn epoch_deadline_reached(&self) -> bool {
        super::epoch::deadline_reached(&self.ctx, self.epoch.counter())
    }

    /// Whether wasm of this store is running (a host function is being
    /// called from it).
    pub fn wasm_active(&self) -> bool {
        self.ctx.stack_limit != usize::MAX
    }

    // ---- instances ----

    /// Number of instances.
    pub fn instance_count(&self) -> usize {
        self.instances.len()
    }

    /// Instantiates `module` with `imports` (in the module's import order,
    /// already type-checked by the caller), allocating from `allocator`,
    /// and returns the new instance's index. Nothing is initialized yet:
    /// see [`VmStore::initialize`].
    ///
    /// # Errors
    ///
    /// A defined memory or table cannot be created.
    ///
    /// # Panics
    ///
    /// An import index is not one of this store's, or `imports` does not
    /// have one item per import of the right kind.
    pub fn instantiate(
        &mut self,
        module: &Arc<ModuleRuntime>,
        allocator: &Allocator,
        imports: &[Import],
    ) -> Result<InstanceId, InstantiationError> {
        let info = module.module();
        // A module that declares GC types gets the heap now (its constant
        // expressions may allocate, and under the pooling allocator a full
        // pool of heaps is an instantiation error); any other module's
        // store gets one at its first allocation, in a builtin (compiled
        // code reloads the heap's base after every call).
        if wasmparser::WasmFeatures::from_bits_truncate(module.tunables.features).gc() && info.declares_gc_types() {
            self.ensure_gc_heap(allocator).map_err(InstantiationError::Allocator)?;
        }
        let mut vm_imports = Imports::default();
        let mut func_ids = FastHashMap::default();
        func_ids.reserve(info.num_imported_funcs as usize);
        let (mut mem_ids, mut table_ids, mut global_ids, mut tag_ids) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for import in imports {
            match import {
                Import::Func(f) => {
                    func_ids.insert(FuncIndex::from_u32(vm_imports.funcs.len() as u32), *f);
                    vm_imports.funcs.push(self.funcs[*f].func_ref.as_ptr());
                }
                Import::Table(t) => {
                    vm_imports.tables.push(self.table_ptr(*t));
                    table_ids.push(*t);
                }
                Import::Memory(m) => {
                    vm_imports.memories.push(self.memory_ptr(*m));
                    mem_ids.push(*m);
                }
                Import::SharedMemory(m) => {
                    vm_imports.memories.push(NonNull::from(&**m));
                    vm_imports.shared.push(m.clone());
                    mem_ids.push(self.push_memory(MemoryEntry::Shared(m.clone())));
                }
                Import::Global(g) => {
                    vm_imports.globals.push(self.globals[*g].storage.as_ptr());
                    global_ids.push(*g);
                }
                Import::Tag(t) => {
                    vm_imports.tags.push(self.tags[*t].def);
                    tag_ids.push(*t);
                }
            }
        }
        assert_eq!(
            (
                vm_imports.funcs.len(),
                vm_imports.tables.len(),
                vm_imports.memories.len(),
                vm_imports.globals.len(),
                vm_imports.tags.len()
            ),
            (
                info.num_imported_funcs as usize,
                info.num_imported_tables as usize,
                info.num_imported_memories as usize,
                info.num_imported_globals as usize,
                info.num_imported_tags as usize
            ),
            "imports do not match the module"
        );
        let id = self.instances.next_id();
        let epoch: *const std::sync::atomic::AtomicU64 = self.epoch.counter();
        let store_ctx: *mut VMStoreContext = &mut *self.ctx;
        // SAFETY: the store context is boxed and outlives the instance (both
        // are owned by this store, instances dropped first); every imported
        // pointer comes from an object this store owns (checked indices) or
        // a shared memory kept alive by the instance (`vm_imports.shared`);
        // the epoch counter is the engine's, kept alive by `self.epoch`.
        let handle = unsafe { Instance::new(id, module, allocator, store_ctx, epoch, &vm_imports)? };
        let first_defined_memory = self.memories.len();
        mem_ids.extend(
            (0..info.num_defined_memories() as usize).map(|d| MemoryId::from_position(first_defined_memory + d)),
        );
        for d in info.defined_tables() {
            table_ids.push(self.tables.push(TableEntry::Instance(id, info.table_index(d).as_u32())));
        }
        for d in info.defined_globals() {
            let g = info.global_index(d);
            let storage = handle.global_storage(g);
            let ty = info.globals[g.index()].canonical(&module.type_ids);
            global_ids.push(self.globals.push(GlobalEntry { ty, storage }));
        }
        for d in info.defined_tags() {
            let t = info.tag_index(d);
            let ty = Arc::new(info.func_type_at(info.tags[t.index()]).map_heap(&|h| h.canonical(&module.type_ids)));
            tag_ids.push(self.tags.push(TagEntry { ty, def: handle.tag_ptr(t), _owned: None }));
        }
        self.instances.push(InstanceEntry {
            handle,
            funcs: func_ids,
            memories: mem_ids,
            tables: table_ids,
            globals: global_ids,
            tags: tag_ids,
        });
        for d in info.defined_memories() {
            self.push_memory(MemoryEntry::Instance(id, info.memory_index(d).as_u32()));
        }
        Ok(id)
    }

    /// Runs instance `i`'s initializers (globals, tables, segments); returns
    /// whether they wrote into a memory (as opposed to leaving everything
    /// to memory images), also on failure.
    ///
    /// # Errors
    ///
    /// A segment does not fit (see `Instance::initialize`).
    ///
    /// # Panics
    ///
    /// `i` is not an instance of this store.
    pub fn initialize(&mut self, i: InstanceId) -> (Result<(), InstantiationError>, bool) {
        let h = &mut self.instances[i].handle;
        let r = h.initialize();
        (r, h.wrote_memories())
    }

    /// The store memory index of memory `m` of instance `i`.
    ///
    /// # Panics
    ///
    /// Either index is out of bounds.
    pub fn instance_memory(&self, i: InstanceId, m: MemoryIndex) -> MemoryId {
        self.instances[i].memories[m.index()]
    }

    /// Memory `m` of instance `i` if it is shared.
    ///
    /// # Panics
    ///
    /// `i` is not an instance of this store.
    pub fn instance_shared_memory(&self, i: InstanceId, m: MemoryIndex) -> Option<Arc<Memory>> {
        self.instances[i].handle.shared_memory(m.as_u32())
    }

    /// The store table index of table `t` of instance `i`.
    ///
    /// # Panics
    ///
    /// Either index is out of bounds.
    pub fn instance_table(&self, i: InstanceId, t: TableIndex) -> TableId {
        self.instances[i].tables[t.index()]
    }

    /// The store global index of global `g` of instance `i`.
    ///
    /// # Panics
    ///
    /// Either index is out of bounds.
    pub fn instance_global(&self, i: InstanceId, g: GlobalIndex) -> GlobalId {
        self.instances[i].globals[g.index()]
    }

    /// The store tag of tag `t` of instance `i`.
    ///
    /// # Panics
    ///
    /// Either index is out of bounds.
    pub fn instance_tag(&self, i: InstanceId, t: TagIndex) -> TagId {
        self.instances[i].tags[t.index()]
    }

    /// Creates a tag of type `ty` (in engine form, of engine type id
    /// `type_id`) for the host.
    pub fn new_host_tag(&mut self, ty: Arc<FuncType>, type_id: u32) -> TagId {
        let owned = Box::new(VMTagDefinition::new(type_id));
        let def = NonNull::from(&*owned);
        self.tags.push(TagEntry { ty, def, _owned: Some(owned) })
    }

    /// The type of tag `t`.
    ///
    /// # Panics
    ///
    /// `t` is out of bounds.
    pub fn tag_ty(&self, t: TagId) -> &Arc<FuncType> {
        &self.tags[t].ty
    }

    /// The store function index of function `f` of instance `i`, created on
    /// first use.
    ///
    /// # Errors
    ///
    /// The function cannot be called from the host (no entry trampoline).
    ///
    /// # Panics
    ///
    /// `i` is not an instance of this store or `f` not a function of it.
    pub fn instance_func(&mut self, i: InstanceId, f: FuncIndex) -> Result<FuncId, String> {
        if let Some(&index) = self.instances[i].funcs.get(&f) {
            return Ok(index);
        }
        let func_ref = self.instances[i].handle.func_ref(f);
        let index = match self.funcs_by_ref.get(&(func_ref as usize)) {
            Some(&index) => index,
            None => self.push_wasm_func(func_ref)?,
        };
        self.instances[i].funcs.insert(f, index);
        Ok(index)
    }

    /// Adds the function entry of a wasm function record of this store.
    fn push_wasm_func(&mut self, func_ref: *const VMFuncRef) -> Result<FuncId, String> {
        let (owner, func) = self.wasm_owner(func_ref as usize).ok_or("not a function of this store")?;
        let module = self.instances[owner].handle.module().clone();
        let info = module.module();
        let ty = info.func_type(func).canonical(&module.type_ids);
        let trampoline = module
            .entry_trampoline(info.func_type_index(func))
            .ok_or(format!("function {func} cannot be called from the host"))?;
        let func_ref = NonNull::new(func_ref.cast_mut()).ok_or("null function reference")?;
        Ok(self.push_func(FuncEntry {
            func_ref,
            ty: Arc::new(ty),
            kind: FuncKind::Wasm(trampoline),
            ref_params: false,
            reg_shape: None,
        }))
    }

    fn push_func(&mut self, mut entry: FuncEntry) -> FuncId {
        entry.ref_params = entry.ty.params().iter().any(|t| t.is_ref());
        entry.reg_shape = super::invoke::func_reg_shape(&entry.ty);
        let raw = entry.func_ref.as_ptr() as usize;
        let id = self.funcs.push(entry);
        self.funcs_by_ref.insert(raw, id);
        id
    }

    /// The instance and module function index of `raw` if it is the record
    /// of a defined function of an instance of this store (checked against
    /// each instance's record array, so any address is safe to ask about).
    fn wasm_owner(&self, raw: usize) -> Option<(InstanceId, FuncIndex)> {
        self.instances.iter().find_map(|(i, e)| e.handle.func_of_record(raw).map(|f| (i, f)))
    }

    /// Marks every instance's memories and tables as left unwritten, so
    /// that dropping the store returns them without a reset (see
    /// `Instance::forget_unwritten_contents` for when that is right).
    pub fn forget_unwritten_contents(&mut self) {
        for e in self.instances.values_mut() {
            e.handle.forget_unwritten_contents();
        }
    }

    // ---- memories ----

    /// Adds a memory the store's wasm can now access, and lists its
    /// reservation for the trap handler (the one way entries are added, so
    /// every memory is listed).
    fn push_memory(&mut self, entry: MemoryEntry) -> MemoryId {
        let i = self.memories.push(entry);
        let reservation = self.memory(i).reservation();
        self.ctx.memory_reservations.push(reservation);
        i
    }

    /// Creates a memory of type `ty` for the host.
    ///
    /// # Errors
    ///
    /// As `Memory::new_host`.
    pub fn new_host_memory(
        &mut self,
        ty: kiln_environ::MemoryType,
        tunables: &kiln_environ::Tunables,
        allocator: &Allocator,
    ) -> Result<MemoryId, MemoryError> {
        let m = Memory::new_host(ty, tunables, Some(allocator))?;
        Ok(self.push_memory(MemoryEntry::Host(Box::new(m))))
    }

    /// Number of memories.
    pub fn memory_count(&self) -> usize {
        self.memories.len()
    }

    /// Memory `i`.
    ///
    /// # Panics
    ///
    /// `i` is out of bounds.
    pub fn memory(&self, i: MemoryId) -> &Memory {
        match &self.memories[i] {
            MemoryEntry::Host(m) => m,
            MemoryEntry::Instance(inst, index) => self.instances[*inst].handle.memory(*index),
            MemoryEntry::Shared(m) => m,
        }
    }

    /// Memory `i`, mutably.
    ///
    /// # Panics
    ///
    /// `i` is out of bounds or a shared memory (those are only used through
    /// shared references).
    pub fn memory_mut(&mut self, i: MemoryId) -> &mut Memory {
        match &mut self.memories[i] {
            MemoryEntry::Host(m) => m,
            MemoryEntry::Instance(inst, index) => self.instances[*inst].handle.memory_mut(*index),
            MemoryEntry::Shared(_) => panic!("shared memories have no exclusive access"),
        }
    }

    fn memory_ptr(&mut self, i: MemoryId) -> NonNull<Memory> {
        match &mut self.memories[i] {
            MemoryEntry::Host(m) => NonNull::from(&mut **m),
            MemoryEntry::Instance(inst, index) => self.instances[*inst].handle.memory_ptr(*index),
            MemoryEntry::Shared(m) => NonNull::from(&**m),
        }
    }

    // ---- tables ----

    /// Creates a table of type `ty` for the host, every element reading as
    /// `init`.
    ///
    /// # Errors
    ///
    /// As `Table::new`; or `init` is not a reference of this store of the
    /// table's type.
    pub fn new_host_table(&mut self, ty: TableType, init: usize, allocator: &Allocator) -> Result<TableId, String> {
        if !self.holds_value(WasmValType::Ref(ty.element), ValRaw::ptr(init)) {
            return Err("table initial value is not a reference of this store".into());
        }
        let t = Table::new_host(ty, init, allocator)?;
        Ok(self.tables.push(TableEntry::Host(Box::new(t))))
    }

    /// Number of tables.
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }

    /// Table `i`.
    ///
    /// # Panics
    ///
    /// `i` is out of bounds.
    pub fn table(&self, i: TableId) -> &Table {
        match &self.tables[i] {
            TableEntry::Host(t) => t,
            TableEntry::Instance(inst, index) => self.instances[*inst].handle.table(*index),
        }
    }

    pub(in crate::vm) fn table_mut(&mut self, i: TableId) -> &mut Table {
        match &mut self.tables[i] {
            TableEntry::Host(t) => t,
            TableEntry::Instance(inst, index) => self.instances[*inst].handle.table_mut(*index),
        }
    }

    fn table_ptr(&mut self, i: TableId) -> NonNull<Table> {
        match &mut self.tables[i] {
            TableEntry::Host(t) => NonNull::from(&mut **t),
            TableEntry::Instance(inst, index) => self.instances[*inst].handle.table_ptr(*index),
        }
    }

    /// Element `elem` of table `i` (the raw reference, 0 for null),
    /// computing an untouched element first; `None` if out of bounds.
    ///
    /// # Panics
    ///
    /// `i` is out of bounds.
    pub fn table_get(&mut self, i: TableId, elem: u64) -> Option<usize> {
        self.table_mut(i).get(elem)
    }

    /// Sets element `elem` of table `i` to reference `v`; `Ok(false)` if
    /// out of bounds.
    ///
    /// # Errors
    ///
    /// `v` is not a reference of this store of the table's type.
    ///
    /// # Panics
    ///
    /// `i` is out of bounds.
    pub fn table_set(&mut self, i: TableId, elem: u64, v: usize) -> Result<bool, String> {
        self.check_table_value(i, v)?;
        Ok(self.table_mut(i).set(elem, v))
    }

    /// Grows table `i` by `delta` elements of value `v`; returns the old
    /// size, or `None` if it cannot grow that far.
    ///
    /// # Errors
    ///
    /// As [`VmStore::table_set`].
    ///
    /// # Panics
    ///
    /// `i` is out of bounds.
    pub fn table_grow(&mut self, i: TableId, delta: u64, v: usize) -> Result<Option<u64>, String> {
        self.check_table_value(i, v)?;
        Ok(self.table_mut(i).grow(delta, v))
    }

    fn check_table_value(&self, i: TableId, v: usize) -> Result<(), String> {
        if self.holds_value(WasmValType::Ref(self.table(i).ty().element), ValRaw::ptr(v)) {
            Ok(())
        } else {
            Err("value is not a reference of this store of the table's type".into())
        }
    }

    // ---- globals ----

    /// Creates a global of type `ty` holding `init`.
    ///
    /// # Errors
    ///
    /// A reference-typed `init` is not a reference of this store of that
    /// type.
    pub fn new_host_global(&mut self, ty: GlobalType, init: ValRaw) -> Result<GlobalId, String> {
        self.check_value(ty.content, init)?;
        Ok(self.globals.push(GlobalEntry { ty, storage: GlobalStorage::new(init) }))
    }

    /// The type of global `i`.
    ///
    /// # Panics
    ///
    /// `i` is out of bounds.
    pub fn global_ty(&self, i: GlobalId) -> GlobalType {
        self.globals[i].ty
    }

    /// The value of global `i`.
    ///
    /// # Panics
    ///
    /// `i` is out of bounds.
    pub fn global_get(&self, i: GlobalId) -> ValRaw {
        self.globals[i].storage.get()
    }

    /// Sets global `i` (the caller checked mutability and type).
    ///
    /// # Errors
    ///
    /// A reference-typed `v` is not a reference of this store of that type.
    ///
    /// # Panics
    ///
    /// `i` is out of bounds.
    pub fn global_set(&mut self, i: GlobalId, v: ValRaw) -> Result<(), String> {
        self.check_value(self.globals[i].ty.content, v)?;
        self.globals[i].storage.set(v);
        Ok(())
    }

    // ---- functions ----

    /// Adds host function `func` of type `ty`, called from wasm through
    /// `trampoline` (the engine's for engine type `type_id`); returns its
    /// store function index. `S` is the generic store this `VmStore` belongs to.
    pub fn new_host_func<S: VMStore + 'static>(
        &mut self,
        func: Arc<HostFn<S>>,
        ty: Arc<FuncType>,
        type_id: u32,
        trampoline: HostTrampoline,
    ) -> FuncId {
        let ctx = VMHostFuncContext::<S>::new(func, ty.clone(), type_id, trampoline);
        let func_ref = ctx.func_ref();
        let host = self.host_funcs.len();
        self.host_funcs.push(ctx);
        self.push_func(FuncEntry { func_ref, ty, kind: FuncKind::Host(host), ref_params: false, reg_shape: None })
    }

    /// Reserves room for `n` more host functions.
    pub fn reserve_host_funcs(&mut self, n: usize) {
        self.funcs.reserve(n);
        self.host_funcs.reserve(n);
        self.funcs_by_ref.reserve(n);
    }

    /// The type of function `i`.
    ///
    /// # Panics
    ///
    /// `i` is out of bounds.
    pub fn func_ty(&self, i: FuncId) -> &Arc<FuncType> {
        &self.funcs[i].ty
    }

    /// Whether function `i` is wasm or host, and which host function.
    ///
    /// # Panics
    ///
    /// `i` is out of bounds.
    pub fn func_owner(&self, i: FuncId) -> FuncOwner {
        match self.funcs[i].kind {
            FuncKind::Wasm(_) => FuncOwner::Wasm,
            FuncKind::Host(h) => FuncOwner::Host(h),
        }
    }

    /// The closure of host function context `h`, if it belongs to a store
    /// of type `S`.
    pub fn host_func<S: 'static>(&self, h: usize) -> Option<&Arc<HostFn<S>>> {
        self.host_funcs.get(h)?.downcast_ref::<VMHostFuncContext<S>>().map(|c| c.func())
    }

    /// The raw reference wasm sees for function `i`.
    ///
    /// # Panics
    ///
    /// `i` is out of bounds.
    pub fn func_raw(&self, i: FuncId) -> usize {
        self.funcs[i].func_ref.as_ptr() as usize
    }

    /// The engine type id of function `i`'s type.
    pub fn func_type_id(&self, i: FuncId) -> u32 {
        // SAFETY: function records live as long as the store (in instance
        // VMContexts or host function contexts it owns) and are written
        // before the function is registered.
        unsafe { self.funcs[i].func_ref.as_ref().type_id }
    }

    /// The engine type id of tag `t`'s type.
    pub fn tag_type_id(&self, t: TagId) -> u32 {
        // SAFETY: tag definitions live as long as the store (inline in
        // instance VMContexts it owns, or boxed in its tag entries).
        unsafe { self.tags[t].def.as_ref().type_id }
    }

    /// The store function index of raw function reference `raw` (which
    /// came out of wasm or a table of this store); `None` for null or for
    /// anything that is not a function of this store.
    pub fn func_from_raw(&mut self, raw: usize) -> Option<FuncId> {
        if raw == 0 {
            return None;
        }
        if let Some(&i) = self.funcs_by_ref.get(&raw) {
            return Some(i);
        }
        let (owner, f) = self.wasm_owner(raw)?;
        self.instance_func(owner, f).ok()
    }

    /// The engine type id of function record `raw` if it is one of this
    /// store's (a host function's or a wasm function's of one of its
    /// instances; checked, so any address is safe to ask about).
    fn func_record_type(&self, raw: usize) -> Option<u32> {
        let known = self.funcs_by_ref.contains_key(&raw) || self.wasm_owner(raw).is_some();
        // SAFETY: `raw` is the address of a live function record of this
        // store (just checked against the store's own records).
        known.then(|| unsafe { (*(raw as *const VMFuncRef)).type_id })
    }

    /// Whether `v` is a valid value of type `ty` (in engine form) for this
    /// store: anything for a numeric type; for a reference type, null if
    /// the type is nullable, a rooted externref for `extern`, a function
    /// record of this store for `func`, and one of exactly the named
    /// signature for a typed function reference (compiled code calls those
    /// without a signature check).
    pub fn holds_value(&self, ty: WasmValType, v: ValRaw) -> bool {
        let WasmValType::Ref(r) = ty else { return true };
        let raw = v.get_ptr();
        if raw == 0 {
            return r.nullable;
        }
        match r.heap {
            WasmHeapType::Extern => self.holds_externref(raw),
            WasmHeapType::Exn => self.exns.contains(raw),
            // Unboxed i31 values, and this store's objects.
            WasmHeapType::Any => kiln_environ::gc_ref::is_i31(raw as u64) || self.gc_header(raw as u64).is_some(),
            // Extern boxes are not `eq`.
            WasmHeapType::Eq => {
                kiln_environ::gc_ref::is_i31(raw as u64)
                    || self.gc_header(raw as u64).is_some_and(|(_, w)| w & KIND_MASK != KIND_EXTERN_BOX)
            }
            WasmHeapType::I31 => kiln_environ::gc_ref::is_i31(raw as u64),
            WasmHeapType::Struct | WasmHeapType::Array => {
                let kind = if r.heap == WasmHeapType::Struct { KIND_STRUCT } else { KIND_ARRAY };
                self.gc_header(raw as u64).is_some_and(|(_, w)| w & KIND_MASK == kind)
            }
            // Bottom types hold only null.
            WasmHeapType::NoExn | WasmHeapType::NoFunc | WasmHeapType::NoExtern | WasmHeapType::None => false,
            WasmHeapType::Func => self.func_record_type(raw).is_some(),
            WasmHeapType::EngineFunc(id) => self.func_record_type(raw).is_some_and(|t| self.types.is_subtype(t, id)),
            WasmHeapType::EngineStruct(id) | WasmHeapType::EngineArray(id) => {
                self.gc_header(raw as u64).is_some_and(|(t, _)| self.types.is_subtype(t, id))
            }
            // Runtime objects only ever carry engine-form types.
            WasmHeapType::ConcreteFunc(_)
            | WasmHeapType::ConcreteStruct(_)
            | WasmHeapType::ConcreteArray(_)
            | WasmHeapType::RecLocal(_) => false,
        }
    }

    fn check_value(&self, ty: WasmValType, v: ValRaw) -> Result<(), String> {
        if self.holds_value(ty, v) {
            Ok(())
        } else {
            Err(format!("value of type {ty:?} is not a reference of this store"))
        }
    }

    // ---- exception objects ----

    /// The store's exception objects.
    pub fn exns(&self) -> &ExnHeap {
        &self.exns
    }

    /// The store's exception objects, mutably.
    pub fn exns_mut(&mut self) -> &mut ExnHeap {
        &mut self.exns
    }

    /// Creates an exception of tag `tag` with payload `values` (checked
    /// against the tag's type); returns its `exnref`. May first collect
    /// unreachable exception objects (see `exn.rs`).
    ///
    /// # Errors
    ///
    /// The payload does not match the tag's type, or holds references
    /// that are not of this store.
    pub fn new_exn(&mut self, tag: TagId, values: Box<[ValRaw]>) -> Result<usize, String> {
        let entry = &self.tags[tag];
        let (def, ty) = (entry.def, entry.ty.clone());
        if values.len() != ty.params().len() {
            return Err(format!("the tag's payload has {} values, {} given", ty.params().len(), values.len()));
        }
        let mut externrefs = Vec::new();
        for (t, v) in ty.params().iter().zip(values.iter()) {
            self.check_value(*t, *v)?;
            if let WasmValType::Ref(r) = t
                && r.heap == WasmHeapType::Extern
                && let Some(e) = self.externref_from_raw(v.get_ptr())
            {
                externrefs.push(e);
            }
        }
        if self.exns.wants_collection() {
            self.collect_exns();
        }
        Ok(self.exns.alloc(VMExn::new(def, tag, ty, values, externrefs)))
    }

    /// Frees the exception objects nothing reaches any more: not the
    /// pending exception, not held by the host, not in a table, a global or
    /// a live object's payload, and (while wasm runs) not on this thread's
    /// stack.
    pub fn collect_exns(&mut self) {
        let mut roots: Vec<usize> = Vec::new();
        for (i, _) in self.tables.iter() {
            let table = self.table(i);
            if table.ty().element.is_exn() {
                roots.extend(table.reference_elements().iter().copied().filter(|v| *v != 0));
            }
        }
        for g in self.globals.values() {
            if matches!(g.ty.content, WasmValType::Ref(r) if r.is_exn()) {
                roots.push(g.storage.get().get_ptr());
            }
        }
        self.gc_heap_words(kiln_environ::gc_layout::RefKind::Exn, &mut |w| roots.push(w as usize));
        if self.wasm_active() {
            let exns = &self.exns;
            super::stack_scan::scan_stack(|w| {
                if exns.contains(w) {
                    roots.push(w);
                }
            });
        }
        self.exns.collect(roots);
    }

    // ---- externrefs ----

    /// Roots `r` in this store and returns its raw form for wasm.
    pub fn root_externref(&mut self, r: &Arc<ExternData>) -> usize {
        let raw = externref_to_raw(r);
        self.externrefs.live.entry(raw).or_insert_with(|| r.clone());
        raw
    }

    /// The externref behind raw value `raw` (which came out of wasm, a
    /// table or a global of this store); `None` for null or for anything
    /// this store does not hold.
    pub fn externref_from_raw(&self, raw: usize) -> Option<Arc<ExternData>> {
        self.externrefs.live.get(&raw).cloned().or_else(|| self.gc_heap.as_ref()?.boxed_extern(raw))
    }

    /// Whether externref word `raw` is a host value this store holds, or an
    /// externalized GC reference to an i31 or one of its objects.
    fn holds_externref(&self, raw: usize) -> bool {
        if kiln_environ::gc_ref::is_externalized(raw as u64) {
            let r = kiln_environ::gc_ref::internalize(raw as u64);
            return kiln_environ::gc_ref::is_i31(r) || self.gc_header(r).is_some();
        }
        self.externref_from_raw(raw).is_some()
    }

    /// Collects externrefs if wasm is idle and the root set doubled.
    #[inline]
    pub fn maybe_collect_externrefs(&mut self) {
        let r = &self.externrefs;
        if r.live.len() >= 1024 && r.live.len() >= 2 * r.last_live && !self.wasm_active() {
            self.collect_externrefs();
        }
    }

    /// Drops the store's references to externrefs that are no longer
    /// reachable from its tables and globals or held by the host.
    pub fn collect_externrefs(&mut self) {
        if self.wasm_active() {
            return;
        }
        let mut reachable: HashSet<usize> = HashSet::new();
        for (i, _) in self.tables.iter() {
            reachable.extend(self.table(i).reference_elements().iter().copied().filter(|v| *v != 0));
        }
        for g in self.globals.values() {
            if g.ty.content == WasmValType::EXTERNREF {
                let v = g.storage.get().get_ptr();
                if v != 0 {
                    reachable.insert(v);
                }
            }
        }
        // Payloads of exception objects (which keep their own references),
        // and fields of GC objects.
        reachable.extend(self.exns.externrefs());
        self.gc_heap_words(kiln_environ::gc_layout::RefKind::Extern, &mut |w| {
            reachable.insert(w as usize);
        });
        let roots = &mut self.externrefs;
        roots.live.retain(|raw, _| reachable.contains(raw));
        roots.last_live = roots.live.len();
    }
}

/// A wasm function of one store, resolved once for repeated calls (what
/// a typed function keeps): calling it checks only that it is called on
/// its own store and with enough value slots.
#[derive(Clone, Copy, Debug)]
pub struct CallTarget {
    store: u64,
    func: FuncId,
    func_ref: SendSyncPtr<VMFuncRef>,
    trampoline: EntryTrampoline,
    slots: usize,
    ref_params: bool,
    reg_shape: Option<u64>,
}

impl CallTarget {
    /// The register shape of the function's signature
    /// (`invoke::reg_shape`): `Some` when [`invoke_regs`] can call it.
    pub fn reg_shape(&self) -> Option<u64> {
        self.reg_shape
    }
}

/// Calls wasm function `func` of `store`'s [`VmStore`] with arguments in
/// `values`, results written back into it.
///
/// # Errors
///
/// The trap (or host error, or panic) that ended the call.
///
/// # Panics
///
/// `func` is not a wasm function of the store, or as [`invoke_target`].
#[inline]
pub fn invoke<S: VMStore>(store: &mut S, func: FuncId, values: &mut [ValRaw]) -> Result<(), Box<TrapRecord>> {
    let target = store.vm_store().call_target(func).expect("invoke of a host function");
    invoke_target(store, &target, values)
}

/// Calls `target` with arguments in `values`, results written back into
/// it.
///
/// # Errors
///
/// The trap (or host error, or panic) that ended the call.
///
/// # Panics
///
/// `target` belongs to another store, `values` has fewer than
/// [`CallTarget::slots`] slots, or a reference argument is not a reference
/// of the store (the API layer checks all three first).
#[inline]
pub fn invoke_target<S: VMStore>(
    store: &mut S,
    target: &CallTarget,
    values: &mut [ValRaw],
) -> Result<(), Box<TrapRecord>> {
    let vm = store.vm_store();
    assert!(target.store == vm.id, "call target of another store");
    assert!(values.len() >= target.slots, "too few value slots");
    if target.ref_params {
        let ty = &vm.funcs[target.func].ty;
        for (i, (p, v)) in ty.params().iter().zip(values.iter()).enumerate() {
            if !vm.holds_value(*p, *v) {
                let e = anyhow::anyhow!("argument {i} is not a value of type {p} of this store");
                return Err(Box::new(TrapRecord { reason: TrapReason::Host(e), pcs: vec![] }));
            }
        }
    }
    let store_ctx = vm.context_ptr();
    let max_wasm_stack = vm.max_wasm_stack;
    let store: *mut S = store;
    // SAFETY: `target` was made by `call_target` of this very store (ids
    // are never reused), so its record is that of a live wasm function
    // (function entries and instances live as long as the store) whose
    // callee context is an instance VMContext, and its trampoline is the
    // entry trampoline of the function's signature; `values` has a slot
    // for every parameter and result (checked) holding arguments this
    // store produced (reference ones checked); `store` and its context are
    // exclusively borrowed for the whole call.
    let r = unsafe {
        let fr = target.func_ref.as_non_null().as_ref();
        debug_assert!(VMOpaqueContext::as_vmctx(fr.vmctx).is_some(), "callee is an instance");
        let callee = NonNull::new_unchecked(fr.vmctx.cast::<VMContext>());
        enter_wasm(store, store_ctx, max_wasm_stack, target.trampoline, callee, values.as_mut_ptr(), fr.wasm_call)
    };
    // SAFETY: the call is over; `store` is the caller's exclusive borrow.
    unsafe { (*store).vm_store().maybe_collect_externrefs() };
    r
}

/// Calls `target` with its arguments `args` in registers, returning its
/// results in registers (`traphandlers::enter_wasm_regs`): what a typed
/// call of a signature with a register shape does. `FLOATS` says whether
/// float registers carry any argument or result. Which register holds
/// which value follows from the shape, which the caller compares with its
/// own: registers of another shape just hold other bits.
///
/// # Errors
///
/// The trap (or host error, or panic) that ended the call.
///
/// # Panics
///
/// `target` belongs to another store or has no register shape.
#[inline(always)]
pub fn invoke_regs<S: VMStore, const FLOATS: bool>(
    store: &mut S,
    target: &CallTarget,
    args: &RegArgs,
) -> Result<RegResults, Box<TrapRecord>> {
    let vm = store.vm_store();
    assert!(target.store == vm.id, "call target of another store");
    assert!(target.reg_shape.is_some(), "call target without a register shape");
    let store_ctx = vm.context_ptr();
    let max_wasm_stack = vm.max_wasm_stack;
    let store: *mut S = store;
    // SAFETY: as in `invoke_target`, `target` is a live wasm function of
    // this store whose callee context is an instance's; its signature has
    // a register shape (checked), so it takes every parameter and returns
    // every result in registers, and none is a reference (no argument to
    // check); `store` and its context are exclusively borrowed for the
    // whole call.
    let r = unsafe {
        let fr = target.func_ref.as_non_null().as_ref();
        debug_assert!(VMOpaqueContext::as_vmctx(fr.vmctx).is_some(), "callee is an instance");
        let callee = NonNull::new_unchecked(fr.vmctx.cast::<VMContext>());
        enter_wasm_regs::<FLOATS>(store, store_ctx, max_wasm_stack, callee, fr.wasm_call, args)
    };
    // SAFETY: the call is over; `store` is the caller's exclusive borrow.
    unsafe { (*store).vm_store().maybe_collect_externrefs() };
    r
}

/// A process-unique store id. Threads reserve ids in blocks, so that
/// threads creating stores side by side do not all write one counter.
fn next_store_id() -> u64 {
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
        next
    })
}
