//! Struct and array objects seen from the host: [`StructRef`] and
//! [`ArrayRef`], views of an [`AnyRef`] that read and write fields and
//! elements with the same checks wasm's `struct.set`/`array.set` get from
//! validation (mutability, the field's type, the store).
//!
//! Every handle to an object is rooted (see [`AnyRef`]); a
//! [`RootScope`] releases the handles made inside it.

use crate::store::{AsContext, AsContextMut, StoreOpaque};
use crate::types::ValType;
use crate::values::{AnyRef, Val};
use anyhow::{Context, Result, anyhow, bail};
use kiln_environ::gc_layout::{ARRAY_LENGTH, StructLayout, array_elems_offset, field_size};
use kiln_environ::{WasmCompositeType, WasmFieldType, WasmStorageType};

/// A reference to a struct object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StructRef(AnyRef);

/// A reference to an array object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ArrayRef(AnyRef);

impl AnyRef {
    /// This reference as a struct, if it is one.
    pub fn as_struct(&self) -> Option<StructRef> {
        self.is_struct().then_some(StructRef(*self))
    }

    /// This reference as an array, if it is one.
    pub fn as_array(&self) -> Option<ArrayRef> {
        self.is_array().then_some(ArrayRef(*self))
    }
}

/// The object's offset and its type's structure, checked to belong to
/// `store`.
fn object(any: AnyRef, store: &StoreOpaque) -> Result<(u64, WasmCompositeType)> {
    let raw = any.to_raw(store)? as u64;
    let ty = store.vm().gc_object_type(raw).ok_or_else(|| anyhow!("not an object of this store"))?;
    Ok((raw, ty.composite.clone()))
}

/// Reads the value of type `f` at `offset` in object `raw`.
fn read(store: &mut StoreOpaque, raw: u64, offset: u32, f: WasmFieldType) -> Val {
    let v = store.vm().gc_read(raw, offset, f.storage);
    Val::from_raw(v, ValType::from_env(f.storage.unpacked()), store)
}

/// Writes `value` as a value of field type `f` at `offset` in object `raw`.
fn write(store: &mut StoreOpaque, raw: u64, offset: u32, f: WasmFieldType, value: &Val) -> Result<()> {
    if !f.mutable {
        bail!("the field is immutable");
    }
    let want = ValType::from_env(f.storage.unpacked());
    if value.ty() != want {
        bail!("a value of type {:?} where the field holds {want:?}", value.ty());
    }
    let v = value.to_raw(store)?;
    // Packed fields keep the low bits, as `struct.set` does.
    let v = match f.storage {
        WasmStorageType::I8 | WasmStorageType::I16 => crate::vm::vmcontext::ValRaw::i32(v.get_i32()),
        WasmStorageType::Val(_) => v,
    };
    store.vm_mut().gc_write(raw, offset, f.storage, v).map_err(|e| anyhow!(e))
}

impl StructRef {
    /// The reference as an `anyref`.
    pub fn to_anyref(&self) -> AnyRef {
        self.0
    }

    /// Field `index`'s value (packed `i8`/`i16` fields zero-extended to an
    /// `i32`).
    ///
    /// # Errors
    ///
    /// The struct belongs to another store, or has no such field.
    pub fn field(&self, mut store: impl AsContextMut, index: usize) -> Result<Val> {
        let store = &mut store.as_context_mut().0.opaque;
        let (raw, ty) = object(self.0, store)?;
        let WasmCompositeType::Struct(s) = ty else { bail!("not a struct") };
        let f = *s.fields.get(index).with_context(|| format!("the struct has {} fields", s.fields.len()))?;
        let offset = StructLayout::of(&s).offsets[index];
        Ok(read(store, raw, offset, f))
    }

