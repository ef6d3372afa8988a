//! Wasmtime's spellings of `kiln run` and `kiln compile` options (`-W`,
//! `-S`, `-C`) next to Kiln's own, `--trap-unknown-imports` and
//! `--default-values-unknown-imports`, and reactors under `--invoke`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `kiln` with its own cache directory.
fn kiln(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env("KILN_CACHE_DIR", cache);
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

fn wasi_program(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasi/tests/c").join(format!("{name}.wasm"))
}

const SPIN: &str = r#"(module (func (export "_start") (loop $l (br $l))))"#;
const GROW: &str = r#"(module (memory 1)
    (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))"#;
const RECURSE: &str = r#"(module (func $r (export "_start") call $r))"#;

#[test]
fn w_fuel_and_timeout_stop_the_program_like_the_kiln_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spin = write(dir.path(), "spin.wat", SPIN);
    for args in [&["-W", "fuel=5000"][..], &["--wasm", "fuel=5_000"], &["--fuel", "5000", "-W", "fuel=5000"]] {
        let (code, _, err) = run(kiln(dir.path()).arg("run").args(args).arg(&spin));
        assert_eq!(code, 134, "{args:?}: {err}");
        assert!(err.contains("used up its fuel (--fuel 5000)"), "{args:?}: {err}");
    }
    for args in [&["-W", "timeout=50ms"][..], &["-W", "timeout=1"], &["--timeout", "50ms"]] {
        let (code, _, err) = run(kiln(dir.path()).arg("run").args(args).arg(&spin));
        assert_eq!(code, 134, "{args:?}: {err}");
        assert!(err.contains("time limit"), "{args:?}: {err}");
    }
    // The same limit given both ways with different values is an error.
    let (code, _, err) = run(kiln(dir.path()).args(["run", "--fuel", "5", "-W", "fuel=6"]).arg(&spin));
    assert_eq!(code, 1);
    assert!(err.contains("`--fuel` and `-W fuel` give different values"), "{err}");
}

#[test]
fn w_memory_table_and_stack_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let grow = write(dir.path(), "grow.wat", GROW);
    for limit in [["-W", "max-memory-size=131072"], ["-W", "max-memory-size=0x20000"], ["--max-memory", "128KiB"]] {
        let (code, out, err) = run(kiln(dir.path()).arg("run").args(limit).arg(&grow).args(["--invoke", "grow", "1"]));
        assert_eq!((code, out.as_str()), (0, "1\n"), "{limit:?}: {err}");
        let (code, out, err) = run(kiln(dir.path()).arg("run").args(limit).arg(&grow).args(["--invoke", "grow", "2"]));
        assert_eq!((code, out.as_str()), (0, "-1\n"), "{limit:?}: {err}");
    }

    let table = write(dir.path(), "t.wat", r#"(module (table 2000000 funcref) (func (export "_start")))"#);
    let (code, _, err) = run(kiln(dir.path()).arg("run").arg(&table));
    assert_eq!(code, 1, "{err}");
    for limit in [["-W", "max-table-elements=3000000"], ["--max-table-elements", "3000000"]] {
        let (code, _, err) = run(kiln(dir.path()).arg("run").args(limit).arg(&table));
        assert_eq!(code, 0, "{limit:?}: {err}");
    }

    let recurse = write(dir.path(), "r.wat", RECURSE);
    let (code, _, err) = run(kiln(dir.path()).args(["run", "-W", "max-wasm-stack=65536"]).arg(&recurse));
    assert_eq!(code, 134);
    assert!(err.contains("--max-wasm-stack 65536 bytes"), "{err}");
}

