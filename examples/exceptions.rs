//! Exceptions: wasm throws and catches its own; an exception nothing
//! catches reaches the host as `ThrownException`, with the tag and payload
//! in the store's pending exception; and a host function throws into its
//! wasm caller.
//!
//! `cargo run --example exceptions`

use anyhow::Result;
use kiln::{
    AsContextMut, Caller, Engine, ExnRef, FuncType, Linker, Module, Store, Tag, TagType, ThrownException, Val, ValType,
};

const WAT: &str = r#"(module
    (import "host" "oops" (tag $oops (param i32)))
    (import "host" "check" (func $check (param i32)))
    ;; Divides, throwing $oops with the dividend when the divisor is 0.
    (func $div (param i32 i32) (result i32)
        (if (i32.eqz (local.get 1)) (then (throw $oops (local.get 0))))
        (i32.div_s (local.get 0) (local.get 1)))
    ;; Catches $oops from $div and returns -1 instead.
    (func (export "safe_div") (param i32 i32) (result i32)
        (block $caught (result i32)
            (try_table (catch $oops $caught)
                (return (call $div (local.get 0) (local.get 1))))
            unreachable)
        drop
        i32.const -1)
    ;; Lets it through to the host.
    (func (export "div") (param i32 i32) (result i32)
        (call $div (local.get 0) (local.get 1)))
    ;; Catches what the host function throws: returns its payload, or 0.
    (func (export "checked") (param i32) (result i32)
        (block $caught (result i32)
            (try_table (catch $oops $caught)
                (call $check (local.get 0)))
            (return (i32.const 0)))))"#;

/// Runs the three cases; returns what happened.
fn run() -> Result<String> {
    // Exception handling is on by default (WebAssembly 3.0).
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let oops = Tag::new(&mut store, &TagType::new(FuncType::new([ValType::I32], []))?)?;
    let mut linker = Linker::new(&engine);
    linker.define("host", "oops", oops)?;
    linker.func_wrap("host", "check", move |mut caller: Caller<'_, ()>, x: i32| -> Result<()> {
        if x < 0 {
            // Throw `oops(x)` into the wasm that called us.
            let exn = ExnRef::new(&mut caller, &oops, &[Val::I32(x)])?;
            return caller.as_context_mut().throw(&exn);
        }
        Ok(())
    })?;
    let instance = linker.instantiate(&mut store, &Module::new(&engine, WAT)?)?;
    let mut out = String::new();

    let safe_div = instance.get_typed_func::<(i32, i32), i32>(&mut store, "safe_div")?;
    out += &format!("safe_div(7, 2) = {}\n", safe_div.call(&mut store, (7, 2))?);
    out += &format!("safe_div(7, 0) = {}\n", safe_div.call(&mut store, (7, 0))?);

    let div = instance.get_typed_func::<(i32, i32), i32>(&mut store, "div")?;
    match div.call(&mut store, (9, 0)) {
        Err(e) if e.is::<ThrownException>() => {
            let exn = store.take_pending_exception().expect("the thrown exception");
            let payload = exn.field(&mut store, 0)?.i32().unwrap_or_default();
            let same_tag = exn.tag(&store)?.same(&store, &oops);
            out += &format!("div(9, 0): uncaught exception, tag oops: {same_tag}, payload {payload}\n");
        }
        other => out += &format!("div(9, 0): unexpected {other:?}\n"),
    }

    let checked = instance.get_typed_func::<i32, i32>(&mut store, "checked")?;
    out += &format!("checked(5) = {}\n", checked.call(&mut store, 5)?);
    out += &format!("checked(-5) = {}\n", checked.call(&mut store, -5)?);
    Ok(out)
}

fn main() -> Result<()> {
    print!("{}", run()?);
    Ok(())
}

#[test]
fn throws_and_catches() -> Result<()> {
    assert_eq!(
        run()?,
        "safe_div(7, 2) = 3\nsafe_div(7, 0) = -1\ndiv(9, 0): uncaught exception, tag oops: true, payload 9\n\
         checked(5) = 0\nchecked(-5) = -5\n"
    );
    Ok(())
}
