//! `vm::table`: every access is bounds-checked (overflowing ranges
//! included); growth stops at the declared maximum, the implementation
//! limit or the pooling slot; stored funcrefs are tagged and an untouched
//! element reads as the table's initial value without being written
//! (unless `get` caches it); a lazily initialized table computes its
//! elements on first use while an eager one is filled at instantiation;
//! pooling slots run out and come back reset.

use crate::vm::allocator::{Allocator, PoolingLimits};
use crate::vm::table::{MAX_TABLE_ELEMENTS, Table};
use kiln_environ::{FUNCREF_INIT_BIT, TableType, Tunables, WasmRefType};

fn funcref(minimum: u64, maximum: Option<u64>) -> TableType {
    TableType { element: WasmRefType::FUNCREF, minimum, maximum, table64: false }
}

fn externref(minimum: u64, maximum: Option<u64>) -> TableType {
    TableType { element: WasmRefType::EXTERNREF, minimum, maximum, table64: false }
}

fn on_demand() -> Allocator {
    Allocator::on_demand(&Tunables::default(), 1 << 20)
}

/// The elements as stored (what compiled code reads), and the size
/// published to it.
fn raw(t: &Table) -> (Vec<usize>, u64) {
    // SAFETY: the table owns its definition (created without one) and its
    // region, whose first `current_elements` elements are in use; the test
    // holds the table, so nothing writes them meanwhile.
    unsafe {
        let def = t.definition().as_ptr();
        let len = (*def).current_elements;
        (std::slice::from_raw_parts((*def).base, len as usize).to_vec(), len)
    }
}

// Stand-ins for reference values: the table stores them, never follows them.
const F: usize = 0x1230;
const G: usize = 0x4560;

#[test]
fn accesses_are_bounds_checked() {
    let mut t = Table::new(funcref(10, Some(20)), 0, None, &on_demand(), None).expect("table");
    assert_eq!(t.size(), 10);
    let mut last = [1];
    assert!(t.read_into(9, &mut last) && last == [0]);
    assert_eq!((t.get(10), t.get(u64::MAX)), (None, None));
    assert!(!t.set(10, F) && !t.set(u64::MAX, F));
    assert!(!t.fill(8, F, 3) && !t.fill(u64::MAX, F, 2) && !t.fill(1, F, u64::MAX));
    assert!(!t.copy_within(0, 9, 2) && !t.copy_within(9, 0, 2) && !t.copy_within(u64::MAX, 0, 1));
    assert!(!t.read_into(9, &mut [0; 2]) && !t.read_into(u64::MAX, &mut [0; 1]));
    assert!(raw(&t).0.iter().all(|e| *e == 0), "refused accesses write nothing");
    assert!(t.fill(8, F, 2) && t.copy_within(0, 8, 2) && t.read_into(8, &mut [0; 2]));
    assert!(t.fill(10, F, 0) && t.read_into(10, &mut []), "empty ranges at the end are in bounds");
}

#[test]
fn funcrefs_are_stored_tagged() {
    let mut t = Table::new(funcref(4, None), 0, None, &on_demand(), None).expect("table");
    assert!(t.set(1, F) && t.set(2, 0));
    assert_eq!(&raw(&t).0[..3], &[0, F | FUNCREF_INIT_BIT, FUNCREF_INIT_BIT], "a stored null is 1, untouched is 0");
    assert_eq!((t.get(1), t.get(2)), (Some(F), Some(0)));
}

#[test]
fn untouched_elements_read_as_the_initial_value_without_being_written() {
    let mut t = Table::new(funcref(10, None), F, None, &on_demand(), None).expect("table");
    assert!(raw(&t).0.iter().all(|e| *e == 0), "creating writes nothing");
    let mut out = [0; 10];
    assert!(t.read_into(0, &mut out));
    assert_eq!(out, [F; 10]);
    assert!(raw(&t).0.iter().all(|e| *e == 0), "reading writes nothing");
    assert_eq!(t.get(5), Some(F));
    assert_eq!(raw(&t).0[5], F | FUNCREF_INIT_BIT, "`get` caches the value for compiled code");
    assert!(t.copy_within(0, 5, 1));
    assert_eq!(t.get(0), Some(F));
}

#[test]
fn growth_stops_at_the_maximum_and_only_writes_what_is_not_the_default() {
    let mut t = Table::new(funcref(10, Some(30)), F, None, &on_demand(), None).expect("table");
    assert_eq!(t.grow(10, F), Some(10));
    assert_eq!(raw(&t), (vec![0; 20], 20), "growing with the default writes nothing, and publishes the size");
    assert_eq!(t.grow(5, G), Some(20));
    assert!(raw(&t).0[20..].iter().all(|e| *e == G | FUNCREF_INIT_BIT));
    assert_eq!((t.grow(6, F), t.grow(u64::MAX, F)), (None, None));
    assert_eq!(t.grow(5, F), Some(25));
    assert_eq!((t.size(), t.grow(1, F), t.grow(0, F)), (30, None, Some(30)));
    assert_eq!(t.ty().minimum, 30);
}

