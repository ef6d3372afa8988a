//! Instances: the VMContext allocation and everything it points to, plus
//! instantiation-time initialization (globals, element and data segments).

use super::memory::{Memory, MemoryError};
use super::module_runtime::ModuleRuntime;
use super::store_ids::InstanceId;
use super::table::Table;
use super::vmcontext::*;
use kiln_environ::vmoffsets::{VMCTX_MAGIC, func_import, vmctx_header};
use kiln_environ::*;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// The resolved imports of one instantiation, in the module's import order
/// per kind.
#[derive(Default)]
pub struct Imports {
    /// Function references of imported functions.
    pub funcs: Vec<*const VMFuncRef>,
    /// Imported tables.
    pub tables: Vec<NonNull<Table>>,
    /// Imported memories.
    pub memories: Vec<NonNull<Memory>>,
    /// Imported globals' storage.
    pub globals: Vec<NonNull<VMGlobalDefinition>>,
    /// Imported tags' definitions.
    pub tags: Vec<NonNull<VMTagDefinition>>,
    /// Shared memories among `memories`, kept alive by the instance.
    pub shared: Vec<Arc<Memory>>,
}

/// Why instantiation failed before running any wasm.
#[derive(Debug)]
pub enum InstantiationError {
    /// A memory could not be created.
    Memory(MemoryError),
    /// A table could not be created.
    Table(String),
    /// The allocator has no room for the instance.
    Allocator(std::io::Error),
    /// A segment initializer trapped (2.0 semantics: earlier writes stay).
    Trap(TrapCode),
    /// A segment does not fit (1.0 semantics, without bulk memory: checked
    /// before anything is written, and reported as a link error).
    SegmentDoesNotFit(&'static str),
}

impl std::fmt::Display for InstantiationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstantiationError::Memory(e) => write!(f, "cannot create memory: {e}"),
            InstantiationError::Table(e) => write!(f, "cannot create table: {e}"),
            InstantiationError::Allocator(e) => write!(f, "cannot allocate instance: {e}"),
            InstantiationError::Trap(c) => write!(f, "{c}"),
            InstantiationError::SegmentDoesNotFit(what) => write!(f, "{what} segment does not fit"),
        }
    }
}

impl std::error::Error for InstantiationError {}

/// A module instance inside a store.
pub struct Instance {
    id: InstanceId,
    module: Arc<ModuleRuntime>,
    vmctx: NonNull<VMContext>,
    /// The VMContext's memory, returned to `vmctx_pool` on drop.
    vmctx_region: Option<super::pool::Region>,
    vmctx_pool: Arc<super::pool::RegionPool>,
    memories: Vec<NonNull<Memory>>,
    tables: Vec<NonNull<Table>>,
    // Boxed so that the pointers in `memories`/`tables` stay valid as the
    // vectors grow.
    #[allow(clippy::vec_box)]
    owned_memories: Vec<Box<Memory>>,
    /// Shared memories this instance defines or imports (kept alive here).
    shared_memories: Vec<Arc<Memory>>,
    #[allow(clippy::vec_box)]
    owned_tables: Vec<Box<Table>>,
    dropped_data: Vec<bool>,
    dropped_elems: Vec<bool>,
    /// The items of passive element segments whose expressions allocate
    /// GC objects, evaluated once at instantiation (segment index, items).
    evaluated_elems: Vec<(u32, Box<[ValRaw]>)>,
    /// Whether a constant expression failed to allocate a GC object (the
    /// heap is full): instantiation fails before the null it gave is
    /// stored.
    alloc_failed: bool,
    /// Whether `initialize` wrote into a memory (eager data segments), as
    /// opposed to leaving everything to memory images. (Tables keep track
    /// of their own writes, see `Table::forget_writes`.)
    wrote_memories: bool,
}

// SAFETY: all raw pointers point into allocations owned by this instance or
// by other objects of the same store, and the store serializes access.
unsafe impl Send for Instance {}
// SAFETY: `&Instance` gives reads of fields fixed at instantiation and of
// objects the store serializes access to; nothing is mutated through it.
unsafe impl Sync for Instance {}

/// Makes the `VMFuncRef`s of one instance: everything it needs (the
/// module, the VMContext address) is fixed at instantiation, so it works
/// without borrowing the `Instance` (the records live in the VMContext
/// allocation, not in the `Instance` struct).
///
/// It points at the module rather than holding a reference count on it:
/// makers are only held by the instance's own tables, which the instance
/// drops before its `Arc` of the module, so the module outlives them; and
/// instantiating on many threads then does not write the module's shared
/// count once per lazy table (see "Instantiating from many threads" in
/// docs/ARCHITECTURE.md).
pub struct FuncRefMaker {
    module: NonNull<ModuleRuntime>,
    vmctx: NonNull<VMContext>,
}

// SAFETY: the VMContext and the module outlive every table that holds a
// maker (see above), and the store serializes access.
unsafe impl Send for FuncRefMaker {}
// SAFETY: a maker's fields never change; its users (tables) write function
// records only under the owning store's `&mut` borrow.
unsafe impl Sync for FuncRefMaker {}

impl FuncRefMaker {
    fn module(&self) -> &ModuleRuntime {
        // SAFETY: the module outlives this maker (see the type's docs).
        unsafe { self.module.as_ref() }
    }

    /// The function index that element `i` of lazily initialized table
    /// `table` starts out referencing (`None` for null or past the end of
    /// the initializers).
    pub fn initial_element(&self, table: TableIndex, i: usize) -> Option<FuncIndex> {
        let inits = &self.module().module().lazy_table(table)?.inits;
        if i >= inits.len() / 4 {
            return None;
        }
        Some(inits.u32_at(i)).filter(|f| *f != u32::MAX).map(FuncIndex::from_u32)
    }

    /// Number of elements of lazily initialized table `table` that its
    /// initializers cover (0 if it has none).
    pub fn initial_len(&self, table: TableIndex) -> usize {
        self.module().module().lazy_table(table).map_or(0, |l| l.len() as usize)
    }

