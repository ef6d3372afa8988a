//! Tables: growable arrays of pointer-sized references.
//!
//! A table's elements live in a region that reads as zero when fresh or
//! reset, and an element that is still 0 in memory has never been written:
//! nothing is stored for it, so untouched elements cost no resident memory
//! however large the table is.
//!
//! - Funcref tables hold *tagged* `VMFuncRef` pointers: bit 0
//!   (`FUNCREF_INIT_BIT`) is set on every written element (so a stored null
//!   is `1`). An element of `0` reads as the table's *initial value*
//!   (compiled code calls the `table_get_lazy` builtin when it meets one,
//!   which stores the value; the runtime goes through [`Table::get`]): for
//!   a lazily initialized table, the function the owning module's
//!   precomputed `LazyTable` gives that position; otherwise, or past the
//!   lazy initializers, the table's default (null, the value of its init
//!   expression, or the host's `Table::new` value). Creating a table,
//!   setting its default and growing it with that default write nothing.
//! - Externref tables hold raw externref pointers, and 0 is null. Compiled
//!   code reads them as they are, so an externref table whose initial value
//!   is not null (only the host can make one) stores it in every element.

use super::allocator::Allocator;
use super::instance::FuncRefMaker;
use super::pool::{Region, RegionPool};
use super::vmcontext::VMTableDefinition;
use kiln_environ::{FUNCREF_INIT_BIT, TableIndex, TableType};
use std::ptr::NonNull;
use std::sync::Arc;

/// Where a lazily initialized table's elements come from.
pub struct LazyInit {
    /// Makes the function references of the owning instance.
    pub maker: FuncRefMaker,
    /// This table's index in the instance's module, whose lazy-table
    /// entry gives each element's initial function.
    pub table: TableIndex,
}

impl LazyInit {
    /// The initial value of element `i`, if the lazy initializers give it one.
    fn element(&self, i: usize) -> Option<usize> {
        self.maker.initial_element(self.table, i).map(|f| self.maker.func_ref(f) as usize)
    }

    /// Number of elements the lazy initializers cover (never more than
    /// the table's declared minimum).
    fn len(&self) -> usize {
        self.maker.initial_len(self.table)
    }
}

/// A table. Its elements live in a region from the instance allocator,
/// sized for the table's maximum, so growing never moves them.
///
/// Invariant: the elements at and past `len` are 0 (the region reads as
/// zero when fresh or reset, and nothing writes past `len`), so growing
/// makes them untouched elements.
pub struct Table {
    region: Option<Region>,
    pool: Option<Arc<RegionPool>>,
    base: *mut usize,
    len: usize,
    ty: TableType,
    max: usize,
    lazy: Option<LazyInit>,
    /// What an untouched funcref element reads as (untagged; 0 for null)
    /// where `lazy` gives it no value. Always 0 for externref tables.
    default: usize,
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
// SAFETY: `&Table` only reads; writes need `&mut Table`, which the owning
// store hands out under its own exclusive borrow.
unsafe impl Sync for Table {}

/// Most elements any table may have (keeps sizes well inside `usize`).
pub const MAX_TABLE_ELEMENTS: u64 = 10_000_000;

impl Table {
    /// Creates a host table of type `ty` whose elements all read as `init`
    /// (a reference the caller has checked belongs to the same store).
    ///
    /// # Errors
    ///
    /// As [`Table::new`].
    pub(super) fn new_host(ty: TableType, init: usize, allocator: &Allocator) -> Result<Table, String> {
        Table::new(ty, init, None, allocator, None)
    }

