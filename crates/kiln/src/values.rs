//! Values crossing the host boundary.

use crate::func::Func;
use crate::store::{AsContext, AsContextMut, StoreOpaque};
use crate::types::ValType;
use crate::vm::externref::ExternData;
use crate::vm::vmcontext::ValRaw;
use anyhow::{Context, Result, bail};
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// A 128-bit SIMD vector value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct V128(u128);

impl V128 {
    /// The bits, little-endian lane order.
    pub fn as_u128(&self) -> u128 {
        self.0
    }
}

impl From<u128> for V128 {
    fn from(v: u128) -> V128 {
        V128(v)
    }
}

impl From<V128> for u128 {
    fn from(v: V128) -> u128 {
        v.0
    }
}

/// A reference to a host value, usable as an `externref` by wasm.
///
/// Cloning is cheap (reference counted). The value is freed when the last
/// `ExternRef` is dropped and no store still reaches it from a table or
/// global (stores drop their references when collecting, see
/// [`Store::gc`](crate::Store::gc)).
#[derive(Clone)]
pub struct ExternRef(pub(crate) Arc<ExternData>);

/// What an `externref` made by `extern.convert_any` of a GC reference
/// holds, seen from the host: that reference (so that passing it back into
/// wasm gives wasm the same word).
struct ExternalizedAny(AnyRef);

impl ExternRef {
    /// Wraps any host value.
    pub fn new(value: impl Any + Send + Sync) -> ExternRef {
        ExternRef(ExternData::new(value))
    }

    /// The `externref` that `extern.convert_any` makes of `any`: for an
    /// extern box (`AnyRef::convert_extern` of a host value), that host
    /// value; for any other reference, an externref that holds it (and
    /// that [`AnyRef::convert_extern`] turns back into it).
    ///
    /// # Errors
    ///
    /// `any` is an object of another store.
    pub fn convert_any(store: impl AsContext, any: AnyRef) -> Result<ExternRef> {
        let store = &store.as_context().0.opaque;
        let raw = any.to_raw(store)?;
        if let Some(data) = store.vm().gc_box_word(raw as u64).and_then(|w| store.vm().externref_from_raw(w)) {
            return Ok(ExternRef(data));
        }
        Ok(ExternRef::new(ExternalizedAny(any)))
    }

    /// The externref word of this reference in `store`: the GC reference it
    /// holds, tagged, if `extern.convert_any` made it; else the rooted host
    /// value.
    fn to_raw(&self, store: &mut StoreOpaque) -> Result<usize> {
        if let Some(ExternalizedAny(any)) = self.0.value().downcast_ref::<ExternalizedAny>() {
            return Ok(kiln_environ::gc_ref::externalize(any.to_raw(store)? as u64) as usize);
        }
        Ok(store.vm_mut().root_externref(&self.0))
    }

    /// The externref behind word `raw` of `store`, if any.
    pub(crate) fn from_raw(raw: usize, store: &mut StoreOpaque) -> Option<ExternRef> {
        if kiln_environ::gc_ref::is_externalized(raw as u64) {
            let any = AnyRef::from_raw(kiln_environ::gc_ref::internalize(raw as u64) as usize, store)?;
            return Some(ExternRef::new(ExternalizedAny(any)));
        }
        store.vm().externref_from_raw(raw).map(ExternRef)
    }

    /// The wrapped value, for downcasting.
    pub fn data(&self) -> &(dyn Any + Send + Sync) {
        self.0.value()
    }

    /// Whether two handles refer to the same host value.
    pub fn ptr_eq(a: &ExternRef, b: &ExternRef) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl fmt::Debug for ExternRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExternRef({:p})", Arc::as_ptr(&self.0))
    }
}

/// An unboxed 31-bit integer, the value of `i31ref` (GC): what
/// `ref.i31` makes of an `i32`, keeping its low 31 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct I31(u32);

impl I31 {
    /// The low 31 bits of `value` (the upper bit is dropped, as `ref.i31`
    /// does).
    pub fn wrapping_u32(value: u32) -> I31 {
        I31(value & 0x7fff_ffff)
    }

