//! WebAssembly types as Kiln records them: small, serializable, hashable
//! copies of what wasmparser reports, independent of any compiler.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A WebAssembly value type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WasmValType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// 128-bit SIMD vector.
    V128,
    /// A reference.
    Ref(WasmRefType),
}

impl WasmValType {
    /// `funcref`, the nullable function reference.
    pub const FUNCREF: WasmValType = WasmValType::Ref(WasmRefType::FUNCREF);
    /// `externref`, the nullable host reference.
    pub const EXTERNREF: WasmValType = WasmValType::Ref(WasmRefType::EXTERNREF);
    /// `exnref`.
    pub const EXNREF: WasmValType = WasmValType::Ref(WasmRefType::EXNREF);
    /// `anyref`.
    pub const ANYREF: WasmValType = WasmValType::Ref(WasmRefType::ANYREF);

    /// Converts wasmparser's value type, failing for types Kiln does not
    /// support (GC heap types and the like).
    pub fn from_wasmparser(ty: wasmparser::ValType) -> Result<Self, UnsupportedType> {
        Ok(match ty {
            wasmparser::ValType::I32 => WasmValType::I32,
            wasmparser::ValType::I64 => WasmValType::I64,
            wasmparser::ValType::F32 => WasmValType::F32,
            wasmparser::ValType::F64 => WasmValType::F64,
            wasmparser::ValType::V128 => WasmValType::V128,
            wasmparser::ValType::Ref(r) => WasmValType::Ref(WasmRefType::from_wasmparser(r)?),
        })
    }

    /// Whether this is a reference type.
    pub fn is_ref(&self) -> bool {
        matches!(self, WasmValType::Ref(_))
    }

    /// This type with module type indices replaced by engine type ids
    /// (`ConcreteFunc(t)` → `EngineFunc(engine_ids[t])`): the form in
    /// which types of different modules compare.
    ///
    /// # Panics
    ///
    /// A concrete type index is not below `engine_ids.len()` (translation
    /// only accepts references to earlier types).
    pub fn canonical(self, engine_ids: &[u32]) -> WasmValType {
        match self {
            WasmValType::Ref(r) => WasmValType::Ref(r.canonical(engine_ids)),
            other => other,
        }
    }
}

impl fmt::Display for WasmValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WasmValType::I32 => f.write_str("i32"),
            WasmValType::I64 => f.write_str("i64"),
            WasmValType::F32 => f.write_str("f32"),
            WasmValType::F64 => f.write_str("f64"),
            WasmValType::V128 => f.write_str("v128"),
            WasmValType::Ref(r) => r.fmt(f),
        }
    }
}

/// A reference type: a heap type and whether null is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WasmRefType {
    /// Whether `null` is a value of this type.
    pub nullable: bool,
    /// What the reference points to.
    pub heap: WasmHeapType,
}

impl WasmRefType {
    /// `funcref`.
    pub const FUNCREF: WasmRefType = WasmRefType { nullable: true, heap: WasmHeapType::Func };
    /// `externref`.
    pub const EXTERNREF: WasmRefType = WasmRefType { nullable: true, heap: WasmHeapType::Extern };
    /// `exnref`.
    pub const EXNREF: WasmRefType = WasmRefType { nullable: true, heap: WasmHeapType::Exn };
    /// `anyref`.
    pub const ANYREF: WasmRefType = WasmRefType { nullable: true, heap: WasmHeapType::Any };

