//! `kiln run` limits, `kiln compile`, and `kiln cache`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn kiln(cache: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env("KILN_CACHE_DIR", cache);
    c
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().unwrap();
    (status.code().unwrap_or(-1), String::from_utf8_lossy(&stdout).into(), String::from_utf8_lossy(&stderr).into())
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const SPIN: &str = r#"(module (func (export "_start") (loop $l (br $l))))"#;
const GROW: &str = r#"(module (memory 1)
    (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))"#;
const RECURSE: &str = r#"(module (func $r (export "_start") call $r))"#;

#[test]
fn timeout_stops_an_infinite_loop_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let spin = write(dir.path(), "spin.wat", SPIN);
    // Compile once so the timed run measures execution, not compilation.
    run(kiln(dir.path()).args(["run", "--timeout", "10ms"]).arg(&spin));
    let start = Instant::now();
    let (code, _, err) = run(kiln(dir.path()).args(["run", "--timeout", "100ms"]).arg(&spin));
    let took = start.elapsed();
    assert_eq!(code, 134);
    assert!(err.contains("time limit") && err.contains("--timeout"), "{err}");
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[test]
fn fuel_and_stack_limits_name_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(kiln(dir.path()).args(["run", "--fuel", "5000"]).arg(write(dir.path(), "spin.wat", SPIN)));
    assert_eq!(code, 134);
    assert!(err.contains("fuel") && err.contains("--fuel 5000"), "{err}");
    let (code, _, err) =
        run(kiln(dir.path()).args(["run", "--max-wasm-stack", "64KiB"]).arg(write(dir.path(), "r.wat", RECURSE)));
    assert_eq!(code, 134);
    assert!(err.contains("--max-wasm-stack"), "{err}");
}

#[test]
fn max_memory_makes_memory_grow_fail() {
    let dir = tempfile::tempdir().unwrap();
    let grow = write(dir.path(), "grow.wat", GROW);
    let (code, out, _) = run(kiln(dir.path()).args(["run", "--max-memory", "128KiB"]).arg(&grow).args(["--invoke", "grow", "1"]));
    assert_eq!((code, out.as_str()), (0, "1\n"));
    let (code, out, _) = run(kiln(dir.path()).args(["run", "--max-memory", "128KiB"]).arg(&grow).args(["--invoke", "grow", "2"]));
    assert_eq!((code, out.as_str()), (0, "-1\n"));
    let (code, _, err) = run(kiln(dir.path()).args(["run", "--max-memory", "1KiB"]).arg(&grow).args(["--invoke", "grow", "0"]));
    assert_eq!(code, 1);
    assert!(err.contains("limits"), "{err}");
}

#[test]
fn compile_then_run_the_artifact_and_manage_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let fib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fib.wat");
    let out = dir.path().join("fib.cwasm");
    let (code, _, err) = run(kiln(dir.path()).arg("compile").arg(&fib).arg("-o").arg(&out));
    assert_eq!(code, 0, "{err}");
    let (code, stdout, _) = run(kiln(dir.path()).args(["run", "--allow-precompiled"]).arg(&out).args(["--invoke", "fib", "20"]));
    assert_eq!((code, stdout.as_str()), (0, "6765\n"));
    // An artifact for other settings is refused with a clear message.
    let (code, _, err) =
        run(kiln(dir.path()).args(["run", "--allow-precompiled", "-W", "simd=n"]).arg(&out).args(["--invoke", "fib", "20"]));
    assert_eq!(code, 1);
    assert!(err.contains("different configuration"), "{err}");
    // The run filled the cache; stats count it and clear empties it.
    let cache = dir.path().join("cache");
    run(kiln(&cache).arg("run").arg(&fib).args(["--invoke", "fib", "5"]));
    let (_, stats, _) = run(kiln(&cache).args(["cache", "stats"]));
    assert!(stats.contains("modules:   1 entries"), "{stats}");
    run(kiln(&cache).args(["cache", "clear"]));
    let (_, stats, _) = run(kiln(&cache).args(["cache", "stats"]));
    assert!(stats.contains("modules:   0 entries"), "{stats}");
}
