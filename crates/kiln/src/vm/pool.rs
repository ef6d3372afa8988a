//! Reusable memory regions, the basis of both instance allocators.
//!
//! A `RegionPool` hands out regions of one size. A region that is released
//! is reset with `madvise(MADV_DONTNEED)` over the part that may have been
//! written, which makes anonymous pages read as zero again and private file
//! pages (a memory's copy-on-write image) read as the file again, then kept
//! for the next user with its protections and image mapping intact:
//! instantiating the same module again then needs no `mmap`, `mprotect` or
//! `munmap` at all.
//!
//! - The *pooling* allocator backs a pool with one reservation divided into
//!   a fixed number of slots, reserved up front; running out of slots is an
//!   error ("limit reached").
//! - The default *on-demand* allocator creates regions as needed and keeps
//!   a few released ones per size for reuse, unmapping the rest.

use super::idle_list::IdleList;
use super::memory_image::MemoryImage;
use super::mmap::{Mmap, page_size, round_up_to_page};
use std::io;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where a region's address space comes from.
enum Origin {
    /// Its own mapping (on-demand pools), unmapped when the region drops.
    Owned { _mmap: Mmap },
    /// A slot of the pool's fixed reservation.
    Slot,
}

/// A region of address space, `len` bytes, whose first `rw` bytes are
/// read-write and whose first `dirty` bytes may hold data.
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    rw: usize,
    dirty: usize,
    image: Option<Arc<MemoryImage>>,
    origin: Origin,
}

// SAFETY: a region is owned address space; whoever holds it is its only user.
unsafe impl Send for Region {}
// SAFETY: a shared `&Region` only exposes its address and lengths, never
// the memory behind them.
unsafe impl Sync for Region {}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region").field("len", &self.len).field("rw", &self.rw).finish_non_exhaustive()
    }
}

impl Region {
    /// A region of no bytes: a placeholder for one given back (releasing
    /// it does nothing).
    pub fn empty() -> Region {
        Region { ptr: NonNull::dangling(), len: 0, rw: 0, dirty: 0, image: None, origin: Origin::Slot }
    }

    /// The first byte.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Total length of the region.
    pub fn len(&self) -> usize {
        self.len
    }

