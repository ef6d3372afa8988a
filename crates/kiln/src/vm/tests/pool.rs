//! `vm::pool`: a fixed pool hands out each of its slots once and then
//! reports its limit; regions come in whole pages, read-write or
//! inaccessible as asked; `set_accessible` protects exactly a prefix; a
//! released region comes back with its dirty prefix reset (anonymous pages
//! to zero, a copy-on-write image to the image), except from a pool
//! without reset; released regions are kept up to the pool's limit.

use super::{accessible, inaccessible, protection};
use crate::vm::memory_image::MemoryImage;
use crate::vm::mmap::page_size;
use crate::vm::pool::{Region, RegionPool};
use std::sync::Arc;

/// Writes `byte` at `offset` of `region`.
fn poke(region: &Region, offset: usize, byte: u8) {
    assert!(offset < region.len() && accessible(region.ptr() as usize + offset));
    // SAFETY: the offset is inside the region, in its read-write part
    // (checked above), and the test owns the region.
    unsafe { region.ptr().add(offset).write(byte) }
}

/// Reads the byte at `offset` of `region`.
fn peek(region: &Region, offset: usize) -> u8 {
    assert!(offset < region.len() && accessible(region.ptr() as usize + offset));
    // SAFETY: as in `poke`.
    unsafe { region.ptr().add(offset).read() }
}

#[test]
fn a_fixed_pool_hands_out_each_slot_once_then_reports_the_limit() {
    let p = page_size();
    let pool = RegionPool::fixed(3 * p, 3, true).expect("pool");
    let mut regions: Vec<Region> = (0..3).map(|_| pool.acquire().expect("a free slot")).collect();
    regions.sort_by_key(|r| r.ptr() as usize);
    for pair in regions.windows(2) {
        assert_eq!(pair[1].ptr() as usize - pair[0].ptr() as usize, 3 * p, "adjacent slots of one reservation");
    }
    assert!(regions.iter().all(|r| r.len() == 3 * p));
    let err = pool.acquire().expect_err("all slots in use");
    assert!(err.to_string().contains("limit reached: all 3 slots are in use"), "{err}");
    let middle = regions.remove(1);
    let address = middle.ptr();
    pool.release(middle);
    assert_eq!(pool.acquire().expect("the released slot").ptr(), address);
    assert!(pool.acquire().is_err(), "and no other");
}

#[test]
fn sizes_are_whole_pages() {
    let p = page_size();
    assert_eq!(RegionPool::on_demand(1, true, 0).acquire().expect("region").len(), p);
    // (A fixed pool's slots live in its reservation: keep the pool.)
    let fixed = RegionPool::fixed(p + 1, 1, true).expect("pool");
    assert_eq!(fixed.acquire().expect("region").len(), 2 * p);
}

#[test]
fn fresh_regions_are_accessible_only_when_asked() {
    let p = page_size();
    let rw = RegionPool::on_demand(2 * p, true, 0).acquire().expect("region");
    assert!(accessible(rw.ptr() as usize) && accessible(rw.ptr() as usize + 2 * p - 1));
    let none = RegionPool::on_demand(2 * p, false, 0).acquire().expect("region");
    assert!(inaccessible(none.ptr() as usize) && inaccessible(none.ptr() as usize + 2 * p - 1));
    let fixed = RegionPool::fixed(2 * p, 1, false).expect("pool");
    let slot = fixed.acquire().expect("region");
    assert!(inaccessible(slot.ptr() as usize));
}

#[test]
fn set_accessible_protects_exactly_a_prefix_of_whole_pages() {
    let p = page_size();
    let mut r = RegionPool::on_demand(4 * p, false, 0).acquire().expect("region");
    let base = r.ptr() as usize;
    let at = |offset: usize| base + offset;
    r.set_accessible(1).expect("protect");
    assert!(accessible(at(p - 1)) && inaccessible(at(p)), "one byte makes one page");
    r.set_accessible(3 * p).expect("protect");
    assert!(accessible(at(3 * p - 1)) && inaccessible(at(3 * p)));
    r.set_accessible(p).expect("protect");
    assert!(accessible(at(p - 1)) && inaccessible(at(p)), "shrinking takes access away");
    r.set_accessible(usize::MAX / 2).expect("clamped to the region");
    assert!(accessible(at(4 * p - 1)));
    assert!(r.set_accessible(usize::MAX).is_err(), "a size that overflows when rounded");
    assert_eq!(r.dirty_len(), 4 * p, "whatever was accessible may hold data");
}

