//! Types as the embedding API presents them.

use kiln_environ as env;
use std::fmt;

/// The type of a WebAssembly value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// 128-bit vector.
    V128,
    /// Nullable function reference.
    FuncRef,
    /// Nullable host reference.
    ExternRef,
    /// Nullable exception reference (exception handling).
    ExnRef,
    /// Nullable reference to a GC value (`anyref` and the types below it:
    /// `eqref`, `i31ref`, `structref`, `arrayref`, `nullref`, and concrete
    /// struct and array types): an i31, a struct or an array.
    AnyRef,
}

impl ValType {
    pub(crate) fn from_env(t: env::WasmValType) -> ValType {
        match t {
            env::WasmValType::I32 => ValType::I32,
            env::WasmValType::I64 => ValType::I64,
            env::WasmValType::F32 => ValType::F32,
            env::WasmValType::F64 => ValType::F64,
            env::WasmValType::V128 => ValType::V128,
            env::WasmValType::Ref(r) if r.is_func() => ValType::FuncRef,
            env::WasmValType::Ref(r) if r.is_exn() => ValType::ExnRef,
            env::WasmValType::Ref(r) if r.is_any() => ValType::AnyRef,
            env::WasmValType::Ref(_) => ValType::ExternRef,
        }
    }

    pub(crate) fn to_env(self) -> env::WasmValType {
        match self {
            ValType::I32 => env::WasmValType::I32,
            ValType::I64 => env::WasmValType::I64,
            ValType::F32 => env::WasmValType::F32,
            ValType::F64 => env::WasmValType::F64,
            ValType::V128 => env::WasmValType::V128,
            ValType::FuncRef => env::WasmValType::FUNCREF,
            ValType::ExternRef => env::WasmValType::EXTERNREF,
            ValType::ExnRef => env::WasmValType::EXNREF,
            ValType::AnyRef => env::WasmValType::ANYREF,
        }
    }

    /// Whether this is a reference type.
    pub fn is_ref(&self) -> bool {
        matches!(self, ValType::FuncRef | ValType::ExternRef | ValType::ExnRef | ValType::AnyRef)
    }
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_env().fmt(f)
    }
}

/// A function signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FuncType(pub(crate) env::FuncType);

impl FuncType {
    /// Creates a signature.
    pub fn new(params: impl IntoIterator<Item = ValType>, results: impl IntoIterator<Item = ValType>) -> FuncType {
        FuncType(env::FuncType::new(params.into_iter().map(ValType::to_env), results.into_iter().map(ValType::to_env)))
    }

    /// The parameter types.
    pub fn params(&self) -> impl ExactSizeIterator<Item = ValType> + '_ {
        self.0.params().iter().map(|t| ValType::from_env(*t))
    }

    /// The result types.
    pub fn results(&self) -> impl ExactSizeIterator<Item = ValType> + '_ {
        self.0.results().iter().map(|t| ValType::from_env(*t))
    }
}

impl fmt::Display for FuncType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether a global can be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutability {
    /// `global.set` is not allowed.
    Const,
    /// `global.set` is allowed.
    Var,
}

/// The type of a global.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GlobalType(pub(crate) env::GlobalType);

impl GlobalType {
    /// Creates a global type.
    pub fn new(content: ValType, mutability: Mutability) -> GlobalType {
        GlobalType(env::GlobalType { content: content.to_env(), mutable: mutability == Mutability::Var })
    }

    /// The value type.
    pub fn content(&self) -> ValType {
        ValType::from_env(self.0.content)
    }

    /// The mutability.
    pub fn mutability(&self) -> Mutability {
        if self.0.mutable { Mutability::Var } else { Mutability::Const }
    }
}

/// The type of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TableType(pub(crate) env::TableType);

impl TableType {
    /// Creates a table type. `element` must be a reference type
    /// (`FuncRef`, `ExternRef`, `ExnRef` or `AnyRef`; anything else is
    /// treated as `FuncRef`).
    pub fn new(element: ValType, min: u32, max: Option<u32>) -> TableType {
        let element = match element {
            ValType::ExternRef => env::WasmRefType::EXTERNREF,
            ValType::ExnRef => env::WasmRefType::EXNREF,
            ValType::AnyRef => env::WasmRefType::ANYREF,
            _ => env::WasmRefType::FUNCREF,
        };
        TableType(env::TableType { element, minimum: u64::from(min), maximum: max.map(u64::from), table64: false })
    }

    /// The element type.
    pub fn element(&self) -> ValType {
        ValType::from_env(env::WasmValType::Ref(self.0.element))
    }

    /// Minimum number of elements.
    pub fn minimum(&self) -> u64 {
        self.0.minimum
    }

    /// Maximum number of elements.
    pub fn maximum(&self) -> Option<u64> {
        self.0.maximum
    }
}

/// The type of a linear memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemoryType(pub(crate) env::MemoryType);

impl MemoryType {
    /// A 32-bit memory with `min` and optionally `max` 64 KiB pages.
    pub fn new(min: u32, max: Option<u32>) -> MemoryType {
        MemoryType(env::MemoryType {
            minimum: u64::from(min),
            maximum: max.map(u64::from),
            memory64: false,
            shared: false,
            page_size_log2: 16,
        })
    }

