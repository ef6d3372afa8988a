//! `ModuleInfo`: everything about a module that code generation and
//! instantiation need, apart from the function bodies themselves.

use crate::const_expr::ConstExpr;
use crate::index::*;
use crate::types::*;
use serde::{Deserialize, Serialize};

/// A module-level import.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Import {
    /// The module name.
    pub module: String,
    /// The field name.
    pub field: String,
    /// What is imported.
    pub ty: EntityType,
    /// Index in the entity's own index space.
    pub index: EntityIndex,
}

/// A module-level export.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Export {
    /// The exported name.
    pub name: String,
    /// The exported entity.
    pub index: EntityIndex,
}

/// Where an element segment goes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SegmentMode {
    /// Copied into a table at instantiation.
    Active {
        /// The table (or memory, for data segments).
        index: u32,
        /// The offset expression.
        offset: ConstExpr,
    },
    /// Available to `table.init` / `memory.init`.
    Passive,
    /// Only declares functions referenceable by `ref.func`; dropped at once.
    Declared,
}

/// The items of an element segment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ElementItems {
    /// Function indices (the common MVP form).
    Functions(Vec<u32>),
    /// Constant expressions of reference type.
    Expressions(Vec<ConstExpr>),
}

impl ElementItems {
    /// Number of items.
    pub fn len(&self) -> usize {
        match self {
            ElementItems::Functions(f) => f.len(),
            ElementItems::Expressions(e) => e.len(),
        }
    }

    /// Whether the segment is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An element segment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ElementSegment {
    /// Active, passive or declared.
    pub mode: SegmentMode,
    /// Type of the elements.
    pub ty: WasmRefType,
    /// The elements.
    pub items: ElementItems,
}

/// A data segment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DataSegment {
    /// Active or passive.
    pub mode: SegmentMode,
    /// The bytes.
    pub bytes: crate::blob::Blob,
}

/// How a defined table's elements start out.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum TableInit {
    /// All null.
    Null,
    /// All equal to the value of this expression (function-references).
    Expr(ConstExpr),
}

/// Everything about a module except its function bodies.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ModuleInfo {
    /// The module's name from the name section, if any.
    pub name: Option<String>,
    /// Defined types (function, struct and array types), by module type
    /// index.
    pub types: Vec<WasmSubType>,
    /// The recursion groups of `types`: the index of each group's first
    /// type, in order (empty: every type is a group of its own). A type
    /// refers only to earlier types and to types of its own group.
    pub rec_group_starts: Vec<u32>,
    /// Type of every function, imports first.
    pub functions: Vec<TypeIndex>,
    /// Every table, imports first.
    pub tables: Vec<TableType>,
    /// Every memory, imports first.
    pub memories: Vec<MemoryType>,
    /// Every global, imports first.
    pub globals: Vec<GlobalType>,
    /// The type (a function type whose parameters are the payload) of
    /// every tag, imports first.
    pub tags: Vec<TypeIndex>,
    /// Number of imported functions (they come first in `functions`).
    pub num_imported_funcs: u32,
    /// Number of imported tables.
    pub num_imported_tables: u32,
    /// Number of imported memories.
    pub num_imported_memories: u32,
    /// Number of imported globals.
    pub num_imported_globals: u32,
    /// Number of imported tags.
    pub num_imported_tags: u32,
    /// Initial values of the defined tables.
    pub table_inits: Vec<TableInit>,
    /// Initializers of the defined globals.
    pub global_inits: Vec<ConstExpr>,
    /// Imports in declaration order.
    pub imports: Vec<Import>,
    /// Exports in declaration order.
    pub exports: Vec<Export>,
    /// The start function.
    pub start: Option<FuncIndex>,
    /// Element segments.
    pub elements: Vec<ElementSegment>,
    /// Data segments.
    pub data: Vec<DataSegment>,
    /// Function names from the name section, sorted by index.
    pub func_names: Vec<(FuncIndex, String)>,
    /// Functions whose reference can escape (exports, elements, `ref.func`,
    /// global initializers), sorted and deduplicated.
    pub escaping_funcs: Vec<FuncIndex>,
    /// Defined funcref tables initialized lazily: their active element
    /// segments were folded, at translation, into one array of initial
    /// function indices, read when an element is first used.
    pub lazy_tables: Vec<LazyTable>,
}

