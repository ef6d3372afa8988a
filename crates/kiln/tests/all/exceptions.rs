//! Exception handling through the embedding API: uncaught exceptions and
//! the pending exception, host functions throwing into wasm, exceptions
//! crossing host frames, traps never caught, handler order, tag identity,
//! payload types, and memory staying flat when throwing in a loop.

use kiln::__private_testing::exception_objects;
use kiln::{
    AsContextMut, Caller, Config, Engine, ExnRef, ExternRef, Instance, Linker, Module, Store, Tag, ThrownException,
    Trap, TrapCode, V128, Val, WasmFeature,
};

fn engine_with(f: impl FnOnce(&mut Config)) -> Engine {
    let mut config = Config::new();
    config.wasm_feature_set(WasmFeature::Exceptions, true);
    f(&mut config);
    Engine::new(&config).expect("engine")
}

fn engine() -> Engine {
    engine_with(|_| {})
}

fn instance(store: &mut Store<()>, wat: &str) -> anyhow::Result<Instance> {
    let module = Module::new(store.engine(), wat)?;
    Instance::new(&mut *store, &module, &[])
}

fn call_i32(store: &mut Store<()>, inst: &Instance, name: &str, arg: i32) -> anyhow::Result<i32> {
    inst.get_typed_func::<i32, i32>(&mut *store, name)?.call(&mut *store, arg)
}

#[test]
fn an_uncaught_exception_is_pending_with_its_tag_and_payload() -> anyhow::Result<()> {
    let mut store = Store::new(&engine(), ());
    let inst = instance(
        &mut store,
        r#"(module
             (tag $e (export "e") (param i32 f64))
             (func (export "throw") (param i32) (result i32)
               local.get 0
               f64.const 2.5
               throw $e))"#,
    )?;
    let err = call_i32(&mut store, &inst, "throw", 7).expect_err("uncaught");
    assert!(err.is::<ThrownException>(), "{err:#}");
    let exn = store.take_pending_exception().expect("pending");
    assert!(store.take_pending_exception().is_none(), "taken once");
    let e = inst.get_tag(&mut store, "e").expect("tag");
    assert!(exn.tag(&store)?.same(&store, &e));
    let fields = exn.fields(&mut store)?;
    assert_eq!(fields.len(), 2);
    assert_eq!(fields[0].i32(), Some(7));
    assert_eq!(fields[1].f64(), Some(2.5));
    assert_eq!(exn.field(&mut store, 1)?.f64(), Some(2.5));
    assert!(exn.field(&mut store, 2).is_err());
    Ok(())
}

#[test]
fn a_host_function_throws_into_wasm_which_catches_it() -> anyhow::Result<()> {
    let engine = engine();
    let mut store = Store::new(&engine, ());
    let tag = Tag::new(&mut store, &kiln::TagType::new(kiln::FuncType::new([kiln::ValType::I32], []))?)?;
    let mut linker = Linker::new(&engine);
    linker.define("host", "e", tag)?;
    linker.func_wrap("host", "throw", move |mut caller: Caller<'_, ()>, x: i32| -> anyhow::Result<()> {
        let exn = ExnRef::new(&mut caller, &tag, &[Val::I32(x * 2)])?;
        caller.as_context_mut().throw(&exn)
    })?;
    let module = Module::new(
        &engine,
        r#"(module
             (import "host" "e" (tag $e (param i32)))
             (import "host" "throw" (func $throw (param i32)))
             (func (export "run") (param i32) (result i32)
               (block $h (result i32)
                 (try_table (catch $e $h)
                   local.get 0
                   call $throw)
                 i32.const -1))
             (func (export "escape") (param i32) (result i32)
               local.get 0
               call $throw
               i32.const -1))"#,
    )?;
    let inst = linker.instantiate(&mut store, &module)?;
    assert_eq!(call_i32(&mut store, &inst, "run", 21)?, 42);
    let err = call_i32(&mut store, &inst, "escape", 5).expect_err("not caught");
    assert!(err.is::<ThrownException>());
    let exn = store.take_pending_exception().expect("pending");
    assert!(exn.tag(&store)?.same(&store, &tag));
    assert_eq!(exn.field(&mut store, 0)?.i32(), Some(10));
    Ok(())
}

