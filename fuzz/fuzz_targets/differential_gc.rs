//! cargo-fuzz target: see `kiln_fuzzing::differential_gc` and fuzz/README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kiln_fuzzing::fuzz(data, |u| kiln_fuzzing::differential_gc::fuzz(u).map(drop));
});
