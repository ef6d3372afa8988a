//! Linking: one module imports a function and a memory that another
//! module exports, resolved by name through a `Linker`.
//!
//! `cargo run --example linking`

use anyhow::Result;
use kiln::{Engine, Linker, Module, Store};

/// Exports a counter and the memory it keeps it in.
const LIBRARY: &str = r#"(module
    (memory (export "memory") 1)
    (func (export "next") (result i32)
        (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
        (i32.load (i32.const 0))))"#;

/// Uses the library's counter, and reads the library's memory directly.
const APP: &str = r#"(module
    (import "lib" "next" (func $next (result i32)))
    (import "lib" "memory" (memory 1))
    (func (export "main") (result i32)
        (drop (call $next))
        (drop (call $next))
        (i32.add (call $next) (i32.mul (i32.load (i32.const 0)) (i32.const 100)))))"#;

/// Links the two modules; returns what it printed.
fn run() -> Result<String> {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    // Instantiate the library and define its exports as `lib::*`.
    linker.module(&mut store, "lib", &Module::new(&engine, LIBRARY)?)?;
    let app = linker.instantiate(&mut store, &Module::new(&engine, APP)?)?;
    let main = app.get_typed_func::<(), i32>(&mut store, "main")?;
    Ok(format!("main() = {}\n", main.call(&mut store, ())?))
}

fn main() -> Result<()> {
    print!("{}", run()?);
    Ok(())
}

#[test]
fn app_uses_the_library() -> Result<()> {
    // The third `next` returns 3, and the shared memory holds 3 as well.
    assert_eq!(run()?, "main() = 303\n");
    Ok(())
}