#[test]
fn exceptions_cross_host_frames_by_propagation() -> anyhow::Result<()> {
    let engine = engine();
    let mut store = Store::new(&engine, ());
    let inner = instance(
        &mut store,
        r#"(module
             (tag $e (export "e") (param i32))
             (func (export "throw") (param i32)
               local.get 0
               throw $e))"#,
    )?;
    let inner_throw = inner.get_typed_func::<i32, ()>(&mut store, "throw")?;
    let mut linker = Linker::new(&engine);
    linker.define("inner", "e", inner.get_tag(&mut store, "e").expect("tag"))?;
    linker.func_wrap("host", "call_inner", move |mut caller: Caller<'_, ()>, x: i32| -> anyhow::Result<()> {
        // The inner call fails with `ThrownException`; passing the error
        // on rethrows the pending exception into the outer wasm.
        inner_throw.call(&mut caller, x + 1)
    })?;
    let module = Module::new(
        &engine,
        r#"(module
             (import "inner" "e" (tag $e (param i32)))
             (import "host" "call_inner" (func $call (param i32)))
             (func (export "run") (param i32) (result i32)
               (block $h (result i32)
                 (try_table (catch $e $h)
                   local.get 0
                   call $call)
                 i32.const -1)))"#,
    )?;
    let outer = linker.instantiate(&mut store, &module)?;
    assert_eq!(call_i32(&mut store, &outer, "run", 41)?, 42);
    Ok(())
}

#[test]
fn traps_are_never_caught_by_wasm_handlers() -> anyhow::Result<()> {
    let engine = engine_with(|c| {
        c.consume_fuel(true);
    });
    let mut store = Store::new(&engine, ());
    store.set_fuel(1_000_000)?;
    let inst = instance(
        &mut store,
        r#"(module
             (memory 1)
             (func $unreachable unreachable)
             (func $oob (drop (i32.load (i32.const 70000))))
             (func $div (drop (i32.div_s (i32.const 1) (i32.const 0))))
             (func $recurse (call $recurse))
             (func $spin (loop $l (br $l)))
             (func $null (throw_ref (ref.null exn)))
             (table funcref (elem $unreachable $oob $div $recurse $spin $null))
             (func (export "run") (param i32) (result i32)
               (block $h
                 (try_table (catch_all $h)
                   local.get 0
                   call_indirect)
                 (return (i32.const 0)))
               i32.const 1))"#,
    )?;
    let expected = [
        TrapCode::UnreachableCodeReached,
        TrapCode::MemoryOutOfBounds,
        TrapCode::IntegerDivisionByZero,
        TrapCode::StackOverflow,
        TrapCode::OutOfFuel,
        TrapCode::NullReference,
    ];
    for (i, code) in expected.into_iter().enumerate() {
        let err = call_i32(&mut store, &inst, "run", i as i32).expect_err("a trap");
        let trap = err.downcast_ref::<Trap>().unwrap_or_else(|| panic!("{i}: not a trap: {err:#}"));
        assert_eq!(trap.code(), code, "{i}");
        store.set_fuel(1_000_000)?;
    }
    Ok(())
}

#[test]
fn handlers_are_tried_innermost_first_and_in_order() -> anyhow::Result<()> {
    let mut store = Store::new(&engine(), ());
    let inst = instance(
        &mut store,
        r#"(module
             (tag $e (param i32))
             (tag $f)
             (func $throw_e (param i32) (local.get 0) (throw $e))
             (func $throw_f (throw $f))
             ;; The inner catch_all wins over the outer tagged clause.
             (func (export "inner_catch_all") (param i32) (result i32)
               (block $outer (result i32)
                 (try_table (catch $e $outer)
                   (block $inner
                     (try_table (catch_all $inner)
                       local.get 0
                       call $throw_e))
                   (return (i32.const 100)))
                 i32.const -1))
             ;; Within one table, the first matching clause wins; an
             ;; exception of another tag passes the inner table by.
             (func (export "clauses") (param i32) (result i32)
               (block $outer
                 (block $by_e (result i32)
                   (try_table (catch $e $by_e) (catch_all $outer)
                     local.get 0
                     if
                       call $throw_f
                     else
                       i32.const 5
                       call $throw_e
                     end)
                   (return (i32.const -1)))
                 return)
               i32.const 200))"#,
    )?;
    assert_eq!(call_i32(&mut store, &inst, "inner_catch_all", 1)?, 100);
    assert_eq!(call_i32(&mut store, &inst, "clauses", 0)?, 5);
    assert_eq!(call_i32(&mut store, &inst, "clauses", 1)?, 200);
    Ok(())
}