impl ModuleInfo {
    /// Whether the module declares a struct or array type, or a global,
    /// table or element segment whose values are in the `any` hierarchy:
    /// it will almost surely make GC objects (its constant expressions
    /// may), so instantiating it gives its store a GC heap at once. The
    /// store of any other module gets one at its first allocation.
    pub fn declares_gc_types(&self) -> bool {
        use crate::types::{WasmCompositeType, WasmValType};
        self.types.iter().any(|t| !matches!(t.composite, WasmCompositeType::Func(_)))
            || self.globals.iter().any(|g| matches!(g.content, WasmValType::Ref(r) if r.is_any()))
            || self.tables.iter().any(|t| t.element.is_any())
            || self.elements.iter().any(|e| e.ty.is_any())
    }
}

/// The precomputed initial contents of a lazily initialized table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LazyTable {
    /// The (defined) table.
    pub table: TableIndex,
    /// Initial function index of each element (`u32::MAX` for null), as
    /// little-endian `u32`s; elements past the end start null.
    pub inits: crate::blob::Blob,
    /// The element segments folded into `inits` (skipped at instantiation).
    pub segments: Vec<u32>,
}

impl LazyTable {
    /// Number of elements with an initial value.
    pub fn len(&self) -> u32 {
        (self.inits.len() / 4) as u32
    }

    /// Whether no element has an initial value.
    pub fn is_empty(&self) -> bool {
        self.inits.is_empty()
    }

    /// Initial function of element `i`, or `None` for null.
    pub fn init(&self, i: u32) -> Option<u32> {
        if i >= self.len() {
            return None;
        }
        let f = self.inits.u32_at(i as usize);
        (f != u32::MAX).then_some(f)
    }
}

impl ModuleInfo {
    /// Number of functions defined (not imported).
    pub fn num_defined_funcs(&self) -> u32 {
        self.functions.len() as u32 - self.num_imported_funcs
    }

    /// Number of tables defined (not imported).
    pub fn num_defined_tables(&self) -> u32 {
        self.tables.len() as u32 - self.num_imported_tables
    }

    /// Number of memories defined (not imported).
    pub fn num_defined_memories(&self) -> u32 {
        self.memories.len() as u32 - self.num_imported_memories
    }

    /// Number of globals defined (not imported).
    pub fn num_defined_globals(&self) -> u32 {
        self.globals.len() as u32 - self.num_imported_globals
    }

    /// Number of defined tags.
    pub fn num_defined_tags(&self) -> u32 {
        self.tags.len() as u32 - self.num_imported_tags
    }

    /// The recursion groups of `types`, as ranges of type indices, in
    /// order (see [`ModuleInfo::rec_group_starts`]).
    pub fn rec_groups(&self) -> Vec<std::ops::Range<usize>> {
        if self.rec_group_starts.is_empty() {
            return (0..self.types.len()).map(|i| i..i + 1).collect();
        }
        let starts = &self.rec_group_starts;
        (0..starts.len())
            .map(|k| {
                let end = starts.get(k + 1).map_or(self.types.len(), |e| *e as usize);
                starts[k] as usize..end.max(starts[k] as usize)
            })
            .collect()
    }

    /// Whether tag `t` is imported.
    pub fn is_imported_tag(&self, t: TagIndex) -> bool {
        t.as_u32() < self.num_imported_tags
    }

    /// The defined-tag number of `t`, or `None` if it is imported.
    pub fn defined_tag_index(&self, t: TagIndex) -> Option<DefinedTagIndex> {
        t.as_u32().checked_sub(self.num_imported_tags).map(DefinedTagIndex::from_u32)
    }

    /// The tag index of defined tag `d`.
    pub fn tag_index(&self, d: DefinedTagIndex) -> TagIndex {
        TagIndex::from_u32(self.num_imported_tags + d.as_u32())
    }

    /// The module's defined tags, in order.
    pub fn defined_tags(&self) -> impl ExactSizeIterator<Item = DefinedTagIndex> + use<> {
        (0..self.num_defined_tags()).map(DefinedTagIndex::from_u32)
    }

    /// The signature of function `func`.
    ///
    /// # Panics
    ///
    /// `func` is not a function of the module.
    pub fn func_type(&self, func: FuncIndex) -> &FuncType {
        self.func_type_at(self.func_type_index(func))
    }

