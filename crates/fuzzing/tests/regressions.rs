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