#[test]
fn tags_match_by_identity_across_instances() -> anyhow::Result<()> {
    let engine = engine();
    let mut store = Store::new(&engine, ());
    let a = instance(
        &mut store,
        r#"(module
             (tag $e (export "e") (param i32))
             (tag $same_type (export "same_type") (param i32))
             (func (export "throw_e") (param i32) (local.get 0) (throw $e))
             (func (export "throw_same_type") (param i32) (local.get 0) (throw $same_type)))"#,
    )?;
    let mut linker = Linker::new(&engine);
    linker.instance(&mut store, "a", a)?;
    let module = Module::new(
        &engine,
        r#"(module
             (import "a" "e" (tag $e (param i32)))
             (import "a" "e" (tag $e_again (param i32)))
             (import "a" "throw_e" (func $throw_e (param i32)))
             (import "a" "throw_same_type" (func $throw_same_type (param i32)))
             (func (export "catch_e") (param i32) (result i32)
               (block $h (result i32)
                 (try_table (catch $e $h)
                   local.get 0
                   call $throw_e)
                 i32.const -1))
             (func (export "catch_e_again") (param i32) (result i32)
               (block $h (result i32)
                 (try_table (catch $e_again $h)
                   local.get 0
                   call $throw_e)
                 i32.const -1))
             (func (export "miss") (param i32) (result i32)
               (block $h (result i32)
                 (try_table (catch $e $h)
                   local.get 0
                   call $throw_same_type)
                 i32.const -1)))"#,
    )?;
    let b = linker.instantiate(&mut store, &module)?;
    assert_eq!(call_i32(&mut store, &b, "catch_e", 3)?, 3);
    assert_eq!(call_i32(&mut store, &b, "catch_e_again", 4)?, 4, "two imports of one tag are one tag");
    let err = call_i32(&mut store, &b, "miss", 5).expect_err("a distinct tag of the same type");
    assert!(err.is::<ThrownException>());
    Ok(())
}

#[test]
fn exceptions_pass_through_indirect_calls_and_call_ref() -> anyhow::Result<()> {
    let mut store = Store::new(&engine(), ());
    let inst = instance(
        &mut store,
        r#"(module
             (type $t (func (param i32)))
             (tag $e (param i32))
             (func $throw (type $t) (local.get 0) (throw $e))
             (table funcref (elem $throw))
             (elem declare func $throw)
             (func (export "indirect") (param i32) (result i32)
               (block $h (result i32)
                 (try_table (catch $e $h)
                   (call_indirect (type $t) (local.get 0) (i32.const 0)))
                 i32.const -1))
             (func (export "by_ref") (param i32) (result i32)
               (block $h (result i32)
                 (try_table (catch $e $h)
                   (call_ref $t (local.get 0) (ref.func $throw)))
                 i32.const -1)))"#,
    )?;
    assert_eq!(call_i32(&mut store, &inst, "indirect", 11)?, 11);
    assert_eq!(call_i32(&mut store, &inst, "by_ref", 12)?, 12);
    Ok(())
}

