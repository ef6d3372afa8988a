//! Page-granular virtual memory: reserve, commit, protect, release.

use std::io;
use std::ptr::NonNull;

/// The host page size.
pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// Rounds `n` up to a multiple of the host page size.
pub fn round_up_to_page(n: usize) -> Option<usize> {
    let p = page_size();
    n.checked_add(p - 1).map(|x| x & !(p - 1))
}

/// An owned anonymous mapping. Starts inaccessible; parts are made
/// read-write on demand.
#[derive(Debug)]
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; access to its
// contents is synchronized by whoever borrows the owner.
unsafe impl Send for Mmap {}
// SAFETY: `&Mmap` only exposes the address and length; whoever reads or
// writes the memory behind them synchronizes through the owner.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Reserves `len` bytes (rounded up to pages) of inaccessible address space.
    ///
    /// # Errors
    ///
    /// The OS error if the reservation fails (address space exhausted).
    pub fn reserve(len: usize) -> io::Result<Mmap> {
        Mmap::map(len, rustix::mm::ProtFlags::empty())
    }

    /// Reserves `len` bytes and makes all of them read-write.
    ///
    /// # Errors
    ///
    /// The OS error if mapping fails.
    pub fn accessible(len: usize) -> io::Result<Mmap> {
        // One system call, not a reservation and then a protection change:
        // each takes the address space's lock for writing, which other
        // threads' page faults and mappings wait for.
        Mmap::map(len, rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE)
    }

    /// A fresh private anonymous mapping of `len` bytes (rounded up to
    /// pages) with protection `prot`, `NORESERVE` whatever the protection
    /// (so a mapping made read-write at once and a reservation made
    /// accessible later account alike).
    fn map(len: usize, prot: rustix::mm::ProtFlags) -> io::Result<Mmap> {
        let len = round_up_to_page(len.max(1)).ok_or_else(|| io::Error::other("mapping size overflows"))?;
        // SAFETY: a fresh anonymous mapping at an address chosen by the
        // kernel aliases nothing.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                prot,
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::NORESERVE,
            )
        }
        .map_err(io::Error::from)?;
        Ok(Mmap { ptr: NonNull::new(ptr.cast()).expect("mmap returned null"), len })
    }

    /// The first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Allocates every page of this (read-write) mapping now, in one
    /// system call, instead of a page fault at a time as they are first
    /// written (Linux `MADV_POPULATE_WRITE`). Advice only: older kernels
    /// refuse it, and the pages are then faulted in as usual.
    pub fn populate_write(&self) {
        // SAFETY: the range is exactly this mapping; populating writes no
        // contents (fresh pages read as zero either way).
        let _ =
            unsafe { rustix::mm::madvise(self.ptr.as_ptr().cast(), self.len, rustix::mm::Advice::LinuxPopulateWrite) };
    }

    /// Asks the kernel to back this mapping with transparent huge pages
    /// where it can (Linux `MADV_HUGEPAGE`; 2 MiB pages on x86-64): fewer
    /// page faults and TLB misses for large linear memories. Best-effort:
    /// kernels without THP, or with it disabled, ignore it.
    pub fn advise_huge_pages(&self) {
        // SAFETY: advisory only, over exactly this mapping; it changes no
        // contents or protections.
        let _ = unsafe { rustix::mm::madvise(self.ptr.as_ptr().cast(), self.len, rustix::mm::Advice::LinuxHugepage) };
    }

    /// Makes `[start, start + len)` (page-aligned) readable and writable.
    ///
    /// # Errors
    ///
    /// The OS error, or an error if the range is not inside the mapping.
    pub fn make_accessible(&self, start: usize, len: usize) -> io::Result<()> {
        self.protect(start, len, rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE)
    }

    /// Makes `[start, start + len)` readable and executable.
    ///
    /// # Errors
    ///
    /// The OS error, or an error if the range is not inside the mapping.
    pub fn make_executable(&self, start: usize, len: usize) -> io::Result<()> {
        self.protect(start, len, rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::EXEC)
    }

    fn protect(&self, start: usize, len: usize, flags: rustix::mm::MprotectFlags) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let end = start.checked_add(len).filter(|e| *e <= self.len);
        if end.is_none() || !start.is_multiple_of(page_size()) {
            return Err(io::Error::other("protection range outside the mapping"));
        }
        // SAFETY: the range lies inside this mapping (checked above), which
        // this value owns; changing its protection affects no other object.
        unsafe { rustix::mm::mprotect(self.ptr.as_ptr().add(start).cast(), len, flags) }.map_err(io::Error::from)
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: the mapping was created by `reserve` with this address and
        // length, and nothing borrows it once its owner is dropped.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
