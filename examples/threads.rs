//! `InstancePre` on several threads: resolve a module's imports once, then
//! instantiate it in a store of each thread's own.
//!
//! `cargo run --example threads`

use anyhow::Result;
use kiln::{Caller, Engine, Linker, Module, Store};

/// Calls the host's `scale` on its argument.
const GUEST: &str = r#"(module
    (import "host" "scale" (func $scale (param i32) (result i32)))
    (func (export "work") (param i32) (result i32) (i32.add (call $scale (local.get 0)) (i32.const 1))))"#;

/// The store's data: this thread's number.
struct Worker {
    id: i32,
}

/// Four threads instantiate the same `InstancePre`; returns their results.
fn run() -> Result<String> {
    let engine = Engine::default();
    let module = Module::new(&engine, GUEST)?;
    let mut linker: Linker<Worker> = Linker::new(&engine);
    // Host functions in a linker belong to no store: every thread's store gets them.
    linker.func_wrap("host", "scale", |caller: Caller<'_, Worker>, x: i32| x * 100 + caller.data().id)?;
    // Names resolved and types checked once, for every instantiation.
    let pre = linker.instantiate_pre(&module)?;

    let results: Vec<Result<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..=4)
            .map(|id| {
                let pre = &pre;
                let engine = &engine;
                s.spawn(move || -> Result<String> {
                    let mut store = Store::new(engine, Worker { id });
                    let instance = pre.instantiate(&mut store)?;
                    let work = instance.get_typed_func::<i32, i32>(&mut store, "work")?;
                    Ok(format!("thread {id}: work({id}) = {}\n", work.call(&mut store, id)?))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a thread panicked")))).collect()
    });
    results.into_iter().collect()
}

fn main() -> Result<()> {
    print!("{}", run()?);
    Ok(())
}

#[test]
fn every_thread_gets_its_own_instance() -> Result<()> {
    assert_eq!(
        run()?,
        "thread 1: work(1) = 102\nthread 2: work(2) = 203\nthread 3: work(3) = 304\nthread 4: work(4) = 405\n"
    );
    Ok(())
}
