//! The layout of the runtime structures that compiled code reads: the
//! per-instance `VMContext`, the per-store `VMStoreContext`, function
//! references, and table/memory/global definitions. This is the one
//! definition both the compiler and the runtime use.
//!
//! VMContext layout (all offsets from the vmctx pointer):
//!
//! ```text
//! header (fixed):    magic u32 | store ctx ptr | builtins ptr | type ids ptr | epoch ptr | instance ptr
//! imported funcs:    [VMFunctionImport { wasm_call, vmctx, funcref }]   24 bytes each
//! imported tables:   [*mut VMTableDefinition]                          8 bytes each
//! imported memories: [*mut VMMemoryDefinition]                         8 bytes each
//! imported globals:  [*mut VMGlobalDefinition]                         8 bytes each
//! imported tags:     [*const VMTagDefinition]                          8 bytes each
//! defined tables:    [VMTableDefinition { base, current_elements }]    16 bytes each
//! defined memories:  [VMMemoryDefinition { base, current_length }]     16 bytes each (for a
//!                                                                      shared memory: a pointer
//!                                                                      to its definition)
//! defined globals:   [VMGlobalDefinition]                              16 bytes each, 16-aligned
//! defined tags:      [VMTagDefinition { type_id }]                     8 bytes each (a tag's
//!                                                                      identity is the address
//!                                                                      of its definition)
//! funcrefs:          [VMFuncRef { wasm_call, vmctx, type_id }]         24 bytes each, one per
//!                                                                      escaping defined function
//! ```

use crate::index::*;
use crate::module::ModuleInfo;

/// Magic number at offset 0 of every instance VMContext ("kiln").
pub const VMCTX_MAGIC: u32 = u32::from_le_bytes(*b"kiln");
/// Magic number at offset 0 of every host-function context ("host").
pub const HOST_FUNC_MAGIC: u32 = u32::from_le_bytes(*b"host");

/// Fixed offsets of the VMContext header.
pub mod vmctx_header {
    /// `u32` magic, [`super::VMCTX_MAGIC`].
    pub const MAGIC: u32 = 0;
    /// `*mut VMStoreContext` of the owning store.
    pub const STORE_CONTEXT: u32 = 8;
    /// `*const [fn; BuiltinFunctionIndex::COUNT]`.
    pub const BUILTINS: u32 = 16;
    /// `*const u32`: engine-wide type ids indexed by module type index.
    pub const TYPE_IDS: u32 = 24;
    /// `*const AtomicU64`: the engine's epoch counter.
    pub const EPOCH_PTR: u32 = 32;
    /// Runtime back-pointer to the owning instance record.
    pub const INSTANCE: u32 = 40;
    /// Size of the header.
    pub const SIZE: u32 = 48;
}

/// Fixed layout of the per-store `VMStoreContext`.
pub mod store_context {
    /// `i64`: fuel consumed so far, counting up towards zero (negative means fuel left).
    pub const FUEL_CONSUMED: u32 = 0;
    /// `u64`: epoch value at which execution is interrupted (runtime-only:
    /// compiled code checks `EPOCH_INTERRUPT`).
    pub const EPOCH_DEADLINE: u32 = 8;
    /// `usize`: lowest stack pointer wasm may use; function prologues compare against it.
    pub const STACK_LIMIT: u32 = 16;
    /// `usize`: frame pointer of the last wasm frame that called out to the host.
    pub const LAST_WASM_EXIT_FP: u32 = 24;
    /// `usize`: return address into the last wasm frame that called out to the host.
    pub const LAST_WASM_EXIT_PC: u32 = 32;
    /// `usize`: frame pointer of the entry trampoline of the innermost host-to-wasm call.
    pub const LAST_WASM_ENTRY_FP: u32 = 40;
    /// `u64`: non-zero when the engine's epoch may have reached
    /// `EPOCH_DEADLINE`; raised by whoever advances the epoch, and the whole
    /// of compiled code's epoch check (one load off the pinned register).
    pub const EPOCH_INTERRUPT: u32 = 48;
    /// `*mut u8`: base of the store's GC heap (the cage; GC objects are
    /// offsets from it), or null before the store has one. Written once,
    /// when the heap is created: at an instantiation or in a call (a
    /// builtin's or the host's first allocation), so compiled code reloads
    /// it after calls.
    pub const GC_HEAP_BASE: u32 = 56;
    /// `u64`: offset in the GC heap of the next object compiled code may
    /// bump-allocate (the allocation window's start).
    pub const GC_ALLOC_NEXT: u32 = 64;
    /// `u64`: end of the allocation window: compiled code allocates inline
    /// while an object fits below it, else calls the runtime, which moves
    /// the window (or traps `allocation failed`).
    pub const GC_ALLOC_LIMIT: u32 = 72;
    /// `*const u32`: the engine's table of type displays
    /// ([`super::type_displays`]); set when the store is created, never
    /// changed.
    pub const TYPE_DISPLAYS: u32 = 80;
    /// Size of the structure.
    pub const SIZE: u32 = 88;
}