    /// The record of function `f`, written first if `f` is defined.
    pub fn func_ref(&self, f: FuncIndex) -> *const VMFuncRef {
        let module = self.module();
        let info = module.module();
        let offsets = &module.offsets;
        let Some(defined) = info.defined_func_index(f) else {
            // SAFETY: the imported-function slot's `func_ref` field lies
            // inside the VMContext and was written at instantiation from a
            // valid reference.
            return unsafe {
                *VMContext::field::<*const VMFuncRef>(self.vmctx, offsets.imported_function(f) + func_import::FUNC_REF)
                    .as_ptr()
            };
        };
        let slot = funcref_slot(info, f).expect("validated: referenced functions are declared");
        // SAFETY: the record slot lies inside the VMContext allocation.
        let p = unsafe { VMContext::field::<VMFuncRef>(self.vmctx, offsets.funcref(slot)) };
        let record = VMFuncRef {
            wasm_call: module.func_code(defined),
            vmctx: VMOpaqueContext::from_vmctx(self.vmctx).as_ptr(),
            type_id: module.type_ids[info.func_type_index(f).index()],
        };
        // SAFETY: writing a whole record into its slot; rewriting the same
        // contents is harmless to any reader on this thread.
        unsafe { p.write(record) };
        p.as_ptr()
    }
}

/// The static table of builtin function pointers, see `libcalls`.
use super::libcalls::BUILTINS;

impl Instance {
    /// Allocates and fills the VMContext of a new instance of `module` with
    /// store-wide instance index `id`, inside the store whose context is
    /// `store_ctx`, creating its memories and tables. Globals and segments
    /// are initialized by [`Instance::initialize`].
    ///
    /// # Errors
    ///
    /// [`InstantiationError::Memory`] or [`InstantiationError::Table`] when
    /// a defined memory or table cannot be created.
    ///
    /// # Safety
    ///
    /// `store_ctx` is the store's context and `epoch` the engine's counter,
    /// both outliving the instance; every pointer in `imports` is a live
    /// object of that store (or a shared memory in `imports.shared`) of the
    /// type the module imports, and outlives the instance.
    pub unsafe fn new(
        id: InstanceId,
        module: &Arc<ModuleRuntime>,
        allocator: &super::allocator::Allocator,
        store_ctx: *mut VMStoreContext,
        epoch: *const AtomicU64,
        imports: &Imports,
    ) -> Result<Box<Instance>, InstantiationError> {
        let offsets = &module.offsets;
        let size = offsets.size() as usize;
        let (mut region, vmctx_pool) = allocator.vmctx(size).map_err(InstantiationError::Allocator)?;
        // The function-reference records at the end are left as they are
        // (a reused region may hold stale bytes there): every path that
        // hands a record out writes it first (`func_ref`), so instantiation
        // costs nothing per function. Everything before them is zeroed.
        let records_start = if offsets.num_funcrefs() > 0 { offsets.funcref(0) as usize } else { size };
        region.mark_dirty(size);
        // SAFETY: the region is read-write, at least `size` bytes (the
        // allocator sized it), and `records_start <= size`.
        unsafe { std::ptr::write_bytes(region.ptr(), 0, records_start) };
        let vmctx = NonNull::new(region.ptr()).expect("regions are non-null").cast::<VMContext>();
        let info = module.module();
        let mut inst = Box::new(Instance {
            id,
            vmctx,
            vmctx_region: Some(region),
            vmctx_pool,
            memories: Vec::with_capacity(info.memories.len()),
            tables: Vec::with_capacity(info.tables.len()),
            owned_memories: Vec::new(),
            shared_memories: imports.shared.clone(),
            owned_tables: Vec::new(),
            dropped_data: vec![false; info.data.len()],
            dropped_elems: vec![false; info.elements.len()],
            evaluated_elems: Vec::new(),
            alloc_failed: false,
            wrote_memories: false,
            module: module.clone(),
        });
        let inst_ptr: *mut Instance = &mut *inst;

        // SAFETY: all writes below stay inside the freshly allocated
        // VMContext, at offsets computed by `VMOffsets` for this module.
        unsafe {
            inst.write(vmctx_header::MAGIC, VMCTX_MAGIC);
            inst.write(vmctx_header::STORE_CONTEXT, store_ctx);
            inst.write(vmctx_header::BUILTINS, &raw const BUILTINS);
            inst.write(vmctx_header::TYPE_IDS, module.type_ids.as_ptr());
            inst.write(vmctx_header::EPOCH_PTR, epoch);
            inst.write(vmctx_header::INSTANCE, inst_ptr);
            for (i, f) in imports.funcs.iter().enumerate() {
                let fr = &**f;
                inst.write(
                    offsets.imported_function(FuncIndex::from_u32(i as u32)),
                    VMFunctionImport { wasm_call: fr.wasm_call, vmctx: fr.vmctx, func_ref: *f },
                );
            }
            for (i, t) in imports.tables.iter().enumerate() {
                inst.write(offsets.imported_table(TableIndex::from_u32(i as u32)), t.as_ref().definition().as_ptr());
                inst.tables.push(*t);
            }
            for (i, m) in imports.memories.iter().enumerate() {
                inst.write(offsets.imported_memory(MemoryIndex::from_u32(i as u32)), m.as_ref().definition().as_ptr());
                inst.memories.push(*m);
            }
            for (i, g) in imports.globals.iter().enumerate() {
                inst.write(offsets.imported_global(GlobalIndex::from_u32(i as u32)), g.as_ptr());
            }
            for (i, t) in imports.tags.iter().enumerate() {
                inst.write(offsets.imported_tag(TagIndex::from_u32(i as u32)), t.as_ptr().cast_const());
            }
            for d in info.defined_tags() {
                let ty = info.tags[info.tag_index(d).index()];
                inst.write(offsets.defined_tag(d), VMTagDefinition::new(module.type_ids[ty.index()]));
            }
        }

        for d in info.defined_memories() {
            let index = info.memory_index(d);
            let ty = info.memories[index.index()];
            let def = inst.vmctx_ptr::<VMMemoryDefinition>(offsets.defined_memory(d));
            if ty.shared {
                // Shared memories live outside the instance (other stores
                // and threads may use them); the slot holds a pointer to the
                // definition. Data segments are applied by `initialize`.
                let m =
                    Arc::new(Memory::new(ty, &module.tunables, None, None, None).map_err(InstantiationError::Memory)?);
                // SAFETY: the defined-memory slot lies inside the VMContext
                // and is at least pointer-sized.
                unsafe { inst.write(offsets.defined_memory(d), m.definition().as_ptr()) };
                inst.memories.push(NonNull::from(&*m));
                inst.shared_memories.push(m);
                continue;
            }
            let image = if module.tunables.memory_init_cow { module.memory_image(d) } else { None };
            if image.is_some() {
                for seg in 0..info.data.len() {
                    if super::memory_image::MemoryImage::covers(info, index, seg) {
                        inst.dropped_data[seg] = true;
                    }
                }
            }
            let mut m = Box::new(
                Memory::new(ty, &module.tunables, image, Some(allocator), Some(def))
                    .map_err(InstantiationError::Memory)?,
            );
            inst.memories.push(NonNull::from(&mut *m));
            inst.owned_memories.push(m);
        }
        for d in info.defined_tables() {
            let index = info.table_index(d);
            let ty = info.tables[index.index()].canonical(&module.type_ids);
            let def = inst.vmctx_ptr::<VMTableDefinition>(offsets.defined_table(d));
            let lazy = info
                .lazy_table(index)
                .filter(|_| module.tunables.table_lazy_init)
                .map(|_| super::table::LazyInit { maker: inst.func_ref_maker(), table: index });
            let mut t = Box::new(Table::new(ty, 0, lazy, allocator, Some(def)).map_err(InstantiationError::Table)?);
            inst.tables.push(NonNull::from(&mut *t));
            inst.owned_tables.push(t);
        }
        for i in 0..offsets.num_data_segments() {
            let bytes = info.data[i as usize].bytes.as_slice();
            let len = if inst.dropped_data[i as usize] { 0 } else { bytes.len() as u64 };
            let at = offsets.data_segment(i);
            // SAFETY: the record lies inside the VMContext (its offsets
            // come from this module's layout); the bytes belong to the
            // module, which the instance keeps alive.
            unsafe {
                inst.write(at + kiln_environ::vmoffsets::data_segment::PTR, bytes.as_ptr());
                inst.write(at + kiln_environ::vmoffsets::data_segment::LEN, len);
            }
        }
        Ok(inst)
    }

