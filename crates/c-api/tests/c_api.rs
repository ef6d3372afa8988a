//! The C API's tests, in C: each program in `tests/c/` is compiled with the
//! system `cc` against `include/`, linked with the `libkiln.so` this build
//! made, and run — under valgrind's leak checker when valgrind is
//! installed (required under `KILN_REQUIRE_TEST_DATA`), where any lost
//! block or memory error fails the test. A coverage test checks that every
//! function `wasm.h` and `kiln.h` declare is exported by the library and
//! called by these programs.
//!
//! The upstream examples (`example/*.c` of WebAssembly/wasm-c-api: the
//! finish line of the C API) are compiled unmodified and run from the
//! first of: `$KILN_WASM_C_API_EXAMPLES` (a checkout's root),
//! `../shared/wasm-c-api` (a checkout), or the copy of the examples that
//! `tests/fetch-wasm-c-api.sh` takes from crates.io into
//! `target/wasm-c-api` (what `.ci/run` uses, having no GitHub). Without
//! any they are ignored with the reason (failing under
//! `KILN_REQUIRE_TEST_DATA`). The check that our `wasm.h` is the published
//! header needs a checkout (the crates.io copy's header is not upstream's):
//! with only the fetched copy it is ignored with that reason.
//!
//! Without `cc` every test is ignored with the reason (failing under
//! `KILN_REQUIRE_TEST_DATA`).

use kiln_test_data::DataError;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

fn main() {
    let args = Arguments::from_args();
    let scratch = scratch_dir();
    let conclusion = libtest_mimic::run(&args, trials(&scratch));
    let _ = std::fs::remove_dir_all(&scratch);
    conclusion.exit();
}

fn trials(scratch: &Path) -> Vec<Trial> {
    if !tool_works("cc", &["--version"]) {
        return vec![DataError::Missing("the system C compiler `cc` is not installed".into()).into_trial("c_api")];
    }
    let lib_dir = match lib_dir() {
        Ok(d) => d,
        Err(e) => return vec![Trial::test("c_api", move || Err(e.into()))],
    };
    let scratch = scratch.to_path_buf();
    let mut trials = Vec::new();
    {
        let (lib_dir, scratch) = (lib_dir.clone(), scratch.clone());
        trials.push(Trial::test("c_tests::coverage", move || {
            example_matches_library()?;
            coverage(&lib_dir, &scratch)
        }));
    }
    if !tool_works("valgrind", &["--version"]) {
        // The C tests below still run and check their output; what is
        // skipped, visibly, is their leak check.
        trials.push(
            DataError::Missing("valgrind is not installed: the C tests ran without their leak check".into())
                .into_trial("c_tests::leak_check"),
        );
    }
    let sources = match kiln_test_data::files_in(&Path::new(CRATE).join("tests/c"), "c") {
        Ok(s) => s,
        Err(e) => return vec![Trial::test("c_api", move || Err(e.to_string().into()))],
    };
    for src in sources {
        let name = stem(&src);
        let (lib_dir, scratch) = (lib_dir.clone(), scratch.clone());
        let expect = format!("{name}: ok");
        trials.push(Trial::test(format!("c_tests::{name}"), move || run_c_test(&src, &expect, &lib_dir, &scratch)));
    }
    {
        let (lib_dir, scratch) = (lib_dir.clone(), scratch.clone());
        trials.push(Trial::test("c_tests::readme_example", move || {
            let src = readme_example(&scratch)?;
            run_c_test(&src, "2 + 3 = 5 (the host was called 1 time)", &lib_dir, &scratch)
        }));
    }
    match examples_dir() {
        Ok((dir, source)) => {
            match source {
                ExamplesSource::Checkout => {
                    let dir = dir.clone();
                    trials.push(Trial::test("upstream_examples::header", move || same_interface(&dir)));
                }
                ExamplesSource::Fetched => {
                    let why = format!(
                        "not run: comparing wasm.h with the published header needs a wasm-c-api checkout \
                         (../shared/wasm-c-api or $KILN_WASM_C_API_EXAMPLES); {} holds the examples only",
                        dir.display()
                    );
                    trials.push(Trial::ignorable_test("upstream_examples::header", move || {
                        Ok(Completion::ignored_with(why))
                    }));
                }
            }
            for ex in EXAMPLES {
                let (dir, lib_dir, scratch) = (dir.clone(), lib_dir.clone(), scratch.clone());
                trials.push(Trial::test(format!("upstream_examples::{}", ex.name), move || {
                    run_example(ex, &dir, &lib_dir, &scratch)
                }));
            }
        }
        Err(e) => trials.push(e.into_trial("upstream_examples")),
    }
    trials
}

