//! Helpers for working with fuzz cases by hand.
//!
//! ```text
//! cargo run -p kiln-fuzzing --example fuzz_tool -- print FILE.wasm          # text form
//! cargo run -p kiln-fuzzing --example fuzz_tool -- gen TARGET INPUT OUT.wasm # the module a fuzz input generates
//! cargo run -p kiln-fuzzing --example fuzz_tool -- diff FILE.wasm|FILE.wat [FLAGS]  # Kiln vs wasmi (flags: raw-nans opt-none opt-size fuel epoch
//!                                                       nan-canon eager-tables no-cow small-reservation)
//! cargo run -p kiln-fuzzing --example fuzz_tool -- run TARGET INPUT...       # run a fuzz target's oracle on inputs
//! ```
//!
//! With `--features wasmtime-oracle`, TARGET may also be `differential_gc`
//! (Kiln against Wasmtime on GC modules), and
//!
//! ```text
//! cargo run --release -p kiln-fuzzing --features wasmtime-oracle --example fuzz_tool -- \
//!     campaign differential_gc SECONDS [SEED]   # random inputs for SECONDS, without libFuzzer
//! ```
//!
//! feeds pseudo-random inputs (4 to 64 KiB, from SEED) to the oracle until
//! SECONDS have passed and prints how many cases ran to completion, how
//! many were inconclusive and why, and the seeds of divergences (each
//! printed as it happens; `KILN_FUZZ_SAVE=DIR` saves its module and the
//! input that made it). And
//!
//! ```text
//! ... --example fuzz_tool -- diff-gc FILE.wat|FILE.wasm [zeal=N] [heap=BYTES] [rounds=N] [gc-always]
//!     [opt-none] [nan-canon] [fuel] [pooling]
//! ```
//!
//! runs a hand-written or reduced module through the oracle (arguments
//! zero or null; imports from `differential_gc::HOST_IMPORTS` only).

use kiln_fuzzing::{Unstructured, cache, compile, differential, instantiate, wasi};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("print") => {
            let bytes = std::fs::read(&args[1])?;
            println!("{}", wasmprinter::print_bytes(&bytes)?);
        }
        Some("gen") => {
            let data = std::fs::read(&args[2])?;
            let mut u = Unstructured::new(&data);
            let wasm = match args[1].as_str() {
                "differential" => {
                    let case = differential::generate(&mut u).map_err(|e| anyhow::anyhow!("{e}"))?;
                    eprintln!(
                        "{:?} canonical_nans={} wasmi_fuel={}",
                        case.settings, case.canonical_nans, case.wasmi_fuel
                    );
                    case.wasm
                }
                "instantiate" => instantiate::generate(&mut u).map_err(|e| anyhow::anyhow!("{e}"))?.wasm,
                "cache" => cache::generate(&mut u).map_err(|e| anyhow::anyhow!("{e}"))?.wasm,
                "compile" => compile::generate(&mut u).map_err(|e| anyhow::anyhow!("{e}"))?.bytes,
                #[cfg(feature = "wasmtime-oracle")]
                "differential_gc" => {
                    let case = kiln_fuzzing::differential_gc::generate(&mut u).map_err(|e| anyhow::anyhow!("{e}"))?;
                    eprintln!(
                        "{:?} zeal={:?} max_gc_heap={:?} gc_after={:#018x}",
                        case.settings, case.zeal, case.max_gc_heap, case.gc_after
                    );
                    case.wasm
                }
                t => anyhow::bail!("no generator for {t}"),
            };
            std::fs::write(&args[3], wasm)?;
        }
        Some("diff") => {
            let wasm = wat::parse_file(&args[1])?;
            let flags: Vec<&str> = args[2..].iter().map(String::as_str).collect();
            let has = |f: &str| flags.contains(&f);
            let mut settings = kiln_fuzzing::generators::KilnSettings::default();
            if has("opt-none") {
                settings.opt_level = kiln::OptLevel::None;
            }
            if has("opt-size") {
                settings.opt_level = kiln::OptLevel::SpeedAndSize;
            }
            settings.consume_fuel = has("fuel");
            settings.epoch_interruption = has("epoch");
            settings.nan_canonicalization = has("nan-canon");
            settings.multi_memory = true;
            settings.table_lazy_init = !has("eager-tables");
            settings.memory_init_cow = !has("no-cow");
            if has("small-reservation") {
                settings.memory_reservation = Some(1 << 20);
                settings.memory_guard_size = Some(0);
            }
            let case =
                differential::Case { wasm, settings, canonical_nans: !has("raw-nans"), wasmi_fuel: has("wasmi-fuel") };
            println!("{:?}", case.check(&mut Unstructured::new(&[])));
        }
        Some("run") => {
            for path in &args[2..] {
                let data = std::fs::read(path)?;
                let run: fn(&mut Unstructured<'_>) -> kiln_fuzzing::arbitrary::Result<()> = match args[1].as_str() {
                    "differential" => |u| differential::run(u).map(drop),
                    "compile" => compile::run,
                    "instantiate" => instantiate::run,
                    "cache" => cache::run,
                    "wasi" => wasi::run,
                    #[cfg(feature = "wasmtime-oracle")]
                    "differential_gc" => |u| {
                        let outcome = kiln_fuzzing::differential_gc::fuzz(u)?;
                        eprintln!("{outcome:?}");
                        Ok(())
                    },
                    t => anyhow::bail!("no target {t}"),
                };
                kiln_fuzzing::fuzz(&data, run);
                eprintln!("{path}: ok");
            }
        }
        #[cfg(feature = "wasmtime-oracle")]
        Some("diff-gc") => {
            let wasm = wat::parse_file(&args[1])?;
            let mut case = kiln_fuzzing::differential_gc::Case::for_module(wasm);
            for flag in &args[2..] {
                match flag.split_once('=') {
                    Some(("zeal", n)) => case.zeal = Some(n.parse()?),
                    Some(("heap", n)) => case.max_gc_heap = Some(n.parse()?),
                    Some(("rounds", n)) => case.rounds = n.parse()?,
                    _ if flag == "gc-always" => case.gc_after = u64::MAX,
                    _ if flag == "opt-none" => case.settings.opt_level = kiln::OptLevel::None,
                    _ if flag == "nan-canon" => case.settings.nan_canonicalization = true,
                    _ if flag == "fuel" => case.settings.consume_fuel = true,
                    _ if flag == "pooling" => case.settings.pooling = true,
                    _ => anyhow::bail!("unknown flag {flag}"),
                }
            }
            println!("{:?}", case.check());
        }
        #[cfg(feature = "wasmtime-oracle")]
        Some("campaign") => {
            anyhow::ensure!(
                args.get(1).map(String::as_str) == Some("differential_gc"),
                "campaign: only differential_gc"
            );
            let seconds: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(60);
            let seed: u64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(0);
            campaign::run(std::time::Duration::from_secs(seconds), seed);
        }
        _ => anyhow::bail!("usage: fuzz_tool print|gen|diff|run|campaign ..."),
    }
    Ok(())
}

