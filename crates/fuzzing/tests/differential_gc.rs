//! A deterministic run of the `differential_gc` oracle (Kiln against
//! Wasmtime on GC modules, collections forced at random): a fixed number
//! of cases from fixed seeds. Only built with the `wasmtime-oracle`
//! feature:
//!
//! ```text
//! cargo test -p kiln-fuzzing --features wasmtime-oracle --release --test differential_gc
//! ```
//!
//! `KILN_FUZZ_SMOKE_SCALE=N` multiplies the number of cases;
//! `KILN_FUZZ_SMOKE_VERBOSE=1` prints each seed before running it.
#![cfg(feature = "wasmtime-oracle")]

use kiln_fuzzing::differential_gc::{self, Outcome, Stats};
use kiln_fuzzing::{Unstructured, seeded_bytes};
use std::collections::BTreeMap;

fn scale() -> u64 {
    std::env::var("KILN_FUZZ_SMOKE_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

#[test]
fn differential_gc_cases() {
    let cases = 200 * scale();
    let verbose = std::env::var_os("KILN_FUZZ_SMOKE_VERBOSE").is_some();
    let (mut built, mut completed) = (0, 0);
    let mut stats = Stats::default();
    let mut inconclusive: BTreeMap<&str, usize> = BTreeMap::new();
    for seed in 7000..7000 + cases {
        if verbose {
            eprintln!("differential_gc: seed {seed}");
        }
        // Lengths vary so that wasm-smith's configurations do too.
        let data = seeded_bytes(seed, 4096 + (seed as usize % 8) * 2048);
        let mut u = Unstructured::new(&data);
        let Ok(case) = differential_gc::generate(&mut u) else { continue };
        built += 1;
        // Panics on a divergence.
        match differential_gc::run(&case) {
            Outcome::Completed(s) => {
                completed += 1;
                stats.add(&s);
            }
            Outcome::Inconclusive { reason, detail } => {
                if verbose {
                    eprintln!("  inconclusive: {}", detail.lines().next().unwrap_or(""));
                }
                *inconclusive.entry(reason.name()).or_default() += 1;
            }
        }
    }
    eprintln!(
        "differential_gc: {built} of {cases} inputs built a case; {completed} completed ({stats:?}); \
         inconclusive: {inconclusive:?}"
    );
    assert!(completed * 2 >= built, "most cases should run to completion");
    assert!(stats.returned > 0, "some export calls should return");
    assert!(stats.objects > 0, "some GC objects should be compared");
}