    /// The function type at module type index `t`.
    ///
    /// # Panics
    ///
    /// `t` is not a function type of the module (validation, and
    /// [`ModuleInfo::check_consistency`] for artifacts, guarantee that the
    /// types of functions, tags and `call_indirect` are).
    pub fn func_type_at(&self, t: TypeIndex) -> &FuncType {
        self.types[t.index()].as_func().expect("a function type index names a function type")
    }

    /// The type index of function `func`.
    ///
    /// # Panics
    ///
    /// `func` is not a function of the module.
    pub fn func_type_index(&self, func: FuncIndex) -> TypeIndex {
        self.functions[func.index()]
    }

    /// Whether function `func` is imported.
    pub fn is_imported_func(&self, func: FuncIndex) -> bool {
        func.as_u32() < self.num_imported_funcs
    }

    /// Whether table `t` is imported.
    pub fn is_imported_table(&self, t: TableIndex) -> bool {
        t.as_u32() < self.num_imported_tables
    }

    /// Whether memory `m` is imported.
    pub fn is_imported_memory(&self, m: MemoryIndex) -> bool {
        m.as_u32() < self.num_imported_memories
    }

    /// Whether global `g` is imported.
    pub fn is_imported_global(&self, g: GlobalIndex) -> bool {
        g.as_u32() < self.num_imported_globals
    }

    /// The defined-function number of `func`, or `None` if it is imported.
    pub fn defined_func_index(&self, func: FuncIndex) -> Option<DefinedFuncIndex> {
        func.as_u32().checked_sub(self.num_imported_funcs).map(DefinedFuncIndex::from_u32)
    }

    /// The function index of defined function `d`.
    pub fn func_index(&self, d: DefinedFuncIndex) -> FuncIndex {
        FuncIndex::from_u32(self.num_imported_funcs + d.as_u32())
    }

    /// The defined-table number of `t`, or `None` if it is imported.
    pub fn defined_table_index(&self, t: TableIndex) -> Option<DefinedTableIndex> {
        t.as_u32().checked_sub(self.num_imported_tables).map(DefinedTableIndex::from_u32)
    }

    /// The table index of defined table `d`.
    pub fn table_index(&self, d: DefinedTableIndex) -> TableIndex {
        TableIndex::from_u32(self.num_imported_tables + d.as_u32())
    }

    /// The defined-memory number of `m`, or `None` if it is imported.
    pub fn defined_memory_index(&self, m: MemoryIndex) -> Option<DefinedMemoryIndex> {
        m.as_u32().checked_sub(self.num_imported_memories).map(DefinedMemoryIndex::from_u32)
    }

    /// The memory index of defined memory `d`.
    pub fn memory_index(&self, d: DefinedMemoryIndex) -> MemoryIndex {
        MemoryIndex::from_u32(self.num_imported_memories + d.as_u32())
    }

    /// The defined-global number of `g`, or `None` if it is imported.
    pub fn defined_global_index(&self, g: GlobalIndex) -> Option<DefinedGlobalIndex> {
        g.as_u32().checked_sub(self.num_imported_globals).map(DefinedGlobalIndex::from_u32)
    }

    /// The global index of defined global `d`.
    pub fn global_index(&self, d: DefinedGlobalIndex) -> GlobalIndex {
        GlobalIndex::from_u32(self.num_imported_globals + d.as_u32())
    }

    /// The module's defined functions, in order.
    pub fn defined_funcs(&self) -> impl ExactSizeIterator<Item = DefinedFuncIndex> + use<> {
        (0..self.num_defined_funcs()).map(DefinedFuncIndex::from_u32)
    }

    /// The module's defined tables, in order.
    pub fn defined_tables(&self) -> impl ExactSizeIterator<Item = DefinedTableIndex> + use<> {
        (0..self.num_defined_tables()).map(DefinedTableIndex::from_u32)
    }

    /// The module's defined memories, in order.
    pub fn defined_memories(&self) -> impl ExactSizeIterator<Item = DefinedMemoryIndex> + use<> {
        (0..self.num_defined_memories()).map(DefinedMemoryIndex::from_u32)
    }

    /// The module's defined globals, in order.
    pub fn defined_globals(&self) -> impl ExactSizeIterator<Item = DefinedGlobalIndex> + use<> {
        (0..self.num_defined_globals()).map(DefinedGlobalIndex::from_u32)
    }

    /// The escaping functions the module defines (a suffix of
    /// [`ModuleInfo::escaping_funcs`]).
    pub fn defined_escaping_funcs(&self) -> &[FuncIndex] {
        let first = self.escaping_funcs.partition_point(|f| f.as_u32() < self.num_imported_funcs);
        &self.escaping_funcs[first..]
    }

