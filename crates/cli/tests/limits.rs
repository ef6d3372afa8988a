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
    let (code, out, _) =
        run(kiln(dir.path()).args(["run", "--max-memory", "128KiB"]).arg(&grow).args(["--invoke", "grow", "1"]));
    assert_eq!((code, out.as_str()), (0, "1\n"));
    let (code, out, _) =
        run(kiln(dir.path()).args(["run", "--max-memory", "128KiB"]).arg(&grow).args(["--invoke", "grow", "2"]));
    assert_eq!((code, out.as_str()), (0, "-1\n"));
    let (code, _, err) =
        run(kiln(dir.path()).args(["run", "--max-memory", "1KiB"]).arg(&grow).args(["--invoke", "grow", "0"]));
    assert_eq!(code, 1);
    assert!(err.contains("limits"), "{err}");
}

/// The table bomb: 20 tables of 10,000,000 funcref elements (131 bytes as
/// a binary); filled eagerly it used to take 1.6 GB even with
/// `--max-memory 16MiB`.
fn table_bomb() -> String {
    format!("(module {})", "(table 10000000 funcref)".repeat(20))
}

#[test]
fn max_table_elements_stops_the_table_bomb() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = write(dir.path(), "bomb.wat", &table_bomb());
    let (code, _, err) = run(kiln(dir.path()).args(["run", "--max-memory", "16MiB"]).arg(&bomb));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("table 0 ") && err.contains("10000000 elements requested, limit is 1000000"), "{err}");
    assert!(err.contains("--max-table-elements"), "{err}");
    // Allowed, it still costs nothing: untouched elements are never stored.
    let (code, _, err) = run(kiln(dir.path()).args(["run", "--max-table-elements", "10000000"]).arg(&bomb));
    assert_eq!(code, 0, "{err}");

    let two_million =
        write(dir.path(), "t.wat", r#"(module (table (export "t") 2000000 funcref) (func (export "_start")))"#);
    let (code, _, err) = run(kiln(dir.path()).arg("run").arg(&two_million));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(r#"table 0 (export "t")"#) && err.contains("limit is 1000000"), "{err}");
    assert!(err.contains("--max-table-elements"), "{err}");
    let (code, _, err) = run(kiln(dir.path()).args(["run", "--max-table-elements", "3000000"]).arg(&two_million));
    assert_eq!(code, 0, "{err}");
}

/// The stores of wasi-threads threads get the same table limit: a thread
/// growing its table past it gets -1, which it hands to the main thread.
#[test]
fn max_table_elements_applies_to_wasi_threads() {
    let dir = tempfile::tempdir().unwrap();
    let wat = r#"(module
        (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
        (memory (import "env" "memory") 1 1 shared)
        (table $t 10 funcref)
        (func (export "wasi_thread_start") (param i32 i32)
            (i32.atomic.store (i32.const 0) (table.grow $t (ref.null func) (i32.const 1000000)))
            (drop (memory.atomic.notify (i32.const 0) (i32.const 1))))
        (func (export "_start")
            (if (i32.le_s (call $spawn (i32.const 0)) (i32.const 0)) (then unreachable))
            (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1)))
            ;; exit status 1 if the grow failed, 2 if it succeeded
            (call $proc_exit (select (i32.const 1) (i32.const 2) (i32.eq (i32.atomic.load (i32.const 0)) (i32.const -1))))))"#;
    let grow = write(dir.path(), "grow.wat", wat);
    let (code, _, err) = run(kiln(dir.path()).args(["run", "-S", "threads"]).arg(&grow));
    assert_eq!(code, 1, "the default limit must apply in the thread: {err}");
    let (code, _, err) =
        run(kiln(dir.path()).args(["run", "-S", "threads", "--max-table-elements", "1000010"]).arg(&grow));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn compile_then_run_the_artifact_and_manage_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let fib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fib.wat");
    let out = dir.path().join("fib.cwasm");
    let (code, _, err) = run(kiln(dir.path()).arg("compile").arg(&fib).arg("-o").arg(&out));
    assert_eq!(code, 0, "{err}");
    let (code, stdout, _) =
        run(kiln(dir.path()).args(["run", "--allow-precompiled"]).arg(&out).args(["--invoke", "fib", "20"]));
    assert_eq!((code, stdout.as_str()), (0, "6765\n"));
    // An artifact for other settings is refused with a clear message.
    let (code, _, err) = run(kiln(dir.path())
        .args(["run", "--allow-precompiled", "-W", "simd=n"])
        .arg(&out)
        .args(["--invoke", "fib", "20"]));
    assert_eq!(code, 1);
    assert!(err.contains("different configuration"), "{err}");
    // The run filled the cache; stats count it and clear empties it. (Not
    // tiered: a tiered run leaves a detached filler behind, which could
    // write its entry after the clear.)
    let cache = dir.path().join("cache");
    run(kiln(&cache).args(["run", "-C", "tiering=n"]).arg(&fib).args(["--invoke", "fib", "5"]));
    let (_, stats, _) = run(kiln(&cache).args(["cache", "stats"]));
    assert!(stats.contains("modules:   1 entries"), "{stats}");
    run(kiln(&cache).args(["cache", "clear"]));
    let (_, stats, _) = run(kiln(&cache).args(["cache", "stats"]));
    assert!(stats.contains("modules:   0 entries"), "{stats}");
}
