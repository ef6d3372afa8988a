//! Values crossing the host boundary.

use crate::func::Func;
use crate::store::StoreOpaque;
use crate::types::ValType;
use crate::vm::externref::ExternData;
use crate::vm::vmcontext::ValRaw;
use anyhow::{Result, bail};
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

impl ExternRef {
    /// Wraps any host value.
    pub fn new(value: impl Any + Send + Sync) -> ExternRef {
        ExternRef(ExternData::new(value))
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

/// A reference to a GC value (`anyref`). Kiln does not implement GC
/// objects yet, so no value of this type exists: `Val::AnyRef` is always
/// `None` (null) for now.
#[derive(Clone, Debug)]
pub struct AnyRef {
    _none_yet: std::convert::Infallible,
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
    /// `anyref` (or a type below it); `None` is null, the only value until
    /// GC objects are implemented.
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
            Val::AnyRef(Some(r)) => match r._none_yet {},
            Val::ExnRef(Some(e)) => ValRaw::ptr(e.to_raw(store)?),
            Val::FuncRef(Some(f)) => {
                if f.0.store != store.id() {
                    bail!("function reference belongs to another store");
                }
                ValRaw::ptr(store.vm().func_raw(f.0.index))
            }
            Val::ExternRef(Some(r)) => ValRaw::ptr(store.vm_mut().root_externref(&r.0)),
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
            ValType::ExternRef => Val::ExternRef(store.vm().externref_from_raw(raw.get_ptr()).map(ExternRef)),
            ValType::ExnRef => Val::ExnRef(crate::ExnRef::from_raw(store, raw.get_ptr())),
            // Only null exists (no GC objects yet).
            ValType::AnyRef => Val::AnyRef(None),
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