    /// The low 31 bits of `value`, two's complement (as `ref.i31` does).
    pub fn wrapping_i32(value: i32) -> I31 {
        I31::wrapping_u32(value as u32)
    }

    /// `value` if it fits in 31 unsigned bits.
    pub fn new_u32(value: u32) -> Option<I31> {
        (value <= 0x7fff_ffff).then_some(I31(value))
    }

    /// `value` if it fits in 31 signed bits.
    pub fn new_i32(value: i32) -> Option<I31> {
        ((-0x4000_0000..0x4000_0000).contains(&value)).then(|| I31::wrapping_i32(value))
    }

    /// The value zero-extended (`i31.get_u`).
    pub fn get_u32(&self) -> u32 {
        self.0
    }

    /// The value sign-extended (`i31.get_s`).
    pub fn get_i32(&self) -> i32 {
        ((self.0 << 1) as i32) >> 1
    }
}

/// A non-null reference to a GC value (`anyref` and the types below it):
/// an unboxed [`I31`], or a struct or array object of one store.
///
/// A handle to an object is *rooted*: while it is, the object lives (the
/// collector moves objects, and updates the handle's root). Handles are
/// released in scopes: the handles a host function gets or makes when
/// wasm calls it are released when it returns, those made inside a
/// [`RootScope`](crate::RootScope) when the scope is dropped, and all
/// others when the store is dropped (a host loop that makes many handles
/// outside wasm should use a `RootScope`). Using a released handle, or one
/// with another store, is an error, never another object.
///
/// `==` compares handles, not objects: see [`AnyRef::ref_eq`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AnyRef {
    /// For an i31: its encoding (`kiln_environ::gc_ref`); 0 for an object.
    raw: u32,
    /// For an object: its store, its root there, and its header kind.
    object: Option<(crate::store::StoreId, crate::vm::host_roots::RootIndex, u32)>,
}

impl AnyRef {
    /// The reference to the unboxed integer `value` (`ref.i31`).
    pub fn from_i31(value: I31) -> AnyRef {
        AnyRef { raw: kiln_environ::gc_ref::i31_ref(value.0 as i32) as u32, object: None }
    }

    /// Whether this is a struct object.
    pub fn is_struct(&self) -> bool {
        self.kind() == Some(kiln_environ::gc_layout::KIND_STRUCT)
    }

    /// Whether this is an array object.
    pub fn is_array(&self) -> bool {
        self.kind() == Some(kiln_environ::gc_layout::KIND_ARRAY)
    }

    /// The header kind of an object, recorded when the reference left
    /// wasm (a kind never changes).
    fn kind(&self) -> Option<u32> {
        self.object.map(|(_, _, kind)| kind & kiln_environ::gc_layout::KIND_MASK)
    }

    /// The `anyref` that `any.convert_extern` makes of `extern_ref`: the
    /// GC reference it holds if `extern.convert_any` made it, else a new
    /// extern box in `store`'s GC heap holding the host value (which the
    /// store then keeps alive while the box lives).
    ///
    /// # Errors
    ///
    /// The store has no GC heap (no module compiled with GC was
    /// instantiated in it), the heap is full, or the reference holds an
    /// object of another store or a released handle.
    pub fn convert_extern(mut store: impl AsContextMut, extern_ref: &ExternRef) -> Result<AnyRef> {
        let inner = store.as_context_mut().0;
        if let Some(ExternalizedAny(any)) = extern_ref.0.value().downcast_ref::<ExternalizedAny>() {
            any.to_raw(&inner.opaque)?;
            return Ok(*any);
        }
        let word = inner.opaque.vm_mut().root_externref(&extern_ref.0);
        inner.gc_prepare_alloc(u64::from(kiln_environ::gc_layout::EXTERN_BOX_SIZE))?;
        let store = &mut inner.opaque;
        let Some(raw) = store.vm_mut().gc_box_extern(word) else {
            bail!("cannot box a host value: the store has no GC heap, or it is full");
        };
        AnyRef::from_raw(raw as usize, store).context("internal: a new extern box is not an object")
    }