#[test]
fn payloads_of_every_value_type_round_trip() -> anyhow::Result<()> {
    let engine = engine();
    let mut store = Store::new(&engine, ());
    let inst = instance(
        &mut store,
        r#"(module
             (tag $inner (param i32))
             (tag $e (export "e") (param i32 i64 f32 f64 v128 externref funcref exnref))
             (func $f (export "f"))
             (elem declare func $f)
             (func (export "run") (param externref) (result i32 i64 f32 f64 v128 externref funcref exnref)
               (block $h (result i32 i64 f32 f64 v128 externref funcref exnref)
                 (try_table (catch $e $h)
                   i32.const -7
                   i64.const 0x1234567890
                   f32.const 1.5
                   f64.const -0.25
                   v128.const i64x2 0x0102030405060708 0x1112131415161718
                   local.get 0
                   ref.func $f
                   (block $inner_h (result i32 exnref)
                     (try_table (catch_ref $inner $inner_h)
                       (throw $inner (i32.const 9)))
                     unreachable)
                   drop
                   drop
                   (block $inner_h2 (result exnref)
                     (try_table (catch_all_ref $inner_h2)
                       (throw $inner (i32.const 9)))
                     unreachable)
                   throw $e)
                 unreachable)))"#,
    )?;
    let run = inst.get_func(&mut store, "run").expect("run");
    let host = ExternRef::new(String::from("payload"));
    let mut results = vec![Val::I32(0); 8];
    run.call(&mut store, &[Val::ExternRef(Some(host.clone()))], &mut results)?;
    assert_eq!(results[0].i32(), Some(-7));
    assert_eq!(results[1].i64(), Some(0x1234567890));
    assert_eq!(results[2].f32(), Some(1.5));
    assert_eq!(results[3].f64(), Some(-0.25));
    let Val::V128(v) = &results[4] else { panic!("v128") };
    assert_eq!(*v, V128::from(0x1112131415161718_0102030405060708u128));
    let Val::ExternRef(Some(r)) = &results[5] else { panic!("externref") };
    assert!(ExternRef::ptr_eq(r, &host));
    assert!(matches!(&results[6], Val::FuncRef(Some(_))));
    let Val::ExnRef(Some(inner)) = &results[7] else { panic!("exnref") };
    assert_eq!(inner.field(&mut store, 0)?.i32(), Some(9));
    Ok(())
}

/// A million throws, caught with and without the object, keep the number
/// of exception objects bounded: dead ones are collected while wasm runs.
#[test]
fn throwing_a_million_times_keeps_memory_flat() -> anyhow::Result<()> {
    let mut store = Store::new(&engine(), ());
    let inst = instance(
        &mut store,
        r#"(module
             (tag $e (param i32))
             (global $kept (mut exnref) (ref.null exn))
             (func $throw (param i32) (local.get 0) (throw $e))
             (func (export "catch") (param i32) (result i32)
               (local $sum i32)
               (loop $l
                 (block $h (result i32)
                   (try_table (catch $e $h)
                     (call $throw (local.get 0)))
                   unreachable)
                 (local.set $sum (i32.add (local.get $sum)))
                 (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
               local.get $sum)
             (func (export "catch_ref") (param i32) (result i32)
               (local $last exnref)
               (local $n i32)
               (loop $l
                 (block $h (result exnref)
                   (try_table (catch_all_ref $h)
                     (call $throw (local.get 0)))
                   unreachable)
                 (local.set $last)
                 ;; Keep one object in a global, replaced now and then.
                 (if (i32.eqz (i32.rem_u (local.get 0) (i32.const 1000)))
                   (then (global.set $kept (local.get $last))))
                 (local.set $n (i32.add (local.get $n) (i32.const 1)))
                 (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
               ;; The last object and the kept one are still usable.
               (block $h (result i32)
                 (try_table (catch $e $h) (throw_ref (global.get $kept)))
                 unreachable)
               (block $h2 (result i32)
                 (try_table (catch $e $h2) (throw_ref (local.get $last)))
                 unreachable)
               i32.add))"#,
    )?;
    let n = 1_000_000;
    assert_eq!(call_i32(&mut store, &inst, "catch", n)?, (1..=n).fold(0i32, |a, b| a.wrapping_add(b)));
    let after_catch = exception_objects(&store);
    assert!(after_catch <= 1024, "{after_catch} objects after a million caught throws");
    // The kept object was set at 1000, the last one at 1.
    assert_eq!(call_i32(&mut store, &inst, "catch_ref", n)?, 1001);
    let after_ref = exception_objects(&store);
    assert!(after_ref <= 1024, "{after_ref} objects after a million caught-by-reference throws");
    Ok(())
}

/// Objects reachable only from a table survive collections, and the
/// externrefs in their payloads stay alive with them.
#[test]
fn objects_in_tables_survive_collections() -> anyhow::Result<()> {
    let mut store = Store::new(&engine(), ());
    let inst = instance(
        &mut store,
        r#"(module
             (tag $e (export "e") (param externref))
             (tag $noise)
             (table $t 1 exnref)
             (func (export "keep") (param externref)
               (local $x exnref)
               (block $h (result externref exnref)
                 (try_table (catch_ref $e $h) (throw $e (local.get 0)))
                 unreachable)
               local.set $x
               drop
               (table.set $t (i32.const 0) (local.get $x)))
             (func (export "noise") (param i32)
               (loop $l
                 (block $h (try_table (catch_all $h) (throw $noise)))
                 (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1))))))
             (func (export "get") (result externref)
               (block $h (result externref)
                 (try_table (catch $e $h) (throw_ref (table.get $t (i32.const 0))))
                 unreachable)))"#,
    )?;
    let host = ExternRef::new(42u32);
    inst.get_typed_func::<Option<ExternRef>, ()>(&mut store, "keep")?.call(&mut store, Some(host.clone()))?;
    inst.get_typed_func::<i32, ()>(&mut store, "noise")?.call(&mut store, 100_000)?;
    store.gc();
    let got = inst.get_typed_func::<(), Option<ExternRef>>(&mut store, "get")?.call(&mut store, ())?;
    assert!(got.is_some_and(|r| ExternRef::ptr_eq(&r, &host)));
    assert!(exception_objects(&store) <= 1024);
    Ok(())
}

