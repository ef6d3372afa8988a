//! `scaling <kiln|wasmtime> [N] [THREADS]`: does async work scale across
//! threads? Each of THREADS threads (default 2) repeatedly makes a new
//! store, instantiates the pause module in it with `instantiate_async`,
//! and makes N `call_async` calls of its nop (on a fiber: the store has an
//! async host function) and of its pausing export (one suspend and resume
//! each), then drops the store; all threads share one engine. Prints the
//! throughput with 1 thread and with THREADS threads, and their ratio
//! (THREADS on a machine with as many idle cores means no shared lock or
//! cross-core invalidation held the threads back).

use kiln_async_bench::{PAUSE_WAT, block_on, kiln_linker, wasmtime_linker};
use std::time::Instant;

/// Stores made per thread; each runs `n` nop calls and `n / 10` pausing calls.
const STORES: usize = 200;

fn run_kiln(engine: &kiln::Engine, module: &kiln::Module, n: u64) {
    let linker = kiln_linker(engine);
    let pre = linker.instantiate_pre(module).expect("instance_pre");
    for _ in 0..STORES {
        let mut store = kiln::Store::new(engine, ());
        let i = block_on(pre.instantiate_async(&mut store)).0.expect("instantiate_async");
        let nop = i.get_typed_func::<(), ()>(&mut store, "nop").expect("nop");
        let run = i.get_typed_func::<(), ()>(&mut store, "run").expect("run");
        for _ in 0..n {
            block_on(nop.call_async(&mut store, ())).0.expect("call");
        }
        for _ in 0..n / 10 {
            block_on(run.call_async(&mut store, ())).0.expect("call");
        }
    }
}

fn run_wasmtime(engine: &wasmtime::Engine, module: &wasmtime::Module, n: u64) {
    let linker = wasmtime_linker(engine);
    let pre = linker.instantiate_pre(module).expect("instance_pre");
    for _ in 0..STORES {
        let mut store = wasmtime::Store::new(engine, ());
        let i = block_on(pre.instantiate_async(&mut store)).0.expect("instantiate_async");
        let nop = i.get_typed_func::<(), ()>(&mut store, "nop").expect("nop");
        let run = i.get_typed_func::<(), ()>(&mut store, "run").expect("run");
        for _ in 0..n {
            block_on(nop.call_async(&mut store, ())).0.expect("call");
        }
        for _ in 0..n / 10 {
            block_on(run.call_async(&mut store, ())).0.expect("call");
        }
    }
}

/// Runs `work` on `threads` threads at once; returns the wall seconds.
fn timed(threads: usize, work: &(dyn Fn() + Sync)) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(work);
        }
    });
    start.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: scaling <kiln|wasmtime> [N] [THREADS]";
    let runtime = args.get(1).expect(usage).clone();
    let n: u64 = args.get(2).map_or(2_000, |s| s.parse().expect(usage));
    let threads: usize = args.get(3).map_or(2, |s| s.parse().expect(usage));
    let (one, many) = match runtime.as_str() {
        "kiln" => {
            let engine = kiln::Engine::default();
            let module = kiln::Module::new(&engine, PAUSE_WAT).expect("module");
            let work = || run_kiln(&engine, &module, n);
            work();
            (timed(1, &work), timed(threads, &work))
        }
        "wasmtime" => {
            let engine = wasmtime::Engine::default();
            let module = wasmtime::Module::new(&engine, wat::parse_str(PAUSE_WAT).expect("wat")).expect("module");
            let work = || run_wasmtime(&engine, &module, n);
            work();
            (timed(1, &work), timed(threads, &work))
        }
        _ => panic!("{usage}"),
    };
    // Work per thread is the same, so the speed-up is one / many × threads.
    let speedup = one / many * threads as f64;
    println!(
        "{runtime}: 1 thread {one:.3} s, {threads} threads {many:.3} s for {threads}x the work: speed-up {speedup:.2} of {threads}"
    );
}