    /// Sets field `index` to `value`.
    ///
    /// # Errors
    ///
    /// The struct belongs to another store, has no such field, the field
    /// is immutable, or `value` is not of the field's type (or is a
    /// reference of another store).
    pub fn set_field(&self, mut store: impl AsContextMut, index: usize, value: Val) -> Result<()> {
        let store = &mut store.as_context_mut().0.opaque;
        let (raw, ty) = object(self.0, store)?;
        let WasmCompositeType::Struct(s) = ty else { bail!("not a struct") };
        let f = *s.fields.get(index).with_context(|| format!("the struct has {} fields", s.fields.len()))?;
        let offset = StructLayout::of(&s).offsets[index];
        write(store, raw, offset, f, &value)
    }
}

impl ArrayRef {
    /// The reference as an `anyref`.
    pub fn to_anyref(&self) -> AnyRef {
        self.0
    }

    /// The number of elements.
    ///
    /// # Errors
    ///
    /// The array belongs to another store.
    pub fn len(&self, store: impl AsContext) -> Result<u32> {
        let store = &store.as_context().0.opaque;
        let (raw, _) = object(self.0, store)?;
        Ok(store.vm().gc_read(raw, ARRAY_LENGTH, WasmStorageType::Val(kiln_environ::WasmValType::I32)).get_i32() as u32)
    }

    /// Whether the array has no elements.
    ///
    /// # Errors
    ///
    /// The array belongs to another store.
    pub fn is_empty(&self, store: impl AsContext) -> Result<bool> {
        Ok(self.len(store)? == 0)
    }

    /// The element at `index` and its offset (checked against the length).
    fn element(&self, store: &StoreOpaque, index: u32) -> Result<(u64, u32, WasmFieldType)> {
        let (raw, ty) = object(self.0, store)?;
        let WasmCompositeType::Array(a) = ty else { bail!("not an array") };
        let len = store.vm().gc_read(raw, ARRAY_LENGTH, WasmStorageType::Val(kiln_environ::WasmValType::I32)).get_i32()
            as u32;
        if index >= len {
            bail!("index {index} is out of bounds for an array of {len} elements");
        }
        let size = field_size(a.element.storage);
        Ok((raw, array_elems_offset(size) + index * size, a.element))
    }

    /// Element `index` (packed elements zero-extended to an `i32`).
    ///
    /// # Errors
    ///
    /// The array belongs to another store, or `index` is out of bounds.
    pub fn get(&self, mut store: impl AsContextMut, index: u32) -> Result<Val> {
        let store = &mut store.as_context_mut().0.opaque;
        let (raw, offset, f) = self.element(store, index)?;
        Ok(read(store, raw, offset, f))
    }

    /// Sets element `index` to `value`.
    ///
    /// # Errors
    ///
    /// The array belongs to another store, `index` is out of bounds, the
    /// elements are immutable, or `value` is not of their type (or is a
    /// reference of another store).
    pub fn set(&self, mut store: impl AsContextMut, index: u32, value: Val) -> Result<()> {
        let store = &mut store.as_context_mut().0.opaque;
        let (raw, offset, f) = self.element(store, index)?;
        write(store, raw, offset, f, &value)
    }
}

/// How a struct field or array element is stored (GC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageType {
    /// An 8-bit integer, read as an `i32`.
    I8,
    /// A 16-bit integer, read as an `i32`.
    I16,
    /// A value of this type.
    Val(ValType),
}

/// A struct field's or array element's type: its storage and whether it
/// may be written after allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldType {
    /// How it is stored.
    pub storage: StorageType,
    /// Whether it may be written after allocation.
    pub mutable: bool,
}

impl FieldType {
    fn to_env(self) -> WasmFieldType {
        let storage = match self.storage {
            StorageType::I8 => WasmStorageType::I8,
            StorageType::I16 => WasmStorageType::I16,
            StorageType::Val(v) => WasmStorageType::Val(v.to_env()),
        };
        WasmFieldType { storage, mutable: self.mutable }
    }
}