#[test]
fn the_implementation_limit_bounds_every_table() {
    let err = Table::new(funcref(MAX_TABLE_ELEMENTS + 1, None), 0, None, &on_demand(), None).expect_err("too large");
    assert!(err.contains("exceeds the limit"), "{err}");
    let mut t = Table::new(funcref(0, None), 0, None, &on_demand(), None).expect("table");
    assert_eq!(t.grow(MAX_TABLE_ELEMENTS + 1, 0), None);
}

#[test]
fn externref_tables_store_a_non_null_initial_value_everywhere() {
    let t = Table::new(externref(6, None), G, None, &on_demand(), None).expect("table");
    assert_eq!(raw(&t).0, vec![G; 6], "compiled code reads externrefs as they are stored");
    assert_eq!(t.reference_elements(), &[G; 6]);
    let mut t = Table::new(externref(6, None), 0, None, &on_demand(), None).expect("table");
    assert_eq!(raw(&t).0, vec![0; 6]);
    assert_eq!(t.grow(2, G), Some(6));
    assert_eq!(&raw(&t).0[6..], &[G, G]);
    let funcs = Table::new(funcref(2, None), F, None, &on_demand(), None).expect("table");
    assert!(funcs.reference_elements().is_empty());
}

#[test]
fn pooling_slots_bound_tables_run_out_and_come_back_reset() {
    let limits = PoolingLimits {
        total_tables: 1,
        total_memories: 1,
        total_core_instances: 1,
        table_elements: 16,
        ..PoolingLimits::default()
    };
    let allocator = Allocator::pooling(&Tunables::default(), limits, 1 << 20).expect("pool");
    let err = Table::new(funcref(17, None), 0, None, &allocator, None).expect_err("larger than a slot");
    assert!(err.contains("exceeds the pooling limit of 16"), "{err}");
    let mut t = Table::new(funcref(4, None), 0, None, &allocator, None).expect("table");
    assert_eq!(t.grow(12, 0), Some(4), "up to the limit of 16 elements");
    assert_eq!(t.grow(1, 0), None, "and no further, though the slot (a page) has room for more");
    assert!(t.fill(0, F, 16));
    let err = Table::new(funcref(1, None), 0, None, &allocator, None).expect_err("the only slot is taken");
    assert!(err.contains("limit reached"), "{err}");
    // SAFETY: the definition is the table's own, alive until the drop below.
    let slot = unsafe { (*t.definition().as_ptr()).base };
    drop(t);
    let t = Table::new(funcref(16, None), 0, None, &allocator, None).expect("the released slot");
    // SAFETY: as above, for the new table.
    assert_eq!(unsafe { (*t.definition().as_ptr()).base }, slot, "the slot is reused");
    assert_eq!(raw(&t).0, vec![0; 16], "and was reset");
}

/// Lazy elements, through a real instance (their initial values come from
/// its module's segments).
mod lazy {
    use super::raw;
    use crate::*;
    use kiln_environ::FUNCREF_INIT_BIT;

    const WAT: &str = r#"(module
        (table (export "t") 10 funcref)
        (func $f (result i32) i32.const 1)
        (func $g (result i32) i32.const 2)
        (elem (i32.const 2) $f $g))"#;

    /// The instance's table `t`, in a store of an engine with lazy tables
    /// on or off.
    fn table(lazy: bool) -> Result<(Store<()>, crate::vm::store_ids::TableId)> {
        let mut config = Config::new();
        config.table_lazy_init(lazy);
        let engine = Engine::new(&config)?;
        let module = Module::new(&engine, WAT)?;
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[])?;
        let t = instance.get_table(&mut store, "t").expect("exported table");
        Ok((store, t.0.index))
    }

    #[test]
    fn a_lazy_table_computes_its_elements_on_first_use() -> Result<()> {
        let (mut store, index) = table(true)?;
        let t = store.inner.opaque.vm_mut().table_mut(index);
        assert!(raw(t).0.iter().all(|e| *e == 0), "instantiation wrote nothing");
        let mut values = [0; 10];
        assert!(t.read_into(0, &mut values));
        let nonzero: Vec<usize> = (0..10).filter(|i| values[*i] != 0).collect();
        assert_eq!(nonzero, [2, 3], "the segment's elements read as its functions");
        assert!(raw(t).0.iter().all(|e| *e == 0), "reading them stored nothing");
        assert_eq!(t.get(3), Some(values[3]));
        assert_eq!(raw(t).0[3], values[3] | FUNCREF_INIT_BIT, "`get` stored the computed element");
        assert_eq!(raw(t).0[2], 0);
        // An element overwritten before its first use never reads as the segment's.
        assert!(t.set(2, 0));
        assert_eq!(t.get(2), Some(0));
        Ok(())
    }

    #[test]
    fn an_eager_table_is_filled_at_instantiation() -> Result<()> {
        let (mut store, index) = table(false)?;
        let t = store.inner.opaque.vm_mut().table_mut(index);
        let stored: Vec<usize> = (0..10).filter(|i| raw(t).0[*i] != 0).collect();
        assert_eq!(stored, [2, 3]);
        Ok(())
    }
}