    /// A 32-bit memory shared between threads (threads proposal); shared
    /// memories must declare a maximum.
    pub fn shared(min: u32, max: u32) -> MemoryType {
        MemoryType(env::MemoryType {
            minimum: u64::from(min),
            maximum: Some(u64::from(max)),
            memory64: false,
            shared: true,
            page_size_log2: 16,
        })
    }

    /// A 64-bit memory (memory64 proposal).
    pub fn new64(min: u64, max: Option<u64>) -> MemoryType {
        MemoryType(env::MemoryType { minimum: min, maximum: max, memory64: true, shared: false, page_size_log2: 16 })
    }

    /// Minimum size in pages.
    pub fn minimum(&self) -> u64 {
        self.0.minimum
    }

    /// Maximum size in pages.
    pub fn maximum(&self) -> Option<u64> {
        self.0.maximum
    }

    /// Whether indices are 64-bit.
    pub fn is_64(&self) -> bool {
        self.0.memory64
    }

    /// Whether the memory is shared between threads.
    pub fn is_shared(&self) -> bool {
        self.0.shared
    }

    /// The page size in bytes: 65,536, or 1 for a memory with 1-byte pages
    /// (custom page sizes). Minimum, maximum and sizes are in these pages.
    pub fn page_size(&self) -> u64 {
        self.0.page_size()
    }

    /// log2 of [`MemoryType::page_size`]: 16 or 0.
    pub fn page_size_log2(&self) -> u8 {
        self.0.page_size_log2
    }

    /// This type with pages of `1 << log2` bytes: 0 for 1-byte pages (the
    /// custom-page-sizes proposal, which an engine must enable to use
    /// them) or 16 for the standard 64 KiB. The minimum and maximum keep
    /// their page counts.
    ///
    /// # Errors
    ///
    /// `log2` is neither 0 nor 16, or the minimum or maximum is more pages
    /// than the index type can address with that page size.
    pub fn with_page_size_log2(mut self, log2: u8) -> anyhow::Result<MemoryType> {
        if log2 != 0 && log2 != 16 {
            anyhow::bail!("page size 2^{log2} bytes: the page size must be 1 or 65536 bytes");
        }
        self.0.page_size_log2 = log2;
        let limit = self.0.max_pages_for_index_type();
        if self.0.minimum > limit || self.0.maximum.is_some_and(|m| m > limit) {
            anyhow::bail!(
                "{} pages of {} bytes are more than the index type can address",
                self.0.maximum.unwrap_or(self.0.minimum).max(self.0.minimum),
                self.0.page_size()
            );
        }
        Ok(self)
    }
}

/// The type of something importable or exportable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExternType {
    /// A function.
    Func(FuncType),
    /// A global.
    Global(GlobalType),
    /// A table.
    Table(TableType),
    /// A memory.
    Memory(MemoryType),
    /// An exception tag.
    Tag(crate::TagType),
}

impl ExternType {
    pub(crate) fn from_entity(module: &env::ModuleInfo, ty: &env::EntityType) -> ExternType {
        match ty {
            env::EntityType::Function(t) => ExternType::Func(FuncType(module.func_type_at(*t).clone())),
            env::EntityType::Table(t) => ExternType::Table(TableType(*t)),
            env::EntityType::Memory(m) => ExternType::Memory(MemoryType(*m)),
            env::EntityType::Global(g) => ExternType::Global(GlobalType(*g)),
            env::EntityType::Tag(t) => ExternType::Tag(crate::TagType(FuncType(module.func_type_at(*t).clone()))),
        }
    }

    /// The kind as a word ("function", "table", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            ExternType::Func(_) => "function",
            ExternType::Global(_) => "global",
            ExternType::Table(_) => "table",
            ExternType::Memory(_) => "memory",
            ExternType::Tag(_) => "tag",
        }
    }
}

impl fmt::Display for ExternType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExternType::Func(t) => t.fmt(f),
            ExternType::Global(g) => g.0.fmt(f),
            ExternType::Table(t) => t.0.fmt(f),
            ExternType::Memory(m) => m.0.fmt(f),
            ExternType::Tag(t) => t.fmt(f),
        }
    }
}

/// A module's import: module name, field name and type.
#[derive(Clone, Debug)]
pub struct ImportType<'m> {
    pub(crate) module: &'m str,
    pub(crate) name: &'m str,
    pub(crate) ty: ExternType,
}

impl<'m> ImportType<'m> {
    /// The module name.
    pub fn module(&self) -> &'m str {
        self.module
    }

    /// The field name.
    pub fn name(&self) -> &'m str {
        self.name
    }

    /// The expected type.
    pub fn ty(&self) -> ExternType {
        self.ty.clone()
    }
}

/// A module's export: name and type.
#[derive(Clone, Debug)]
pub struct ExportType<'m> {
    pub(crate) name: &'m str,
    pub(crate) ty: ExternType,
}

impl<'m> ExportType<'m> {
    /// The exported name.
    pub fn name(&self) -> &'m str {
        self.name
    }

    /// The type.
    pub fn ty(&self) -> ExternType {
        self.ty.clone()
    }
}
