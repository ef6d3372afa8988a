//! Typed calls whose values all fit in registers take the direct entry
//! (no entry trampoline, no value slots); the rest take the slots. Both
//! must agree with the untyped `Func::call` on every signature, and the
//! direct entry must keep traps, backtraces, fuel and re-entrancy working.

use kiln::*;

fn instance(engine: &Engine, wat: &str) -> (Store<()>, Instance) {
    let module = Module::new(engine, wat).expect("compiles");
    let mut store = Store::new(engine, ());
    let instance = Instance::new(&mut store, &module, &[]).expect("instantiates");
    (store, instance)
}

fn untyped(store: &mut Store<()>, instance: &Instance, name: &str, args: &[Val]) -> Vec<Val> {
    let f = instance.get_func(&mut *store, name).expect("export");
    let mut results: Vec<Val> = f.ty(&*store).results().map(Val::default_for).collect();
    f.call(&mut *store, args, &mut results).expect("call");
    results
}

fn bits(v: &[Val]) -> Vec<u64> {
    v.iter()
        .map(|v| match v {
            Val::I32(x) => *x as u32 as u64,
            Val::I64(x) => *x as u64,
            Val::F32(x) => u64::from(*x),
            Val::F64(x) => *x,
            _ => panic!("not a number"),
        })
        .collect()
}

/// Every register class and count at and just past the limits of the
/// direct entry (4 integer and 8 float parameters, 4 integer and 4 float
/// results), mixed orders, full-width and NaN-payload values.
#[test]
fn every_signature_shape_agrees_with_untyped_calls() {
    let wat = r#"(module
        (func (export "mixed") (param i32 f32 i64 f64) (result f64 i64 f32 i32)
            local.get 3 local.get 2 local.get 1 local.get 0)
        (func (export "ints4") (param i64 i64 i64 i64) (result i64 i64 i64 i64)
            local.get 3 local.get 2 local.get 1 local.get 0)
        (func (export "ints5") (param i32 i32 i32 i32 i32) (result i32 i32 i32 i32 i32)
            local.get 4 local.get 3 local.get 2 local.get 1 local.get 0)
        (func (export "floats8") (param f64 f64 f64 f64 f64 f64 f64 f64) (result f64)
            local.get 0 local.get 1 f64.add local.get 2 f64.add local.get 3 f64.add
            local.get 4 f64.add local.get 5 f64.add local.get 6 f64.add local.get 7 f64.add)
        (func (export "floats9") (param f32 f32 f32 f32 f32 f32 f32 f32 f32) (result f32)
            local.get 8)
        (func (export "results8") (param i32 f32) (result i32 f32 i32 f32 i32 f32 i32 f32)
            local.get 0 local.get 1 local.get 0 local.get 1 local.get 0 local.get 1 local.get 0 local.get 1)
        (func (export "ints_floats") (param i64 f64 i64 f64 i64 f64 i64 f64) (result f64 i64)
            local.get 7 local.get 6)
        (func (export "unsigned") (param i32 i64) (result i64 i32)
            local.get 1 i64.const 1 i64.add local.get 0 i32.const 1 i32.add))"#;
    let engine = Engine::default();
    let (mut store, i) = instance(&engine, wat);

    let f = i.get_typed_func::<(i32, f32, i64, f64), (f64, i64, f32, i32)>(&mut store, "mixed").unwrap();
    let nan32 = f32::from_bits(0x7fa0_0001);
    let r = f.call(&mut store, (-7, nan32, i64::MIN + 3, -0.5)).unwrap();
    assert_eq!((r.0, r.1, r.2.to_bits(), r.3), (-0.5, i64::MIN + 3, 0x7fa0_0001, -7));
    let u = untyped(
        &mut store,
        &i,
        "mixed",
        &[Val::I32(-7), Val::F32(0x7fa0_0001), Val::I64(i64::MIN + 3), Val::from(-0.5f64)],
    );
    assert_eq!(bits(&u), [(-0.5f64).to_bits(), (i64::MIN + 3) as u64, 0x7fa0_0001, -7i32 as u32 as u64]);

    let f = i.get_typed_func::<(i64, i64, i64, i64), (i64, i64, i64, i64)>(&mut store, "ints4").unwrap();
    assert_eq!(f.call(&mut store, (1, -2, i64::MAX, i64::MIN)).unwrap(), (i64::MIN, i64::MAX, -2, 1));

    let f = i.get_typed_func::<(i32, i32, i32, i32, i32), (i32, i32, i32, i32, i32)>(&mut store, "ints5").unwrap();
    assert_eq!(f.call(&mut store, (1, 2, 3, 4, -5)).unwrap(), (-5, 4, 3, 2, 1));

    let f = i.get_typed_func::<(f64, f64, f64, f64, f64, f64, f64, f64), f64>(&mut store, "floats8").unwrap();
    assert_eq!(f.call(&mut store, (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)).unwrap(), 255.0);

    let f = i.get_typed_func::<(f32, f32, f32, f32, f32, f32, f32, f32, f32), f32>(&mut store, "floats9").unwrap();
    assert_eq!(f.call(&mut store, (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.5)).unwrap(), 9.5);

    let f = i.get_typed_func::<(i32, f32), (i32, f32, i32, f32, i32, f32, i32, f32)>(&mut store, "results8").unwrap();
    assert_eq!(f.call(&mut store, (3, 1.5)).unwrap(), (3, 1.5, 3, 1.5, 3, 1.5, 3, 1.5));

    let f =
        i.get_typed_func::<(i64, f64, i64, f64, i64, f64, i64, f64), (f64, i64)>(&mut store, "ints_floats").unwrap();
    assert_eq!(f.call(&mut store, (1, 2.0, 3, 4.0, 5, 6.0, 7, 8.0)).unwrap(), (8.0, 7));

    let f = i.get_typed_func::<(u32, u64), (u64, u32)>(&mut store, "unsigned").unwrap();
    assert_eq!(f.call(&mut store, (u32::MAX, u64::MAX - 1)).unwrap(), (u64::MAX, 0));
    assert_eq!(f.call(&mut store, (0x8000_0000, 0x1_0000_0000)).unwrap(), (0x1_0000_0001, 0x8000_0001));
}