    /// Converts wasmparser's reference type.
    pub fn from_wasmparser(r: wasmparser::RefType) -> Result<Self, UnsupportedType> {
        let heap = match r.heap_type() {
            wasmparser::HeapType::Abstract { shared: false, ty } => match ty {
                wasmparser::AbstractHeapType::Func => WasmHeapType::Func,
                wasmparser::AbstractHeapType::Extern => WasmHeapType::Extern,
                wasmparser::AbstractHeapType::Exn => WasmHeapType::Exn,
                wasmparser::AbstractHeapType::NoExn => WasmHeapType::NoExn,
                wasmparser::AbstractHeapType::NoFunc => WasmHeapType::NoFunc,
                wasmparser::AbstractHeapType::NoExtern => WasmHeapType::NoExtern,
                wasmparser::AbstractHeapType::Any => WasmHeapType::Any,
                wasmparser::AbstractHeapType::Eq => WasmHeapType::Eq,
                wasmparser::AbstractHeapType::I31 => WasmHeapType::I31,
                wasmparser::AbstractHeapType::Struct => WasmHeapType::Struct,
                wasmparser::AbstractHeapType::Array => WasmHeapType::Array,
                wasmparser::AbstractHeapType::None => WasmHeapType::None,
                other => return Err(UnsupportedType(format!("heap type {other:?}"))),
            },
            // Without GC every defined type is a function type.
            wasmparser::HeapType::Concrete(wasmparser::UnpackedIndex::Module(i)) => {
                WasmHeapType::ConcreteFunc(crate::TypeIndex::from_u32(i))
            }
            other => return Err(UnsupportedType(format!("heap type {other:?}"))),
        };
        Ok(WasmRefType { nullable: r.is_nullable(), heap })
    }

    /// This type in engine form (see [`WasmValType::canonical`]).
    ///
    /// # Panics
    ///
    /// As [`WasmValType::canonical`].
    pub fn canonical(self, engine_ids: &[u32]) -> WasmRefType {
        match self.heap {
            WasmHeapType::ConcreteFunc(t) => {
                WasmRefType { nullable: self.nullable, heap: WasmHeapType::EngineFunc(engine_ids[t.index()]) }
            }
            _ => self,
        }
    }

    /// The module type index this type refers to, if it is a typed
    /// function reference in module form.
    pub fn concrete_index(&self) -> Option<crate::TypeIndex> {
        match self.heap {
            WasmHeapType::ConcreteFunc(t) => Some(t),
            _ => None,
        }
    }

    /// Whether every value of type `self` is a value of type `other`
    /// (reference subtyping without GC: non-null below nullable, a typed
    /// function reference below `func`, `noexn` below `exn`). Both in
    /// engine form.
    pub fn is_subtype_of(&self, other: &WasmRefType) -> bool {
        use WasmHeapType as H;
        let heap = match (self.heap, other.heap) {
            (a, b) if a == b => true,
            (_, H::Func) => self.is_func(),
            (H::NoFunc, _) => other.is_func(),
            (H::NoExn, H::Exn) | (H::NoExtern, H::Extern) => true,
            (_, H::Any) => self.is_any(),
            (H::I31 | H::Struct | H::Array | H::None, H::Eq) => true,
            (H::None, H::I31 | H::Struct | H::Array) => true,
            _ => false,
        };
        (other.nullable || !self.nullable) && heap
    }

    /// Whether values of this type are in the `any` hierarchy (GC values).
    pub fn is_any(&self) -> bool {
        use WasmHeapType as H;
        matches!(self.heap, H::Any | H::Eq | H::I31 | H::Struct | H::Array | H::None)
    }

    /// Whether values of this type are exception references.
    pub fn is_exn(&self) -> bool {
        matches!(self.heap, WasmHeapType::Exn | WasmHeapType::NoExn)
    }

    /// Whether values of this type are function references.
    pub fn is_func(&self) -> bool {
        matches!(
            self.heap,
            WasmHeapType::Func
                | WasmHeapType::ConcreteFunc(_)
                | WasmHeapType::EngineFunc(_)
                | WasmHeapType::RecLocal(_)
                | WasmHeapType::NoFunc
        )
    }
}