#[test]
fn w_takes_features_and_options_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let simd = write(
        dir.path(),
        "simd.wat",
        r#"(module (func (export "f") (result i32) (i32x4.extract_lane 0 (v128.const i32x4 7 0 0 0))))"#,
    );
    let (code, out, err) = run(kiln(dir.path())
        .args(["run", "-W", "simd=y,fuel=100", "-W", "threads=y"])
        .arg(&simd)
        .args(["--invoke", "f"]));
    assert_eq!((code, out.as_str()), (0, "7\n"), "{err}");
    let (code, _, err) =
        run(kiln(dir.path()).args(["run", "-W", "fuel=100,simd=n"]).arg(&simd).args(["--invoke", "f"]));
    assert_eq!(code, 1);
    assert!(err.contains("SIMD"), "{err}");
    let mem64 = write(dir.path(), "m64.wat", r#"(module (memory i64 1) (func (export "f") (result i64) memory.size))"#);
    // memory64 is part of WebAssembly 3.0, on by default; `-W memory64=n` turns it off.
    let (code, _, _) = run(kiln(dir.path()).args(["run", "-W", "memory64=n"]).arg(&mem64).args(["--invoke", "f"]));
    assert_eq!(code, 1);
    let (code, out, err) = run(kiln(dir.path()).arg("run").arg(&mem64).args(["--invoke", "f"]));
    assert_eq!((code, out.as_str()), (0, "1\n"), "{err}");

    let (code, _, err) = run(kiln(dir.path()).args(["run", "-W", "warp-drive"]).arg(&simd));
    assert_eq!(code, 1);
    assert!(err.contains("unknown -W option `warp-drive`"), "{err}");
    let (code, _, err) =
        run(kiln(dir.path()).args(["run", "-W", "component-model"]).arg(&simd).args(["--invoke", "f"]));
    assert_eq!(code, 1);
    assert!(err.contains("does not implement"), "{err}");
    let (code, _, err) =
        run(kiln(dir.path()).args(["run", "-W", "component-model=n"]).arg(&simd).args(["--invoke", "f"]));
    assert_eq!(code, 0, "turning off a proposal Kiln lacks changes nothing: {err}");

    // `-W help` lists both kinds and needs no FILE.
    let (code, out, _) = run(kiln(dir.path()).args(["run", "-W", "help"]));
    assert_eq!(code, 0);
    for key in ["simd[=y|n]", "memory64", "fuel=N", "timeout=D", "max-memory-size=N", "unknown-imports-trap"] {
        assert!(out.contains(&format!("-W {key}")), "{key}: {out}");
    }
    // `kiln wast` takes features but not options that only apply to a run.
    let (code, _, err) =
        run(kiln(dir.path()).args(["wast", "-W", "fuel=10"]).arg(write(dir.path(), "a.wast", "(module)")));
    assert_eq!(code, 1);
    assert!(err.contains("does not apply to `kiln wast`"), "{err}");
}

#[test]
fn compile_takes_the_run_options_that_change_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fib.wat");
    let plain = dir.path().join("plain.cwasm");
    let fueled = dir.path().join("fueled.cwasm");
    assert_eq!(run(kiln(dir.path()).arg("compile").arg(&fib).arg("-o").arg(&plain)).0, 0);
    let (code, _, err) = run(kiln(dir.path()).args(["compile", "-W", "fuel=1"]).arg(&fib).arg("-o").arg(&fueled));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(kiln(dir.path())
        .args(["run", "--allow-precompiled", "--fuel", "100"])
        .arg(&plain)
        .args(["--invoke", "fib", "20"]));
    assert_eq!(code, 1);
    assert!(err.contains("artifact was produced with a different"), "{err}");
    for args in [["--fuel", "100"], ["-W", "fuel=100"]] {
        let (code, _, err) = run(kiln(dir.path())
            .args(["run", "--allow-precompiled"])
            .args(args)
            .arg(&fueled)
            .args(["--invoke", "fib", "20"]));
        assert_eq!(code, 134, "{args:?}: {err}");
        assert!(err.contains("fuel"), "{err}");
    }
}

