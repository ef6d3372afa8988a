//! A store's GC heap (the cage): one reservation of address space in
//! which every GC object of the store lives, named by its 32-bit offset
//! from the base (so any reference, even a wrong one, stays inside the
//! reservation). The first [`NULL_GUARD`] bytes are never used, so no
//! object has offset 0 (null) and small offsets are never objects.
//!
//! The rest of the cage is two *spaces* of [`SPACE_SIZE`] bytes. Objects
//! are bump-allocated in the current space, from the store context's
//! allocation window ([`GcAllocWindow`]) that compiled code allocates
//! from inline. A space holds at most the heap's *capacity*; when an
//! object does not fit, the store collects (`gc_copy.rs`): the live
//! objects are copied into the other space, which becomes the current one,
//! and the capacity is set from what survived, up to the configured
//! limit. Allocation outside a safepoint (the host's, and constant
//! expressions at instantiation) never collects: it grows the capacity up
//! to the limit instead.
//!
//! Memory is made accessible in [`COMMIT_CHUNK`]s as the spaces fill, and
//! given back to the OS when the capacity shrinks. It is *not* zero when
//! reused: every allocation path writes every field (compiled code stores
//! each field, `array.new_default` included; the runtime's paths zero the
//! object). The reservation comes from the engine's allocator (a fixed
//! pool of them under the pooling allocator) and goes back to it, reset,
//! when the heap drops with its store.

use super::gc_copy::Copier;
use super::pool::{Region, RegionPool};
use super::vmcontext::{GcAllocWindow, ValRaw};
use kiln_environ::WasmStorageType;
use kiln_environ::gc_layout::{GcTrace, OBJECT_ALIGN, header};
use std::ptr::NonNull;
use std::sync::Arc;

/// Bytes at the start of the cage that are never allocated.
pub const NULL_GUARD: u32 = 1 << 20;

/// Address space reserved per heap: every 32-bit offset, plus a guard
/// that is never accessible, so that an access at any reference plus any
/// field offset (below 2 MiB) stays inside the reservation.
pub(crate) const RESERVATION: usize = (1 << 32) + (2 << 20);

/// The address range of each of the two spaces, after the null guard.
pub const SPACE_SIZE: u32 = ((1 << 32) - NULL_GUARD as u64) as u32 / 2 / COMMIT_CHUNK * COMMIT_CHUNK;

/// How much more memory is made accessible at a time (and the unit of
/// capacities).
const COMMIT_CHUNK: u32 = 1 << 20;

/// The smallest capacity a collection leaves (unless the limit is lower):
/// below it, collections would come too often for what they free.
const MIN_CAPACITY: u32 = 4 << 20;

/// After a collection the capacity is this many times the bytes that
/// survived (then rounded, bounded by [`MIN_CAPACITY`] and the limit): the
/// heap collects again after allocating about twice what is live, so
/// copying costs at most half a byte per byte allocated.
const GROWTH: u64 = 3;

/// What a root slot holds, for the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootKind {
    /// A GC reference's encoding (`kiln_environ::gc_ref`), zero-extended
    /// to 64 bits.
    Any,
    /// An externref word: a host value, or a GC reference that
    /// `extern.convert_any` tagged.
    Extern,
    /// A wasm frame's slot, which holds either of the above: a word that
    /// is a host value of the store is an externref (told apart by
    /// asking the store).
    Frame,
}

impl RootKind {
    /// The kind of root a slot holding a value of type `t` is, if the
    /// collector must see it.
    pub fn of(t: kiln_environ::WasmValType) -> Option<RootKind> {
        match t {
            kiln_environ::WasmValType::Ref(r) if r.is_any() => Some(RootKind::Any),
            kiln_environ::WasmValType::Ref(r) if r.is_extern() => Some(RootKind::Extern),
            _ => None,
        }
    }
}

