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
    /// support (shared heap types and the like). `kinds` tells what each
    /// module type index is.
    ///
    /// # Errors
    ///
    /// The type is not supported, or names a type index `kinds` does not
    /// know.
    pub fn from_wasmparser(
        ty: wasmparser::ValType,
        kinds: &(impl TypeKinds + ?Sized),
    ) -> Result<Self, UnsupportedType> {
        Ok(match ty {
            wasmparser::ValType::I32 => WasmValType::I32,
            wasmparser::ValType::I64 => WasmValType::I64,
            wasmparser::ValType::F32 => WasmValType::F32,
            wasmparser::ValType::F64 => WasmValType::F64,
            wasmparser::ValType::V128 => WasmValType::V128,
            wasmparser::ValType::Ref(r) => WasmValType::Ref(WasmRefType::from_wasmparser(r, kinds)?),
        })
    }

    /// Whether this is a reference type.
    pub fn is_ref(&self) -> bool {
        matches!(self, WasmValType::Ref(_))
    }

    /// This type with module type indices replaced by engine type ids
    /// (`ConcreteFunc(t)` → `EngineFunc(engine_ids[t])`, and the same for
    /// structs and arrays): the form in
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

    /// Converts wasmparser's reference type (see
    /// [`WasmValType::from_wasmparser`]).
    ///
    /// # Errors
    ///
    /// As [`WasmValType::from_wasmparser`].
    pub fn from_wasmparser(r: wasmparser::RefType, kinds: &(impl TypeKinds + ?Sized)) -> Result<Self, UnsupportedType> {
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
            wasmparser::HeapType::Concrete(wasmparser::UnpackedIndex::Module(i))
            | wasmparser::HeapType::Exact(wasmparser::UnpackedIndex::Module(i)) => {
                if matches!(r.heap_type(), wasmparser::HeapType::Exact(_)) {
                    return Err(UnsupportedType("exact reference types".into()));
                }
                let t = crate::TypeIndex::from_u32(i);
                match kinds.kind_of(i) {
                    Some(CompositeKind::Func) => WasmHeapType::ConcreteFunc(t),
                    Some(CompositeKind::Struct) => WasmHeapType::ConcreteStruct(t),
                    Some(CompositeKind::Array) => WasmHeapType::ConcreteArray(t),
                    None => return Err(UnsupportedType(format!("reference to unknown type {i}"))),
                }
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
        WasmRefType { nullable: self.nullable, heap: self.heap.canonical(engine_ids) }
    }

    /// The module type index this type refers to, if it is a concrete
    /// reference type in module form.
    pub fn concrete_index(&self) -> Option<crate::TypeIndex> {
        self.heap.concrete_index()
    }

    /// Whether every value of type `self` is a value of type `other`, both
    /// in engine form: non-null below nullable, and the heap types related
    /// as [`WasmHeapType::is_subtype_of`] says (`engine_subtype(a, b)`
    /// decides between two engine type ids).
    pub fn is_subtype_of(&self, other: &WasmRefType, engine_subtype: &impl Fn(u32, u32) -> bool) -> bool {
        (other.nullable || !self.nullable) && self.heap.is_subtype_of(&other.heap, engine_subtype)
    }

    /// Whether values of this type are in the `any` hierarchy (GC values).
    pub fn is_any(&self) -> bool {
        self.heap.is_any()
    }

    /// Whether values of this type are externrefs.
    pub fn is_extern(&self) -> bool {
        matches!(self.heap, WasmHeapType::Extern | WasmHeapType::NoExtern)
    }

    /// Whether values of this type are exception references.
    pub fn is_exn(&self) -> bool {
        matches!(self.heap, WasmHeapType::Exn | WasmHeapType::NoExn)
    }

    /// Whether values of this type are function references.
    pub fn is_func(&self) -> bool {
        self.heap.is_func()
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
            (_, WasmHeapType::ConcreteFunc(t) | WasmHeapType::ConcreteStruct(t) | WasmHeapType::ConcreteArray(t)) => {
                write!(f, "(ref {null}{})", t.as_u32())
            }
            (_, WasmHeapType::EngineFunc(id) | WasmHeapType::EngineStruct(id) | WasmHeapType::EngineArray(id)) => {
                write!(f, "(ref {null}<engine type {id}>)")
            }
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
    /// Structs of the module's struct type at this index (GC).
    ConcreteStruct(crate::TypeIndex),
    /// Arrays of the module's array type at this index (GC).
    ConcreteArray(crate::TypeIndex),
    /// Functions of the engine's canonical function type with this id:
    /// the form `ConcreteFunc` takes in an engine's type registry and in a
    /// store's runtime objects, where module indices mean nothing.
    EngineFunc(u32),
    /// Structs of the engine's struct type with this id (the engine form
    /// of `ConcreteStruct`).
    EngineStruct(u32),
    /// Arrays of the engine's array type with this id (the engine form of
    /// `ConcreteArray`).
    EngineArray(u32),
    /// The type at this index within the same recursion group: the form
    /// references inside a group take in the keys under which an engine's
    /// registry canonicalizes whole groups (never in a module, a runtime
    /// object or compiled code). Its kind is that of the group's type.
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

impl WasmHeapType {
    /// This heap type in engine form (see [`WasmValType::canonical`]).
    ///
    /// # Panics
    ///
    /// As [`WasmValType::canonical`].
    pub fn canonical(self, engine_ids: &[u32]) -> WasmHeapType {
        match self {
            WasmHeapType::ConcreteFunc(t) => WasmHeapType::EngineFunc(engine_ids[t.index()]),
            WasmHeapType::ConcreteStruct(t) => WasmHeapType::EngineStruct(engine_ids[t.index()]),
            WasmHeapType::ConcreteArray(t) => WasmHeapType::EngineArray(engine_ids[t.index()]),
            other => other,
        }
    }

    /// The module type index this heap type names, in module form.
    pub fn concrete_index(&self) -> Option<crate::TypeIndex> {
        match *self {
            WasmHeapType::ConcreteFunc(t) | WasmHeapType::ConcreteStruct(t) | WasmHeapType::ConcreteArray(t) => Some(t),
            _ => None,
        }
    }

    /// The engine type id this heap type names, in engine form.
    pub fn engine_id(&self) -> Option<u32> {
        match *self {
            WasmHeapType::EngineFunc(id) | WasmHeapType::EngineStruct(id) | WasmHeapType::EngineArray(id) => Some(id),
            _ => None,
        }
    }

    /// The engine form of a type of kind `kind` with id `id`.
    pub fn engine(kind: CompositeKind, id: u32) -> WasmHeapType {
        match kind {
            CompositeKind::Func => WasmHeapType::EngineFunc(id),
            CompositeKind::Struct => WasmHeapType::EngineStruct(id),
            CompositeKind::Array => WasmHeapType::EngineArray(id),
        }
    }

    /// The module form of a type of kind `kind` at index `t`.
    pub fn concrete(kind: CompositeKind, t: crate::TypeIndex) -> WasmHeapType {
        match kind {
            CompositeKind::Func => WasmHeapType::ConcreteFunc(t),
            CompositeKind::Struct => WasmHeapType::ConcreteStruct(t),
            CompositeKind::Array => WasmHeapType::ConcreteArray(t),
        }
    }

    /// The kind of the defined type this heap type names, if it names one
    /// (module or engine form).
    pub fn concrete_kind(&self) -> Option<CompositeKind> {
        match self {
            WasmHeapType::ConcreteFunc(_) | WasmHeapType::EngineFunc(_) => Some(CompositeKind::Func),
            WasmHeapType::ConcreteStruct(_) | WasmHeapType::EngineStruct(_) => Some(CompositeKind::Struct),
            WasmHeapType::ConcreteArray(_) | WasmHeapType::EngineArray(_) => Some(CompositeKind::Array),
            _ => None,
        }
    }

    /// Whether values of this heap type are function references.
    pub fn is_func(&self) -> bool {
        matches!(
            self,
            WasmHeapType::Func | WasmHeapType::ConcreteFunc(_) | WasmHeapType::EngineFunc(_) | WasmHeapType::NoFunc
        )
    }

    /// Whether values of this heap type are in the `any` hierarchy (GC
    /// values).
    pub fn is_any(&self) -> bool {
        use WasmHeapType as H;
        matches!(
            self,
            H::Any
                | H::Eq
                | H::I31
                | H::Struct
                | H::Array
                | H::None
                | H::ConcreteStruct(_)
                | H::ConcreteArray(_)
                | H::EngineStruct(_)
                | H::EngineArray(_)
        )
    }

    /// The top of this heap type's hierarchy: `func`, `extern`, `any` or
    /// `exn` (`RecLocal` has none and answers itself).
    pub fn top(&self) -> WasmHeapType {
        use WasmHeapType as H;
        match self {
            _ if self.is_func() => H::Func,
            _ if self.is_any() => H::Any,
            H::Extern | H::NoExtern => H::Extern,
            H::Exn | H::NoExn => H::Exn,
            other => *other,
        }
    }

    /// The bottom of this heap type's hierarchy: `nofunc`, `noextern`,
    /// `none` or `noexn`.
    pub fn bottom(&self) -> WasmHeapType {
        use WasmHeapType as H;
        match self.top() {
            H::Func => H::NoFunc,
            H::Any => H::None,
            H::Extern => H::NoExtern,
            H::Exn => H::NoExn,
            other => other,
        }
    }

    /// Whether every value of heap type `self` is one of `other`, both in
    /// engine form. Between two engine type ids, `engine_subtype(a, b)`
    /// decides (the registry's declared subtyping); the rest is the fixed
    /// order of the abstract types: each hierarchy's bottom is below
    /// everything in it, a struct type below `struct`, an array type below
    /// `array`, those and `i31` below `eq`, everything in the `any`
    /// hierarchy below `any`, and a function type below `func`.
    pub fn is_subtype_of(&self, other: &WasmHeapType, engine_subtype: &impl Fn(u32, u32) -> bool) -> bool {
        use WasmHeapType as H;
        if self == other {
            return true;
        }
        if self.top() != other.top() {
            return false;
        }
        match (*self, *other) {
            (a, _) if a == a.bottom() => true,
            (_, H::Func | H::Any | H::Extern | H::Exn) => true,
            (H::I31 | H::Struct | H::Array | H::EngineStruct(_) | H::EngineArray(_), H::Eq) => true,
            (H::EngineStruct(_), H::Struct) | (H::EngineArray(_), H::Array) => true,
            (H::EngineFunc(a), H::EngineFunc(b))
            | (H::EngineStruct(a), H::EngineStruct(b))
            | (H::EngineArray(a), H::EngineArray(b)) => engine_subtype(a, b),
            _ => false,
        }
    }
}

/// What a defined type is: a function, struct or array type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompositeKind {
    /// A function type.
    Func,
    /// A struct type (GC).
    Struct,
    /// An array type (GC).
    Array,
}

/// Tells the kind of each module type index, so that a reference to a
/// defined type can be converted to the right [`WasmHeapType`].
pub trait TypeKinds {
    /// The kind of module type `index`, if there is such a type.
    fn kind_of(&self, index: u32) -> Option<CompositeKind>;
}

impl TypeKinds for [CompositeKind] {
    fn kind_of(&self, index: u32) -> Option<CompositeKind> {
        self.get(index as usize).copied()
    }
}

impl TypeKinds for [WasmSubType] {
    fn kind_of(&self, index: u32) -> Option<CompositeKind> {
        self.get(index as usize).map(|t| t.composite.kind())
    }
}

/// How a struct field or array element is stored: packed 8- or 16-bit
/// integers, or a value type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WasmStorageType {
    /// An 8-bit integer, read as `i32` (sign- or zero-extended).
    I8,
    /// A 16-bit integer, read as `i32`.
    I16,
    /// A value of this type.
    Val(WasmValType),
}

