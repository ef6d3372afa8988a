//! cargo-fuzz target: see `kiln_fuzzing::wasi` and fuzz/README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kiln_fuzzing::fuzz(data, kiln_fuzzing::wasi::run);
});
