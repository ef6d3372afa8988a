//! `kiln run` end to end: WASI programs (arguments, environment,
//! preopened directories, exit status), traps, `--invoke`, and
//! wasi-threads (`-S threads`; the proposal's own test programs run in
//! kiln-wasi's `tests/wasi_threads.rs`). The benchmark corpus is checked
//! against its native builds in `tests/bench_corpus.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

fn wasi_program(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasi/tests/c").join(format!("{name}.wasm"))
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().unwrap();
    (status.code().unwrap_or(-1), text(&stdout), text(&stderr))
}

#[test]
fn arguments_environment_and_exit_status() {
    let file = wasi_program("args_env");
    let (code, out, err) = run(kiln()
        .args(["run", "--env", "A=1", "--env", "KILN_TEST_VAR", "--env", "NOT_SET_ANYWHERE"])
        .arg(&file)
        .args(["5", "--flag-for-the-program"])
        .env("KILN_TEST_VAR", "inherited")
        .env_remove("NOT_SET_ANYWHERE"));
    assert_eq!(code, 5, "stderr: {err}");
    let expected = format!(
        "argc=3\nargv[0]={}\nargv[1]=5\nargv[2]=--flag-for-the-program\nenv A=1\nenv KILN_TEST_VAR=inherited\nKILN_TEST_VAR=inherited\n",
        file.display()
    );
    assert_eq!(out, expected);
}

#[test]
fn preopened_directories() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("{}::/sandbox", dir.path().display());
    let (code, out, err) = run(kiln().args(["run", "--dir", &spec]).arg(wasi_program("fs_ops")).arg("/sandbox"));
    assert_eq!(code, 0, "stderr: {err}");
    assert!(out.contains("entries: . .. b.txt hard link sub\n"), "{out}");
    assert_eq!(std::fs::read_to_string(dir.path().join("result.txt")).unwrap(), "done\n");

    // Read-only: nothing can be created.
    let ro = tempfile::tempdir().unwrap();
    let spec = format!("{}::/sandbox::ro", ro.path().display());
    let (code, out, _) = run(kiln().args(["run", "--dir", &spec]).arg(wasi_program("fs_ops")).arg("/sandbox"));
    assert_eq!(code, 1);
    assert!(out.starts_with("mkdir d: Operation not permitted\n"), "{out}");
    assert_eq!(std::fs::read_dir(ro.path()).unwrap().count(), 0);

    // HOST alone keeps its name inside.
    let (code, _, err) =
        run(kiln().current_dir(dir.path()).args(["run", "--dir", "."]).arg(wasi_program("fs_ops")).arg("."));
    assert_eq!(code, 0, "stderr: {err}");

    let (code, _, err) = run(kiln().args(["run", "--dir", "/no/such/dir"]).arg(wasi_program("fs_ops")));
    assert_eq!(code, 1);
    assert!(err.contains("/no/such/dir"), "{err}");
}

#[test]
fn proc_exit_status_is_the_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("{}::/pre", dir.path().display());
    let (code, out, _) = run(kiln().args(["run", "--dir", &spec]).arg(wasi_program("errors")));
    assert_eq!(code, 3);
    assert!(out.ends_with("close_again=8\n"), "{out}");
}

#[test]
fn traps_exit_134_with_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let wat = dir.path().join("trap.wat");
    std::fs::write(
        &wat,
        r#"(module
            (import "wasi_snapshot_preview1" "sched_yield" (func $y (result i32)))
            (func $inner (drop (call $y)) unreachable)
            (func (export "_start") (call $inner)))"#,
    )
    .unwrap();
    let (code, _, err) = run(kiln().arg("run").arg(&wat));
    assert_eq!(code, 134);
    assert!(err.contains("unreachable"), "{err}");
    assert!(err.contains("backtrace"), "{err}");
}

#[test]
fn invoke_still_calls_exports() {
    let fib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fib.wat");
    let (code, out, err) = run(kiln().arg("run").arg(&fib).args(["--invoke", "fib", "10"]));
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out, "55\n");
}

/// `run` compiles lazily by default; `-C lazy=n` compiles first; both
/// give the same results, with and without the cache, and a lazy run
/// leaves an artifact in the cache that the next run (lazy or not) uses.
#[test]
fn lazy_and_eager_compilation_agree() {
    let file = wasi_program("args_env");
    let cache = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for flags in [&[][..], &["-C", "lazy=n"], &["-C", "lazy=y,background-compilation=n"], &["-C", "lazy=n"], &[]] {
        let (code, out, err) = run(kiln()
            .arg("run")
            .args(flags)
            .arg("--cache-dir")
            .arg(cache.path())
            .args(["--env", "GREETING=hi"])
            .arg(&file)
            .args(["a", "b"]));
        assert_eq!(code, 0, "{flags:?}: {err}");
        outputs.push(out);
    }
    let (code, out, err) = run(kiln().args(["run", "--no-cache", "--env", "GREETING=hi"]).arg(&file).args(["a", "b"]));
    assert_eq!(code, 0, "{err}");
    outputs.push(out);
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "{outputs:?}");
    assert!(outputs[0].contains("GREETING=hi"), "{}", outputs[0]);
}

