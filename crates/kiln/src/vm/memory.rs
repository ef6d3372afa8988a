//! Linear memories: a reservation of address space whose first
//! `current_length` bytes are read-write. The base never moves; growing
//! makes more of the reservation accessible, so compiled code may cache the
//! base and rely on the guard region behind the reservation.

use super::pool::{Region, RegionPool};
use super::vmcontext::VMMemoryDefinition;
use kiln_environ::{MemoryType, Tunables};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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

/// A linear memory. Growth goes through a lock and the length is atomic,
/// so a shared memory (`ty.shared`) can be used by several threads at once.
pub struct Memory {
    region: Mutex<Option<Region>>,
    pool: Option<Arc<RegionPool>>,
    base: *mut u8,
    ty: MemoryType,
    /// Accessible bytes.
    len: AtomicUsize,
    /// Most bytes this memory may ever have.
    max_len: usize,
    /// Length of the reservation starting at `base`, guard region included
    /// (the whole region: fixed for the memory's lifetime).
    reserved: usize,
    /// Where the current base/length are published to compiled code.
    def: NonNull<VMMemoryDefinition>,
    /// Owns `def` when the memory was created by the host.
    _own_def: Option<Box<VMMemoryDefinition>>,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory").field("ty", &self.ty).field("len", &self.byte_len()).finish_non_exhaustive()
    }
}

// SAFETY: `def` points either into `_own_def` or into the owning instance's
// VMContext, both of which live as long as the store that owns this memory;
// `base` points into `region`, owned by this memory. Access is serialized by
// `&mut` borrows of that store.
unsafe impl Send for Memory {}
// SAFETY: through `&Memory` only atomics (the length) and immutable fields
// are read, and growth takes the region's lock; the memory's bytes are
// accessed by wasm and the host under the owning store's borrow, or, for a
// shared memory, only atomically or through raw copies.
unsafe impl Sync for Memory {}

impl Memory {
    /// Creates a memory of type `ty` under `tunables` owning its own
    /// definition (for the host: `Memory::new` of the API, shared memories).
    ///
    /// # Errors
    ///
    /// As [`Memory::new`].
    pub(crate) fn new_host(
        ty: MemoryType,
        tunables: &Tunables,
        allocator: Option<&super::allocator::Allocator>,
    ) -> Result<Memory, MemoryError> {
        Memory::new(ty, tunables, None, allocator, None)
    }

