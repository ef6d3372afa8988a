//! GC objects (`-W gc`): structs and arrays live in the store's GC heap;
//! wasm makes and uses them, the host holds them as `AnyRef`s and passes
//! them back, casts tell them apart, and the heap's limit is a trap, not an
//! abort.

use kiln::{AnyRef, Config, Engine, Instance, Module, Store, Val, WasmFeature};

fn engine() -> Engine {
    let mut config = Config::new();
    config.wasm_feature_set(WasmFeature::Gc, true);
    Engine::new(&config).expect("engine")
}

const LIST: &str = r#"
    (module
      (type $node (struct (field $v i32) (field $next (ref null $node))))
      (type $bytes (array (mut i8)))
      (func (export "cons") (param i32 (ref null $node)) (result (ref $node))
        (struct.new $node (local.get 0) (local.get 1)))
      (func (export "sum") (param $n (ref null $node)) (result i32)
        (local $s i32)
        (block $done
          (loop $next
            (br_if $done (ref.is_null (local.get $n)))
            (local.set $s (i32.add (local.get $s) (struct.get $node $v (local.get $n))))
            (local.set $n (struct.get $node $next (local.get $n)))
            (br $next)))
        (local.get $s))
      (func (export "bytes") (param i32) (result (ref $bytes))
        (array.new $bytes (i32.const 0xff) (local.get 0)))
      (func (export "byte_s") (param (ref $bytes) i32) (result i32)
        (array.get_s $bytes (local.get 0) (local.get 1)))
      (func (export "len") (param (ref $bytes)) (result i32) (array.len (local.get 0)))
      (func (export "is_node") (param anyref) (result i32) (ref.test (ref $node) (local.get 0)))
      (func (export "is_array") (param anyref) (result i32) (ref.test arrayref (local.get 0))))
"#;

fn call(instance: &Instance, store: &mut Store<()>, name: &str, args: &[Val]) -> kiln::Result<Val> {
    let f = instance.get_func(&mut *store, name).expect("export");
    let mut out = [Val::I32(0)];
    f.call(&mut *store, args, &mut out)?;
    Ok(out[0].clone())
}

#[test]
fn structs_and_arrays_cross_the_api() -> kiln::Result<()> {
    let engine = engine();
    let module = Module::new(&engine, LIST)?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let mut list = Val::AnyRef(None);
    for v in 1..=100 {
        list = call(&i, &mut store, "cons", &[Val::I32(v), list])?;
    }
    let Val::AnyRef(Some(head)) = &list else { panic!("a struct: {list:?}") };
    assert!(head.is_struct() && !head.is_array() && !head.is_i31());
    assert_eq!(call(&i, &mut store, "sum", std::slice::from_ref(&list))?.i32(), Some(5050));
    assert_eq!(call(&i, &mut store, "is_node", std::slice::from_ref(&list))?.i32(), Some(1));
    let bytes = call(&i, &mut store, "bytes", &[Val::I32(3)])?;
    let Val::AnyRef(Some(b)) = &bytes else { panic!("an array: {bytes:?}") };
    assert!(b.is_array());
    assert_eq!(call(&i, &mut store, "len", std::slice::from_ref(&bytes))?.i32(), Some(3));
    assert_eq!(call(&i, &mut store, "byte_s", &[bytes.clone(), Val::I32(2)])?.i32(), Some(-1));
    let err = call(&i, &mut store, "byte_s", &[bytes.clone(), Val::I32(3)]).expect_err("index 3 of 3");
    assert!(format!("{err:?}").contains("out of bounds array access"), "{err:?}");
    assert_eq!(call(&i, &mut store, "is_array", std::slice::from_ref(&bytes))?.i32(), Some(1));
    assert_eq!(call(&i, &mut store, "is_node", std::slice::from_ref(&bytes))?.i32(), Some(0));
    // An array is not a node: the typed parameter refuses it.
    assert!(call(&i, &mut store, "sum", std::slice::from_ref(&bytes)).is_err());
    // Another store's object is refused, not misread.
    let mut other = Store::new(&engine, ());
    let j = Instance::new(&mut other, &module, &[])?;
    let err = call(&j, &mut other, "sum", std::slice::from_ref(&list)).expect_err("another store's object");
    assert!(format!("{err:#}").contains("another store"), "{err:#}");
    Ok(())
}