fn threads_program(dir: &Path, name: &str, thread_body: &str, main_body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.wat"));
    std::fs::write(
        &path,
        format!(
            r#"(module
              (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
              (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
              (memory (export "memory") (import "env" "memory") 1 1 shared)
              (func (export "wasi_thread_start") (param i32 i32) {thread_body})
              (func (export "_start")
                (if (i32.le_s (call $spawn (i32.const 0)) (i32.const 0)) (then unreachable))
                {main_body}))"#
        ),
    )
    .unwrap();
    path
}

/// `-S threads`: eight threads count with atomics, print through the shared
/// WASI context, and are joined; without the flag the module is refused.
#[test]
fn wasi_threads_run_with_the_flag() {
    let counter = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasi/tests/wat/threads_counter.wat");
    let expected = format!("{}counter=1600000\n", "thread done\n".repeat(8));
    for flag in [["-S", "threads"], ["--wasi", "threads=y"]] {
        let (code, out, err) = run(kiln().arg("run").args(flag).arg(&counter));
        assert_eq!(code, 0, "{flag:?} stderr: {err}");
        assert_eq!(out, expected);
    }

    let (code, _, err) = run(kiln().arg("run").arg(&counter));
    assert_eq!(code, 1);
    assert!(err.contains("imports `wasi::thread-spawn`") && err.contains("-S threads"), "{err}");
    let (code, _, err) = run(kiln().args(["run", "-S", "threads=n"]).arg(&counter));
    assert_eq!(code, 1);
    assert!(err.contains("-S threads"), "{err}");
    let (code, _, err) = run(kiln().args(["run", "-S", "fast"]).arg(&counter));
    assert_eq!(code, 1);
    assert!(err.contains("unknown WASI option `fast`"), "{err}");

    // A shared memory import alone also needs the flag (which creates it).
    let dir = tempfile::tempdir().unwrap();
    let noop = dir.path().join("noop.wat");
    std::fs::write(&noop, r#"(module (import "foo" "bar" (memory 1 1 shared)) (func (export "_start")))"#).unwrap();
    let (code, _, err) = run(kiln().arg("run").arg(&noop));
    assert_eq!(code, 1);
    assert!(err.contains("shared memory `foo::bar`"), "{err}");
    let (code, _, err) = run(kiln().args(["run", "-S", "threads"]).arg(&noop));
    assert_eq!(code, 0, "stderr: {err}");
}

/// Any thread's `proc_exit` or trap ends the program; `_start` returning
/// ends it even while other threads run.
#[test]
fn wasi_threads_end_the_program_from_any_thread() {
    let dir = tempfile::tempdir().unwrap();
    let wait_forever = "(drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1))) unreachable";
    let exit = threads_program(dir.path(), "exit", "(call $proc_exit (i32.const 9))", wait_forever);
    let (code, _, err) = run(kiln().args(["run", "-S", "threads"]).arg(&exit));
    assert_eq!(code, 9, "stderr: {err}");

    let trap = threads_program(dir.path(), "trap", "unreachable", wait_forever);
    let (code, _, err) = run(kiln().args(["run", "-S", "threads"]).arg(&trap));
    assert_eq!(code, 134);
    assert!(err.contains("in wasi thread 1") && err.contains("unreachable"), "{err}");

    let busy = threads_program(dir.path(), "busy", "(loop $l (br $l))", "");
    let started = std::time::Instant::now();
    let (code, _, err) = run(kiln().args(["run", "-S", "threads"]).arg(&busy));
    assert_eq!(code, 0, "stderr: {err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn an_uncaught_exception_names_its_tag_and_payload() {
    let dir = tempfile::tempdir().unwrap();
    let wat = dir.path().join("throws.wat");
    std::fs::write(
        &wat,
        r#"(module (tag $e (param i32 i64)) (func (export "f") (param i32) (throw $e (local.get 0) (i64.const -3))))"#,
    )
    .unwrap();
    let (code, _, err) = run(kiln().args(["run", "--invoke", "f"]).arg(&wat).arg("42"));
    assert_eq!(code, 1, "stderr: {err}");
    assert!(err.contains("uncaught wasm exception of tag (tag (func (param i32 i64))) with payload [42, -3]"), "{err}");
}
