//! C++ programs that throw and catch, built with LLVM's
//! `-fwasm-exceptions` in both encodings (the legacy `try`/`catch` one
//! LLVM emits by default, and `try_table`/`exnref`), run by `kiln run`
//! with the default features: their output must be exactly what they print
//! under node (tests/fixtures/cpp-exceptions: sources, build script,
//! binaries, expected output).

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/cpp-exceptions").join(name)
}

fn run_fixture(binary: &str) {
    let expected = std::fs::read_to_string(fixture("expected-output.txt")).expect("expected output");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln")).arg("run").arg(fixture(binary)).output().expect("runs kiln");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{binary}: stderr: {stderr}");
    assert_eq!(stdout, expected, "{binary}: stderr: {stderr}");
}

#[test]
fn cpp_exceptions_legacy_encoding() {
    run_fixture("eh-legacy.wasm");
}

#[test]
fn cpp_exceptions_exnref_encoding() {
    run_fixture("eh-exnref.wasm");
}