fn stem(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn tool_works(tool: &str, args: &[&str]) -> bool {
    Command::new(tool).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The directory holding the `libkiln.so` under test: the `kiln` example
/// of this crate (`examples/kiln.rs`, the library's sources built as a
/// cdylib), which `cargo test` builds with the tests. Cargo builds no
/// cdylib-only library for integration tests (rust-lang/cargo#8311), hence
/// the example. When it is missing or older than the sources (a run that
/// built only this test, `--test c_api`), it is built here with `cargo
/// build --example kiln`.
fn lib_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe.parent().and_then(Path::parent).ok_or("no profile directory above the test")?;
    let dir = profile_dir.join("examples");
    let lib = dir.join("libkiln.so");
    let built = std::fs::metadata(&lib).and_then(|m| m.modified()).ok();
    if built.is_some_and(|b| newest_source().is_none_or(|s| s <= b)) {
        return Ok(dir);
    }
    let target = profile_dir.parent().ok_or("no target directory")?;
    let profile = profile_dir.file_name().and_then(|p| p.to_str()).ok_or("no profile name")?;
    let mut cargo = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    cargo
        .args(["build", "--quiet", "-p", "kiln-c-api", "--example", "kiln"])
        .env("CARGO_TARGET_DIR", target)
        .current_dir(CRATE);
    match profile {
        "debug" => {}
        "release" => {
            cargo.arg("--release");
        }
        other => {
            cargo.args(["--profile", other]);
        }
    }
    let out = run(cargo, Duration::from_secs(1800)).map_err(|e| format!("building libkiln.so: {e:?}"))?;
    if !out.status.success() || !lib.is_file() {
        return Err(format!("building {} failed:\n{}", lib.display(), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(dir)
}

/// The newest modification time of the sources the library is built from.
fn newest_source() -> Option<std::time::SystemTime> {
    fn walk(dir: &Path, newest: &mut Option<std::time::SystemTime>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, newest);
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                *newest = (*newest).max(Some(t));
            }
        }
    }
    let root = Path::new(CRATE).join("../..");
    let mut newest = None;
    for d in [
        "crates/c-api/src",
        "crates/c-api/examples",
        "crates/kiln/src",
        "crates/wasi/src",
        "crates/environ/src",
        "crates/cranelift/src",
    ] {
        walk(&root.join(d), &mut newest);
    }
    newest
}

/// The modules `src/lib.rs` and `examples/kiln.rs` declare must agree (the
/// example is the library built again).
fn example_matches_library() -> Result<(), Failed> {
    let mods = |file: &str| -> Result<Vec<String>, Failed> {
        let text = std::fs::read_to_string(Path::new(CRATE).join(file)).map_err(|e| e.to_string())?;
        Ok(text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub mod ")?.strip_suffix(';').map(str::to_string))
            .collect())
    };
    let (lib, example) = (mods("src/lib.rs")?, mods("examples/kiln.rs")?);
    if lib != example {
        return Err(format!("examples/kiln.rs declares {example:?}, src/lib.rs {lib:?}").into());
    }
    Ok(())
}

/// A scratch directory for this run's binaries (under the target directory).
fn scratch_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let base = exe.parent().and_then(Path::parent).map_or_else(std::env::temp_dir, Path::to_path_buf);
    let dir = base.join(format!("c-api-tests-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Runs `cmd` to completion or until `limit`, returning its output.
fn run(mut cmd: Command, limit: Duration) -> Result<Output, Failed> {
    let what = format!("{cmd:?}");
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| format!("cannot run {what}: {e}"))?;
    let start = Instant::now();
    loop {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            return child.wait_with_output().map_err(|e| e.to_string().into());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            return Err(format!(
                "{what} did not finish in {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn check_status(out: &Output, what: &str) -> Result<(), Failed> {
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .into())
}

/// Compiles and links `sources` into `exe` against our headers and library.
fn compile(sources: &[&Path], exe: &Path, lib_dir: &Path, extra: &[&str]) -> Result<(), Failed> {
    let mut cc = Command::new("cc");
    cc.args(["-g", "-I"]).arg(Path::new(CRATE).join("include")).args(extra).args(sources).arg("-o").arg(exe);
    // DT_RPATH (not RUNPATH): the library beside the tests is found first.
    cc.arg("-L")
        .arg(lib_dir)
        .arg("-lkiln")
        .arg(format!("-Wl,--disable-new-dtags,-rpath,{}", lib_dir.display()))
        .arg("-lpthread");
    let out = run(cc, Duration::from_secs(120))?;
    check_status(&out, "cc")
}

/// `cmd` without the `LD_LIBRARY_PATH` cargo gives tests (its `deps`
/// directories, which may hold an older `libkiln.so` from another build):
/// the programs must load the library they were linked with (their
/// RUNPATH), which that variable would override.
fn without_cargo_library_path(mut cmd: Command) -> Command {
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd
}

/// The valgrind command line of the leak check, if valgrind is installed.
fn valgrind() -> Result<Option<Command>, Failed> {
    if !tool_works("valgrind", &["--version"]) {
        if kiln_test_data::required() {
            return Err("valgrind is not installed: the C tests' leak check cannot run".into());
        }
        return Ok(None);
    }
    let mut v = Command::new("valgrind");
    v.args([
        "--leak-check=full",
        // Possibly lost blocks fail the run too (below) but are not listed:
        // a program that exits early leaves hundreds, slow to symbolize.
        "--show-leak-kinds=definite,indirect",
        "--errors-for-leak-kinds=definite,indirect,possible",
        "--error-exitcode=99",
        "--num-callers=30",
    ]);
    v.arg(format!("--suppressions={}", Path::new(CRATE).join("tests/valgrind.supp").display()));
    Ok(Some(v))
}

/// Writes the first C block of the crate's README to a file to compile.
fn readme_example(scratch: &Path) -> Result<PathBuf, Failed> {
    let readme = std::fs::read_to_string(Path::new(CRATE).join("README.md")).map_err(|e| e.to_string())?;
    let code =
        readme.split("```c\n").nth(1).and_then(|rest| rest.split("```").next()).ok_or("README.md has no ```c block")?;
    let src = scratch.join("readme_example.c");
    std::fs::write(&src, code).map_err(|e| e.to_string())?;
    Ok(src)
}

/// Compiles and runs C test `src` (under valgrind if installed), which
/// must print `expect`.
fn run_c_test(src: &Path, expect: &str, lib_dir: &Path, scratch: &Path) -> Result<(), Failed> {
    let name = stem(src);
    let exe = scratch.join(format!("test-{name}"));
    compile(&[src], &exe, lib_dir, &["-std=gnu11", "-Wall", "-Wextra", "-Werror"])?;
    let (cmd, checked) = match valgrind()? {
        Some(mut v) => {
            v.arg(&exe);
            (v, true)
        }
        None => (Command::new(&exe), false),
    };
    let out = run(without_cargo_library_path(cmd), Duration::from_secs(180))?;
    check_status(&out, &name)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.contains(expect) {
        return Err(format!("{name} did not print `{expect}`:\n{stdout}").into());
    }
    if checked {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let summary = leak_summary(&stderr);
        for kind in ["definitely lost", "indirectly lost", "possibly lost"] {
            if !summary.iter().any(|l| l.contains(kind) && l.contains(": 0 bytes"))
                && !stderr.contains("All heap blocks were freed")
            {
                return Err(format!("{name}: leaks under valgrind:\n{stderr}").into());
            }
        }
        if !stderr.contains("ERROR SUMMARY: 0 errors") {
            return Err(format!("{name}: valgrind reports errors:\n{stderr}").into());
        }
        if stderr.contains("All heap blocks were freed") {
            println!("{name}: valgrind: all heap blocks were freed, 0 errors");
        } else {
            println!("{name}: valgrind: {}", summary.join("; "));
        }
    } else {
        println!("{name}: ran without a leak check (valgrind is not installed)");
    }
    Ok(())
}

/// The lines of valgrind's leak summary, without the pid prefix.
fn leak_summary(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| {
            ["definitely lost:", "indirectly lost:", "possibly lost:", "suppressed:"].iter().any(|k| l.contains(k))
        })
        .map(|l| l.split("== ").nth(1).unwrap_or(l).trim().to_string())
        .collect()
}

/// The functions a header declares (not its `static inline` helpers).
fn declared(header: &str) -> Result<BTreeSet<String>, Failed> {
    let mut cc = Command::new("cc");
    cc.args(["-E", "-P", "-x", "c", "-DWASM_API_EXTERN=__kiln_decl__", "-I"]).arg(Path::new(CRATE).join("include"));
    let src = std::env::temp_dir().join(format!("kiln-decl-{}-{header}.c", std::process::id()));
    std::fs::write(&src, format!("#include \"{header}\"\n")).map_err(|e| e.to_string())?;
    cc.arg(&src);
    let out = run(cc, Duration::from_secs(60));
    let _ = std::fs::remove_file(&src);
    let out = out?;
    check_status(&out, "cc -E")?;
    let text = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
    let mut names = BTreeSet::new();
    for decl in text.split(';') {
        let Some(rest) = decl.split("__kiln_decl__").nth(1) else { continue };
        let Some(head) = rest.split('(').next() else { continue };
        if let Some(name) = head.split(|c: char| !(c.is_alphanumeric() || c == '_')).rfind(|s| !s.is_empty()) {
            names.insert(name.to_string());
        }
    }
    Ok(names)
}

/// Symbols of `file` as `nm` lists them with `flags`.
fn symbols(file: &Path, flags: &[&str]) -> Result<BTreeSet<String>, Failed> {
    let mut nm = Command::new("nm");
    nm.args(flags).arg(file);
    let out = run(nm, Duration::from_secs(60))?;
    check_status(&out, "nm")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect())
}

fn coverage(lib_dir: &Path, scratch: &Path) -> Result<(), Failed> {
    let standard = declared("wasm.h")?;
    let all = declared("kiln.h")?;
    let ours: BTreeSet<_> = all.difference(&standard).cloned().collect();
    let exported = symbols(&lib_dir.join("libkiln.so"), &["-D", "--defined-only"])?;
    let missing: Vec<_> = all.difference(&exported).collect();
    if !missing.is_empty() {
        return Err(format!("declared but not exported by libkiln.so: {missing:?}").into());
    }
    let mut called = BTreeSet::new();
    for src in kiln_test_data::files_in(&Path::new(CRATE).join("tests/c"), "c")? {
        let obj = scratch.join(format!("cov-{}.o", stem(&src)));
        let mut cc = Command::new("cc");
        cc.args(["-c", "-std=gnu11", "-I"]).arg(Path::new(CRATE).join("include")).arg(&src).arg("-o").arg(&obj);
        check_status(&run(cc, Duration::from_secs(120))?, "cc -c")?;
        called.extend(symbols(&obj, &["-u"])?);
    }
    let uncalled: Vec<_> = all.difference(&called).collect();
    if !uncalled.is_empty() {
        return Err(format!("functions no C test calls: {uncalled:?}").into());
    }
    println!(
        "coverage: wasm.h declares {} functions, kiln.h {} more; libkiln.so exports all {}; the C tests call all {}",
        standard.len(),
        ours.len(),
        all.len(),
        all.len()
    );
    Ok(())
}

/// An upstream example and what its output must hold.
struct Example {
    name: &'static str,
    /// Lines the output must contain, in order.
    lines: &'static [&'static str],
}

const EXAMPLES: &[Example] = &[
    Example { name: "hello", lines: &["Calling back...", "> Hello World!", "Done."] },
    Example { name: "callback", lines: &["> 7", "> 42", "> 49", "Done."] },
    Example {
        name: "trap",
        lines: &["Calling export 0...", "> callback abort", "Calling export 1...", "> unreachable", "Done."],
    },
    Example { name: "start", lines: &["Printing message...", "> unreachable", "Done."] },
    Example {
        name: "reflect",
        lines: &[
            "> export 0 \"func\"",
            ">> initial: func i32 f64 f32 -> i32",
            ">> current: func i32 f64 f32 -> i32",
            ">> in-arity: 3, out-arity: 1",
            ">> current: global const f64",
            ">> current: table 0d 50d funcref",
            ">> current: memory 1d",
            "Done.",
        ],
    },
    Example { name: "global", lines: &["Accessing globals...", "Done."] },
    Example { name: "memory", lines: &["Growing memory...", "Creating stand-alone memory...", "Done."] },
    Example {
        name: "hostref",
        // The callback prints the host info of the reference wasm passed it:
        // the foreign objects' own, kept through wasm globals, tables, calls.
        lines: &["Accessing global...", "Accessing table...", "Accessing function...", "> > 0x1", "> > 0x2", "Done."],
    },
    Example { name: "finalize", lines: &["Deleting store 2...", "Deleting store 1...", "Live count 0", "Done."] },
    Example { name: "multi", lines: &["> 4 3 2 1", "Done."] },
    Example { name: "serialize", lines: &["Deserializing module...", "> Hello World!", "Done."] },
    Example { name: "threads", lines: &["Waiting for thread: 9"] },
    Example {
        name: "table",
        lines: &["Mutating table...", "Growing table...", "Creating stand-alone table...", "Done."],
    },
];

/// Where the upstream examples came from.
#[derive(Clone, Copy)]
enum ExamplesSource {
    /// A checkout of WebAssembly/wasm-c-api: `example/` and the published
    /// `include/wasm.h`.
    Checkout,
    /// `tests/fetch-wasm-c-api.sh`'s copy of `example/` (a `SOURCE` file
    /// says where it came from), without the published header.
    Fetched,
}

/// The directory holding the upstream `example/`, and what it is.
fn examples_dir() -> Result<(PathBuf, ExamplesSource), DataError> {
    let holds_examples = |dir: &Path| dir.join("example/hello.c").is_file();
    if let Some(d) = std::env::var_os("KILN_WASM_C_API_EXAMPLES") {
        let dir = PathBuf::from(d);
        return if holds_examples(&dir) {
            Ok((dir, ExamplesSource::Checkout))
        } else {
            Err(DataError::Broken(format!("{} holds no example/hello.c", dir.display())))
        };
    }
    let shared = kiln_test_data::shared_dir("wasm-c-api");
    if let Ok(dir) = &shared {
        return if holds_examples(dir) {
            Ok((dir.clone(), ExamplesSource::Checkout))
        } else {
            Err(DataError::Broken(format!("{} holds no example/hello.c", dir.display())))
        };
    }
    let fetched = match std::env::var_os("KILN_WASM_C_API_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(CRATE).join("../../target/wasm-c-api"),
    };
    if holds_examples(&fetched) && fetched.join("SOURCE").is_file() {
        return Ok((fetched, ExamplesSource::Fetched));
    }
    let shared_missing = shared.err().map(|e| e.to_string()).unwrap_or_default();
    Err(DataError::Missing(format!(
        "{shared_missing}, nor {}: the WebAssembly/wasm-c-api examples (clone \
         https://github.com/WebAssembly/wasm-c-api into ../shared/wasm-c-api, or run \
         tests/fetch-wasm-c-api.sh)",
        fetched.display()
    )))
}

fn run_example(ex: &Example, root: &Path, lib_dir: &Path, scratch: &Path) -> Result<(), Failed> {
    let src = root.join("example").join(format!("{}.c", ex.name));
    let work = scratch.join(format!("example-{}", ex.name));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let exe = work.join(ex.name);
    compile(&[&src], &exe, lib_dir, &[])?;
    // The example reads NAME.wasm from its working directory.
    let wasm = std::fs::read(root.join("example").join(format!("{}.wasm", ex.name))).map_err(|e| e.to_string())?;
    let wasm = if ex.name == "hostref" { current_hostref(root, wasm)? } else { wasm };
    std::fs::write(work.join(format!("{}.wasm", ex.name)), wasm).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&exe);
    cmd.current_dir(&work);
    let out = run(without_cargo_library_path(cmd), Duration::from_secs(120))?;
    check_status(&out, ex.name)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    for want in ex.lines {
        if !lines.any(|l| l == *want) {
            return Err(format!("{}: output lacks `{want}` (in order):\n{stdout}", ex.name).into());
        }
    }
    if ex.name == "threads" {
        for t in 0..10 {
            let n = stdout.lines().filter(|l| *l == format!("> Thread {t} running")).count();
            if n != 3 {
                return Err(format!("threads: thread {t} ran {n} times, not 3:\n{stdout}").into());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// hostref.wasm as committed upstream predates the final reference-types
/// proposal (`ref.null` without a type), which no current engine accepts;
/// its `hostref.wat` says the same with the old syntax. Kept if valid,
/// otherwise rebuilt from the `.wat` with `ref.null extern` (the program,
/// hostref.c, is unchanged). An older copy of the `.wat` (the crates.io
/// one) still spells the type `anyref`, the draft's name for what became
/// `externref`.
fn current_hostref(root: &Path, wasm: Vec<u8>) -> Result<Vec<u8>, Failed> {
    if wasmparser::Validator::new().validate_all(&wasm).is_ok() {
        return Ok(wasm);
    }
    let text = std::fs::read_to_string(root.join("example/hostref.wat")).map_err(|e| e.to_string())?;
    let text = text.replace("anyref", "externref").replace("(ref.null)", "(ref.null extern)");
    Ok(wat::parse_str(&text).map_err(|e| format!("hostref.wat: {e}"))?)
}

/// The header's text after the preprocessor (`cc -E`, or `cc -dM -E` for
/// the macro definitions), whitespace collapsed.
fn preprocessed(header: &Path, macros: bool) -> Result<String, Failed> {
    let src = std::env::temp_dir().join(format!("kiln-hdr-{}-{}.c", std::process::id(), macros));
    std::fs::write(&src, format!("#include \"{}\"\n", header.display())).map_err(|e| e.to_string())?;
    let mut cc = Command::new("cc");
    cc.args(if macros { &["-dM", "-E", "-x", "c"][..] } else { &["-E", "-P", "-x", "c"][..] }).arg(&src);
    let out = run(cc, Duration::from_secs(60));
    let _ = std::fs::remove_file(&src);
    let out = out?;
    check_status(&out, "cc -E")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if macros {
        let mut lines: Vec<_> =
            text.lines().filter(|l| l.contains("WASM") || l.contains("wasm_")).map(str::to_string).collect();
        lines.sort();
        return Ok(lines.join("\n"));
    }
    Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Removes the definitions (`name(...) { ... }`) of the inline functions
/// from preprocessed header text, returning the rest and the functions'
/// names.
fn without_inline_functions(text: &str) -> (String, BTreeSet<String>) {
    let mut rest = String::new();
    let mut names = BTreeSet::new();
    let mut s = text;
    while let Some(i) = s.find("inline ") {
        // The definition starts at `static inline` or `inline`.
        let start = if s[..i].ends_with("static ") { i - "static ".len() } else { i };
        rest.push_str(&s[..start]);
        let Some(open) = s[i..].find('{').map(|o| i + o) else { break };
        if let Some(name) = s[i..open].split('(').next().and_then(|h| h.split_whitespace().last()) {
            names.insert(name.trim_start_matches('*').to_string());
        }
        let mut depth = 0;
        let mut end = open;
        for (k, c) in s[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        s = &s[end..];
    }
    rest.push_str(s);
    (rest.split_whitespace().collect::<Vec<_>>().join(" "), names)
}

/// Our `wasm.h` has the published header's interface: the same text once
/// preprocessed, apart from the bodies of inline helpers (ours are our
/// own) and the float-size checks (upstream's non-static `inline void
/// assertions(void)`, ours `_Static_assert`s); the same inline helpers by
/// name (ours may add `kiln_` ones); the same macros.
fn same_interface(root: &Path) -> Result<(), Failed> {
    let theirs = root.join("include/wasm.h");
    let ours = Path::new(CRATE).join("include/wasm.h");
    let (their_text, their_inline) = without_inline_functions(&preprocessed(&theirs, false)?);
    let (our_text, our_inline) = without_inline_functions(&preprocessed(&ours, false)?);
    let our_text = our_text.split("; ").filter(|d| !d.starts_with("_Static_assert")).collect::<Vec<_>>().join("; ");
    if their_text != our_text {
        let (a, b): (Vec<_>, Vec<_>) = (their_text.split("; ").collect(), our_text.split("; ").collect());
        let first = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
        return Err(format!(
            "wasm.h differs from {} after preprocessing, at declaration {first}:\n  theirs: {:?}\n  ours:   {:?}",
            theirs.display(),
            a.get(first),
            b.get(first)
        )
        .into());
    }
    let missing: Vec<_> = their_inline.iter().filter(|n| *n != "assertions" && !our_inline.contains(*n)).collect();
    let extra: Vec<_> = our_inline.iter().filter(|n| !their_inline.contains(*n) && !n.starts_with("kiln_")).collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(format!("inline helpers differ: missing {missing:?}, extra {extra:?}").into());
    }
    if preprocessed(&theirs, true)? != preprocessed(&ours, true)? {
        return Err("wasm.h's macros differ from the published header's (cc -dM -E)".into());
    }
    println!(
        "header: wasm.h matches {} after preprocessing ({} declarations, {} inline helpers, the same macros)",
        theirs.display(),
        our_text.matches("; ").count(),
        their_inline.len() - 1
    );
    Ok(())
}
