//! One cache, many engines: engines of the same settings share compiled
//! modules; engines of other settings (here, with fuel) get their own
//! entries; and a module that changed is recompiled function by function,
//! reusing the functions that did not change.
//!
//! `cargo run --example shared_cache`

use anyhow::Result;
use kiln::{Cache, Config, Engine, MemoryCache, Module};
use std::sync::Arc;

/// A module of three functions; `edit` changes the last one only.
fn module_text(edit: bool) -> String {
    let last = if edit { 43 } else { 42 };
    format!(
        r#"(module
            (func (export "a") (result i32) (i32.mul (i32.const 6) (i32.const 7)))
            (func (export "b") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
            (func (export "c") (result i32) (i32.const {last})))"#
    )
}

/// Compiles with several engines; returns the cache's counters after each.
fn run() -> Result<String> {
    let cache = Arc::new(MemoryCache::new(64 << 20));
    let engine_with = |fuel: bool| -> Result<Engine> {
        let mut config = Config::new();
        config.cache(cache.clone()).consume_fuel(fuel);
        Engine::new(&config)
    };
    let mut out = String::new();
    let mut step = |what: &str, engine: &Engine, text: &str| -> Result<()> {
        let before = cache.stats();
        Module::new(engine, text)?;
        let after = cache.stats();
        out += &format!(
            "{what}: module hits {}, functions compiled {}, functions reused {}\n",
            after.module_hits - before.module_hits,
            after.function_misses - before.function_misses,
            after.function_hits - before.function_hits
        );
        Ok(())
    };
    let (first, second, fueled) = (engine_with(false)?, engine_with(false)?, engine_with(true)?);
    step("engine 1", &first, &module_text(false))?;
    step("engine 2, same settings", &second, &module_text(false))?;
    step("engine 3, fuel on", &fueled, &module_text(false))?;
    step("engine 2, one function edited", &second, &module_text(true))?;
    Ok(out)
}

fn main() -> Result<()> {
    print!("{}", run()?);
    Ok(())
}

#[test]
fn engines_share_what_they_can() -> Result<()> {
    assert_eq!(
        run()?,
        "engine 1: module hits 0, functions compiled 3, functions reused 0\n\
         engine 2, same settings: module hits 1, functions compiled 0, functions reused 0\n\
         engine 3, fuel on: module hits 0, functions compiled 3, functions reused 0\n\
         engine 2, one function edited: module hits 0, functions compiled 1, functions reused 2\n"
    );
    Ok(())
}
