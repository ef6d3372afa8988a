//! The major collection of a GC heap: mark-compact of the old
//! generation, in place. Marking traces from the roots through the
//! nursery and the old generation alike, recording every 8-byte granule
//! of each live object in a bitmap per region. An old object's new offset
//! is then a function of the bitmap alone: the live bytes before its
//! 512-byte block (a prefix sum per block, one bitmap word each) plus the
//! live granules before it in its block (a popcount), so no forwarding
//! word is written into objects. References in the roots and in every live
//! object (old and young) are rewritten to the new offsets, then the live
//! old objects slide down in address order, so nothing is ever copied
//! over an object not yet moved. Young objects do not move here (a minor
//! collection moves them afterwards when the old generation has room), so
//! the remembered set is rebuilt from the fields as they are rewritten.
//!
//! Compared to copying the old generation into a second space, this
//! needs no room for a second copy: the heap's peak is its capacity plus
//! the bitmaps (1/64 and 1/128 of the old generation), not capacity plus
//! everything live.

use super::gc_copy::{field_object, for_each_field, map_field, map_root, object_size};
use super::gc_heap::RootKind;
use kiln_environ::gc_layout::{EXTERN_BOX_WORD, GcTrace, KIND_EXTERN_BOX, KIND_MASK, OBJECT_ALIGN, REMEMBERED, header};
use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

/// Granules per block: one bitmap word.
const BLOCK_GRANULES: u32 = 64;

/// One bit per [`OBJECT_ALIGN`]-byte granule of a range of the heap.
struct Marks {
    range: Range<u32>,
    bits: Vec<u64>,
}

impl Marks {
    fn new(range: Range<u32>) -> Marks {
        let granules = (range.end - range.start).div_ceil(OBJECT_ALIGN);
        Marks { bits: vec![0; granules.div_ceil(BLOCK_GRANULES) as usize], range }
    }

    fn granule(&self, o: u32) -> u32 {
        (o - self.range.start) / OBJECT_ALIGN
    }

    /// Whether the object at `o` (in the range) is marked.
    fn is_marked(&self, o: u32) -> bool {
        let g = self.granule(o);
        self.bits[(g / BLOCK_GRANULES) as usize] >> (g % BLOCK_GRANULES) & 1 == 1
    }

    /// The first marked offset at or after `from`, if any: the start of
    /// the next live object when `from` is not inside one.
    fn next_marked(&self, from: u32) -> Option<u32> {
        let g = self.granule(from);
        let mut i = (g / BLOCK_GRANULES) as usize;
        let mut word = *self.bits.get(i)? & (u64::MAX << (g % BLOCK_GRANULES));
        while word == 0 {
            i += 1;
            word = *self.bits.get(i)?;
        }
        Some(self.range.start + (i as u32 * BLOCK_GRANULES + word.trailing_zeros()) * OBJECT_ALIGN)
    }

    /// Marks the `size` bytes of the object at `o`.
    fn mark(&mut self, o: u32, size: u32) {
        let (mut g, end) = (self.granule(o), self.granule(o) + size.div_ceil(OBJECT_ALIGN));
        while g < end {
            let in_word = g % BLOCK_GRANULES;
            let n = (BLOCK_GRANULES - in_word).min(end - g);
            let mask = if n == 64 { u64::MAX } else { ((1u64 << n) - 1) << in_word };
            self.bits[(g / BLOCK_GRANULES) as usize] |= mask;
            g += n;
        }
    }
}

/// One major collection in progress.
pub struct Compactor<'a> {
    base: *mut u8,
    traces: &'a [Arc<GcTrace>],
    young: Marks,
    old: Marks,
    /// Per block of the old generation: the live bytes before it.
    before: Vec<u32>,
    /// Marked objects whose fields are still to be traced.
    stack: Vec<u32>,
    /// The externref words of the live extern boxes, young and old.
    boxes: HashSet<usize>,
    /// Those of the old generation's.
    old_boxes: HashSet<usize>,
}