impl fmt::Display for WasmRefType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let null = if self.nullable { "null " } else { "" };
        match (self.nullable, self.heap) {
            (true, WasmHeapType::Func) => f.write_str("funcref"),
            (true, WasmHeapType::Extern) => f.write_str("externref"),
            (false, WasmHeapType::Func) => f.write_str("(ref func)"),
            (false, WasmHeapType::Extern) => f.write_str("(ref extern)"),
            (true, WasmHeapType::Exn) => f.write_str("exnref"),
            (false, WasmHeapType::Exn) => f.write_str("(ref exn)"),
            (true, WasmHeapType::NoExn) => f.write_str("nullexnref"),
            (false, WasmHeapType::NoExn) => f.write_str("(ref noexn)"),
            (true, WasmHeapType::NoFunc) => f.write_str("nullfuncref"),
            (true, WasmHeapType::NoExtern) => f.write_str("nullexternref"),
            (true, WasmHeapType::Any) => f.write_str("anyref"),
            (true, WasmHeapType::Eq) => f.write_str("eqref"),
            (true, WasmHeapType::I31) => f.write_str("i31ref"),
            (true, WasmHeapType::Struct) => f.write_str("structref"),
            (true, WasmHeapType::Array) => f.write_str("arrayref"),
            (true, WasmHeapType::None) => f.write_str("nullref"),
            (false, WasmHeapType::NoFunc) => f.write_str("(ref nofunc)"),
            (false, WasmHeapType::NoExtern) => f.write_str("(ref noextern)"),
            (false, WasmHeapType::Any) => f.write_str("(ref any)"),
            (false, WasmHeapType::Eq) => f.write_str("(ref eq)"),
            (false, WasmHeapType::I31) => f.write_str("(ref i31)"),
            (false, WasmHeapType::Struct) => f.write_str("(ref struct)"),
            (false, WasmHeapType::Array) => f.write_str("(ref array)"),
            (false, WasmHeapType::None) => f.write_str("(ref none)"),
            (_, WasmHeapType::ConcreteFunc(t)) => write!(f, "(ref {null}{})", t.as_u32()),
            (_, WasmHeapType::EngineFunc(id)) => write!(f, "(ref {null}<engine type {id}>)"),
            (_, WasmHeapType::RecLocal(i)) => write!(f, "(ref {null}<rec.{i}>)"),
        }
    }
}

/// The heap type a reference points into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WasmHeapType {
    /// Functions.
    Func,
    /// Host values (`externref`).
    Extern,
    /// Functions of the module's function type at this index (typed
    /// function references: `(ref $t)`).
    ConcreteFunc(crate::TypeIndex),
    /// Functions of the engine's canonical function type with this id:
    /// the form `ConcreteFunc` takes in an engine's type registry and in a
    /// store's runtime objects, where module indices mean nothing.
    EngineFunc(u32),
    /// Functions of the type at this index within the same recursion
    /// group: the form references inside a group take in the keys under
    /// which an engine's registry canonicalizes whole groups (never in a
    /// module, a runtime object or compiled code).
    RecLocal(u32),
    /// Exception objects (`exnref`, exception handling).
    Exn,
    /// The bottom of `exn`: only null (`nullexnref`).
    NoExn,
    /// The bottom of the function types: only null (`nullfuncref`).
    NoFunc,
    /// The bottom of `extern`: only null (`nullexternref`).
    NoExtern,
    /// Every GC value (`anyref`, the GC proposal). Kiln has no GC objects
    /// yet, so the only value of the `any` types is null.
    Any,
    /// GC values comparable with `ref.eq` (`eqref`).
    Eq,
    /// Unboxed 31-bit integers (`i31ref`).
    I31,
    /// GC structs (`structref`).
    Struct,
    /// GC arrays (`arrayref`).
    Array,
    /// The bottom of `any`: only null (`nullref`).
    None,
}

/// A type Kiln does not (yet) support was found in a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedType(pub String);

impl fmt::Display for UnsupportedType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unsupported type: {}", self.0)
    }
}

impl std::error::Error for UnsupportedType {}

/// A function signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct FuncType {
    params: Box<[WasmValType]>,
    results: Box<[WasmValType]>,
}

impl FuncType {
    /// Creates a signature from its parameter and result types.
    pub fn new(
        params: impl IntoIterator<Item = WasmValType>,
        results: impl IntoIterator<Item = WasmValType>,
    ) -> FuncType {
        FuncType { params: params.into_iter().collect(), results: results.into_iter().collect() }
    }

