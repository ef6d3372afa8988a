//! Instantiation benchmark with a side-by-side Wasmtime comparison:
//!
//! ```text
//! cargo run --release -p kiln-benches --bin instantiate-bench -- \
//!     [--large FILE.wasm [--only-large]] [--wasmtime RUNNER] [--iters N]
//! ```
//!
//! Measures µs per instance (new `Store` + `InstancePre::instantiate`,
//! dropped again; median of 5 batches) for module (a) — 30,000 functions,
//! a 7,500-element table filled by element segments, 1 MiB of data — and,
//! with `--large`, a real wasm32-wasi program (e.g. `benches/fetch-yosys.sh`
//! fetches YoWASP Yosys: 34,004 functions). Each with the default and the
//! pooling allocator, on 1 and on 2 threads (per-instance time is then
//! wall time / instances, so perfect scaling halves it).
//!
//! `--wasmtime RUNNER` names the runner of `shared/bench/peers/rust-peers`
//! (Wasmtime 48 crate); its single-threaded numbers for the same files are
//! measured in the same run and printed next to ours.

use kiln_benches::instantiation::{Allocation, Prepared, engine, module_a};
use std::process::Command;
use std::time::Duration;

const BATCHES: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn kiln_us(p: &Prepared, iters: u64, threads: usize) -> anyhow::Result<f64> {
    p.run(iters.min(200), threads)?; // warm up: fill allocator caches
    let mut v = Vec::new();
    for _ in 0..BATCHES {
        let d: Duration = p.run(iters, threads)?;
        v.push(d.as_secs_f64() * 1e6 / iters as f64);
    }
    Ok(median(v))
}

fn wasmtime_us(runner: &str, engine: &str, file: &str, iters: u64) -> Option<f64> {
    let out = Command::new(runner).args([engine, "instantiate", file, &iters.to_string()]).output().ok()?;
    if !out.status.success() {
        eprintln!("{runner} {engine}: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let rest = &text[text.find("\"median_us\":")? + "\"median_us\":".len()..];
    rest.trim_start().split([',', '}']).next()?.trim().parse().ok()
}

fn main() -> anyhow::Result<()> {
    let mut large = None;
    let mut runner = None;
    let mut iters: u64 = 2000;
    let mut only_large = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--large" => large = args.next(),
            "--wasmtime" => runner = args.next(),
            "--iters" => iters = args.next().and_then(|s| s.parse().ok()).unwrap_or(iters),
            "--only-large" => only_large = true,
            other => anyhow::bail!("unknown argument {other} (see the source header for usage)"),
        }
    }
    let a_path = std::env::temp_dir().join("kiln-instantiate-module-a.wasm");
    std::fs::write(&a_path, module_a())?;
    let mut modules = vec![("(a) 30k funcs, 7.5k table, 1 MiB data".to_string(), a_path.display().to_string())];
    if only_large {
        modules.clear();
    }
    if let Some(l) = large {
        let name = std::path::Path::new(&l).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        modules.push((format!("(b) {name}"), l));
    }

    println!("µs per instance (Store + instantiate + drop), median of {BATCHES} batches of {iters}");
    println!(
        "{:<40} {:<10} {:>9} {:>9} {:>9} {:>10} {:>9}",
        "module", "allocator", "1 thread", "2 threads", "scaling", "wasmtime", "ratio"
    );
    for (label, path) in &modules {
        let wasm = std::fs::read(path)?;
        for allocation in [Allocation::OnDemand, Allocation::Pooling] {
            let engine = engine(allocation)?;
            let prepared = Prepared::new(&engine, &wasm)?;
            let one = kiln_us(&prepared, iters, 1)?;
            let two = kiln_us(&prepared, iters, 2)?;
            let peer_engine = if allocation == Allocation::Pooling { "wasmtime-pooling" } else { "wasmtime" };
            let wt = runner.as_deref().and_then(|r| wasmtime_us(r, peer_engine, path, iters));
            let (wt_s, ratio) = match wt {
                Some(w) => (format!("{w:.2}"), format!("{:.2}x", one / w)),
                None => ("-".into(), "-".into()),
            };
            let alloc = if allocation == Allocation::Pooling { "pooling" } else { "default" };
            println!("{label:<40} {alloc:<10} {one:>9.2} {two:>9.2} {:>8.2}x {wt_s:>10} {ratio:>9}", one / two);
        }
    }
    println!("ratio = Kiln 1 thread / Wasmtime 1 thread; scaling = 1 thread / 2 threads per-instance time");
    Ok(())
}