/// Counts of what the collector did, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Collections so far.
    pub collections: u64,
    /// Bytes of objects that survived the last collection.
    pub live_bytes: u64,
    /// Bytes the current space may hold before the next collection.
    pub capacity: u64,
    /// Bytes allocated in the current space so far.
    pub used_bytes: u64,
}

/// One store's GC heap.
pub struct GcHeap {
    /// The reservation, from the engine's pool of GC heaps (given back
    /// when the heap drops).
    region: Region,
    pool: Arc<RegionPool>,
    /// The bump pointer (`next`) and the end of the window (`limit`), in
    /// the store context where compiled code reads and advances them.
    window: NonNull<GcAllocWindow>,
    /// Which space allocates (0 or 1).
    current: usize,
    /// Bytes the current space may hold before a collection.
    capacity: u32,
    /// Most bytes a space may hold: the configured limit.
    max_capacity: u32,
    /// Per space, bytes from its start that are accessible.
    accessible: [u32; 2],
    /// Bytes of a space the store's resource limiter allowed so far (it
    /// is asked before allocations of wasm and the host go past this).
    granted: u32,
    /// The host values that extern boxes hold, by externref word: kept
    /// alive while a box holding them is.
    externs: std::collections::HashMap<usize, Arc<super::externref::ExternData>>,
    /// With `Some(n)`, every allocation goes through the runtime and every
    /// `n`th one collects (to test that every safepoint is one).
    zeal: Option<(u32, u32)>,
    stats: GcStats,
}

impl Drop for GcHeap {
    fn drop(&mut self) {
        // The region goes back to the engine's pool, which resets what was
        // written (a placeholder takes its place here).
        let region = std::mem::replace(&mut self.region, Region::empty());
        self.pool.release(region);
    }
}

impl GcHeap {
    /// Reserves a heap holding at most `limit` bytes of objects (capped at
    /// [`SPACE_SIZE`]), allocating through `window` (which it resets).
    ///
    /// # Errors
    ///
    /// The OS refuses the reservation (address space exhausted).
    ///
    /// # Safety
    ///
    /// `window` is valid for reads and writes for as long as the heap is
    /// used, and nothing but the heap and the code of the heap's store
    /// writes it.
    pub unsafe fn new(
        limit: u64,
        window: NonNull<GcAllocWindow>,
        allocator: &super::allocator::Allocator,
    ) -> std::io::Result<GcHeap> {
        let (mut region, pool) = allocator.gc_heap()?;
        // A reused reservation is zero but may still be accessible where
        // its last heap used it; start from nothing accessible.
        if let Err(e) = region.protect_range(0, region.len(), false) {
            pool.release(region);
            return Err(e);
        }
        let max_capacity = u32::try_from(limit).unwrap_or(u32::MAX).min(SPACE_SIZE) / OBJECT_ALIGN * OBJECT_ALIGN;
        let mut heap = GcHeap {
            region,
            pool,
            window,
            current: 0,
            capacity: MIN_CAPACITY.min(max_capacity),
            max_capacity,
            accessible: [0; 2],
            granted: 0,
            externs: Default::default(),
            zeal: None,
            stats: GcStats::default(),
        };
        heap.set_next(heap.space_start(0));
        heap.update_window();
        Ok(heap)
    }

    /// Makes every allocation go through the runtime and every `n`th
    /// (`n` ≥ 1) collect; `None` turns that off.
    pub fn set_zeal(&mut self, n: Option<u32>) {
        self.zeal = n.map(|n| (n.max(1), 0));
        self.update_window();
    }

    /// The offset where space `s` starts.
    fn space_start(&self, s: usize) -> u32 {
        NULL_GUARD + s as u32 * SPACE_SIZE
    }

    /// Offset of the next object (compiled code may have moved it).
    fn next(&self) -> u32 {
        // SAFETY: `window` is valid for as long as the heap (`new`'s
        // contract); nothing else writes it while this runs.
        unsafe { self.window.as_ref().next as u32 }
    }

    fn set_next(&mut self, next: u32) {
        // SAFETY: as in `next`.
        unsafe { self.window.as_mut().next = u64::from(next) };
    }

