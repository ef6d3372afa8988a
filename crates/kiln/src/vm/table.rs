//! Tables: growable arrays of pointer-sized references (`*const VMFuncRef`
//! for funcref tables, externref pointers for externref tables; 0 is null).

use super::vmcontext::VMTableDefinition;
use kiln_environ::TableType;
use std::ptr::NonNull;

/// A table.
#[derive(Debug)]
pub struct Table {
    elements: Vec<usize>,
    ty: TableType,
    max: usize,
    def: NonNull<VMTableDefinition>,
    _own_def: Option<Box<VMTableDefinition>>,
}

// SAFETY: `def` points into `_own_def` or the owning instance's VMContext,
// both alive as long as the owning store; the store serializes access.
unsafe impl Send for Table {}
// SAFETY: as above.
unsafe impl Sync for Table {}

/// Most elements any table may have (keeps sizes well inside `usize`).
pub const MAX_TABLE_ELEMENTS: u64 = 10_000_000;

impl Table {
    /// Creates a table of type `ty` with every element `init`.
    ///
    /// # Errors
    ///
    /// Returns `None` if the minimum size exceeds the implementation limit.
    pub(crate) fn new(ty: TableType, init: usize, def: Option<NonNull<VMTableDefinition>>) -> Option<Table> {
        if ty.minimum > MAX_TABLE_ELEMENTS {
            return None;
        }
        let max = ty.maximum.unwrap_or(MAX_TABLE_ELEMENTS).min(MAX_TABLE_ELEMENTS) as usize;
        let (def, own) = match def {
            Some(d) => (d, None),
            None => {
                let mut b = Box::new(VMTableDefinition { base: std::ptr::null_mut(), current_elements: 0 });
                (NonNull::from(&mut *b), Some(b))
            }
        };
        let mut t = Table { elements: vec![init; ty.minimum as usize], ty, max, def, _own_def: own };
        t.publish();
        Some(t)
    }

    fn publish(&mut self) {
        // SAFETY: `def` is valid for writes for this table's lifetime (type
        // invariant); the `&mut self` borrow excludes concurrent compiled code.
        unsafe {
            self.def.as_ptr().write(VMTableDefinition {
                base: self.elements.as_mut_ptr(),
                current_elements: self.elements.len() as u64,
            });
        }
    }

    /// The table's type with the current size as minimum.
    pub fn ty(&self) -> TableType {
        TableType { minimum: self.elements.len() as u64, ..self.ty }
    }

    /// Number of elements.
    pub fn size(&self) -> u64 {
        self.elements.len() as u64
    }

    /// The definition compiled code reads.
    pub fn definition(&self) -> NonNull<VMTableDefinition> {
        self.def
    }

    /// Element `i`, if in bounds.
    pub fn get(&self, i: u64) -> Option<usize> {
        usize::try_from(i).ok().and_then(|i| self.elements.get(i).copied())
    }

    /// Sets element `i`; `false` if out of bounds.
    pub fn set(&mut self, i: u64, v: usize) -> bool {
        match usize::try_from(i).ok().and_then(|i| self.elements.get_mut(i)) {
            Some(slot) => {
                *slot = v;
                true
            }
            None => false,
        }
    }

    /// All elements.
    pub fn elements(&self) -> &[usize] {
        &self.elements
    }

    /// All elements, mutably.
    pub fn elements_mut(&mut self) -> &mut [usize] {
        &mut self.elements
    }

    /// Grows by `delta` elements set to `init`; returns the old size, or
    /// `None` if the table cannot grow that far.
    pub fn grow(&mut self, delta: u64, init: usize) -> Option<u64> {
        let old = self.elements.len() as u64;
        let new = old.checked_add(delta).filter(|n| *n <= self.max as u64)?;
        self.elements.resize(new as usize, init);
        self.publish();
        Some(old)
    }

    /// `table.fill`: false if the range is out of bounds.
    pub fn fill(&mut self, dst: u64, val: usize, len: u64) -> bool {
        let end = match dst.checked_add(len) {
            Some(e) if e <= self.size() => e,
            _ => return false,
        };
        self.elements[dst as usize..end as usize].fill(val);
        true
    }
}
