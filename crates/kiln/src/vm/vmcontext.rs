//! `#[repr(C)]` definitions of the structures compiled code reads and
//! writes. Their field offsets are checked at compile time against the one
//! layout definition in `kiln_environ::vmoffsets`.

use kiln_environ::vmoffsets::{VMCTX_MAGIC, definition, func_import, func_ref, store_context, vmctx_header};
use std::marker::{PhantomData, PhantomPinned};
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicU64;

/// An instance's VMContext, only ever seen behind a pointer
/// (`NonNull<VMContext>`, or `*mut VMContext` where compiled code hands
/// one over).
///
/// The type is opaque on purpose: the context is one allocation whose
/// layout depends on the module, defined once by `kiln_environ`'s
/// `VMOffsets` (its header fields by `vmoffsets::vmctx_header`). Rust
/// code reaches a field through [`VMContext::field`] with an offset from
/// there, never through a struct definition that could drift from it.
#[repr(C)]
pub struct VMContext {
    _data: [u8; 0],
    // Neither `Send`, `Sync` nor `Unpin`: a context is shared with
    // compiled code and never moves.
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

impl VMContext {
    /// Pointer to the field at byte `offset` of the context `vmctx`, typed
    /// as the `T` stored there.
    ///
    /// # Safety
    ///
    /// `vmctx` points to a VMContext allocation, and `offset` is the
    /// offset of a field of type `T` in its layout (a `VMOffsets` or
    /// `vmctx_header` offset of its module), so the result lies inside the
    /// allocation.
    #[inline]
    pub unsafe fn field<T>(vmctx: NonNull<VMContext>, offset: u32) -> NonNull<T> {
        // SAFETY: per the contract, the offset stays inside the allocation
        // `vmctx` points to.
        unsafe { vmctx.byte_add(offset as usize).cast() }
    }

    /// The store context of the instance whose VMContext is `vmctx` (its
    /// header's `STORE_CONTEXT` field).
    ///
    /// # Safety
    ///
    /// `vmctx` must be a live, initialized VMContext.
    #[inline]
    pub unsafe fn store_context(vmctx: NonNull<VMContext>) -> *mut VMStoreContext {
        // SAFETY: per the contract, the header holds the store context
        // pointer, written at instantiation.
        unsafe { *VMContext::field::<*mut VMStoreContext>(vmctx, vmctx_header::STORE_CONTEXT).as_ptr() }
    }
}

/// The callee context of a function record ([`VMFuncRef::vmctx`],
/// [`VMFunctionImport::vmctx`]): an instance's [`VMContext`], or a host
/// function's context (`host_func::VMHostFuncContext`). Both start with a
/// 4-byte magic (`VMCTX_MAGIC` or `HOST_FUNC_MAGIC`) that tells them apart;
/// compiled code only passes the pointer on to the callee.
#[repr(C)]
pub struct VMOpaqueContext {
    _data: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

impl VMOpaqueContext {
    /// An instance's VMContext as a callee context.
    #[inline]
    pub fn from_vmctx(vmctx: NonNull<VMContext>) -> NonNull<VMOpaqueContext> {
        vmctx.cast()
    }

