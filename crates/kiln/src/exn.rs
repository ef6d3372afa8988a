//! Exceptions in the embedding API: exception objects ([`ExnRef`]), and
//! the error that says one was thrown ([`ThrownException`]).
//!
//! An exception that wasm throws and nothing catches ends the call with an
//! error that is a [`ThrownException`]; the exception itself becomes the
//! store's *pending exception*, which
//! [`Store::take_pending_exception`](crate::Store::take_pending_exception)
//! hands over (tag and payload can then be read). A host function throws
//! into its wasm caller by returning the error of
//! [`StoreContextMut::throw`](crate::StoreContextMut::throw); an error a
//! host function passes on unchanged from a call into wasm rethrows that
//! call's pending exception. This is Wasmtime's shape.

use crate::store::{AsContext, AsContextMut, StoreId, StoreOpaque};
use crate::tag::Tag;
use crate::values::Val;
use crate::vm::exn::ExnHold;
use anyhow::{Result, bail};
use std::fmt;
use std::sync::Arc;

/// The error of a call that ended because a wasm exception was thrown and
/// not caught: the exception is the store's pending exception.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThrownException;

impl fmt::Display for ThrownException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a wasm exception was thrown and not caught")
    }
}

impl std::error::Error for ThrownException {}

/// A reference to an exception object of a store (a non-null `exnref`).
/// While the handle exists, the object does.
#[derive(Clone, Debug)]
pub struct ExnRef {
    store: StoreId,
    hold: Arc<ExnHold>,
}

impl ExnRef {
    /// Creates an exception of tag `tag` with payload `fields`.
    ///
    /// # Errors
    ///
    /// The fields do not match the tag's type, or hold references of
    /// another store.
    ///
    /// # Panics
    ///
    /// `tag` belongs to another store.
    pub fn new(mut store: impl AsContextMut, tag: &Tag, fields: &[Val]) -> Result<ExnRef> {
        let store = &mut store.as_context_mut().0.opaque;
        store.check(&tag.0);
        let ty = store.vm().tag_ty(tag.0.index).clone();
        if fields.len() != ty.params().len() {
            bail!("the tag's payload has {} values, {} given", ty.params().len(), fields.len());
        }
        let mut raw = Vec::with_capacity(fields.len());
        for (f, t) in fields.iter().zip(ty.params()) {
            if f.ty().to_env() != crate::types::ValType::from_env(*t).to_env() {
                bail!("payload value of type {:?} where the tag has {t}", f.ty());
            }
            raw.push(f.to_raw(store)?);
        }
        let exn = store.vm_mut().new_exn(tag.0.index, raw.into_boxed_slice()).map_err(anyhow::Error::msg)?;
        Ok(ExnRef::hold(store, exn))
    }

    /// A handle to object `raw` of `store`.
    pub(crate) fn hold(store: &mut StoreOpaque, raw: usize) -> ExnRef {
        ExnRef { store: store.id(), hold: store.vm_mut().exns_mut().hold(raw) }
    }

    /// The handle of raw `exnref` `raw` (from wasm, a table or a global of
    /// `store`); `None` for null or anything the store does not hold.
    pub(crate) fn from_raw(store: &mut StoreOpaque, raw: usize) -> Option<ExnRef> {
        store.vm().exns().contains(raw).then(|| ExnRef::hold(store, raw))
    }

    /// The raw `exnref`, checked to belong to `store`.
    pub(crate) fn to_raw(&self, store: &StoreOpaque) -> Result<usize> {
        if self.store != store.id() {
            bail!("exception reference belongs to another store");
        }
        Ok(self.hold.raw())
    }

    /// The exception's tag.
    ///
    /// # Errors
    ///
    /// The exception belongs to another store.
    pub fn tag(&self, store: impl AsContext) -> Result<Tag> {
        let store = &store.as_context().0.opaque;
        let raw = self.to_raw(store)?;
        let exn = store.vm().exns().get(raw).ok_or_else(|| anyhow::anyhow!("stale exception reference"))?;
        Ok(Tag(store.stored(exn.tag_id())))
    }

    /// The payload, in the order of the tag's parameters.
    ///
    /// # Errors
    ///
    /// The exception belongs to another store.
    pub fn fields(&self, mut store: impl AsContextMut) -> Result<Vec<Val>> {
        let store = &mut store.as_context_mut().0.opaque;
        let raw = self.to_raw(store)?;
        let exn = store.vm().exns().get(raw).ok_or_else(|| anyhow::anyhow!("stale exception reference"))?;
        let (ty, values) = (exn.ty().clone(), exn.values().to_vec());
        Ok(ty
            .params()
            .iter()
            .zip(values)
            .map(|(t, v)| Val::from_raw(v, crate::types::ValType::from_env(*t), store))
            .collect())
    }

    /// Payload value `index`.
    ///
    /// # Errors
    ///
    /// There is no such field, or the exception belongs to another store.
    pub fn field(&self, store: impl AsContextMut, index: usize) -> Result<Val> {
        let mut fields = self.fields(store)?;
        if index >= fields.len() {
            bail!("field {index} of an exception with {} fields", fields.len());
        }
        Ok(fields.swap_remove(index))
    }

    /// Whether `a` and `b` are the same exception object.
    pub fn ptr_eq(a: &ExnRef, b: &ExnRef) -> bool {
        a.store == b.store && a.hold.raw() == b.hold.raw()
    }
}

impl StoreOpaque {
    /// Takes the pending exception (see the module docs).
    pub(crate) fn take_pending_exception(&mut self) -> Option<ExnRef> {
        let raw = self.vm_mut().exns_mut().take_pending()?;
        Some(ExnRef::hold(self, raw))
    }

    /// Makes `exn` the pending exception and returns the error that
    /// throws it.
    pub(crate) fn throw(&mut self, exn: &ExnRef) -> anyhow::Error {
        match exn.to_raw(self) {
            Ok(raw) => {
                self.vm_mut().exns_mut().set_pending(raw);
                anyhow::Error::new(ThrownException)
            }
            Err(e) => e,
        }
    }
}
