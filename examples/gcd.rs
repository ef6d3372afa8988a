//! GCD: compile a module from the text format and call a typed export.
//!
//! `cargo run --example gcd`

use anyhow::Result;
use kiln::{Engine, Instance, Module, Store};

/// Euclid's algorithm with a loop.
const GCD: &str = r#"(module
    (func $gcd (export "gcd") (param $a i32) (param $b i32) (result i32) (local $t i32)
        (block $done
            (loop $next
                (br_if $done (i32.eqz (local.get $b)))
                (local.set $t (i32.rem_u (local.get $a) (local.get $b)))
                (local.set $a (local.get $b))
                (local.set $b (local.get $t))
                (br $next)))
        (local.get $a)))"#;

/// Computes a few GCDs in wasm; returns one line per pair.
fn run() -> Result<String> {
    let engine = Engine::default();
    let module = Module::new(&engine, GCD)?;
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[])?;
    // A typed view checks the signature once, then calls without boxing values.
    let gcd = instance.get_typed_func::<(i32, i32), i32>(&mut store, "gcd")?;
    let mut out = String::new();
    for (a, b) in [(6, 27), (1071, 462), (17, 5)] {
        out += &format!("gcd({a}, {b}) = {}\n", gcd.call(&mut store, (a, b))?);
    }
    Ok(out)
}

fn main() -> Result<()> {
    print!("{}", run()?);
    Ok(())
}

#[test]
fn computes_gcds() -> Result<()> {
    assert_eq!(run()?, "gcd(6, 27) = 3\ngcd(1071, 462) = 21\ngcd(17, 5) = 1\n");
    Ok(())
}