    /// The name-section name of function `func`, if any.
    pub fn func_name(&self, func: FuncIndex) -> Option<&str> {
        self.func_names.binary_search_by_key(&func, |(i, _)| *i).ok().map(|i| self.func_names[i].1.as_str())
    }

    /// Checks that every index in the module refers to something that
    /// exists (used when loading artifacts, which bypass validation).
    ///
    /// # Errors
    ///
    /// A short description of the first dangling index.
    pub fn check_consistency(&self) -> Result<(), &'static str> {
        let starts_ok = self.rec_group_starts.first().is_none_or(|s| *s == 0)
            && self.rec_group_starts.windows(2).all(|w| w[0] < w[1])
            && self.rec_group_starts.last().is_none_or(|s| (*s as usize) < self.types.len().max(1));
        if !starts_ok {
            return Err("recursion groups");
        }
        for group in self.rec_groups() {
            if self.types[group.clone()].iter().any(|t| t.max_concrete_index().is_some_and(|i| i.index() >= group.end))
            {
                return Err("type reference past its recursion group");
            }
        }
        for (i, t) in self.types.iter().enumerate() {
            let bad_super = t.supertype.is_some_and(|s| {
                s.concrete_kind() != Some(t.composite.kind())
                    || s.concrete_index().is_none_or(|j| j.index() >= i || self.types[j.index()].is_final)
            });
            let bad_ref = t.heap_types().iter().any(|h| {
                h.concrete_index().is_some_and(|j| {
                    self.types.get(j.index()).is_none_or(|u| Some(u.composite.kind()) != h.concrete_kind())
                }) || h.engine_id().is_some()
                    || matches!(h, WasmHeapType::RecLocal(_))
            });
            if bad_super || bad_ref {
                return Err("type references");
            }
        }
        let is_func = |t: &TypeIndex| self.types.get(t.index()).is_some_and(|u| u.as_func().is_some());
        let nf = self.functions.len() as u32;
        let (nt, nm, ng) = (self.tables.len() as u32, self.memories.len() as u32, self.globals.len() as u32);
        if !self.functions.iter().all(is_func) {
            return Err("function type index");
        }
        if !self.tags.iter().all(is_func) || self.num_imported_tags as usize > self.tags.len() {
            return Err("tag type index");
        }
        if self.num_imported_funcs > nf
            || self.num_imported_tables > nt
            || self.num_imported_memories > nm
            || self.num_imported_globals > ng
        {
            return Err("import counts");
        }
        if self.table_inits.len() != self.num_defined_tables() as usize
            || self.global_inits.len() != self.num_defined_globals() as usize
        {
            return Err("initializer counts");
        }
        let entity_ok = |e: &EntityIndex| match *e {
            EntityIndex::Function(i) => i.as_u32() < nf,
            EntityIndex::Table(i) => i.as_u32() < nt,
            EntityIndex::Memory(i) => i.as_u32() < nm,
            EntityIndex::Global(i) => i.as_u32() < ng,
            EntityIndex::Tag(i) => i.index() < self.tags.len(),
        };
        if !self.imports.iter().all(|i| entity_ok(&i.index)) || !self.exports.iter().all(|e| entity_ok(&e.index)) {
            return Err("import or export index");
        }
        if self.start.is_some_and(|f| f.as_u32() >= nf) || self.escaping_funcs.iter().any(|f| f.as_u32() >= nf) {
            return Err("function index");
        }
        if !self.escaping_funcs.windows(2).all(|w| w[0] < w[1]) {
            return Err("escaping function order");
        }
        let expr_ok = |e: &ConstExpr| {
            e.ops.iter().all(|op| match *op {
                crate::ConstOp::RefFunc(f) => f < nf,
                crate::ConstOp::GlobalGet(g) => g < ng,
                crate::ConstOp::StructNew(t) | crate::ConstOp::StructNewDefault(t) => {
                    self.types.get(t as usize).is_some_and(|u| u.composite.kind() == CompositeKind::Struct)
                }
                crate::ConstOp::ArrayNew(t)
                | crate::ConstOp::ArrayNewDefault(t)
                | crate::ConstOp::ArrayNewFixed(t, _) => {
                    self.types.get(t as usize).is_some_and(|u| u.composite.kind() == CompositeKind::Array)
                }
                _ => true,
            })
        };
        let init_ok = |i: &TableInit| match i {
            TableInit::Null => true,
            TableInit::Expr(e) => expr_ok(e),
        };
        if !self.global_inits.iter().all(expr_ok) || !self.table_inits.iter().all(init_ok) {
            return Err("initializer expression");
        }
        for seg in &self.elements {
            if let SegmentMode::Active { index, offset } = &seg.mode
                && (*index >= nt || !expr_ok(offset))
            {
                return Err("element segment");
            }
            let items_ok = match &seg.items {
                ElementItems::Functions(fs) => fs.iter().all(|f| *f < nf),
                ElementItems::Expressions(es) => es.iter().all(expr_ok),
            };
            if !items_ok {
                return Err("element segment item");
            }
        }
        for l in &self.lazy_tables {
            let fits = !self.is_imported_table(l.table)
                && l.table.as_u32() < nt
                && u64::from(l.len()) <= self.tables[l.table.index()].minimum
                && l.inits.len() % 4 == 0
                && l.segments.iter().all(|s| (*s as usize) < self.elements.len());
            if !fits || (0..l.len()).filter_map(|i| l.init(i)).any(|f| f >= nf) {
                return Err("lazy table");
            }
        }
        for seg in &self.data {
            if let SegmentMode::Active { index, offset } = &seg.mode
                && (*index >= nm || !expr_ok(offset))
            {
                return Err("data segment");
            }
        }
        Ok(())
    }

    /// Folds the active element segments of eligible defined funcref tables
    /// into [`ModuleInfo::lazy_tables`]. A table qualifies when every
    /// active segment writing to it has a constant offset, lists only
    /// function references (or nulls), and fits in the table's minimum size;
    /// its contents are then determined before instantiation.
    pub fn compute_lazy_tables(&mut self) {
        let mut lazy = Vec::new();
        for defined in self.defined_tables() {
            let t = self.table_index(defined);
            let ty = self.tables[t.index()];
            if !ty.element.is_func() || !matches!(self.table_inits.get(defined.index()), Some(TableInit::Null)) {
                continue;
            }
            let mut inits: Vec<u32> = Vec::new();
            let mut segments = Vec::new();
            let mut ok = true;
            for (i, seg) in self.elements.iter().enumerate() {
                let SegmentMode::Active { index, offset } = &seg.mode else { continue };
                if *index != t.as_u32() {
                    continue;
                }
                let funcs: Option<Vec<u32>> = match &seg.items {
                    ElementItems::Functions(fs) => Some(fs.clone()),
                    ElementItems::Expressions(es) => es
                        .iter()
                        .map(|e| match e.ops.as_slice() {
                            [crate::ConstOp::RefFunc(f)] => Some(*f),
                            [crate::ConstOp::RefNull] => Some(u32::MAX),
                            _ => None,
                        })
                        .collect(),
                };
                let start = offset.as_const_u64().map(|o| if ty.table64 { o } else { o & 0xffff_ffff });
                match (funcs, start) {
                    (Some(fs), Some(start)) if start.saturating_add(fs.len() as u64) <= ty.minimum => {
                        let end = start as usize + fs.len();
                        if inits.len() < end {
                            inits.resize(end, u32::MAX);
                        }
                        inits[start as usize..end].copy_from_slice(&fs);
                        segments.push(i as u32);
                    }
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok && !segments.is_empty() {
                let bytes = inits.iter().flat_map(|f| f.to_le_bytes()).collect();
                lazy.push(LazyTable { table: t, inits: crate::blob::Blob::from_vec(bytes), segments });
            }
        }
        self.lazy_tables = lazy;
    }

    /// The lazy-initialization data of table `t`, if it has any.
    pub fn lazy_table(&self, t: TableIndex) -> Option<&LazyTable> {
        self.lazy_tables.iter().find(|l| l.table == t)
    }

    /// The type of the entity at `index`.
    pub fn entity_type(&self, index: EntityIndex) -> EntityType {
        match index {
            EntityIndex::Function(f) => EntityType::Function(self.func_type_index(f)),
            EntityIndex::Table(t) => EntityType::Table(self.tables[t.index()]),
            EntityIndex::Memory(m) => EntityType::Memory(self.memories[m.index()]),
            EntityIndex::Global(g) => EntityType::Global(self.globals[g.index()]),
            EntityIndex::Tag(t) => EntityType::Tag(self.tags[t.index()]),
        }
    }
}
