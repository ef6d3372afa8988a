//! Serializing compiled code: compile once, start fast later. The safe way
//! is a cache (`Config::cache`), whose entries Kiln authenticates; the
//! unsafe way is `Module::serialize` and `Module::deserialize`, which load
//! machine code as is.
//!
//! `cargo run --example serialize`

use anyhow::Result;
use kiln::{Cache, Config, DirectoryCache, Engine, Instance, Module, Store};
use std::sync::Arc;

const ADD: &str =
    r#"(module (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"#;

fn add(engine: &Engine, module: &Module) -> Result<i32> {
    let mut store = Store::new(engine, ());
    let add = Instance::new(&mut store, module, &[])?.get_typed_func::<(i32, i32), i32>(&mut store, "add")?;
    add.call(&mut store, (2, 3))
}

/// Both ways; returns what happened.
fn run() -> Result<String> {
    let dir = tempfile::tempdir()?;
    let mut out = String::new();

    // The safe way: a directory cache. Each engine here stands for another
    // process opening the same directory.
    for process in 1..=2 {
        let cache = Arc::new(DirectoryCache::new(dir.path().join("cache"))?);
        let mut config = Config::new();
        config.cache(cache.clone());
        let engine = Engine::new(&config)?;
        let module = Module::new(&engine, ADD)?;
        // The directory cache writes module entries in the background.
        cache.flush();
        let stats = cache.stats();
        out += &format!(
            "process {process}: add = {}, module hits {}, misses {}\n",
            add(&engine, &module)?,
            stats.module_hits,
            stats.module_misses
        );
    }

    // The unsafe way: bytes that are machine code.
    let engine = Engine::default();
    let bytes = Module::new(&engine, ADD)?.serialize()?;
    // Checks everything but who made the code (format, checksum, settings).
    Module::check_precompiled(&engine, &bytes)?;
    // SAFETY: `bytes` came from `Module::serialize` just above, in this
    // process, and never left its memory: they are exactly the code this
    // process compiled.
    let module = unsafe { Module::deserialize(&engine, &bytes)? };
    out += &format!("deserialized: add = {}\n", add(&engine, &module)?);
    Ok(out)
}

fn main() -> Result<()> {
    print!("{}", run()?);
    Ok(())
}

#[test]
fn the_second_process_loads_from_the_cache() -> Result<()> {
    assert_eq!(
        run()?,
        "process 1: add = 5, module hits 0, misses 1\nprocess 2: add = 5, module hits 1, misses 0\ndeserialized: add = 5\n"
    );
    Ok(())
}
