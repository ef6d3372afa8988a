//! Measures the compilation caches on a (large) module:
//!
//! ```text
//! cargo run --release -p kiln-benches --bin cache-bench -- FILE.wasm [RUNS]
//! ```
//!
//! With `--warm-only DIR` it only measures warm starts against the
//! directory cache `DIR` (filled first if empty), for profiling; with
//! `--edit-only DIR` only recompiles after one-function edits (a different
//! function each run, so each is a module miss).
//!
//! Prints: cold compile time (no cache); warm start (a new engine loading
//! the module from a directory cache, i.e. a second process); the speedup;
//! recompiling after one function changed, with the function-level cache
//! warm, as a fraction of the cold compile; and whether a second engine
//! sharing an in-memory cache compiles anything.

use kiln::{Cache, Config, DirectoryCache, Engine, MemoryCache, Module};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn engine_with(cache: Option<Arc<dyn Cache>>) -> Engine {
    let mut config = Config::new();
    config.cranelift_debug_verifier(false);
    if let Some(c) = cache {
        config.cache(c);
    }
    Engine::new(&config).expect("engine")
}

/// The same module with one `i32.add` in one function turned into `i32.sub`.
fn edit_one_function(wasm: &[u8]) -> Option<(Vec<u8>, u32)> {
    edit_function_after(wasm, 100)
}

/// The same module with the first `i32.add` in the first function past
/// `after` that has one turned into `i32.sub`.
fn edit_function_after(wasm: &[u8], after: u32) -> Option<(Vec<u8>, u32)> {
    let mut func = 0u32;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let Ok(wasmparser::Payload::CodeSectionEntry(body)) = payload {
            let mut ops = body.get_operators_reader().ok()?;
            while !ops.eof() {
                let (op, pos) = ops.read_with_offset().ok()?;
                if matches!(op, wasmparser::Operator::I32Add) && func > after {
                    let mut out = wasm.to_vec();
                    out[pos as usize] = 0x6b;
                    return Some((out, func));
                }
            }
            func += 1;
        }
    }
    None
}

/// Warm starts only: a new engine loading `wasm` from the directory cache
/// `dir` (filled by the first load if needed) `runs` times; prints the
/// minimum and the median.
fn warm_only(dir: &std::path::Path, wasm: &[u8], runs: usize) {
    let load = || {
        let engine = engine_with(Some(Arc::new(DirectoryCache::new(dir).expect("cache dir"))));
        let t = Instant::now();
        Module::from_binary(&engine, wasm).expect("load");
        t.elapsed()
    };
    load();
    let mut times: Vec<Duration> = (0..runs.max(1)).map(|_| load()).collect();
    times.sort();
    println!(
        "warm start (new engine, dir cache): min {:.3} ms, median {:.3} ms of {}",
        times[0].as_secs_f64() * 1e3,
        median(times.clone()).as_secs_f64() * 1e3,
        times.len()
    );
}