/// A struct type made by the host, registered with an engine: final, with
/// no supertype, so it is the same type as a module's struct type with the
/// same fields written without `sub` (and alone in its recursion group).
#[derive(Clone, Debug)]
pub struct StructType {
    engine: crate::Engine,
    id: u32,
    ty: kiln_environ::StructType,
}

impl StructType {
    /// Registers the struct type with `fields` in `engine`.
    pub fn new(engine: &crate::Engine, fields: impl IntoIterator<Item = FieldType>) -> StructType {
        let ty = kiln_environ::StructType { fields: fields.into_iter().map(FieldType::to_env).collect() };
        let sub = kiln_environ::WasmSubType {
            is_final: true,
            supertype: None,
            composite: WasmCompositeType::Struct(ty.clone()),
        };
        let id = engine.inner.types.register_group(std::slice::from_ref(&sub));
        StructType { engine: engine.clone(), id, ty }
    }
}

/// An array type made by the host, registered with an engine (final, no
/// supertype; see [`StructType`]).
#[derive(Clone, Debug)]
pub struct ArrayType {
    engine: crate::Engine,
    id: u32,
    element: WasmFieldType,
}

impl ArrayType {
    /// Registers the array type with elements of type `element` in
    /// `engine`.
    pub fn new(engine: &crate::Engine, element: FieldType) -> ArrayType {
        let element = element.to_env();
        let sub = kiln_environ::WasmSubType {
            is_final: true,
            supertype: None,
            composite: WasmCompositeType::Array(kiln_environ::ArrayType { element }),
        };
        let id = engine.inner.types.register_group(std::slice::from_ref(&sub));
        ArrayType { engine: engine.clone(), id, element }
    }
}

/// Checks that `engine` is the store's and gives the store its GC heap.
fn prepare(store: &mut StoreOpaque, engine: &crate::Engine) -> Result<()> {
    if !crate::Engine::same(store.engine(), engine) {
        bail!("the type belongs to another engine");
    }
    let allocator = &engine.inner.allocator;
    store.vm_mut().ensure_gc_heap(allocator).context("cannot reserve the store's GC heap")?;
    Ok(())
}

/// Writes `values` (checked) into object `obj`, element `k` at
/// `first + k × size`.
fn fill(store: &mut StoreOpaque, obj: u32, items: impl Iterator<Item = (u32, WasmFieldType, Val)>) -> Result<()> {
    for (offset, f, v) in items {
        let raw = v.to_raw(store)?;
        store.vm_mut().gc_write(u64::from(obj), offset, f.storage, raw).map_err(|e| anyhow!(e))?;
    }
    Ok(())
}

/// Checks `values` against field types (every field counts as mutable:
/// this is initialization).
fn check_types<'a>(fields: impl Iterator<Item = &'a WasmFieldType>, values: &[Val]) -> Result<()> {
    for (i, (f, v)) in fields.zip(values).enumerate() {
        let want = ValType::from_env(f.storage.unpacked());
        if v.ty() != want {
            bail!("value {i} is of type {:?} where the type holds {want:?}", v.ty());
        }
    }
    Ok(())
}

impl StructRef {
    /// Allocates a struct of type `ty` in `store`'s GC heap with `fields`
    /// as its field values.
    ///
    /// # Errors
    ///
    /// `ty` belongs to another engine, the number or types of `fields` do
    /// not match, a reference belongs to another store, or the heap is
    /// full.
    pub fn new(mut store: impl AsContextMut, ty: &StructType, fields: &[Val]) -> Result<StructRef> {
        let inner = store.as_context_mut().0;
        prepare(&mut inner.opaque, &ty.engine)?;
        if fields.len() != ty.ty.fields.len() {
            bail!("the struct type has {} fields, {} values given", ty.ty.fields.len(), fields.len());
        }
        check_types(ty.ty.fields.iter(), fields)?;
        let layout = StructLayout::of(&ty.ty);
        inner.gc_prepare_alloc(u64::from(layout.size))?;
        let store = &mut inner.opaque;
        let obj = store
            .vm_mut()
            .gc_alloc(ty.id, kiln_environ::gc_layout::KIND_STRUCT, layout.size)
            .ok_or_else(|| anyhow!("allocation failed: the GC heap is full"))?;
        let items = ty.ty.fields.iter().zip(&layout.offsets).zip(fields).map(|((f, o), v)| (*o, *f, v.clone()));
        fill(store, obj, items)?;
        let any =
            AnyRef::from_raw(obj as usize, store).ok_or_else(|| anyhow!("internal: a new struct is not an object"))?;
        Ok(StructRef(any))
    }
}

