//! Linear memories: a reservation of address space whose first
//! `current_length` bytes are read-write. The base never moves; growing
//! makes more of the reservation accessible, so compiled code may cache the
//! base and rely on the guard region behind the reservation.

use super::mmap::{Mmap, round_up_to_page};
use super::vmcontext::VMMemoryDefinition;
use kiln_environ::{MemoryType, Tunables};
use std::ptr::NonNull;

/// Why a memory could not be created or grown.
#[derive(Debug)]
pub enum MemoryError {
    /// The requested size exceeds what this memory may hold.
    TooLarge,
    /// The operating system refused the mapping.
    Os(std::io::Error),
}

impl std::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemoryError::TooLarge => f.write_str("memory size exceeds the reservation or maximum"),
            MemoryError::Os(e) => write!(f, "mapping linear memory failed: {e}"),
        }
    }
}

impl std::error::Error for MemoryError {}

/// A linear memory.
#[derive(Debug)]
pub struct Memory {
    mmap: Mmap,
    ty: MemoryType,
    /// Accessible bytes.
    len: usize,
    /// Most bytes this memory may ever have.
    max_len: usize,
    /// Where the current base/length are published to compiled code.
    def: NonNull<VMMemoryDefinition>,
    /// Owns `def` when the memory was created by the host.
    _own_def: Option<Box<VMMemoryDefinition>>,
}

// SAFETY: `def` points either into `_own_def` or into the owning instance's
// VMContext, both of which live as long as the store that owns this memory;
// access is serialized by `&mut` borrows of that store.
unsafe impl Send for Memory {}
// SAFETY: as above.
unsafe impl Sync for Memory {}

impl Memory {
    /// Creates a memory of type `ty` under `tunables`, publishing its base
    /// and length to `def` (or to a definition it owns, when `def` is None).
    ///
    /// # Errors
    ///
    /// [`MemoryError::TooLarge`] when the minimum size does not fit the
    /// reservation; [`MemoryError::Os`] when mapping fails.
    pub(crate) fn new(
        ty: MemoryType,
        tunables: &Tunables,
        image: Option<&super::memory_image::MemoryImage>,
        def: Option<NonNull<VMMemoryDefinition>>,
    ) -> Result<Memory, MemoryError> {
        let page = ty.page_size();
        let min_bytes = ty.minimum.checked_mul(page).ok_or(MemoryError::TooLarge)?;
        let index_limit = if ty.memory64 { u64::MAX } else { 1u64 << 32 };
        let declared_max = ty.maximum.map(|m| m.saturating_mul(page)).unwrap_or(index_limit).min(index_limit);
        let reservation = if ty.memory64 {
            // 64-bit memories use explicit bounds checks; reserve what the
            // declared maximum needs, capped by the configured reservation.
            declared_max.min(tunables.memory_reservation.max(min_bytes))
        } else {
            tunables.memory_reservation.max(min_bytes)
        };
        let max_len = declared_max.min(reservation);
        if min_bytes > max_len {
            return Err(MemoryError::TooLarge);
        }
        let reservation = usize::try_from(reservation).map_err(|_| MemoryError::TooLarge)?;
        let guard = if ty.memory64 { 0 } else { tunables.memory_guard_size as usize };
        let total = reservation.checked_add(guard).ok_or(MemoryError::TooLarge)?;
        let mmap = Mmap::reserve(total).map_err(MemoryError::Os)?;
        let len = min_bytes as usize;
        let committed = round_up_to_page(len).ok_or(MemoryError::TooLarge)?;
        mmap.make_accessible(0, committed).map_err(MemoryError::Os)?;
        if let Some(image) = image {
            mmap.map_file_private(image.offset(), image.len(), image.fd()).map_err(MemoryError::Os)?;
        }
        let (def, own) = match def {
            Some(d) => (d, None),
            None => {
                let mut b = Box::new(VMMemoryDefinition { base: std::ptr::null_mut(), current_length: 0 });
                (NonNull::from(&mut *b), Some(b))
            }
        };
        let m = Memory { mmap, ty, len, max_len: max_len as usize, def, _own_def: own };
        m.publish();
        Ok(m)
    }

    fn publish(&self) {
        // SAFETY: `def` is valid for writes for this memory's lifetime (see
        // the type's invariants) and no compiled code runs concurrently with
        // a `&self`/`&mut self` use of the owning store.
        unsafe {
            self.def.as_ptr().write(VMMemoryDefinition { base: self.mmap.as_ptr(), current_length: self.len as u64 });
        }
    }

    /// The memory's type (with the current size as minimum).
    pub fn ty(&self) -> MemoryType {
        MemoryType { minimum: (self.len as u64) >> self.ty.page_size_log2, ..self.ty }
    }

    /// Current size in bytes.
    pub fn byte_len(&self) -> usize {
        self.len
    }

    /// Current size in pages.
    pub fn pages(&self) -> u64 {
        (self.len as u64) >> self.ty.page_size_log2
    }

    /// Pointer to the definition compiled code reads.
    pub fn definition(&self) -> NonNull<VMMemoryDefinition> {
        self.def
    }

    /// The byte size growing by `delta` pages would give, if representable.
    pub fn size_after_grow(&self, delta: u64) -> Option<usize> {
        delta
            .checked_mul(self.ty.page_size())
            .and_then(|d| d.checked_add(self.len as u64))
            .and_then(|n| usize::try_from(n).ok())
    }

    /// The declared maximum in bytes, if any.
    pub fn declared_max_bytes(&self) -> Option<usize> {
        self.ty.maximum.and_then(|m| m.checked_mul(self.ty.page_size())).and_then(|b| usize::try_from(b).ok())
    }

    /// The contents.
    pub fn data(&self) -> &[u8] {
        // SAFETY: the first `len` bytes of the mapping are accessible and
        // owned by this memory; the shared borrow of `self` excludes writers.
        unsafe { std::slice::from_raw_parts(self.mmap.as_ptr(), self.len) }
    }

    /// The contents, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, with exclusive access through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.mmap.as_ptr(), self.len) }
    }

    /// Grows by `delta` pages. Returns the previous size in pages, or `None`
    /// if the memory cannot grow that far.
    ///
    /// # Errors
    ///
    /// [`MemoryError::Os`] if the kernel refuses to map the new pages.
    pub fn grow(&mut self, delta: u64) -> Result<Option<u64>, MemoryError> {
        let old_pages = self.pages();
        let Some(new_bytes) = delta
            .checked_mul(self.ty.page_size())
            .and_then(|d| d.checked_add(self.len as u64))
            .filter(|n| *n <= self.max_len as u64)
        else {
            return Ok(None);
        };
        let new_bytes = new_bytes as usize;
        let old_committed = round_up_to_page(self.len).ok_or(MemoryError::TooLarge)?;
        let new_committed = round_up_to_page(new_bytes).ok_or(MemoryError::TooLarge)?;
        if new_committed > old_committed {
            self.mmap.make_accessible(old_committed, new_committed - old_committed).map_err(MemoryError::Os)?;
        }
        self.len = new_bytes;
        self.publish();
        Ok(Some(old_pages))
    }
}