    /// Creates a table of type `ty` whose elements all read as `init` (an
    /// untagged reference, 0 for null), or, with `lazy`, as its lazy
    /// initializers give them. Nothing is written unless `ty` is an
    /// externref table and `init` is not null (see the module docs).
    ///
    /// # Errors
    ///
    /// The minimum size exceeds the implementation limit, or the allocator
    /// has no region for it.
    pub(super) fn new(
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
        let (region, pool) = allocator.table(min, declared).map_err(|e| e.to_string())?;
        let max = declared.min(region.len() / 8).min(allocator.max_table_elements());
        let (def, own) = match def {
            Some(d) => (d, None),
            None => {
                let mut b = Box::new(VMTableDefinition { base: std::ptr::null_mut(), current_elements: 0 });
                (NonNull::from(&mut *b), Some(b))
            }
        };
        // A fresh or reset region reads as zeros: every element untouched.
        let base = region.ptr().cast::<usize>();
        let mut t = Table {
            region: Some(region),
            pool: Some(pool),
            base,
            len: min,
            ty,
            max,
            lazy,
            default: 0,
            def,
            _own_def: own,
            reset_on_drop: true,
        };
        t.set_initial_value(init);
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

    /// Records that elements before `end` may have been written, so that
    /// releasing the region resets them.
    fn note_written(&mut self, end: usize) {
        if let Some(r) = &mut self.region {
            r.mark_dirty(end.saturating_mul(8));
        }
    }

    fn is_func(&self) -> bool {
        self.ty.element.is_func()
    }

    /// The stored form of reference `v`.
    fn encode(&self, v: usize) -> usize {
        if self.is_func() { v | FUNCREF_INIT_BIT } else { v }
    }

    fn publish(&mut self) {
        // SAFETY: `def` is valid for writes for this table's lifetime (type
        // invariant); the `&mut self` borrow excludes concurrent compiled code.
        unsafe {
            self.def.as_ptr().write(VMTableDefinition { base: self.base, current_elements: self.len as u64 });
        }
    }

    /// Makes every element of a table that was never written read as `v`
    /// (untagged, 0 for null): the table's initial value, from the host or
    /// the table's init expression. A funcref table only records it as its
    /// default; an externref table stores a non-null `v` in every element.
    pub(super) fn set_initial_value(&mut self, v: usize) {
        if self.is_func() {
            self.default = v;
        } else if v != 0 {
            let len = self.len;
            self.elements_mut().fill(v);
            self.note_written(len);
        }
    }

    /// What element `i` reads as while it is 0 in memory (untagged).
    fn untouched(&self, i: usize) -> usize {
        self.lazy.as_ref().and_then(|l| l.element(i)).unwrap_or(self.default)
    }

    /// The reference in element `i` (in bounds), without storing a computed
    /// initial value.
    fn value(&self, i: usize) -> usize {
        let raw = self.elements()[i];
        if !self.is_func() {
            raw
        } else if raw != 0 {
            raw & !FUNCREF_INIT_BIT
        } else {
            self.untouched(i)
        }
    }

    /// Stores reference `v` in element `i` (in bounds).
    fn store(&mut self, i: usize, v: usize) {
        self.elements_mut()[i] = self.encode(v);
        self.note_written(i + 1);
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

    /// The reference in element `i` (0 for null); `None` if out of bounds.
    /// An untouched funcref element gets its initial value stored, so that
    /// compiled code finds it without calling the builtin again.
    pub fn get(&mut self, i: u64) -> Option<usize> {
        let i = usize::try_from(i).ok().filter(|i| *i < self.len)?;
        let raw = self.elements()[i];
        if !self.is_func() || raw != 0 {
            return Some(self.value(i));
        }
        let v = self.untouched(i);
        self.store(i, v);
        Some(v)
    }

    /// Sets element `i` to reference `v` (0 for null); `false` if out of bounds.
    pub(super) fn set(&mut self, i: u64, v: usize) -> bool {
        match usize::try_from(i).ok().filter(|i| *i < self.len) {
            Some(i) => {
                self.store(i, v);
                true
            }
            None => false,
        }
    }

    /// The stored elements of a table of references other than functions
    /// (externref, exnref, anyref: for the store's collections; they are
    /// the values, 0 being null); empty for function tables.
    pub fn reference_elements(&self) -> &[usize] {
        if self.is_func() { &[] } else { self.elements() }
    }

    /// As [`Table::reference_elements`], mutably (for the GC heap's
    /// collector, which updates the references it moves).
    pub(in crate::vm) fn reference_elements_mut(&mut self) -> &mut [usize] {
        if self.is_func() { &mut [] } else { self.elements_mut() }
    }

    /// Grows by `delta` elements set to `init`; returns the old size, or
    /// `None` if the table cannot grow that far. New elements are untouched
    /// (nothing is written) when `init` is what they read as untouched.
    pub(super) fn grow(&mut self, delta: u64, init: usize) -> Option<u64> {
        let old = self.len;
        let new = (old as u64).checked_add(delta).filter(|n| *n <= self.max as u64)? as usize;
        // Past the lazy initializers (which stay within the minimum size),
        // untouched elements read as the default (null for externrefs).
        let untouched = init == self.default && self.lazy.as_ref().is_none_or(|l| l.len() <= old);
        self.len = new;
        if !untouched {
            let fill = self.encode(init);
            self.elements_mut()[old..].fill(fill);
            self.note_written(new);
        }
        self.publish();
        Some(old as u64)
    }

    /// `table.fill`: false if the range is out of bounds.
    pub(super) fn fill(&mut self, dst: u64, val: usize, len: u64) -> bool {
        let end = match dst.checked_add(len) {
            Some(e) if e <= self.size() => e as usize,
            _ => return false,
        };
        let enc = self.encode(val);
        self.elements_mut()[dst as usize..end].fill(enc);
        self.note_written(end);
        true
    }

    /// `table.copy` within this table: false if a range is out of bounds.
    pub fn copy_within(&mut self, dst: u64, src: u64, len: u64) -> bool {
        let size = self.size();
        if src.checked_add(len).is_none_or(|e| e > size) || dst.checked_add(len).is_none_or(|e| e > size) {
            return false;
        }
        let (dst, src, len) = (dst as usize, src as usize, len as usize);
        if self.lazy.is_none() {
            // An untouched element reads the same anywhere in the table.
            self.elements_mut().copy_within(src..src + len, dst);
            self.note_written(dst + len);
            return true;
        }
        // An untouched element's value depends on its position: copy values,
        // in the direction that reads each source before it is overwritten.
        if dst <= src {
            for k in 0..len {
                let v = self.value(src + k);
                self.store(dst + k, v);
            }
        } else {
            for k in (0..len).rev() {
                let v = self.value(src + k);
                self.store(dst + k, v);
            }
        }
        true
    }

    /// Reads the references in `[start, start + out.len())` into `out`
    /// without storing computed initial values; false if out of bounds.
    pub fn read_into(&self, start: u64, out: &mut [usize]) -> bool {
        if start.checked_add(out.len() as u64).is_none_or(|e| e > self.size()) {
            return false;
        }
        for (k, slot) in out.iter_mut().enumerate() {
            *slot = self.value(start as usize + k);
        }
        true
    }
}

impl Table {
    /// When dropped, releases this table's region without resetting the
    /// elements compiled code may have written (`table.set` stores
    /// directly): right when no wasm ran (see
    /// `Instance::forget_unwritten_contents`). Every write made through
    /// this type (segments, lazily computed elements, builtins, the host,
    /// an externref table's initial value) is recorded in the region and
    /// still reset; a table never written goes back without a reset.
    pub(crate) fn forget_writes(&mut self) {
        self.reset_on_drop = false;
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

/// Tables with init expressions (the function-references proposal, which
/// Kiln's configuration does not offer yet: only the crate can turn it on)
/// and what the representation leaves in memory.
#[cfg(test)]
mod tests {
    use crate::*;

    /// An engine that accepts table init expressions.
    fn engine() -> Engine {
        let mut config = Config::new();
        config.features |= wasmparser::WasmFeatures::FUNCTION_REFERENCES;
        Engine::new(&config).expect("engine")
    }

    /// The raw elements of `t` (as stored, in use or not).
    fn raw(store: &Store<()>, t: Table) -> Vec<usize> {
        store.inner.opaque.vm().table(t.0.index).elements().to_vec()
    }

    #[test]
    fn funcref_init_expression_is_a_default_not_a_fill() -> Result<()> {
        let engine = engine();
        let module = Module::new(
            &engine,
            r#"(module
                (type $r (func (result i32)))
                (func $f (result i32) i32.const 7)
                (func $g (result i32) i32.const 9)
                (table $t (export "t") 100000 funcref (ref.func $f))
                (elem (table $t) (i32.const 5) func $g)
                (elem $p func $g $g)
                (func (export "call") (param i32) (result i32) (call_indirect $t (type $r) (local.get 0)))
                (func (export "is_null") (param i32) (result i32) (ref.is_null (table.get $t (local.get 0))))
                (func (export "copy") (param i32 i32 i32) (table.copy $t $t (local.get 0) (local.get 1) (local.get 2)))
                (func (export "fill_null") (param i32 i32) (table.fill $t (local.get 0) (ref.null func) (local.get 1)))
                (func (export "init") (param i32) (table.init $t $p (local.get 0) (i32.const 0) (i32.const 2)))
                (func (export "grow_null") (param i32) (result i32) (table.grow $t (ref.null func) (local.get 0)))
                (func (export "grow_f") (param i32) (result i32) (table.grow $t (ref.func $f) (local.get 0)))
                (func (export "grow_g") (param i32) (result i32) (table.grow $t (ref.func $g) (local.get 0))))"#,
        )?;
        let mut store = Store::new(&engine, ());
        let i = Instance::new(&mut store, &module, &[])?;
        let t = i.get_table(&mut store, "t").expect("table");
        // Only the segment's element was written.
        let stored = raw(&store, t);
        assert_eq!(stored.len(), 100_000);
        assert!(stored.iter().enumerate().all(|(k, e)| (*e == 0) == (k != 5)));

        let call = i.get_typed_func::<i32, i32>(&mut store, "call")?;
        let is_null = i.get_typed_func::<i32, i32>(&mut store, "is_null")?;
        assert_eq!(call.call(&mut store, 0)?, 7);
        assert_eq!(call.call(&mut store, 5)?, 9);
        assert_eq!(call.call(&mut store, 99_999)?, 7);
        assert_eq!(is_null.call(&mut store, 50_000)?, 0);
        assert!(call.call(&mut store, 100_000).is_err());

        // Bulk operations over untouched elements.
        i.get_typed_func::<(i32, i32, i32), ()>(&mut store, "copy")?.call(&mut store, (10, 4, 3))?;
        i.get_typed_func::<(i32, i32), ()>(&mut store, "fill_null")?.call(&mut store, (20, 2))?;
        i.get_typed_func::<i32, ()>(&mut store, "init")?.call(&mut store, 30)?;
        for (k, want) in
            [(10, Some(7)), (11, Some(9)), (12, Some(7)), (13, Some(7)), (20, None), (21, None), (22, Some(7))]
        {
            match want {
                Some(v) => assert_eq!(call.call(&mut store, k)?, v, "element {k}"),
                None => assert_eq!(is_null.call(&mut store, k)?, 1, "element {k}"),
            }
        }
        assert_eq!((call.call(&mut store, 30)?, call.call(&mut store, 31)?, call.call(&mut store, 32)?), (9, 9, 7));

        // Growing with the default writes nothing; with anything else, it does.
        let grow = |store: &mut Store<()>, name: &str, n: i32| {
            i.get_typed_func::<i32, i32>(&mut *store, name)?.call(&mut *store, n)
        };
        assert_eq!(grow(&mut store, "grow_f", 10)?, 100_000);
        assert!(raw(&store, t)[100_000..].iter().all(|e| *e == 0));
        assert_eq!(grow(&mut store, "grow_null", 10)?, 100_010);
        assert_eq!(grow(&mut store, "grow_g", 10)?, 100_020);
        assert!(raw(&store, t)[100_010..].iter().all(|e| *e != 0));
        assert_eq!(grow(&mut store, "grow_f", 10)?, 100_030);
        for (k, want) in [(100_005, Some(7)), (100_015, None), (100_025, Some(9)), (100_035, Some(7))] {
            match want {
                Some(v) => assert_eq!(call.call(&mut store, k)?, v, "element {k}"),
                None => assert_eq!(is_null.call(&mut store, k)?, 1, "element {k}"),
            }
        }

        // The host sees the same values.
        let f = match t.get(&mut store, 1234) {
            Some(Val::FuncRef(Some(f))) => f,
            other => panic!("{other:?}"),
        };
        assert_eq!(f.typed::<(), i32>(&store)?.call(&mut store, ())?, 7);
        assert!(matches!(t.get(&mut store, 100_015), Some(Val::FuncRef(None))));
        t.set(&mut store, 1234, Val::FuncRef(None))?;
        assert_eq!(is_null.call(&mut store, 1234)?, 1);
        assert_eq!(call.call(&mut store, 1235)?, 7);
        Ok(())
    }

    #[test]
    fn externref_init_expression_from_a_global() -> Result<()> {
        let engine = engine();
        let mut store = Store::new(&engine, ());
        let tracker = std::sync::Arc::new(());
        let value = Val::ExternRef(Some(ExternRef::new(tracker.clone())));
        let g = Global::new(&mut store, GlobalType::new(ValType::ExternRef, Mutability::Const), value)?;
        let module = Module::new(
            &engine,
            r#"(module
                (import "host" "g" (global $g externref))
                (table $t (export "t") 1000 externref (global.get $g))
                (table $n (export "n") 1000 externref (ref.null extern))
                (func (export "is_null") (param i32) (result i32) (ref.is_null (table.get $t (local.get 0))))
                (func (export "grow_null") (param i32) (result i32) (table.grow $t (ref.null extern) (local.get 0))))"#,
        )?;
        let i = Instance::new(&mut store, &module, &[g.into()])?;
        let t = i.get_table(&mut store, "t").expect("table");
        let n = i.get_table(&mut store, "n").expect("table");
        // A non-null externref is stored in every element; null in none.
        assert!(raw(&store, t).iter().all(|e| *e != 0));
        assert!(raw(&store, n).iter().all(|e| *e == 0));
        store.gc();
        let is_null = i.get_typed_func::<i32, i32>(&mut store, "is_null")?;
        assert_eq!(is_null.call(&mut store, 999)?, 0);
        match t.get(&mut store, 0) {
            Some(Val::ExternRef(Some(r))) => assert!(r.data().downcast_ref::<std::sync::Arc<()>>().is_some()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(n.get(&mut store, 0), Some(Val::ExternRef(None))));
        let grow_null = i.get_typed_func::<i32, i32>(&mut store, "grow_null")?;
        assert_eq!(grow_null.call(&mut store, 3)?, 1000);
        assert_eq!(is_null.call(&mut store, 1001)?, 1);
        assert!(raw(&store, t)[1000..].iter().all(|e| *e == 0));
        Ok(())
    }

    /// The region records exactly what the runtime wrote (what a release
    /// must reset): nothing for creating a table or growing it with its
    /// default, the prefix up to each written element otherwise.
    #[test]
    fn only_written_elements_need_a_reset() -> Result<()> {
        let engine = Engine::default();
        let mut store = Store::new(&engine, ());
        let f = Func::wrap(&mut store, || 1i32);
        let t = Table::new(&mut store, TableType::new(ValType::FuncRef, 10_000, None), Val::FuncRef(Some(f)))?;
        let vm = store.inner.opaque.vm_mut().table_mut(t.0.index);
        assert_eq!(vm.region.as_ref().map(|r| r.dirty_len()), Some(0));
        assert_eq!(vm.grow(100, vm.default), Some(10_000));
        assert_eq!(vm.region.as_ref().map(|r| r.dirty_len()), Some(0));
        vm.get(300);
        assert_eq!(vm.region.as_ref().map(|r| r.dirty_len()), Some(301 * 8));
        assert_eq!(vm.grow(10, 0), Some(10_100));
        assert_eq!(vm.region.as_ref().map(|r| r.dirty_len()), Some(10_110 * 8));
        Ok(())
    }
}