impl<'a> Compactor<'a> {
    /// A major collection of the heap at `base`, whose allocated parts
    /// are `young` (the nursery) and `old`.
    pub fn new(base: *mut u8, young: Range<u32>, old: Range<u32>, traces: &'a [Arc<GcTrace>]) -> Compactor<'a> {
        Compactor {
            base,
            traces,
            young: Marks::new(young),
            old: Marks::new(old),
            before: Vec::new(),
            stack: Vec::new(),
            boxes: HashSet::new(),
            old_boxes: HashSet::new(),
        }
    }

    /// Marks what root `slot` reaches (traced by [`Compactor::trace`]).
    ///
    /// # Safety
    ///
    /// As for `gc_copy::map_root`; what the slot holds names objects of
    /// the heap's allocated parts.
    pub unsafe fn mark_root(&mut self, slot: *mut u64, kind: RootKind, is_host_word: &dyn Fn(u64) -> bool) {
        // SAFETY: the function's contract; the mapping leaves the slot as
        // it is (every object maps to itself).
        unsafe {
            map_root(slot, kind, is_host_word, &mut |o| {
                self.mark(o);
                o
            })
        };
    }

    /// Marks object `o` if it is one of the heap's and not yet marked.
    fn mark(&mut self, o: u32) {
        let marks = if self.young.range.contains(&o) {
            &mut self.young
        } else if self.old.range.contains(&o) {
            &mut self.old
        } else {
            return;
        };
        if marks.is_marked(o) {
            return;
        }
        // SAFETY: `o` is an object of an allocated part (checked, and the
        // callers' contract that references name objects): its header and
        // length are readable.
        let size = unsafe {
            let p = self.base.add(o as usize);
            object_size(p, p.add(header::GC_WORD as usize).cast::<u32>().read(), self.traces)
        };
        marks.mark(o, size);
        self.stack.push(o);
    }

    /// Marks everything the marked objects reach.
    pub fn trace(&mut self) {
        while let Some(o) = self.stack.pop() {
            // SAFETY: `o` was marked as a whole object of the heap; its
            // fields are inside it.
            unsafe {
                let p = self.base.add(o as usize);
                let word = p.add(header::GC_WORD as usize).cast::<u32>().read();
                if word & KIND_MASK == KIND_EXTERN_BOX {
                    let w = p.add(EXTERN_BOX_WORD as usize).cast::<u64>().read() as usize;
                    self.boxes.insert(w);
                    if self.old.range.contains(&o) {
                        self.old_boxes.insert(w);
                    }
                    continue;
                }
                let traces = self.traces;
                for_each_field(p, word, traces, &mut |at, kind| {
                    if let Some(r) = field_object(at, kind) {
                        self.mark(r);
                    }
                });
            }
        }
    }

    /// Computes where the live old objects go; returns their total size.
    pub fn plan(&mut self) -> u32 {
        let mut live = 0u32;
        self.before = self
            .old
            .bits
            .iter()
            .map(|w| {
                let b = live;
                live += w.count_ones() * OBJECT_ALIGN;
                b
            })
            .collect();
        live
    }

    /// The new offset of object `o`: moved if it is old (and live), else
    /// the same.
    fn forward(&self, o: u32) -> u32 {
        if !self.old.range.contains(&o) {
            return o;
        }
        let g = self.old.granule(o);
        let block = (g / BLOCK_GRANULES) as usize;
        let below = self.old.bits[block] & ((1u64 << (g % BLOCK_GRANULES)) - 1);
        self.old.range.start + self.before[block] + below.count_ones() * OBJECT_ALIGN
    }

    /// Rewrites root `slot` to the new offsets (after [`Compactor::plan`]).
    ///
    /// # Safety
    ///
    /// As for [`Compactor::mark_root`], for a slot marked from.
    pub unsafe fn update_root(&mut self, slot: *mut u64, kind: RootKind, is_host_word: &dyn Fn(u64) -> bool) {
        // SAFETY: the function's contract.
        unsafe { map_root(slot, kind, is_host_word, &mut |o| self.forward(o)) };
    }

    /// Rewrites the fields of every live object to the new offsets (after
    /// [`Compactor::plan`]) and slides the live old objects down, in one
    /// pass over each region that visits only live objects (found through
    /// the bitmap); returns the remembered set at the objects' new offsets
    /// (the old objects that hold a young one, each with [`REMEMBERED`]
    /// set, every other live old object's bit clear).
    pub fn update_and_slide(&mut self) -> Vec<u32> {
        let mut remembered = Vec::new();
        let young = self.young.range.clone();
        for old in [false, true] {
            let end = if old { self.old.range.end } else { young.end };
            let mut from = if old { self.old.range.start } else { young.start };
            while from < end {
                let Some(at) = (if old { &self.old } else { &self.young }).next_marked(from) else { break };
                // SAFETY: `at` starts a live object (marked as a whole from
                // its start, and `from` is never inside one), whose fields
                // are inside it. Old objects move down in address order,
                // each to at most where it was, so no move overwrites an
                // object not yet visited.
                unsafe {
                    let p = self.base.add(at as usize);
                    let w = p.add(header::GC_WORD as usize).cast::<u32>();
                    let word = w.read();
                    let mut holds_young = false;
                    let traces = self.traces;
                    let size = for_each_field(p, word, traces, &mut |field, kind| {
                        map_field(field, kind, &mut |o| self.forward(o));
                        holds_young |= field_object(field, kind).is_some_and(|r| young.contains(&r));
                    });
                    if old {
                        w.write(if holds_young { word | REMEMBERED } else { word & !REMEMBERED });
                        let to = self.forward(at);
                        if holds_young {
                            remembered.push(to);
                        }
                        if to != at {
                            std::ptr::copy(p, self.base.add(to as usize), size as usize);
                        }
                    }
                    from = at + size;
                }
            }
        }
        remembered
    }

    /// The externref words of the live extern boxes, and those of the old
    /// generation's.
    pub fn into_boxes(self) -> (HashSet<usize>, HashSet<usize>) {
        (self.boxes, self.old_boxes)
    }
}