#[test]
fn s_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = wasi_program("args_env");
    // inherit-env: the whole host environment, and --env still overrides.
    let (code, out, err) = run(kiln(dir.path())
        .args(["run", "-S", "inherit-env", "--env", "KILN_OVERRIDDEN=new"])
        .arg(&file)
        .env("KILN_TEST_VAR", "inherited")
        .env("KILN_OVERRIDDEN", "old"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("env KILN_TEST_VAR=inherited\n") && out.contains("env KILN_OVERRIDDEN=new\n"), "{out}");
    assert!(!out.contains("KILN_OVERRIDDEN=old"), "{out}");
    let (_, out, _) = run(kiln(dir.path()).arg("run").arg(&file).env("KILN_TEST_VAR", "inherited"));
    assert!(out.contains("KILN_TEST_VAR=(unset)"), "without the option nothing is inherited: {out}");

    // inherit-stdout=n: the program's output goes nowhere.
    let (code, out, err) = run(kiln(dir.path()).args(["run", "-S", "inherit-stdout=n"]).arg(&file));
    assert_eq!((code, out.as_str()), (0, ""), "{err}");

    // cli=n: no WASI at all.
    let (code, _, err) = run(kiln(dir.path()).args(["run", "-S", "cli=n"]).arg(&file));
    assert_eq!(code, 1);
    assert!(err.contains("unknown import") && err.contains("wasi_snapshot_preview1"), "{err}");

    // inherit-network is accepted (with a warning: preview 1 has no way to use it); preview2 changes nothing.
    let (code, _, err) = run(kiln(dir.path()).args(["run", "-S", "inherit-network,preview2=n"]).arg(&file));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("inherit-network has no effect"), "{err}");

    let (code, out, _) = run(kiln(dir.path()).args(["run", "-S", "help"]));
    assert_eq!(code, 0);
    assert!(out.contains("-S inherit-env") && out.contains("-S tcplisten=ADDR"), "{out}");
}

/// Exits with the WASI file type of descriptor 3 (6: a stream socket), or
/// 100 + the errno if there is none.
const FD3_TYPE: &str = r#"(module
    (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $stat (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    (func (export "_start") (local i32)
        (local.set 0 (call $stat (i32.const 3) (i32.const 16)))
        (if (local.get 0) (then (call $exit (i32.add (i32.const 100) (local.get 0)))))
        (call $exit (i32.load8_u (i32.const 16)))))"#;

#[test]
fn s_tcplisten_preopens_a_socket_like_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = write(dir.path(), "fd3.wat", FD3_TYPE);
    let (code, _, err) = run(kiln(dir.path()).arg("run").arg(&prog));
    assert_eq!(code, 108, "no descriptor 3 (badf): {err}");
    for args in [["--tcplisten", "127.0.0.1:0"], ["-S", "tcplisten=127.0.0.1:0"]] {
        let (code, _, err) = run(kiln(dir.path()).arg("run").args(args).arg(&prog));
        assert_eq!(code, 6, "{args:?}: {err}");
    }
}

#[test]
fn c_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fib.wat");
    let cache = dir.path().join("cache");
    let stats = |cache: &Path| run(kiln(cache).args(["cache", "stats"])).1;
    // cache=n: nothing is written.
    let (code, out, err) = run(kiln(&cache).args(["run", "-C", "cache=n"]).arg(&fib).args(["--invoke", "fib", "10"]));
    assert_eq!((code, out.as_str()), (0, "55\n"), "{err}");
    assert!(stats(&cache).contains("modules:   0 entries"), "{}", stats(&cache));

    // cache-config: Wasmtime's file names the directory.
    let elsewhere = dir.path().join("from-config");
    let config = write(
        dir.path(),
        "cache.toml",
        &format!(
            "[cache]\ndirectory = \"{}\"\nfiles-total-size-soft-limit = \"64Mi\"\ncleanup-interval = \"1h\"\n",
            elsewhere.display()
        ),
    );
    let spec = format!("cache-config={}", config.display());
    let (code, out, err) = run(kiln(&cache)
        .args(["run", "-C", &spec, "-C", "parallel-compilation=n"])
        .arg(&fib)
        .args(["--invoke", "fib", "10"]));
    assert_eq!((code, out.as_str()), (0, "55\n"), "{err}");
    assert!(stats(&elsewhere).contains("modules:   1 entries"), "{}", stats(&elsewhere));
    assert!(stats(&cache).contains("modules:   0 entries"), "{}", stats(&cache));

    let bad = write(dir.path(), "bad.toml", "[cache]\nfrobnicate = 1\n");
    let (code, _, err) = run(kiln(&cache).args(["run", "-C"]).arg(format!("cache-config={}", bad.display())).arg(&fib));
    assert_eq!(code, 1);
    assert!(err.contains("unknown setting `frobnicate`"), "{err}");
    let (code, _, err) = run(kiln(&cache).args(["run", "-C", "turbo=y"]).arg(&fib));
    assert_eq!(code, 1);
    assert!(err.contains("unknown -C option `turbo`"), "{err}");
}