impl WasmStorageType {
    /// The value type reads of this storage produce (`i32` for packed
    /// types).
    pub fn unpacked(&self) -> WasmValType {
        match self {
            WasmStorageType::I8 | WasmStorageType::I16 => WasmValType::I32,
            WasmStorageType::Val(v) => *v,
        }
    }

    fn map_heap(self, f: &impl Fn(WasmHeapType) -> WasmHeapType) -> WasmStorageType {
        match self {
            WasmStorageType::Val(WasmValType::Ref(r)) => {
                WasmStorageType::Val(WasmValType::Ref(WasmRefType { nullable: r.nullable, heap: f(r.heap) }))
            }
            other => other,
        }
    }
}

impl fmt::Display for WasmStorageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WasmStorageType::I8 => f.write_str("i8"),
            WasmStorageType::I16 => f.write_str("i16"),
            WasmStorageType::Val(v) => v.fmt(f),
        }
    }
}

/// A struct field or array element type: its storage and whether it can
/// be written after allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WasmFieldType {
    /// How the value is stored.
    pub storage: WasmStorageType,
    /// Whether `struct.set`/`array.set` may write it.
    pub mutable: bool,
}

impl WasmFieldType {
    fn from_wasmparser(t: &wasmparser::FieldType, kinds: &(impl TypeKinds + ?Sized)) -> Result<Self, UnsupportedType> {
        let storage = match t.element_type {
            wasmparser::StorageType::I8 => WasmStorageType::I8,
            wasmparser::StorageType::I16 => WasmStorageType::I16,
            wasmparser::StorageType::Val(v) => WasmStorageType::Val(WasmValType::from_wasmparser(v, kinds)?),
        };
        Ok(WasmFieldType { storage, mutable: t.mutable })
    }
}

