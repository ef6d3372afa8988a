//! `kiln compile` and the compilation cache, `--timings`, and the progress
//! bar (only on a terminal).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn kiln(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env("KILN_CACHE_DIR", cache);
    c
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("run kiln");
    (status.code().unwrap_or(-1), String::from_utf8_lossy(&stdout).into(), String::from_utf8_lossy(&stderr).into())
}

fn fib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fib.wat")
}

/// `kiln cache stats`'s count of module entries in `cache`.
fn module_entries(cache: &Path) -> String {
    let (_, out, _) = run(kiln(cache).args(["cache", "stats"]));
    out.lines().find(|l| l.starts_with("modules:")).unwrap_or_default().to_string()
}

/// A module of `n` named functions with some arithmetic each (no two
/// alike), and one unnamed function (index `n`).
fn many_functions(dir: &Path, n: usize) -> PathBuf {
    let body = |k: usize| {
        format!("(local.set 1 (i32.add (local.get 1) (i32.mul (local.get 0) (i32.const {k}))))\n").repeat(40)
    };
    let funcs: String = (0..n)
        .map(|i| {
            format!("(func $work_{i} (export \"f{i}\") (param i32) (result i32) (local i32) {} local.get 1)\n", body(i))
        })
        .collect();
    let p = dir.join("many.wat");
    let anon = format!("(func (export \"anon\") (param i32) (result i32) (local i32) {} local.get 1)", body(n));
    std::fs::write(&p, format!("(module {funcs} {anon})")).expect("write");
    p
}

#[test]
fn compile_uses_the_cache_like_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let out = dir.path().join("fib.cwasm");
    let (code, _, err) = run(kiln(&cache).arg("compile").arg(fib()).arg("-o").arg(&out));
    assert_eq!(code, 0, "{err}");
    assert_eq!(module_entries(&cache), "modules:   1 entries, 0.0 MiB");
    // The second compile finds the module: nothing is compiled.
    let (code, _, err) = run(kiln(&cache).args(["compile", "--timings"]).arg(fib()).arg("-o").arg(&out));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("module found in the cache: nothing compiled"), "{err}");
    assert!(!err.contains("slowest functions"), "{err}");
    // And so does `kiln run`, with the same settings: the entry is shared.
    let (code, stdout, err) = run(kiln(&cache).args(["run", "--timings"]).arg(fib()).args(["--invoke", "fib", "10"]));
    assert_eq!((code, stdout.as_str()), (0, "55\n"));
    assert!(err.contains("module found in the cache"), "{err}");
    assert_eq!(module_entries(&cache), "modules:   1 entries, 0.0 MiB");
    let (code, stdout, _) =
        run(kiln(&cache).args(["run", "--allow-precompiled"]).arg(&out).args(["--invoke", "fib", "10"]));
    assert_eq!((code, stdout.as_str()), (0, "55\n"));

    // --no-cache, -C cache=n: compiled from scratch, nothing written.
    for off in [&["--no-cache"][..], &["-C", "cache=n"]] {
        let other = dir.path().join("other-cache");
        let (code, _, err) = run(kiln(&other).arg("compile").args(off).arg("--timings").arg(fib()).arg("-o").arg(&out));
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("slowest functions"), "{off:?}: {err}");
        assert_eq!(module_entries(&other), "modules:   0 entries, 0.0 MiB", "{off:?}");
    }
    // --cache-dir wins over KILN_CACHE_DIR.
    let chosen = dir.path().join("chosen");
    let (code, _, err) =
        run(kiln(&cache).arg("compile").arg("--cache-dir").arg(&chosen).arg(fib()).arg("-o").arg(&out));
    assert_eq!(code, 0, "{err}");
    assert_eq!(module_entries(&chosen), "modules:   1 entries, 0.0 MiB");
}

#[test]
fn timings_report_phases_and_the_slowest_functions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let many = many_functions(dir.path(), 12);
    let out = dir.path().join("many.cwasm");
    let (code, stdout, err) =
        run(kiln(&dir.path().join("cache")).args(["compile", "--timings"]).arg(&many).arg("-o").arg(&out));
    assert_eq!((code, stdout.as_str()), (0, ""), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[0], "compile timings:", "{err}");
    let phases: Vec<&str> =
        lines[1..].iter().take_while(|l| l.starts_with("  ")).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(
        phases,
        ["parse/validate", "translate", "cranelift", "functions", "link", "cache", "write", "total"],
        "{err}"
    );
    for l in &lines[1..=phases.len()] {
        let time = l.split_whitespace().nth(1).unwrap_or_default();
        assert!(time.parse::<f64>().is_ok() && l.split_whitespace().nth(2) == Some("ms"), "{l}");
    }
    assert!(err.contains("summed over 13 compiled function(s)"), "{err}");
    let slowest: Vec<&str> =
        lines.iter().skip_while(|l| !l.starts_with("slowest functions")).skip(1).copied().collect();
    assert_eq!(slowest.len(), 10, "the ten slowest: {err}");
    for l in &slowest {
        let name = l.split_once(" ms  ").map(|(_, n)| n).unwrap_or_default();
        let named = name.starts_with("work_") && name.ends_with(')') && name.contains("(function ");
        assert!(named || name == "function 12", "a name-section name, else the index: {l}");
    }
}