impl ArrayRef {
    /// Allocates an array of type `ty` in `store`'s GC heap with `len`
    /// elements equal to `elem`.
    ///
    /// # Errors
    ///
    /// `ty` belongs to another engine, `elem` is not of the element type,
    /// a reference belongs to another store, or the heap is full.
    pub fn new(mut store: impl AsContextMut, ty: &ArrayType, elem: &Val, len: u32) -> Result<ArrayRef> {
        let inner = store.as_context_mut().0;
        prepare(&mut inner.opaque, &ty.engine)?;
        check_types(std::iter::once(&ty.element), std::slice::from_ref(elem))?;
        let size = field_size(ty.element.storage);
        inner.gc_prepare_alloc(kiln_environ::gc_layout::array_size(size, len).map_or(u64::MAX, u64::from))?;
        let store = &mut inner.opaque;
        let obj = store
            .vm_mut()
            .gc_alloc_array(ty.id, size, len)
            .ok_or_else(|| anyhow!("allocation failed: the GC heap is full"))?;
        let first = array_elems_offset(size);
        fill(store, obj, (0..len).map(|k| (first + k * size, ty.element, elem.clone())))?;
        let any =
            AnyRef::from_raw(obj as usize, store).ok_or_else(|| anyhow!("internal: a new array is not an object"))?;
        Ok(ArrayRef(any))
    }
}

/// A scope for GC handles: the [`AnyRef`]s (and struct and array views)
/// made through it, or through the store while it lives, are released when
/// it is dropped, so that a host loop does not keep every object it ever
/// saw alive. It derefs to, and is a context of, the store it borrows.
pub struct RootScope<C: AsContextMut> {
    store: C,
    mark: usize,
}

impl<C: AsContextMut> RootScope<C> {
    /// Opens a scope on `store`.
    pub fn new(store: C) -> RootScope<C> {
        let mark = store.as_context().0.opaque.vm().gc_roots_mark();
        RootScope { store, mark }
    }
}

impl<C: AsContextMut> Drop for RootScope<C> {
    fn drop(&mut self) {
        self.store.as_context_mut().0.opaque.vm_mut().release_gc_roots(self.mark);
    }
}

impl<C: AsContextMut> crate::store::AsContext for RootScope<C> {
    type Data = C::Data;
    fn as_context(&self) -> crate::store::StoreContext<'_, C::Data> {
        self.store.as_context()
    }
}

impl<C: AsContextMut> AsContextMut for RootScope<C> {
    fn as_context_mut(&mut self) -> crate::store::StoreContextMut<'_, C::Data> {
        self.store.as_context_mut()
    }
}

/// What a store's GC heap holds and what its collector has done (see
/// [`Store::gc_heap_stats`](crate::Store::gc_heap_stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcHeapStats {
    /// Collections so far, minor (of the nursery) and major (of
    /// everything).
    pub collections: u64,
    /// Major collections so far.
    pub major_collections: u64,
    /// Bytes of the old generation after the last collection: what
    /// survived it (after a minor collection, with what was old before;
    /// after a major one, exactly what was live).
    pub live_bytes: u64,
    /// Bytes the heap may hold before its next major collection: the
    /// nursery and the old generation's capacity.
    pub capacity: u64,
    /// Bytes of objects in the heap (nursery and old generation), live or
    /// not.
    pub used_bytes: u64,
}