/// Fuel is charged the same way on every run of code that throws and
/// catches, and runs out inside a throwing loop like anywhere else.
#[test]
fn fuel_is_exact_across_throws() -> anyhow::Result<()> {
    let engine = engine_with(|c| {
        c.consume_fuel(true);
    });
    let mut store = Store::new(&engine, ());
    let inst = instance(
        &mut store,
        r#"(module
             (tag $e (param i32))
             (func $throw (param i32) (local.get 0) (throw $e))
             (func (export "run") (param i32) (result i32)
               (local $sum i32)
               (loop $l
                 (block $h (result i32)
                   (try_table (catch $e $h) (call $throw (local.get 0)))
                   unreachable)
                 (local.set $sum (i32.add (local.get $sum)))
                 (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
               local.get $sum))"#,
    )?;
    let mut used = Vec::new();
    for n in [10, 10, 20] {
        store.set_fuel(1_000_000)?;
        call_i32(&mut store, &inst, "run", n)?;
        used.push(1_000_000 - store.get_fuel()?);
    }
    assert_eq!(used[0], used[1], "same run, same fuel");
    let ten_more = used[2] - used[1];
    assert!(ten_more > 0 && ten_more % 10 == 0, "{used:?}: ten more iterations cost ten times one");
    store.set_fuel(used[0] / 2)?;
    let err = call_i32(&mut store, &inst, "run", 10).expect_err("half the fuel");
    assert_eq!(err.downcast_ref::<Trap>().map(|t| t.code()), Some(TrapCode::OutOfFuel));
    Ok(())
}

/// Exception references through the rest of the API: typed function
/// parameters and results, host-created globals and tables, and a host
/// function that receives one.
#[test]
fn exception_references_cross_the_api() -> anyhow::Result<()> {
    use kiln::{Global, GlobalType, Mutability, Table, TableType, ValType};
    let engine = engine();
    let mut store = Store::new(&engine, ());
    let tag = Tag::new(&mut store, &kiln::TagType::new(kiln::FuncType::new([ValType::I32], []))?)?;
    let exn = ExnRef::new(&mut store, &tag, &[Val::I32(5)])?;
    assert!(ExnRef::new(&mut store, &tag, &[Val::I64(5)]).is_err(), "payload of the wrong type");
    assert!(ExnRef::new(&mut store, &tag, &[]).is_err(), "payload too short");

    let global =
        Global::new(&mut store, GlobalType::new(ValType::ExnRef, Mutability::Var), Val::ExnRef(Some(exn.clone())))?;
    let table = Table::new(&mut store, TableType::new(ValType::ExnRef, 2, None), Val::ExnRef(None))?;
    table.set(&mut store, 1, Val::ExnRef(Some(exn.clone())))?;
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
    let seen2 = seen.clone();
    let mut linker = Linker::new(&engine);
    linker.define("host", "e", tag)?;
    linker.define("host", "g", global)?;
    linker.define("host", "t", table)?;
    linker.func_wrap("host", "look", move |mut caller: Caller<'_, ()>, e: Option<ExnRef>| -> anyhow::Result<()> {
        let v = e.expect("non-null").field(&mut caller, 0)?.i32().expect("i32");
        seen2.store(v, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    })?;
    let module = Module::new(
        &engine,
        r#"(module
             (import "host" "e" (tag $e (param i32)))
             (import "host" "g" (global $g (mut exnref)))
             (import "host" "t" (table $t 2 exnref))
             (import "host" "look" (func $look (param exnref)))
             (func (export "payload") (param exnref) (result i32)
               (block $h (result i32)
                 (try_table (catch $e $h) (throw_ref (local.get 0)))
                 unreachable))
             (func (export "from_global") (result i32)
               (call $look (global.get $g))
               (block $h (result i32)
                 (try_table (catch $e $h) (throw_ref (global.get $g)))
                 unreachable))
             (func (export "from_table") (result exnref) (table.get $t (i32.const 1))))"#,
    )?;
    let inst = linker.instantiate(&mut store, &module)?;
    let payload = inst.get_typed_func::<Option<ExnRef>, i32>(&mut store, "payload")?;
    assert_eq!(payload.call(&mut store, Some(exn.clone()))?, 5);
    let err = payload.call(&mut store, None).expect_err("throw_ref null");
    assert_eq!(err.downcast_ref::<Trap>().map(|t| t.code()), Some(TrapCode::NullReference));
    assert_eq!(inst.get_typed_func::<(), i32>(&mut store, "from_global")?.call(&mut store, ())?, 5);
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 5);
    let back = inst.get_typed_func::<(), Option<ExnRef>>(&mut store, "from_table")?.call(&mut store, ())?;
    assert!(back.is_some_and(|b| ExnRef::ptr_eq(&b, &exn)));

    // A reference of another store is refused.
    let mut other = Store::new(&engine, ());
    let other_global = Global::new(&mut other, GlobalType::new(ValType::ExnRef, Mutability::Var), Val::ExnRef(None))?;
    assert!(other_global.set(&mut other, Val::ExnRef(Some(exn))).is_err());
    Ok(())
}