#[test]
fn no_progress_bar_on_a_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let many = many_functions(dir.path(), 40);
    for cmd in [&["compile", "--no-cache"][..], &["run", "--no-cache"]] {
        let mut c = kiln(dir.path());
        c.args(cmd).arg(&many).env("KILN_PROGRESS_AFTER", "0s").stderr(Stdio::piped()).stdout(Stdio::piped());
        if cmd[0] == "compile" {
            c.arg("-o").arg(dir.path().join("many.cwasm"));
        }
        let (code, _, err) = run(&mut c);
        assert_eq!((code, err.as_str()), (0, ""), "{cmd:?}");
    }
}

/// On a terminal (`script` gives the command one), the bar shows once
/// compiling took longer than `KILN_PROGRESS_AFTER`, and is erased at the
/// end. Skipped where `script` (util-linux) is missing.
#[test]
fn progress_bar_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("no `script` command: skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let many = many_functions(dir.path(), 40);
    let kiln = env!("CARGO_BIN_EXE_kiln");
    let typescript = |after: &str| {
        let cmd = format!(
            "stty cols 120; '{kiln}' compile --no-cache '{}' -o '{}'",
            many.display(),
            dir.path().join("m.cwasm").display()
        );
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("KILN_PROGRESS_AFTER", after)
            .env("KILN_CACHE_DIR", dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("script");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = typescript("0s");
    assert!(shown.contains("compiling many.wat [") && shown.contains("/41 functions"), "{shown:?}");
    assert!(shown.ends_with("\r\x1b[2K") || shown.ends_with("\x1b[2K"), "erased at the end: {shown:?}");
    let quick = typescript("1h");
    assert!(!quick.contains("compiling"), "{quick:?}");
}

/// After a lazy `kiln run` that called one of two functions, `kiln
/// compile` (eager) compiles only the other: the first comes from the
/// function cache.
#[test]
fn compile_after_a_lazy_run_compiles_only_what_it_did_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let wat = dir.path().join("two.wat");
    std::fs::write(
        &wat,
        r#"(module (func (export "a") (result i32) i32.const 1) (func (export "b") (result i32) i32.const 2))"#,
    )
    .expect("write");
    let (code, stdout, err) =
        run(kiln(&cache).args(["run", "-C", "background-compilation=n,tiering=n"]).arg(&wat).args(["--invoke", "a"]));
    assert_eq!((code, stdout.as_str()), (0, "1\n"), "{err}");
    let out = dir.path().join("two.cwasm");
    let (code, _, err) = run(kiln(&cache).args(["compile", "--timings"]).arg(&wat).arg("-o").arg(&out));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("summed over 1 compiled function(s)"), "{err}");
    assert!(err.contains("1 from the function cache"), "{err}");
}

/// The lock file of the cache filler working on module file `wat`, if
/// one is there: a file `kiln-fill-*` in the temporary directory holding
/// the module file's path.
fn filler_lock_file(wat: &std::path::Path) -> Option<std::path::PathBuf> {
    let name = std::fs::canonicalize(wat).expect("path").to_string_lossy().into_owned();
    std::fs::read_dir(std::env::temp_dir()).expect("temp dir").flatten().find_map(|e| {
        let file = e.file_name().to_string_lossy().into_owned();
        (file.starts_with("kiln-fill-") && std::fs::read_to_string(e.path()).is_ok_and(|s| s == name)).then(|| e.path())
    })
}

/// Runs export `a` of `wat` tiered (the default) with no background
/// compiler, so the run ends with baseline code and leaves a cache filler
/// behind; checks that it printed `expected`.
fn tiered_run_leaving_a_filler(cache: &std::path::Path, wat: &std::path::Path, expected: &str) {
    let (code, stdout, err) =
        run(kiln(cache).args(["run", "-C", "background-compilation=n"]).arg(wat).args(["--invoke", "a"]));
    assert_eq!((code, stdout.as_str()), (0, expected), "{err}");
}