    /// Drops data segment `data`: it is empty from now on, for the runtime
    /// and for compiled code (its record's length, if it has one).
    fn drop_data(&mut self, data: u32) {
        self.dropped_data[data as usize] = true;
        if data < self.module.offsets.num_data_segments() {
            let at = self.module.offsets.data_segment(data) + kiln_environ::vmoffsets::data_segment::LEN;
            // SAFETY: the record lies inside the VMContext (its offset
            // comes from this module's layout) and its length is a `u64`.
            unsafe { self.write(at, 0u64) };
        }
    }

    /// Writes `val` at `offset` in the VMContext.
    ///
    /// # Safety
    ///
    /// `offset` must be a field of type `T` in this instance's layout.
    unsafe fn write<T>(&self, offset: u32, val: T) {
        // SAFETY: per the contract, the field is in bounds and suitably aligned.
        unsafe { self.vmctx_ptr::<T>(offset).write(val) }
    }

    /// Pointer to the field at `offset` (a `VMOffsets` offset of this
    /// instance's module) of its VMContext; using it needs the field to be
    /// of type `T`.
    fn vmctx_ptr<T>(&self, offset: u32) -> NonNull<T> {
        debug_assert!(offset < self.module.offsets.size());
        // SAFETY: offsets come from `VMOffsets` and lie inside the allocation.
        unsafe { VMContext::field(self.vmctx, offset) }
    }

    /// The instance's id in its store.
    pub fn id(&self) -> InstanceId {
        self.id
    }

    /// The module this is an instance of.
    pub fn module(&self) -> &Arc<ModuleRuntime> {
        &self.module
    }

    /// Memory `i` (module memory index, imports included).
    pub fn memory(&self, i: u32) -> &Memory {
        // SAFETY: memory pointers point into boxes owned by this instance or
        // by other objects of the same store, which outlive this borrow.
        unsafe { self.memories[i as usize].as_ref() }
    }

    /// Memory `i`, mutably (unshared memories only: a shared memory is
    /// reachable from other threads and is only used through `&Memory`).
    pub fn memory_mut(&mut self, i: u32) -> &mut Memory {
        debug_assert!(!self.memory(i).is_shared());
        // SAFETY: as in `memory`; an unshared memory belongs to this store,
        // which hands out `&mut Instance` only under its exclusive borrow.
        unsafe { self.memories[i as usize].as_mut() }
    }

    /// The shared memory `i`, if memory `i` is shared.
    pub fn shared_memory(&self, i: u32) -> Option<Arc<Memory>> {
        let p = self.memories[i as usize].as_ptr() as *const Memory;
        self.shared_memories.iter().find(|m| Arc::as_ptr(m) == p).cloned()
    }

    /// Pointer to memory `i` (to import it elsewhere).
    pub fn memory_ptr(&self, i: u32) -> NonNull<Memory> {
        self.memories[i as usize]
    }

    /// Table `i` (module table index, imports included).
    pub fn table(&self, i: u32) -> &Table {
        // SAFETY: as in `memory`.
        unsafe { self.tables[i as usize].as_ref() }
    }

    /// Table `i`, mutably.
    pub fn table_mut(&mut self, i: u32) -> &mut Table {
        // SAFETY: as in `memory_mut`.
        unsafe { self.tables[i as usize].as_mut() }
    }

    /// Pointer to table `i` (to import it elsewhere).
    pub fn table_ptr(&self, i: u32) -> NonNull<Table> {
        self.tables[i as usize]
    }

    /// Storage of global `g` (module global index, imports included).
    pub fn global_ptr(&self, g: GlobalIndex) -> NonNull<VMGlobalDefinition> {
        match self.module.module().defined_global_index(g) {
            Some(d) => self.vmctx_ptr(self.module.offsets.defined_global(d)),
            // SAFETY: the imported-global slot was written at instantiation
            // with a valid, store-owned definition pointer.
            None => unsafe {
                NonNull::new_unchecked(
                    *self.vmctx_ptr::<*mut VMGlobalDefinition>(self.module.offsets.imported_global(g)).as_ptr(),
                )
            },
        }
    }