    /// The instance VMContext `ctx` is, if it is one (not null, and its
    /// magic is `VMCTX_MAGIC`); `None` for null or a host function's
    /// context.
    ///
    /// # Safety
    ///
    /// `ctx` is null, or a live instance VMContext or host-function
    /// context.
    #[inline]
    pub unsafe fn as_vmctx(ctx: *mut VMOpaqueContext) -> Option<NonNull<VMContext>> {
        let ctx = NonNull::new(ctx)?;
        // SAFETY: per the contract, both kinds of context start with a
        // 4-byte magic.
        let magic = unsafe { *ctx.cast::<u32>().as_ptr() };
        (magic == VMCTX_MAGIC).then(|| ctx.cast())
    }
}

/// The target of every function reference: what `call_indirect` and
/// `ref.func` work with.
#[repr(C)]
#[derive(Debug)]
pub struct VMFuncRef {
    /// Code pointer with the wasm calling convention.
    pub wasm_call: *const u8,
    /// Callee context (an instance's VMContext, or a host-function
    /// context); raw, as compiled code reads it, but never null once the
    /// record is handed out.
    pub vmctx: *mut VMOpaqueContext,
    /// Engine-wide type id of the signature.
    pub type_id: u32,
}

/// An imported function as the importing instance sees it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VMFunctionImport {
    /// Code pointer with the wasm calling convention.
    pub wasm_call: *const u8,
    /// Callee context (as in [`VMFuncRef::vmctx`]).
    pub vmctx: *mut VMOpaqueContext,
    /// The imported function's own `VMFuncRef`, for `ref.func`.
    pub func_ref: *const VMFuncRef,
}

/// A table's base pointer and current number of elements.
#[repr(C)]
#[derive(Debug)]
pub struct VMTableDefinition {
    /// Pointer to the first element (pointer-sized elements).
    pub base: *mut usize,
    /// Number of elements.
    pub current_elements: u64,
}

/// A linear memory's base pointer and current length in bytes.
#[repr(C)]
#[derive(Debug)]
pub struct VMMemoryDefinition {
    /// Pointer to byte 0.
    pub base: *mut u8,
    /// Accessible length in bytes.
    pub current_length: u64,
}

/// A defined exception tag: its engine type id. Compiled code and the
/// runtime tell tags apart by the address of their definition.
#[repr(C)]
#[derive(Debug)]
pub struct VMTagDefinition {
    /// Engine-wide type id of the tag's function type.
    pub type_id: u32,
    _pad: u32,
}

impl VMTagDefinition {
    /// A definition for a tag of engine type `type_id`.
    pub fn new(type_id: u32) -> VMTagDefinition {
        VMTagDefinition { type_id, _pad: 0 }
    }
}

/// Storage of one global: 16 bytes, enough for a `v128`.
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy, Default)]
pub struct VMGlobalDefinition {
    /// The raw little-endian bytes.
    pub bytes: [u8; 16],
}

/// Per-store state that compiled code reads and writes.
#[repr(C)]
#[derive(Debug)]
pub struct VMStoreContext {
    /// Fuel consumed, counting up towards zero.
    pub fuel_consumed: i64,
    /// Epoch at which to interrupt (written by the store, read by the
    /// thread advancing the epoch; see `vm/epoch.rs`).
    pub epoch_deadline: AtomicU64,
    /// Lowest stack pointer wasm may use.
    pub stack_limit: usize,
    /// Frame pointer of the last wasm frame that called the host.
    pub last_wasm_exit_fp: usize,
    /// Return address into that frame.
    pub last_wasm_exit_pc: usize,
    /// Frame pointer of the innermost entry trampoline.
    pub last_wasm_entry_fp: usize,
    /// Non-zero when the epoch may have reached the deadline (see
    /// `vm/epoch.rs`); compiled code branches on it.
    pub epoch_interrupt: AtomicU64,
    /// Base of the store's GC heap, or null before it has one
    /// (`store_context::GC_HEAP_BASE`; written once, when the heap is
    /// created).
    pub gc_heap_base: *mut u8,
    /// Where compiled code bump-allocates GC objects
    /// (`store_context::GC_ALLOC_NEXT`, `GC_ALLOC_LIMIT`); owned by the
    /// store's GC heap.
    pub gc_alloc: GcAllocWindow,
    /// The engine's table of type displays
    /// (`store_context::TYPE_DISPLAYS`; set at creation).
    pub type_displays: usize,
    /// The engine's epoch counter (runtime-only).
    pub epoch_counter: *const AtomicU64,
    /// Whether running wasm keeps `fuel_consumed` in the pinned register
    /// (the engine consumes fuel), so that the trap handler copies it back
    /// from the signal context (runtime-only).
    pub fuel_in_pinned_reg: bool,
    /// Whether epoch interruption reaches this store's wasm by a signal
    /// rather than by compiled checks (`Tunables::epoch_signals`; set at
    /// creation, before other threads can see the context; runtime-only).
    pub epoch_signals: bool,
    /// Kernel thread id of the thread running this store's wasm, 0 when
    /// none (written by `enter_wasm`, read by the thread advancing the
    /// epoch, which signals it; runtime-only).
    pub running_tid: std::sync::atomic::AtomicI32,
    /// The reservations of every linear memory this store's wasm can
    /// access, which the trap handler checks a memory fault's address
    /// against (runtime-only). Written only by Rust code holding the
    /// store's exclusive borrow (so on the thread using the store), read by
    /// the handler on the thread running the store's wasm: the same thread,
    /// and never in the middle of a write (see `fault_is_wasm_trap`).
    pub memory_reservations: super::memory::MemoryReservations,
    /// The store's GC heap (boxed by the store, which outlives every use
    /// through this pointer), or null before it has one; how an instance
    /// evaluating a constant expression allocates (runtime-only).
    pub gc_heap: *mut super::gc_heap::GcHeap,
    /// For each entry into the store's wasm nested in a host function its
    /// wasm called (innermost last): the enclosing wasm's frame records
    /// (`last_wasm_entry_fp`, `last_wasm_exit_fp`, `last_wasm_exit_pc`) at
    /// that entry, which the context gets back when it returns. A walk over
    /// all of the store's wasm frames (GC roots) goes outwards through them
    /// (runtime-only; the outermost entry pushes nothing, keeping the
    /// common call path free of it).
    pub outer_frames: Vec<[usize; 3]>,
}

