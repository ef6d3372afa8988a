//! Cases the fuzzers found, minimized. A test marked `#[ignore = "kiln bug:
//! ..."]` fails until the Kiln bug it names is fixed; the others guard the
//! oracles themselves (a false alarm that was fixed in kiln-fuzzing). A
//! saved fuzz input that no longer builds a case fails its test: it would
//! check nothing.

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

/// What `generate` builds from the fuzz input `name`, as the fuzz target
/// would, and the rest of the input (the target's call arguments). Fails
/// when the input no longer builds a case; each test also checks that the
/// case is still the one the input was saved for (a generator change can
/// make the same bytes build another case, or a trivial one: arbitrary's
/// inputs pad with zeros).
fn replay<'a, C>(
    name: &str,
    generate: impl FnOnce(&mut Unstructured<'a>) -> kiln_fuzzing::arbitrary::Result<C>,
    data: &'a [u8],
) -> (C, Unstructured<'a>) {
    let mut u = Unstructured::new(data);
    let case = generate(&mut u).unwrap_or_else(|e| panic!("{name} no longer builds a case: {e}"));
    (case, u)
}

/// Whether `wasm` defines or imports a 64-bit memory.
fn has_memory64(wasm: &[u8]) -> bool {
    wasmparser::Parser::new(0).parse_all(wasm).any(|p| match p {
        Ok(wasmparser::Payload::MemorySection(s)) => s.into_iter().any(|m| m.is_ok_and(|m| m.memory64)),
        Ok(wasmparser::Payload::ImportSection(s)) => {
            s.into_imports().any(|i| i.is_ok_and(|i| matches!(i.ty, wasmparser::TypeRef::Memory(m) if m.memory64)))
        }
        _ => false,
    })
}

/// An artifact of an on-demand engine is accepted by a pooling engine with
/// otherwise equal settings: the allocator does not shape compiled code
/// (oracle false alarm, fixed in kiln-fuzzing). The case the cache
/// target's input built, saved as module and settings so that generator
/// changes cannot turn it into another case.
#[test]
fn regression_cache_artifact_between_pooling_and_on_demand() {
    let name = "cache_artifact_between_pooling_and_on_demand.wat";
    let settings = KilnSettings {
        opt_level: kiln::OptLevel::None,
        nan_canonicalization: true,
        consume_fuel: true,
        epoch_interruption: true,
        memory_reservation: Some(262_144),
        memory_guard_size: Some(0),
        memory64: true,
        threads: true,
        relaxed_simd_deterministic: true,
        ..KilnSettings::default()
    };
    let other = KilnSettings { pooling: true, ..settings.clone() };
    let case = kiln_fuzzing::cache::Case {
        wasm: wat(name),
        settings,
        other,
        damage: vec![kiln_fuzzing::cache::Damage::Flip(0, 1)],
    };
    if let Err((message, _)) = case.check(&mut Unstructured::new(&[])) {
        panic!("{name}: {message}");
    }
}

/// wasmi 2.0.0's translator hits `unreachable!()` on a generated module;
/// a panic of the reference engine makes the case inconclusive instead of
/// failing the run (the differential target's case, saved as module and
/// settings).
#[test]
fn regression_wasmi_translator_panic() {
    let name = "wasmi_translator_panic.wat";
    let settings = KilnSettings {
        opt_level: kiln::OptLevel::None,
        multi_memory: true,
        tail_call: true,
        memory64: true,
        relaxed_simd_deterministic: true,
        ..KilnSettings::default()
    };
    let v = differential(name, settings, true);
    assert!(matches!(&v, Verdict::Inconclusive(m) if m.contains("wasmi panicked")), "{v:?}");
}

/// A 64-bit memory that grows past a small `memory_reservation`: Kiln
/// (correctly, by its documented limit) refuses the growth; the generator
/// now reserves room for the largest 64-bit memory too, as it did for
/// 32-bit ones (oracle false alarm, fixed in kiln-fuzzing).
#[test]
fn regression_memory64_beyond_small_reservation() {
    let name = "memory64_beyond_small_reservation.bin";
    let data = fuzz_input(name);
    let (case, mut rest) = replay(name, kiln_fuzzing::differential::generate, &data);
    let small = case.settings.memory_reservation.is_some_and(|r| r < 1 << 32);
    assert!(small && has_memory64(&case.wasm), "{name} builds another case: {:?}", case.settings);
    let v = case.check(&mut rest).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(!matches!(v, Verdict::Inconclusive(ref m) if m.contains("panicked")), "{v:?}");
}
