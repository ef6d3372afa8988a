//! Where the fields of GC objects live: the object header, and the offset
//! and size of each field of a struct type, computed from the type alone
//! (so the same in every module, cacheable, and the same for a field in a
//! type and in all its subtypes: a subtype's fields extend its
//! supertype's, and fields are placed in declaration order).

use crate::types::{StructType, WasmStorageType, WasmValType};

/// Layout of the 8-byte header every GC object starts with.
pub mod header {
    /// `u32`: the object's engine type id.
    pub const TYPE_ID: u32 = 0;
    /// `u32`: the object's kind ([`super::KIND_STRUCT`], ...) in bits 0–1;
    /// the other bits are reserved for the collector (0).
    pub const GC_WORD: u32 = 4;
    /// Size of the header: fields start here.
    pub const SIZE: u32 = 8;
}

/// The header kind of a struct.
pub const KIND_STRUCT: u32 = 0;
/// The header kind of an array.
pub const KIND_ARRAY: u32 = 1;
/// The header kind of an extern box: an object holding a host
/// `externref` word, what `any.convert_extern` makes of a host reference.
pub const KIND_EXTERN_BOX: u32 = 3;
/// The type id in an extern box's header (no engine type has it).
pub const EXTERN_BOX_TYPE_ID: u32 = u32::MAX;
/// Offset of the externref word in an extern box.
pub const EXTERN_BOX_WORD: u32 = header::SIZE;
/// Size of an extern box.
pub const EXTERN_BOX_SIZE: u32 = header::SIZE + 8;

/// The bits of the header's GC word that hold the kind.
pub const KIND_MASK: u32 = 3;

/// The GC word bit of an object that a collection has copied: its type id
/// word then holds the copy's offset. Only objects of the space being
/// emptied have it, and only during a collection.
pub const FORWARDED: u32 = 1 << 4;

/// The GC word bit of an old-generation object that is in its heap's
/// remembered set: it may hold a reference into the nursery, so the next
/// minor collection scans it. Compiled code's write barrier reads it to
/// call the runtime only for the first such store into an object.
pub const REMEMBERED: u32 = 1 << 5;

/// Offset in the GC heap of the nursery, where objects are allocated
/// first; below it, the never-accessible null guard (so no object has
/// offset 0 and small offsets are never objects).
pub const NURSERY_START: u32 = 1 << 20;

/// Bytes reserved for the nursery (the part used is at most this).
pub const NURSERY_RESERVE: u32 = 16 << 20;

/// Offset where the old generation's two spaces start: every object at
/// or above it is old, every object below it young. The write barrier
/// tests a reference against the nursery with these constants alone.
pub const OLD_START: u32 = NURSERY_START + NURSERY_RESERVE;

/// Objects are placed at multiples of this many bytes.
pub const OBJECT_ALIGN: u32 = 8;

/// Bytes a field of storage type `s` takes (and its alignment, at most
/// 8): packed integers their width, numbers their size, a GC reference
/// 4 (its encoding fits in 32 bits: `crate::gc_ref`), every other
/// reference 8 (a pointer or an externref word), `v128` 16 (aligned to 8).
pub fn field_size(s: WasmStorageType) -> u32 {
    match s {
        WasmStorageType::I8 => 1,
        WasmStorageType::I16 => 2,
        WasmStorageType::Val(WasmValType::I32 | WasmValType::F32) => 4,
        WasmStorageType::Val(WasmValType::I64 | WasmValType::F64) => 8,
        WasmStorageType::Val(WasmValType::V128) => 16,
        WasmStorageType::Val(WasmValType::Ref(r)) if r.is_any() => 4,
        WasmStorageType::Val(WasmValType::Ref(_)) => 8,
    }
}

/// Offset of an array's `u32` length.
pub const ARRAY_LENGTH: u32 = header::SIZE;

/// Offset of an array's first element, for elements of `elem_size` bytes
/// (right after the length, or at 16 for 8- and 16-byte elements).
pub fn array_elems_offset(elem_size: u32) -> u32 {
    if elem_size <= 4 { ARRAY_LENGTH + 4 } else { 16 }
}

/// The object size of an array of `len` elements of `elem_size` bytes, or
/// `None` if it does not fit in 32 bits.
pub fn array_size(elem_size: u32, len: u32) -> Option<u32> {
    let bytes = u64::from(array_elems_offset(elem_size)) + u64::from(elem_size) * u64::from(len);
    u32::try_from(bytes.div_ceil(u64::from(OBJECT_ALIGN)) * u64::from(OBJECT_ALIGN)).ok()
}

/// The kinds of references that objects hold and the collector and the
/// store's other collections must see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    /// A GC reference (the `any` hierarchy), stored as its 4-byte encoding.
    Any,
    /// An externref word (8 bytes): a host value, or a GC reference that
    /// `extern.convert_any` tagged (`gc_ref::externalize`).
    Extern,
    /// An exnref (8 bytes).
    Exn,
}

impl RefKind {
    /// The kind of reference a field of storage `s` holds, if any
    /// (function references are not collected).
    pub fn of(s: WasmStorageType) -> Option<RefKind> {
        match s {
            WasmStorageType::Val(WasmValType::Ref(r)) if r.is_any() => Some(RefKind::Any),
            WasmStorageType::Val(WasmValType::Ref(r)) if r.is_extern() => Some(RefKind::Extern),
            WasmStorageType::Val(WasmValType::Ref(r)) if r.is_exn() => Some(RefKind::Exn),
            _ => None,
        }
    }
}

