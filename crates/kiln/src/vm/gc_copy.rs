//! The copying collection of a GC heap's nursery (Cheney's algorithm):
//! every object of the range being emptied that a root reaches is copied to the
//! destination, in the order met; then the copies are scanned in order,
//! each reference field copying what it reaches in turn, until the scan
//! meets the end of the copies. An object copied once is *forwarded*: its
//! GC word gets [`FORWARDED`] and its type-id word the copy's offset, so
//! the other references to it are updated to the same copy. References to
//! objects outside the range being emptied are left alone: a minor
//! collection empties the nursery only, its roots being the usual ones
//! plus the remembered old objects (scanned in place).
//!
//! What a word holds depends on where it is (`RootKind`): 4-byte `any`
//! fields and `any` roots hold GC reference encodings (0 null, odd i31,
//! else an offset); externref fields and roots hold a host pointer or a
//! GC reference tagged by `extern.convert_any` (`gc_ref::externalize`),
//! whose inner reference is what moves. Frame slots hold either kind.

use super::gc_heap::RootKind;
use kiln_environ::gc_layout::{
    ARRAY_LENGTH, EXTERN_BOX_SIZE, EXTERN_BOX_WORD, FORWARDED, GcTrace, KIND_ARRAY, KIND_EXTERN_BOX, KIND_MASK,
    KIND_STRUCT, REMEMBERED, RefKind, array_elems_offset, array_size, header,
};
use kiln_environ::gc_ref;
use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

/// One collection in progress.
pub struct Copier<'a> {
    base: *mut u8,
    /// The allocated part of the range being emptied.
    from: Range<u32>,
    /// Where the copies start.
    to_start: u32,
    /// Where the next copy goes.
    to_next: u32,
    traces: &'a [Arc<GcTrace>],
    /// The externref words of the extern boxes copied so far.
    boxes: HashSet<usize>,
}