    /// Sets the window's end: where the accessible part, the capacity or
    /// the limiter's grant of the current space ends, whichever is first
    /// (or at `next` under zeal, so that every allocation calls the
    /// runtime).
    fn update_window(&mut self) {
        let start = self.space_start(self.current);
        let end = start + self.accessible[self.current].min(self.capacity).min(self.granted);
        let limit = if self.zeal.is_some() { self.next() } else { end };
        // SAFETY: as in `next`.
        unsafe { self.window.as_mut().limit = u64::from(limit) };
    }

    /// The base address: an object's reference is its offset from here.
    pub fn base(&self) -> *mut u8 {
        self.region.ptr()
    }

    /// What the collector has done and how full the heap is.
    pub fn stats(&self) -> GcStats {
        let used = self.next() - self.space_start(self.current);
        GcStats { capacity: u64::from(self.capacity), used_bytes: u64::from(used), ..self.stats }
    }

    /// Whether an allocation of `size` bytes at a safepoint should first
    /// collect: it does not fit in the capacity (or zeal says so).
    pub fn wants_collection(&mut self, size: u64) -> bool {
        if size > u64::from(self.max_capacity) {
            // It cannot fit however much is freed: the allocation fails.
            return false;
        }
        if let Some((n, count)) = &mut self.zeal {
            *count += 1;
            if *count >= *n {
                *count = 0;
                return true;
            }
        }
        let used = u64::from(self.next() - self.space_start(self.current));
        used.saturating_add(size) > u64::from(self.capacity)
    }

    /// When an allocation of `size` bytes would take the current space past
    /// what the resource limiter granted: the grant so far and the one to
    /// ask for (the space's use plus `size`, rounded up to a MiB, at most
    /// the configured limit). `None` when it fits the grant, or when it
    /// cannot fit at all (then the allocation fails anyway).
    pub fn growth_wanted(&self, size: u64) -> Option<(u64, u64)> {
        let used = u64::from(self.next() - self.space_start(self.current));
        let need = used.checked_add(size)?;
        if need <= u64::from(self.granted) || need > u64::from(self.max_capacity) {
            return None;
        }
        let desired = need.next_multiple_of(u64::from(COMMIT_CHUNK)).min(u64::from(self.max_capacity));
        Some((u64::from(self.granted), desired))
    }

    /// Records that the limiter allows the heap `bytes` bytes.
    pub fn grant(&mut self, bytes: u64) {
        self.granted = self.granted.max(u32::try_from(bytes).unwrap_or(u32::MAX));
        self.update_window();
    }

    /// The most bytes a space may hold: the configured limit.
    pub fn max_capacity(&self) -> u64 {
        u64::from(self.max_capacity)
    }

    /// Allocates `size` bytes (rounded up to [`OBJECT_ALIGN`]), zeroed, and
    /// writes the header (`type_id`, `kind`); returns the object's offset,
    /// or `None` when it does not fit even at the heap's limit. Never
    /// collects: past the capacity, the capacity grows.
    pub fn alloc(&mut self, type_id: u32, kind: u32, size: u32) -> Option<u32> {
        let size = size.max(header::SIZE).checked_next_multiple_of(OBJECT_ALIGN)?;
        let start = self.space_start(self.current);
        let at = self.next();
        let used = u64::from(at - start) + u64::from(size);
        if used > u64::from(self.max_capacity) {
            return None;
        }
        let used = used as u32;
        if used > self.capacity {
            self.capacity = used.next_multiple_of(COMMIT_CHUNK).min(self.max_capacity);
        }
        if used > self.accessible[self.current] {
            let want = used.next_multiple_of(COMMIT_CHUNK).min(SPACE_SIZE);
            let have = self.accessible[self.current];
            self.region.protect_range((start + have) as usize, (want - have) as usize, true).ok()?;
            self.accessible[self.current] = want;
        }
        self.set_next(at + size);
        self.update_window();
        // SAFETY: `[at, at + size)` is inside the accessible part of this
        // mapping (just checked, and made accessible above) and belongs to
        // no other object (the bump pointer only moves up); the header
        // fields are 4-byte aligned because objects are 8-aligned.
        unsafe {
            let p = self.base().add(at as usize);
            std::ptr::write_bytes(p, 0, size as usize);
            p.add(header::TYPE_ID as usize).cast::<u32>().write(type_id);
            p.add(header::GC_WORD as usize).cast::<u32>().write(kind);
        }
        Some(at)
    }

