//! A store's GC heap (the cage): one reservation of address space in
//! which every GC object of the store lives, named by its 32-bit offset
//! from the base (so any reference, even a wrong one, stays inside the
//! reservation). The first [`NURSERY_START`] bytes are never used, so no
//! object has offset 0 (null) and small offsets are never objects.
//!
//! The heap is generational. Objects are bump-allocated in the *nursery*
//! (at [`NURSERY_START`], 1 to 4 MiB as the old generation grows, always
//! resident), from the store
//! context's allocation window ([`GcAllocWindow`]) that compiled code
//! allocates from inline. When it is full, a *minor* collection
//! (`gc_copy.rs`) copies the nursery's live objects to the end of the
//! *old generation* and empties the nursery; its roots are the usual ones
//! plus the *remembered set*, the old objects that compiled code's write
//! barrier (or the runtime) saw receive a reference that may be young.
//! The old generation is one space of up to [`OLD_SIZE`] bytes from
//! [`OLD_START`]: when it reaches its *capacity*, a *major* collection
//! marks everything live (nursery and old), compacts the old generation
//! in place (`gc_compact.rs`) and then empties the nursery into it, and
//! the capacity is set from what survived, up to the configured limit.
//! Objects larger than half the nursery are allocated old
//! directly (and remembered, since their fields are written afterwards).
//! A heap whose limit is too small for a nursery, or whose resource
//! limiter refused to let it grow, allocates every object old, the window
//! then being over the old space. Allocation outside a safepoint (the
//! host's, and constant expressions at instantiation) never collects: it
//! grows the old generation up to the limit instead.
//!
//! Memory is made accessible in [`COMMIT_CHUNK`]s as the old generation
//! fills, and what lies past its capacity is given back to the OS after a
//! major collection. It is *not* zero when reused: every
//! allocation path writes every field (compiled code stores each field,
//! `array.new_default` included; the runtime's paths zero the object). The
//! reservation comes from the engine's allocator (a fixed pool of them
//! under the pooling allocator) and goes back to it, reset, when the heap
//! drops with its store.

use super::gc_compact::Compactor;
use super::gc_copy::{Copier, field_object, for_each_object};
use super::pool::{Region, RegionPool};
use super::vmcontext::{GcAllocWindow, ValRaw};
use kiln_environ::WasmStorageType;
use kiln_environ::gc_layout::{
    GcTrace, NURSERY_RESERVE, NURSERY_START, OBJECT_ALIGN, OLD_START, REMEMBERED, RefKind, header,
};
use std::ptr::NonNull;
use std::sync::Arc;

/// Address space reserved per heap: every 32-bit offset, plus a guard
/// that is never accessible, so that an access at any reference plus any
/// field offset (below 2 MiB) stays inside the reservation.
pub(crate) const RESERVATION: usize = (1 << 32) + (2 << 20);

/// The address range of the old generation, after the nursery's
/// reservation.
pub const OLD_SIZE: u32 = ((1 << 32) - OLD_START as u64) as u32 / COMMIT_CHUNK * COMMIT_CHUNK;

/// How much more memory is made accessible at a time (and the unit of
/// capacities).
const COMMIT_CHUNK: u32 = 1 << 20;

/// The smallest old-generation capacity a collection leaves (unless the
/// limit is lower): below it, major collections would come too often for
/// what they free.
const MIN_CAPACITY: u32 = 1 << 20;

/// After a major collection the old generation's capacity is this many
/// percent of the bytes that survived (then rounded, bounded by
/// [`MIN_CAPACITY`] and the limit).
const GROWTH_PERCENT: u64 = 300;

/// The nursery's size when it starts. After each collection it becomes
/// a quarter of the old generation's capacity, between this and
/// [`NURSERY_MAX`]: small heaps keep a small nursery (memory), large ones
/// get a larger one (fewer objects promoted that would die soon after).
const NURSERY_SIZE: u32 = 1 << 20;

