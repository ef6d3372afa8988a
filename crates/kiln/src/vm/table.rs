//! Tables: growable arrays of pointer-sized references.
//!
//! Externref tables hold raw externref pointers (0 is null). Funcref tables
//! hold *tagged* `VMFuncRef` pointers: bit 0 (`FUNCREF_INIT_BIT`) is set on
//! every initialized element (so null is `1`), and an element of `0` has not
//! been initialized yet: its value comes from the owning module's
//! precomputed `LazyTable` the first time anyone reads it (compiled code
//! calls a builtin for that; the runtime goes through [`Table::get`]). A
//! table of a large module therefore starts as zeroed memory, and only the
//! elements actually used are ever computed.

use super::allocator::Allocator;
use super::instance::FuncRefMaker;
use super::pool::{Region, RegionPool};
use super::vmcontext::VMTableDefinition;
use kiln_environ::{FUNCREF_INIT_BIT, TableType};
use std::ptr::NonNull;
use std::sync::Arc;

/// Where a lazily initialized table's elements come from.
pub struct LazyInit {
    /// Makes the function references of the owning instance.
    pub maker: FuncRefMaker,
    /// This table's index in the instance's module, whose lazy-table
    /// entry gives each element's initial function.
    pub table: u32,
}

/// A table. Its elements live in a region from the instance allocator,
/// sized for the table's maximum, so growing never moves them.
pub struct Table {
    region: Option<Region>,
    pool: Option<Arc<RegionPool>>,
    base: *mut usize,
    len: usize,
    ty: TableType,
    max: usize,
    lazy: Option<LazyInit>,
    def: NonNull<VMTableDefinition>,
    _own_def: Option<Box<VMTableDefinition>>,
    /// Whether dropping resets the elements in use (false only after
    /// `forget_writes`).
    reset_on_drop: bool,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table").field("ty", &self.ty).field("size", &self.len).finish_non_exhaustive()
    }
}

// SAFETY: `def` points into `_own_def` or the owning instance's VMContext,
// both alive as long as the owning store; `base` points into `region`, which
// this table owns; the store serializes access.
unsafe impl Send for Table {}
// SAFETY: as above.
unsafe impl Sync for Table {}

/// Most elements any table may have (keeps sizes well inside `usize`).
pub const MAX_TABLE_ELEMENTS: u64 = 10_000_000;

impl Table {
    /// Creates a table of type `ty` with every element `init` (an untagged
    /// reference, 0 for null), or lazily initialized from `lazy`.
    ///
    /// # Errors
    ///
    /// Returns `None` if the minimum size exceeds the implementation limit.
    pub(crate) fn new(
        ty: TableType,
        init: usize,
        lazy: Option<LazyInit>,
        allocator: &Allocator,
        def: Option<NonNull<VMTableDefinition>>,
    ) -> Result<Table, String> {
        if ty.minimum > MAX_TABLE_ELEMENTS {
            return Err(format!("table of {} elements exceeds the limit of {MAX_TABLE_ELEMENTS}", ty.minimum));
        }
        let declared = ty.maximum.unwrap_or(MAX_TABLE_ELEMENTS).min(MAX_TABLE_ELEMENTS) as usize;
        let min = ty.minimum as usize;
        let (mut region, pool) = allocator.table(min, declared).map_err(|e| e.to_string())?;
        let max = declared.min(region.len() / 8);
        let (def, own) = match def {
            Some(d) => (d, None),
            None => {
                let mut b = Box::new(VMTableDefinition { base: std::ptr::null_mut(), current_elements: 0 });
                (NonNull::from(&mut *b), Some(b))
            }
        };
        let base = region.ptr().cast::<usize>();
        // A fresh or reset region reads as zeros: exactly the "not yet
        // initialized" state of a lazy table.
        if lazy.is_none() {
            region.mark_dirty(min * 8);
        }
        let mut t = Table { region: Some(region), pool: Some(pool), base, len: min, ty, max, lazy, def, _own_def: own, reset_on_drop: true };
        if t.lazy.is_none() {
            let fill = Self::encode(ty, init);
            t.elements_mut().fill(fill);
        }
        t.publish();
        Ok(t)
    }

    fn elements(&self) -> &[usize] {
        // SAFETY: `base` points to a read-write region of at least `max`
        // elements owned by this table, of which the first `len` are in use.
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }

    fn elements_mut(&mut self) -> &mut [usize] {
        // SAFETY: as in `elements`, with exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.base, self.len) }
    }

    fn is_func(&self) -> bool {
        self.ty.element.is_func()
    }

    /// The stored form of reference `v`.
    fn encode(ty: TableType, v: usize) -> usize {
        if ty.element.is_func() { v | FUNCREF_INIT_BIT } else { v }
    }