// SAFETY: `epoch_counter` refers to the engine's counter, an atomic that
// the owning `VmStore` keeps alive (`Arc<Epoch>`) and that any thread may
// read; `gc_heap_base` and `gc_heap` point into the store's own GC heap,
// used only by the thread using the store; the context moves between threads with its
// store, which one thread uses at a time (`&mut` access).
unsafe impl Send for VMStoreContext {}
// SAFETY: other threads reach a context only through `&`, and then touch
// its atomic fields alone (the epoch thread: deadline, flag, running
// thread); everything else is used by the one thread holding the store.
unsafe impl Sync for VMStoreContext {}

/// The part of the GC heap compiled code allocates from: objects go at
/// `next` while they end at or below `limit` (offsets from the heap's
/// base; the memory in between is accessible and zero).
#[repr(C)]
#[derive(Debug, Default)]
pub struct GcAllocWindow {
    /// Offset of the next object.
    pub next: u64,
    /// End of the window.
    pub limit: u64,
}

impl Default for VMStoreContext {
    fn default() -> Self {
        VMStoreContext {
            fuel_consumed: 0,
            epoch_deadline: AtomicU64::new(0),
            stack_limit: usize::MAX,
            last_wasm_exit_fp: 0,
            last_wasm_exit_pc: 0,
            last_wasm_entry_fp: 0,
            epoch_interrupt: AtomicU64::new(0),
            gc_heap_base: ptr::null_mut(),
            gc_alloc: GcAllocWindow::default(),
            type_displays: 0,
            epoch_counter: ptr::null(),
            fuel_in_pinned_reg: false,
            epoch_signals: false,
            running_tid: std::sync::atomic::AtomicI32::new(0),
            memory_reservations: super::memory::MemoryReservations::default(),
            gc_heap: ptr::null_mut(),
            outer_frames: Vec::new(),
        }
    }
}

/// One 16-byte value slot of an array call.
#[repr(C, align(16))]
#[derive(Clone, Copy, Default)]
pub struct ValRaw {
    bytes: [u8; 16],
}

impl std::fmt::Debug for ValRaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ValRaw({:#034x})", self.get_u128())
    }
}

impl ValRaw {
    /// A slot holding an `i32`.
    pub fn i32(v: i32) -> ValRaw {
        ValRaw::u128(v as u32 as u128)
    }
    /// A slot holding an `i64`.
    pub fn i64(v: i64) -> ValRaw {
        ValRaw::u128(v as u64 as u128)
    }
    /// A slot holding `f32` bits.
    pub fn f32(bits: u32) -> ValRaw {
        ValRaw::u128(bits as u128)
    }
    /// A slot holding `f64` bits.
    pub fn f64(bits: u64) -> ValRaw {
        ValRaw::u128(bits as u128)
    }
    /// A slot holding a `v128`.
    pub fn u128(v: u128) -> ValRaw {
        ValRaw { bytes: v.to_le_bytes() }
    }
    /// A slot holding a pointer-sized reference.
    pub fn ptr(v: usize) -> ValRaw {
        ValRaw::u128(v as u128)
    }
    /// This slot with only the bytes a value of type `ty` occupies kept
    /// (the rest zeroed), for slots that compiled code wrote narrower.
    pub fn truncated_to(&self, ty: kiln_environ::WasmValType) -> ValRaw {
        use kiln_environ::WasmValType as T;
        match ty {
            T::I32 | T::F32 => ValRaw::u128(u128::from(self.get_u128() as u32)),
            T::I64 | T::F64 | T::Ref(_) => ValRaw::u128(u128::from(self.get_u128() as u64)),
            T::V128 => *self,
        }
    }