    /// The definition of tag `t` (module tag index, imports included).
    pub fn tag_ptr(&self, t: TagIndex) -> NonNull<VMTagDefinition> {
        match self.module.module().defined_tag_index(t) {
            Some(d) => self.vmctx_ptr(self.module.offsets.defined_tag(d)),
            // SAFETY: the imported-tag slot was written at instantiation with
            // a valid, store-owned definition pointer.
            None => unsafe {
                NonNull::new_unchecked(
                    (*self.vmctx_ptr::<*const VMTagDefinition>(self.module.offsets.imported_tag(t)).as_ptr())
                        .cast_mut(),
                )
            },
        }
    }

    /// Storage handle of global `g` (imported or defined).
    pub fn global_storage(&self, g: GlobalIndex) -> super::global::GlobalStorage {
        // SAFETY: the pointer is this instance's global storage, which lives
        // as long as the instance, and the handle is held by the same store.
        unsafe { super::global::GlobalStorage::of_instance(self.global_ptr(g)) }
    }

    /// The module function index of the defined function whose record is
    /// at address `raw`, if `raw` is one of this instance's function records
    /// and that record has been written (holds exactly what `func_ref`
    /// writes). Any address may be asked about.
    pub fn func_of_record(&self, raw: usize) -> Option<FuncIndex> {
        let offsets = &self.module.offsets;
        let n = offsets.num_funcrefs();
        if n == 0 {
            return None;
        }
        let base = self.vmctx.as_ptr().addr() + offsets.funcref(0) as usize;
        let size = kiln_environ::vmoffsets::func_ref::SIZE as usize;
        let rel = raw.checked_sub(base)?;
        if rel % size != 0 || rel / size >= n as usize {
            return None;
        }
        let slot = (rel / size) as u32;
        let info = self.module.module();
        let f = *info.defined_escaping_funcs().get(slot as usize)?;
        let defined = info.defined_func_index(f)?;
        // SAFETY: record slot `slot` lies inside this instance's VMContext
        // (checked above), at address `raw`, and is readable.
        let record = unsafe { VMContext::field::<VMFuncRef>(self.vmctx, offsets.funcref(slot)).as_ref() };
        let expected_type = self.module.type_ids[info.func_type_index(f).index()];
        (record.vmctx == VMOpaqueContext::from_vmctx(self.vmctx).as_ptr()
            && record.wasm_call == self.module.func_code(defined)
            && record.type_id == expected_type)
            .then_some(f)
    }

    /// The `VMFuncRef` of function `f`, initializing it first if it is a
    /// defined function's record (records are filled on first use).
    pub fn func_ref(&mut self, f: FuncIndex) -> *const VMFuncRef {
        self.func_ref_maker().func_ref(f)
    }

    /// A handle that makes this instance's function references without
    /// borrowing the instance; only for this instance's own tables and for
    /// immediate use (see [`FuncRefMaker`]).
    fn func_ref_maker(&self) -> FuncRefMaker {
        FuncRefMaker { module: NonNull::from(&*self.module), vmctx: self.vmctx }
    }

    /// Evaluates a constant expression in this instance.
    pub fn eval_const(&mut self, expr: &ConstExpr) -> ValRaw {
        // Nearly every initializer is one constant (or `global.get`):
        // no operand stack, so no allocation per global per instance.
        if let [op] = expr.ops.as_slice() {
            return self.eval_const_op(op);
        }
        let mut stack: Vec<ValRaw> = Vec::with_capacity(4);
        for op in &expr.ops {
            let v = match *op {
                ConstOp::I32Add | ConstOp::I32Sub | ConstOp::I32Mul => {
                    let b = stack.pop().map(|v| v.get_i32()).unwrap_or(0);
                    let a = stack.pop().map(|v| v.get_i32()).unwrap_or(0);
                    ValRaw::i32(match op {
                        ConstOp::I32Add => a.wrapping_add(b),
                        ConstOp::I32Sub => a.wrapping_sub(b),
                        _ => a.wrapping_mul(b),
                    })
                }
                ConstOp::I64Add | ConstOp::I64Sub | ConstOp::I64Mul => {
                    let b = stack.pop().map(|v| v.get_i64()).unwrap_or(0);
                    let a = stack.pop().map(|v| v.get_i64()).unwrap_or(0);
                    ValRaw::i64(match op {
                        ConstOp::I64Add => a.wrapping_add(b),
                        ConstOp::I64Sub => a.wrapping_sub(b),
                        _ => a.wrapping_mul(b),
                    })
                }
                ConstOp::RefI31 => {
                    let x = stack.pop().map(|v| v.get_i32()).unwrap_or(0);
                    ValRaw::ptr(kiln_environ::gc_ref::i31_ref(x) as usize)
                }
                ConstOp::StructNew(_)
                | ConstOp::StructNewDefault(_)
                | ConstOp::ArrayNew(_)
                | ConstOp::ArrayNewDefault(_)
                | ConstOp::ArrayNewFixed(..) => self.eval_const_alloc(op, &mut stack),
                ConstOp::ExternConvertAny => {
                    let r = stack.pop().map(|v| v.get_ptr()).unwrap_or(0);
                    ValRaw::ptr(self.externalize(r))
                }
                ConstOp::AnyConvertExtern => {
                    let e = stack.pop().map(|v| v.get_ptr()).unwrap_or(0);
                    ValRaw::ptr(self.internalize(e))
                }
                ref leaf => self.eval_const_op(leaf),
            };
            stack.push(v);
        }
        stack.pop().unwrap_or_default()
    }