    /// Creates a memory of type `ty` under `tunables`, with its initial
    /// contents mapped from `image` if given, publishing its base and length
    /// to `def` (or to a definition it owns, when `def` is None). Standard
    /// 32-bit memories take their address space from `allocator`.
    ///
    /// # Errors
    ///
    /// [`MemoryError::TooLarge`] when the minimum size does not fit the
    /// reservation; [`MemoryError::Os`] when mapping fails or the pooling
    /// allocator has no free memory slot.
    pub(super) fn new(
        ty: MemoryType,
        tunables: &Tunables,
        image: Option<&Arc<super::memory_image::MemoryImage>>,
        allocator: Option<&super::allocator::Allocator>,
        def: Option<NonNull<VMMemoryDefinition>>,
    ) -> Result<Memory, MemoryError> {
        let page = ty.page_size();
        let min_bytes = ty.minimum.checked_mul(page).ok_or(MemoryError::TooLarge)?;
        let index_limit = if ty.memory64 { u64::MAX } else { 1u64 << 32 };
        let declared_max = ty.maximum.map(|m| m.saturating_mul(page)).unwrap_or(index_limit).min(index_limit);
        let reservation = if ty.memory64 {
            // 64-bit memories use explicit bounds checks; reserve what the
            // declared maximum needs, capped by the configured 64-bit
            // reservation.
            declared_max.min(tunables.memory64_reservation.max(min_bytes))
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
        let (mut region, pool) = match allocator.and_then(|a| a.memory(total)) {
            Some(r) => {
                let (region, pool) = r.map_err(MemoryError::Os)?;
                (region, Some(pool))
            }
            None => (
                RegionPool::on_demand(total, false, 0)
                    .with_huge_pages(tunables.memory_huge_pages)
                    .acquire()
                    .map_err(MemoryError::Os)?,
                None,
            ),
        };
        let len = min_bytes as usize;
        let setup = region.set_accessible(len).and_then(|()| region.set_image(image));
        if let Err(e) = setup {
            if let Some(p) = &pool {
                p.release(region);
            }
            return Err(MemoryError::Os(e));
        }
        let (def, own) = match def {
            Some(d) => (d, None),
            None => {
                let mut b = Box::new(VMMemoryDefinition { base: std::ptr::null_mut(), current_length: 0 });
                (NonNull::from(&mut *b), Some(b))
            }
        };
        let base = region.ptr();
        let reserved = region.len();
        let m = Memory {
            region: Mutex::new(Some(region)),
            pool,
            base,
            reserved,
            ty,
            len: AtomicUsize::new(len),
            max_len: max_len as usize,
            def,
            _own_def: own,
        };
        m.publish(len);
        Ok(m)
    }

    fn publish(&self, len: usize) {
        // SAFETY: `def` is valid for this memory's lifetime (see the type's
        // invariants). The length is stored atomically: other threads'
        // compiled code may be reading it (shared memories).
        unsafe {
            std::ptr::addr_of_mut!((*self.def.as_ptr()).base).write(self.base);
            (*(std::ptr::addr_of!((*self.def.as_ptr()).current_length) as *const AtomicU64))
                .store(len as u64, Ordering::Release);
        }
    }

    /// The memory's type (with the current size as minimum).
    pub fn ty(&self) -> MemoryType {
        MemoryType { minimum: self.pages(), ..self.ty }
    }

    /// Current size in bytes.
    pub fn byte_len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Current size in pages.
    pub fn pages(&self) -> u64 {
        (self.byte_len() as u64) >> self.ty.page_size_log2
    }

    /// Whether this memory is shared between threads.
    pub fn is_shared(&self) -> bool {
        self.ty.shared
    }

    /// The first byte (for raw access by builtins).
    pub fn base(&self) -> *mut u8 {
        self.base
    }

    /// Pointer to the definition compiled code reads.
    pub fn definition(&self) -> NonNull<VMMemoryDefinition> {
        self.def
    }

    /// The address range this memory's accesses can reach: its whole
    /// reservation, guard region included. Fixed for the memory's lifetime.
    pub fn reservation(&self) -> MemoryReservation {
        MemoryReservation { start: self.base as usize, len: self.reserved }
    }

    /// The byte size growing by `delta` pages would give, if representable.
    pub fn size_after_grow(&self, delta: u64) -> Option<usize> {
        delta
            .checked_mul(self.ty.page_size())
            .and_then(|d| d.checked_add(self.byte_len() as u64))
            .and_then(|n| usize::try_from(n).ok())
    }

    /// The declared maximum in bytes, if any.
    pub fn declared_max_bytes(&self) -> Option<usize> {
        self.ty.maximum.and_then(|m| m.checked_mul(self.ty.page_size())).and_then(|b| usize::try_from(b).ok())
    }

    /// The contents of an unshared memory.
    pub fn data(&self) -> &[u8] {
        debug_assert!(!self.ty.shared, "shared memories are accessed byte-wise atomically");
        // SAFETY: the first `len` bytes of the mapping are accessible and
        // owned by this memory; for an unshared memory the shared borrow of
        // its store excludes writers.
        unsafe { std::slice::from_raw_parts(self.base, self.byte_len()) }
    }

    /// The contents of an unshared memory, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        debug_assert!(!self.ty.shared, "shared memories are accessed byte-wise atomically");
        // SAFETY: as in `data`, with exclusive access through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.base, self.byte_len()) }
    }