    fn publish(&mut self) {
        // SAFETY: `def` is valid for writes for this table's lifetime (type
        // invariant); the `&mut self` borrow excludes concurrent compiled code.
        unsafe {
            self.def.as_ptr().write(VMTableDefinition { base: self.base, current_elements: self.len as u64 });
        }
    }

    /// The table's type with the current size as minimum.
    pub fn ty(&self) -> TableType {
        TableType { minimum: self.len as u64, ..self.ty }
    }

    /// Number of elements.
    pub fn size(&self) -> u64 {
        self.len as u64
    }

    /// The definition compiled code reads.
    pub fn definition(&self) -> NonNull<VMTableDefinition> {
        self.def
    }

    /// The reference in element `i` (0 for null), computing it first if
    /// it was never initialized; `None` if out of bounds.
    pub fn get(&mut self, i: u64) -> Option<usize> {
        let i = usize::try_from(i).ok()?;
        let raw = *self.elements().get(i)?;
        if !self.is_func() {
            return Some(raw);
        }
        if raw != 0 {
            return Some(raw & !FUNCREF_INIT_BIT);
        }
        let v = match &self.lazy {
            Some(lazy) => lazy.maker.initial_element(lazy.table, i).map_or(0, |f| lazy.maker.func_ref(f) as usize),
            None => 0,
        };
        self.elements_mut()[i] = v | FUNCREF_INIT_BIT;
        Some(v)
    }

    /// Sets element `i` to reference `v` (0 for null); `false` if out of bounds.
    pub fn set(&mut self, i: u64, v: usize) -> bool {
        let enc = Self::encode(self.ty, v);
        match usize::try_from(i).ok().and_then(|i| self.elements_mut().get_mut(i)) {
            Some(slot) => {
                *slot = enc;
                true
            }
            None => false,
        }
    }

    /// The stored elements of an externref table (for collecting
    /// externrefs); empty for funcref tables.
    pub fn externrefs(&self) -> &[usize] {
        if self.is_func() { &[] } else { self.elements() }
    }

    /// Grows by `delta` elements set to `init`; returns the old size, or
    /// `None` if the table cannot grow that far.
    pub fn grow(&mut self, delta: u64, init: usize) -> Option<u64> {
        let old = self.len as u64;
        let new = old.checked_add(delta).filter(|n| *n <= self.max as u64)? as usize;
        if let Some(r) = &mut self.region {
            r.mark_dirty(new * 8);
        }
        let fill = Self::encode(self.ty, init);
        let old_len = self.len;
        self.len = new;
        self.elements_mut()[old_len..].fill(fill);
        self.publish();
        Some(old)
    }

    /// `table.fill`: false if the range is out of bounds.
    pub fn fill(&mut self, dst: u64, val: usize, len: u64) -> bool {
        let end = match dst.checked_add(len) {
            Some(e) if e <= self.size() => e,
            _ => return false,
        };
        let enc = Self::encode(self.ty, val);
        self.elements_mut()[dst as usize..end as usize].fill(enc);
        true
    }

    /// `table.copy` within this table: false if a range is out of bounds.
    pub fn copy_within(&mut self, dst: u64, src: u64, len: u64) -> bool {
        let size = self.size();
        if src.checked_add(len).is_none_or(|e| e > size) || dst.checked_add(len).is_none_or(|e| e > size) {
            return false;
        }
        if self.is_func() && self.lazy.is_some() {
            // Copies must carry values, not "uninitialized" markers.
            for i in src..src + len {
                self.get(i);
            }
        }
        self.elements_mut().copy_within(src as usize..(src + len) as usize, dst as usize);
        true
    }

    /// The references in `[start, start + len)`, computing uninitialized
    /// ones; `None` if out of bounds.
    pub fn read_range(&mut self, start: u64, len: u64) -> Option<Vec<usize>> {
        let end = start.checked_add(len).filter(|e| *e <= self.size())?;
        (start..end).map(|i| self.get(i)).collect()
    }
}

impl Table {
    /// Releases this table's region without a reset when dropped (see
    /// `Instance::forget_unwritten_contents` for when that is right).
    /// Only lazily initialized tables qualify: an eager one was filled at
    /// creation.
    pub(crate) fn forget_writes(&mut self) {
        if self.lazy.is_none() {
            return;
        }
        self.reset_on_drop = false;
        if let Some(r) = self.region.as_mut() {
            r.forget_writes();
        }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        if let (Some(mut region), Some(pool)) = (self.region.take(), self.pool.take()) {
            if self.reset_on_drop {
                region.mark_dirty(self.len * 8);
            }
            pool.release(region);
        }
    }
}
