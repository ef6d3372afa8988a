//! C++ programs that throw and catch, built with LLVM's
//! `-fwasm-exceptions` in both encodings (the legacy `try`/`catch` one
//! LLVM emits by default, and `try_table`/`exnref`), run by `kiln run`
//! with the default features: their output must be exactly the checked-in
//! expected output (tests/fixtures/cpp-exceptions: source, build script,
//! binaries), which is also what the same source prints built natively
//! (checked when a native C++ compiler, `c++`, is installed; otherwise that
//! trial is ignored, failing under `KILN_REQUIRE_TEST_DATA=1`).

use kiln_test_data::DataError;
use libtest_mimic::{Arguments, Failed, Trial};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/cpp-exceptions").join(name)
}

fn expected() -> Result<String, Failed> {
    std::fs::read_to_string(fixture("expected-output.txt")).map_err(|e| format!("expected output: {e}").into())
}

fn check(what: &str, out: std::process::Output) -> Result<(), Failed> {
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.code() == Some(0) && stdout == expected()? {
        Ok(())
    } else {
        Err(format!("{what}: {}, stdout {stdout:?}\nstderr: {stderr}", out.status).into())
    }
}

fn run_fixture(binary: &str) -> Result<(), Failed> {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln")).arg("run").arg(fixture(binary)).output();
    check(binary, out.map_err(|e| format!("kiln: {e}"))?)
}

/// Builds `eh.cpp` natively and checks that it prints the expected output.
fn native() -> Result<(), Failed> {
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eh-native");
    let built = Command::new("c++").args(["-O2", "-o"]).arg(&exe).arg(fixture("eh.cpp")).output();
    let built = built.map_err(|e| format!("c++: {e}"))?;
    if !built.status.success() {
        return Err(format!("c++ failed: {}", String::from_utf8_lossy(&built.stderr)).into());
    }
    check("native build", Command::new(&exe).output().map_err(|e| format!("{}: {e}", exe.display()))?)
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(tool).is_file())
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = vec![
        Trial::test("cpp_exceptions/legacy_encoding", || run_fixture("eh-legacy.wasm")),
        Trial::test("cpp_exceptions/exnref_encoding", || run_fixture("eh-exnref.wasm")),
    ];
    trials.push(if on_path("c++") {
        Trial::test("cpp_exceptions/native_build_prints_the_same", native)
    } else {
        DataError::Missing("no native C++ compiler (`c++`, Debian package g++) on PATH".into())
            .into_trial("cpp_exceptions/native_build_prints_the_same")
    });
    libtest_mimic::run(&args, trials).exit();
}