    /// The low 32 bits as `i32`.
    pub fn get_i32(&self) -> i32 {
        self.get_u128() as u32 as i32
    }
    /// The low 64 bits as `i64`.
    pub fn get_i64(&self) -> i64 {
        self.get_u128() as u64 as i64
    }
    /// The low 32 bits (f32 bits).
    pub fn get_f32(&self) -> u32 {
        self.get_u128() as u32
    }
    /// The low 64 bits (f64 bits).
    pub fn get_f64(&self) -> u64 {
        self.get_u128() as u64
    }
    /// All 128 bits.
    pub fn get_u128(&self) -> u128 {
        u128::from_le_bytes(self.bytes)
    }
    /// The low bits as a pointer-sized value.
    pub fn get_ptr(&self) -> usize {
        self.get_u128() as usize
    }
}

const _: () = {
    assert!(std::mem::offset_of!(VMFuncRef, wasm_call) == func_ref::WASM_CALL as usize);
    assert!(std::mem::offset_of!(VMFuncRef, vmctx) == func_ref::VMCTX as usize);
    assert!(std::mem::offset_of!(VMFuncRef, type_id) == func_ref::TYPE_ID as usize);
    assert!(std::mem::size_of::<VMFuncRef>() == func_ref::SIZE as usize);
    assert!(std::mem::offset_of!(VMFunctionImport, wasm_call) == func_import::WASM_CALL as usize);
    assert!(std::mem::offset_of!(VMFunctionImport, vmctx) == func_import::VMCTX as usize);
    assert!(std::mem::offset_of!(VMFunctionImport, func_ref) == func_import::FUNC_REF as usize);
    assert!(std::mem::size_of::<VMFunctionImport>() == func_import::SIZE as usize);
    assert!(std::mem::offset_of!(VMTableDefinition, base) == definition::BASE as usize);
    assert!(std::mem::offset_of!(VMTableDefinition, current_elements) == definition::LENGTH as usize);
    assert!(std::mem::offset_of!(VMMemoryDefinition, base) == definition::BASE as usize);
    assert!(std::mem::offset_of!(VMMemoryDefinition, current_length) == definition::LENGTH as usize);
    assert!(std::mem::size_of::<VMGlobalDefinition>() == kiln_environ::GLOBAL_SIZE as usize);
    assert!(std::mem::size_of::<VMTagDefinition>() == kiln_environ::vmoffsets::tag::SIZE as usize);
    assert!(std::mem::offset_of!(VMTagDefinition, type_id) == kiln_environ::vmoffsets::tag::TYPE_ID as usize);
    assert!(std::mem::size_of::<ValRaw>() == kiln_environ::VAL_RAW_SIZE as usize);
    assert!(std::mem::offset_of!(VMStoreContext, fuel_consumed) == store_context::FUEL_CONSUMED as usize);
    assert!(std::mem::offset_of!(VMStoreContext, epoch_deadline) == store_context::EPOCH_DEADLINE as usize);
    assert!(std::mem::offset_of!(VMStoreContext, stack_limit) == store_context::STACK_LIMIT as usize);
    assert!(std::mem::offset_of!(VMStoreContext, last_wasm_exit_fp) == store_context::LAST_WASM_EXIT_FP as usize);
    assert!(std::mem::offset_of!(VMStoreContext, last_wasm_exit_pc) == store_context::LAST_WASM_EXIT_PC as usize);
    assert!(std::mem::offset_of!(VMStoreContext, last_wasm_entry_fp) == store_context::LAST_WASM_ENTRY_FP as usize);
    assert!(std::mem::offset_of!(VMStoreContext, epoch_interrupt) == store_context::EPOCH_INTERRUPT as usize);
    assert!(std::mem::offset_of!(VMStoreContext, gc_heap_base) == store_context::GC_HEAP_BASE as usize);
    assert!(
        std::mem::offset_of!(VMStoreContext, gc_alloc) + std::mem::offset_of!(GcAllocWindow, next)
            == store_context::GC_ALLOC_NEXT as usize
    );
    assert!(
        std::mem::offset_of!(VMStoreContext, gc_alloc) + std::mem::offset_of!(GcAllocWindow, limit)
            == store_context::GC_ALLOC_LIMIT as usize
    );
    assert!(std::mem::offset_of!(VMStoreContext, type_displays) == store_context::TYPE_DISPLAYS as usize);
};
