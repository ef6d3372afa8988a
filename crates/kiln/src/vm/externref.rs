//! Host references (`externref`): reference-counted boxes of any host
//! value. Inside wasm they are raw pointers to the shared allocation.
//!
//! Ownership: the store keeps a strong reference to every externref that
//! has entered wasm (as an argument, a result of a host function, or by
//! being written to a table or global from the host), so raw pointers held
//! by wasm frames stay valid. Those store references are collected (see
//! `StoreObjects::collect_externrefs`) whenever no wasm is running on the
//! store and the set has doubled since the last collection: everything not
//! reachable from a table, a global, or a host-held `ExternRef` is dropped.

use std::any::Any;
use std::sync::Arc;

/// The shared allocation behind an externref.
pub struct ExternData {
    value: Box<dyn Any + Send + Sync>,
}

impl ExternData {
    /// Wraps a host value.
    pub fn new(value: impl Any + Send + Sync) -> Arc<ExternData> {
        Arc::new(ExternData { value: Box::new(value) })
    }

    /// The host value.
    pub fn value(&self) -> &(dyn Any + Send + Sync) {
        &*self.value
    }
}

/// The raw (wasm-side) representation of an externref.
pub fn externref_to_raw(r: &Arc<ExternData>) -> usize {
    Arc::as_ptr(r) as usize
}
