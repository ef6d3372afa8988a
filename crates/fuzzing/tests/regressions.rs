//! Cases the fuzzers found, minimized. A test marked `#[ignore = "kiln bug:
//! ..."]` fails until the Kiln bug it names is fixed; the others guard the
//! oracles themselves (a false alarm that was fixed in kiln-fuzzing).

use kiln_fuzzing::Unstructured;
use kiln_fuzzing::differential::{Case, Verdict};
use kiln_fuzzing::generators::KilnSettings;

fn wat(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/regressions/{name}", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn differential(name: &str, settings: KilnSettings, canonical_nans: bool) -> Verdict {
    let case = Case { wasm: wat(name), settings, canonical_nans, wasmi_fuel: false };
    match case.check(&mut Unstructured::new(&[])) {
        Ok(v) => v,
        Err(e) => panic!("{name}: {e}"),
    }
}

/// wasmi 2.0.0 miscompiles `select(a, b, i32.eqz(x))` after an `if`; the
/// oracle works around it (oracle false alarm, fixed in kiln-fuzzing).
#[test]
fn regression_wasmi_select_eqz_after_if() {
    let v = differential("wasmi_select_eqz_after_if.wat", KilnSettings::default(), true);
    assert_eq!(v, Verdict::Agree { calls: 2 });
}

/// Kiln's NaN canonicalization covers demote/promote, wasm-smith's does not
/// (oracle false alarm, fixed in kiln-fuzzing).
#[test]
fn regression_demote_nan_with_kiln_canonicalization() {
    let canon = KilnSettings { nan_canonicalization: true, ..KilnSettings::default() };
    let v = differential("demote_nan_with_kiln_canonicalization.wat", canon, true);
    assert!(matches!(v, Verdict::Agree { .. } | Verdict::Inconclusive(_)), "{v:?}");
    // Without Kiln's canonicalization both engines keep the payload.
    let v = differential("demote_nan_with_kiln_canonicalization.wat", KilnSettings::default(), true);
    assert_eq!(v, Verdict::Agree { calls: 1 });
}

fn fuzz_input(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/regressions/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An artifact of an on-demand engine is accepted by a pooling engine with
/// otherwise equal settings: the allocator does not shape compiled code
/// (oracle false alarm, fixed in kiln-fuzzing; the cache target's input).
#[test]
fn regression_cache_artifact_between_pooling_and_on_demand() {
    kiln_fuzzing::fuzz(&fuzz_input("cache_artifact_between_pooling_and_on_demand.bin"), kiln_fuzzing::cache::run);
}

/// wasmi 2.0.0's translator hits `unreachable!()` on a generated module;
/// a panic of the reference engine makes the case inconclusive instead of
/// failing the run (the differential target's input).
#[test]
fn regression_wasmi_translator_panic() {
    let data = fuzz_input("wasmi_translator_panic.bin");
    let v = kiln_fuzzing::differential::run(&mut Unstructured::new(&data)).expect("the input builds a case");
    assert!(matches!(&v, Verdict::Inconclusive(m) if m.contains("wasmi panicked")), "{v:?}");
}

/// A 64-bit memory that grows past a small `memory_reservation`: Kiln
/// (correctly, by its documented limit) refuses the growth; the generator
/// now reserves room for the largest 64-bit memory too, as it did for
/// 32-bit ones (oracle false alarm, fixed in kiln-fuzzing).
#[test]
fn regression_memory64_beyond_small_reservation() {
    let data = fuzz_input("memory64_beyond_small_reservation.bin");
    let v = kiln_fuzzing::differential::run(&mut Unstructured::new(&data)).expect("the input builds a case");
    assert!(!matches!(v, Verdict::Inconclusive(ref m) if m.contains("panicked")), "{v:?}");
}
