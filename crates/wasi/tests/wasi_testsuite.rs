//! Runs the prebuilt WebAssembly/wasi-testsuite programs (C, Rust and
//! AssemblyScript, wasm32-wasip1) kept in the shared tree beside the
//! repository, one test per `.wasm`, and checks each program's exit code
//! and standard output against its `.json` expectations.
//!
//! Each test that has a `root` gets a fresh copy of that folder in a
//! temporary directory, preopened as the guest's `/`, so the tests cannot
//! change the shared tree. When a language's programs are missing (a
//! clone without the shared tree) that language is one trial, ignored with
//! the path it looked for, or failing under `KILN_REQUIRE_TEST_DATA=1`
//! (see kiln-test-data).

mod common;

use common::expectation;
use kiln::{Engine, Linker, Module, Store};
use kiln_wasi::{DirPerms, I32Exit, MemoryOutputPipe, WasiCtx, WasiCtxBuilder};
use libtest_mimic::{Arguments, Failed, Trial};
use std::path::Path;
use std::sync::OnceLock;

/// Tests that do not pass, each with the reason. Keep this list short and
/// exact: a test listed here is reported as ignored.
const NOT_PASSING: &[(&str, &str)] = &[];

const LANGUAGES: &[&str] = &["c", "rust", "assemblyscript"];

/// Copies `from` into `to` recursively, leaving out `*.cleanup` artifacts
/// and making everything writable (the shared tree is read-only).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".cleanup") {
            continue;
        }
        let ty = entry.file_type()?;
        let dest = to.join(&name);
        if ty.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)?;
            let mut perms = std::fs::metadata(&dest)?.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&dest, perms)?;
        }
    }
    Ok(())
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(Engine::default)
}

fn run(wasm: &Path) -> Result<(), Failed> {
    let exp = expectation(wasm)?;
    let tmp = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let stdout = MemoryOutputPipe::new(1 << 20);
    let stderr = MemoryOutputPipe::new(1 << 20);
    let name = wasm.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut b = WasiCtxBuilder::new();
    b.arg(&name).args(&exp.args).envs(exp.env.iter().map(|(k, v)| (k, v)));
    b.stdout(stdout.clone()).stderr(stderr.clone());
    if let Some(root) = &exp.root {
        let copy = tmp.path().join(root);
        let src = wasm.parent().ok_or("no parent directory")?.join(root);
        copy_tree(&src, &copy).map_err(|e| format!("copying {}: {e}", src.display()))?;
        b.preopened_dir(&copy, "/", DirPerms::ReadWrite)?;
    }
    if std::env::var_os("KILN_WASI_TRACE").is_some() {
        b.trace_calls(true);
    }
    let engine = engine();
    let module = Module::from_file(engine, wasm)?;
    let mut linker: Linker<WasiCtx> = Linker::new(engine);
    kiln_wasi::add_to_linker(&mut linker, |cx| cx)?;
    let mut store = Store::new(engine, b.build());
    let instance = linker.instantiate(&mut store, &module)?;
    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
    let code = match start.call(&mut store, ()) {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => exit.0,
            None => return Err(format!("{e:#}\nstderr:\n{}", stderr.contents_string()).into()),
        },
    };
    let out = stdout.contents_string();
    if code != exp.exit_code || exp.stdout.as_ref().is_some_and(|s| *s != out) {
        return Err(format!(
            "exit code {code} (expected {}), stdout {out:?} (expected {:?})\nstderr:\n{}",
            exp.exit_code,
            exp.stdout,
            stderr.contents_string()
        )
        .into());
    }
    Ok(())
}

/// The trials of one language's programs, or the one trial that says why
/// there are none.
fn language_trials(lang: &str) -> Vec<Trial> {
    let files =
        match kiln_test_data::shared_files(&format!("wasi-testsuite/tests/{lang}/testsuite/wasm32-wasip1"), "wasm") {
            Ok(files) => files,
            Err(e) => return vec![e.into_trial(format!("{lang}/*"))],
        };
    files
        .into_iter()
        .map(|wasm| {
            let stem = wasm.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let name = format!("{lang}/{stem}");
            let ignored = NOT_PASSING.iter().any(|(n, _)| *n == name);
            Trial::test(name, move || run(&wasm)).with_ignored_flag(ignored)
        })
        .collect()
}

fn main() {
    let args = Arguments::from_args();
    let trials = LANGUAGES.iter().flat_map(|lang| language_trials(lang)).collect();
    libtest_mimic::run(&args, trials).exit();
}