/// What the collector must know to copy and trace an object of a type:
/// its size and where it holds references. Derived from the type alone
/// (see [`GcTrace::of`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GcTrace {
    /// A struct.
    Struct {
        /// The object's size in bytes (a multiple of [`OBJECT_ALIGN`]).
        size: u32,
        /// Offsets from the object's start of the fields holding
        /// references, with their kinds, increasing.
        refs: Vec<(u32, RefKind)>,
    },
    /// An array.
    Array {
        /// Bytes per element.
        elem_size: u32,
        /// What its elements hold, if references.
        elems: Option<RefKind>,
    },
    /// Not an object type (a function type).
    None,
}

impl GcTrace {
    /// The trace information of objects of composite type `c`.
    pub fn of(c: &crate::types::WasmCompositeType) -> GcTrace {
        use crate::types::WasmCompositeType as C;
        match c {
            C::Struct(s) => {
                let layout = StructLayout::of(s);
                GcTrace::Struct {
                    size: layout.size,
                    refs: s
                        .fields
                        .iter()
                        .zip(layout.offsets)
                        .filter_map(|(f, o)| Some((o, RefKind::of(f.storage)?)))
                        .collect(),
                }
            }
            C::Array(a) => {
                GcTrace::Array { elem_size: field_size(a.element.storage), elems: RefKind::of(a.element.storage) }
            }
            C::Func(_) => GcTrace::None,
        }
    }

    /// Whether objects of this type hold GC references (`any` or
    /// externref fields or elements) that the collector must follow.
    pub fn has_gc_refs(&self) -> bool {
        match self {
            GcTrace::Struct { refs, .. } => refs.iter().any(|(_, k)| *k != RefKind::Exn),
            GcTrace::Array { elems, .. } => matches!(elems, Some(RefKind::Any | RefKind::Extern)),
            GcTrace::None => false,
        }
    }
}

/// The offsets of a struct type's fields and its object size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructLayout {
    /// Offset from the object's start of each field, in order.
    pub offsets: Vec<u32>,
    /// The object's size with its header, a multiple of
    /// [`OBJECT_ALIGN`].
    pub size: u32,
}

impl StructLayout {
    /// The layout of struct type `ty`: fields in declaration order, each
    /// at its natural alignment (at most 8) after the header.
    pub fn of(ty: &StructType) -> StructLayout {
        let mut at = header::SIZE;
        let offsets = ty
            .fields
            .iter()
            .map(|f| {
                let size = field_size(f.storage);
                let align = size.min(8);
                at = at.div_ceil(align) * align;
                let offset = at;
                at += size;
                offset
            })
            .collect();
        StructLayout { offsets, size: at.div_ceil(OBJECT_ALIGN) * OBJECT_ALIGN }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{WasmFieldType, WasmRefType};

    fn field(storage: WasmStorageType) -> WasmFieldType {
        WasmFieldType { storage, mutable: true }
    }

    #[test]
    fn fields_are_aligned_in_order_and_a_prefix_keeps_its_offsets() {
        let base = StructType {
            fields: vec![field(WasmStorageType::I8), field(WasmStorageType::Val(WasmValType::I64))].into(),
        };
        let sub = StructType {
            fields: vec![
                field(WasmStorageType::I8),
                field(WasmStorageType::Val(WasmValType::I64)),
                field(WasmStorageType::Val(WasmValType::Ref(WasmRefType::ANYREF))),
                field(WasmStorageType::I16),
            ]
            .into(),
        };
        assert_eq!(StructLayout::of(&base), StructLayout { offsets: vec![8, 16], size: 24 });
        assert_eq!(StructLayout::of(&sub), StructLayout { offsets: vec![8, 16, 24, 28], size: 32 });
        assert_eq!(StructLayout::of(&StructType::default()).size, 8);
    }

    #[test]
    fn traces_name_exactly_the_gc_reference_fields() {
        use crate::types::{ArrayType, WasmCompositeType, WasmHeapType};
        let any = WasmStorageType::Val(WasmValType::Ref(WasmRefType::ANYREF));
        let func = WasmStorageType::Val(WasmValType::Ref(WasmRefType::FUNCREF));
        let ext = WasmStorageType::Val(WasmValType::Ref(WasmRefType::EXTERNREF));
        let s = StructType {
            fields: vec![field(any), field(WasmStorageType::I8), field(func), field(any), field(ext)].into(),
        };
        // any at 8, i8 at 12, funcref at 16 (8 bytes), any at 24, extern at 32.
        assert_eq!(
            GcTrace::of(&WasmCompositeType::Struct(s)),
            GcTrace::Struct { size: 40, refs: vec![(8, RefKind::Any), (24, RefKind::Any), (32, RefKind::Extern)] }
        );
        let eq_array = ArrayType {
            element: field(WasmStorageType::Val(WasmValType::Ref(WasmRefType {
                nullable: false,
                heap: WasmHeapType::Eq,
            }))),
        };
        assert_eq!(
            GcTrace::of(&WasmCompositeType::Array(eq_array)),
            GcTrace::Array { elem_size: 4, elems: Some(RefKind::Any) }
        );
        let bytes = ArrayType { element: field(WasmStorageType::I8) };
        assert_eq!(GcTrace::of(&WasmCompositeType::Array(bytes)), GcTrace::Array { elem_size: 1, elems: None });
    }
}