#[test]
fn null_accesses_trap_with_their_own_messages() -> kiln::Result<()> {
    let engine = engine();
    let module = Module::new(&engine, LIST)?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let module2 = Module::new(
        &engine,
        r#"(module
             (type $s (struct (field (mut i32))))
             (type $a (array (mut i32)))
             (func (export "get") (result i32) (struct.get $s 0 (ref.null $s)))
             (func (export "len") (result i32) (array.len (ref.null $a))))"#,
    )?;
    let k = Instance::new(&mut store, &module2, &[])?;
    let err = call(&k, &mut store, "get", &[]).expect_err("null struct");
    assert!(format!("{err:?}").contains("null structure reference"), "{err:?}");
    let err = call(&k, &mut store, "len", &[]).expect_err("null array");
    assert!(format!("{err:?}").contains("null array reference"), "{err:?}");
    assert_eq!(call(&i, &mut store, "sum", &[Val::AnyRef(None)])?.i32(), Some(0));
    Ok(())
}

#[test]
fn an_exhausted_heap_traps_allocation_failed() -> kiln::Result<()> {
    // Live data outgrows a 64 MiB heap: each 4 MiB array is kept, linked
    // from the last, so collections free nothing and the heap fills up.
    let mut config = Config::new();
    config.wasm_feature_set(WasmFeature::Gc, true).max_gc_heap_size(64 << 20);
    let engine = Engine::new(&config)?;
    let module = Module::new(
        &engine,
        r#"(module
             (type $a (array (mut i8)))
             (type $link (struct (field (ref $a)) (field (ref null $link))))
             (global $keep (mut (ref null $link)) (ref.null $link))
             (func (export "grow") (result i32)
               (local $n i32)
               (loop $more
                 (global.set $keep (struct.new $link (array.new_default $a (i32.const 0x40_0000)) (global.get $keep)))
                 (local.set $n (i32.add (local.get $n) (i32.const 1)))
                 (br $more))
               (local.get $n)))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let err = call(&i, &mut store, "grow", &[]).expect_err("the heap fills up");
    assert!(format!("{err:?}").contains("allocation failed"), "{err:?}");
    // Too large an array at once is the same trap, not an overflow.
    let big = Module::new(
        &engine,
        r#"(module (type $a (array i64))
             (func (export "big") (result i32) (array.len (array.new_default $a (i32.const -1)))))"#,
    )?;
    let j = Instance::new(&mut store, &big, &[])?;
    let err = call(&j, &mut store, "big", &[]).expect_err("16 × 4 Gi bytes");
    assert!(format!("{err:?}").contains("allocation failed"), "{err:?}");
    let _ = AnyRef::from_i31(kiln::I31::wrapping_u32(1));
    Ok(())
}

