//! The store's GC heap: creating it, allocating in it (with collections at
//! safepoints), the roots the collector starts from, and the host's
//! access to objects.

use super::VmStore;
use crate::vm::gc_heap::{Collection, GcHeap, GcStats, RootKind};
use crate::vm::host_roots::RootIndex;
use crate::vm::store_ids::TableId;
use crate::vm::vmcontext::ValRaw;
use kiln_environ::WasmValType;
use kiln_environ::gc_layout::{GcTrace, KIND_EXTERN_BOX, KIND_MASK, RefKind};
use std::ptr::NonNull;
use std::sync::Arc;

impl VmStore {
    /// Creates the store's GC heap if it has none yet: when a module that
    /// declares GC types is instantiated, and at the first allocation of
    /// the host or of a builtin. The heap may appear while wasm runs:
    /// compiled code reloads its base from the store context after every
    /// call, and no object exists before it.
    ///
    /// # Errors
    ///
    /// The allocator's pool of GC heaps is exhausted (pooling), or the OS
    /// refuses the heap's reservation.
    pub fn ensure_gc_heap(&mut self, allocator: &crate::vm::allocator::Allocator) -> std::io::Result<()> {
        if self.gc_heap.is_some() {
            return Ok(());
        }
        let window = NonNull::from(&mut self.ctx.gc_alloc);
        // SAFETY: the window is in the boxed store context, which this
        // store owns for as long as the heap (both are freed with the
        // store) and which only the heap and this store's wasm write.
        let heap = unsafe { GcHeap::new(self.max_gc_heap, window, allocator) };
        let mut heap = Box::new(heap?);
        heap.set_zeal(self.gc_zeal);
        self.ctx.gc_heap_base = heap.base();
        self.ctx.gc_heap = &mut *heap;
        self.gc_heap = Some(heap);
        Ok(())
    }

    /// Whether the heap still sizes its nursery (so the limiter's cap is
    /// worth passing to [`VmStore::gc_growth_request`]).
    pub fn gc_wants_limit_hint(&self) -> bool {
        self.gc_heap.as_ref().is_some_and(|h| h.wants_limit_hint())
    }

    /// Whether the store has its GC heap yet.
    pub fn has_gc_heap(&self) -> bool {
        self.gc_heap.is_some()
    }

    /// Allocates a GC object of engine type `type_id` and header kind
    /// `kind`, `size` bytes with its header, zeroed; `None` when the heap
    /// is full or the store has none. Never collects (see
    /// [`VmStore::gc_make_room`]).
    pub fn gc_alloc(&mut self, type_id: u32, kind: u32, size: u32) -> Option<u32> {
        self.gc_heap.as_mut()?.alloc(type_id, kind, size)
    }

    /// Allocates an array of engine type `type_id` with `len` zeroed
    /// elements of `elem_size` bytes; `None` when it does not fit. Never
    /// collects.
    pub fn gc_alloc_array(&mut self, type_id: u32, elem_size: u32, len: u32) -> Option<u32> {
        self.gc_heap.as_mut()?.alloc_array(type_id, elem_size, len)
    }

    /// At a safepoint (a builtin called by wasm, or the host with no
    /// unrooted reference in hand): collects if an allocation of `size`
    /// bytes would not fit (a minor collection when the nursery is full, a
    /// major one when the old generation is), so that the allocation that
    /// follows finds room without growing the heap when garbage can make
    /// room.
    pub fn gc_make_room(&mut self, size: u64) {
        if let Some(kind) = self.gc_heap.as_mut().and_then(|h| h.wants_collection(size)) {
            self.gc_collect(kind);
        }
    }

    /// One step of preparing an allocation of `size` bytes at a
    /// safepoint, repeated until it returns `None` (go ahead) or the
    /// answer says to stop: returns the request to put to the store's
    /// resource limiter (the allowance so far, the one wanted and the
    /// configured limit) when the heap must grow first, after collecting
    /// where that comes first ([`VmStore::gc_make_room`]). Before a minor
    /// collection the limiter is asked for room for all of the nursery
    /// to survive; else a collection comes first and the limiter is asked
    /// only if the allocation still does not fit. `limit_hint` is the
    /// limiter's fixed cap on the heap, if it has one (the nursery is
    /// sized within it). The limiter's answer goes to
    /// [`VmStore::gc_growth_answer`].
    pub fn gc_growth_request(&mut self, size: u64, limit_hint: Option<u64>) -> Option<(u64, u64, u64)> {
        let heap = self.gc_heap.as_mut()?;
        heap.set_limit_hint(limit_hint);
        if heap.minor_pending(size)
            && let Some((current, desired)) = heap.growth_wanted(size)
        {
            return Some((current, desired, heap.max_capacity()));
        }
        self.gc_make_room(size);
        let heap = self.gc_heap.as_ref()?;
        let (current, desired) = heap.growth_wanted(size)?;
        Some((current, desired, heap.max_capacity()))
    }