/// A trap in a directly entered call unwinds to it with the wasm
/// backtrace (ending at the entry frame), and the store stays usable;
/// stack overflow is detected and recovered from the same way.
#[test]
fn traps_backtraces_and_stack_overflow() {
    let wat = r#"(module $m
        (memory 1)
        (func $inner (param i32) (result i32) local.get 0 i32.load)
        (func $outer (export "load") (param i32) (result i32) local.get 0 call $inner)
        (func $deep (export "deep") (param i64) (result i64) local.get 0 i64.const 1 i64.add call $deep))"#;
    let engine = Engine::default();
    let (mut store, i) = instance(&engine, wat);
    let load = i.get_typed_func::<i32, i32>(&mut store, "load").unwrap();
    for _ in 0..3 {
        let err = load.call(&mut store, 70_000).unwrap_err();
        let t = err.downcast::<Trap>().expect("a Trap");
        assert_eq!(t.code(), TrapCode::MemoryOutOfBounds);
        let names: Vec<_> = t.backtrace().frames().iter().map(|f| f.func_name().unwrap_or("?").to_string()).collect();
        assert_eq!(names, ["inner", "outer"]);
        assert_eq!(load.call(&mut store, 0).unwrap(), 0);
    }
    let deep = i.get_typed_func::<i64, i64>(&mut store, "deep").unwrap();
    for _ in 0..2 {
        let t = deep.call(&mut store, 0).unwrap_err().downcast::<Trap>().expect("a Trap");
        assert_eq!(t.code(), TrapCode::StackOverflow);
        assert!(t.backtrace().frames().iter().all(|f| f.func_name() == Some("deep")));
    }
    assert_eq!(load.call(&mut store, 4).unwrap(), 0);
}