    fn protect(&self, start: usize, len: usize, flags: rustix::mm::MprotectFlags) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        if start.checked_add(len).is_none_or(|e| e > self.len) {
            return Err(io::Error::other("protection range outside the region"));
        }
        // SAFETY: the range lies inside this region, which its holder owns.
        unsafe { rustix::mm::mprotect(self.ptr.as_ptr().add(start).cast(), len, flags) }.map_err(io::Error::from)
    }

    /// Makes `[start, start + len)` (page-aligned) read-write or, with
    /// `rw` false, inaccessible, independently of the read-write prefix
    /// that [`Region::set_accessible`] manages (for GC heaps, whose
    /// accessible parts are not a prefix). Read-write ranges count as
    /// written.
    ///
    /// # Errors
    ///
    /// The range is outside the region, or the OS refused.
    pub fn protect_range(&mut self, start: usize, len: usize, rw: bool) -> io::Result<()> {
        use rustix::mm::MprotectFlags as P;
        self.protect(start, len, if rw { P::READ | P::WRITE } else { P::empty() })?;
        if rw {
            self.mark_dirty(start + len);
        }
        Ok(())
    }

    /// Gives the pages of `[start, start + len)` (page-aligned) back to the
    /// OS: they read as zero when next touched.
    ///
    /// # Errors
    ///
    /// The range is outside the region, or the OS refused.
    pub fn discard(&mut self, start: usize, len: usize) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        if start.checked_add(len).is_none_or(|e| e > self.len) {
            return Err(io::Error::other("discarded range outside the region"));
        }
        // SAFETY: the range lies inside this region, which its holder owns
        // and whose contents there it no longer needs.
        unsafe { rustix::mm::madvise(self.ptr.as_ptr().add(start).cast(), len, rustix::mm::Advice::LinuxDontNeed) }
            .map_err(io::Error::from)
    }

    /// Makes exactly the first `bytes` (rounded up to pages) read-write and
    /// the rest of the region inaccessible.
    pub fn set_accessible(&mut self, bytes: usize) -> io::Result<()> {
        let want = round_up_to_page(bytes).ok_or_else(|| io::Error::other("size overflows"))?.min(self.len);
        use rustix::mm::MprotectFlags as P;
        if want > self.rw {
            self.protect(self.rw, want - self.rw, P::READ | P::WRITE)?;
        } else if want < self.rw {
            self.protect(want, self.rw - want, P::empty())?;
        }
        self.rw = want;
        self.dirty = self.dirty.max(want);
        Ok(())
    }

    /// Maps `image` at its offset (replacing whatever image was mapped
    /// before), or removes the current image if `image` is `None`. The
    /// image range must lie inside the read-write part.
    pub fn set_image(&mut self, image: Option<&Arc<MemoryImage>>) -> io::Result<()> {
        let same = match (&self.image, image) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same {
            return Ok(());
        }
        if let Some(old) = self.image.take() {
            // Replace the old image's pages with fresh anonymous memory.
            // SAFETY: MAP_FIXED over a range inside this region (images
            // are placed inside it), which its holder owns.
            unsafe {
                rustix::mm::mmap_anonymous(
                    self.ptr.as_ptr().add(old.offset()).cast(),
                    old.len(),
                    rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                    rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::FIXED | rustix::mm::MapFlags::NORESERVE,
                )
            }
            .map_err(io::Error::from)?;
        }
        if let Some(img) = image {
            if img.offset().checked_add(img.len()).is_none_or(|e| e > self.rw) {
                return Err(io::Error::other("memory image outside the accessible range"));
            }
            // SAFETY: MAP_FIXED over a range inside this region (checked).
            unsafe {
                rustix::mm::mmap(
                    self.ptr.as_ptr().add(img.offset()).cast(),
                    img.len(),
                    rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                    rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::FIXED,
                    img.fd(),
                    0,
                )
            }
            .map_err(io::Error::from)?;
            self.image = Some(img.clone());
        }
        Ok(())
    }

    /// Forgets what `mark_dirty`/`set_accessible` recorded, so the next
    /// release resets nothing: for a region its user never wrote (see
    /// `Instance::forget_unwritten_contents`).
    pub fn forget_writes(&mut self) {
        self.dirty = 0;
    }

    /// How many leading bytes may hold data (what a release resets).
    #[cfg(test)]
    pub fn dirty_len(&self) -> usize {
        self.dirty
    }

    /// Notes that the first `bytes` may now hold data.
    pub fn mark_dirty(&mut self, bytes: usize) {
        self.dirty = self.dirty.max(bytes.min(self.len));
    }

    /// Resets the contents (see the module docs) so the region can be reused.
    fn reset(&mut self) -> io::Result<()> {
        let dirty = round_up_to_page(self.dirty).unwrap_or(self.len).min(self.len);
        if dirty > 0 {
            // SAFETY: the range lies inside this region, which is no longer
            // used by anyone (it is being released).
            unsafe { rustix::mm::madvise(self.ptr.as_ptr().cast(), dirty, rustix::mm::Advice::LinuxDontNeed) }
                .map_err(io::Error::from)?;
        }
        self.dirty = 0;
        Ok(())
    }
}

/// Regions of one size (see the module docs).
// 128-byte aligned: its `Arc` counts get cache lines of their own (see
// "Instantiating from many threads" in docs/ARCHITECTURE.md).
#[repr(align(128))]
pub struct RegionPool {
    size: usize,
    /// Initial protection of fresh regions: read-write (tables, VMContexts)
    /// or none (linear memories).
    fresh_rw: bool,
    fixed: Option<Fixed>,
    idle: IdleList<Region>,
    /// Whether released regions are reset; VMContext regions are not
    /// (their users overwrite everything they read).
    reset: bool,
    /// Whether new mappings ask for transparent huge pages.
    huge_pages: bool,
}