    /// Records the limiter's answer to a request for `desired` bytes, and
    /// returns whether to go on with [`VmStore::gc_growth_request`]
    /// (`false`: the allocation of `size` bytes fails). Allowed, the heap
    /// may grow to it; refused, the store collects everything, the heap
    /// stops using its nursery if it had one (and asks again without it),
    /// and else only what the collection freed may be used.
    pub fn gc_growth_answer(&mut self, size: u64, desired: u64, allowed: bool) -> bool {
        let Some(heap) = self.gc_heap.as_mut() else { return false };
        if allowed {
            heap.grant(desired);
            return true;
        }
        self.gc_collect(Collection::Major);
        let Some(heap) = self.gc_heap.as_mut() else { return false };
        heap.refused() || heap.growth_wanted(size).is_none()
    }

    /// Collects the GC heap (`kind`: see [`Collection`]): every object
    /// reachable from the roots (wasm frames, globals, tables, passive
    /// element segments, exception payloads, host handles) is kept, and
    /// the objects collected are moved; the others are freed. Does nothing
    /// while collections are forbidden (see [`VmStore::forbid_gc`]) or when
    /// the store has no heap.
    ///
    /// Must only be called where every reference the store's running code
    /// holds is in a root: from the host with no wasm of the store running,
    /// from a host function called by wasm, or from a builtin at a call
    /// site with a stack map (every builtin call).
    pub fn gc_collect(&mut self, kind: Collection) {
        if self.no_gc > 0 || self.gc_heap.is_none() {
            return;
        }
        let verify = self.gc_heap.as_ref().is_some_and(|h| h.verification_due(kind));
        if verify {
            self.verify_gc_roots();
        }
        let roots = self.gc_root_slots();
        let live = &self.externrefs.live;
        let Some(heap) = self.gc_heap.as_deref_mut() else { return };
        self.types.with_traces(|traces| {
            // SAFETY: the slots were just gathered from live storage of this
            // store (frame slots of its stopped wasm, per this function's
            // contract), each once, and nothing else runs until the
            // collection returns; they hold what their kinds say; old
            // objects holding young ones are remembered (compiled code's
            // write barrier, and the runtime's writes through the heap).
            unsafe { heap.collect(kind, &roots, traces, &|w| live.contains_key(&(w as usize))) }
        });
        if verify {
            self.verify_gc_roots();
        }
    }

    /// The write barrier's slow path for compiled code: remembers old
    /// object `obj` (see [`GcHeap::remember_from_wasm`]).
    pub fn gc_remember(&mut self, obj: u64) {
        if let Some(heap) = self.gc_heap.as_mut() {
            heap.remember_from_wasm(obj);
        }
    }

    /// Every slot outside the GC heap that holds a GC reference or an
    /// externref (which may hold one): the collector's roots.
    fn gc_root_slots(&mut self) -> Vec<(*mut u64, RootKind)> {
        let mut roots: Vec<(*mut u64, RootKind)> = Vec::new();
        if self.wasm_active() {
            // SAFETY: the store's wasm is on this thread's stack and Rust
            // code runs, so it is stopped in a call out of wasm (a host
            // function or builtin of the store, the only way Rust code runs
            // beneath it); the slots are used before this returns to it.
            unsafe {
                crate::vm::gc_roots::for_each_frame_root(&*self.ctx, |slot| roots.push((slot, RootKind::Frame)));
            }
        }
        for g in self.globals.values() {
            if let Some(kind) = RootKind::of(g.ty.content) {
                roots.push((g.storage.as_ptr().as_ptr().cast::<u64>(), kind));
            }
        }
        let tables: Vec<TableId> = self.tables.iter().map(|(i, _)| i).collect();
        for i in tables {
            let t = self.table_mut(i);
            if let Some(kind) = RootKind::of(WasmValType::Ref(t.ty().element)) {
                roots.extend(t.reference_elements_mut().iter_mut().map(|e| ((e as *mut usize).cast::<u64>(), kind)));
            }
        }
        for inst in self.instances.values_mut() {
            inst.handle.gc_roots(&mut |slot, kind| roots.push((slot, kind)));
        }
        self.exns.gc_roots(&mut |slot, kind| roots.push((slot, kind)));
        self.host_roots.for_each_mut(|r| roots.push((r as *mut u64, RootKind::Any)));
        roots
    }