    /// Copies `buf.len()` bytes at `offset` into `buf` in one `memcpy`;
    /// `false` (nothing copied) if the range is out of bounds.
    ///
    /// For shared memories this is the same unsynchronized copy that
    /// `memory.copy` performs: bytes other threads write meanwhile may or
    /// may not be seen, exactly as for a racing wasm load.
    pub fn copy_out(&self, offset: usize, buf: &mut [u8]) -> bool {
        if offset.checked_add(buf.len()).is_none_or(|end| end > self.byte_len()) {
            return false;
        }
        // SAFETY: the range is inside the accessible length (checked
        // above; memories never shrink) and `buf` is a distinct host buffer.
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(offset), buf.as_mut_ptr(), buf.len()) };
        true
    }

    /// Copies `buf` into the memory at `offset` in one `memcpy`; `false`
    /// (nothing copied) if the range is out of bounds. Racing accesses from
    /// other threads behave as with `copy_out`.
    pub fn copy_in(&self, offset: usize, buf: &[u8]) -> bool {
        if offset.checked_add(buf.len()).is_none_or(|end| end > self.byte_len()) {
            return false;
        }
        // SAFETY: as in `copy_out`, writing instead of reading.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), self.base.add(offset), buf.len()) };
        true
    }

    /// Grows by `delta` pages. Returns the previous size in pages, or `None`
    /// if the memory cannot grow that far.
    ///
    /// # Errors
    ///
    /// [`MemoryError::Os`] if the kernel refuses to map the new pages.
    pub fn grow(&self, delta: u64) -> Result<Option<u64>, MemoryError> {
        let mut region = self.region.lock().unwrap_or_else(|e| e.into_inner());
        let len = self.byte_len();
        let old_pages = (len as u64) >> self.ty.page_size_log2;
        let Some(new_bytes) = delta
            .checked_mul(self.ty.page_size())
            .and_then(|d| d.checked_add(len as u64))
            .filter(|n| *n <= self.max_len as u64)
        else {
            return Ok(None);
        };
        let new_bytes = new_bytes as usize;
        if new_bytes > len
            && let Some(region) = region.as_mut()
        {
            region.set_accessible(new_bytes).map_err(MemoryError::Os)?;
        }
        self.len.store(new_bytes, Ordering::Release);
        self.publish(new_bytes);
        Ok(Some(old_pages))
    }
}

/// The address range of one linear memory's reservation plus guard region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryReservation {
    /// The first byte (the memory's base).
    pub start: usize,
    /// Bytes from `start` to the end of the guard region.
    pub len: usize,
}

/// The reservations of every linear memory a store's wasm can access: the
/// addresses at which a fault of an out-of-bounds access may happen. The
/// trap handler treats a memory fault at a trap site as a wasm trap only if
/// its address is in this list (see `traphandlers.rs`); anything else is a
/// bug in the compiler or the runtime and must not be papered over.
///
/// Owned by the store's `VMStoreContext`. It only grows: the store appends
/// a memory's reservation when the memory becomes reachable by its wasm
/// (instantiation, `Memory::new`, a shared memory imported), and a store's
/// memories live as long as the store, their reservations never moving.
/// One amortized `Vec` push per memory: no system call, no lock.
#[derive(Debug, Default)]
pub struct MemoryReservations(Vec<MemoryReservation>);

impl MemoryReservations {
    /// Adds a reservation (duplicates are harmless: a shared memory
    /// imported twice is listed twice).
    pub fn push(&mut self, r: MemoryReservation) {
        self.0.push(r);
    }

    /// Whether `addr` lies in one of the reservations. Reads nothing but the
    /// list and allocates nothing, so the signal handler may call it (on
    /// the store's own thread, while the store's wasm runs: see the handler).
    pub fn contains(&self, addr: usize) -> bool {
        self.0.iter().any(|r| addr.wrapping_sub(r.start) < r.len)
    }
}

impl Memory {
    /// Releases this memory's region without a reset when dropped (see
    /// `Instance::forget_unwritten_contents` for when that is right).
    pub(crate) fn forget_writes(&mut self) {
        if let Some(r) = self.region.get_mut().unwrap_or_else(|e| e.into_inner()).as_mut() {
            r.forget_writes();
        }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        let region = self.region.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let (Some(region), Some(pool)) = (region, &self.pool) {
            pool.release(region);
        }
    }
}
