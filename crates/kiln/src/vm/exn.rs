//! Exception objects (exception handling) and how a store frees them.
//!
//! A thrown exception is a [`VMExn`]: its tag and its payload. Inside wasm
//! an `exnref` is the object's address; objects never move. The store owns
//! every object in its [`ExnHeap`] and frees the ones nothing can reach any
//! more, so a loop that throws and catches keeps memory flat.
//!
//! Reachability: an object is live if it is the store's pending exception
//! (one that left wasm and the embedder has not taken yet), held by the
//! host (an `ExnRef` handle keeps an [`ExnHold`]), stored in a table or a
//! global, in the payload of a live object, or referenced from a wasm
//! frame. Wasm frames are not described precisely (no stack maps yet):
//! while wasm of the store runs, a collection scans this thread's stack
//! conservatively, from the collecting frame up to the outermost
//! activation, plus the callee-saved registers, and keeps every object
//! whose address appears there as a whole word. Compiled code keeps every
//! value that lives across a call in a stack slot or a callee-saved
//! register, and collections only happen at calls (the `throw` builtin,
//! host functions creating objects), so nothing reachable is missed; a
//! stale word can keep a dead object for one more collection, never free
//! a live one. Collections run when the number of objects doubles since
//! the last one (and at least 256 exist), so their cost is amortized.

use super::externref::ExternData;
use super::store_ids::TagId;
use super::vmcontext::{VMTagDefinition, ValRaw};
use crate::fast_hash::FastHashMap;
use kiln_environ::FuncType;
use std::collections::HashSet;
use std::ptr::NonNull;
use std::sync::{Arc, Weak};

/// An exception object. Compiled code reads `tag` and `payload` at the
/// offsets of `kiln_environ::vmoffsets::exn`.
#[repr(C)]
pub struct VMExn {
    tag: NonNull<VMTagDefinition>,
    payload: *const ValRaw,
    values: Box<[ValRaw]>,
    tag_id: TagId,
    ty: Arc<FuncType>,
    /// The externrefs of the payload, kept alive with it.
    externrefs: Vec<Arc<ExternData>>,
}

const _: () = {
    assert!(std::mem::offset_of!(VMExn, tag) == kiln_environ::vmoffsets::exn::TAG as usize);
    assert!(std::mem::offset_of!(VMExn, payload) == kiln_environ::vmoffsets::exn::PAYLOAD as usize);
};

impl VMExn {
    /// An exception of tag `tag_id` (defined at `tag`, of type `ty`, in
    /// engine form) with payload `values`, whose externrefs are
    /// `externrefs`.
    pub fn new(
        tag: NonNull<VMTagDefinition>,
        tag_id: TagId,
        ty: Arc<FuncType>,
        values: Box<[ValRaw]>,
        externrefs: Vec<Arc<ExternData>>,
    ) -> VMExn {
        VMExn { tag, payload: values.as_ptr(), values, tag_id, ty, externrefs }
    }

    /// The definition of the exception's tag (its identity).
    pub fn tag(&self) -> NonNull<VMTagDefinition> {
        self.tag
    }

    /// The exception's tag.
    pub fn tag_id(&self) -> TagId {
        self.tag_id
    }

    /// The tag's type (engine form): its parameters are the payload's types.
    pub fn ty(&self) -> &Arc<FuncType> {
        &self.ty
    }

    /// The payload, one slot per parameter of the tag's type.
    pub fn values(&self) -> &[ValRaw] {
        &self.values
    }

    /// The exnrefs in the payload (non-null).
    fn exnrefs(&self) -> impl Iterator<Item = usize> + '_ {
        self.ty
            .params()
            .iter()
            .zip(self.values.iter())
            .filter(|(t, _)| matches!(t, kiln_environ::WasmValType::Ref(r) if r.is_exn()))
            .map(|(_, v)| v.get_ptr())
            .filter(|p| *p != 0)
    }
}

/// What a host handle to an exception object holds: while any clone of
/// it lives, the object does.
#[derive(Debug)]
pub struct ExnHold {
    raw: usize,
}