impl fmt::Display for WasmFieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mutable { write!(f, "(mut {})", self.storage) } else { self.storage.fmt(f) }
    }
}

/// A struct type: its fields in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct StructType {
    /// The fields.
    pub fields: Box<[WasmFieldType]>,
}

/// An array type: its element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArrayType {
    /// The element type.
    pub element: WasmFieldType,
}

/// A defined type's structure.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WasmCompositeType {
    /// A function type.
    Func(FuncType),
    /// A struct type.
    Struct(StructType),
    /// An array type.
    Array(ArrayType),
}

impl WasmCompositeType {
    /// Whether this is a function, struct or array type.
    pub fn kind(&self) -> CompositeKind {
        match self {
            WasmCompositeType::Func(_) => CompositeKind::Func,
            WasmCompositeType::Struct(_) => CompositeKind::Struct,
            WasmCompositeType::Array(_) => CompositeKind::Array,
        }
    }
}

/// A defined type: its structure, whether it may have subtypes
/// (`final`), and its declared supertype (a concrete heap type of the
/// same kind, in the same form as the type's references).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WasmSubType {
    /// Whether no type may declare this one as its supertype.
    pub is_final: bool,
    /// The declared supertype, if any.
    pub supertype: Option<WasmHeapType>,
    /// The structure.
    pub composite: WasmCompositeType,
}