/// With polled epochs and no fuel, the store context lives in a pinned
/// register for the whole activation: a handler must find it there again
/// after the throw went through the runtime (which may use that register),
/// or the loop's epoch checks after a catch would read garbage.
#[test]
fn polled_epoch_checks_work_after_a_catch() -> anyhow::Result<()> {
    let engine = engine_with(|c| {
        c.epoch_interruption(true).epoch_interruption_signals(false);
    });
    let mut store = Store::new(&engine, ());
    store.set_epoch_deadline(1_000_000);
    let inst = instance(
        &mut store,
        r#"(module
             (tag $e (param i32))
             (func $throw (param i32) (local.get 0) (throw $e))
             (func $id (param i32) (result i32) (local.get 0))
             (func (export "run") (param i32) (result i32)
               (local $sum i32)
               (loop $l
                 (block $h (result i32)
                   (try_table (catch $e $h) (call $throw (local.get 0)))
                   unreachable)
                 ;; a call after the catch, and the loop's epoch check
                 (local.set $sum (i32.add (local.get $sum) (call $id)))
                 (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
               local.get $sum))"#,
    )?;
    assert_eq!(call_i32(&mut store, &inst, "run", 1000)?, 500_500);
    // The deadline still interrupts a loop that throws.
    engine.increment_epoch();
    store.set_epoch_deadline(0);
    let err = call_i32(&mut store, &inst, "run", 1_000_000).expect_err("interrupted");
    assert_eq!(err.downcast_ref::<Trap>().map(|t| t.code()), Some(TrapCode::Interrupt));
    Ok(())
}