/// Host → wasm → host → wasm, all through typed calls: the nested call
/// returns its results, a trap in it reaches the host function that made
/// it, and the outer call's backtrace of a later trap is still its own.
#[test]
fn nested_typed_calls() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module $n
            (import "host" "back" (func $back (param i32) (result i32)))
            (func $twice (export "twice") (param i32) (result i32)
                local.get 0 i32.eqz if unreachable end
                local.get 0 i32.const 2 i32.mul)
            (func $run (export "run") (param i32) (result i32)
                local.get 0 call $back
                local.get 0 i32.const 1000 i32.eq if unreachable end))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, None::<TypedFunc<i32, i32>>);
    let mut linker = Linker::new(&engine);
    linker
        .func_wrap("host", "back", |mut caller: Caller<'_, Option<TypedFunc<i32, i32>>>, x: i32| -> Result<i32> {
            let twice = caller.data().expect("set");
            match twice.call(&mut caller, x) {
                Ok(v) => Ok(v + 1),
                Err(e) => {
                    let t = e.downcast::<Trap>()?;
                    assert_eq!(t.code(), TrapCode::UnreachableCodeReached);
                    let names: Vec<_> =
                        t.backtrace().frames().iter().map(|f| f.func_name().unwrap_or("?").to_string()).collect();
                    assert_eq!(names, ["twice"]);
                    Ok(-1)
                }
            }
        })
        .unwrap();
    let i = linker.instantiate(&mut store, &module).unwrap();
    let twice = i.get_typed_func::<i32, i32>(&mut store, "twice").unwrap();
    *store.data_mut() = Some(twice);
    let run = i.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    assert_eq!(run.call(&mut store, 5).unwrap(), 11);
    assert_eq!(run.call(&mut store, 0).unwrap(), -1);
    let t = run.call(&mut store, 1000).unwrap_err().downcast::<Trap>().expect("a Trap");
    let names: Vec<_> = t.backtrace().frames().iter().map(|f| f.func_name().unwrap_or("?").to_string()).collect();
    assert_eq!(names, ["run"]);
    assert_eq!(twice.call(&mut store, 21).unwrap(), 42);
}

/// The direct entry loads the fuel counter into the pinned register and
/// stores it back: typed calls are charged, run out, and see the host's
/// refuelling, as calls through the slots are.
#[test]
fn fuel_through_the_direct_entry() {
    let mut config = Config::new();
    config.consume_fuel(true);
    let engine = Engine::new(&config).unwrap();
    let (mut store, i) = instance(
        &engine,
        r#"(module
            (func (export "nop"))
            (func (export "spin") (param i32) (result i32)
                (loop $l (local.set 0 (i32.sub (local.get 0) (i32.const 1))) (br_if $l (local.get 0)))
                local.get 0))"#,
    );
    let nop = i.get_typed_func::<(), ()>(&mut store, "nop").unwrap();
    let spin = i.get_typed_func::<i32, i32>(&mut store, "spin").unwrap();
    store.set_fuel(1_000_000).unwrap();
    nop.call(&mut store, ()).unwrap();
    let after_nop = store.get_fuel().unwrap();
    untyped(&mut store, &i, "nop", &[]);
    assert_eq!(1_000_000 - after_nop, after_nop - store.get_fuel().unwrap());
    let after_nop = store.get_fuel().unwrap();
    assert_eq!(spin.call(&mut store, 100).unwrap(), 0);
    let per_100 = after_nop - store.get_fuel().unwrap();
    assert!(per_100 >= 100, "{per_100}");
    // The same through the untyped path costs the same.
    let before = store.get_fuel().unwrap();
    untyped(&mut store, &i, "spin", &[Val::I32(100)]);
    assert_eq!(before - store.get_fuel().unwrap(), per_100);
    store.set_fuel(50).unwrap();
    let t = spin.call(&mut store, 1_000).unwrap_err().downcast::<Trap>().expect("a Trap");
    assert_eq!(t.code(), TrapCode::OutOfFuel);
    assert_eq!(store.get_fuel().unwrap(), 0);
}