impl WasmSubType {
    /// A final function type without a supertype: what a function type
    /// written without `sub` is.
    pub fn func(ty: FuncType) -> WasmSubType {
        WasmSubType { is_final: true, supertype: None, composite: WasmCompositeType::Func(ty) }
    }

    /// Converts wasmparser's subtype. `kinds` knows every type index the
    /// type may refer to (earlier types and its own recursion group).
    ///
    /// # Errors
    ///
    /// The type uses something Kiln does not support (shared types,
    /// descriptors), or names a type `kinds` does not know.
    pub fn from_wasmparser(
        ty: &wasmparser::SubType,
        kinds: &(impl TypeKinds + ?Sized),
    ) -> Result<Self, UnsupportedType> {
        let c = &ty.composite_type;
        if c.shared {
            return Err(UnsupportedType("shared types".into()));
        }
        if c.describes_idx.is_some() || c.descriptor_idx.is_some() {
            return Err(UnsupportedType("custom descriptors".into()));
        }
        let composite = match &c.inner {
            wasmparser::CompositeInnerType::Func(f) => WasmCompositeType::Func(FuncType::from_wasmparser(f, kinds)?),
            wasmparser::CompositeInnerType::Struct(s) => WasmCompositeType::Struct(StructType {
                fields: s.fields.iter().map(|f| WasmFieldType::from_wasmparser(f, kinds)).collect::<Result<_, _>>()?,
            }),
            wasmparser::CompositeInnerType::Array(a) => {
                WasmCompositeType::Array(ArrayType { element: WasmFieldType::from_wasmparser(&a.0, kinds)? })
            }
            wasmparser::CompositeInnerType::Cont(_) => return Err(UnsupportedType("continuation types".into())),
        };
        let kind = composite.kind();
        let supertype = match ty.supertype_idxs.as_slice() {
            [] => None,
            [_, _, ..] => return Err(UnsupportedType("more than one supertype".into())),
            [idx] => {
                let Some(i) = idx.as_module_index() else {
                    return Err(UnsupportedType("a supertype outside the module's index space".into()));
                };
                Some(WasmHeapType::concrete(kind, crate::TypeIndex::from_u32(i)))
            }
        };
        Ok(WasmSubType { is_final: ty.is_final, supertype, composite })
    }

    /// The function type, if this is one.
    pub fn as_func(&self) -> Option<&FuncType> {
        match &self.composite {
            WasmCompositeType::Func(f) => Some(f),
            _ => None,
        }
    }

