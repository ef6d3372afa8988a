//! `calls <kiln|wasmtime> [N] [async|sync|pause|fiber]`: makes N (default
//! 100,000) calls of the nop export on one store — `call_async` awaited
//! by the minimal executor (`async`, the default), the synchronous `call`
//! (`sync`), or `call_async` of the export calling the async host function
//! that is pending once (`pause`) — then prints the wall time per call.
//! Run under strace by `strace.sh`, to count the system calls (mmap,
//! munmap, ...) each kind of call makes: comparing N = 1 with N = 100,000
//! shows whether any are made per call.

use kiln_async_bench::{NOP_WAT, PAUSE_WAT, block_on, kiln_linker, wasmtime_linker};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: calls <kiln|wasmtime> [N] [async|sync|pause|fiber]";
    let runtime = args.get(1).expect(usage).as_str();
    let n: u64 = args.get(2).map_or(100_000, |s| s.parse().expect(usage));
    let mode = args.get(3).map_or("async", String::as_str);
    let (wat, export) = match mode {
        "async" | "sync" => (NOP_WAT, "nop"),
        "pause" => (PAUSE_WAT, "run"),
        // The nop in a store with an async host function (a fiber per call).
        "fiber" => (PAUSE_WAT, "nop"),
        _ => panic!("{usage}"),
    };
    let start;
    match runtime {
        "kiln" => {
            let engine = kiln::Engine::default();
            let module = kiln::Module::new(&engine, wat).expect("module");
            let mut store = kiln::Store::new(&engine, ());
            let instance = kiln_linker(&engine).instantiate(&mut store, &module).expect("instance");
            let f = instance.get_typed_func::<(), ()>(&mut store, export).expect("export");
            start = Instant::now();
            for _ in 0..n {
                if mode == "sync" {
                    f.call(&mut store, ()).expect("call");
                } else {
                    block_on(f.call_async(&mut store, ())).0.expect("call_async");
                }
            }
        }
        "wasmtime" => {
            let engine = wasmtime::Engine::default();
            let module = wasmtime::Module::new(&engine, wat::parse_str(wat).expect("wat")).expect("module");
            let mut store = wasmtime::Store::new(&engine, ());
            let linker = wasmtime_linker(&engine);
            let instance = if mode == "pause" || mode == "fiber" {
                block_on(linker.instantiate_async(&mut store, &module)).0.expect("instance")
            } else {
                linker.instantiate(&mut store, &module).expect("instance")
            };
            let f = instance.get_typed_func::<(), ()>(&mut store, export).expect("export");
            start = Instant::now();
            for _ in 0..n {
                if mode == "sync" {
                    f.call(&mut store, ()).expect("call");
                } else {
                    block_on(f.call_async(&mut store, ())).0.expect("call_async");
                }
            }
        }
        _ => panic!("{usage}"),
    }
    let elapsed = start.elapsed();
    println!(
        "{runtime} {mode}: {n} calls, {:.1} ns per call (wall time)",
        elapsed.as_secs_f64() * 1e9 / n.max(1) as f64
    );
}
