//! Hello: the guest calls a host function with a pointer and a length; the
//! host reads the string from the guest's memory through the `Caller` and
//! keeps it in the store's data.
//!
//! `cargo run --example hello`

use anyhow::{Context, Result};
use kiln::{Caller, Engine, Linker, Module, Store};

const GUEST: &str = r#"(module
    (import "host" "print" (func $print (param i32 i32)))
    (memory (export "memory") 1)
    (data (i32.const 16) "Hello, world!")
    (func (export "run") (call $print (i32.const 16) (i32.const 13))))"#;

/// Runs the guest; returns what it printed.
fn run() -> Result<String> {
    let engine = Engine::default();
    let module = Module::new(&engine, GUEST)?;

    // The store's data is what host functions share: here, the lines printed.
    let mut linker: Linker<Vec<String>> = Linker::new(&engine);
    linker.func_wrap("host", "print", |mut caller: Caller<'_, Vec<String>>, ptr: u32, len: u32| -> Result<()> {
        let memory =
            caller.get_export("memory").and_then(|e| e.into_memory()).context("the guest exports no memory")?;
        let mut bytes = vec![0; len as usize];
        memory.read(&caller, ptr as usize, &mut bytes)?;
        caller.data_mut().push(String::from_utf8(bytes)?);
        Ok(())
    })?;

    let mut store = Store::new(&engine, Vec::new());
    let instance = linker.instantiate(&mut store, &module)?;
    instance.get_typed_func::<(), ()>(&mut store, "run")?.call(&mut store, ())?;
    Ok(store.into_data().join("\n") + "\n")
}

fn main() -> Result<()> {
    print!("{}", run()?);
    Ok(())
}

#[test]
fn prints_hello() -> Result<()> {
    assert_eq!(run()?, "Hello, world!\n");
    Ok(())
}