    /// The value of one constant-expression operator that takes no operands
    /// (arithmetic gets zeros, which validation rules out).
    fn eval_const_op(&mut self, op: &ConstOp) -> ValRaw {
        match *op {
            ConstOp::I32Const(v) => ValRaw::i32(v),
            ConstOp::I64Const(v) => ValRaw::i64(v),
            ConstOp::F32Const(b) => ValRaw::f32(b),
            ConstOp::F64Const(b) => ValRaw::f64(b),
            ConstOp::V128Const(b) => ValRaw::u128(b),
            ConstOp::RefNull => ValRaw::ptr(0),
            ConstOp::RefFunc(f) => ValRaw::ptr(self.func_ref(FuncIndex::from_u32(f)) as usize),
            ConstOp::GlobalGet(g) => {
                // SAFETY: global storage is valid and 16 bytes long.
                let bytes = unsafe { self.global_ptr(GlobalIndex::from_u32(g)).as_ref().bytes };
                ValRaw::u128(u128::from_le_bytes(bytes))
            }
            ConstOp::I32Add | ConstOp::I32Sub | ConstOp::I32Mul => ValRaw::i32(0),
            ConstOp::RefI31 => ValRaw::ptr(kiln_environ::gc_ref::i31_ref(0) as usize),
            ConstOp::AnyConvertExtern | ConstOp::ExternConvertAny => ValRaw::ptr(0),
            ConstOp::StructNew(_)
            | ConstOp::StructNewDefault(_)
            | ConstOp::ArrayNew(_)
            | ConstOp::ArrayNewDefault(_)
            | ConstOp::ArrayNewFixed(..) => self.eval_const_alloc(op, &mut Vec::new()),
            ConstOp::I64Add | ConstOp::I64Sub | ConstOp::I64Mul => ValRaw::i64(0),
        }
    }

    /// Allocates the object of a GC constant operator (`struct.new`,
    /// `array.new_fixed`, ...), taking its operands from `stack`; its
    /// reference, or null when the heap is full, which also sets
    /// `alloc_failed` (instantiation then fails with `allocation failed`
    /// before the null is stored anywhere).
    fn eval_const_alloc(&mut self, op: &ConstOp, stack: &mut Vec<ValRaw>) -> ValRaw {
        let r = self.try_const_alloc(op, stack);
        if r.is_none() {
            self.alloc_failed = true;
        }
        ValRaw::ptr(r.unwrap_or(0) as usize)
    }

    /// As [`Self::eval_const_alloc`], `None` when the object does not fit.
    fn try_const_alloc(&mut self, op: &ConstOp, stack: &mut Vec<ValRaw>) -> Option<u32> {
        use kiln_environ::WasmCompositeType as C;
        use kiln_environ::gc_layout::{ARRAY_LENGTH, KIND_STRUCT, StructLayout, array_elems_offset, field_size};
        let (ConstOp::StructNew(t)
        | ConstOp::StructNewDefault(t)
        | ConstOp::ArrayNew(t)
        | ConstOp::ArrayNewDefault(t)
        | ConstOp::ArrayNewFixed(t, _)) = *op
        else {
            return None;
        };
        let module = self.module.clone();
        let type_id = module.type_ids[t as usize];
        let heap = self.gc_heap()?;
        let mut pop_n = |n: usize| stack.split_off(stack.len().saturating_sub(n));
        let r = match (&module.module().types[t as usize].composite, *op) {
            (C::Struct(s), _) => {
                let layout = StructLayout::of(s);
                let values = if matches!(op, ConstOp::StructNew(_)) { pop_n(s.fields.len()) } else { Vec::new() };
                let obj = heap.alloc(type_id, KIND_STRUCT, layout.size)?;
                for ((f, off), v) in s.fields.iter().zip(&layout.offsets).zip(values) {
                    heap.write_field(obj, *off, f.storage, v);
                }
                obj
            }
            (C::Array(a), _) => {
                let size = field_size(a.element.storage);
                // `array.new`'s value is written `len` times after the
                // allocation succeeds (never gathered first: `len` comes
                // from the module and may be huge).
                let (len, values, fill) = match *op {
                    ConstOp::ArrayNewFixed(_, n) => (n, pop_n(n as usize), None),
                    ConstOp::ArrayNew(_) => {
                        let len = stack.pop().map(|v| v.get_i32() as u32).unwrap_or(0);
                        (len, Vec::new(), Some(stack.pop().unwrap_or_default()))
                    }
                    _ => (stack.pop().map(|v| v.get_i32() as u32).unwrap_or(0), Vec::new(), None),
                };
                let obj = heap.alloc_array(type_id, size, len)?;
                let first = array_elems_offset(size);
                debug_assert_eq!(ARRAY_LENGTH + 4, array_elems_offset(1));
                for (k, v) in values.into_iter().enumerate() {
                    heap.write_field(obj, first + k as u32 * size, a.element.storage, v);
                }
                if let Some(v) = fill {
                    for k in 0..len {
                        heap.write_field(obj, first + k * size, a.element.storage, v);
                    }
                }
                obj
            }
            (C::Func(_), _) => return None,
        };
        Some(r)
    }