    /// Forbids collections until [`VmStore::allow_gc`] (nested): while
    /// code runs that is stopped where no stack map describes its frame
    /// (the epoch signal's stub), allocation grows the heap instead.
    pub fn forbid_gc(&mut self) {
        self.no_gc += 1;
    }

    /// Ends a [`VmStore::forbid_gc`].
    pub fn allow_gc(&mut self) {
        self.no_gc = self.no_gc.saturating_sub(1);
    }

    /// What the collector has done so far, if the store has a GC heap.
    pub fn gc_stats(&self) -> Option<GcStats> {
        self.gc_heap.as_ref().map(|h| h.stats())
    }

    /// Roots GC reference encoding `r` for a host handle.
    pub fn root_gc_ref(&mut self, r: u64) -> RootIndex {
        self.host_roots.push(r)
    }

    /// The current encoding of the reference a host handle roots, or
    /// `None` if its scope has ended.
    pub fn rooted_gc_ref(&self, at: RootIndex) -> Option<u64> {
        self.host_roots.get(at)
    }

    /// A mark for [`VmStore::release_gc_roots`]: the host roots made from
    /// now on are released by it.
    pub fn gc_roots_mark(&self) -> usize {
        self.host_roots.mark()
    }

    /// Releases the host roots made since `mark`.
    pub fn release_gc_roots(&mut self, mark: usize) {
        if self.host_roots.mark() > mark {
            self.host_roots.release_to(mark);
        }
    }

    /// `any.convert_extern` of host externref word `word` (one of this
    /// store's): a new extern box; `None` when the heap is full, or the
    /// word is not a live externref of this store.
    pub fn gc_box_extern(&mut self, word: usize) -> Option<u32> {
        let data = self.externref_from_raw(word)?;
        self.gc_heap.as_mut()?.box_extern(word, data)
    }

    /// The type (engine form) of GC object `raw` of this store, if it is
    /// one and not an extern box.
    pub fn gc_object_type(&self, raw: u64) -> Option<Arc<kiln_environ::WasmSubType>> {
        let (type_id, _) = self.gc_header(raw)?;
        self.types.get(type_id)
    }

    /// Reads the field of storage `s` at `offset` bytes into GC object
    /// `raw` (one of this store's, checked by the caller).
    ///
    /// # Panics
    ///
    /// The store has no GC heap, or the field is outside the heap.
    pub fn gc_read(&self, raw: u64, offset: u32, s: kiln_environ::WasmStorageType) -> ValRaw {
        self.gc_heap.as_ref().expect("an object implies a heap").read_field(raw as u32, offset, s)
    }

    /// Writes `v` into the field of storage `s` at `offset` bytes into GC
    /// object `raw`, after checking that it is a value of the field's type
    /// (`ty`, engine form) for this store.
    ///
    /// # Errors
    ///
    /// `v` is not such a value.
    ///
    /// # Panics
    ///
    /// As [`VmStore::gc_read`].
    pub fn gc_write(
        &mut self,
        raw: u64,
        offset: u32,
        s: kiln_environ::WasmStorageType,
        v: ValRaw,
    ) -> Result<(), String> {
        self.check_value(s.unpacked(), v)?;
        self.gc_heap.as_mut().expect("an object implies a heap").write_field(raw as u32, offset, s, v);
        Ok(())
    }

    /// The GC references in this store's wasm frames on this thread
    /// (innermost first), found through the stack maps; empty when none of
    /// the store's wasm is running (for tests of the stack maps).
    #[cfg(test)]
    pub fn gc_frame_roots(&self) -> Vec<u64> {
        let mut roots = Vec::new();
        if !self.wasm_active() {
            return roots;
        }
        // SAFETY: as in `gc_root_slots`; the slots are read before this
        // returns.
        unsafe {
            crate::vm::gc_roots::for_each_frame_root(&*self.ctx, |slot| roots.push(slot.read()));
        }
        roots
    }

