//! Typed function references through the embedding API: compiled code
//! calls a `(ref $t)` without a signature check, so every reference that
//! enters from the host (arguments, table and global writes) must be of
//! exactly that type, and non-null where the type says so.

use kiln::{Config, Engine, Func, Instance, Module, Store, Val, WasmFeature};

const WAT: &str = r#"
    (module
      (type $ii (func (param i32) (result i32)))
      (type $v (func))
      (func $inc (export "inc") (type $ii) (i32.add (local.get 0) (i32.const 1)))
      (func $nop (export "nop") (type $v))
      (table $t (export "typed") 2 (ref null $ii))
      (global $g (export "g") (mut (ref null $ii)) (ref.null $ii))
      (elem declare func $inc)
      (func (export "apply") (param $f (ref $ii)) (param $x i32) (result i32)
        (call_ref $ii (local.get $x) (local.get $f)))
      (func (export "apply_nullable") (param $f (ref null $ii)) (result i32)
        (call_ref $ii (i32.const 41) (local.get $f)))
      (func (export "call_table") (param i32) (result i32)
        (call_ref $ii (i32.const 1) (table.get $t (local.get 0))))
      (func (export "call_global") (result i32)
        (call_ref $ii (i32.const 2) (global.get $g)))
      (func (export "first_non_null") (param (ref null $ii)) (result i32)
        (block $null
          (br_on_null $null (local.get 0))
          (drop)
          (return (i32.const 1)))
        (i32.const 0)))
"#;

fn setup() -> anyhow::Result<(Store<()>, Instance)> {
    let mut config = Config::new();
    config.wasm_feature_set(WasmFeature::FunctionReferences, true);
    let engine = Engine::new(&config)?;
    let module = Module::new(&engine, WAT)?;
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[])?;
    Ok((store, instance))
}

fn func(store: &mut Store<()>, instance: &Instance, name: &str) -> Func {
    instance.get_func(&mut *store, name).expect("export")
}

#[test]
fn call_ref_runs_a_function_of_the_right_type() -> anyhow::Result<()> {
    let (mut store, instance) = setup()?;
    let inc = func(&mut store, &instance, "inc");
    let apply = func(&mut store, &instance, "apply");
    let mut out = [Val::I32(0)];
    apply.call(&mut store, &[Val::FuncRef(Some(inc)), Val::I32(41)], &mut out)?;
    assert_eq!(out[0].i32(), Some(42));
    let first = instance.get_typed_func::<Option<Func>, i32>(&mut store, "first_non_null")?;
    assert_eq!(first.call(&mut store, Some(inc))?, 1);
    assert_eq!(first.call(&mut store, None)?, 0);
    Ok(())
}

#[test]
fn host_arguments_of_the_wrong_type_or_null_are_errors() -> anyhow::Result<()> {
    let (mut store, instance) = setup()?;
    let nop = func(&mut store, &instance, "nop");
    let apply = func(&mut store, &instance, "apply");
    let mut out = [Val::I32(0)];
    let err = apply.call(&mut store, &[Val::FuncRef(Some(nop)), Val::I32(1)], &mut out).expect_err("wrong type");
    assert!(format!("{err:#}").contains("argument 0"), "{err:#}");
    let err = apply.call(&mut store, &[Val::FuncRef(None), Val::I32(1)], &mut out).expect_err("null");
    assert!(format!("{err:#}").contains("argument 0"), "{err:#}");
    // The typed API checks the same way (an error, not a panic).
    let typed = instance.get_typed_func::<(Option<Func>, i32), i32>(&mut store, "apply")?;
    assert!(typed.call(&mut store, (Some(nop), 1)).is_err());
    assert!(typed.call(&mut store, (None, 1)).is_err());
    // A null where null is allowed reaches call_ref, which traps.
    let nullable = instance.get_typed_func::<Option<Func>, i32>(&mut store, "apply_nullable")?;
    let trap = nullable.call(&mut store, None).expect_err("null call");
    assert!(format!("{trap:?}").contains("null function reference"), "{trap:?}");
    Ok(())
}

#[test]
fn typed_tables_and_globals_refuse_functions_of_other_types() -> anyhow::Result<()> {
    let (mut store, instance) = setup()?;
    let inc = func(&mut store, &instance, "inc");
    let nop = func(&mut store, &instance, "nop");
    let table = instance.get_table(&mut store, "typed").expect("table");
    assert!(table.set(&mut store, 0, Val::FuncRef(Some(nop))).is_err());
    table.set(&mut store, 0, Val::FuncRef(Some(inc)))?;
    let call_table = instance.get_typed_func::<i32, i32>(&mut store, "call_table")?;
    assert_eq!(call_table.call(&mut store, 0)?, 2);
    assert!(call_table.call(&mut store, 1).is_err(), "a null element traps");

    let global = instance.get_global(&mut store, "g").expect("global");
    assert!(global.set(&mut store, Val::FuncRef(Some(nop))).is_err());
    global.set(&mut store, Val::FuncRef(Some(inc)))?;
    let call_global = instance.get_typed_func::<(), i32>(&mut store, "call_global")?;
    assert_eq!(call_global.call(&mut store, ())?, 3);
    Ok(())
}

#[test]
fn typed_references_are_on_by_default_and_can_be_turned_off() -> anyhow::Result<()> {
    Module::new(&Engine::default(), WAT)?;
    let mut config = Config::new();
    config.wasm_feature_set(WasmFeature::FunctionReferences, false);
    assert!(Module::new(&Engine::new(&config)?, WAT).is_err());
    Ok(())
}
