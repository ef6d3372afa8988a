//! `vm::memory`: a linear memory starts at its minimum, zeroed, grows to
//! its declared maximum or its reservation and no further, has exactly its
//! current size accessible with the rest of its reservation and the guard
//! region behind it inaccessible, publishes its base and length to compiled
//! code, bounds-checks host copies, and takes and gives back pooling slots.

use super::{accessible, inaccessible};
use crate::vm::allocator::{Allocator, PoolingLimits};
use crate::vm::memory::{Memory, MemoryError, MemoryReservation, MemoryReservations};
use kiln_environ::{MemoryType, Tunables};

const PAGE: usize = 65536;

fn ty(minimum: u64, maximum: Option<u64>) -> MemoryType {
    MemoryType { minimum, maximum, memory64: false, shared: false, page_size_log2: 16 }
}

/// A 16-page reservation with a 2-page guard region.
fn small() -> Tunables {
    Tunables {
        memory_reservation: 16 * PAGE as u64,
        memory64_reservation: 8 * PAGE as u64,
        memory_guard_size: 2 * PAGE as u64,
        ..Tunables::default()
    }
}

fn memory(ty: MemoryType) -> Memory {
    Memory::new(ty, &small(), None, None, None).expect("memory")
}

/// The base and length compiled code sees.
fn published(m: &Memory) -> (*mut u8, u64) {
    // SAFETY: the memory owns its definition (created without one) and is
    // alive; nothing else writes it during the read.
    unsafe {
        let def = m.definition().as_ptr();
        ((*def).base, (*def).current_length)
    }
}

#[test]
fn starts_at_its_minimum_zeroed_and_published() {
    let m = memory(ty(2, Some(5)));
    assert_eq!((m.byte_len(), m.pages(), m.ty().minimum), (2 * PAGE, 2, 2));
    assert!(m.data().iter().all(|b| *b == 0));
    assert_eq!(published(&m), (m.base(), 2 * PAGE as u64));
    assert_eq!(m.declared_max_bytes(), Some(5 * PAGE));
}

#[test]
fn grows_to_its_declared_maximum_and_no_further() {
    let mut m = memory(ty(2, Some(5)));
    assert_eq!(m.grow(1).expect("grow"), Some(2));
    assert_eq!(m.grow(0).expect("grow"), Some(3));
    assert_eq!(m.grow(3).expect("grow"), None, "past the maximum");
    assert_eq!(m.byte_len(), 3 * PAGE, "a refused growth changes nothing");
    assert_eq!(m.grow(2).expect("grow"), Some(3));
    assert_eq!(m.grow(1).expect("grow"), None);
    assert_eq!(m.grow(u64::MAX).expect("grow"), None, "an overflowing delta");
    assert_eq!(m.size_after_grow(u64::MAX), None);
    assert_eq!(published(&m), (m.base(), 5 * PAGE as u64));
    let data = m.data_mut();
    assert!(data.iter().all(|b| *b == 0), "new pages read as zero");
    data[5 * PAGE - 1] = 1;
}

#[test]
fn growth_stops_at_the_reservation() {
    let m = memory(ty(2, None));
    assert_eq!(m.grow(15).expect("grow"), None, "17 pages do not fit 16");
    assert_eq!(m.grow(14).expect("grow"), Some(2));
    assert_eq!(m.grow(1).expect("grow"), None);
    assert_eq!(m.byte_len(), 16 * PAGE);
}

#[test]
fn a_minimum_that_cannot_fit_is_too_large() {
    // A reservation grows to hold a larger minimum (the base never moves,
    // so it must hold the minimum), but not past the declared maximum.
    assert_eq!(memory(ty(17, None)).reservation().len, 19 * PAGE);
    let huge = MemoryType { memory64: true, ..ty(u64::MAX, None) };
    assert!(matches!(Memory::new(huge, &small(), None, None, None), Err(MemoryError::TooLarge)));
    let past_max = MemoryType { memory64: true, ..ty(5, Some(4)) };
    assert!(matches!(Memory::new(past_max, &small(), None, None, None), Err(MemoryError::TooLarge)));
}