struct Fixed {
    mmap: Mmap,
    count: usize,
    /// Slots from here on have never been handed out.
    next_unused: AtomicUsize,
}

impl RegionPool {
    /// An on-demand pool of `size`-byte regions keeping up to `max_idle`
    /// released ones.
    pub fn on_demand(size: usize, fresh_rw: bool, max_idle: usize) -> RegionPool {
        let size = round_up_to_page(size).unwrap_or(size);
        RegionPool { size, fresh_rw, fixed: None, idle: IdleList::new(max_idle), reset: true, huge_pages: false }
    }

    /// New mappings ask for transparent huge pages (see
    /// `Mmap::advise_huge_pages`); for linear memories.
    pub fn with_huge_pages(mut self, enable: bool) -> Self {
        self.huge_pages = enable;
        if enable && let Some(f) = &self.fixed {
            f.mmap.advise_huge_pages();
        }
        self
    }

    /// Released regions keep their contents: their next user initializes
    /// everything it reads.
    pub fn without_reset(mut self) -> Self {
        self.reset = false;
        self
    }

    /// A pool of exactly `count` regions of `size` bytes, reserved now.
    ///
    /// # Errors
    ///
    /// The reservation failed (not enough address space).
    pub fn fixed(size: usize, count: usize, fresh_rw: bool) -> io::Result<RegionPool> {
        let size = round_up_to_page(size).ok_or_else(|| io::Error::other("slot size overflows"))?;
        let total = size.checked_mul(count).ok_or_else(|| io::Error::other("pool size overflows"))?;
        let mmap =
            if fresh_rw { Mmap::accessible(total.max(page_size()))? } else { Mmap::reserve(total.max(page_size()))? };
        Ok(RegionPool {
            size,
            fresh_rw,
            fixed: Some(Fixed { mmap, count, next_unused: AtomicUsize::new(0) }),
            idle: IdleList::new(count),
            reset: true,
            huge_pages: false,
        })
    }

    /// Takes a region: a released one if any, else a new one.
    ///
    /// # Errors
    ///
    /// The pool is fixed and all its regions are in use, or the OS refused
    /// a new mapping.
    pub fn acquire(&self) -> Result<Region, io::Error> {
        if let Some(r) = self.idle.pop() {
            return Ok(r);
        }
        let rw = if self.fresh_rw { self.size } else { 0 };
        match &self.fixed {
            Some(f) => {
                let i = f
                    .next_unused
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < f.count).then_some(n + 1))
                    .map_err(|_| {
                        io::Error::other(format!("pooling allocator limit reached: all {} slots are in use", f.count))
                    })?;
                let ptr = NonNull::new(f.mmap.as_ptr().wrapping_add(i * self.size)).expect("non-null mapping");
                Ok(Region { ptr, len: self.size, rw, dirty: 0, image: None, origin: Origin::Slot })
            }
            None => {
                let mmap = if self.fresh_rw { Mmap::accessible(self.size)? } else { Mmap::reserve(self.size)? };
                if self.huge_pages {
                    mmap.advise_huge_pages();
                }
                let ptr = NonNull::new(mmap.as_ptr()).expect("non-null mapping");
                Ok(Region { ptr, len: self.size, rw, dirty: 0, image: None, origin: Origin::Owned { _mmap: mmap } })
            }
        }
    }

    /// Gives a region back: reset and kept for reuse, or unmapped if the
    /// pool keeps enough already (or the reset failed).
    pub fn release(&self, mut region: Region) {
        if region.len != self.size {
            return;
        }
        let ok = if self.reset {
            region.reset().is_ok()
        } else {
            region.dirty = 0;
            true
        };
        if ok {
            // A region the list does not keep drops here; an owned mapping
            // is unmapped. Slots of a fixed pool are always kept.
            let slot = matches!(region.origin, Origin::Slot);
            drop(self.idle.push(region, slot));
        }
    }
}