/// The largest nursery, when the limits leave room for it: at most a
/// quarter of the heap's limit (and of the resource limiter's, when it
/// says), rounded down to [`NURSERY_UNIT`]; no nursery below
/// [`MIN_NURSERY`].
const NURSERY_MAX: u32 = 4 << 20;

/// The unit of nursery sizes.
const NURSERY_UNIT: u32 = 64 << 10;

/// A nursery smaller than this is not worth its collections: the heap
/// allocates every object old instead.
const MIN_NURSERY: u32 = 256 << 10;

const _: () = assert!(
    NURSERY_SIZE <= NURSERY_MAX && NURSERY_MAX <= NURSERY_RESERVE && NURSERY_START.is_multiple_of(COMMIT_CHUNK)
);

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

/// Which collection to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collection {
    /// Empty the nursery into the old generation (a major collection
    /// instead when the old generation has no room for what may survive,
    /// or there is no nursery).
    Minor,
    /// Everything: the old generation compacted in place, then the
    /// nursery emptied into it.
    Major,
}

/// Counts of what the collector did, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Collections so far, minor and major.
    pub collections: u64,
    /// Major collections so far.
    pub major_collections: u64,
    /// Bytes of the old generation after the last collection: what
    /// survived it (and, after a minor one, what was already old).
    pub live_bytes: u64,
    /// Bytes the heap may hold before its next major collection: the
    /// nursery and the old generation's capacity.
    pub capacity: u64,
    /// Bytes allocated in the nursery and the old generation.
    pub used_bytes: u64,
}

