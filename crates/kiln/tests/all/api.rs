//! Modules, instances, memories, tables, globals through the API.

use kiln::*;

#[test]
fn module_imports_and_exports() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (import "env" "f" (func (param i32) (result i64)))
        (import "env" "mem" (memory 1 2))
        (global (export "g") (mut f32) (f32.const 1))
        (table (export "t") 2 funcref)
        (func (export "h") (result i32) i32.const 0))"#,
    )?;
    let imports: Vec<_> = module.imports().map(|i| (i.module().to_string(), i.name().to_string(), i.ty())).collect();
    assert_eq!(imports.len(), 2);
    assert_eq!(imports[0].2, ExternType::Func(FuncType::new([ValType::I32], [ValType::I64])));
    assert_eq!(imports[1].2, ExternType::Memory(MemoryType::new(1, Some(2))));
    let exports: Vec<_> = module.exports().map(|e| e.name().to_string()).collect();
    assert_eq!(exports, ["g", "t", "h"]);
    assert_eq!(module.get_export("g"), Some(ExternType::Global(GlobalType::new(ValType::F32, Mutability::Var))));
    Ok(())
}

#[test]
fn invalid_modules_name_the_problem_and_offset() {
    let engine = Engine::default();
    let err = Module::new(&engine, b"\0asm\x01\0\0\0\x01\x04\x01\x60\x00").unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("offset"), "{msg}");
    let err = Module::new(&engine, "(module (func (result i32) i64.const 1))").unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("type mismatch") && msg.contains("offset"), "{msg}");
    assert!(Module::validate(&engine, b"\0asm\x01\0\0\0").is_ok());
    assert!(Module::validate(&engine, b"\0asm\x02\0\0\0").is_err());
}

#[test]
fn memory_grow_and_access() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (memory (export "m") 1 3)
        (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
        (func (export "size") (result i32) memory.size)
        (func (export "peek") (param i32) (result i32) local.get 0 i32.load8_u))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let grow = i.get_typed_func::<i32, i32>(&mut store, "grow")?;
    let size = i.get_typed_func::<(), i32>(&mut store, "size")?;
    let peek = i.get_typed_func::<i32, i32>(&mut store, "peek")?;
    let mem = i.get_memory(&mut store, "m").expect("memory");
    assert_eq!(grow.call(&mut store, 1)?, 1);
    assert_eq!(size.call(&mut store, ())?, 2);
    assert_eq!(grow.call(&mut store, 5)?, -1);
    mem.write(&mut store, 70000, &[42])?;
    assert_eq!(peek.call(&mut store, 70000)?, 42);
    assert_eq!(mem.grow(&mut store, 1)?, 2);
    assert_eq!(mem.data_size(&store), 3 * 65536);
    assert!(mem.grow(&mut store, 1).is_err());
    assert!(mem.write(&mut store, 3 * 65536, &[1]).is_err());
    Ok(())
}

#[test]
fn globals_and_tables() -> Result<()> {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let g = Global::new(&mut store, GlobalType::new(ValType::I64, Mutability::Var), Val::I64(5))?;
    let module = Module::new(
        &engine,
        r#"(module
        (import "" "g" (global $g (mut i64)))
        (table (export "t") 1 funcref)
        (func $seven (result i32) i32.const 7)
        (elem declare func $seven)
        (func (export "bump") global.get $g i64.const 1 i64.add global.set $g)
        (func (export "install") (table.set (i32.const 0) (ref.func $seven)))
        (func (export "call0") (result i32) i32.const 0 call_indirect (result i32)))"#,
    )?;
    let i = Instance::new(&mut store, &module, &[g.into()])?;
    i.get_typed_func::<(), ()>(&mut store, "bump")?.call(&mut store, ())?;
    assert_eq!(g.get(&mut store).i64(), Some(6));
    g.set(&mut store, Val::I64(100))?;
    i.get_typed_func::<(), ()>(&mut store, "bump")?.call(&mut store, ())?;
    assert_eq!(g.get(&mut store).i64(), Some(101));
    assert!(g.set(&mut store, Val::I32(1)).is_err());

    let t = i.get_table(&mut store, "t").expect("table");
    assert!(matches!(t.get(&mut store, 0), Some(Val::FuncRef(None))));
    i.get_typed_func::<(), ()>(&mut store, "install")?.call(&mut store, ())?;
    let Some(Val::FuncRef(Some(f))) = t.get(&mut store, 0) else { panic!("funcref expected") };
    assert_eq!(f.typed::<(), i32>(&store)?.call(&mut store, ())?, 7);
    assert_eq!(t.grow(&mut store, 2, Val::FuncRef(Some(f)))?, 1);
    assert_eq!(t.size(&store), 3);
    assert_eq!(i.get_typed_func::<(), i32>(&mut store, "call0")?.call(&mut store, ())?, 7);
    Ok(())
}

