//! The GC heap's collector (`-W gc`): garbage is freed and the heap stays
//! within its limit; live objects survive being moved, whether wasm
//! frames, globals, tables, element segments, exception payloads,
//! externrefs or host handles hold them; host handles are released by
//! scope and a stale one is an error.

use kiln::{AnyRef, AsContextMut, Config, Engine, ExternRef, Instance, Module, RootScope, Store, Val, WasmFeature};

fn engine_with(limit: Option<u64>, zeal: Option<u32>) -> Engine {
    let mut config = Config::new();
    config.wasm_feature_set(WasmFeature::Gc, true).wasm_feature_set(WasmFeature::Exceptions, true).gc_zeal(zeal);
    if let Some(limit) = limit {
        config.max_gc_heap_size(limit);
    }
    Engine::new(&config).expect("engine")
}

fn call(instance: &Instance, mut store: impl AsContextMut<Data = ()>, name: &str, args: &[Val]) -> kiln::Result<Val> {
    let f = instance.get_func(&mut store, name).expect("export");
    let mut out = [Val::I32(0)];
    f.call(&mut store, args, &mut out)?;
    Ok(out[0].clone())
}

/// Lists and trees that live in every kind of root while garbage
/// accumulates around them.
const CHURN: &str = r#"
    (module
      (type $node (struct (field $v i32) (field $next (ref null $node))))
      (type $tree (struct (field $l (ref null $tree)) (field $r (ref null $tree))))
      (type $nodes (array (mut (ref null $node))))
      (type $boxed (struct (field $e (mut externref))))
      (tag $carry (param (ref null $node)))
      (global $kept (mut (ref null $node)) (ref.null $node))
      (global $ext (mut externref) (ref.null extern))
      (table $t 4 anyref)
      (elem $seg (ref $node) (struct.new $node (i32.const 1000) (ref.null $node)))

      (func $list (export "list") (param $n i32) (result (ref null $node))
        (local $l (ref null $node))
        (block $done
          (loop $more
            (br_if $done (i32.eqz (local.get $n)))
            (local.set $l (struct.new $node (local.get $n) (local.get $l)))
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br $more)))
        (local.get $l))

      (func $sum (export "sum") (param $n (ref null $node)) (result i32)
        (local $s i32)
        (block $done
          (loop $next
            (br_if $done (ref.is_null (local.get $n)))
            (local.set $s (i32.add (local.get $s) (struct.get $node $v (local.get $n))))
            (local.set $n (struct.get $node $next (local.get $n)))
            (br $next)))
        (local.get $s))

      (func $tree (param $d i32) (result (ref $tree))
        (if (result (ref $tree)) (i32.eqz (local.get $d))
          (then (struct.new $tree (ref.null $tree) (ref.null $tree)))
          (else (struct.new $tree
                  (call $tree (i32.sub (local.get $d) (i32.const 1)))
                  (call $tree (i32.sub (local.get $d) (i32.const 1)))))))

      (func $count (param $t (ref null $tree)) (result i32)
        (if (result i32) (ref.is_null (local.get $t))
          (then (i32.const 0))
          (else (i32.add (i32.const 1)
                  (i32.add (call $count (struct.get $tree $l (local.get $t)))
                           (call $count (struct.get $tree $r (local.get $t))))))))

      ;; Makes `rounds` trees of depth 10 (2,047 nodes) and drops them.
      (func $garbage (export "garbage") (param $rounds i32)
        (block $done
          (loop $more
            (br_if $done (i32.eqz (local.get $rounds)))
            (drop (call $tree (i32.const 10)))
            (local.set $rounds (i32.sub (local.get $rounds) (i32.const 1)))
            (br $more))))

      ;; Lists held by a local, a global, a table, an array, an externref
      ;; global, an exception and a segment, across `rounds` of garbage.
      (func (export "churn") (param $rounds i32) (result i32)
        (local $mine (ref null $node))
        (local $arr (ref $nodes))
        (local $total i32)
        (local.set $mine (call $list (i32.const 100)))
        (global.set $kept (call $list (i32.const 200)))
        (table.set $t (i32.const 1) (call $list (i32.const 300)))
        (local.set $arr (array.new $nodes (ref.null $node) (i32.const 3)))
        (array.set $nodes (local.get $arr) (i32.const 2) (call $list (i32.const 400)))
        (global.set $ext (extern.convert_any (call $list (i32.const 500))))
        (call $garbage (local.get $rounds))
        (local.set $total
          (i32.add (call $sum (local.get $mine))
          (i32.add (call $sum (global.get $kept))
          (i32.add (call $sum (ref.cast (ref null $node) (table.get $t (i32.const 1))))
          (i32.add (call $sum (array.get $nodes (local.get $arr) (i32.const 2)))
                   (call $sum (ref.cast (ref null $node) (any.convert_extern (global.get $ext)))))))))
        (local.set $total (i32.add (local.get $total)
          (block $caught (result (ref null $node))
            (try_table (catch $carry $caught)
              (call $throw_after_garbage (call $list (i32.const 600)) (local.get $rounds)))
            (ref.null $node))
          (call $sum)))
        (i32.add (local.get $total)
          (call $sum (array.get $nodes (array.new_elem $nodes $seg (i32.const 0) (i32.const 1)) (i32.const 0)))))

      (func $throw_after_garbage (param $l (ref null $node)) (param $rounds i32)
        (call $garbage (local.get $rounds))
        (throw $carry (local.get $l)))

      (func (export "tree_size") (param $d i32) (result i32)
        (local $t (ref $tree))
        (local.set $t (call $tree (local.get $d)))
        (call $garbage (i32.const 20))
        (call $count (local.get $t)))

      (func (export "box") (param externref) (result anyref)
        (struct.new $boxed (local.get 0)))
      (func (export "unbox") (param (ref null $boxed)) (result externref)
        (struct.get $boxed $e (local.get 0))))