    /// Whether this is an extern box: a host value made an `anyref` by
    /// `any.convert_extern` (see [`ExternRef::convert_any`] to get it back).
    pub fn is_extern_box(&self) -> bool {
        self.kind() == Some(kiln_environ::gc_layout::KIND_EXTERN_BOX)
    }

    /// Whether this is an unboxed integer.
    pub fn is_i31(&self) -> bool {
        self.object.is_none()
    }

    /// The unboxed integer, if this is one.
    pub fn as_i31(&self) -> Option<I31> {
        self.is_i31().then(|| I31(kiln_environ::gc_ref::i31_get_u(u64::from(self.raw))))
    }

    /// Whether `self` and `other` are the same value, as wasm's `ref.eq`
    /// says: equal integers, or the same object.
    ///
    /// # Errors
    ///
    /// Either is an object of another store, or a released handle.
    pub fn ref_eq(&self, store: impl AsContext, other: &AnyRef) -> Result<bool> {
        let store = &store.as_context().0.opaque;
        Ok(self.to_raw(store)? == other.to_raw(store)?)
    }

    /// The reference encoded as `raw` in `store`, rooted there: `None` for
    /// null (and for anything that is neither an i31 nor an object of the
    /// store, which compiled code never produces).
    pub(crate) fn from_raw(raw: usize, store: &mut StoreOpaque) -> Option<AnyRef> {
        let raw32 = u32::try_from(raw).ok()?;
        if kiln_environ::gc_ref::is_i31(u64::from(raw32)) {
            return Some(AnyRef { raw: raw32, object: None });
        }
        let (_, word) = store.vm().gc_header(u64::from(raw32))?;
        let root = store.vm_mut().root_gc_ref(u64::from(raw32));
        Some(AnyRef { raw: 0, object: Some((store.id(), root, word)) })
    }

    /// The encoding of this reference for `store`, where its object is now.
    ///
    /// # Errors
    ///
    /// The reference is an object of another store, or a released handle.
    pub(crate) fn to_raw(self, store: &StoreOpaque) -> Result<usize> {
        match self.object {
            None => Ok(self.raw as usize),
            Some((id, _, _)) if id != store.id() => bail!("GC reference belongs to another store"),
            Some((_, root, _)) => match store.vm().rooted_gc_ref(root) {
                Some(r) => Ok(r as usize),
                None => bail!("GC reference used after its root scope ended (a stale handle)"),
            },
        }
    }
}

/// A WebAssembly value.
#[derive(Clone, Debug)]
pub enum Val {
    /// `i32`.
    I32(i32),
    /// `i64`.
    I64(i64),
    /// `f32`, as raw bits (so NaN payloads survive).
    F32(u32),
    /// `f64`, as raw bits.
    F64(u64),
    /// `v128`.
    V128(V128),
    /// `funcref`; `None` is null.
    FuncRef(Option<Func>),
    /// `externref`; `None` is null.
    ExternRef(Option<ExternRef>),
    /// `exnref`; `None` is null.
    ExnRef(Option<crate::ExnRef>),
    /// `anyref` (or a type below it); `None` is null. Its values are i31s
    /// ([`AnyRef::from_i31`]) and struct objects made by wasm.
    AnyRef(Option<AnyRef>),
}

impl Val {
    /// The value's type.
    pub fn ty(&self) -> ValType {
        match self {
            Val::I32(_) => ValType::I32,
            Val::I64(_) => ValType::I64,
            Val::F32(_) => ValType::F32,
            Val::F64(_) => ValType::F64,
            Val::V128(_) => ValType::V128,
            Val::FuncRef(_) => ValType::FuncRef,
            Val::ExternRef(_) => ValType::ExternRef,
            Val::ExnRef(_) => ValType::ExnRef,
            Val::AnyRef(_) => ValType::AnyRef,
        }
    }

