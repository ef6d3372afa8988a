//! Host functions: Caller access, errors, re-entrancy.

use kiln::*;

#[derive(Debug)]
struct MyError(u32);
impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "my error {}", self.0)
    }
}
impl std::error::Error for MyError {}

#[test]
fn caller_sees_store_data_and_memory() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (import "host" "log" (func $log (param i32 i32)))
        (memory (export "memory") 1)
        (data (i32.const 16) "hello")
        (func (export "run") (call $log (i32.const 16) (i32.const 5))))"#,
    )?;
    let mut store = Store::new(&engine, Vec::<String>::new());
    let mut linker = Linker::new(&engine);
    linker.func_wrap("host", "log", |mut caller: Caller<'_, Vec<String>>, ptr: i32, len: i32| -> Result<()> {
        let mem = caller.get_export("memory").and_then(Extern::into_memory).expect("memory export");
        let mut buf = vec![0u8; len as usize];
        mem.read(&caller, ptr as usize, &mut buf)?;
        caller.data_mut().push(String::from_utf8(buf)?);
        Ok(())
    })?;
    let instance = linker.instantiate(&mut store, &module)?;
    instance.get_typed_func::<(), ()>(&mut store, "run")?.call(&mut store, ())?;
    assert_eq!(store.data(), &["hello".to_string()]);
    Ok(())
}

#[test]
fn host_error_reaches_caller_unchanged() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (import "host" "fail" (func $fail (param i32) (result i32)))
        (func (export "run") (param i32) (result i32) local.get 0 call $fail))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let fail = Func::wrap(&mut store, |x: i32| -> Result<i32> { Err(MyError(x as u32).into()) });
    let instance = Instance::new(&mut store, &module, &[fail.into()])?;
    let run = instance.get_typed_func::<i32, i32>(&mut store, "run")?;
    let err = run.call(&mut store, 42).unwrap_err();
    assert_eq!(err.downcast_ref::<MyError>().map(|e| e.0), Some(42));
    // Still usable afterwards.
    assert!(run.call(&mut store, 1).is_err());
    Ok(())
}

#[test]
fn host_panic_is_resumed_in_the_caller() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (import "host" "panic" (func $p))
        (func (export "run") call $p))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let p = Func::wrap(&mut store, || -> () { panic!("host panic") });
    let instance = Instance::new(&mut store, &module, &[p.into()]).unwrap();
    let run = instance.get_typed_func::<(), ()>(&mut store, "run").unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.call(&mut store, ())));
    assert!(r.is_err());
}

#[test]
fn reentrant_calls_and_multi_value() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (import "host" "down" (func $down (param i32) (result i32 i32)))
        (func (export "count") (param i32) (result i32 i32)
            local.get 0
            i32.eqz
            if (result i32 i32)
                i32.const 0 i32.const 0
            else
                local.get 0 call $down
            end))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker.func_wrap("host", "down", |mut caller: Caller<'_, ()>, n: i32| -> Result<(i32, i32)> {
        let count = caller.get_export("count").and_then(Extern::into_func).expect("count");
        let count = count.typed::<i32, (i32, i32)>(&caller)?;
        let (depth, sum) = count.call(&mut caller, n - 1)?;
        Ok((depth + 1, sum + n))
    })?;
    let instance = linker.instantiate(&mut store, &module)?;
    let count = instance.get_typed_func::<i32, (i32, i32)>(&mut store, "count")?;
    assert_eq!(count.call(&mut store, 100)?, (100, 5050));
    Ok(())
}

#[test]
fn unbounded_reentrant_recursion_is_a_stack_overflow_trap() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (import "host" "again" (func $again (param i32)))
        (func (export "go") (param i32) local.get 0 i32.const 1 i32.add call $again))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker.func_wrap("host", "again", |mut caller: Caller<'_, ()>, n: i32| -> Result<()> {
        let go = caller.get_export("go").and_then(Extern::into_func).expect("go");
        go.typed::<i32, ()>(&caller)?.call(&mut caller, n)
    })?;
    let instance = linker.instantiate(&mut store, &module)?;
    let go = instance.get_typed_func::<i32, ()>(&mut store, "go")?;
    let err = go.call(&mut store, 0).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>().map(|t| t.code()), Some(TrapCode::StackOverflow), "{err:#}");
    Ok(())
}

#[test]
fn dynamic_host_function() -> Result<()> {
    let engine = Engine::default();
    let mut store = Store::new(&engine, 0u32);
    let ty = FuncType::new([ValType::I64, ValType::F64], [ValType::F64]);
    let f = Func::new(&mut store, ty, |mut caller, params, results| {
        *caller.data_mut() += 1;
        results[0] = Val::from(params[0].i64().unwrap_or(0) as f64 * params[1].f64().unwrap_or(0.0));
        Ok(())
    });
    let module = Module::new(
        &engine,
        r#"(module
        (import "" "f" (func $f (param i64 f64) (result f64)))
        (func (export "run") (result f64) i64.const 3 f64.const 1.5 call $f))"#,
    )?;
    let instance = Instance::new(&mut store, &module, &[f.into()])?;
    let run = instance.get_typed_func::<(), f64>(&mut store, "run")?;
    assert_eq!(run.call(&mut store, ())?, 4.5);
    // Calling the host function directly from the host works too.
    let mut out = [Val::F64(0)];
    f.call(&mut store, &[Val::I64(2), Val::from(2.0f64)], &mut out)?;
    assert_eq!(out[0].f64(), Some(4.0));
    assert_eq!(*store.data(), 2);
    Ok(())
}