#[test]
fn host_values_and_gc_references_convert_both_ways() -> kiln::Result<()> {
    use kiln::ExternRef;
    let engine = engine();
    let module = Module::new(
        &engine,
        r#"(module
             (type $s (struct (field i32)))
             (func (export "internalize") (param externref) (result anyref) (any.convert_extern (local.get 0)))
             (func (export "externalize") (param anyref) (result externref) (extern.convert_any (local.get 0)))
             (func (export "make") (result anyref) (struct.new $s (i32.const 9)))
             (func (export "is_eq") (param anyref) (result i32) (ref.test eqref (local.get 0))))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    // A host value goes in as an extern box and comes back out as itself.
    let host = ExternRef::new(42u32);
    let boxed = call(&i, &mut store, "internalize", &[Val::ExternRef(Some(host.clone()))])?;
    let Val::AnyRef(Some(b)) = &boxed else { panic!("a box: {boxed:?}") };
    assert!(b.is_extern_box() && !b.is_struct());
    assert_eq!(call(&i, &mut store, "is_eq", std::slice::from_ref(&boxed))?.i32(), Some(0), "boxes are not eq");
    let back = call(&i, &mut store, "externalize", std::slice::from_ref(&boxed))?;
    let Val::ExternRef(Some(back)) = back else { panic!("the host value") };
    assert!(ExternRef::ptr_eq(&back, &host));
    // A struct goes out as an externref and comes back in as the same struct.
    let s = call(&i, &mut store, "make", &[])?;
    let out = call(&i, &mut store, "externalize", std::slice::from_ref(&s))?;
    let Val::ExternRef(Some(e)) = &out else { panic!("an externref: {out:?}") };
    let again = call(&i, &mut store, "internalize", std::slice::from_ref(&out))?;
    let (Val::AnyRef(Some(a)), Val::AnyRef(Some(b))) = (&s, &again) else { panic!("structs") };
    assert!(a.ref_eq(&store, b)?);
    // The host API does the same conversions.
    assert!(AnyRef::convert_extern(&mut store, e)?.ref_eq(&store, a)?);
    let boxed = AnyRef::convert_extern(&mut store, &host)?;
    let e2 = ExternRef::convert_any(&store, boxed)?;
    assert!(ExternRef::ptr_eq(&e2, &host));
    Ok(())
}

#[test]
fn the_configured_heap_size_bounds_what_wasm_allocates() -> kiln::Result<()> {
    let mut config = Config::new();
    config.wasm_feature_set(WasmFeature::Gc, true).max_gc_heap_size(1 << 20);
    let engine = Engine::new(&config)?;
    let module = Module::new(
        &engine,
        r#"(module
             (type $a (array (mut i8)))
             (global $n (mut i32) (i32.const 0))
             ;; Keeps every object alive, so collecting frees nothing.
             (table $keep 2000 anyref)
             (func (export "grow") (result i32)
               (loop $more
                 ;; 1,008 bytes of elements, a 1,024-byte object.
                 (table.set $keep (global.get $n) (array.new_default $a (i32.const 1008)))
                 (global.set $n (i32.add (global.get $n) (i32.const 1)))
                 (br $more))
               (i32.const 0))
             (func (export "count") (result i32) (global.get $n)))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let err = call(&i, &mut store, "grow", &[]).expect_err("1 MiB fills up");
    assert!(format!("{err:?}").contains("allocation failed"), "{err:?}");
    assert_eq!(call(&i, &mut store, "count", &[])?.i32(), Some(1024), "exactly 1 MiB of objects");
    assert!(store.gc_heap_stats().expect("a heap").collections >= 1, "collected before failing");
    Ok(())
}

#[test]
fn a_constant_expression_that_does_not_fit_fails_instantiation() -> kiln::Result<()> {
    // Found by running wasm-smith GC modules: `array.new` in a global's
    // initializer with a huge length must not gather its elements in host
    // memory first, and a failed allocation must not leave a null behind.
    let engine = engine();
    let module = Module::new(
        &engine,
        r#"(module
             (type $a (array (mut i64)))
             (global (ref $a) (array.new $a (i64.const 7) (i32.const 0x7fffffff))))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let err = Instance::new(&mut store, &module, &[]).expect_err("16 GiB of elements");
    assert!(format!("{err:#}").contains("allocation failed"), "{err:#}");
    // A fitting one works, and its elements are all the value.
    let module = Module::new(
        &engine,
        r#"(module
             (type $a (array (mut i64)))
             (global $g (ref $a) (array.new $a (i64.const 7) (i32.const 1000)))
             (func (export "get") (param i32) (result i64) (array.get $a (global.get $g) (local.get 0))))"#,
    )?;
    let i = Instance::new(&mut store, &module, &[])?;
    let get = i.get_typed_func::<i32, i64>(&mut store, "get")?;
    assert_eq!((get.call(&mut store, 0)?, get.call(&mut store, 999)?), (7, 7));
    Ok(())
}

