//! Recursion groups and declared subtyping (`-W gc`, which implements only
//! the type part of the GC proposal so far): types are canonicalized by
//! whole group across modules (iso-recursive equality), so imports and
//! `call_indirect` agree exactly when the groups have the same shape, and
//! a function whose type declares the expected one as a supertype is
//! accepted where that type is expected.

use kiln::{AnyRef, Config, Engine, Func, FuncType, I31, Instance, Linker, Module, Store, Val, WasmFeature};

fn engine(gc: bool) -> Engine {
    let mut config = Config::new();
    config.wasm_feature_set(WasmFeature::Gc, gc);
    Engine::new(&config).expect("engine")
}

const EXPORTER: &str = r#"
    (module
      (rec
        (type $a (func (param i32 (ref null $b)) (result i32)))
        (type $b (func (param i32 (ref null $a)) (result i32))))
      (func (export "f") (type $a) (local.get 0))
      (table (export "t") 1 funcref)
      (elem (i32.const 0) func $g)
      (func $g (type $b) (i32.add (local.get 0) (i32.const 1))))
"#;

#[test]
fn isomorphic_groups_in_two_modules_are_one_type() -> anyhow::Result<()> {
    let engine = engine(true);
    let mut store = Store::new(&engine, ());
    let exporter = Instance::new(&mut store, &Module::new(&engine, EXPORTER)?, &[])?;
    let mut linker = Linker::new(&engine);
    linker.instance(&mut store, "m", exporter)?;
    // The same group written again, with other names: `f` has type $x.
    let importer = Module::new(
        &engine,
        r#"(module
             (rec
               (type $x (func (param i32 (ref null $y)) (result i32)))
               (type $y (func (param i32 (ref null $x)) (result i32))))
             (import "m" "f" (func $f (type $x)))
             (import "m" "t" (table 1 funcref))
             (func (export "direct") (param i32) (result i32) (call $f (local.get 0) (ref.null $y)))
             (func (export "indirect") (param i32) (result i32)
               (call_indirect (type $y) (local.get 0) (ref.null $x) (i32.const 0)))
             (func (export "wrong") (param i32) (result i32)
               (call_indirect (type $x) (local.get 0) (ref.null $y) (i32.const 0))))"#,
    )?;
    let inst = linker.instantiate(&mut store, &importer)?;
    assert_eq!(inst.get_typed_func::<i32, i32>(&mut store, "direct")?.call(&mut store, 7)?, 7);
    assert_eq!(inst.get_typed_func::<i32, i32>(&mut store, "indirect")?.call(&mut store, 7)?, 8);
    let err = inst.get_typed_func::<i32, i32>(&mut store, "wrong")?.call(&mut store, 7).expect_err("$a is not $b");
    assert_eq!(err.downcast_ref::<kiln::Trap>().map(|t| t.code()), Some(kiln::TrapCode::BadSignature));
    Ok(())
}

