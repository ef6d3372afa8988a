//! Timing helpers shared by the standalone Criterion benchmarks
//! (`bench/host-call`, `bench/exceptions`), included with `#[path]`.

use std::cell::RefCell;
use std::time::Duration;

/// Per-call CPU times (ns) of the samples of each benchmark, by name.
pub type Samples = RefCell<Vec<(String, Vec<f64>)>>;

/// Runs `iters` calls of `f`, recording their mean thread CPU time per
/// call under `name`, and returns the elapsed time for Criterion.
pub fn timed(samples: &Samples, name: &str, iters: u64, mut f: impl FnMut()) -> Duration {
    let start = cpu_time::ThreadTime::now();
    for _ in 0..iters {
        f();
    }
    let elapsed = start.elapsed();
    let per_call = elapsed.as_secs_f64() * 1e9 / iters as f64;
    let mut all = samples.borrow_mut();
    match all.iter_mut().find(|(n, _)| n == name) {
        Some((_, v)) => v.push(per_call),
        None => all.push((name.to_string(), vec![per_call])),
    }
    elapsed
}

/// The median of `v` (the upper one for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