/// Recompiles after one-function edits against the directory cache `dir`
/// (filled first if needed), `runs` times with a new engine each, each
/// editing a function the runs before did not; prints each time with its
/// function hits.
fn edit_only(dir: &std::path::Path, wasm: &[u8], runs: usize) {
    // As a new process would: a new engine and cache object every time.
    let fresh = || {
        let cache = Arc::new(DirectoryCache::new(dir).expect("cache dir"));
        (engine_with(Some(cache.clone())), cache)
    };
    Module::from_binary(&fresh().0, wasm).expect("compile");
    let mut after = 100;
    for _ in 0..runs {
        let Some((edited, func)) = edit_function_after(wasm, after) else { break };
        after = func + 97;
        let (engine, cache) = fresh();
        let t = Instant::now();
        Module::from_binary(&engine, &edited).expect("compile edited");
        let took = t.elapsed();
        let s = cache.stats();
        println!(
            "recompile after editing function {func}: {:.1} ms ({} function hits, {} misses)",
            took.as_secs_f64() * 1e3,
            s.function_hits,
            s.function_misses
        );
        // Each edit on its own: the entry is on disk before the next.
        drop(engine);
        cache.flush();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: cache-bench FILE.wasm [RUNS]");
        std::process::exit(2);
    };
    type OneMeasurement = fn(&std::path::Path, &[u8], usize);
    let only: Option<(OneMeasurement, usize)> = match path.as_str() {
        "--warm-only" => Some((warm_only, 31)),
        "--edit-only" => Some((edit_only, 5)),
        _ => None,
    };
    if let Some((measure, default_runs)) = only {
        let (Some(dir), Some(path)) = (args.get(2), args.get(3)) else {
            eprintln!("usage: cache-bench {} DIR FILE.wasm [RUNS]", args[1]);
            std::process::exit(2);
        };
        let runs: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(default_runs);
        measure(std::path::Path::new(dir), &std::fs::read(path).expect("read module"), runs);
        return;
    }
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let wasm = std::fs::read(path).expect("read module");
    let funcs = wasmparser::Parser::new(0)
        .parse_all(&wasm)
        .filter(|p| matches!(p, Ok(wasmparser::Payload::CodeSectionEntry(_))))
        .count();
    println!("module: {path} ({} bytes, {funcs} functions)", wasm.len());

    let cold: Vec<Duration> = (0..runs.min(3))
        .map(|_| {
            let engine = engine_with(None);
            let t = Instant::now();
            Module::from_binary(&engine, &wasm).expect("compile");
            t.elapsed()
        })
        .collect();
    let cold = median(cold);
    println!("cold compile (no cache):              {:>10.1} ms", cold.as_secs_f64() * 1e3);

    let dir = std::env::temp_dir().join(format!("kiln-cache-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let engine = engine_with(Some(Arc::new(DirectoryCache::new(&dir).expect("cache dir"))));
        let t = Instant::now();
        Module::from_binary(&engine, &wasm).expect("compile");
        println!("cold compile filling the dir cache:   {:>10.1} ms", t.elapsed().as_secs_f64() * 1e3);
    }
    let warm: Vec<Duration> = (0..runs.max(5))
        .map(|_| {
            let engine = engine_with(Some(Arc::new(DirectoryCache::new(&dir).expect("cache dir"))));
            let t = Instant::now();
            Module::from_binary(&engine, &wasm).expect("load");
            t.elapsed()
        })
        .collect();
    let warm = median(warm);
    println!(
        "warm start (new engine, dir cache):   {:>10.3} ms   ({:.0}x faster than cold)",
        warm.as_secs_f64() * 1e3,
        cold.as_secs_f64() / warm.as_secs_f64()
    );

    match edit_one_function(&wasm) {
        Some((edited, func)) => {
            let engine = engine_with(Some(Arc::new(DirectoryCache::new(&dir).expect("cache dir"))));
            let before = engine.cache().map(|c| c.stats()).unwrap_or_default();
            let t = Instant::now();
            Module::from_binary(&engine, &edited).expect("compile edited");
            let took = t.elapsed();
            let after = engine.cache().map(|c| c.stats()).unwrap_or_default();
            println!(
                "recompile after editing function {func}: {:>8.1} ms   ({:.1}% of cold; {} function hits, {} misses)",
                took.as_secs_f64() * 1e3,
                100.0 * took.as_secs_f64() / cold.as_secs_f64(),
                after.function_hits - before.function_hits,
                after.function_misses - before.function_misses
            );
        }
        None => println!("recompile after an edit: no i32.add found to edit"),
    }

    let shared: Arc<MemoryCache> = Arc::new(MemoryCache::new(1 << 30));
    let a = engine_with(Some(shared.clone()));
    let b = engine_with(Some(shared.clone()));
    Module::from_binary(&a, &wasm).expect("compile");
    let first = shared.stats();
    let t = Instant::now();
    Module::from_binary(&b, &wasm).expect("load");
    let second = shared.stats();
    println!(
        "second engine sharing a memory cache: {:>9.3} ms; functions compiled by it: {}; module hits: {}",
        t.elapsed().as_secs_f64() * 1e3,
        second.function_misses - first.function_misses,
        second.module_hits - first.module_hits
    );
    println!("cache stats: {second}");
    let _ = std::fs::remove_dir_all(&dir);
}