    /// Debug builds: checks that every GC reference reachable from the
    /// roots (through the objects' reference fields, as the collector
    /// traces them) is null, an i31, a host externref where one may be, or
    /// one of the store's objects, and aborts (naming the value) if one is
    /// not: a reference missing from or wrong in a stack map, a field
    /// written wrongly, or a collector bug. Run before and after
    /// collections (see `GcHeap::verification_due`). Release builds:
    /// nothing.
    pub fn verify_gc_roots(&mut self) {
        if !cfg!(debug_assertions) || self.gc_heap.is_none() {
            return;
        }
        let mut work: Vec<u64> = Vec::new();
        for (slot, kind) in self.gc_root_slots() {
            // SAFETY: the slots were just gathered from live storage.
            let w = unsafe { slot.read_unaligned() };
            let r = match kind {
                RootKind::Any => Some(w),
                RootKind::Extern | RootKind::Frame => self.gc_ref_in_word(w, kind),
            };
            if let Some(r) = r
                && r != 0
                && !kiln_environ::gc_ref::is_i31(r)
                && self.gc_header(r).is_none()
            {
                eprintln!("kiln: a GC root ({kind:?}, at {slot:p}) holds {r:#x}, which is not an object of the store");
                std::process::abort();
            }
            work.extend(r);
        }
        let mut seen = std::collections::HashSet::new();
        while let Some(r) = work.pop() {
            if r == 0 || kiln_environ::gc_ref::is_i31(r) || !seen.insert(r) {
                continue;
            }
            let Some((type_id, word)) = self.gc_header(r) else {
                eprintln!("kiln: a GC object's field holds {r:#x}, which is not a GC reference of the store");
                std::process::abort();
            };
            if word & KIND_MASK == KIND_EXTERN_BOX {
                continue;
            }
            let Some(trace) = self.types.trace(type_id) else {
                eprintln!("kiln: object {r:#x} has type id {type_id}, which the engine does not know");
                std::process::abort();
            };
            let any = kiln_environ::WasmStorageType::Val(WasmValType::ANYREF);
            let ext = kiln_environ::WasmStorageType::Val(WasmValType::EXTERNREF);
            let field = |offset: u32, kind: RefKind, work: &mut Vec<u64>| match kind {
                RefKind::Any => work.push(self.gc_read(r, offset, any).get_ptr() as u64),
                RefKind::Extern => {
                    let w = self.gc_read(r, offset, ext).get_ptr() as u64;
                    work.extend(self.gc_ref_in_word(w, RootKind::Extern));
                }
                RefKind::Exn => {}
            };
            match &*trace {
                GcTrace::Struct { refs, .. } => refs.iter().for_each(|(o, k)| field(*o, *k, &mut work)),
                GcTrace::Array { elem_size, elems: Some(k) } => {
                    let len = self.gc_heap.as_ref().and_then(|h| h.array_len(r)).unwrap_or(0);
                    let first = kiln_environ::gc_layout::array_elems_offset(*elem_size);
                    (0..len).for_each(|i| field(first + i * elem_size, *k, &mut work));
                }
                GcTrace::Array { elems: None, .. } | GcTrace::None => {}
            }
        }
    }

    /// The GC reference in word `w` of a slot of kind `kind` (extern or
    /// frame), if it holds one rather than a host value.
    fn gc_ref_in_word(&self, w: u64, kind: RootKind) -> Option<u64> {
        let host = |w: u64| {
            self.externrefs.live.contains_key(&(w as usize))
                || self.gc_heap.as_ref().is_some_and(|h| h.is_boxed_word(w as usize))
        };
        if kiln_environ::gc_ref::is_externalized(w) && w >> 32 != 0 {
            Some(kiln_environ::gc_ref::internalize(w))
        } else if kind == RootKind::Frame && w >> 32 == 0 && !host(w) {
            Some(w)
        } else {
            None
        }
    }

    /// The externref word extern box `raw` holds, if `raw` is one of this
    /// store's extern boxes.
    pub fn gc_box_word(&self, raw: u64) -> Option<usize> {
        self.gc_heap.as_ref()?.box_word(raw)
    }

    /// The header (engine type id, GC word) of GC object `raw`, if it is
    /// one of this store's.
    pub fn gc_header(&self, raw: u64) -> Option<(u32, u32)> {
        self.gc_heap.as_ref()?.header(raw)
    }

    /// Calls `f` with every externref or exnref word (as `kind` says) that
    /// a GC object of the store holds (dead ones' included): what the
    /// store's collections of externrefs and exception objects must keep.
    pub fn gc_heap_words(&self, kind: RefKind, f: &mut dyn FnMut(u64)) {
        if let Some(heap) = &self.gc_heap {
            self.types.with_traces(|traces| heap.for_each_word_field(kind, traces, f));
        }
    }
}