/// A time-boxed run of the `differential_gc` oracle without libFuzzer.
#[cfg(feature = "wasmtime-oracle")]
mod campaign {
    use kiln_fuzzing::differential_gc::{self, Outcome, Stats};
    use kiln_fuzzing::{Unstructured, seeded_bytes};
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    /// Runs random inputs (seeds `seed0`, `seed0 + 1`, ...) until `limit`
    /// has passed, printing progress every minute and totals at the end.
    pub fn run(limit: Duration, seed0: u64) {
        let start = Instant::now();
        let mut last_report = start;
        let (mut inputs, mut cases, mut completed) = (0u64, 0u64, 0u64);
        let mut stats = Stats::default();
        let mut inconclusive: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut divergences = Vec::new();
        let mut seed = seed0;
        while start.elapsed() < limit {
            // 4 to 64 KiB, its length from the seed too.
            let len =
                4096 + (seeded_bytes(seed ^ 0x5eed, 2).iter().fold(0usize, |a, b| a * 256 + *b as usize) % 61_441);
            let data = seeded_bytes(seed, len);
            if let Some(dir) = std::env::var_os("KILN_FUZZ_SAVE") {
                // Kept until the case passes, so a divergence leaves its input.
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::write(std::path::Path::new(&dir).join("campaign-current-input"), &data);
            }
            inputs += 1;
            let mut u = Unstructured::new(&data);
            if let Ok(case) = differential_gc::generate(&mut u) {
                cases += 1;
                match std::panic::catch_unwind(|| differential_gc::run(&case)) {
                    Ok(Outcome::Completed(s)) => {
                        completed += 1;
                        stats.add(&s);
                    }
                    Ok(Outcome::Inconclusive { reason, .. }) => *inconclusive.entry(reason.name()).or_default() += 1,
                    Err(_) => {
                        // The panic hook printed the divergence.
                        eprintln!("divergence at seed {seed} (input: seeded_bytes({seed}, {len}))");
                        divergences.push(seed);
                        if let Some(dir) = std::env::var_os("KILN_FUZZ_SAVE") {
                            let _ =
                                std::fs::write(std::path::Path::new(&dir).join(format!("input-seed-{seed}")), &data);
                        }
                    }
                }
            }
            seed += 1;
            if last_report.elapsed() >= Duration::from_secs(60) {
                last_report = Instant::now();
                eprintln!(
                    "[{:>5}s] seed {seed}: {cases} cases, {completed} completed, inconclusive {inconclusive:?}, \
                     divergences {}",
                    start.elapsed().as_secs(),
                    divergences.len()
                );
            }
        }
        let total: u64 = inconclusive.values().sum();
        println!("campaign differential_gc: {:.0} s, seeds {seed0}..{seed}", start.elapsed().as_secs_f64());
        println!("  inputs: {inputs}");
        println!("  cases built: {cases}");
        println!("  ran to completion: {completed}");
        println!(
            "    export calls compared: {} ({} returned, {} trapped, {} threw; {} exports not called)",
            stats.calls, stats.returned, stats.trapped, stats.threw, stats.skipped
        );
        println!("    GC objects compared: {}", stats.objects);
        println!("    collections forced by the host between calls: {}", stats.host_collections);
        println!("    calls from wasm to the collecting host imports: {}", stats.import_calls);
        println!("    collections in Kiln (all causes): {}", stats.kiln_collections);
        println!("  inconclusive: {total}");
        for (reason, n) in &inconclusive {
            println!("    {reason}: {n}");
        }
        println!("  divergences: {} (seeds {divergences:?})", divergences.len());
    }
}