#[test]
fn only_the_current_size_is_accessible_and_the_guard_follows_the_reservation() {
    let m = memory(ty(2, None));
    let base = m.base() as usize;
    assert_eq!(m.reservation(), MemoryReservation { start: base, len: 18 * PAGE }, "16 pages and a 2-page guard");
    assert!(accessible(base) && accessible(base + 2 * PAGE - 1));
    assert!(inaccessible(base + 2 * PAGE), "past the current size");
    assert!(inaccessible(base + 16 * PAGE) && inaccessible(base + 18 * PAGE - 1), "the guard region");
    m.grow(1).expect("grow");
    assert!(accessible(base + 3 * PAGE - 1) && inaccessible(base + 3 * PAGE));
    assert_eq!(m.reservation().len, 18 * PAGE, "the reservation never changes");
}

#[test]
fn a_64_bit_memory_reserves_its_maximum_without_a_guard() {
    let m = memory(MemoryType { memory64: true, ..ty(1, Some(4)) });
    assert_eq!(m.reservation().len, 4 * PAGE);
    assert_eq!(m.grow(3).expect("grow"), Some(1));
    assert_eq!(m.grow(1).expect("grow"), None);
    // Without a maximum, the configured 64-bit reservation caps it.
    let m = memory(MemoryType { memory64: true, ..ty(1, None) });
    assert_eq!(m.reservation().len, 8 * PAGE);
    assert_eq!(m.grow(7).expect("grow"), Some(1));
    assert_eq!(m.grow(1).expect("grow"), None);
}

#[test]
fn host_copies_are_bounds_checked() {
    let m = memory(ty(1, None));
    assert!(m.copy_in(PAGE - 4, b"abcd"), "ending exactly at the end");
    let mut out = [0u8; 4];
    assert!(m.copy_out(PAGE - 4, &mut out) && &out == b"abcd");
    assert!(!m.copy_in(PAGE - 3, b"abcd"), "one byte past the end");
    assert!(!m.copy_in(usize::MAX, b"a"), "an overflowing offset");
    assert!(!m.copy_out(PAGE, &mut out[..1]));
    assert!(m.copy_out(PAGE, &mut []), "an empty copy at the end");
    assert_eq!(&m.data()[PAGE - 4..], b"abcd", "a refused copy writes nothing");
}

#[test]
fn reservations_contain_exactly_their_ranges() {
    let mut list = MemoryReservations::default();
    list.push(MemoryReservation { start: 0x10_000, len: 0x2_000 });
    list.push(MemoryReservation { start: 0x40_000, len: 0x1_000 });
    for addr in [0x10_000, 0x11_fff, 0x40_000, 0x40_fff] {
        assert!(list.contains(addr), "{addr:#x}");
    }
    for addr in [0, 0xffff, 0x12_000, 0x3f_fff, 0x41_000, usize::MAX] {
        assert!(!list.contains(addr), "{addr:#x}");
    }
}

#[test]
fn the_pooling_allocator_runs_out_of_memory_slots_and_reuses_them() {
    let limits =
        PoolingLimits { total_memories: 2, total_core_instances: 1, total_tables: 1, ..PoolingLimits::default() };
    let allocator = Allocator::pooling(&small(), limits, 1 << 20).expect("pool");
    let new = || Memory::new(ty(1, None), &small(), None, Some(&allocator), None);
    let mut first = new().expect("slot 1");
    let _second = new().expect("slot 2");
    match new() {
        Err(MemoryError::Os(e)) => assert!(e.to_string().contains("limit reached"), "{e}"),
        other => panic!("a third memory in a pool of two: {other:?}"),
    }
    first.data_mut()[100] = 7;
    first.grow(2).expect("grow");
    let base = first.base();
    drop(first);
    let again = new().expect("the released slot");
    assert_eq!(again.base(), base, "the slot is reused");
    assert_eq!(again.byte_len(), PAGE);
    assert!(again.data().iter().all(|b| *b == 0), "and was reset");
    assert!(inaccessible(base as usize + PAGE), "the growth was undone");
}