#[test]
fn the_host_reads_and_writes_fields_and_elements() -> kiln::Result<()> {
    let engine = engine();
    let module = Module::new(
        &engine,
        r#"(module
             (type $pt (struct (field $x (mut i32)) (field $tag i8) (field $next (mut (ref null $pt)))))
             (type $bytes (array (mut i8)))
             (type $frozen (array i64))
             (func (export "pt") (param i32) (result (ref $pt))
               (struct.new $pt (local.get 0) (i32.const 0xff) (ref.null $pt)))
             (func (export "x") (param (ref $pt)) (result i32) (struct.get $pt $x (local.get 0)))
             (func (export "bytes") (result (ref $bytes)) (array.new_fixed $bytes 3 (i32.const 1) (i32.const 2) (i32.const 3)))
             (func (export "sum") (param (ref $bytes)) (result i32)
               (i32.add (array.get_u $bytes (local.get 0) (i32.const 0))
                 (i32.add (array.get_u $bytes (local.get 0) (i32.const 1)) (array.get_u $bytes (local.get 0) (i32.const 2)))))
             (func (export "frozen") (result (ref $frozen)) (array.new_fixed $frozen 1 (i64.const 5))))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let Val::AnyRef(Some(a)) = call(&i, &mut store, "pt", &[Val::I32(10)])? else { panic!("a struct") };
    let Val::AnyRef(Some(b)) = call(&i, &mut store, "pt", &[Val::I32(20)])? else { panic!("a struct") };
    let s = a.as_struct().expect("a struct");
    assert!(a.as_array().is_none());
    assert_eq!(s.field(&mut store, 0)?.i32(), Some(10));
    assert_eq!(s.field(&mut store, 1)?.i32(), Some(0xff), "packed fields read zero-extended");
    assert!(matches!(s.field(&mut store, 2)?, Val::AnyRef(None)));
    s.set_field(&mut store, 0, Val::I32(11))?;
    assert_eq!(call(&i, &mut store, "x", &[Val::AnyRef(Some(a))])?.i32(), Some(11), "wasm sees the host's write");
    s.set_field(&mut store, 2, Val::AnyRef(Some(b)))?;
    let Val::AnyRef(Some(next)) = s.field(&mut store, 2)? else { panic!("the link") };
    assert!(next.ref_eq(&store, &b)?, "the same object");
    // The checks wasm gets from validation, as errors.
    assert!(s.set_field(&mut store, 1, Val::I32(1)).is_err(), "immutable");
    assert!(s.set_field(&mut store, 0, Val::I64(1)).is_err(), "wrong type");
    assert!(s.field(&mut store, 3).is_err(), "no such field");
    let Val::AnyRef(Some(bytes_ref)) = call(&i, &mut store, "bytes", &[])? else { panic!("an array") };
    assert!(s.set_field(&mut store, 2, Val::AnyRef(Some(bytes_ref))).is_err(), "an array is not a $pt");
    let arr = bytes_ref.as_array().expect("an array");
    assert_eq!(arr.len(&store)?, 3);
    assert_eq!(arr.get(&mut store, 2)?.i32(), Some(3));
    arr.set(&mut store, 0, Val::I32(0x1ff))?;
    assert_eq!(arr.get(&mut store, 0)?.i32(), Some(0xff), "packed elements keep the low bits");
    assert_eq!(call(&i, &mut store, "sum", &[Val::AnyRef(Some(bytes_ref))])?.i32(), Some(0xff + 2 + 3));
    assert!(arr.get(&mut store, 3).is_err(), "out of bounds");
    let Val::AnyRef(Some(frozen)) = call(&i, &mut store, "frozen", &[])? else { panic!("an array") };
    let frozen = frozen.as_array().expect("an array");
    assert_eq!(frozen.get(&mut store, 0)?.i64(), Some(5));
    assert!(frozen.set(&mut store, 0, Val::I64(6)).is_err(), "immutable elements");
    // Another store's object is refused.
    let mut other = Store::new(&engine, ());
    Instance::new(&mut other, &module, &[])?;
    assert!(s.field(&mut other, 0).is_err());
    Ok(())
}