/// A module exporting `a`, returning `a_result`, and `b`, whose body is
/// long enough to keep a cache filler busy for a while after the run
/// that started it exits (the run never calls it): tests that look for
/// the filler's lock file then find it before the filler is done.
fn module_with_a_long_function(a_result: i32) -> String {
    let steps = "local.get 0 i32.const 3 i32.mul i32.const 7 i32.xor local.set 0\n".repeat(20_000);
    format!(
        r#"(module (func (export "a") (result i32) i32.const {a_result})
             (func (export "b") (param i32) (result i32) {steps} local.get 0))"#
    )
}

/// Waits (two minutes at most) until the filler working on `wat` removed
/// its lock file, which it does when done.
fn wait_for_the_filler(wat: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while filler_lock_file(wat).is_some() {
        assert!(std::time::Instant::now() < deadline, "the filler did not finish");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Compiles `wat` with `kiln compile --timings` and `cache`, returning
/// what it printed on standard error (which says what came from the cache).
fn compile_with_timings(cache: &std::path::Path, wat: &std::path::Path) -> String {
    let out = wat.with_extension("cwasm");
    let (code, _, err) = run(kiln(cache).args(["compile", "--timings"]).arg(wat).arg("-o").arg(&out));
    assert_eq!(code, 0, "{err}");
    err
}

/// A temporary directory holding module file `name` with text `wat`, and
/// the cache directory to use beside it: the directory (which must live
/// as long as they are used), the cache and the module file.
fn module_beside_a_cache(name: &str, wat: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let file = dir.path().join(name);
    std::fs::write(&file, wat).expect("write");
    (dir, cache, file)
}

/// A lock file left by a cache filler that was killed (the file is there,
/// nobody holds its lock) does not keep the next run from starting one.
#[test]
fn a_dead_fillers_lock_file_does_not_stop_the_next_filler() {
    let (_dir, cache, wat) = module_beside_a_cache("left.wat", &module_with_a_long_function(3));
    tiered_run_leaving_a_filler(&cache, &wat, "3\n");
    let lock = filler_lock_file(&wat).expect("no filler was started");
    wait_for_the_filler(&wat);
    // What a killed filler leaves: the file, with no lock on it; and an
    // empty cache.
    let name = std::fs::canonicalize(&wat).expect("path").to_string_lossy().into_owned();
    std::fs::write(&lock, &name).expect("write the lock file");
    std::fs::remove_dir_all(&cache).expect("clear the cache");
    tiered_run_leaving_a_filler(&cache, &wat, "3\n");
    wait_for_the_filler(&wat);
    let err = compile_with_timings(&cache, &wat);
    assert!(err.contains("module found in the cache"), "a filler ran after the dead one's lock file: {err}");
}

/// `kiln cache clear` waits for a cache filler at work: what the filler
/// compiled is cleared too, instead of landing in the cache afterwards.
#[test]
fn clearing_the_cache_waits_for_a_running_filler() {
    // The filler is still at work when the clear starts.
    let (_dir, cache, wat) = module_beside_a_cache("busy.wat", &module_with_a_long_function(5));
    tiered_run_leaving_a_filler(&cache, &wat, "5\n");
    assert!(filler_lock_file(&wat).is_some(), "no filler was started");
    let (code, stdout, err) = run(kiln(&cache).args(["cache", "clear"]));
    assert_eq!(code, 0, "{err}");
    assert!(stdout.starts_with("cleared"), "{stdout}");
    assert!(filler_lock_file(&wat).is_none(), "the clear returned while the filler was at work");
    let (code, stdout, err) = run(kiln(&cache).args(["cache", "stats"]));
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("modules:   0 entries"), "{stdout}");
}

/// A tiered `kiln run` (the default) that ends before its baseline code
/// was replaced leaves a cache filler behind, which compiles the module
/// with Cranelift into the cache: afterwards `kiln compile` finds every
/// function there.
#[test]
fn a_short_tiered_run_leaves_the_cache_filled() {
    let (_dir, cache, wat) = module_beside_a_cache("short.wat", &module_with_a_long_function(1));
    tiered_run_leaving_a_filler(&cache, &wat, "1\n");
    // The filler holds a lock in the temporary directory, naming the
    // module file, while it works.
    assert!(filler_lock_file(&wat).is_some(), "no filler was started");
    wait_for_the_filler(&wat);
    let err = compile_with_timings(&cache, &wat);
    assert!(err.contains("module found in the cache"), "{err}");
}
