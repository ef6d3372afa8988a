//! A store's GC heap (the cage): one reservation of address space in
//! which every GC object of the store lives, named by its 32-bit offset
//! from the base (so any reference, even a wrong one, stays inside the
//! reservation). The first [`NULL_GUARD`] bytes are never used, so no
//! object has offset 0 (null) and small offsets are never objects.
//!
//! So far the heap only grows: objects are bump-allocated and never freed
//! (there is no collector yet), up to the limit, after which allocation
//! fails and wasm traps `allocation failed`. The bump pointer and the end
//! of the accessible memory are the store context's allocation window
//! ([`GcAllocWindow`]), which compiled code allocates from inline; when an
//! object does not fit, the runtime makes [`COMMIT_CHUNK`] more bytes
//! accessible and moves the window's end. Fresh memory reads as zero, so
//! objects start zeroed. Dropping the heap (with its store) unmaps
//! everything.

use super::mmap::Mmap;
use super::vmcontext::{GcAllocWindow, ValRaw};
use kiln_environ::WasmStorageType;
use kiln_environ::gc_layout::{OBJECT_ALIGN, header};
use std::ptr::NonNull;

/// Bytes at the start of the cage that are never allocated.
pub const NULL_GUARD: u32 = 1 << 20;

/// Address space reserved per heap: every 32-bit offset, plus a guard
/// that is never accessible, so that an access at any reference plus any
/// field offset (below 2 MiB) stays inside the reservation.
const RESERVATION: usize = (1 << 32) + (2 << 20);

/// How much more memory is made accessible at a time.
const COMMIT_CHUNK: usize = 1 << 20;

/// One store's GC heap.
pub struct GcHeap {
    mmap: Mmap,
    /// The bump pointer (`next`) and the end of the accessible memory
    /// (`limit`), in the store context where compiled code reads and
    /// advances them.
    window: NonNull<GcAllocWindow>,
    /// Offsets at or above this are never allocated.
    limit: u32,
    /// The host values that extern boxes hold, by externref word: kept
    /// alive as long as the heap (boxes are never freed yet).
    externs: std::collections::HashMap<usize, std::sync::Arc<super::externref::ExternData>>,
}

impl GcHeap {
    /// Reserves a heap whose objects end below `limit` bytes from its base
    /// (capped at 4 GiB), allocating through `window` (which it resets).
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
    pub unsafe fn new(limit: u64, window: NonNull<GcAllocWindow>) -> std::io::Result<GcHeap> {
        let mmap = Mmap::reserve(RESERVATION)?;
        let limit = u32::try_from(limit).unwrap_or(!(OBJECT_ALIGN - 1));
        let mut heap = GcHeap { mmap, window, limit, externs: Default::default() };
        heap.set_next(NULL_GUARD);
        heap.set_committed(NULL_GUARD as usize);
        Ok(heap)
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

    /// Bytes from the base that are accessible.
    fn committed(&self) -> usize {
        // SAFETY: as in `next`.
        unsafe { self.window.as_ref().limit as usize }
    }

    fn set_committed(&mut self, committed: usize) {
        // SAFETY: as in `next`.
        unsafe { self.window.as_mut().limit = committed as u64 };
    }

    /// The base address: an object's reference is its offset from here.
    pub fn base(&self) -> *mut u8 {
        self.mmap.as_ptr()
    }

    /// Allocates `size` bytes (rounded up to [`OBJECT_ALIGN`]), zeroed, and
    /// writes the header (`type_id`, `kind`); returns the object's offset,
    /// or `None` when the heap is full.
    pub fn alloc(&mut self, type_id: u32, kind: u32, size: u32) -> Option<u32> {
        let size = size.max(header::SIZE).checked_next_multiple_of(OBJECT_ALIGN)?;
        let at = self.next();
        let end = at.checked_add(size).filter(|e| *e <= self.limit)?;
        let committed = self.committed();
        if end as usize > committed {
            let want = (end as usize).next_multiple_of(COMMIT_CHUNK).min(self.limit as usize);
            self.mmap.make_accessible(committed, want - committed).ok()?;
            self.set_committed(want);
        }
        self.set_next(end);
        // SAFETY: `[at, end)` is inside the accessible part of this
        // mapping (just checked, and committed above) and belongs to no
        // other object (the bump pointer only moves up); the header fields
        // are 4-byte aligned because objects are 8-aligned.
        unsafe {
            let p = self.base().add(at as usize);
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

    /// Reads the field of storage `s` at `offset` bytes into object `obj`
    /// as compiled code loads it, zero-extending packed integers and GC
    /// references.
    ///
    /// # Panics
    ///
    /// The field is past the allocated part of the heap (a layout bug).
    pub fn read_field(&self, obj: u32, offset: u32, s: WasmStorageType) -> ValRaw {
        let size = kiln_environ::gc_layout::field_size(s) as usize;
        let at = obj as usize + offset as usize;
        assert!(at + size <= self.next() as usize, "a field inside an allocated object");
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
    /// `obj + offset` plus the field's size is past the allocated part of
    /// the heap (a layout bug).
    pub fn write_field(&mut self, obj: u32, offset: u32, s: WasmStorageType, v: ValRaw) {
        let size = kiln_environ::gc_layout::field_size(s);
        let at = obj as usize + offset as usize;
        assert!(at + size as usize <= self.next() as usize, "a field inside an allocated object");
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
    /// The range is past the allocated part of the heap.
    pub fn write_bytes(&mut self, obj: u32, offset: u32, bytes: &[u8]) {
        let at = obj as usize + offset as usize;
        assert!(at + bytes.len() <= self.next() as usize, "bytes inside an allocated object");
        // SAFETY: `[at, at + len)` is inside the allocated, accessible part
        // of the heap (asserted).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base().add(at), bytes.len()) };
    }

    /// A new extern box holding host value `data` (externref word
    /// `word`), which the heap keeps alive; `None` when the heap is full.
    pub fn box_extern(&mut self, word: usize, data: std::sync::Arc<super::externref::ExternData>) -> Option<u32> {
        use kiln_environ::gc_layout::{EXTERN_BOX_SIZE, EXTERN_BOX_TYPE_ID, EXTERN_BOX_WORD, KIND_EXTERN_BOX};
        let obj = self.alloc(EXTERN_BOX_TYPE_ID, KIND_EXTERN_BOX, EXTERN_BOX_SIZE)?;
        self.write_bytes(obj, EXTERN_BOX_WORD, &(word as u64).to_le_bytes());
        self.externs.insert(word, data);
        Some(obj)
    }

    /// The host value an extern box holds, by its externref word.
    pub fn boxed_extern(&self, word: usize) -> Option<std::sync::Arc<super::externref::ExternData>> {
        self.externs.get(&word).cloned()
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

    /// Whether `r` is the offset of an object of this heap: allocated,
    /// and (objects being placed at aligned offsets) aligned. It may still
    /// be the offset of a field inside an object; references that reach
    /// the host come from wasm and are object starts.
    pub fn contains(&self, r: u64) -> bool {
        r >= u64::from(NULL_GUARD) && r < u64::from(self.next()) && r.is_multiple_of(u64::from(OBJECT_ALIGN))
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
        // SAFETY: the window outlives the heap (dropped after it).
        let mut heap =
            unsafe { GcHeap::new(u64::from(NULL_GUARD) + 64, NonNull::from(&mut *window)) }.expect("reserve");
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