#[test]
fn a_type_in_a_larger_group_is_a_different_type() -> anyhow::Result<()> {
    let engine = engine(true);
    let mut store = Store::new(&engine, ());
    let plain = Func::wrap(&mut store, || {});
    let mut linker = Linker::new(&engine);
    linker.define("host", "f", plain)?;
    // `func` alone, and `func` as the first of a group of two, differ.
    let grouped =
        Module::new(&engine, r#"(module (rec (type $t (func)) (type (func))) (import "host" "f" (func (type $t))))"#)?;
    assert!(linker.instantiate(&mut store, &grouped).is_err());
    let alone = Module::new(&engine, r#"(module (rec (type $t (func))) (import "host" "f" (func (type $t))))"#)?;
    linker.instantiate(&mut store, &alone)?;
    // Same shape, other position in the group: a different type.
    let exporter = Instance::new(
        &mut store,
        &Module::new(&engine, r#"(module (rec (type $t1 (func)) (type $t2 (func))) (func (export "f") (type $t2)))"#)?,
        &[],
    )?;
    let mut linker = Linker::new(&engine);
    linker.instance(&mut store, "m", exporter)?;
    let first = Module::new(
        &engine,
        r#"(module (rec (type $t1 (func)) (type $t2 (func))) (import "m" "f" (func (type $t1))))"#,
    )?;
    assert!(linker.instantiate(&mut store, &first).is_err());
    let second = Module::new(
        &engine,
        r#"(module (rec (type $t1 (func)) (type $t2 (func))) (import "m" "f" (func (type $t2))))"#,
    )?;
    linker.instantiate(&mut store, &second)?;
    Ok(())
}

#[test]
fn groups_need_the_feature() {
    let recursive = r#"(module (rec (type $t (func (param (ref null $t))))))"#;
    let err = Module::new(&engine(false), recursive).expect_err("needs -W gc");
    assert!(format!("{err:#}").contains("gc"), "{err:#}");
    Module::new(&engine(true), recursive).expect("compiles with gc");
    // Struct and array types and subtyping are accepted as types.
    Module::new(&engine(true), r#"(module (type (struct (field i32))) (type (array (mut i8))))"#)
        .expect("struct and array types");
    Module::new(&engine(true), r#"(module (type $s (sub (func))) (type (sub $s (func))))"#).expect("subtyping");
    // A host function's type is a group of its own, like a plain module type.
    let engine = engine(true);
    let ty = FuncType::new([], []);
    let mut store = Store::new(&engine, ());
    let f = Func::new(&mut store, ty, |_, _, _| Ok(()));
    let mut linker = Linker::new(&engine);
    linker.define("host", "f", f).expect("define");
    let m = Module::new(&engine, r#"(module (type $t (func)) (import "host" "f" (func (type $t))))"#).expect("module");
    linker.instantiate(&mut store, &m).expect("same type");
}

/// The abstract GC reference types (`anyref`, `eqref`, `i31ref`,
/// `structref`, `arrayref`, `nullref`, `nullfuncref`, `nullexternref`)
/// work as types; with no GC objects yet, their only value is null.
#[test]
fn abstract_gc_reference_types_hold_null() -> anyhow::Result<()> {
    use kiln::ValType;
    let engine = engine(true);
    let mut store = Store::new(&engine, ());
    let module = Module::new(
        &engine,
        r#"(module
             (global $g (export "g") (mut anyref) (ref.null none))
             (table (export "t") 2 eqref)
             (func (export "id") (param anyref) (result anyref) (local.get 0))
             (func (export "is_null") (param i31ref structref arrayref nullref nullfuncref nullexternref) (result i32)
               (i32.and
                 (i32.and (ref.is_null (local.get 0)) (ref.is_null (local.get 1)))
                 (i32.and (i32.and (ref.is_null (local.get 2)) (ref.is_null (local.get 3)))
                          (i32.and (ref.is_null (local.get 4)) (ref.is_null (local.get 5)))))))"#,
    )?;
    let inst = Instance::new(&mut store, &module, &[])?;
    let id = inst.get_func(&mut store, "id").expect("id");
    assert_eq!(id.ty(&store).params().collect::<Vec<_>>(), [ValType::AnyRef]);
    let mut out = [Val::I32(0)];
    id.call(&mut store, &[Val::AnyRef(None)], &mut out)?;
    assert!(matches!(out[0], Val::AnyRef(None)));
    // A reference of another hierarchy is refused.
    assert!(id.call(&mut store, &[Val::ExternRef(None)], &mut out).is_err());
    let is_null = inst.get_func(&mut store, "is_null").expect("is_null");
    let args = [
        Val::AnyRef(None),
        Val::AnyRef(None),
        Val::AnyRef(None),
        Val::AnyRef(None),
        Val::FuncRef(None),
        Val::ExternRef(None),
    ];
    let mut r = [Val::I32(0)];
    is_null.call(&mut store, &args, &mut r)?;
    assert_eq!(r[0].i32(), Some(1));
    let g = inst.get_global(&mut store, "g").expect("g");
    assert!(matches!(g.get(&mut store), Val::AnyRef(None)));
    let t = inst.get_table(&mut store, "t").expect("t");
    assert_eq!(t.ty(&store).element(), ValType::AnyRef);
    Ok(())
}

#[test]
fn i31_values_cross_the_api_and_casts_tell_them_apart() -> kiln::Result<()> {
    let engine = engine(true);
    let mut store = Store::new(&engine, ());
    let module = Module::new(
        &engine,
        r#"(module
             (global $g (export "g") (mut anyref) (ref.i31 (i32.const -5)))
             (func (export "make") (param i32) (result i31ref) (ref.i31 (local.get 0)))
             (func (export "get_s") (param i31ref) (result i32) (i31.get_s (local.get 0)))
             (func (export "get_u") (param i31ref) (result i32) (i31.get_u (local.get 0)))
             (func (export "is_i31") (param anyref) (result i32) (ref.test (ref i31) (local.get 0)))
             (func (export "is_struct") (param anyref) (result i32) (ref.test structref (local.get 0)))
             (func (export "eq") (param eqref eqref) (result i32) (ref.eq (local.get 0) (local.get 1)))
             (func (export "as_i31") (param anyref) (result i32)
               (i31.get_u (ref.cast (ref i31) (local.get 0)))))"#,
    )?;
    let inst = Instance::new(&mut store, &module, &[])?;
    let call = |store: &mut Store<()>, name: &str, args: &[Val]| -> kiln::Result<Val> {
        let f = inst.get_func(&mut *store, name).expect("export");
        let mut out = [Val::I32(0)];
        f.call(&mut *store, args, &mut out)?;
        Ok(out[0].clone())
    };
    let made = call(&mut store, "make", &[Val::I32(-1)])?;
    let Val::AnyRef(Some(r)) = made else { panic!("ref.i31 gives a non-null anyref: {made:?}") };
    assert_eq!(r.as_i31(), Some(I31::wrapping_u32(0x7fff_ffff)));
    assert_eq!(r.as_i31().map(|i| i.get_i32()), Some(-1));
    let seven = Val::AnyRef(Some(AnyRef::from_i31(I31::new_i32(-7).expect("fits"))));
    assert_eq!(call(&mut store, "get_s", std::slice::from_ref(&seven))?.i32(), Some(-7));
    assert_eq!(call(&mut store, "get_u", std::slice::from_ref(&seven))?.i32(), Some(0x7fff_fff9));
    assert!(call(&mut store, "get_u", &[Val::AnyRef(None)]).is_err(), "null i31 reference");
    assert_eq!(call(&mut store, "is_i31", std::slice::from_ref(&seven))?.i32(), Some(1));
    assert_eq!(call(&mut store, "is_i31", &[Val::AnyRef(None)])?.i32(), Some(0));
    assert_eq!(call(&mut store, "is_struct", std::slice::from_ref(&seven))?.i32(), Some(0));
    assert_eq!(call(&mut store, "eq", &[seven.clone(), seven.clone()])?.i32(), Some(1));
    assert_eq!(call(&mut store, "eq", &[seven.clone(), made.clone()])?.i32(), Some(0));
    assert_eq!(call(&mut store, "as_i31", std::slice::from_ref(&seven))?.i32(), Some(0x7fff_fff9));
    let err = call(&mut store, "as_i31", &[Val::AnyRef(None)]).expect_err("a null is not a (ref i31)");
    assert!(format!("{err:?}").contains("cast failure"), "{err:?}");
    let g = inst.get_global(&mut store, "g").expect("g");
    let Val::AnyRef(Some(v)) = g.get(&mut store) else { panic!("the global holds an i31") };
    assert_eq!(v.as_i31().map(|i| i.get_i32()), Some(-5));
    g.set(&mut store, seven)?;
    let Val::AnyRef(Some(v)) = g.get(&mut store) else { panic!("the global holds an i31") };
    assert_eq!(v.as_i31().map(|i| i.get_i32()), Some(-7));
    assert_eq!(I31::new_u32(0x8000_0000), None);
    assert_eq!(I31::new_i32(0x4000_0000), None);
    Ok(())
}

const SUBTYPES: &str = r#"
    (module
      (type $base (sub (func (result i32))))
      (type $derived (sub $base (func (result i32))))
      (type $leaf (sub final $derived (func (result i32))))
      ;; Not $base: final, so a different type (a non-final copy of
      ;; $base would be $base itself, canonicalized).
      (type $other (func (result i32)))
      (func $d (export "derived") (type $derived) (i32.const 2))
      (func $l (export "leaf") (type $leaf) (i32.const 3))
      (func $o (export "other") (type $other) (i32.const 4))
      (table (export "t") 3 funcref)
      (elem (i32.const 0) func $d $l $o)
      (func (export "as_base") (param i32) (result i32)
        (call_indirect (type $base) (local.get 0)))
      (func (export "as_derived") (param i32) (result i32)
        (call_indirect (type $derived) (local.get 0)))
      (func (export "as_leaf") (param i32) (result i32)
        (call_indirect (type $leaf) (local.get 0))))
"#;

#[test]
fn call_indirect_accepts_declared_subtypes() -> kiln::Result<()> {
    let engine = engine(true);
    let module = Module::new(&engine, SUBTYPES)?;
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[])?;
    let call = |store: &mut Store<()>, name: &str, i: i32| {
        instance.get_typed_func::<i32, i32>(&mut *store, name).and_then(|f| f.call(&mut *store, i))
    };
    // $derived and $leaf are both below $base; $other is not.
    assert_eq!(call(&mut store, "as_base", 0)?, 2);
    assert_eq!(call(&mut store, "as_base", 1)?, 3);
    let err = call(&mut store, "as_base", 2).expect_err("unrelated type");
    assert!(format!("{err:?}").contains("indirect call type mismatch"), "{err:?}");
    assert_eq!(call(&mut store, "as_derived", 1)?, 3);
    assert!(call(&mut store, "as_derived", 2).is_err());
    // A final expected type matches only itself.
    assert_eq!(call(&mut store, "as_leaf", 1)?, 3);
    assert!(call(&mut store, "as_leaf", 0).is_err());
    Ok(())
}

#[test]
fn imports_match_by_declared_subtyping_across_modules() -> kiln::Result<()> {
    let engine = engine(true);
    let exporter = Module::new(&engine, SUBTYPES)?;
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &exporter, &[])?;
    let mut linker = Linker::new(&engine);
    linker.instance(&mut store, "m", instance)?;
    // The importer declares the same hierarchy (the same groups, so the
    // same engine types) and imports the leaf function as a $base.
    let importer = Module::new(
        &engine,
        r#"(module
             (type $base (sub (func (result i32))))
             (type $derived (sub $base (func (result i32))))
             (type $leaf (sub final $derived (func (result i32))))
             (import "m" "leaf" (func $f (type $base)))
             (func (export "run") (result i32) (call $f)))"#,
    )?;
    let i = linker.instantiate(&mut store, &importer)?;
    assert_eq!(i.get_typed_func::<(), i32>(&mut store, "run")?.call(&mut store, ())?, 3);
    // Not the other way round: a $base function is not a $derived.
    let wrong = Module::new(
        &engine,
        r#"(module
             (type $base (sub (func (result i32))))
             (type $derived (sub $base (func (result i32))))
             (import "m" "other" (func (type $derived))))"#,
    )?;
    let err = linker.instantiate(&mut store, &wrong).expect_err("unrelated type");
    assert!(format!("{err:#}").contains("incompatible import type"), "{err:#}");
    Ok(())
}