impl<'a> Copier<'a> {
    /// A collection of the objects in `from` into the (accessible, large
    /// enough) range starting at `to_start`, in the heap at `base`.
    pub fn new(base: *mut u8, from: Range<u32>, to_start: u32, traces: &'a [Arc<GcTrace>]) -> Copier<'a> {
        Copier { base, from, to_start, to_next: to_start, traces, boxes: HashSet::new() }
    }

    /// Copies what root `slot` reaches and updates the slot.
    ///
    /// # Safety
    ///
    /// `slot` is valid for unaligned reads and writes of a `u64`; what it
    /// holds is what `kind` says (see the module docs), with objects of
    /// the space being emptied; `is_host_word` tells a frame slot's host
    /// externref from an object (it is asked only about even words below
    /// 2^32).
    pub unsafe fn visit_root(&mut self, slot: *mut u64, kind: RootKind, is_host_word: &dyn Fn(u64) -> bool) {
        // SAFETY: the function's contract.
        unsafe { map_root(slot, kind, is_host_word, &mut |o| self.forward(o)) };
    }

    /// The offset of the copy of object `o` (copying it first if needed);
    /// anything outside the space being emptied is left as it is.
    fn forward(&mut self, o: u32) -> u32 {
        if !self.from.contains(&o) {
            return o;
        }
        // SAFETY: `o` is an object of the space being emptied (checked, and
        // the callers' contract that references name objects), whose
        // header is readable.
        unsafe {
            let p = self.base.add(o as usize);
            let word = p.add(header::GC_WORD as usize).cast::<u32>().read();
            if word & FORWARDED != 0 {
                return p.cast::<u32>().read();
            }
            let size = self.size_of(p, word);
            let n = self.to_next;
            self.to_next += size;
            let copy = self.base.add(n as usize);
            if size <= 64 {
                // Most objects are small: word copies beat a call.
                for k in (0..size as usize).step_by(8) {
                    copy.add(k).cast::<u64>().write(p.add(k).cast::<u64>().read());
                }
            } else {
                std::ptr::copy_nonoverlapping(p, copy, size as usize);
            }
            // A copy starts out of the remembered set.
            copy.add(header::GC_WORD as usize).cast::<u32>().write(word & !REMEMBERED);
            p.cast::<u32>().write(n);
            p.add(header::GC_WORD as usize).cast::<u32>().write(word | FORWARDED);
            n
        }
    }

    /// The size of the object at `p` whose GC word is `word`.
    ///
    /// # Safety
    ///
    /// `p` is an object (not forwarded).
    unsafe fn size_of(&self, p: *const u8, word: u32) -> u32 {
        // SAFETY: the function's contract: the header and (for an array)
        // the length are readable.
        unsafe { object_size(p, word, self.traces) }
    }

    /// Updates the fields of object `obj`, which stays where it is (a
    /// remembered old object in a minor collection), copying what they
    /// reach; takes it out of the remembered set.
    ///
    /// # Safety
    ///
    /// `obj` is a whole object of the heap outside the range being
    /// emptied, not forwarded.
    pub unsafe fn scan_in_place(&mut self, obj: u32) {
        // SAFETY: the function's contract: the header is readable, and the
        // object whole.
        unsafe {
            let p = self.base.add(obj as usize);
            let w = p.add(header::GC_WORD as usize).cast::<u32>();
            let word = w.read() & !REMEMBERED;
            w.write(word);
            self.scan_object(p, word);
        }
    }

    /// Scans the copies until every object reachable from the roots has
    /// been copied; returns where the copies end and the externref words
    /// of the extern boxes that survived.
    pub fn finish(mut self) -> (u32, HashSet<usize>) {
        let mut scan = self.to_start;
        while scan < self.to_next {
            // SAFETY: `[to_start, to_next)` holds the copies, whole objects
            // one after the other, each copied from a live object.
            unsafe {
                let p = self.base.add(scan as usize);
                let word = p.add(header::GC_WORD as usize).cast::<u32>().read();
                scan += self.scan_object(p, word);
            }
        }
        (self.to_next, self.boxes)
    }

    /// Copies what the copy at `p` (GC word `word`) references and updates
    /// its fields; returns its size.
    ///
    /// # Safety
    ///
    /// `p` is a copy made by this collection.
    unsafe fn scan_object(&mut self, p: *mut u8, word: u32) -> u32 {
        if word & KIND_MASK == KIND_EXTERN_BOX {
            // SAFETY: an extern box's word is inside the copy (the
            // function's contract: `p` is a whole copied object).
            let w = unsafe { p.add(EXTERN_BOX_WORD as usize).cast::<u64>().read() };
            self.boxes.insert(w as usize);
            return EXTERN_BOX_SIZE;
        }
        let traces = self.traces;
        // SAFETY: `p` is a whole object (the function's contract), so its
        // fields are inside it.
        unsafe { for_each_field(p, word, traces, &mut |at, kind| map_field(at, kind, &mut |o| self.forward(o))) }
    }
}

/// Rewrites the GC reference that root `slot` (of kind `kind`) holds, if
/// it holds one, to `f` of it (`f` maps an object's offset to its new
/// one); `is_host_word` tells a frame slot's host externref from an
/// object (it is asked only about even words below 2^32).
///
/// # Safety
///
/// `slot` is valid for unaligned reads and writes of a `u64` and holds
/// what `kind` says (see the module docs).
pub unsafe fn map_root(
    slot: *mut u64,
    kind: RootKind,
    is_host_word: &dyn Fn(u64) -> bool,
    f: &mut impl FnMut(u32) -> u32,
) {
    // SAFETY: the function's contract.
    let w = unsafe { slot.read_unaligned() };
    let new = match kind {
        RootKind::Any => map_any(w, f),
        RootKind::Extern => map_extern(w, f),
        RootKind::Frame if w >> 32 != 0 || (w & 1 == 0 && is_host_word(w)) => map_extern(w, f),
        RootKind::Frame => map_any(w, f),
    };
    if new != w {
        // SAFETY: the function's contract.
        unsafe { slot.write_unaligned(new) };
    }
}

/// GC reference encoding `r` with its object (if it names one) mapped by
/// `f`.
fn map_any(r: u64, f: &mut impl FnMut(u32) -> u32) -> u64 {
    if r == 0 || gc_ref::is_i31(r) {
        return r;
    }
    match u32::try_from(r) {
        Ok(o) => u64::from(f(o)),
        Err(_) => r,
    }
}

/// Externref word `e` with the object it holds (if it is an externalized
/// GC reference) mapped by `f`.
fn map_extern(e: u64, f: &mut impl FnMut(u32) -> u32) -> u64 {
    if !gc_ref::is_externalized(e) {
        return e;
    }
    gc_ref::externalize(map_any(gc_ref::internalize(e), f))
}

/// Rewrites the reference field at `at`, of kind `kind`, mapping the
/// object it names (if any) by `f`.
///
/// # Safety
///
/// `at` is such a field of an object, valid for reads and writes.
pub unsafe fn map_field(at: *mut u8, kind: RefKind, f: &mut impl FnMut(u32) -> u32) {
    // SAFETY: the function's contract; fields are aligned to their size
    // (struct layout, array element offsets), but unaligned access is
    // used anyway for robustness.
    unsafe {
        match kind {
            RefKind::Any => {
                let p = at.cast::<u32>();
                let r = p.read_unaligned();
                let new = map_any(u64::from(r), f) as u32;
                if new != r {
                    p.write_unaligned(new);
                }
            }
            RefKind::Extern => {
                let p = at.cast::<u64>();
                let e = p.read_unaligned();
                let new = map_extern(e, f);
                if new != e {
                    p.write_unaligned(new);
                }
            }
            RefKind::Exn => {}
        }
    }
}

/// The object a reference field holds (its offset), if any: what
/// [`map_field`] would map.
///
/// # Safety
///
/// `at` is such a field of an object, valid for reads.
pub unsafe fn field_object(at: *const u8, kind: RefKind) -> Option<u32> {
    let mut found = None;
    let mut note = |o: u32| {
        found = Some(o);
        o
    };
    // SAFETY: the function's contract; reads only.
    unsafe {
        match kind {
            RefKind::Any => {
                map_any(u64::from(at.cast::<u32>().read_unaligned()), &mut note);
            }
            RefKind::Extern => {
                map_extern(at.cast::<u64>().read_unaligned(), &mut note);
            }
            RefKind::Exn => {}
        }
    }
    found
}

/// Calls `f` with the address and kind of every reference field of the
/// object at `p` whose GC word is `word` (none for an extern box), and
/// returns the object's size (one lookup of its type serves both).
///
/// # Safety
///
/// `p` is a whole object (header written, not forwarded).
///
/// # Panics
///
/// The header names no known type (a corrupt heap).
pub unsafe fn for_each_field(
    p: *mut u8,
    word: u32,
    traces: &[Arc<GcTrace>],
    f: &mut impl FnMut(*mut u8, RefKind),
) -> u32 {
    // SAFETY: the function's contract: the header is readable, and the
    // fields (offsets from the object's type, elements below its length)
    // are inside the object.
    unsafe {
        let type_id = p.cast::<u32>().read();
        match (word & KIND_MASK, traces.get(type_id as usize).map(|t| &**t)) {
            (KIND_STRUCT, Some(GcTrace::Struct { refs, size })) => {
                for (off, kind) in refs {
                    f(p.add(*off as usize), *kind);
                }
                *size
            }
            (KIND_ARRAY, Some(GcTrace::Array { elem_size, elems })) => {
                let len = p.add(ARRAY_LENGTH as usize).cast::<u32>().read();
                if let Some(kind) = elems {
                    let first = array_elems_offset(*elem_size) as usize;
                    for k in 0..len as usize {
                        f(p.add(first + k * *elem_size as usize), *kind);
                    }
                }
                array_size(*elem_size, len).expect("an allocated array's size fits in 32 bits")
            }
            (KIND_EXTERN_BOX, _) => EXTERN_BOX_SIZE,
            _ => panic!("GC object of unknown type {type_id} (GC word {word:#x}): the heap is corrupt"),
        }
    }
}

/// The size of the object at `p` whose GC word is `word`, from its type's
/// trace information (`traces`, by type id).
///
/// # Safety
///
/// `p` is an object (header written, not forwarded) whose whole size is
/// readable.
pub unsafe fn object_size(p: *const u8, word: u32, traces: &[Arc<GcTrace>]) -> u32 {
    // SAFETY: the function's contract.
    let type_id = unsafe { p.cast::<u32>().read() };
    let trace = traces.get(type_id as usize).map(|t| &**t);
    match (word & KIND_MASK, trace) {
        (KIND_STRUCT, Some(GcTrace::Struct { size, .. })) => *size,
        (KIND_ARRAY, Some(GcTrace::Array { elem_size, .. })) => {
            // SAFETY: an array's length follows its header.
            let len = unsafe { p.add(ARRAY_LENGTH as usize).cast::<u32>().read() };
            array_size(*elem_size, len).expect("an allocated array's size fits in 32 bits")
        }
        (KIND_EXTERN_BOX, _) => EXTERN_BOX_SIZE,
        _ => panic!("GC object of unknown type {type_id} (GC word {word:#x}): the heap is corrupt"),
    }
}

/// Calls `f` with every reference field of the objects in `objects`:
/// the object's offset, its GC word, and the field's address and kind.
///
/// # Safety
///
/// `objects` is a sequence of whole, not forwarded objects in the heap at
/// `base`.
pub unsafe fn for_each_object(
    base: *mut u8,
    objects: Range<u32>,
    traces: &[Arc<GcTrace>],
    f: &mut dyn FnMut(u32, u32, (*mut u8, RefKind)),
) {
    let mut at = objects.start;
    while at < objects.end {
        // SAFETY: the function's contract: `at` starts a whole object.
        unsafe {
            let p = base.add(at as usize);
            let word = p.add(header::GC_WORD as usize).cast::<u32>().read();
            at += for_each_field(p, word, traces, &mut |field, kind| f(at, word, (field, kind)));
        }
    }
}