    /// Allocates an array of `len` zeroed elements of `elem_size` bytes
    /// with header (`type_id`, array kind) and length; `None` when it does
    /// not fit.
    pub fn alloc_array(&mut self, type_id: u32, elem_size: u32, len: u32) -> Option<u32> {
        let size = kiln_environ::gc_layout::array_size(elem_size, len)?;
        let at = self.alloc(type_id, kiln_environ::gc_layout::KIND_ARRAY, size)?;
        // SAFETY: the object was just allocated, at least 12 bytes long
        // (header and length), 8-aligned.
        unsafe { self.base().add((at + kiln_environ::gc_layout::ARRAY_LENGTH) as usize).cast::<u32>().write(len) };
        Some(at)
    }

    /// Copies every object reachable from `roots` into the other space,
    /// updates every reference to them (in the roots and in the objects),
    /// and makes that space the current one; `traces` gives each type
    /// id's trace information, and `is_host_word` tells whether a frame
    /// slot's even word is a host externref rather than an object.
    ///
    /// # Safety
    ///
    /// Each root is valid for unaligned reads and writes of a `u64` for
    /// the duration of the call, and no two name the same slot; every
    /// reference the roots and the objects hold is null, an i31, a host
    /// word of the kind the root allows, or an object of this heap (what
    /// compiled code and the runtime keep).
    pub unsafe fn collect(
        &mut self,
        roots: &[(*mut u64, RootKind)],
        traces: &[Arc<GcTrace>],
        is_host_word: &dyn Fn(u64) -> bool,
    ) {
        let from = self.current;
        let to = 1 - from;
        let (from_start, to_start) = (self.space_start(from), self.space_start(to));
        let used = self.next() - from_start;
        // Everything that survives fits in what was allocated.
        if self.accessible[to] < used {
            let want = used.next_multiple_of(COMMIT_CHUNK).min(SPACE_SIZE);
            let have = self.accessible[to];
            if self.region.protect_range((to_start + have) as usize, (want - have) as usize, true).is_err() {
                // Out of memory for the copy: leave everything where it
                // is; the allocation that asked will fail if it must.
                return;
            }
            self.accessible[to] = want;
        }
        let mut copier = Copier::new(self.base(), from_start..from_start + used, to_start, traces);
        for (slot, kind) in roots {
            // SAFETY: the function's contract.
            unsafe { copier.visit_root(*slot, *kind, is_host_word) };
        }
        let (to_next, boxes) = copier.finish();
        self.externs.retain(|w, _| boxes.contains(w));
        self.current = to;
        self.set_next(to_next);
        let live = to_next - to_start;
        let wanted = (u64::from(live) * GROWTH).max(u64::from(MIN_CAPACITY));
        self.capacity =
            (wanted.min(u64::from(self.max_capacity)) as u32).next_multiple_of(COMMIT_CHUNK).min(self.max_capacity);
        self.stats.collections += 1;
        self.stats.live_bytes = u64::from(live);
        // Give back what is not needed soon: in the current space, what
        // lies past the capacity; in the emptied one, everything past the
        // size of what survived (about what the next collection copies
        // into it). Resident memory is then about the capacity plus the
        // live size rather than twice the capacity, for a page fault when
        // allocation reaches a given-back page again.
        for s in [from, to] {
            let keep = if s == to { self.capacity.max(live) } else { live }.next_multiple_of(COMMIT_CHUNK);
            if self.accessible[s] > keep {
                let start = self.space_start(s);
                let _ = self.region.discard((start + keep) as usize, (self.accessible[s] - keep) as usize);
            }
        }
        self.update_window();
    }