    /// Runs the instantiation-time initializers: defined globals, table
    /// initial values, active element segments, then active data segments.
    ///
    /// # Errors
    ///
    /// [`InstantiationError::Trap`] when a segment does not fit its table
    /// or memory; segments before it stay applied, as the spec requires.
    /// Without the bulk-memory feature, 1.0 semantics apply instead: every
    /// segment is checked first and a misfit is
    /// [`InstantiationError::SegmentDoesNotFit`], with nothing written.
    pub fn initialize(&mut self) -> Result<(), InstantiationError> {
        // Borrowed through a pointer instead of cloning the `Arc`, so that
        // instantiating on many threads does not write the module's shared
        // count (see "Instantiating from many threads" in ARCHITECTURE.md).
        // SAFETY: `self.module` is never reassigned, and `self` keeps that
        // `Arc` alive for as long as this borrow of `self` lasts.
        let module: &ModuleRuntime = unsafe { &*Arc::as_ptr(&self.module) };
        let info = module.module();
        let bulk_memory = wasmparser::WasmFeatures::from_bits_truncate(module.tunables.features).bulk_memory();
        for (d, init) in info.defined_globals().zip(&info.global_inits) {
            let v = self.eval_const(init);
            let g = self.vmctx_ptr::<VMGlobalDefinition>(module.offsets.defined_global(d));
            // SAFETY: the defined-global slot lies inside the VMContext.
            unsafe { g.as_ptr().write(VMGlobalDefinition { bytes: v.get_u128().to_le_bytes() }) };
        }
        for (d, init) in info.defined_tables().zip(&info.table_inits) {
            if let TableInit::Expr(e) = init {
                // Usually recorded as the table's default, not written (see `Table`).
                let v = self.eval_const(e).get_ptr();
                self.table_mut(info.table_index(d).as_u32()).set_initial_value(v);
            }
        }
        // Only this instance's own globals and tables were written so far.
        if self.alloc_failed {
            return Err(InstantiationError::Trap(TrapCode::AllocationFailed));
        }
        if !bulk_memory {
            self.check_segments_fit()?;
        }
        if module.tunables.table_lazy_init {
            for l in &info.lazy_tables {
                for s in &l.segments {
                    self.dropped_elems[*s as usize] = true;
                }
            }
        }
        for (i, seg) in info.elements.iter().enumerate() {
            if let (SegmentMode::Passive, ElementItems::Expressions(es)) = (&seg.mode, &seg.items)
                && es.iter().any(|e| e.allocates())
            {
                let items = es.iter().map(|e| self.eval_const(e)).collect();
                self.evaluated_elems.push((i as u32, items));
            }
        }
        if self.alloc_failed {
            return Err(InstantiationError::Trap(TrapCode::AllocationFailed));
        }
        for (i, seg) in info.elements.iter().enumerate() {
            match &seg.mode {
                // Folded into a lazily initialized table.
                SegmentMode::Active { .. } if self.dropped_elems[i] => {}
                SegmentMode::Active { index, offset } => {
                    let dst = self.eval_const(offset).get_u128() as u64;
                    let dst = if info.tables[*index as usize].table64 { dst } else { dst as u32 as u64 };
                    let len = seg.items.len() as u64;
                    self.table_init(*index, i as u32, dst, 0, len).map_err(InstantiationError::Trap)?;
                    self.dropped_elems[i] = true;
                }
                SegmentMode::Declared => self.dropped_elems[i] = true,
                SegmentMode::Passive => {}
            }
        }
        for (i, seg) in info.data.iter().enumerate() {
            if self.dropped_data[i] {
                // Already in place through the memory's image.
                continue;
            }
            if let SegmentMode::Active { index, offset } = &seg.mode {
                self.wrote_memories = true;
                let dst = self.eval_const(offset).get_u128() as u64;
                let dst = if info.memories[*index as usize].memory64 { dst } else { dst as u32 as u64 };
                self.memory_init(*index, i as u32, dst, 0, seg.bytes.len() as u64).map_err(InstantiationError::Trap)?;
                self.drop_data(i as u32);
            }
        }
        Ok(())
    }

    /// Whether `initialize` wrote into any memory, its own or imported
    /// (set before the first write, so also after a failure).
    pub fn wrote_memories(&self) -> bool {
        self.wrote_memories
    }

    /// Lets this instance's own memories and tables go back to their pools
    /// without a reset, which saves the `madvise` calls, and with them the
    /// TLB shootdowns that serialize concurrent resets across threads.
    ///
    /// Right only when their contents are still what a reset would give
    /// back: the store must know that no wasm ran and that no host handle
    /// to any of its memories or tables was ever made, and no instance of
    /// the store wrote into a memory while initializing (`wrote_memories`).
    /// Anything else that touched them would have gone through one of
    /// those; a memory image mapped at instantiation is not a write. Tables
    /// still reset whatever the runtime itself wrote into them (segments
    /// applied eagerly, lazily computed elements): only writes by compiled
    /// code go unrecorded, and no wasm ran.
    pub fn forget_unwritten_contents(&mut self) {
        for m in &mut self.owned_memories {
            m.forget_writes();
        }
        for t in &mut self.owned_tables {
            t.forget_writes();
        }
    }

    fn check_segments_fit(&mut self) -> Result<(), InstantiationError> {
        let module = self.module.clone();
        let info = module.module();
        for seg in &info.elements {
            if let SegmentMode::Active { index, offset } = &seg.mode {
                let dst = u64::from(self.eval_const(offset).get_i32() as u32);
                if dst + seg.items.len() as u64 > self.table(*index).size() {
                    return Err(InstantiationError::SegmentDoesNotFit("elements"));
                }
            }
        }
        for seg in &info.data {
            if let SegmentMode::Active { index, offset } = &seg.mode {
                let dst = u64::from(self.eval_const(offset).get_i32() as u32);
                if dst + seg.bytes.len() as u64 > self.memory(*index).byte_len() as u64 {
                    return Err(InstantiationError::SegmentDoesNotFit("data"));
                }
            }
        }
        Ok(())
    }

    /// `table.init`: copies `len` items of element segment `elem` from `src`
    /// into table `t` at `dst`.
    ///
    /// # Errors
    ///
    /// `TableOutOfBounds` if either range is out of bounds.
    pub fn table_init(&mut self, t: u32, elem: u32, dst: u64, src: u64, len: u64) -> Result<(), TrapCode> {
        let module = self.module.clone();
        let seg = &module.module().elements[elem as usize];
        let seg_len = if self.dropped_elems[elem as usize] { 0 } else { seg.items.len() as u64 };
        let table_size = self.table(t).size();
        if src.checked_add(len).is_none_or(|e| e > seg_len) || dst.checked_add(len).is_none_or(|e| e > table_size) {
            return Err(TrapCode::TableOutOfBounds);
        }
        for k in 0..len {
            let v = self.elem_item(elem, seg, (src + k) as usize).get_ptr();
            if self.alloc_failed {
                return Err(TrapCode::AllocationFailed);
            }
            self.table_mut(t).set(dst + k, v);
        }
        Ok(())
    }

    /// Item `k` of element segment `elem` (`seg`): a function's record,
    /// the value of its expression, or the value computed at
    /// instantiation when the expressions allocate.
    fn elem_item(&mut self, elem: u32, seg: &kiln_environ::ElementSegment, k: usize) -> ValRaw {
        if let Some((_, items)) = self.evaluated_elems.iter().find(|(e, _)| *e == elem) {
            return items[k];
        }
        match &seg.items {
            ElementItems::Functions(fs) => ValRaw::ptr(self.func_ref(FuncIndex::from_u32(fs[k])) as usize),
            ElementItems::Expressions(es) => self.eval_const(&es[k]),
        }
    }

    /// `elem.drop`.
    pub fn elem_drop(&mut self, elem: u32) {
        self.dropped_elems[elem as usize] = true;
    }

