//! Recursion groups of function types (`-W gc`, which implements only
//! this part of the GC proposal so far): types are canonicalized by whole
//! group across modules (iso-recursive equality), so imports and
//! `call_indirect` agree exactly when the groups have the same shape.

use kiln::{Config, Engine, Func, FuncType, Instance, Linker, Module, Store, WasmFeature};

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
fn groups_need_the_feature_and_other_gc_types_are_refused() {
    let recursive = r#"(module (rec (type $t (func (param (ref null $t))))))"#;
    let err = Module::new(&engine(false), recursive).expect_err("needs -W gc");
    assert!(format!("{err:#}").contains("gc"), "{err:#}");
    Module::new(&engine(true), recursive).expect("compiles with gc");
    let structs = Module::new(&engine(true), r#"(module (type (struct (field i32))))"#).expect_err("no structs yet");
    assert!(format!("{err:#}", err = structs).contains("struct and array"), "{structs:#}");
    let sub = Module::new(&engine(true), r#"(module (type $s (sub (func))) (type (sub $s (func))))"#)
        .expect_err("no subtyping yet");
    assert!(format!("{sub:#}").contains("subtyping"), "{sub:#}");
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
    use kiln::{Val, ValType};
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
    // GC instructions are not implemented yet: a clear error.
    let err = Module::new(&engine, r#"(module (func (result i31ref) (ref.i31 (i32.const 1))))"#).expect_err("ref.i31");
    assert!(format!("{err:#}").contains("unsupported"), "{err:#}");
    Ok(())
}