    /// Whether `[at, at + len)` lies within the allocated part of the
    /// current space.
    fn allocated(&self, at: usize, len: usize) -> bool {
        at >= self.space_start(self.current) as usize && at + len <= self.next() as usize
    }

    /// Reads the field of storage `s` at `offset` bytes into object `obj`
    /// as compiled code loads it, zero-extending packed integers and GC
    /// references.
    ///
    /// # Panics
    ///
    /// The field is outside the allocated part of the heap (a layout bug).
    pub fn read_field(&self, obj: u32, offset: u32, s: WasmStorageType) -> ValRaw {
        let size = kiln_environ::gc_layout::field_size(s) as usize;
        let at = obj as usize + offset as usize;
        assert!(self.allocated(at, size), "a field inside an allocated object");
        let mut bytes = [0u8; 16];
        // SAFETY: `[at, at + size)` is inside the allocated, accessible
        // part of the heap (asserted); the copy is unaligned-safe.
        unsafe { std::ptr::copy_nonoverlapping(self.base().add(at), bytes.as_mut_ptr(), size) };
        ValRaw::u128(u128::from_le_bytes(bytes))
    }

    /// Writes `v` into the field of storage `s` at `offset` bytes into
    /// object `obj`, as compiled code stores it (packed integers
    /// truncated, GC references as their 32-bit encoding).
    ///
    /// # Panics
    ///
    /// `obj + offset` plus the field's size is outside the allocated part
    /// of the heap (a layout bug).
    pub fn write_field(&mut self, obj: u32, offset: u32, s: WasmStorageType, v: ValRaw) {
        let size = kiln_environ::gc_layout::field_size(s);
        let at = obj as usize + offset as usize;
        assert!(self.allocated(at, size as usize), "a field inside an allocated object");
        let bytes = v.get_u128().to_le_bytes();
        // SAFETY: `[at, at + size)` is inside the allocated, accessible
        // part of the heap (asserted); the write is unaligned-safe.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base().add(at), size as usize) };
    }

    /// The length of array object `obj`, if `obj` is one of this heap's
    /// objects.
    pub fn array_len(&self, obj: u64) -> Option<u32> {
        self.header(obj)?;
        // SAFETY: `obj` is an allocated object (checked); every object is
        // at least 8 bytes and an array's length follows its header, inside
        // its allocation (arrays are at least 16 bytes).
        Some(unsafe {
            self.base().add(obj as usize + kiln_environ::gc_layout::ARRAY_LENGTH as usize).cast::<u32>().read()
        })
    }

    /// Copies `bytes` to `offset` bytes into object `obj`.
    ///
    /// # Panics
    ///
    /// The range is outside the allocated part of the heap.
    pub fn write_bytes(&mut self, obj: u32, offset: u32, bytes: &[u8]) {
        let at = obj as usize + offset as usize;
        assert!(self.allocated(at, bytes.len()), "bytes inside an allocated object");
        // SAFETY: `[at, at + len)` is inside the allocated, accessible part
        // of the heap (asserted).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base().add(at), bytes.len()) };
    }

    /// A new extern box holding host value `data` (externref word
    /// `word`), which the heap keeps alive while the box is; `None` when
    /// the heap is full.
    pub fn box_extern(&mut self, word: usize, data: Arc<super::externref::ExternData>) -> Option<u32> {
        use kiln_environ::gc_layout::{EXTERN_BOX_SIZE, EXTERN_BOX_TYPE_ID, EXTERN_BOX_WORD, KIND_EXTERN_BOX};
        let obj = self.alloc(EXTERN_BOX_TYPE_ID, KIND_EXTERN_BOX, EXTERN_BOX_SIZE)?;
        self.write_bytes(obj, EXTERN_BOX_WORD, &(word as u64).to_le_bytes());
        self.externs.insert(word, data);
        Some(obj)
    }

