//! The benchmark corpus of the shared tree (`../shared/bench`: C programs
//! that print a checksum) gives the same exit status and standard output
//! under `kiln run` as its native builds: one test per program, named
//! `bench/<program>`.
//!
//! The corpus is built here as `bench/compare` builds it: its sources
//! (`build.sh`, `src/`, `wat/`) are copied to `target/tmp/bench-corpus`
//! and its `build.sh` runs there (clang for wasm32-wasi, gcc natively,
//! wat2wasm; about 2 s), again only when the sources change. Without the
//! sources, or without those tools, the programs are one trial, ignored
//! with what is missing and where it was looked for, or failing under
//! `KILN_REQUIRE_TEST_DATA=1` (`.ci/run` installs the tools); a build that
//! fails fails.

use kiln_test_data::DataError;
use libtest_mimic::{Arguments, Failed, Trial};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What `build.sh` reads, relative to the corpus.
const INPUTS: &[&str] = &["build.sh", "src", "wat"];
/// The commands `build.sh` runs.
const TOOLS: &[&str] = &["bash", "clang", "wasm-ld", "wat2wasm", "gcc", "python3"];
/// The Debian packages that provide them (as `.ci/run` installs them).
const PACKAGES: &str = "clang lld wasi-libc libclang-rt-14-dev-wasm32 wabt gcc";
/// Written into a built corpus after its build succeeded.
const STAMP: &str = ".built";

/// Where the corpus is built.
fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-corpus")
}

/// The files `build.sh` reads under `root`, by relative path.
fn read_inputs(root: &Path) -> std::io::Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut pending: Vec<PathBuf> = INPUTS.iter().map(PathBuf::from).collect();
    while let Some(rel) = pending.pop() {
        let path = root.join(&rel);
        if path.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(rel.join(entry?.file_name()));
            }
        } else {
            files.insert(rel, std::fs::read(&path)?);
        }
    }
    Ok(files)
}

/// Whether `tool` is an executable file in a directory of `PATH`.
fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(tool).is_file())
}

/// Whether `clang --target=wasm32-wasi` links a C program (it needs
/// wasi-libc and compiler-rt for wasm32, which clang alone lacks).
fn clang_links_wasi(scratch: &Path) -> bool {
    let (c, wasm) = (scratch.join("probe.c"), scratch.join("probe.wasm"));
    std::fs::write(&c, "#include <stdio.h>\nint main(void) { puts(\"ok\"); return 0; }\n").is_ok()
        && Command::new("clang")
            .arg("--target=wasm32-wasi")
            .arg("-O2")
            .arg(&c)
            .arg("-o")
            .arg(&wasm)
            .output()
            .is_ok_and(|o| o.status.success())
}

/// What of the toolchain `build.sh` needs is missing (nothing when
/// `WASI_CC` names another wasm compiler, which `build.sh` then uses).
fn missing_tools(scratch: &Path) -> Vec<String> {
    let mut missing: Vec<String> = TOOLS.iter().filter(|t| !on_path(t)).map(|t| t.to_string()).collect();
    if std::env::var_os("WASI_CC").is_none() && on_path("clang") && !clang_links_wasi(scratch) {
        missing.push("a wasm32-wasi sysroot and compiler-rt (clang --target=wasm32-wasi cannot link)".into());
    }
    missing
}

/// Writes `inputs` under `root`.
fn write_inputs(root: &Path, inputs: &BTreeMap<PathBuf, Vec<u8>>) -> std::io::Result<()> {
    for (rel, bytes) in inputs {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, bytes)?;
    }
    Ok(())
}

/// The last lines of a build's output.
fn tail(out: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Builds `inputs` in `dir` with their `build.sh`.
fn run_build(dir: &Path, inputs: &BTreeMap<PathBuf, Vec<u8>>) -> Result<(), DataError> {
    let broken = |what: String| DataError::Broken(format!("building the bench corpus in {}: {what}", dir.display()));
    let _ = std::fs::remove_dir_all(dir);
    write_inputs(dir, inputs).map_err(|e| broken(e.to_string()))?;
    let out =
        Command::new("bash").arg("build.sh").current_dir(dir).output().map_err(|e| broken(format!("bash: {e}")))?;
    if !out.status.success() {
        return Err(broken(format!("build.sh failed ({}):\n{}", out.status, tail(&out))));
    }
    std::fs::write(dir.join(STAMP), "").map_err(|e| broken(e.to_string()))
}

/// The built corpus: the one in `target/tmp` if it was built from the
/// shared sources as they are now, else a new build of them.
fn built_corpus() -> Result<PathBuf, DataError> {
    let sources = kiln_test_data::shared_dir("bench")?;
    let inputs = read_inputs(&sources).map_err(|e| DataError::Broken(format!("reading {}: {e}", sources.display())))?;
    let dest = corpus_dir();
    if dest.join(STAMP).is_file() && read_inputs(&dest).is_ok_and(|built| built == inputs) {
        return Ok(dest);
    }
    // Built beside the destination and renamed into place, so that a
    // concurrent run never sees half a corpus.
    let scratch = dest.with_file_name(format!("bench-corpus.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| DataError::Broken(format!("{}: {e}", scratch.display())))?;
    let missing = missing_tools(&scratch);
    if !missing.is_empty() {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(DataError::Missing(format!(
            "building the bench corpus ({}) needs {}, not found on PATH ({}) (Debian: apt-get install {PACKAGES})",
            sources.display(),
            missing.join(", "),
            std::env::var("PATH").unwrap_or_default()
        )));
    }
    let built = run_build(&scratch, &inputs);
    if built.is_ok() {
        let _ = std::fs::remove_dir_all(&dest);
        if std::fs::rename(&scratch, &dest).is_err() && !dest.join(STAMP).is_file() {
            return Err(DataError::Broken(format!("moving {} to {}", scratch.display(), dest.display())));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    built.map(|()| dest)
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// Runs `wasm` with `kiln run` and `native`, and compares.
fn compare(wasm: &Path, native: &Path) -> Result<(), Failed> {
    let expected = Command::new(native).output().map_err(|e| format!("{}: {e}", native.display()))?;
    let got =
        Command::new(env!("CARGO_BIN_EXE_kiln")).arg("run").arg(wasm).output().map_err(|e| format!("kiln: {e}"))?;
    if got.status.code() != expected.status.code() || got.stdout != expected.stdout {
        return Err(format!(
            "kiln run: {}, stdout {:?}\nnative: {}, stdout {:?}\nkiln's stderr:\n{}",
            got.status,
            text(&got.stdout),
            expected.status,
            text(&expected.stdout),
            text(&got.stderr)
        )
        .into());
    }
    Ok(())
}

/// One trial per program of the built corpus, or the one that says why
/// there are none.
fn trials() -> Vec<Trial> {
    let programs = built_corpus().and_then(|dir| kiln_test_data::files_in(&dir.join("wasm"), "wasm").map(|f| (dir, f)));
    let (dir, programs) = match programs {
        Ok(found) => found,
        Err(e) => return vec![e.into_trial("bench/*")],
    };
    programs
        .into_iter()
        .map(|wasm| {
            let stem = wasm.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let native = dir.join("native").join(&stem);
            Trial::test(format!("bench/{stem}"), move || compare(&wasm, &native))
        })
        .collect()
}

fn main() {
    let args = Arguments::from_args();
    libtest_mimic::run(&args, trials()).exit();
}
