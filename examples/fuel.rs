//! Fuel: a deterministic budget of wasm instructions. The same program
//! with the same fuel stops at the same instruction on every machine.
//!
//! `cargo run --example fuel`

use anyhow::Result;
use kiln::{Config, Engine, Instance, Module, Store, Trap, TrapCode};

const FIB: &str = r#"(module
    (func $fib (export "fib") (param i32) (result i32)
        (if (result i32) (i32.lt_s (local.get 0) (i32.const 2))
            (then (local.get 0))
            (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                           (call $fib (i32.sub (local.get 0) (i32.const 2))))))))"#;

/// Fuel given to each call.
const FUEL: u64 = 100_000;

/// Calls `fib` with a fuel budget until it runs out; returns what happened.
fn run() -> Result<String> {
    let mut config = Config::new();
    // Compiled code counts fuel; each store then says how much it has.
    config.consume_fuel(true);
    let engine = Engine::new(&config)?;
    let module = Module::new(&engine, FIB)?;
    let mut store = Store::new(&engine, ());
    let fib = Instance::new(&mut store, &module, &[])?.get_typed_func::<i32, i32>(&mut store, "fib")?;
    let mut out = String::new();
    for n in [10, 15, 30] {
        store.set_fuel(FUEL)?;
        match fib.call(&mut store, n) {
            Ok(v) => out += &format!("fib({n}) = {v}, {} fuel used\n", FUEL - store.get_fuel()?),
            Err(e) => match e.downcast_ref::<Trap>() {
                Some(t) if t.code() == TrapCode::OutOfFuel => out += &format!("fib({n}): out of fuel after {FUEL}\n"),
                _ => return Err(e),
            },
        }
    }
    Ok(out)
}

fn main() -> Result<()> {
    print!("{}", run()?);
    Ok(())
}

#[test]
fn runs_out_of_fuel_on_the_big_one() -> Result<()> {
    let out = run()?;
    let lines: Vec<&str> = out.lines().collect();
    let used = |line: &str, prefix: &str| -> Option<u64> {
        line.strip_prefix(prefix)?.strip_suffix(" fuel used")?.parse().ok()
    };
    let (small, medium) = (used(lines[0], "fib(10) = 55, "), used(lines[1], "fib(15) = 610, "));
    assert!(matches!((small, medium), (Some(s), Some(m)) if 0 < s && s < m && m < FUEL), "{out}");
    assert_eq!(lines[2], "fib(30): out of fuel after 100000", "{out}");
    // Deterministic: the same call uses the same fuel every time.
    assert_eq!(run()?, out);
    Ok(())
}