    /// The host value an extern box holds, by its externref word.
    pub fn boxed_extern(&self, word: usize) -> Option<Arc<super::externref::ExternData>> {
        self.externs.get(&word).cloned()
    }

    /// Whether `word` is the externref word of a host value that an
    /// extern box holds.
    pub fn is_boxed_word(&self, word: usize) -> bool {
        self.externs.contains_key(&word)
    }

    /// The externref word extern box `obj` holds, if `obj` is one.
    pub fn box_word(&self, obj: u64) -> Option<usize> {
        let (_, word) = self.header(obj)?;
        if word & kiln_environ::gc_layout::KIND_MASK != kiln_environ::gc_layout::KIND_EXTERN_BOX {
            return None;
        }
        // SAFETY: `obj` is an allocated extern box (checked), whose word
        // follows its header inside its 16 bytes.
        Some(unsafe {
            self.base().add(obj as usize + kiln_environ::gc_layout::EXTERN_BOX_WORD as usize).cast::<u64>().read()
        } as usize)
    }

    /// Calls `f` with the value of every 8-byte reference field of `kind`
    /// of every object in the current space, dead ones included (a
    /// superset of what live objects hold, for the store's collections of
    /// externrefs and exception objects); `traces` as for
    /// [`GcHeap::collect`].
    pub fn for_each_word_field(
        &self,
        kind: kiln_environ::gc_layout::RefKind,
        traces: &[Arc<GcTrace>],
        f: &mut dyn FnMut(u64),
    ) {
        let start = self.space_start(self.current);
        // SAFETY: `[start, next)` is the allocated part of the current
        // space: a sequence of whole objects, each written by an allocation
        // path (header first), none forwarded (collections leave only the
        // copies in the current space).
        unsafe { super::gc_copy::for_each_word_field(self.base(), start..self.next(), traces, kind, f) };
    }

    /// Whether `r` is the offset of an object of this heap: allocated in
    /// the current space, and (objects being placed at aligned offsets)
    /// aligned. It may still be the offset of a field inside an object;
    /// references that reach the host come from wasm and are object
    /// starts.
    pub fn contains(&self, r: u64) -> bool {
        r >= u64::from(self.space_start(self.current))
            && r < u64::from(self.next())
            && r.is_multiple_of(u64::from(OBJECT_ALIGN))
    }

    /// The header (type id, GC word) of object `r`, if `r` is one.
    pub fn header(&self, r: u64) -> Option<(u32, u32)> {
        if !self.contains(r) {
            return None;
        }
        // SAFETY: `r` is an allocated offset (checked), so its 8-byte
        // header is accessible and was written by `alloc`.
        unsafe {
            let p = self.base().add(r as usize);
            Some((
                p.add(header::TYPE_ID as usize).cast::<u32>().read(),
                p.add(header::GC_WORD as usize).cast::<u32>().read(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_bumps_zeroed_objects_and_stops_at_the_limit() {
        let mut window = Box::new(GcAllocWindow::default());
        let allocator = super::super::allocator::Allocator::on_demand(&kiln_environ::Tunables::default());
        // SAFETY: the window outlives the heap (dropped after it).
        let mut heap = unsafe { GcHeap::new(64, NonNull::from(&mut *window), &allocator) }.expect("reserve");
        let a = heap.alloc(7, 0, 12).expect("fits");
        assert_eq!(a, NULL_GUARD);
        assert_eq!(heap.header(u64::from(a)), Some((7, 0)));
        let b = heap.alloc(8, 1, 40).expect("fits");
        assert_eq!(b, a + 16);
        assert!(heap.contains(u64::from(b)) && !heap.contains(u64::from(b) + 4) && !heap.contains(0));
        assert_eq!(heap.alloc(9, 0, 16), None, "past the limit");
        // Fields are zero.
        // SAFETY: object `b` is 40 bytes long, allocated above.
        let field = unsafe { heap.base().add(b as usize + 8).cast::<u64>().read() };
        assert_eq!(field, 0);
    }
}