    /// The `i32`, if this is one.
    pub fn i32(&self) -> Option<i32> {
        if let Val::I32(v) = self { Some(*v) } else { None }
    }

    /// The `i64`, if this is one.
    pub fn i64(&self) -> Option<i64> {
        if let Val::I64(v) = self { Some(*v) } else { None }
    }

    /// The `f32`, if this is one.
    pub fn f32(&self) -> Option<f32> {
        if let Val::F32(v) = self { Some(f32::from_bits(*v)) } else { None }
    }

    /// The `f64`, if this is one.
    pub fn f64(&self) -> Option<f64> {
        if let Val::F64(v) = self { Some(f64::from_bits(*v)) } else { None }
    }

    /// The null value of reference type `ty`, or zero for numeric types.
    pub fn default_for(ty: ValType) -> Val {
        match ty {
            ValType::I32 => Val::I32(0),
            ValType::I64 => Val::I64(0),
            ValType::F32 => Val::F32(0),
            ValType::F64 => Val::F64(0),
            ValType::V128 => Val::V128(V128(0)),
            ValType::FuncRef => Val::FuncRef(None),
            ValType::ExternRef => Val::ExternRef(None),
            ValType::ExnRef => Val::ExnRef(None),
            ValType::AnyRef => Val::AnyRef(None),
        }
    }

    /// Converts to the raw form, rooting externrefs in the store.
    pub(crate) fn to_raw(&self, store: &mut StoreOpaque) -> Result<ValRaw> {
        Ok(match self {
            Val::I32(v) => ValRaw::i32(*v),
            Val::I64(v) => ValRaw::i64(*v),
            Val::F32(v) => ValRaw::f32(*v),
            Val::F64(v) => ValRaw::f64(*v),
            Val::V128(v) => ValRaw::u128(v.0),
            Val::FuncRef(None) | Val::ExternRef(None) | Val::ExnRef(None) | Val::AnyRef(None) => ValRaw::ptr(0),
            Val::AnyRef(Some(r)) => ValRaw::ptr(r.to_raw(store)?),
            Val::ExnRef(Some(e)) => ValRaw::ptr(e.to_raw(store)?),
            Val::FuncRef(Some(f)) => {
                if f.0.store != store.id() {
                    bail!("function reference belongs to another store");
                }
                ValRaw::ptr(store.vm().func_raw(f.0.index))
            }
            Val::ExternRef(Some(r)) => ValRaw::ptr(r.to_raw(store)?),
        })
    }

    /// Converts from the raw form of a value of type `ty`.
    pub(crate) fn from_raw(raw: ValRaw, ty: ValType, store: &mut StoreOpaque) -> Val {
        match ty {
            ValType::I32 => Val::I32(raw.get_i32()),
            ValType::I64 => Val::I64(raw.get_i64()),
            ValType::F32 => Val::F32(raw.get_f32()),
            ValType::F64 => Val::F64(raw.get_f64()),
            ValType::V128 => Val::V128(V128(raw.get_u128())),
            ValType::FuncRef => Val::FuncRef(store.func_from_raw(raw.get_ptr())),
            ValType::ExternRef => Val::ExternRef(ExternRef::from_raw(raw.get_ptr(), store)),
            ValType::ExnRef => Val::ExnRef(crate::ExnRef::from_raw(store, raw.get_ptr())),
            ValType::AnyRef => Val::AnyRef(AnyRef::from_raw(raw.get_ptr(), store)),
        }
    }
}

impl From<i32> for Val {
    fn from(v: i32) -> Val {
        Val::I32(v)
    }
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::I64(v)
    }
}

impl From<f32> for Val {
    fn from(v: f32) -> Val {
        Val::F32(v.to_bits())
    }
}

impl From<f64> for Val {
    fn from(v: f64) -> Val {
        Val::F64(v.to_bits())
    }
}

impl From<V128> for Val {
    fn from(v: V128) -> Val {
        Val::V128(v)
    }
}
