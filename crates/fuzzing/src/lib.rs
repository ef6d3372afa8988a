//! Test-case generators and oracles for fuzzing Kiln.
//!
//! Every oracle takes fuzzer-provided bytes (through
//! [`arbitrary::Unstructured`]), builds a test case from them, runs it, and
//! **panics** when it finds a bug: a panic is what libFuzzer records as a
//! crash, and what makes a `cargo test` fail. Inputs that are too short or
//! that lead nowhere interesting are simply skipped.
//!
//! | oracle | checks |
//! |---|---|
//! | [`differential`] | wasm-smith modules run in Kiln and in wasmi give the same results, traps, memories, globals and tables |
//! | `differential_gc` | wasm-smith GC modules run in Kiln (GC zeal, forced collections) and in Wasmtime give the same results, traps, object shapes and exports (feature `wasmtime-oracle`) |
//! | [`compile`] | arbitrary bytes never panic `Module::new`; Kiln accepts exactly what wasmparser (with Kiln's features) validates |
//! | [`instantiate`] | valid modules with dummy imports instantiate or fail cleanly, identically under every allocation setting |
//! | [`cache`] | damaged, truncated or foreign artifacts are refused by `Module::deserialize` and are misses in the caches; the function cache reloads exactly the uncached code, misses only edited functions, and everything after a context change ([`function_cache`]) |
//! | [`wasi`] | random WASI path operations never reach outside the preopened directory |
//!
//! The `fuzz/` directory at the root of the repository has one cargo-fuzz
//! target per oracle; `tests/smoke.rs` runs a fixed number of cases of each
//! with fixed seeds on every `cargo test`.
//!
//! Set `KILN_FUZZ_SAVE=DIR` to have the oracles write the module (or
//! artifact) of a failing case to `DIR` before panicking.

#![deny(missing_docs)]

pub mod cache;
pub mod compile;
pub mod differential;
#[cfg(feature = "wasmtime-oracle")]
pub mod differential_gc;
pub mod dummy;
pub mod function_cache;
pub mod generators;
pub mod instantiate;
pub mod wasi;

pub use arbitrary::{self, Arbitrary, Unstructured};

/// Runs `oracle` over `data` the way a fuzz target does: inputs the oracle
/// cannot build a case from (`arbitrary` errors: not enough data, an
/// unusable configuration) are skipped.
pub fn fuzz(data: &[u8], oracle: impl FnOnce(&mut Unstructured<'_>) -> arbitrary::Result<()>) {
    let mut u = Unstructured::new(data);
    let _ = oracle(&mut u);
}

/// Runs `f`, the reference engine's code, turning a panic into `None`
/// (a bug of the reference engine makes a case inconclusive, not a Kiln
/// failure). The panic hook is silenced meanwhile: libFuzzer's would abort
/// the process before unwinding. Fuzz targets are single-threaded, so
/// swapping the process-wide hook is safe here.
pub fn shielded<R>(f: impl FnOnce() -> R) -> Option<R> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    r.ok()
}

/// Deterministic pseudo-random bytes for seed `seed` (SplitMix64), used by
/// the smoke tests to run the oracles without a fuzzer.
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Reports a bug found by an oracle: saves `artifact` (a module, an
/// artifact, ...) to `$KILN_FUZZ_SAVE` if that is set, then panics with
/// `message` and, for wasm modules, their text form when it is short.
pub fn fail(what: &str, artifact: &[u8], message: &str) -> ! {
    let mut saved = String::new();
    if let Some(dir) = std::env::var_os("KILN_FUZZ_SAVE") {
        let dir = std::path::PathBuf::from(dir);
        let hash = fnv1a(artifact);
        let ext = if artifact.starts_with(b"\0asm") { "wasm" } else { "bin" };
        let path = dir.join(format!("{what}-{hash:016x}.{ext}"));
        if std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, artifact)).is_ok() {
            saved = format!("\n(saved to {})", path.display());
        }
    }
    let text = if artifact.starts_with(b"\0asm") && artifact.len() < 16 * 1024 {
        match wasmprinter::print_bytes(artifact) {
            Ok(t) if t.len() < 64 * 1024 => format!("\nmodule:\n{t}"),
            _ => String::new(),
        }
    } else {
        String::new()
    };
    panic!("{what}: {message}{saved}{text}");
}

/// FNV-1a hash of `bytes`, for naming saved failures.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