impl ExnHold {
    /// The object's address.
    pub fn raw(&self) -> usize {
        self.raw
    }
}

/// Fewest objects at which a collection is worth running.
const MIN_COLLECT: usize = 256;

/// A store's exception objects.
#[derive(Default)]
pub struct ExnHeap {
    live: FastHashMap<usize, Box<VMExn>>,
    /// Objects left after the last collection.
    last_live: usize,
    /// The exception that left wasm uncaught and was not taken yet.
    pending: Option<usize>,
    /// Host handles.
    holds: Vec<Weak<ExnHold>>,
}

impl ExnHeap {
    /// Calls `f` with each payload slot of each object that holds a GC
    /// reference or an externref (roots of the GC heap: a payload's
    /// references are updated in place when objects move).
    pub fn gc_roots(&mut self, f: &mut dyn FnMut(*mut u64, super::gc_heap::RootKind)) {
        for exn in self.live.values_mut() {
            for (t, v) in exn.ty.params().iter().zip(exn.values.iter_mut()) {
                if let Some(kind) = super::gc_heap::RootKind::of(*t) {
                    f((v as *mut ValRaw).cast::<u64>(), kind);
                }
            }
        }
    }

    /// Adds `exn`; returns its address, the `exnref` that stands for it.
    pub fn alloc(&mut self, exn: VMExn) -> usize {
        let b = Box::new(exn);
        let raw = &*b as *const VMExn as usize;
        self.live.insert(raw, b);
        raw
    }

    /// Whether `raw` is a live object of this heap.
    pub fn contains(&self, raw: usize) -> bool {
        self.live.contains_key(&raw)
    }

    /// The object at `raw`, if it is one of this heap.
    pub fn get(&self, raw: usize) -> Option<&VMExn> {
        self.live.get(&raw).map(|b| &**b)
    }

    /// Number of objects (live or not yet collected).
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// The raw externrefs in the payloads of all objects.
    pub fn externrefs(&self) -> impl Iterator<Item = usize> + '_ {
        self.live.values().flat_map(|e| e.externrefs.iter().map(super::externref::externref_to_raw))
    }

    /// Whether enough objects were allocated since the last collection
    /// to run another.
    pub fn wants_collection(&self) -> bool {
        self.live.len() >= MIN_COLLECT.max(2 * self.last_live)
    }

    /// Makes `raw` the pending exception (replacing any other).
    pub fn set_pending(&mut self, raw: usize) {
        self.pending = Some(raw);
    }

    /// Takes the pending exception.
    pub fn take_pending(&mut self) -> Option<usize> {
        self.pending.take()
    }

    /// A host handle keeping object `raw` alive.
    pub fn hold(&mut self, raw: usize) -> Arc<ExnHold> {
        let h = Arc::new(ExnHold { raw });
        if self.holds.len() >= 64 && self.holds.len().is_power_of_two() {
            self.holds.retain(|w| w.strong_count() > 0);
        }
        self.holds.push(Arc::downgrade(&h));
        h
    }

    /// Frees every object not reachable from `roots` (addresses that may
    /// or may not be objects: words of a conservative scan, table
    /// elements), the pending exception, or a host handle.
    pub fn collect(&mut self, roots: impl IntoIterator<Item = usize>) {
        let mut marked: HashSet<usize> = HashSet::new();
        let mut work: Vec<usize> = roots.into_iter().filter(|r| self.live.contains_key(r)).collect();
        work.extend(self.pending);
        self.holds.retain(|w| w.strong_count() > 0);
        work.extend(self.holds.iter().filter_map(|w| w.upgrade()).map(|h| h.raw));
        while let Some(raw) = work.pop() {
            if !marked.insert(raw) {
                continue;
            }
            if let Some(exn) = self.live.get(&raw) {
                work.extend(exn.exnrefs().filter(|r| !marked.contains(r)));
            }
        }
        self.live.retain(|raw, _| marked.contains(raw));
        self.last_live = self.live.len();
    }
}