/// One store's GC heap: a nursery, where compiled code and the runtime
/// allocate, and an old generation (compacted in place), where
/// survivors of a minor collection, large objects and (without a
/// nursery) every object go.
pub struct GcHeap {
    /// The reservation, from the engine's pool of GC heaps (given back
    /// when the heap drops).
    region: Region,
    pool: Arc<RegionPool>,
    /// The bump pointer (`next`) and the end of the window (`limit`), in
    /// the store context where compiled code reads and advances them:
    /// over the nursery when there is one, else over the old generation.
    window: NonNull<GcAllocWindow>,
    /// Bytes of the nursery in use (all accessible); 0 when there is no
    /// nursery.
    nursery: u32,
    /// The largest nursery the limits allow (0: none).
    nursery_target: u32,
    /// Whether the resource limiter refused growth while the heap had a
    /// nursery: it stays off until a major collection leaves room.
    nursery_refused: bool,
    /// The old generation's bump pointer while the window is over the
    /// nursery (the window's `next` otherwise).
    old_next: u32,
    /// Bytes the old generation may hold before a major collection.
    capacity: u32,
    /// Most bytes the heap may hold, nursery included: the configured
    /// limit.
    max_capacity: u32,
    /// Bytes of the old generation from its start that are accessible.
    accessible: u32,
    /// Bytes the store's resource limiter allowed so far (nursery
    /// included; it is asked before allocations of wasm and the host go
    /// past this).
    granted: u32,
    /// Old objects that may reference young ones (each with
    /// [`REMEMBERED`] in its GC word).
    remembered: Vec<u32>,
    /// The host values that extern boxes hold, by externref word: kept
    /// alive while a box holding them is.
    externs: std::collections::HashMap<usize, Arc<super::externref::ExternData>>,
    /// The externref words of the old generation's extern boxes.
    old_boxes: std::collections::HashSet<usize>,
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
    /// [`OLD_SIZE`]), allocating through `window` (which it resets).
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
        let max_capacity = u32::try_from(limit).unwrap_or(u32::MAX).min(OLD_SIZE) / OBJECT_ALIGN * OBJECT_ALIGN;
        let mut heap = GcHeap {
            region,
            pool,
            window,
            nursery: 0,
            nursery_target: nursery_size(u64::from(max_capacity)),
            nursery_refused: false,
            old_next: 0,
            capacity: MIN_CAPACITY.min(max_capacity),
            max_capacity,
            accessible: 0,
            granted: 0,
            remembered: Vec::new(),
            externs: Default::default(),
            old_boxes: Default::default(),
            zeal: None,
            stats: GcStats::default(),
        };
        heap.set_old_next(OLD_START);
        heap.update_window();
        Ok(heap)
    }

    /// Makes every allocation go through the runtime and every `n`th
    /// (`n` ≥ 1) collect; `None` turns that off.
    pub fn set_zeal(&mut self, n: Option<u32>) {
        self.zeal = n.map(|n| (n.max(1), 0));
        self.update_window();
    }

    /// Whether [`GcHeap::set_limit_hint`] can still change anything: the
    /// nursery has not started.
    pub fn wants_limit_hint(&self) -> bool {
        self.nursery == 0 && self.nursery_target > 0
    }

    /// Bounds the nursery by the resource limiter's fixed cap on the heap,
    /// if it has one (a quarter of it at most). Only before the nursery
    /// is first used.
    pub fn set_limit_hint(&mut self, limit: Option<u64>) {
        if let Some(limit) = limit
            && self.nursery == 0
        {
            self.nursery_target = self.nursery_target.min(nursery_size(limit));
        }
    }

    /// The window's bump pointer.
    fn window_next(&self) -> u32 {
        // SAFETY: `window` is valid for as long as the heap (`new`'s
        // contract); nothing else writes it while this runs.
        unsafe { self.window.as_ref().next as u32 }
    }

    fn set_window_next(&mut self, next: u32) {
        // SAFETY: as in `window_next`.
        unsafe { self.window.as_mut().next = u64::from(next) };
    }

    /// Offset of the next old object.
    fn old_next(&self) -> u32 {
        if self.nursery > 0 { self.old_next } else { self.window_next() }
    }

    fn set_old_next(&mut self, next: u32) {
        if self.nursery > 0 { self.old_next = next } else { self.set_window_next(next) }
    }

    /// Bytes allocated in the old generation.
    fn old_used(&self) -> u32 {
        self.old_next() - OLD_START
    }

    /// Offset of the next young object (the nursery's start without one).
    fn young_next(&self) -> u32 {
        if self.nursery > 0 { self.window_next() } else { NURSERY_START }
    }

    /// Bytes allocated in the nursery.
    fn young_used(&self) -> u32 {
        self.young_next() - NURSERY_START
    }

    /// The most bytes the old generation may hold.
    fn old_max(&self) -> u32 {
        self.max_capacity - self.nursery
    }

    /// Whether an object of `size` bytes is allocated young when the
    /// nursery has room: up to half the nursery.
    fn is_small(&self, size: u64) -> bool {
        self.nursery > 0 && size <= u64::from(self.nursery / 2)
    }

    /// Sets the window's end: the nursery's end, or where the accessible
    /// part, the capacity or the limiter's grant of the old generation
    /// ends, whichever is first (or at `next` under zeal, so that every
    /// allocation calls the runtime).
    fn update_window(&mut self) {
        let end = if self.nursery > 0 {
            NURSERY_START + self.nursery
        } else {
            OLD_START + self.accessible.min(self.capacity).min(self.granted)
        };
        let limit = if self.zeal.is_some() { self.window_next() } else { end };
        // SAFETY: as in `window_next`.
        unsafe { self.window.as_mut().limit = u64::from(limit) };
    }

    /// Turns the nursery on (`target` bytes, made accessible), if it is
    /// wanted and the grant has room for it beside the old generation.
    fn maybe_start_nursery(&mut self) {
        let n = self.start_size();
        if self.nursery > 0
            || n == 0
            || self.nursery_refused
            || u64::from(n) + u64::from(self.old_used()) > u64::from(self.granted.min(self.max_capacity))
            || self.region.protect_range(NURSERY_START as usize, n as usize, true).is_err()
        {
            return;
        }
        let old_next = self.window_next();
        self.nursery = n;
        self.old_next = old_next;
        self.capacity = self.capacity.min(self.old_max());
        self.set_window_next(NURSERY_START);
        self.update_window();
    }

    /// The size a nursery starts at.
    fn start_size(&self) -> u32 {
        self.nursery_target.min(NURSERY_SIZE)
    }

    /// After a collection that emptied the nursery: sizes it to a quarter
    /// of the old generation's capacity (see [`NURSERY_SIZE`]), growing it
    /// only within the limit and the limiter's grant.
    fn resize_nursery(&mut self) {
        if self.nursery == 0 || self.young_used() != 0 {
            return;
        }
        let want =
            (self.capacity / 4).clamp(NURSERY_SIZE, NURSERY_MAX).min(self.nursery_target) / NURSERY_UNIT * NURSERY_UNIT;
        let have = self.nursery;
        if want > have {
            let room = u64::from(self.granted.min(self.max_capacity));
            if u64::from(want) + u64::from(self.old_used()) > room
                || self.region.protect_range((NURSERY_START + have) as usize, (want - have) as usize, true).is_err()
            {
                return;
            }
        } else if want < have {
            let tail = (NURSERY_START + want) as usize..(NURSERY_START + have) as usize;
            let _ = self.region.discard(tail.start, tail.len());
            let _ = self.region.protect_range(tail.start, tail.len(), false);
        } else {
            return;
        }
        self.nursery = want;
        self.capacity = self.capacity.min(self.old_max());
    }

    /// Turns the nursery off (after a major collection emptied it): every
    /// object is allocated old from now on.
    fn stop_nursery(&mut self) {
        if self.nursery == 0 {
            return;
        }
        debug_assert_eq!(self.young_used(), 0, "the nursery is empty when it stops");
        let old_next = self.old_next;
        let _ = self.region.discard(NURSERY_START as usize, self.nursery as usize);
        let _ = self.region.protect_range(NURSERY_START as usize, self.nursery as usize, false);
        self.nursery = 0;
        self.set_window_next(old_next);
        self.update_window();
    }

    /// The base address: an object's reference is its offset from here.
    pub fn base(&self) -> *mut u8 {
        self.region.ptr()
    }

    /// What the collector has done and how full the heap is.
    pub fn stats(&self) -> GcStats {
        GcStats {
            capacity: u64::from(self.nursery) + u64::from(self.capacity),
            used_bytes: u64::from(self.young_used()) + u64::from(self.old_used()),
            ..self.stats
        }
    }

    /// Whether an allocation of `size` bytes at a safepoint should first
    /// collect, and how: a minor collection when the nursery is full, a
    /// major one when the old generation is (or zeal says so).
    pub fn wants_collection(&mut self, size: u64) -> Option<Collection> {
        if size > u64::from(self.max_capacity) {
            // It cannot fit however much is freed: the allocation fails.
            return None;
        }
        if let Some((n, count)) = &mut self.zeal {
            *count += 1;
            if *count >= *n {
                *count = 0;
                // Alternate, so that both kinds run at every safepoint.
                let major = self.stats.collections % 2 == 1 || self.nursery == 0;
                return Some(if major { Collection::Major } else { Collection::Minor });
            }
        }
        if self.is_small(size) {
            let full = u64::from(self.young_used()) + size > u64::from(self.nursery);
            return full.then_some(Collection::Minor);
        }
        let full = u64::from(self.old_used()).saturating_add(size) > u64::from(self.capacity);
        full.then_some(Collection::Major)
    }

    /// Whether an allocation of `size` bytes at a safepoint goes to the
    /// nursery and finds it full (a minor collection comes first).
    pub fn minor_pending(&self, size: u64) -> bool {
        self.is_small(size) && u64::from(self.young_used()) + size > u64::from(self.nursery)
    }

    /// The bytes the heap holds once an allocation of `size` bytes at a
    /// safepoint (and the collection it may bring) is done, at worst:
    /// what the resource limiter must have allowed.
    fn footprint_after(&self, size: u64) -> u64 {
        let old = u64::from(self.old_used());
        if self.nursery == 0 {
            let n = if self.nursery_refused { 0 } else { self.start_size() };
            if n > 0 && size <= u64::from(n / 2) {
                // The first allocation starts the nursery.
                return u64::from(n) + old;
            }
            return (u64::from(n) + old).saturating_add(size);
        }
        let n = u64::from(self.nursery);
        if !self.is_small(size) {
            return (n + old).saturating_add(size);
        }
        let young = u64::from(self.young_used());
        // A full nursery is emptied first, and all of it may survive.
        if young + size <= n { n + old } else { n + old + young }
    }

    /// When an allocation of `size` bytes would take the heap past what
    /// the resource limiter granted: the grant so far and the one to ask
    /// for (rounded up to a MiB, at most the configured limit). `None`
    /// when it fits the grant, or when it cannot fit at all (then the
    /// allocation fails anyway).
    pub fn growth_wanted(&self, size: u64) -> Option<(u64, u64)> {
        let need = self.footprint_after(size);
        if need <= u64::from(self.granted) || size > u64::from(self.max_capacity) {
            return None;
        }
        let desired = need.next_multiple_of(u64::from(COMMIT_CHUNK)).min(u64::from(self.max_capacity));
        (desired > u64::from(self.granted)).then_some((u64::from(self.granted), desired))
    }

    /// Records that the limiter allows the heap `bytes` bytes.
    pub fn grant(&mut self, bytes: u64) {
        self.granted = self.granted.max(u32::try_from(bytes).unwrap_or(u32::MAX));
        self.maybe_start_nursery();
        self.update_window();
    }

    /// Records that the limiter refused to let the heap grow: with a
    /// nursery (empty, after the major collection that follows a
    /// refusal), the heap stops using it, which frees its share of the
    /// grant; returns whether that changed anything (then the request is
    /// worth making again).
    pub fn refused(&mut self) -> bool {
        if self.nursery_refused || self.nursery_target == 0 {
            return false;
        }
        self.nursery_refused = true;
        if self.young_used() == 0 {
            self.stop_nursery();
        }
        true
    }

    /// The most bytes the heap may hold: the configured limit.
    pub fn max_capacity(&self) -> u64 {
        u64::from(self.max_capacity)
    }

    /// Allocates `size` bytes (rounded up to [`OBJECT_ALIGN`]), zeroed, and
    /// writes the header (`type_id`, `kind`); returns the object's offset,
    /// or `None` when it does not fit even at the heap's limit. Never
    /// collects: in the nursery when it has room, else in the old
    /// generation, whose capacity grows when needed.
    pub fn alloc(&mut self, type_id: u32, kind: u32, size: u32) -> Option<u32> {
        let size = size.max(header::SIZE).checked_next_multiple_of(OBJECT_ALIGN)?;
        let young = self.young_next();
        let at = if self.is_small(u64::from(size)) && young - NURSERY_START + size <= self.nursery {
            self.set_window_next(young + size);
            young
        } else {
            self.alloc_old(size)?
        };
        self.update_window();
        // SAFETY: `[at, at + size)` is inside the accessible part of this
        // mapping (the nursery, or made accessible by `alloc_old`) and
        // belongs to no other object (the bump pointers only move up);
        // the header fields are 4-byte aligned because objects are
        // 8-aligned.
        unsafe {
            let p = self.base().add(at as usize);
            std::ptr::write_bytes(p, 0, size as usize);
            p.add(header::TYPE_ID as usize).cast::<u32>().write(type_id);
            p.add(header::GC_WORD as usize).cast::<u32>().write(kind);
        }
        if at >= OLD_START && self.nursery > 0 {
            // Its fields are written after this, with no barrier.
            self.remember(at);
        }
        Some(at)
    }

    /// Reserves `size` bytes (a multiple of [`OBJECT_ALIGN`]) at the end
    /// of the old generation, growing its capacity and accessible part as
    /// needed; `None` past the limit or when the OS refuses memory.
    fn alloc_old(&mut self, size: u32) -> Option<u32> {
        let start = OLD_START;
        let at = self.old_next();
        let used = u64::from(at - start) + u64::from(size);
        if used > u64::from(self.old_max()) {
            return None;
        }
        let used = used as u32;
        if used > self.capacity {
            self.capacity = used.next_multiple_of(COMMIT_CHUNK).min(self.old_max());
        }
        self.make_accessible(used).ok()?;
        self.set_old_next(at + size);
        Some(at)
    }

    /// Makes the first `bytes` of the old generation accessible.
    fn make_accessible(&mut self, bytes: u32) -> std::io::Result<()> {
        if bytes <= self.accessible {
            return Ok(());
        }
        let want = bytes.next_multiple_of(COMMIT_CHUNK).min(OLD_SIZE);
        let have = self.accessible;
        let start = OLD_START;
        self.region.protect_range((start + have) as usize, (want - have) as usize, true)?;
        self.accessible = want;
        Ok(())
    }

    /// Puts old object `obj` in the remembered set (once).
    fn remember(&mut self, obj: u32) {
        // SAFETY: `obj` is an allocated object of the old generation (the
        // callers'), whose header is accessible.
        unsafe {
            let w = self.base().add((obj + header::GC_WORD) as usize).cast::<u32>();
            if w.read() & REMEMBERED == 0 {
                w.write(w.read() | REMEMBERED);
                self.remembered.push(obj);
            }
        }
    }

    /// The write barrier's slow path: compiled code stored a reference
    /// that may be young into object `obj`, which is old and not yet
    /// remembered. Does nothing for anything else.
    pub fn remember_from_wasm(&mut self, obj: u64) {
        if obj >= u64::from(OLD_START) && self.nursery > 0 && self.contains(obj) {
            self.remember(obj as u32);
        }
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

    /// Runs collection `kind`: the objects reachable from `roots` are
    /// kept and the others freed (a minor collection copies the nursery's
    /// into the old generation, a major one compacts the old generation
    /// and then empties the nursery), and every reference to a moved one
    /// is updated (in the roots
    /// and in the objects); `traces` gives each type id's trace
    /// information, and `is_host_word` tells whether a frame slot's even
    /// word is a host externref rather than an object.
    ///
    /// # Safety
    ///
    /// Each root is valid for unaligned reads and writes of a `u64` for
    /// the duration of the call, and no two name the same slot; every
    /// reference the roots and the objects hold is null, an i31, a host
    /// word of the kind the root allows, or an object of this heap (what
    /// compiled code and the runtime keep); every old object that holds a
    /// reference to a young one is remembered (the write barrier's job).
    pub unsafe fn collect(
        &mut self,
        kind: Collection,
        roots: &[(*mut u64, RootKind)],
        traces: &[Arc<GcTrace>],
        is_host_word: &dyn Fn(u64) -> bool,
    ) {
        // A minor collection while the old generation is below its
        // capacity and has room for all of the nursery; else a major one.
        if kind == Collection::Minor
            && self.nursery > 0
            && self.old_used() < self.capacity
            && self.old_has_room_for_nursery()
        {
            // SAFETY: the function's contract.
            unsafe { self.collect_minor(roots, traces, is_host_word) };
        } else {
            // SAFETY: the function's contract.
            unsafe { self.collect_major(roots, traces, is_host_word) };
        }
        self.stats.collections += 1;
        self.resize_nursery();
        self.update_window();
    }

    /// Whether the old generation has room, within the limit and the
    /// limiter's grant, for all of the nursery to survive a minor
    /// collection (and makes that room accessible).
    fn old_has_room_for_nursery(&mut self) -> bool {
        let after = u64::from(self.old_used()) + u64::from(self.young_used());
        let room = u64::from(self.old_max()).min(u64::from(self.granted.saturating_sub(self.nursery)));
        after <= room && self.make_accessible(after as u32).is_ok()
    }

    /// Copies the nursery's live objects to the end of the old generation.
    ///
    /// # Safety
    ///
    /// As for [`GcHeap::collect`]; the old generation has room
    /// (accessible) for all of the nursery.
    unsafe fn collect_minor(
        &mut self,
        roots: &[(*mut u64, RootKind)],
        traces: &[Arc<GcTrace>],
        is_host_word: &dyn Fn(u64) -> bool,
    ) {
        if self.verification_due(Collection::Minor) {
            self.verify_remembered(traces);
        }
        let promoted_from = self.old_next();
        let young = NURSERY_START..self.young_next();
        let mut copier = Copier::new(self.base(), young, promoted_from, traces);
        for obj in std::mem::take(&mut self.remembered) {
            // SAFETY: remembered objects are old objects of this heap,
            // whole, not forwarded (only young ones move).
            unsafe { copier.scan_in_place(obj) };
        }
        for (slot, kind) in roots {
            // SAFETY: the function's contract.
            unsafe { copier.visit_root(*slot, *kind, is_host_word) };
        }
        let (old_next, boxes) = copier.finish();
        self.old_boxes.extend(boxes);
        let old_boxes = &self.old_boxes;
        self.externs.retain(|w, _| old_boxes.contains(w));
        self.set_window_next(NURSERY_START);
        self.old_next = old_next;
        self.stats.live_bytes = u64::from(self.old_used());
    }

    /// Collects everything: marks what the roots reach (young and old),
    /// compacts the old generation in place (`gc_compact.rs`), then
    /// empties the nursery into it by a minor collection if it has room.
    ///
    /// # Safety
    ///
    /// As for [`GcHeap::collect`].
    unsafe fn collect_major(
        &mut self,
        roots: &[(*mut u64, RootKind)],
        traces: &[Arc<GcTrace>],
        is_host_word: &dyn Fn(u64) -> bool,
    ) {
        let mut compactor =
            Compactor::new(self.base(), NURSERY_START..self.young_next(), OLD_START..self.old_next(), traces);
        for (slot, kind) in roots {
            // SAFETY: the function's contract.
            unsafe { compactor.mark_root(*slot, *kind, is_host_word) };
        }
        compactor.trace();
        let live_old = compactor.plan();
        for (slot, kind) in roots {
            // SAFETY: the function's contract; the same slots.
            unsafe { compactor.update_root(*slot, *kind, is_host_word) };
        }
        self.remembered = compactor.update_and_slide();
        let (boxes, old_boxes) = compactor.into_boxes();
        self.externs.retain(|w, _| boxes.contains(w));
        self.old_boxes = old_boxes;
        self.set_old_next(OLD_START + live_old);
        if self.nursery > 0 && self.young_used() > 0 && self.old_has_room_for_nursery() {
            // SAFETY: the function's contract; the roots were updated to
            // the objects' new offsets.
            unsafe { self.collect_minor(roots, traces, is_host_word) };
        }
        let live = self.old_used();
        let nursery = u64::from(self.start_size());
        let room = u64::from(self.granted.min(self.max_capacity));
        if self.nursery > 0 && self.young_used() == 0 && u64::from(live) + nursery > room {
            // What survived leaves no room for the nursery beside it (it
            // held part of it): near the limit, objects are allocated old.
            self.nursery_refused = true;
            self.stop_nursery();
        } else if self.nursery_refused && u64::from(live) + 2 * nursery <= room {
            // The grant has room for a nursery again, and for all of it
            // to survive a minor collection.
            self.nursery_refused = false;
            self.maybe_start_nursery();
        }
        let wanted = (u64::from(live) * GROWTH_PERCENT / 100).max(u64::from(MIN_CAPACITY));
        let old_max = self.old_max();
        self.capacity = (wanted.min(u64::from(old_max)) as u32).next_multiple_of(COMMIT_CHUNK).min(old_max);
        self.stats.major_collections += 1;
        self.stats.live_bytes = u64::from(live);
        // Give back what lies past the capacity (what compaction emptied
        // and what the next cycles will not reach soon).
        let keep = self.capacity.max(live).next_multiple_of(COMMIT_CHUNK);
        if self.accessible > keep {
            let _ = self.region.discard((OLD_START + keep) as usize, (self.accessible - keep) as usize);
        }
    }

    /// Whether a debug build checks the heap around a collection of kind
    /// `kind` (the roots and what they reach, the write barrier's
    /// invariant): at every major collection, and at minor ones while the
    /// old generation is small or at every 16th (each check walks the
    /// heap). Never in release builds.
    pub fn verification_due(&self, kind: Collection) -> bool {
        cfg!(debug_assertions)
            && (kind == Collection::Major || self.old_used() <= 4 << 20 || self.stats.collections.is_multiple_of(16))
    }

    /// Debug builds: checks the write barrier's invariant before a minor
    /// collection: every old object holding a reference into the nursery
    /// is remembered. Aborts, naming the object, if one is not.
    fn verify_remembered(&self, traces: &[Arc<GcTrace>]) {
        let young = NURSERY_START..self.young_next();
        let old = OLD_START..self.old_next();
        let base = self.base();
        // SAFETY: the old generation's allocated part is a sequence of
        // whole objects (none forwarded outside a collection).
        unsafe {
            for_each_object(base, old, traces, &mut |obj, word, (at, kind)| {
                let Some(r) = field_object(at, kind) else { return };
                if young.contains(&r) && word & REMEMBERED == 0 {
                    eprintln!("kiln: old GC object {obj:#x} holds young {r:#x} but is not remembered");
                    std::process::abort();
                }
            });
        }
    }

    /// The allocated parts of the heap: the nursery's and the old
    /// generation's.
    fn allocated_ranges(&self) -> [std::ops::Range<u32>; 2] {
        [NURSERY_START..self.young_next(), OLD_START..self.old_next()]
    }

    /// Whether `[at, at + len)` lies within an allocated part of the heap.
    fn allocated(&self, at: usize, len: usize) -> bool {
        self.allocated_ranges().iter().any(|r| at >= r.start as usize && at + len <= r.end as usize)
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
        if obj >= OLD_START && self.nursery > 0 && RefKind::of(s).is_some() {
            self.remember(obj);
        }
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
        if obj >= OLD_START {
            self.old_boxes.insert(word);
        }
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
    /// of every object of the heap, dead ones included (a
    /// superset of what live objects hold, for the store's collections of
    /// externrefs and exception objects); `traces` as for
    /// [`GcHeap::collect`].
    pub fn for_each_word_field(&self, kind: RefKind, traces: &[Arc<GcTrace>], f: &mut dyn FnMut(u64)) {
        for objects in self.allocated_ranges() {
            // SAFETY: the allocated parts of the nursery and the old
            // generation are sequences of whole objects, each written by an
            // allocation path (header first), none forwarded (collections
            // leave only the copies where objects are allocated).
            unsafe {
                for_each_object(self.base(), objects, traces, &mut |_, _, (at, k)| {
                    if k == kind {
                        f(at.cast::<u64>().read_unaligned());
                    }
                });
            }
        }
    }

    /// Whether `r` is the offset of an object of this heap: allocated in
    /// the nursery or the old generation, and (objects being placed at aligned offsets)
    /// aligned. It may still be the offset of a field inside an object;
    /// references that reach the host come from wasm and are object
    /// starts.
    pub fn contains(&self, r: u64) -> bool {
        self.allocated_ranges().iter().any(|a| r >= u64::from(a.start) && r < u64::from(a.end))
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

/// The nursery size for a heap limited to `limit` bytes: a quarter of it
/// at most, 0 (none) when that is below [`MIN_NURSERY`].
fn nursery_size(limit: u64) -> u32 {
    let n = (limit / 4).min(u64::from(NURSERY_MAX)) as u32 / NURSERY_UNIT * NURSERY_UNIT;
    if n < MIN_NURSERY { 0 } else { n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_bumps_zeroed_objects_and_stops_at_the_limit() {
        let mut window = Box::new(GcAllocWindow::default());
        let allocator = super::super::allocator::Allocator::on_demand(&kiln_environ::Tunables::default(), 1 << 20);
        // SAFETY: the window outlives the heap (dropped after it).
        let mut heap = unsafe { GcHeap::new(64, NonNull::from(&mut *window), &allocator) }.expect("reserve");
        let a = heap.alloc(7, 0, 12).expect("fits");
        assert_eq!(a, OLD_START);
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