#[test]
fn wrong_arguments_are_errors_not_panics() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(&engine, r#"(module (func (export "f") (param i32) (result i32) local.get 0))"#)?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let f = i.get_func(&mut store, "f").expect("f");
    let mut r = [Val::I32(0)];
    assert!(f.call(&mut store, &[], &mut r).is_err());
    assert!(f.call(&mut store, &[Val::I64(1)], &mut r).is_err());
    assert!(f.typed::<i64, i32>(&store).is_err());
    assert!(i.get_typed_func::<i32, i32>(&mut store, "missing").is_err());
    f.call(&mut store, &[Val::I32(9)], &mut r)?;
    assert_eq!(r[0].i32(), Some(9));
    Ok(())
}

#[test]
fn link_errors_name_the_import() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(&engine, r#"(module (import "a" "b" (func (param i32))))"#)?;
    let mut store = Store::new(&engine, ());
    let linker = Linker::<()>::new(&engine);
    let err = linker.instantiate(&mut store, &module).unwrap_err();
    assert!(format!("{err:#}").contains("a::b"), "{err:#}");
    let wrong = Func::wrap(&mut store, |_: i64| {});
    let err = Instance::new(&mut store, &module, &[wrong.into()]).unwrap_err();
    assert!(format!("{err:#}").contains("incompatible import type"), "{err:#}");
    Ok(())
}

#[test]
fn externrefs_round_trip_and_do_not_accumulate() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (table $t 1 externref)
        (func (export "swap") (param externref) (result externref)
            (table.get $t (i32.const 0))
            (table.set $t (i32.const 0) (local.get 0))))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let swap = i.get_typed_func::<Option<ExternRef>, Option<ExternRef>>(&mut store, "swap")?;
    assert!(swap.call(&mut store, Some(ExternRef::new(String::from("first"))))?.is_none());
    let back = swap.call(&mut store, None)?.expect("the first value");
    assert_eq!(back.data().downcast_ref::<String>().map(String::as_str), Some("first"));

    // Churn: a million host values pass through wasm; each is dropped once
    // no table holds it, so memory stays bounded.
    let tracker = std::sync::Arc::new(());
    for _ in 0..200_000 {
        swap.call(&mut store, Some(ExternRef::new(tracker.clone())))?;
    }
    swap.call(&mut store, None)?;
    store.gc();
    assert_eq!(std::sync::Arc::strong_count(&tracker), 1);
    Ok(())
}

#[test]
fn million_deep_mutual_tail_recursion() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (func $even (export "even") (param i64) (result i32)
            (if (result i32) (i64.eqz (local.get 0))
                (then (i32.const 1))
                (else (return_call $odd (i64.sub (local.get 0) (i64.const 1))))))
        (func $odd (param i64) (result i32)
            (if (result i32) (i64.eqz (local.get 0))
                (then (i32.const 0))
                (else (return_call_indirect (type 0) (i64.sub (local.get 0) (i64.const 1)) (i32.const 0)))))
        (type (func (param i64) (result i32)))
        (table 1 funcref)
        (elem (i32.const 0) $even))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let even = i.get_typed_func::<i64, i32>(&mut store, "even")?;
    assert_eq!(even.call(&mut store, 1_000_000)?, 1);
    assert_eq!(even.call(&mut store, 1_000_001)?, 0);
    Ok(())
}

#[test]
fn relaxed_simd_deterministic_mode() -> Result<()> {
    let wat = r#"(module (func (export "madd") (param f32 f32 f32) (result f32)
        (f32x4.extract_lane 0 (f32x4.relaxed_madd (f32x4.splat (local.get 0)) (f32x4.splat (local.get 1)) (f32x4.splat (local.get 2))))))"#;
    let mut config = Config::new();
    config.relaxed_simd_deterministic(true);
    let engine = Engine::new(&config)?;
    let module = Module::new(&engine, wat)?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let madd = i.get_typed_func::<(f32, f32, f32), f32>(&mut store, "madd")?;
    // Unfused: the product rounds before the add.
    let (a, b, c) = (1.0f32 + f32::EPSILON, 1.0f32 - f32::EPSILON, -1.0f32);
    assert_eq!(madd.call(&mut store, (a, b, c))?, a * b + c);
    Ok(())
}
