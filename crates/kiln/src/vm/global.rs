//! Storage of globals: inline in an instance's VMContext, or owned by the
//! store for globals created by the host.

use super::vmcontext::{VMGlobalDefinition, ValRaw};
use std::ptr::NonNull;

/// A handle to a global's 16 bytes of storage.
pub struct GlobalStorage {
    ptr: NonNull<VMGlobalDefinition>,
    _owned: Option<Box<VMGlobalDefinition>>,
}

// SAFETY: the storage lives as long as the store holding this handle (it is
// owned by it, or by one of its instances), which serializes access.
unsafe impl Send for GlobalStorage {}
// SAFETY: `&GlobalStorage` only exposes the storage's address; reads and
// writes of the value go through the owning store's borrows.
unsafe impl Sync for GlobalStorage {}

impl GlobalStorage {
    /// Fresh host-owned storage holding `init`.
    pub fn new(init: ValRaw) -> GlobalStorage {
        let mut b = Box::new(VMGlobalDefinition { bytes: init.get_u128().to_le_bytes() });
        GlobalStorage { ptr: NonNull::from(&mut *b), _owned: Some(b) }
    }

    /// Storage of a global of an instance (see `Instance::global_ptr`).
    ///
    /// # Safety
    ///
    /// `ptr` is a live instance's global storage, and the instance outlives
    /// the handle and belongs to the store that holds it.
    pub(super) unsafe fn of_instance(ptr: NonNull<VMGlobalDefinition>) -> GlobalStorage {
        GlobalStorage { ptr, _owned: None }
    }

    /// The pointer compiled code uses.
    pub fn as_ptr(&self) -> NonNull<VMGlobalDefinition> {
        self.ptr
    }

    /// The current raw value.
    pub fn get(&self) -> ValRaw {
        // SAFETY: valid storage (type invariant); `&self` of the store
        // excludes concurrent wasm.
        ValRaw::u128(u128::from_le_bytes(unsafe { self.ptr.as_ref().bytes }))
    }

    /// Overwrites the raw value.
    pub fn set(&mut self, v: ValRaw) {
        // SAFETY: valid storage; `&mut` of the store excludes other access.
        unsafe { self.ptr.as_mut().bytes = v.get_u128().to_le_bytes() }
    }
}
