//! Exception tags (exception handling): what a thrown exception is an
//! instance of. A tag's type is a function type whose parameters are the
//! exception's payload; tags are told apart by identity, not by type.

use crate::store::{AsContext, AsContextMut, Stored};
use crate::types::FuncType;
use crate::vm::store_ids::TagId;
use anyhow::{Result, bail};
use std::sync::Arc;

/// The type of an exception tag: the payload's types, as the parameters of
/// a function type with no results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagType(pub(crate) FuncType);

impl TagType {
    /// The type of tags whose payload has the parameter types of `ty`.
    ///
    /// # Errors
    ///
    /// `ty` has results (a tag's function type has none).
    pub fn new(ty: FuncType) -> Result<TagType> {
        if !ty.0.results().is_empty() {
            bail!("a tag's function type has no results, found {}", ty.0);
        }
        Ok(TagType(ty))
    }

    /// The function type whose parameters are the payload.
    pub fn ty(&self) -> &FuncType {
        &self.0
    }
}

impl std::fmt::Display for TagType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(tag {})", self.0.0)
    }
}

/// An exception tag of a store: defined by an instance, or created by the
/// host with [`Tag::new`]. Two tags are the same tag only if they are the
/// same object, whatever their types.
#[derive(Clone, Copy, Debug)]
pub struct Tag(pub(crate) Stored<TagId>);

impl Tag {
    /// Creates a tag of type `ty` in `store`.
    ///
    /// # Errors
    ///
    /// The engine does not enable exception handling.
    ///
    /// # Panics
    ///
    /// Never for a store's own objects; see [`Tag::ty`].
    pub fn new(mut store: impl AsContextMut, ty: &TagType) -> Result<Tag> {
        let store = &mut store.as_context_mut().0.opaque;
        if !store.engine().config().wasm_feature_enabled(crate::WasmFeature::Exceptions) {
            bail!("tags need the exceptions feature");
        }
        let type_id = store.engine().register_type(&ty.0.0);
        let id = store.vm_mut().new_host_tag(Arc::new(ty.0.0.clone()), type_id);
        Ok(Tag(store.stored(id)))
    }

    /// The tag's type.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn ty(&self, store: impl AsContext) -> TagType {
        let store = &store.as_context().0.opaque;
        store.check(&self.0);
        TagType(FuncType((**store.vm().tag_ty(self.0.index)).clone()))
    }

    /// Whether `self` and `other` are the same tag.
    ///
    /// # Panics
    ///
    /// Either tag belongs to another store than `store`.
    pub fn same(&self, store: impl AsContext, other: &Tag) -> bool {
        let store = &store.as_context().0.opaque;
        store.check(&self.0);
        store.check(&other.0);
        self.0.index == other.0.index
    }
}