/// The engine's table of type displays, which compiled code reads to test
/// an engine type id against a non-final type: row `id` (`ROW` bytes)
/// holds the first `DEPTH` entries of the display of the type with
/// that id (its declared supertypes from the root, then itself) as
/// `u32`s, `u32::MAX` past its end. Type `a` is declared below type `b`
/// exactly when row `a` holds `b` at `b`'s depth (its number of
/// supertypes). Deeper targets and ids from `TYPES` on are left to the
/// `is_subtype` builtin. Rows are written before their ids are handed
/// out, and never change.
pub mod type_displays {
    /// Entries per row: the depth below which casts are inline.
    pub const DEPTH: u32 = 8;
    /// Bytes per row.
    pub const ROW: u32 = DEPTH * 4;
    /// Rows in the table: type ids from here on are not in it.
    pub const TYPES: u32 = 1 << 20;
}

/// Layout of a data segment's record in the VMContext of a module with GC
/// types, which compiled code reads for `array.new_data`.
pub mod data_segment {
    /// `*const u8`: the segment's bytes (the module's, for its lifetime).
    pub const PTR: u32 = 0;
    /// `u64`: its length, 0 once dropped (`data.drop`, or an active
    /// segment after instantiation).
    pub const LEN: u32 = 8;
    /// Size of the record.
    pub const SIZE: u32 = 16;
}

/// Fixed layout of `VMFuncRef`, the target of every function reference.
pub mod func_ref {
    /// Code pointer using the wasm calling convention.
    pub const WASM_CALL: u32 = 0;
    /// The callee VMContext (an instance, or a host-function context).
    pub const VMCTX: u32 = 8;
    /// `u32` engine-wide type id of the signature.
    pub const TYPE_ID: u32 = 16;
    /// Size of the structure.
    pub const SIZE: u32 = 24;
}

/// Fixed layout of `VMFunctionImport`.
pub mod func_import {
    /// Code pointer using the wasm calling convention.
    pub const WASM_CALL: u32 = 0;
    /// The callee VMContext.
    pub const VMCTX: u32 = 8;
    /// `*const VMFuncRef` of the imported function, for `ref.func`.
    pub const FUNC_REF: u32 = 16;
    /// Size of the structure.
    pub const SIZE: u32 = 24;
}

/// Fixed layout of a host-function context, the callee "vmctx" of a host function.
pub mod host_func_ctx {
    /// `u32` magic, [`super::HOST_FUNC_MAGIC`].
    pub const MAGIC: u32 = 0;
    /// An `extern "C"` function `(callee_vmctx, caller_vmctx, *mut ValRaw, usize)`.
    pub const ARRAY_CALL: u32 = 8;
    /// An inline `VMFuncRef` for this host function.
    pub const FUNC_REF: u32 = 16;
}

/// Fixed layout of a table or memory definition (`base`, then current length).
pub mod definition {
    /// Base pointer.
    pub const BASE: u32 = 0;
    /// Current length: elements for tables, bytes for memories.
    pub const LENGTH: u32 = 8;
    /// Size of the structure.
    pub const SIZE: u32 = 16;
}

/// Size of each global slot.
pub const GLOBAL_SIZE: u32 = 16;