    /// Converts wasmparser's function type.
    pub fn from_wasmparser(ty: &wasmparser::FuncType) -> Result<Self, UnsupportedType> {
        Ok(FuncType {
            params: ty.params().iter().map(|t| WasmValType::from_wasmparser(*t)).collect::<Result<_, _>>()?,
            results: ty.results().iter().map(|t| WasmValType::from_wasmparser(*t)).collect::<Result<_, _>>()?,
        })
    }

    /// This signature in engine form (see [`WasmValType::canonical`]).
    ///
    /// # Panics
    ///
    /// As [`WasmValType::canonical`].
    pub fn canonical(&self, engine_ids: &[u32]) -> FuncType {
        FuncType {
            params: self.params.iter().map(|t| t.canonical(engine_ids)).collect(),
            results: self.results.iter().map(|t| t.canonical(engine_ids)).collect(),
        }
    }

    /// This signature with every reference to a module type index
    /// (`ConcreteFunc`) replaced by the heap type `map` gives for it.
    pub fn map_concrete(&self, map: impl Fn(crate::TypeIndex) -> WasmHeapType) -> FuncType {
        let one = |t: &WasmValType| match t {
            WasmValType::Ref(WasmRefType { nullable, heap: WasmHeapType::ConcreteFunc(i) }) => {
                WasmValType::Ref(WasmRefType { nullable: *nullable, heap: map(*i) })
            }
            other => *other,
        };
        FuncType { params: self.params.iter().map(one).collect(), results: self.results.iter().map(one).collect() }
    }

    /// This signature with every reference within its recursion group
    /// (`RecLocal`) replaced by the heap type `map` gives for it.
    pub fn map_rec_local(&self, map: impl Fn(u32) -> WasmHeapType) -> FuncType {
        let one = |t: &WasmValType| match t {
            WasmValType::Ref(WasmRefType { nullable, heap: WasmHeapType::RecLocal(i) }) => {
                WasmValType::Ref(WasmRefType { nullable: *nullable, heap: map(*i) })
            }
            other => *other,
        };
        FuncType { params: self.params.iter().map(one).collect(), results: self.results.iter().map(one).collect() }
    }

    /// The highest module type index this signature refers to, if any.
    pub fn max_concrete_index(&self) -> Option<crate::TypeIndex> {
        self.params
            .iter()
            .chain(self.results.iter())
            .filter_map(|t| match t {
                WasmValType::Ref(r) => r.concrete_index(),
                _ => None,
            })
            .max()
    }

    /// The parameter types.
    pub fn params(&self) -> &[WasmValType] {
        &self.params
    }

    /// The result types.
    pub fn results(&self) -> &[WasmValType] {
        &self.results
    }

    /// Number of 16-byte value slots an array call with this signature needs:
    /// enough for the parameters on the way in and the results on the way out.
    pub fn array_len(&self) -> usize {
        self.params.len().max(self.results.len())
    }
}

impl fmt::Display for FuncType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(func")?;
        if !self.params.is_empty() {
            f.write_str(" (param")?;
            for p in self.params.iter() {
                write!(f, " {p}")?;
            }
            f.write_str(")")?;
        }
        if !self.results.is_empty() {
            f.write_str(" (result")?;
            for r in self.results.iter() {
                write!(f, " {r}")?;
            }
            f.write_str(")")?;
        }
        f.write_str(")")
    }
}

/// Size limits and element type of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableType {
    /// Type of the elements.
    pub element: WasmRefType,
    /// Initial number of elements.
    pub minimum: u64,
    /// Maximum number of elements, if bounded.
    pub maximum: Option<u64>,
    /// Whether the table is indexed by i64 (memory64 proposal).
    pub table64: bool,
}

impl TableType {
    /// This type in engine form (see [`WasmValType::canonical`]).
    ///
    /// # Panics
    ///
    /// As [`WasmValType::canonical`].
    pub fn canonical(self, engine_ids: &[u32]) -> TableType {
        TableType { element: self.element.canonical(engine_ids), ..self }
    }