#[test]
fn a_released_region_comes_back_zeroed() {
    let p = page_size();
    let pool = RegionPool::on_demand(2 * p, true, 1);
    let mut r = pool.acquire().expect("region");
    assert_eq!(r.dirty_len(), 0, "a fresh region holds nothing");
    poke(&r, 0, 1);
    poke(&r, 2 * p - 1, 2);
    r.mark_dirty(2 * p);
    let address = r.ptr();
    pool.release(r);
    let r = pool.acquire().expect("region");
    assert_eq!(r.ptr(), address, "the released region is reused");
    assert_eq!((peek(&r, 0), peek(&r, 2 * p - 1)), (0, 0));
    assert_eq!(r.dirty_len(), 0);
}

#[test]
fn only_the_dirty_prefix_is_reset() {
    let p = page_size();
    let pool = RegionPool::on_demand(2 * p, true, 1);
    let mut r = pool.acquire().expect("region");
    poke(&r, 0, 1);
    poke(&r, p, 2);
    r.mark_dirty(1);
    pool.release(r);
    let mut r = pool.acquire().expect("region");
    assert_eq!(
        (peek(&r, 0), peek(&r, p)),
        (0, 2),
        "the first page (the dirty byte, rounded up) was reset, not the second"
    );
    poke(&r, 0, 3);
    r.mark_dirty(p);
    r.forget_writes();
    pool.release(r);
    let r = pool.acquire().expect("region");
    assert_eq!(peek(&r, 0), 3, "a region whose writes were forgotten is not reset");
}

#[test]
fn mark_dirty_stays_inside_the_region() {
    let p = page_size();
    let mut r = RegionPool::on_demand(p, true, 0).acquire().expect("region");
    r.mark_dirty(usize::MAX);
    assert_eq!(r.dirty_len(), p);
    r.mark_dirty(1);
    assert_eq!(r.dirty_len(), p, "marks only grow");
}

#[test]
fn a_pool_without_reset_keeps_contents() {
    let p = page_size();
    let pool = RegionPool::on_demand(p, true, 1).without_reset();
    let mut r = pool.acquire().expect("region");
    poke(&r, 10, 9);
    r.mark_dirty(p);
    pool.release(r);
    let r = pool.acquire().expect("region");
    assert_eq!((peek(&r, 10), r.dirty_len()), (9, 0));
}

#[test]
fn released_regions_are_kept_up_to_the_limit() {
    let p = page_size();
    let pool = RegionPool::on_demand(p, true, 2);
    let regions: Vec<Region> = (0..3).map(|_| pool.acquire().expect("region")).collect();
    let kept: Vec<*mut u8> = regions[..2].iter().map(|r| r.ptr()).collect();
    for r in regions {
        pool.release(r);
    }
    let mut again: Vec<*mut u8> = (0..2).map(|_| pool.acquire().expect("region").ptr()).collect();
    again.reverse();
    assert_eq!(again, kept, "the first two released come back, last in first out");
}

#[test]
fn a_region_of_another_size_is_not_kept() {
    let p = page_size();
    let small = RegionPool::on_demand(p, true, 4);
    let foreign = RegionPool::on_demand(2 * p, true, 0).acquire().expect("region");
    small.release(foreign);
    assert_eq!(small.acquire().expect("region").len(), p);
}

/// The copy-on-write image of a module whose memory 0 starts with "hello".
fn image() -> Arc<MemoryImage> {
    let wasm = wat::parse_str(r#"(module (memory 1) (data (i32.const 0) "hello"))"#).expect("wat");
    let translation = kiln_environ::translate_module(&wasm, Default::default()).expect("valid");
    Arc::new(
        MemoryImage::build(&translation.info, kiln_environ::MemoryIndex::from_u32(0))
            .expect("memfd")
            .expect("an image"),
    )
}

#[test]
fn an_image_is_mapped_and_a_reset_brings_it_back() {
    let p = page_size();
    let image = image();
    let pool = RegionPool::on_demand(4 * p, false, 1);
    let mut r = pool.acquire().expect("region");
    assert!(r.set_image(Some(&image)).is_err(), "the image must lie in the accessible part");
    r.set_accessible(2 * p).expect("protect");
    r.set_image(Some(&image)).expect("map the image");
    let read = |r: &Region| (0..5).map(|i| peek(r, i)).collect::<Vec<u8>>();
    assert_eq!(read(&r), b"hello");
    for (i, b) in b"HELLO".iter().enumerate() {
        poke(&r, i, *b);
    }
    assert_eq!(read(&r), b"HELLO");
    assert!(protection(r.ptr() as usize).is_some_and(|p| p.ends_with('p')), "a private mapping: writes stay here");
    pool.release(r);
    let mut r = pool.acquire().expect("region");
    assert_eq!(read(&r), b"hello", "the reset brings the image back");
    assert_eq!(r.dirty_len(), 0);
    r.set_image(None).expect("unmap the image");
    assert_eq!(read(&r), [0; 5], "without the image: zeros");
    assert!(accessible(r.ptr() as usize), "and still accessible");
}