#[test]
fn deep_hierarchies_match_at_every_depth() -> kiln::Result<()> {
    // $t0 <: ... <: $t63, each declaring the previous as its supertype.
    let mut wat = String::from("(module\n (type $t0 (sub (func (result i32))))\n");
    for i in 1..64 {
        wat += &format!(" (type $t{i} (sub $t{} (func (result i32))))\n", i - 1);
    }
    wat += " (func $deep (type $t63) (i32.const 63))\n (func $mid (type $t12) (i32.const 12))\n";
    wat += " (table 2 funcref) (elem (i32.const 0) func $deep $mid)\n";
    for k in [0, 11, 12, 13, 63] {
        wat += &format!(
            " (func (export \"as{k}\") (param i32) (result i32) (call_indirect (type $t{k}) (local.get 0)))\n"
        );
    }
    wat += ")";
    let engine = engine(true);
    let module = Module::new(&engine, &wat)?;
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[])?;
    for k in [0, 11, 12, 13, 63] {
        let f = instance.get_typed_func::<i32, i32>(&mut store, &format!("as{k}"))?;
        assert_eq!(f.call(&mut store, 0)?, 63, "the deepest type is below $t{k}");
        let mid = f.call(&mut store, 1);
        if k <= 12 {
            assert_eq!(mid?, 12, "$t12 is below $t{k}");
        } else {
            assert!(mid.is_err(), "$t12 is not below $t{k}");
        }
    }
    Ok(())
}