    /// This type with every heap type it mentions (in params, results,
    /// fields and the supertype) replaced by `f` of it.
    pub fn map_heap(&self, f: impl Fn(WasmHeapType) -> WasmHeapType) -> WasmSubType {
        let composite = match &self.composite {
            WasmCompositeType::Func(ft) => WasmCompositeType::Func(ft.map_heap(&f)),
            WasmCompositeType::Struct(s) => WasmCompositeType::Struct(StructType {
                fields: s
                    .fields
                    .iter()
                    .map(|fl| WasmFieldType { storage: fl.storage.map_heap(&f), mutable: fl.mutable })
                    .collect(),
            }),
            WasmCompositeType::Array(a) => WasmCompositeType::Array(ArrayType {
                element: WasmFieldType { storage: a.element.storage.map_heap(&f), mutable: a.element.mutable },
            }),
        };
        WasmSubType { is_final: self.is_final, supertype: self.supertype.map(&f), composite }
    }

    /// Every heap type this type mentions (params, results, fields,
    /// supertype).
    pub fn heap_types(&self) -> Vec<WasmHeapType> {
        let seen = std::cell::RefCell::new(Vec::new());
        self.map_heap(|h| {
            seen.borrow_mut().push(h);
            h
        });
        seen.into_inner()
    }

    /// The highest module type index this type refers to, if any.
    pub fn max_concrete_index(&self) -> Option<crate::TypeIndex> {
        self.heap_types().iter().filter_map(|h| h.concrete_index()).max()
    }
}

impl fmt::Display for WasmSubType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let open = !self.is_final || self.supertype.is_some();
        if open {
            f.write_str("(sub ")?;
            if self.is_final {
                f.write_str("final ")?;
            }
            if let Some(s) = &self.supertype {
                match (s.concrete_index(), s.engine_id()) {
                    (Some(t), _) => write!(f, "{} ", t.as_u32())?,
                    (_, Some(id)) => write!(f, "<engine type {id}> ")?,
                    _ => write!(f, "{s:?} ")?,
                }
            }
        }
        match &self.composite {
            WasmCompositeType::Func(ft) => ft.fmt(f)?,
            WasmCompositeType::Struct(s) => {
                f.write_str("(struct")?;
                for fl in s.fields.iter() {
                    write!(f, " (field {fl})")?;
                }
                f.write_str(")")?;
            }
            WasmCompositeType::Array(a) => write!(f, "(array {})", a.element)?,
        }
        if open {
            f.write_str(")")?;
        }
        Ok(())
    }
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

    /// Converts wasmparser's function type (see
    /// [`WasmValType::from_wasmparser`]).
    ///
    /// # Errors
    ///
    /// As [`WasmValType::from_wasmparser`].
    pub fn from_wasmparser(
        ty: &wasmparser::FuncType,
        kinds: &(impl TypeKinds + ?Sized),
    ) -> Result<Self, UnsupportedType> {
        Ok(FuncType {
            params: ty.params().iter().map(|t| WasmValType::from_wasmparser(*t, kinds)).collect::<Result<_, _>>()?,
            results: ty.results().iter().map(|t| WasmValType::from_wasmparser(*t, kinds)).collect::<Result<_, _>>()?,
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

    /// This signature with the heap type of every reference replaced by
    /// `f` of it.
    pub fn map_heap(&self, f: &impl Fn(WasmHeapType) -> WasmHeapType) -> FuncType {
        let one = |t: &WasmValType| match t {
            WasmValType::Ref(r) => WasmValType::Ref(WasmRefType { nullable: r.nullable, heap: f(r.heap) }),
            other => *other,
        };
        FuncType { params: self.params.iter().map(one).collect(), results: self.results.iter().map(one).collect() }
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

    /// Converts wasmparser's table type (see
    /// [`WasmValType::from_wasmparser`]).
    ///
    /// # Errors
    ///
    /// Shared tables, and as [`WasmValType::from_wasmparser`].
    pub fn from_wasmparser(
        ty: &wasmparser::TableType,
        kinds: &(impl TypeKinds + ?Sized),
    ) -> Result<Self, UnsupportedType> {
        if ty.shared {
            return Err(UnsupportedType("shared tables".into()));
        }
        Ok(TableType {
            element: WasmRefType::from_wasmparser(ty.element_type, kinds)?,
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

    /// Converts wasmparser's global type (see
    /// [`WasmValType::from_wasmparser`]).
    ///
    /// # Errors
    ///
    /// Shared globals, and as [`WasmValType::from_wasmparser`].
    pub fn from_wasmparser(
        ty: &wasmparser::GlobalType,
        kinds: &(impl TypeKinds + ?Sized),
    ) -> Result<Self, UnsupportedType> {
        if ty.shared {
            return Err(UnsupportedType("shared globals".into()));
        }
        Ok(GlobalType { content: WasmValType::from_wasmparser(ty.content_type, kinds)?, mutable: ty.mutable })
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
