//! `kiln run` and precompiled code: artifacts run only with
//! `--allow-precompiled`, `kiln compile` never changes a file a running
//! process executes, and the compilation cache refuses entries it did not
//! seal and directories others could write.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn kiln(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env("KILN_CACHE_DIR", cache);
    c
}

/// `kiln run` that leaves no cache filler behind: a tiered run that ends
/// with baseline code starts one (`cache_fill.rs`), which would write the
/// cache's entries while a test changes or looks for them.
fn kiln_run(cache: &Path) -> Command {
    let mut c = kiln(cache);
    c.args(["run", "-C", "tiering=n"]);
    c
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("run kiln");
    (status.code().unwrap_or(-1), String::from_utf8_lossy(&stdout).into(), String::from_utf8_lossy(&stderr).into())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

const ADD_ONE: &str = r#"(module (func (export "f") (param i32) (result i32) local.get 0 i32.const 1 i32.add))"#;

/// Counts up to its argument, one iteration at a time.
const SPIN: &str = r#"(module (func (export "spin") (param i64) (result i64) (local i64)
    (loop $l (local.set 1 (i64.add (local.get 1) (i64.const 1))) (br_if $l (i64.ne (local.get 1) (local.get 0))))
    local.get 1))"#;

#[test]
fn artifacts_run_only_with_allow_precompiled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let artifact = dir.path().join("evil.cwasm");
    let (code, _, err) =
        run(kiln(&cache).arg("compile").arg(write(dir.path(), "f.wat", ADD_ONE)).arg("-o").arg(&artifact));
    assert_eq!(code, 0, "{err}");
    // Code patched and its public checksum recomputed: as valid an
    // artifact as any; only the flag decides.
    let mut bytes = std::fs::read(&artifact).expect("read");
    let n = bytes.len();
    bytes[n - 8..].fill(0xcc);
    assert!(kiln_environ::reseal(&mut bytes, &kiln_environ::PublicSeal::artifact()));
    std::fs::write(&artifact, &bytes).expect("write");
    let innocent = dir.path().join("innocent.wasm");
    std::fs::copy(&artifact, &innocent).expect("copy");
    for file in [&artifact, &innocent] {
        let (code, out, err) = run(kiln(&cache).arg("run").arg(file).args(["--invoke", "f", "5"]));
        assert_eq!((code, out.as_str()), (1, ""), "{err}");
        assert!(err.contains("precompiled") && err.contains("--allow-precompiled"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // An intact artifact runs with the flag.
    let good = dir.path().join("good.cwasm");
    run(kiln(&cache).arg("compile").arg(dir.path().join("f.wat")).arg("-o").arg(&good));
    let (code, out, err) =
        run(kiln(&cache).args(["run", "--allow-precompiled"]).arg(&good).args(["--invoke", "f", "5"]));
    assert_eq!((code, out.as_str()), (0, "6\n"), "{err}");
    // `kiln compile` takes WebAssembly only.
    let (code, _, err) = run(kiln(&cache).arg("compile").arg(&good).arg("-o").arg(dir.path().join("again.cwasm")));
    assert_eq!(code, 1);
    assert!(err.contains("precompiled"), "{err}");
}

#[test]
fn compiling_over_a_running_artifact_leaves_it_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let target = dir.path().join("loop.cwasm");
    let (code, _, err) =
        run(kiln(&cache).arg("compile").arg(write(dir.path(), "spin.wat", SPIN)).arg("-o").arg(&target));
    assert_eq!(code, 0, "{err}");
    let iterations = "6000000000";
    let mut runner = kiln(&cache)
        .args(["run", "--allow-precompiled"])
        .arg(&target)
        .args(["--invoke", "spin", iterations])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(300));
    // Other code, then a much smaller file, over the one being executed.
    let other = write(
        dir.path(),
        "other.wat",
        r#"(module (func (export "spin") (param i64) (result i64) i64.const 7) (memory 1) (data (i32.const 0) "padding"))"#,
    );
    for module in [other, write(dir.path(), "tiny.wat", "(module)")] {
        let (code, _, err) = run(kiln(&cache).arg("compile").arg(&module).arg("-o").arg(&target));
        assert_eq!(code, 0, "{err}");
    }
    if let Some(status) = runner.try_wait().expect("poll") {
        match status.success() {
            true => panic!("the runner finished before the artifact was replaced: the test proves nothing"),
            false => panic!("the runner died while its artifact was replaced: {status:?}"),
        }
    }
    let Output { status, stdout, stderr } = runner.wait_with_output().expect("wait");
    assert!(status.success(), "{status:?}: {}", String::from_utf8_lossy(&stderr));
    assert_eq!(String::from_utf8_lossy(&stdout), format!("{iterations}\n"));
    // And the new artifact is what the file holds now.
    let (code, _, _) = run(kiln(&cache).args(["run", "--allow-precompiled"]).arg(&target));
    assert_eq!(code, 0);
}

/// The one module entry of the cache at `root`.
fn module_entry(root: &Path) -> PathBuf {
    let entries: Vec<PathBuf> =
        std::fs::read_dir(root.join("modules")).expect("modules").flatten().map(|e| e.path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].clone()
}

#[test]
fn a_planted_cache_entry_does_not_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let wat = write(dir.path(), "f.wat", ADD_ONE);
    let (code, out, _) = run(kiln_run(&cache).arg(&wat).args(["--invoke", "f", "41"]));
    assert_eq!((code, out.as_str()), (0, "42\n"));
    // Patched code, sealed under the public key (an attacker who can write
    // the directory does not know the cache's own key).
    let entry = module_entry(&cache);
    let mut bytes = std::fs::read(&entry).expect("read");
    let n = bytes.len();
    bytes[n - 8..].fill(0xcc);
    let name = entry.file_name().and_then(|n| n.to_str()).expect("name").to_string();
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&name[2 * i..2 * i + 2], 16).expect("hex");
    }
    assert!(kiln::__private_testing::reseal_entry(&mut bytes, None, kiln_environ::EntryKind::Module, &key));
    std::fs::write(&entry, &bytes).expect("write");
    let (code, out, err) = run(kiln_run(&cache).arg(&wat).args(["--invoke", "f", "41"]));
    assert_eq!((code, out.as_str(), err.as_str()), (0, "42\n", ""));
    assert_ne!(std::fs::read(&entry).expect("read"), bytes, "replaced");
}

#[test]
fn a_cache_directory_others_can_write_is_not_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let wat = write(dir.path(), "f.wat", ADD_ONE);
    run(kiln_run(&cache).arg(&wat).args(["--invoke", "f", "1"]));
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let entry = module_entry(&cache);
    std::fs::remove_file(&entry).expect("remove");
    let (code, out, err) = run(kiln_run(&cache).arg(&wat).args(["--invoke", "f", "41"]));
    assert_eq!((code, out.as_str()), (0, "42\n"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("warning: compilation cache disabled:") && err.contains("writable by group or others"),
        "{err}"
    );
    assert!(!entry.exists(), "nothing was written to the refused cache");
}