/// Imports one of each kind from `env`; `call_f` calls the function,
/// `get_g` reads the global, `sizes` returns the memory's pages * 1000 +
/// the table's elements.
const IMPORTS: &str = r#"(module
    (import "env" "f" (func $f (param i32) (result i32)))
    (import "env" "g" (global $g i32))
    (import "env" "t" (table $t 3 funcref))
    (import "env" "m" (memory $m 2))
    (func (export "call_f") (result i32) (call $f (i32.const 5)))
    (func (export "get_g") (result i32) (global.get $g))
    (func (export "sizes") (result i32) (i32.add (i32.mul (memory.size) (i32.const 1000)) (table.size $t))))"#;

#[test]
fn unknown_imports_get_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = write(dir.path(), "imports.wat", IMPORTS);
    let (code, _, err) = run(kiln(dir.path()).arg("run").arg(&m).args(["--invoke", "get_g"]));
    assert_eq!(code, 1);
    assert!(err.contains("unknown import") && err.contains("env::f"), "{err}");
    for flag in [["--default-values-unknown-imports"], ["-Wunknown-imports-default"]] {
        for (func, expected) in [("call_f", "0\n"), ("get_g", "0\n"), ("sizes", "2003\n")] {
            let (code, out, err) = run(kiln(dir.path()).arg("run").args(flag).arg(&m).args(["--invoke", func]));
            assert_eq!((code, out.as_str()), (0, expected), "{flag:?} {func}: {err}");
        }
    }
}

#[test]
fn unknown_imports_trap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let funcs = write(
        dir.path(),
        "funcs.wat",
        r#"(module (import "env" "f" (func $f (param i32) (result i32)))
            (func (export "call_f") (result i32) (call $f (i32.const 5)))
            (func (export "safe") (result i32) (i32.const 3)))"#,
    );
    for flag in [["--trap-unknown-imports"], ["-Wunknown-imports-trap=y"]] {
        let (code, out, err) = run(kiln(dir.path()).arg("run").args(flag).arg(&funcs).args(["--invoke", "safe"]));
        assert_eq!((code, out.as_str()), (0, "3\n"), "{flag:?}: {err}");
        let (code, out, err) = run(kiln(dir.path()).arg("run").args(flag).arg(&funcs).args(["--invoke", "call_f"]));
        assert_eq!((code, out.as_str()), (134, ""), "{flag:?}: {err}");
        assert!(err.contains("wasm trap") && err.contains("`env::f`"), "{err}");
    }
    // Traps are for functions only; with both options, the rest get defaults.
    let all = write(dir.path(), "imports.wat", IMPORTS);
    let (code, _, err) =
        run(kiln(dir.path()).args(["run", "--trap-unknown-imports"]).arg(&all).args(["--invoke", "get_g"]));
    assert_eq!(code, 1);
    assert!(err.contains("unknown import") && err.contains("env::g"), "{err}");
    let both = ["run", "--trap-unknown-imports", "--default-values-unknown-imports"];
    let (code, out, err) = run(kiln(dir.path()).args(both).arg(&all).args(["--invoke", "get_g"]));
    assert_eq!((code, out.as_str()), (0, "0\n"), "{err}");
    let (code, _, err) = run(kiln(dir.path()).args(both).arg(&all).args(["--invoke", "call_f"]));
    assert_eq!(code, 134, "{err}");

    // WASI imports stay the real ones.
    let (code, out, err) =
        run(kiln(dir.path()).args(["run", "--trap-unknown-imports"]).arg(wasi_program("args_env")).arg("7"));
    assert_eq!(code, 7, "{err}");
    assert!(out.starts_with("argc=2\n"), "{out}");
}

