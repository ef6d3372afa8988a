//! What lazy compilation's indirection costs once everything is compiled:
//!
//! ```text
//! cargo run --release -p kiln-benches --bin lazy-bench -- [--rounds N] [FILE.wasm ...]
//! ```
//!
//! For each WASI program (default: the C corpus that `bench/compare` and
//! the bench-corpus test build, `target/tmp/bench-corpus/wasm/*.wasm`),
//! one module compiled eagerly and one lazily with no background
//! compiler. The lazy one runs `_start` once first, so every function it
//! calls is compiled *in call order*: a function compiled before its
//! callee calls the callee's stub, which jumps through its slot (the worst
//! case of lazy compilation's steady state; background compilation and a
//! later run's artifact remove most of these). Then each round runs
//! `_start` in a fresh store of each module, alternating, and the thread
//! CPU time of each run is recorded. Printed: medians and lazy/eager.
//!
//! A synthetic case comes first: `calls`, a loop making 200 million calls
//! of a function compiled after its caller (every call through the stub),
//! next to the same module compiled eagerly (direct calls).

use kiln::{CompileStrategy, Config, Engine, Linker, Module, Store};
use kiln_wasi::{I32Exit, WasiCtx, WasiCtxBuilder};
use std::time::Duration;

/// The synthetic call-heavy module: `run` calls `leaf` 200 million times.
const CALLS: &str = r#"(module
  (func $leaf (param i32) (result i32) local.get 0 i32.const 1 i32.add)
  (func (export "_start")
    (local $i i32) (local $acc i32)
    (loop $l
      (local.set $acc (call $leaf (local.get $acc)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 200000000))))
    (if (i32.ne (local.get $acc) (i32.const 200000000)) (then unreachable))))"#;

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

struct Program {
    linker: Linker<WasiCtx>,
    module: Module,
}

impl Program {
    fn new(engine: &Engine, wasm: &[u8]) -> anyhow::Result<Program> {
        let module = Module::new(engine, wasm)?;
        let mut linker = Linker::new(engine);
        kiln_wasi::add_to_linker(&mut linker, |w: &mut WasiCtx| w)?;
        Ok(Program { linker, module })
    }

    /// Runs `_start` in a fresh store; returns the thread CPU time.
    fn run(&self) -> anyhow::Result<Duration> {
        let mut store = Store::new(self.module.engine(), WasiCtxBuilder::new().build());
        let instance = self.linker.instantiate(&mut store, &self.module)?;
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        let t = thread_cpu();
        match start.call(&mut store, ()) {
            Ok(()) => {}
            Err(e) if e.downcast_ref::<I32Exit>().is_some_and(|x| x.0 == 0) => {}
            Err(e) => return Err(e),
        }
        Ok(thread_cpu() - t)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let mut rounds = 7;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().and_then(|s| s.parse().ok()).unwrap_or(rounds),
            other => files.push(other.to_string()),
        }
    }
    if files.is_empty() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/tmp/bench-corpus/wasm");
        let mut found: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("{dir}: {e} (build the corpus: cargo test -p kiln-cli --test bench_corpus)"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .map(|p| p.display().to_string())
            .collect();
        found.sort();
        files = found;
    }
    let eager = Engine::new(&Config::new())?;
    let mut lazy_config = Config::new();
    lazy_config.compile_strategy(CompileStrategy::Lazy).background_compilation(false);
    let lazy = Engine::new(&lazy_config)?;

    println!("thread CPU time of _start, median of {rounds} rounds (after one untimed run)");
    println!("{:<14} {:>10} {:>10} {:>11}", "program", "eager ms", "lazy ms", "lazy/eager");
    let mut ratios = Vec::new();
    let mut inputs: Vec<(String, Vec<u8>)> = vec![("calls".into(), wat::parse_str(CALLS)?)];
    for f in &files {
        let name = std::path::Path::new(f).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        inputs.push((name, std::fs::read(f)?));
    }
    for (name, wasm) in &inputs {
        let e = Program::new(&eager, wasm)?;
        let l = Program::new(&lazy, wasm)?;
        e.run()?;
        l.run()?;
        let (mut te, mut tl) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            te.push(e.run()?.as_secs_f64() * 1e3);
            tl.push(l.run()?.as_secs_f64() * 1e3);
        }
        let (me, ml) = (median(te), median(tl));
        if name != "calls" {
            ratios.push(ml / me);
        }
        println!("{name:<14} {me:>10.2} {ml:>10.2} {:>10.3}x", ml / me);
    }
    if !ratios.is_empty() {
        let geo = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
        println!("{:<14} {:>10} {:>10} {:>10.3}x", "geomean", "", "", geo);
    }
    Ok(())
}
