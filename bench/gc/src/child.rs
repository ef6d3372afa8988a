//! The child side: one runtime compiles one module, calls its `run` export
//! once, and prints one result line for the parent.
//!
//! Protocol: on success, standard output gets
//! `result checksum=C compile_us=U run_us=R run_wall_us=W` (CPU times in
//! microseconds, this process's user+system time from `getrusage`); when
//! the module does not compile or instantiate, the error goes to standard
//! error and the exit status is [`EXIT_COMPILE`]; any other failure (a
//! trap, say) exits with status 1. `node/run.mjs` speaks the same protocol.

use anyhow::{anyhow, Context, Result};
use std::time::Instant;

/// Exit status of a child whose runtime rejected the module.
pub const EXIT_COMPILE: i32 = 2;

/// What a child measured.
struct Times {
    compile_us: u64,
    run_us: u64,
    run_wall_us: u64,
    checksum: i64,
}

/// This process's user+system CPU time so far, in microseconds.
pub fn cpu_us() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes the struct it is given; RUSAGE_SELF is valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// Runs the child for `runtime` (`kiln` or `wasmtime`) on the module in
/// `wasm_path` with `run(arg)`, and returns the process exit status.
pub fn main(runtime: &str, wasm_path: &str, arg: &str) -> i32 {
    let outcome = (|| -> Result<std::result::Result<Times, String>> {
        let wasm = std::fs::read(wasm_path).with_context(|| format!("reading {wasm_path}"))?;
        let arg: i32 = arg.parse().with_context(|| format!("run argument {arg:?}"))?;
        match runtime {
            "kiln" => run_kiln(&wasm, arg),
            "wasmtime" => run_wasmtime(&wasm, arg),
            other => Err(anyhow!("unknown runtime {other:?}")),
        }
    })();
    match outcome {
        Ok(Ok(t)) => {
            println!(
                "result checksum={} compile_us={} run_us={} run_wall_us={}",
                t.checksum, t.compile_us, t.run_us, t.run_wall_us
            );
            0
        }
        Ok(Err(compile_error)) => {
            eprintln!("{compile_error}");
            EXIT_COMPILE
        }
        Err(e) => {
            eprintln!("{e:#}");
            1
        }
    }
}

/// Times `run(arg)` after a compilation that took `compile_us`.
fn time_run(compile_us: u64, run: impl FnOnce() -> Result<i64>) -> Result<Times> {
    let (cpu0, wall0) = (cpu_us(), Instant::now());
    let checksum = run()?;
    let (cpu1, wall) = (cpu_us(), wall0.elapsed());
    Ok(Times { compile_us, run_us: cpu1 - cpu0, run_wall_us: wall.as_micros() as u64, checksum })
}

/// Kiln with its GC feature on. `Ok(Err(..))` is a module Kiln rejects.
fn run_kiln(wasm: &[u8], arg: i32) -> Result<std::result::Result<Times, String>> {
    let cpu0 = cpu_us();
    let mut config = kiln::Config::new();
    config.wasm_feature_set(kiln::WasmFeature::Gc, true);
    let engine = kiln::Engine::new(&config).context("creating Kiln's engine")?;
    let mut store = kiln::Store::new(&engine, ());
    let run = match kiln::Module::new(&engine, wasm)
        .and_then(|module| kiln::Instance::new(&mut store, &module, &[]))
        .and_then(|instance| instance.get_typed_func::<i32, i64>(&mut store, "run"))
    {
        Ok(run) => run,
        Err(e) => return Ok(Err(format!("{e:#}"))),
    };
    let compile_us = cpu_us() - cpu0;
    let times = time_run(compile_us, || run.call(&mut store, arg).context("calling run in Kiln"));
    if std::env::var_os("KILN_GC_STATS").is_some() {
        eprintln!("kiln gc: {:?}", store.gc_heap_stats());
    }
    times.map(Ok)
}

/// The Wasmtime 48 crate, default configuration (GC on, its default
/// collector). `Ok(Err(..))` is a module Wasmtime rejects.
fn run_wasmtime(wasm: &[u8], arg: i32) -> Result<std::result::Result<Times, String>> {
    let cpu0 = cpu_us();
    let mut config = wasmtime::Config::new();
    config.wasm_gc(true).collector(wasmtime::Collector::Auto);
    let engine = wasmtime::Engine::new(&config).map_err(|e| anyhow!("creating Wasmtime's engine: {e:#}"))?;
    let mut store = wasmtime::Store::new(&engine, ());
    let run = match wasmtime::Module::new(&engine, wasm)
        .and_then(|module| wasmtime::Instance::new(&mut store, &module, &[]))
        .and_then(|instance| instance.get_typed_func::<i32, i64>(&mut store, "run"))
    {
        Ok(run) => run,
        Err(e) => return Ok(Err(format!("{e:#}"))),
    };
    let compile_us = cpu_us() - cpu0;
    time_run(compile_us, || run.call(&mut store, arg).map_err(|e| anyhow!("calling run in Wasmtime: {e:#}"))).map(Ok)
}