/// A reactor: `_initialize` sets the state its exports read.
#[test]
fn invoke_initializes_a_reactor_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reactor = write(
        dir.path(),
        "reactor.wat",
        r#"(module (global $state (mut i32) (i32.const 0))
            (func (export "_initialize") (global.set $state (i32.add (global.get $state) (i32.const 42))))
            (func (export "get") (result i32) (global.get $state)))"#,
    );
    let (code, out, err) = run(kiln(dir.path()).arg("run").arg(&reactor).args(["--invoke", "get"]));
    assert_eq!((code, out.as_str()), (0, "42\n"), "called once, before the export: {err}");
    let (code, out, err) = run(kiln(dir.path()).arg("run").arg(&reactor));
    assert_eq!((code, out.as_str()), (0, ""), "no _start: initializing is all there is to run: {err}");
    let failing = write(
        dir.path(),
        "bad.wat",
        r#"(module (func (export "_initialize") unreachable) (func (export "get") (result i32) i32.const 1))"#,
    );
    let (code, out, err) = run(kiln(dir.path()).arg("run").arg(&failing).args(["--invoke", "get"]));
    assert_eq!((code, out.as_str()), (134, ""), "{err}");
    assert!(err.contains("unreachable"), "{err}");
}

#[test]
fn run_help_groups_its_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, _) = run(kiln(dir.path()).args(["run", "--help"]));
    assert_eq!(code, 0);
    let at = |s: &str| out.find(s).unwrap_or_else(|| panic!("no `{s}` in:\n{out}"));
    for (heading, option) in [
        ("WASI:", "--dir"),
        ("WebAssembly and limits:", "--fuel"),
        ("Compilation and cache:", "--no-cache"),
        ("Imports:", "--trap-unknown-imports"),
    ] {
        assert!(at(heading) < at(option), "{option} under {heading}:\n{out}");
    }
}

#[test]
fn the_gc_heap_limit_both_ways() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 2,000 arrays of 1 KiB each, all kept alive (each linked from the
    // next): about 2 MB of live GC objects.
    let grow = write(
        dir.path(),
        "gc.wat",
        r#"(module (type $a (array (mut i8)))
             (type $link (struct (field (ref $a)) (field (ref null $link))))
             (global $keep (mut (ref null $link)) (ref.null $link))
             (func (export "grow") (result i32) (local $n i32)
               (loop $more
                 (global.set $keep (struct.new $link (array.new_default $a (i32.const 1008)) (global.get $keep)))
                 (local.set $n (i32.add (local.get $n) (i32.const 1)))
                 (br_if $more (i32.lt_u (local.get $n) (i32.const 2000))))
               (local.get $n)))"#,
    );
    for limit in [&["-W", "gc,max-gc-heap-size=1MiB"][..], &["-W", "gc", "--max-gc-heap", "1MiB"]] {
        let (code, _, err) = run(kiln(dir.path()).arg("run").args(limit).arg(&grow).args(["--invoke", "grow"]));
        assert_eq!(code, 134, "{limit:?}: {err}");
        assert!(err.contains("allocation failed"), "{err}");
    }
    let (code, out, err) =
        run(kiln(dir.path()).args(["run", "-W", "gc,max-gc-heap-size=4MiB"]).arg(&grow).args(["--invoke", "grow"]));
    assert_eq!((code, out.as_str()), (0, "2000\n"), "{err}");
}