/// `VMTagDefinition`: a defined exception tag.
pub mod tag {
    /// Engine-wide type id of the tag's function type (its payload is the
    /// parameters).
    pub const TYPE_ID: u32 = 0;
    /// Size of the structure.
    pub const SIZE: u32 = 8;
}
/// An exception object (`VMExn`), which an `exnref` points to: the fields
/// compiled code reads when it catches one.
pub mod exn {
    /// Address of the `VMTagDefinition` of the exception's tag.
    pub const TAG: u32 = 0;
    /// Pointer to the payload: one 16-byte value slot (`ValRaw`) per
    /// parameter of the tag's type, in order.
    pub const PAYLOAD: u32 = 8;
}

/// The frame of baseline-compiled code (`kiln-baseline`), as far as code
/// that takes over its activation (on-stack replacement) reads it: every
/// wasm local has an 8-byte slot at a fixed offset from the frame pointer.
/// A slot of an `i32` or `f32` holds it in its low 4 bytes.
pub mod baseline_frame {
    /// The callee VMContext.
    pub const VMCTX: i32 = -8;
    /// Local 0 (parameters first); local `i` is `8 * i` bytes below.
    /// (The five slots between it and the VMContext's hold registers that
    /// baseline code saves.)
    pub const LOCAL_0: i32 = -56;
    /// Bytes per slot.
    pub const SLOT: i32 = 8;

    /// The frame-pointer offset of local `i`'s slot.
    pub const fn local(i: u32) -> i32 {
        LOCAL_0 - SLOT * i as i32
    }
}

/// Size of a value slot in array calls (`ValRaw`).
pub const VAL_RAW_SIZE: u32 = 16;

/// Computed offsets of one module's VMContext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VMOffsets {
    num_imported_funcs: u32,
    num_imported_tables: u32,
    num_imported_memories: u32,
    num_imported_globals: u32,
    num_imported_tags: u32,
    num_defined_tables: u32,
    num_defined_memories: u32,
    num_defined_globals: u32,
    num_defined_tags: u32,
    num_data_segments: u32,
    num_funcrefs: u32,
    imported_funcs: u32,
    imported_tables: u32,
    imported_memories: u32,
    imported_globals: u32,
    imported_tags: u32,
    defined_tables: u32,
    defined_memories: u32,
    defined_globals: u32,
    defined_tags: u32,
    data_segments: u32,
    funcrefs: u32,
    size: u32,
}

fn align(x: u32, a: u32) -> u32 {
    (x + a - 1) & !(a - 1)
}

impl VMOffsets {
    /// Computes the layout for `module`.
    pub fn new(module: &ModuleInfo) -> VMOffsets {
        let num_imported_funcs = module.num_imported_funcs;
        let num_imported_tables = module.num_imported_tables;
        let num_imported_memories = module.num_imported_memories;
        let num_imported_globals = module.num_imported_globals;
        let num_defined_tables = module.num_defined_tables();
        let num_defined_memories = module.num_defined_memories();
        let num_defined_globals = module.num_defined_globals();
        let num_imported_tags = module.num_imported_tags;
        let num_defined_tags = module.num_defined_tags();
        let num_funcrefs = module.defined_escaping_funcs().len() as u32;
        // Only modules with GC types can use `array.new_data`.
        let num_data_segments = if module.declares_gc_types() { module.data.len() as u32 } else { 0 };

        let imported_funcs = vmctx_header::SIZE;
        let imported_tables = imported_funcs + num_imported_funcs * func_import::SIZE;
        let imported_memories = imported_tables + num_imported_tables * 8;
        let imported_globals = imported_memories + num_imported_memories * 8;
        let imported_tags = imported_globals + num_imported_globals * 8;
        let defined_tables = align(imported_tags + num_imported_tags * 8, 16);
        let defined_memories = defined_tables + num_defined_tables * definition::SIZE;
        let defined_globals = align(defined_memories + num_defined_memories * definition::SIZE, 16);
        let defined_tags = defined_globals + num_defined_globals * GLOBAL_SIZE;
        let data_segments = align(defined_tags + num_defined_tags * tag::SIZE, 8);
        let funcrefs = data_segments + num_data_segments * data_segment::SIZE;
        let size = align(funcrefs + num_funcrefs * func_ref::SIZE, 16);
        VMOffsets {
            num_imported_funcs,
            num_imported_tables,
            num_imported_memories,
            num_imported_globals,
            num_imported_tags,
            num_defined_tables,
            num_defined_memories,
            num_defined_globals,
            num_defined_tags,
            num_data_segments,
            num_funcrefs,
            imported_funcs,
            imported_tables,
            imported_memories,
            imported_globals,
            imported_tags,
            defined_tables,
            defined_memories,
            defined_globals,
            defined_tags,
            data_segments,
            funcrefs,
            size,
        }
    }