#[test]
fn the_host_makes_structs_and_arrays_of_module_types() -> kiln::Result<()> {
    use kiln::{ArrayRef, ArrayType, FieldType, StorageType, StructRef, StructType, ValType};
    let engine = engine();
    let module = Module::new(
        &engine,
        r#"(module
             (type $pair (struct (field (mut i32)) (field i8)))
             (type $bytes (array (mut i8)))
             (func (export "first") (param (ref $pair)) (result i32) (struct.get $pair 0 (local.get 0)))
             (func (export "second") (param (ref $pair)) (result i32) (struct.get_s $pair 1 (local.get 0)))
             (func (export "last") (param (ref $bytes)) (result i32)
               (array.get_u $bytes (local.get 0) (i32.sub (array.len (local.get 0)) (i32.const 1)))))"#,
    )?;
    // The host's types are the module's: final, no supertype, alone in
    // their recursion groups.
    let pair = StructType::new(
        &engine,
        [
            FieldType { storage: StorageType::Val(ValType::I32), mutable: true },
            FieldType { storage: StorageType::I8, mutable: false },
        ],
    );
    let bytes = ArrayType::new(&engine, FieldType { storage: StorageType::I8, mutable: true });
    let mut store = Store::new(&engine, ());
    // Objects can be made before any module is instantiated.
    let p = StructRef::new(&mut store, &pair, &[Val::I32(7), Val::I32(-2)])?;
    let b = ArrayRef::new(&mut store, &bytes, &Val::I32(9), 4)?;
    let i = Instance::new(&mut store, &module, &[])?;
    let pv = Val::AnyRef(Some(p.to_anyref()));
    assert_eq!(call(&i, &mut store, "first", std::slice::from_ref(&pv))?.i32(), Some(7));
    assert_eq!(call(&i, &mut store, "second", std::slice::from_ref(&pv))?.i32(), Some(-2));
    assert_eq!(call(&i, &mut store, "last", &[Val::AnyRef(Some(b.to_anyref()))])?.i32(), Some(9));
    // A struct of another shape is not a $pair.
    let other = StructType::new(&engine, [FieldType { storage: StorageType::Val(ValType::I64), mutable: true }]);
    let o = StructRef::new(&mut store, &other, &[Val::I64(1)])?;
    assert!(call(&i, &mut store, "first", &[Val::AnyRef(Some(o.to_anyref()))]).is_err());
    // Wrong values are errors.
    assert!(StructRef::new(&mut store, &pair, &[Val::I32(1)]).is_err(), "too few");
    assert!(StructRef::new(&mut store, &pair, &[Val::I64(1), Val::I32(1)]).is_err(), "wrong type");
    let elsewhere = Engine::new(&Config::new())?;
    let foreign = StructType::new(&elsewhere, []);
    assert!(StructRef::new(&mut store, &foreign, &[]).is_err(), "another engine's type");
    Ok(())
}

