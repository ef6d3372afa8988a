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

/// Recreates a strong reference from a raw externref that is kept alive by
/// the store (`raw` must have come from `externref_to_raw` of an allocation
/// the store still holds, which is the case for every non-null externref
/// value wasm can produce).
pub(crate) fn externref_from_raw(raw: usize) -> Option<Arc<ExternData>> {
    if raw == 0 {
        return None;
    }
    let p = raw as *const ExternData;
    // SAFETY: per this function's contract the allocation is alive with at
    // least one strong count held by the store; we add one for the new Arc.
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}