    /// Total size of the VMContext in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Number of funcref records (escaping defined functions).
    pub fn num_funcrefs(&self) -> u32 {
        self.num_funcrefs
    }

    /// Offset of the `VMFunctionImport` for imported function `i`.
    pub fn imported_function(&self, i: FuncIndex) -> u32 {
        debug_assert!(i.as_u32() < self.num_imported_funcs);
        self.imported_funcs + i.as_u32() * func_import::SIZE
    }

    /// Offset of the pointer to imported table `i`'s definition.
    pub fn imported_table(&self, i: TableIndex) -> u32 {
        debug_assert!(i.as_u32() < self.num_imported_tables);
        self.imported_tables + i.as_u32() * 8
    }

    /// Offset of the pointer to imported memory `i`'s definition.
    pub fn imported_memory(&self, i: MemoryIndex) -> u32 {
        debug_assert!(i.as_u32() < self.num_imported_memories);
        self.imported_memories + i.as_u32() * 8
    }

    /// Offset of the pointer to imported global `i`'s definition.
    pub fn imported_global(&self, i: GlobalIndex) -> u32 {
        debug_assert!(i.as_u32() < self.num_imported_globals);
        self.imported_globals + i.as_u32() * 8
    }

    /// Offset of defined table `i`'s inline definition.
    pub fn defined_table(&self, i: DefinedTableIndex) -> u32 {
        debug_assert!(i.as_u32() < self.num_defined_tables);
        self.defined_tables + i.as_u32() * definition::SIZE
    }

    /// Offset of defined memory `i`'s inline definition.
    pub fn defined_memory(&self, i: DefinedMemoryIndex) -> u32 {
        debug_assert!(i.as_u32() < self.num_defined_memories);
        self.defined_memories + i.as_u32() * definition::SIZE
    }

    /// Offset of defined global `i`'s inline storage.
    pub fn defined_global(&self, i: DefinedGlobalIndex) -> u32 {
        debug_assert!(i.as_u32() < self.num_defined_globals);
        self.defined_globals + i.as_u32() * GLOBAL_SIZE
    }

    /// Offset of the pointer to imported tag `i`'s definition.
    pub fn imported_tag(&self, i: TagIndex) -> u32 {
        debug_assert!(i.as_u32() < self.num_imported_tags);
        self.imported_tags + i.as_u32() * 8
    }

    /// Offset of defined tag `i`'s definition.
    pub fn defined_tag(&self, i: DefinedTagIndex) -> u32 {
        debug_assert!(i.as_u32() < self.num_defined_tags);
        self.defined_tags + i.as_u32() * tag::SIZE
    }

    /// Number of data segment records (every data segment of a module with
    /// GC types, none otherwise).
    pub fn num_data_segments(&self) -> u32 {
        self.num_data_segments
    }

    /// Offset of data segment `i`'s record ([`data_segment`]).
    pub fn data_segment(&self, i: u32) -> u32 {
        debug_assert!(i < self.num_data_segments);
        self.data_segments + i * data_segment::SIZE
    }

    /// Offset of funcref record `slot` (see [`funcref_slot`]).
    pub fn funcref(&self, slot: u32) -> u32 {
        debug_assert!(slot < self.num_funcrefs);
        self.funcrefs + slot * func_ref::SIZE
    }
}

/// The funcref record slot of defined function `func`, if the function
/// escapes.
pub fn funcref_slot(module: &ModuleInfo, func: FuncIndex) -> Option<u32> {
    module.defined_escaping_funcs().binary_search(&func).ok().map(|i| i as u32)
}