/// Casts down a hierarchy deeper than the compiled display table's rows
/// (`type_displays::DEPTH`), across modules, to sibling types, and a
/// `call_indirect` to a function of a subtype.
const HIERARCHY: &str = r#"(module
    (rec
      (type $t0 (sub (struct (field i32))))
      (type $t1 (sub $t0 (struct (field i32) (field i32))))
      (type $t2 (sub $t1 (struct (field i32) (field i32) (field i32))))
      (type $t3 (sub $t2 (struct (field i32) (field i32) (field i32) (field i32))))
      (type $t4 (sub $t3 (struct (field i32) (field i32) (field i32) (field i32) (field i32))))
      (type $t5 (sub $t4 (struct (field i32) (field i32) (field i32) (field i32) (field i32) (field i32))))
      (type $t6 (sub $t5 (struct (field i32) (field i32) (field i32) (field i32) (field i32) (field i32) (field i32))))
      (type $t7 (sub $t6 (struct (field i32) (field i32) (field i32) (field i32) (field i32) (field i32) (field i32) (field i32))))
      (type $t8 (sub $t7 (struct (field i32) (field i32) (field i32) (field i32) (field i32) (field i32) (field i32) (field i32) (field i32))))
      (type $t9 (sub $t8 (struct (field i32) (field i32) (field i32) (field i32) (field i32) (field i32) (field i32) (field i32) (field i32) (field i32))))
      (type $t10 (sub $t9 (struct (field i32) (field i32) (field i32) (field i32) (field i32) (field i32) (field i32) (field i32) (field i32) (field i32) (field i32))))
      (type $s3 (sub $t2 (struct (field i32) (field i32) (field i32) (field i64)))))
      (func (export "new0") (result anyref) (struct.new_default $t0))
      (func (export "new1") (result anyref) (struct.new_default $t1))
      (func (export "new2") (result anyref) (struct.new_default $t2))
      (func (export "new3") (result anyref) (struct.new_default $t3))
      (func (export "new4") (result anyref) (struct.new_default $t4))
      (func (export "new5") (result anyref) (struct.new_default $t5))
      (func (export "new6") (result anyref) (struct.new_default $t6))
      (func (export "new7") (result anyref) (struct.new_default $t7))
      (func (export "new8") (result anyref) (struct.new_default $t8))
      (func (export "new9") (result anyref) (struct.new_default $t9))
      (func (export "new10") (result anyref) (struct.new_default $t10))
      (func (export "news3") (result anyref) (struct.new_default $s3))
      (func (export "is0") (param anyref) (result i32) (ref.test (ref $t0) (local.get 0)))
      (func (export "is1") (param anyref) (result i32) (ref.test (ref $t1) (local.get 0)))
      (func (export "is2") (param anyref) (result i32) (ref.test (ref $t2) (local.get 0)))
      (func (export "is3") (param anyref) (result i32) (ref.test (ref $t3) (local.get 0)))
      (func (export "is4") (param anyref) (result i32) (ref.test (ref $t4) (local.get 0)))
      (func (export "is5") (param anyref) (result i32) (ref.test (ref $t5) (local.get 0)))
      (func (export "is6") (param anyref) (result i32) (ref.test (ref $t6) (local.get 0)))
      (func (export "is7") (param anyref) (result i32) (ref.test (ref $t7) (local.get 0)))
      (func (export "is8") (param anyref) (result i32) (ref.test (ref $t8) (local.get 0)))
      (func (export "is9") (param anyref) (result i32) (ref.test (ref $t9) (local.get 0)))
      (func (export "is10") (param anyref) (result i32) (ref.test (ref $t10) (local.get 0)))
      (table $funcs 2 funcref)
      (type $f0 (sub (func (result i32))))
      (type $f1 (sub $f0 (func (result i32))))
      (func $g (type $f1) (i32.const 5))
      (elem (table $funcs) (i32.const 0) func $g)
      (func (export "call_base") (result i32) (call_indirect $funcs (type $f0) (i32.const 0))))"#;