    /// `memory.init`: copies `len` bytes of data segment `data` from `src`
    /// into memory `m` at `dst`.
    ///
    /// # Errors
    ///
    /// `MemoryOutOfBounds` if either range is out of bounds.
    pub fn memory_init(&mut self, m: u32, data: u32, dst: u64, src: u64, len: u64) -> Result<(), TrapCode> {
        let module = self.module.clone();
        let bytes: &[u8] =
            if self.dropped_data[data as usize] { &[] } else { module.module().data[data as usize].bytes.as_slice() };
        let mem = self.memory(m);
        let src_range = src.checked_add(len).filter(|e| *e <= bytes.len() as u64);
        let dst_range = dst.checked_add(len).filter(|e| *e <= mem.byte_len() as u64);
        match (src_range, dst_range) {
            (Some(_), Some(_)) => {
                // SAFETY: both ranges were bounds-checked; raw copies because
                // a shared memory may be accessed by other threads meanwhile.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        bytes.as_ptr().add(src as usize),
                        mem.base().add(dst as usize),
                        len as usize,
                    )
                };
                Ok(())
            }
            _ => Err(TrapCode::MemoryOutOfBounds),
        }
    }

    /// `data.drop`.
    pub fn data_drop(&mut self, data: u32) {
        self.drop_data(data);
    }

    /// Calls `f` with each evaluated item of a passive element segment
    /// that holds a GC reference or an externref (roots of the GC heap).
    pub fn gc_roots(&mut self, f: &mut dyn FnMut(*mut u64, super::gc_heap::RootKind)) {
        let module = self.module.clone();
        for (seg, items) in &mut self.evaluated_elems {
            let Some(kind) = super::gc_heap::RootKind::of(kiln_environ::WasmValType::Ref(
                module.module().elements[*seg as usize].ty,
            )) else {
                continue;
            };
            for v in items.iter_mut() {
                f((v as *mut ValRaw).cast::<u64>(), kind);
            }
        }
    }

    /// The store's GC heap, if it has one.
    /// The bytes of data segment `data` (as the module has them, dropped
    /// or not) together with the store's GC heap, so that one can be
    /// copied into the other without copying the segment first.
    fn data_and_gc_heap(&mut self, data: u32) -> (&[u8], Option<&mut super::gc_heap::GcHeap>) {
        let bytes = self.module.module().data[data as usize].bytes.as_slice();
        // SAFETY: as in `gc_heap`; the heap is the store's, not part of
        // the instance or its module, so it aliases nothing `bytes`
        // borrows.
        let heap = unsafe { (*VMContext::store_context(self.vmctx)).gc_heap.as_mut() };
        (bytes, heap)
    }

    fn gc_heap(&mut self) -> Option<&mut super::gc_heap::GcHeap> {
        // SAFETY: the store context outlives its instances, and its heap
        // pointer is the store's boxed heap (or null), which lives as long
        // as the store and which nothing else borrows while an instance is
        // initialized or runs a builtin (the only callers); the borrow is
        // used only within such a call.
        unsafe { (*VMContext::store_context(self.vmctx)).gc_heap.as_mut() }
    }

    /// `extern.convert_any` of GC reference `r` in a constant expression.
    fn externalize(&mut self, r: usize) -> usize {
        if r == 0 {
            return 0;
        }
        if let Some(word) = self.gc_heap().and_then(|h| h.box_word(r as u64)) {
            return word;
        }
        kiln_environ::gc_ref::externalize(r as u64) as usize
    }

    /// `any.convert_extern` of externref word `e` in a constant expression
    /// (null if the store has no GC heap or it is full).
    fn internalize(&mut self, e: usize) -> usize {
        if e == 0 {
            return 0;
        }
        if kiln_environ::gc_ref::is_externalized(e as u64) {
            return kiln_environ::gc_ref::internalize(e as u64) as usize;
        }
        let ptr = e as *const super::externref::ExternData;
        // SAFETY: a non-null, untagged externref word that a constant
        // expression reads (from a global) is the address of a live host
        // value of this store (`externref_to_raw`), which the store keeps
        // alive while a global holds it; taking one more strong count of
        // it and owning that count is sound.
        let data = unsafe {
            std::sync::Arc::increment_strong_count(ptr);
            std::sync::Arc::from_raw(ptr)
        };
        self.gc_heap().and_then(|h| h.box_extern(e, data)).map_or(0, |r| r as usize)
    }

    /// The element storage and size of array type `t` of this module.
    pub fn array_element(&self, t: u32) -> Option<(kiln_environ::WasmStorageType, u32)> {
        match &self.module.module().types.get(t as usize)?.composite {
            kiln_environ::WasmCompositeType::Array(a) => {
                Some((a.element.storage, kiln_environ::gc_layout::field_size(a.element.storage)))
            }
            _ => None,
        }
    }

    /// `array.new_data`: an array of type `t` of `len` elements from data
    /// segment `data` at byte `offset`.
    ///
    /// # Errors
    ///
    /// `MemoryOutOfBounds` if the bytes are not all in the segment,
    /// `AllocationFailed` if the array does not fit in the heap.
    pub fn array_new_data(&mut self, t: u32, data: u32, offset: u32, len: u32) -> Result<u32, TrapCode> {
        let (_, size) = self.array_element(t).ok_or(TrapCode::AllocationFailed)?;
        let range = self.data_range(data, offset, len, size)?;
        let type_id = self.module.type_ids[t as usize];
        let (segment, heap) = self.data_and_gc_heap(data);
        let heap = heap.ok_or(TrapCode::AllocationFailed)?;
        let obj = heap.alloc_array(type_id, size, len).ok_or(TrapCode::AllocationFailed)?;
        heap.write_bytes(obj, kiln_environ::gc_layout::array_elems_offset(size), &segment[range]);
        Ok(obj)
    }

    /// Where the bytes of `len` elements of `size` bytes of data segment `data`
    /// from byte `offset` (a dropped segment is empty).
    fn data_range(&self, data: u32, offset: u32, len: u32, size: u32) -> Result<std::ops::Range<usize>, TrapCode> {
        let available = if self.dropped_data[data as usize] {
            0
        } else {
            self.module.module().data[data as usize].bytes.as_slice().len()
        };
        let start = u64::from(offset);
        let end = start + u64::from(len) * u64::from(size);
        if end > available as u64 {
            return Err(TrapCode::MemoryOutOfBounds);
        }
        Ok(start as usize..end as usize)
    }

    /// The values of items `[offset, offset + len)` of element segment
    /// `elem` (a dropped segment is empty).
    fn elem_range(&mut self, elem: u32, offset: u32, len: u32) -> Result<Vec<ValRaw>, TrapCode> {
        let module = self.module.clone();
        let seg = &module.module().elements[elem as usize];
        let seg_len = if self.dropped_elems[elem as usize] { 0 } else { seg.items.len() as u64 };
        if u64::from(offset) + u64::from(len) > seg_len {
            return Err(TrapCode::TableOutOfBounds);
        }
        Ok((offset..offset + len).map(|k| self.elem_item(elem, seg, k as usize)).collect())
    }

    /// `array.new_elem`: an array of type `t` of `len` references from
    /// element segment `elem` at `offset`.
    ///
    /// # Errors
    ///
    /// `TableOutOfBounds` if the items are not all in the segment,
    /// `AllocationFailed` if the array does not fit in the heap.
    pub fn array_new_elem(&mut self, t: u32, elem: u32, offset: u32, len: u32) -> Result<u32, TrapCode> {
        let (storage, size) = self.array_element(t).ok_or(TrapCode::AllocationFailed)?;
        let values = self.elem_range(elem, offset, len)?;
        let type_id = self.module.type_ids[t as usize];
        let heap = self.gc_heap().ok_or(TrapCode::AllocationFailed)?;
        let obj = heap.alloc_array(type_id, size, len).ok_or(TrapCode::AllocationFailed)?;
        let first = kiln_environ::gc_layout::array_elems_offset(size);
        for (k, v) in values.into_iter().enumerate() {
            heap.write_field(obj, first + k as u32 * size, storage, v);
        }
        Ok(obj)
    }

    /// Checks `array` (null, then `[dst, dst + len)` within its length)
    /// for `array.init_*`; returns the object and the offset of element
    /// `dst`.
    fn array_init_target(&mut self, array: u64, dst: u32, len: u32, size: u32) -> Result<(u32, u32), TrapCode> {
        if array == 0 {
            return Err(TrapCode::NullArrayReference);
        }
        let heap = self.gc_heap().ok_or(TrapCode::NullArrayReference)?;
        let n = heap.array_len(array).ok_or(TrapCode::NullArrayReference)?;
        if u64::from(dst) + u64::from(len) > u64::from(n) {
            return Err(TrapCode::ArrayOutOfBounds);
        }
        Ok((array as u32, kiln_environ::gc_layout::array_elems_offset(size) + dst * size))
    }

    /// `array.init_data`: copies `len` elements' bytes from data segment
    /// `data` at byte `src` into `array` (of type `t`) from index `dst`.
    ///
    /// # Errors
    ///
    /// `NullArrayReference`, `ArrayOutOfBounds` (destination) or
    /// `MemoryOutOfBounds` (source), checked in that order.
    pub fn array_init_data(
        &mut self,
        t: u32,
        data: u32,
        array: u64,
        dst: u32,
        src: u32,
        len: u32,
    ) -> Result<(), TrapCode> {
        let (_, size) = self.array_element(t).ok_or(TrapCode::NullArrayReference)?;
        let (obj, at) = self.array_init_target(array, dst, len, size)?;
        let range = self.data_range(data, src, len, size)?;
        let (segment, heap) = self.data_and_gc_heap(data);
        heap.ok_or(TrapCode::NullArrayReference)?.write_bytes(obj, at, &segment[range]);
        Ok(())
    }

    /// `array.init_elem`: copies `len` references from element segment
    /// `elem` at `src` into `array` (of type `t`) from index `dst`.
    ///
    /// # Errors
    ///
    /// `NullArrayReference`, `ArrayOutOfBounds` (destination) or
    /// `TableOutOfBounds` (source), checked in that order.
    pub fn array_init_elem(
        &mut self,
        t: u32,
        elem: u32,
        array: u64,
        dst: u32,
        src: u32,
        len: u32,
    ) -> Result<(), TrapCode> {
        let (storage, size) = self.array_element(t).ok_or(TrapCode::NullArrayReference)?;
        let (obj, at) = self.array_init_target(array, dst, len, size)?;
        let values = self.elem_range(elem, src, len)?;
        let heap = self.gc_heap().ok_or(TrapCode::NullArrayReference)?;
        for (k, v) in values.into_iter().enumerate() {
            heap.write_field(obj, at + k as u32 * size, storage, v);
        }
        Ok(())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Tables and memories first: lazy tables refer into the VMContext.
        self.owned_tables.clear();
        self.owned_memories.clear();
        if let Some(r) = self.vmctx_region.take() {
            self.vmctx_pool.release(r);
        }
    }
}

/// The `Instance` owning a VMContext.
///
/// # Safety
///
/// `vmctx` must be the VMContext of a live instance, and nothing else may
/// use that instance while the returned borrow lasts.
pub unsafe fn instance_of_vmctx<'a>(vmctx: NonNull<VMContext>) -> &'a mut Instance {
    // SAFETY: per the contract, the header's instance field holds the
    // back-pointer written by `Instance::new`, to the live instance.
    unsafe { &mut **VMContext::field::<*mut Instance>(vmctx, vmctx_header::INSTANCE).as_ptr() }
}

/// The store-wide index of the instance whose VMContext is `ctx`, or
/// `None` if `ctx` is null or not an instance's (a host function's
/// context).
///
/// # Safety
///
/// `ctx` must be null, or a live instance VMContext or host-function
/// context.
pub unsafe fn instance_id_of_vmctx(ctx: *mut VMOpaqueContext) -> Option<InstanceId> {
    // SAFETY: per the contract (the magic tells the kinds apart).
    let vmctx = unsafe { VMOpaqueContext::as_vmctx(ctx) }?;
    // SAFETY: it is a live instance VMContext (checked magic); the borrow
    // ends within this expression.
    Some(unsafe { instance_of_vmctx(vmctx) }.id)
}