    /// Converts wasmparser's table type.
    pub fn from_wasmparser(ty: &wasmparser::TableType) -> Result<Self, UnsupportedType> {
        if ty.shared {
            return Err(UnsupportedType("shared tables".into()));
        }
        Ok(TableType {
            element: WasmRefType::from_wasmparser(ty.element_type)?,
            minimum: ty.initial,
            maximum: ty.maximum,
            table64: ty.table64,
        })
    }
}

impl fmt::Display for TableType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(table {}", if self.table64 { "i64 " } else { "" })?;
        write!(f, "{}", self.minimum)?;
        if let Some(max) = self.maximum {
            write!(f, " {max}")?;
        }
        write!(f, " {})", self.element)
    }
}

/// Size limits of a linear memory, in pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemoryType {
    /// Initial size in pages.
    pub minimum: u64,
    /// Maximum size in pages, if bounded.
    pub maximum: Option<u64>,
    /// Whether the memory is indexed by i64 (memory64 proposal).
    pub memory64: bool,
    /// Whether the memory may be shared between threads (threads proposal).
    pub shared: bool,
    /// log2 of the page size (16 for the standard 64 KiB pages).
    pub page_size_log2: u8,
}

impl MemoryType {
    /// Converts wasmparser's memory type.
    pub fn from_wasmparser(ty: &wasmparser::MemoryType) -> Self {
        MemoryType {
            minimum: ty.initial,
            maximum: ty.maximum,
            memory64: ty.memory64,
            shared: ty.shared,
            page_size_log2: ty.page_size_log2.map(|p| p as u8).unwrap_or(16),
        }
    }

    /// The page size in bytes.
    pub fn page_size(&self) -> u64 {
        1u64 << self.page_size_log2
    }

    /// The largest number of pages the index type allows, regardless of the
    /// declared maximum.
    pub fn max_pages_for_index_type(&self) -> u64 {
        if self.memory64 {
            // 2^64 bytes, expressed in pages (saturating so the count fits in u64).
            1u64 << (64 - u32::from(self.page_size_log2)).min(63)
        } else {
            1u64 << (32 - u32::from(self.page_size_log2))
        }
    }
}

impl fmt::Display for MemoryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(memory {}{}", if self.memory64 { "i64 " } else { "" }, self.minimum)?;
        if let Some(max) = self.maximum {
            write!(f, " {max}")?;
        }
        if self.shared {
            f.write_str(" shared")?;
        }
        f.write_str(")")
    }
}

/// The type of a global variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GlobalType {
    /// Type of the value held.
    pub content: WasmValType,
    /// Whether `global.set` is allowed.
    pub mutable: bool,
}

impl GlobalType {
    /// This type in engine form (see [`WasmValType::canonical`]).
    ///
    /// # Panics
    ///
    /// As [`WasmValType::canonical`].
    pub fn canonical(self, engine_ids: &[u32]) -> GlobalType {
        GlobalType { content: self.content.canonical(engine_ids), ..self }
    }

    /// Converts wasmparser's global type.
    pub fn from_wasmparser(ty: &wasmparser::GlobalType) -> Result<Self, UnsupportedType> {
        if ty.shared {
            return Err(UnsupportedType("shared globals".into()));
        }
        Ok(GlobalType { content: WasmValType::from_wasmparser(ty.content_type)?, mutable: ty.mutable })
    }
}

impl fmt::Display for GlobalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mutable { write!(f, "(global (mut {}))", self.content) } else { write!(f, "(global {})", self.content) }
    }
}

/// The type of an importable or exportable entity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntityType {
    /// A function with the module-level type at this index.
    Function(crate::TypeIndex),
    /// A table.
    Table(TableType),
    /// A memory.
    Memory(MemoryType),
    /// A global.
    Global(GlobalType),
    /// An exception tag whose payload is the parameters of the function
    /// type at this index (exception handling).
    Tag(crate::TypeIndex),
}

/// Index of an entity in one of a module's index spaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntityIndex {
    /// Function index space.
    Function(crate::FuncIndex),
    /// Table index space.
    Table(crate::TableIndex),
    /// Memory index space.
    Memory(crate::MemoryIndex),
    /// Global index space.
    Global(crate::GlobalIndex),
    /// Tag index space.
    Tag(crate::TagIndex),
}