#[test]
fn casts_to_non_final_types_follow_declared_subtyping_at_any_depth() -> kiln::Result<()> {
    let engine = Engine::new(&Config::new())?;
    let a = Module::new(&engine, HIERARCHY)?;
    let b = Module::new(&engine, HIERARCHY)?;
    let mut store = Store::new(&engine, ());
    let ia = Instance::new(&mut store, &a, &[])?;
    let ib = Instance::new(&mut store, &b, &[])?;
    for made in 0..=10 {
        let obj = call(&ia, &mut store, &format!("new{made}"), &[])?;
        for tested in 0..=10 {
            for i in [&ia, &ib] {
                let got = call(i, &mut store, &format!("is{tested}"), std::slice::from_ref(&obj))?.i32();
                assert_eq!(got, Some(i32::from(tested <= made)), "a $t{made} is a $t{tested}");
            }
        }
    }
    // A sibling of $t3 under $t2.
    let sib = call(&ia, &mut store, "news3", &[])?;
    for tested in 0..=10 {
        let got = call(&ib, &mut store, &format!("is{tested}"), std::slice::from_ref(&sib))?.i32();
        assert_eq!(got, Some(i32::from(tested <= 2)), "$s3 is below $t{tested}");
    }
    assert_eq!(call(&ia, &mut store, "call_base", &[])?.i32(), Some(5));
    Ok(())
}

/// `array.new_data` reads the segment's current length: a dropped
/// segment and an active one (dropped at instantiation) are empty.
#[test]
fn array_new_data_sees_dropped_segments_as_empty() -> kiln::Result<()> {
    let engine = Engine::new(&Config::new())?;
    let module = Module::new(
        &engine,
        r#"(module
             (type $bytes (array (mut i8)))
             (type $shorts (array i16))
             (memory 1)
             (data $passive "hello, world")
             (data $active (i32.const 0) "xy")
             (func (export "sum") (param $off i32) (param $len i32) (result i32)
               (local $a (ref $bytes)) (local $i i32) (local $s i32)
               (local.set $a (array.new_data $bytes $passive (local.get $off) (local.get $len)))
               (block $done
                 (loop $next
                   (br_if $done (i32.ge_u (local.get $i) (array.len (local.get $a))))
                   (local.set $s (i32.add (local.get $s) (array.get_u $bytes (local.get $a) (local.get $i))))
                   (local.set $i (i32.add (local.get $i) (i32.const 1)))
                   (br $next)))
               (local.get $s))
             (func (export "short") (param $i i32) (result i32)
               (array.get_u $shorts (array.new_data $shorts $passive (i32.const 0) (i32.const 6)) (local.get $i)))
             (func (export "active") (param $len i32) (result i32)
               (array.len (array.new_data $bytes $active (i32.const 0) (local.get $len))))
             (func (export "drop") (data.drop $passive)))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let sum = |store: &mut Store<()>, off: i32, len: i32| call(&i, store, "sum", &[Val::I32(off), Val::I32(len)]);
    assert_eq!(sum(&mut store, 0, 5)?.i32(), Some("hello".bytes().map(i32::from).sum()));
    assert_eq!(sum(&mut store, 7, 5)?.i32(), Some("world".bytes().map(i32::from).sum()));
    assert_eq!(sum(&mut store, 12, 0)?.i32(), Some(0), "an empty array at the end");
    assert!(format!("{:?}", sum(&mut store, 8, 5).expect_err("past the end")).contains("out of bounds"));
    assert!(sum(&mut store, 13, 0).is_err(), "an offset past the end");
    // Little-endian 16-bit elements: "he" is 0x6568.
    assert_eq!(call(&i, &mut store, "short", &[Val::I32(0)])?.i32(), Some(0x6568));
    assert_eq!(call(&i, &mut store, "active", &[Val::I32(0)])?.i32(), Some(0));
    assert!(call(&i, &mut store, "active", &[Val::I32(1)]).is_err(), "active segments are dropped");
    i.get_typed_func::<(), ()>(&mut store, "drop")?.call(&mut store, ())?;
    assert_eq!(sum(&mut store, 0, 0)?.i32(), Some(0));
    assert!(sum(&mut store, 0, 1).is_err(), "a dropped segment is empty");
    Ok(())
}
