//! A deterministic smoke run of every oracle: a fixed number of cases from
//! fixed seeds, so that every `cargo test` exercises the fuzzing oracles.
//! (The fuzzers themselves live in `fuzz/`; see `fuzz/README.md`.)
//!
//! `KILN_FUZZ_SMOKE_SCALE=N` multiplies the number of cases (for a longer
//! local run without cargo-fuzz); `KILN_FUZZ_SMOKE_VERBOSE=1` prints each
//! seed before running it; `KILN_FUZZ_SMOKE_SKIP=S,...` passes over those
//! seeds (a case that crashes the reference engine, which no panic guard
//! can catch: see fuzz/README.md).

use kiln_fuzzing::arbitrary;
use kiln_fuzzing::{Unstructured, cache, compile, differential, instantiate, seeded_bytes, wasi};

fn scale() -> u64 {
    std::env::var("KILN_FUZZ_SMOKE_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

/// Runs `oracle` on `cases` inputs of `len` bytes; returns how many built
/// a case (the others ran out of data).
fn smoke<T>(
    name: &str,
    seed0: u64,
    cases: u64,
    len: usize,
    mut oracle: impl FnMut(&mut Unstructured<'_>) -> arbitrary::Result<T>,
) -> Vec<T> {
    let skip: Vec<u64> = std::env::var("KILN_FUZZ_SMOKE_SKIP")
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for seed in (seed0..seed0 + cases * scale()).filter(|s| !skip.contains(s)) {
        if std::env::var_os("KILN_FUZZ_SMOKE_VERBOSE").is_some() {
            eprintln!("{name}: seed {seed}");
        }
        let data = seeded_bytes(seed, len);
        let mut u = Unstructured::new(&data);
        if let Ok(v) = oracle(&mut u) {
            out.push(v);
        }
    }
    eprintln!("{name}: {} of {} inputs built a case", out.len(), cases * scale());
    out
}

#[test]
fn smoke_differential() {
    let verdicts = smoke("differential", 1000, 120, 8 << 10, differential::run);
    let agreed = verdicts.iter().filter(|v| matches!(v, differential::Verdict::Agree { .. })).count();
    let calls: usize =
        verdicts.iter().map(|v| if let differential::Verdict::Agree { calls } = v { *calls } else { 0 }).sum();
    for v in &verdicts {
        if let differential::Verdict::Inconclusive(why) = v {
            eprintln!("  inconclusive: {}", why.lines().next().unwrap_or(""));
        }
    }
    eprintln!("differential: {agreed} agreed, {calls} export calls compared");
    assert!(agreed * 2 >= verdicts.len(), "most cases should be conclusive");
    assert!(calls > 0);
}

#[test]
fn smoke_compile() {
    let n = smoke("compile", 2000, 200, 4 << 10, compile::run);
    assert!(!n.is_empty());
}

#[test]
fn smoke_instantiate() {
    let n = smoke("instantiate", 3000, 40, 8 << 10, instantiate::run);
    assert!(!n.is_empty());
}

#[test]
fn smoke_cache() {
    let n = smoke("cache", 4000, 12, 4 << 10, cache::run);
    assert!(!n.is_empty());
}

#[test]
fn smoke_wasi() {
    let n = smoke("wasi", 5000, 80, 2 << 10, wasi::run);
    assert!(!n.is_empty());
}