"#;

/// The sum of 1..=n.
fn tri(n: i32) -> i32 {
    n * (n + 1) / 2
}

fn churn(engine: &Engine, rounds: i32) -> kiln::Result<(i32, kiln::GcHeapStats)> {
    let module = Module::new(engine, CHURN)?;
    let mut store = Store::new(engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let total = call(&i, &mut store, "churn", &[Val::I32(rounds)])?.i32().expect("i32");
    Ok((total, store.gc_heap_stats().expect("a heap")))
}

#[test]
fn every_kind_of_root_survives_collections() -> kiln::Result<()> {
    // 1 MiB holds about 30 trees of 2,047 16-byte nodes: 400 rounds
    // allocate 13 MiB, so the heap collects a dozen times or more.
    let engine = engine_with(Some(1 << 20), None);
    let (total, stats) = churn(&engine, 400)?;
    let want = tri(100) + tri(200) + tri(300) + tri(400) + tri(500) + tri(600) + 1000;
    assert_eq!(total, want);
    assert!(stats.collections >= 10, "{stats:?}");
    assert!(stats.capacity <= 1 << 20, "{stats:?}");
    Ok(())
}

#[test]
fn collecting_at_every_allocation_changes_no_result() -> kiln::Result<()> {
    let engine = engine_with(None, Some(1));
    let (total, stats) = churn(&engine, 3)?;
    let want = tri(100) + tri(200) + tri(300) + tri(400) + tri(500) + tri(600) + 1000;
    assert_eq!(total, want);
    assert!(stats.collections > 10_000, "{stats:?}");
    // Deep recursion: references in many frames at once.
    let module = Module::new(&engine, CHURN)?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    assert_eq!(call(&i, &mut store, "tree_size", &[Val::I32(8)])?.i32(), Some(511));
    Ok(())
}

#[test]
fn the_heap_stays_within_its_limit_while_garbage_is_made() -> kiln::Result<()> {
    let engine = engine_with(Some(2 << 20), None);
    let module = Module::new(&engine, CHURN)?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    // 2,000 trees of 32 KiB: 64 MiB of garbage through a 2 MiB heap.
    let f = i.get_typed_func::<i32, ()>(&mut store, "garbage")?;
    f.call(&mut store, 2000)?;
    let stats = store.gc_heap_stats().expect("a heap");
    assert!(stats.collections >= 30, "{stats:?}");
    assert!(stats.capacity <= 2 << 20, "{stats:?}");
    // All of it was garbage: a full collection leaves almost nothing.
    store.gc();
    let stats = store.gc_heap_stats().expect("a heap");
    assert!(stats.live_bytes < 64 << 10, "{stats:?}");
    Ok(())
}

#[test]
fn host_handles_follow_their_objects_and_go_stale_with_their_scope() -> kiln::Result<()> {
    let engine = engine_with(None, None);
    let module = Module::new(&engine, CHURN)?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let list = call(&i, &mut store, "list", &[Val::I32(50)])?;
    let inner = {
        let mut scope = RootScope::new(&mut store);
        let l = call(&i, &mut scope, "list", &[Val::I32(10)])?;
        let Val::AnyRef(Some(l)) = l else { panic!("a list") };
        l
    };
    store.gc();
    store.gc();
    assert_eq!(store.gc_heap_stats().expect("a heap").collections, 2);
    // The handle made outside any scope still names its list, moved twice.
    assert_eq!(call(&i, &mut store, "sum", std::slice::from_ref(&list))?.i32(), Some(tri(50)));
    let Val::AnyRef(Some(l)) = &list else { panic!("a list") };
    assert!(l.as_struct().expect("a struct").field(&mut store, 0)?.i32() == Some(1));
    // The scope's handle is stale: an error, not another object.
    let err = call(&i, &mut store, "sum", &[Val::AnyRef(Some(inner))]).expect_err("stale");
    assert!(format!("{err:#}").contains("stale"), "{err:#}");
    let err = inner.as_struct().expect("a struct").field(&mut store, 0).expect_err("stale");
    assert!(format!("{err:#}").contains("stale"), "{err:#}");
    Ok(())
}

#[test]
fn host_values_in_objects_live_as_long_as_the_objects() -> kiln::Result<()> {
    let engine = engine_with(None, None);
    let module = Module::new(&engine, CHURN)?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let value = std::sync::Arc::new(7u32);
    {
        let mut scope = RootScope::new(&mut store);
        let e = ExternRef::new(value.clone());
        let boxed = call(&i, &mut scope, "box", &[Val::ExternRef(Some(e))])?;
        scope.as_context_mut().gc();
        // Only the struct's field holds the externref now.
        let back = call(&i, &mut scope, "unbox", std::slice::from_ref(&boxed))?;
        let Val::ExternRef(Some(e)) = back else { panic!("the externref") };
        assert_eq!(**e.data().downcast_ref::<std::sync::Arc<u32>>().expect("an Arc<u32>"), 7);
    }
    // An extern box made by the host dies with its last reference.
    let host = ExternRef::new(value.clone());
    {
        let mut scope = RootScope::new(&mut store);
        let b = AnyRef::convert_extern(&mut scope, &host)?;
        assert!(b.is_extern_box());
    }
    drop(host);
    store.gc();
    store.gc();
    assert_eq!(std::sync::Arc::strong_count(&value), 1, "the store let go of both host values");
    Ok(())
}

/// An immutable global's object moves like any other: compiled code must
/// read the global again after every safepoint rather than keep the first
/// value it read (as it may for other immutable globals).
#[test]
fn immutable_globals_follow_their_objects() -> kiln::Result<()> {
    let engine = engine_with(None, Some(1));
    let module = Module::new(
        &engine,
        r#"(module
             (type $s (struct (field i32)))
             (type $bytes (array (mut i8)))
             (global $g (ref $s) (struct.new $s (i32.const 7)))
             (func $use (param $x (ref $s)) (result i32)
               (drop (array.new_default $bytes (i32.const 100)))
               (struct.get $s 0 (local.get $x)))
             (func (export "run") (param $n i32) (result i32)
               (local $acc i32)
               (loop $more
                 (drop (array.new_default $bytes (i32.const 100)))
                 (local.set $acc (i32.add (local.get $acc) (call $use (global.get $g))))
                 (local.set $acc (i32.add (local.get $acc) (struct.get $s 0 (global.get $g))))
                 (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                 (br_if $more (local.get $n)))
               (local.get $acc)))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    assert_eq!(call(&i, &mut store, "run", &[Val::I32(50)])?.i32(), Some(50 * 14));
    assert!(store.gc_heap_stats().expect("a heap").collections >= 50);
    Ok(())
}

/// Old objects (promoted by earlier collections) that are given young
/// ones by every kind of reference store, wasm's and the host's.
const OLD_TO_YOUNG: &str = r#"
    (module
      (type $box (struct (field (mut anyref))))
      (type $arr (array (mut anyref)))
      (type $val (struct (field i32)))
      (global $old (export "old") (mut (ref null $box)) (ref.null $box))
      (global $olda (mut (ref null $arr)) (ref.null $arr))
      (elem $seg anyref (item (ref.i31 (i32.const 0))))
      (func (export "setup")
        (global.set $old (struct.new $box (ref.null any)))
        (global.set $olda (array.new $arr (ref.null any) (i32.const 6))))
      (func $val (param $v i32) (result (ref $val)) (struct.new $val (local.get $v)))
      (func (export "young") (param $v i32) (result anyref) (call $val (local.get $v)))
      ;; Garbage: $n structs that die at once.
      (func (export "churn") (param $n i32)
        (loop $more
          (drop (call $val (local.get $n)))
          (br_if $more (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
      (func (export "store") (param $v i32)
        (struct.set $box 0 (global.get $old) (call $val (local.get $v)))
        (array.set $arr (global.get $olda) (i32.const 0) (call $val (i32.add (local.get $v) (i32.const 1))))
        (array.fill $arr (global.get $olda) (i32.const 1) (call $val (i32.add (local.get $v) (i32.const 2))) (i32.const 2))
        (array.copy $arr $arr (global.get $olda) (i32.const 3)
          (array.new_fixed $arr 1 (call $val (i32.add (local.get $v) (i32.const 3)))) (i32.const 0) (i32.const 1))
        (array.init_elem $arr $seg (global.get $olda) (i32.const 4) (i32.const 0) (i32.const 1)))
      (func $get (param $r anyref) (result i32)
        (if (result i32) (ref.test (ref i31) (local.get $r))
          (then (i31.get_s (ref.cast (ref i31) (local.get $r))))
          (else (struct.get $val 0 (ref.cast (ref $val) (local.get $r))))))
      (func (export "sum") (result i32)
        (local $s i32) (local $i i32)
        (local.set $s (call $get (struct.get $box 0 (global.get $old))))
        (loop $more
          (local.set $s (i32.add (local.get $s)
            (call $get (array.get $arr (global.get $olda) (local.get $i)))))
          (br_if $more (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 5))))
        (local.get $s)))"#;

#[test]
fn old_objects_keep_the_young_ones_they_are_given() -> kiln::Result<()> {
    let engine = engine_with(Some(16 << 20), None);
    let module = Module::new(&engine, OLD_TO_YOUNG)?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let churn = i.get_typed_func::<i32, ()>(&mut store, "churn")?;
    let store_fn = i.get_typed_func::<i32, ()>(&mut store, "store")?;
    let sum = i.get_typed_func::<(), i32>(&mut store, "sum")?;
    i.get_typed_func::<(), ()>(&mut store, "setup")?.call(&mut store, ())?;
    // 16-byte structs: 300,000 of them fill a nursery of at most 4 MiB, so
    // the objects made by `setup` are old after this.
    churn.call(&mut store, 300_000)?;
    let before = store.gc_heap_stats().expect("a heap");
    assert!(before.collections > before.major_collections, "minor collections: {before:?}");
    for v in 1..=20 {
        store_fn.call(&mut store, v * 10)?;
        // The young objects are reachable only from old ones here.
        churn.call(&mut store, 300_000)?;
        let want = v * 10 + (v * 10 + 1) + 2 * (v * 10 + 2) + (v * 10 + 3);
        assert_eq!(sum.call(&mut store, ())?, want, "round {v}");
    }
    // The host's writes into an old object.
    let Val::AnyRef(Some(old)) = i.get_global(&mut store, "old").expect("export").get(&mut store) else {
        panic!("the old box")
    };
    let young = call(&i, &mut store, "young", &[Val::I32(-5)])?;
    old.as_struct().expect("a struct").set_field(&mut store, 0, young)?;
    churn.call(&mut store, 300_000)?;
    let Val::AnyRef(Some(got)) = old.as_struct().expect("a struct").field(&mut store, 0)? else {
        panic!("the young value")
    };
    assert_eq!(got.as_struct().expect("a struct").field(&mut store, 0)?.i32(), Some(-5));
    let after = store.gc_heap_stats().expect("a heap");
    assert!(after.collections - after.major_collections > before.collections + 20, "{after:?}");
    Ok(())
}

#[test]
fn a_module_without_gc_types_gets_a_heap_only_when_it_allocates() -> kiln::Result<()> {
    // GC is on by default: a module that declares no GC type gets no heap.
    let engine = Engine::new(&Config::new())?;
    let plain = Module::new(&engine, r#"(module (func (export "f") (result i32) (i32.const 7)))"#)?;
    let mut store = Store::new(&engine, ());
    Instance::new(&mut store, &plain, &[])?;
    assert!(store.gc_heap_stats().is_none(), "no heap for a module without GC types");
    // A module whose only GC value is a local makes the heap at its first
    // allocation (boxing a host value), while its code runs; and code that
    // was running when a host function made the heap reads objects from it.
    let module = Module::new(
        &engine,
        r#"(module
             (import "host" "make" (func $make (result anyref)))
             (func (export "round_trip") (param $e externref) (result externref)
               (local $a anyref)
               (local.set $a (any.convert_extern (local.get $e)))
               (extern.convert_any (local.get $a)))
             (func (export "is_struct") (param $x anyref) (result i32)
               (drop (ref.test (ref struct) (local.get $x)))
               (ref.test (ref struct) (call $make))))"#,
    )?;
    let pair = kiln::StructType::new(
        &engine,
        [kiln::FieldType { storage: kiln::StorageType::Val(kiln::ValType::I32), mutable: false }],
    );
    let mut linker = kiln::Linker::new(&engine);
    let make_ty = kiln::FuncType::new([], [kiln::ValType::AnyRef]);
    linker.func_new("host", "make", make_ty, move |mut caller, _, results| {
        results[0] = Val::AnyRef(Some(kiln::StructRef::new(&mut caller, &pair, &[Val::I32(1)])?.to_anyref()));
        Ok(())
    })?;
    let i = linker.instantiate(&mut store, &module)?;
    assert!(store.gc_heap_stats().is_none(), "no GC type declared: no heap yet");
    let i31 = Val::AnyRef(Some(AnyRef::from_i31(kiln::I31::wrapping_i32(3))));
    assert_eq!(call(&i, &mut store, "is_struct", &[i31])?.i32(), Some(1), "the object the host made");
    assert!(store.gc_heap_stats().is_some());
    let mut fresh = Store::new(&engine, ());
    let i = linker.instantiate(&mut fresh, &module)?;
    let e = Val::ExternRef(Some(ExternRef::new(42u32)));
    let Val::ExternRef(Some(back)) = call(&i, &mut fresh, "round_trip", &[e])? else { panic!("not null") };
    assert_eq!(back.data().downcast_ref::<u32>(), Some(&42));
    assert!(fresh.gc_heap_stats().is_some(), "the box made the heap");
    Ok(())
}

/// Live data that fills the old generation so that a major collection
/// cannot empty the nursery into it: the young objects stay where they
/// are (old ones pointing at them remembered again), and allocation goes
/// on in what room is left.
#[test]
fn a_nursery_that_cannot_be_emptied_keeps_its_objects() -> kiln::Result<()> {
    let engine = engine_with(Some(4 << 20), None);
    let module = Module::new(
        &engine,
        r#"(module
             (type $blob (array (mut i8)))
             (type $list (struct (field (ref $blob)) (field (ref null $list))))
             (global $head (mut (ref null $list)) (ref.null $list))
             (func (export "keep") (param $n i32) (param $size i32)
               (loop $more
                 (global.set $head
                   (struct.new $list (array.new $blob (local.get $n) (local.get $size)) (global.get $head)))
                 (br_if $more (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
             ;; The sum over the list of each blob's length times its fill byte.
             (func (export "check") (result i32)
               (local $l (ref null $list)) (local $sum i32) (local $b (ref $blob))
               (local.set $l (global.get $head))
               (block $end
                 (loop $next
                   (br_if $end (ref.is_null (local.get $l)))
                   (local.set $b (struct.get $list 0 (local.get $l)))
                   (local.set $sum (i32.add (local.get $sum)
                     (i32.mul (array.len (local.get $b))
                       (array.get_u $blob (local.get $b) (i32.sub (array.len (local.get $b)) (i32.const 1))))))
                   (local.set $l (struct.get $list 1 (local.get $l)))
                   (br $next)))
               (local.get $sum)))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let keep = i.get_typed_func::<(i32, i32), ()>(&mut store, "keep")?;
    let check = i.get_typed_func::<(), i32>(&mut store, "check")?;
    let want = |n: i32| (1..=n).map(|k| k * 60_000).sum::<i32>();
    // 40 blobs of 60,000 bytes: 2.4 MB, old after this.
    keep.call(&mut store, (40, 60_000))?;
    store.gc();
    // 14 more (0.84 MB): minor collections promote most, until the old
    // generation (3 MiB here) has no room for the rest beside them, which
    // stay young through the full collection.
    keep.call(&mut store, (14, 60_000))?;
    store.gc();
    let stats = store.gc_heap_stats().expect("a heap");
    assert!(stats.used_bytes > stats.live_bytes, "young objects stayed: {stats:?}");
    assert_eq!(check.call(&mut store, ())?, want(40) + want(14), "{stats:?}");
    // Allocation goes on in what room is left, then fails cleanly.
    let mut kept = 0;
    while kept < 40 && keep.call(&mut store, (1, 60_000)).is_ok() {
        kept += 1;
    }
    assert!(kept < 40, "the 4 MiB limit was reached");
    assert_eq!(check.call(&mut store, ())?, want(40) + want(14) + kept * 60_000);
    Ok(())
}
