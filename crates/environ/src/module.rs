//! `ModuleInfo`: everything about a module that code generation and
//! instantiation need, apart from the function bodies themselves.

use crate::const_expr::ConstExpr;
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
    /// Function types, by module type index.
    pub types: Vec<FuncType>,
    /// Type index of every function, imports first.
    pub functions: Vec<u32>,
    /// Every table, imports first.
    pub tables: Vec<TableType>,
    /// Every memory, imports first.
    pub memories: Vec<MemoryType>,
    /// Every global, imports first.
    pub globals: Vec<GlobalType>,
    /// Number of imported functions (they come first in `functions`).
    pub num_imported_funcs: u32,
    /// Number of imported tables.
    pub num_imported_tables: u32,
    /// Number of imported memories.
    pub num_imported_memories: u32,
    /// Number of imported globals.
    pub num_imported_globals: u32,
    /// Initial values of the defined tables.
    pub table_inits: Vec<TableInit>,
    /// Initializers of the defined globals.
    pub global_inits: Vec<ConstExpr>,
    /// Imports in declaration order.
    pub imports: Vec<Import>,
    /// Exports in declaration order.
    pub exports: Vec<Export>,
    /// The start function.
    pub start: Option<u32>,
    /// Element segments.
    pub elements: Vec<ElementSegment>,
    /// Data segments.
    pub data: Vec<DataSegment>,
    /// Function names from the name section, sorted by index.
    pub func_names: Vec<(u32, String)>,
    /// Functions whose reference can escape (exports, elements, `ref.func`,
    /// global initializers), sorted and deduplicated.
    pub escaping_funcs: Vec<u32>,
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

    /// The signature of function `func`.
    pub fn func_type(&self, func: u32) -> &FuncType {
        &self.types[self.functions[func as usize] as usize]
    }

    /// Whether function `func` is imported.
    pub fn is_imported_func(&self, func: u32) -> bool {
        func < self.num_imported_funcs
    }

    /// Whether table `t` is imported.
    pub fn is_imported_table(&self, t: u32) -> bool {
        t < self.num_imported_tables
    }

    /// Whether memory `m` is imported.
    pub fn is_imported_memory(&self, m: u32) -> bool {
        m < self.num_imported_memories
    }

    /// Whether global `g` is imported.
    pub fn is_imported_global(&self, g: u32) -> bool {
        g < self.num_imported_globals
    }

    /// The name-section name of function `func`, if any.
    pub fn func_name(&self, func: u32) -> Option<&str> {
        self.func_names
            .binary_search_by_key(&func, |(i, _)| *i)
            .ok()
            .map(|i| self.func_names[i].1.as_str())
    }

    /// Checks that every index in the module refers to something that
    /// exists (used when loading artifacts, which bypass validation).
    ///
    /// # Errors
    ///
    /// A short description of the first dangling index.
    pub fn check_consistency(&self) -> Result<(), &'static str> {
        let nf = self.functions.len() as u32;
        let (nt, nm, ng) = (self.tables.len() as u32, self.memories.len() as u32, self.globals.len() as u32);
        if self.functions.iter().any(|t| *t as usize >= self.types.len()) {
            return Err("function type index");
        }
        if self.num_imported_funcs > nf || self.num_imported_tables > nt || self.num_imported_memories > nm || self.num_imported_globals > ng {
            return Err("import counts");
        }
        if self.table_inits.len() != self.num_defined_tables() as usize || self.global_inits.len() != self.num_defined_globals() as usize {
            return Err("initializer counts");
        }
        let entity_ok = |e: &EntityIndex| match *e {
            EntityIndex::Function(i) => i < nf,
            EntityIndex::Table(i) => i < nt,
            EntityIndex::Memory(i) => i < nm,
            EntityIndex::Global(i) => i < ng,
        };
        if !self.imports.iter().all(|i| entity_ok(&i.index)) || !self.exports.iter().all(|e| entity_ok(&e.index)) {
            return Err("import or export index");
        }
        if self.start.is_some_and(|f| f >= nf) || self.escaping_funcs.iter().any(|f| *f >= nf) {
            return Err("function index");
        }
        if !self.escaping_funcs.windows(2).all(|w| w[0] < w[1]) {
            return Err("escaping function order");
        }
        let expr_ok = |e: &ConstExpr| {
            e.ops.iter().all(|op| match *op {
                crate::ConstOp::RefFunc(f) => f < nf,
                crate::ConstOp::GlobalGet(g) => g < ng,
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
        for seg in &self.data {
            if let SegmentMode::Active { index, offset } = &seg.mode
                && (*index >= nm || !expr_ok(offset))
            {
                return Err("data segment");
            }
        }
        Ok(())
    }

    /// The type of the entity at `index`.
    pub fn entity_type(&self, index: EntityIndex) -> EntityType {
        match index {
            EntityIndex::Function(f) => EntityType::Function(self.functions[f as usize]),
            EntityIndex::Table(t) => EntityType::Table(self.tables[t as usize]),
            EntityIndex::Memory(m) => EntityType::Memory(self.memories[m as usize]),
            EntityIndex::Global(g) => EntityType::Global(self.globals[g as usize]),
        }
    }
}
