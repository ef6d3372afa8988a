//! bench/c-api: the cost of one call through Kiln's C API against the
//! same call through the Rust API, in thread CPU time (median of 15
//! rounds of 1,000,000 calls, after two warm-up rounds).
//!
//! - `wasm_to_host`: wasm calls an imported host function `(i32) -> i32`
//!   in a loop. C API: a `wasm_func_new` callback. Rust API: `Func::new`
//!   (the dynamic host function, the same shape as the C callback) and
//!   `Linker::func_wrap` (typed).
//! - `host_to_wasm`: the host calls an exported `(i32) -> i32` wasm
//!   function. C API: `wasm_func_call`. Rust API: `Func::call` (dynamic)
//!   and `TypedFunc::call`.
//!
//! The C side is `calls.c`, compiled with `cc -O2` against
//! `crates/c-api/include` and linked with the `libkiln.so` in
//! `$KILN_LIB_DIR` (default `../../target/release`: build it first with
//! `cargo build --release -p kiln-c-api`). Run:
//!
//! ```sh
//! cargo build --release -p kiln-c-api          # in the repository root
//! cd bench/c-api && cargo run --release
//! ```

use kiln::{Engine, Func, FuncType, Instance, Linker, Module, Store, Val, ValType};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROUNDS: usize = 15;
const N: i32 = 1_000_000;

const WAT: &str = r#"(module
  (import "h" "f" (func $f (param i32) (result i32)))
  (func (export "run") (param $n i32) (result i32) (local $acc i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $acc (call $f (local.get $acc)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $acc))
  (func (export "inc") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1))))"#;

/// Median thread CPU time per call (ns) of `ROUNDS` rounds of `round`,
/// which makes `N` calls.
fn measure(mut round: impl FnMut()) -> f64 {
    let mut times = Vec::new();
    for r in 0..ROUNDS + 2 {
        let start = cpu_time::ThreadTime::now();
        round();
        let ns = start.elapsed().as_secs_f64() * 1e9 / f64::from(N);
        if r >= 2 {
            times.push(ns);
        }
    }
    times.sort_by(f64::total_cmp);
    times[ROUNDS / 2]
}

fn rust_side() -> kiln::Result<[(&'static str, f64); 4]> {
    let engine = Engine::default();
    let module = Module::new(&engine, WAT)?;

    // wasm -> host, dynamic host function.
    let mut store = Store::new(&engine, ());
    let ty = FuncType::new([ValType::I32], [ValType::I32]);
    let f = Func::new(&mut store, ty, |_, p, r| {
        r[0] = Val::I32(p[0].i32().unwrap_or(0) + 1);
        Ok(())
    });
    let inst = Instance::new(&mut store, &module, &[f.into()])?;
    let run = inst.get_typed_func::<i32, i32>(&mut store, "run")?;
    let dynamic = measure(|| assert_eq!(run.call(&mut store, N).ok(), Some(N)));

    // host -> wasm, dynamic and typed.
    let inc = inst.get_func(&mut store, "inc").ok_or_else(|| kiln::Error::msg("no export inc"))?;
    let call_dynamic = measure(|| {
        let mut x = 0;
        let mut out = [Val::I32(0)];
        for _ in 0..N {
            inc.call(&mut store, &[Val::I32(x)], &mut out).expect("inc");
            x = out[0].i32().unwrap_or(0);
        }
        assert_eq!(x, N);
    });
    let inc_typed = inst.get_typed_func::<i32, i32>(&mut store, "inc")?;
    let call_typed = measure(|| {
        let mut x = 0;
        for _ in 0..N {
            x = inc_typed.call(&mut store, x).expect("inc");
        }
        assert_eq!(x, N);
    });

    // wasm -> host, typed host function.
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker.func_wrap("h", "f", |x: i32| x + 1)?;
    let inst = linker.instantiate(&mut store, &module)?;
    let run = inst.get_typed_func::<i32, i32>(&mut store, "run")?;
    let typed = measure(|| assert_eq!(run.call(&mut store, N).ok(), Some(N)));

    Ok([
        ("wasm_to_host, Rust Func::new (dynamic)", dynamic),
        ("wasm_to_host, Rust Linker::func_wrap (typed)", typed),
        ("host_to_wasm, Rust Func::call (dynamic)", call_dynamic),
        ("host_to_wasm, Rust TypedFunc::call", call_typed),
    ])
}

fn c_side(here: &Path) -> Result<(f64, f64), String> {
    let lib_dir = std::env::var_os("KILN_LIB_DIR").map_or_else(|| here.join("../../target/release"), PathBuf::from);
    if !lib_dir.join("libkiln.so").is_file() {
        return Err(format!(
            "{}/libkiln.so not found: run `cargo build --release -p kiln-c-api` first",
            lib_dir.display()
        ));
    }
    let exe = std::env::temp_dir().join(format!("kiln-c-api-bench-{}", std::process::id()));
    let status = Command::new("cc")
        .args(["-O2", "-I"])
        .arg(here.join("../../crates/c-api/include"))
        .arg(here.join("calls.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(&lib_dir)
        .arg("-lkiln")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .status()
        .map_err(|e| format!("cc: {e}"))?;
    if !status.success() {
        return Err("cc failed".into());
    }
    // Without cargo's LD_LIBRARY_PATH, which could name another libkiln.so.
    let out = Command::new(&exe).env_remove("LD_LIBRARY_PATH").output().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&exe);
    if !out.status.success() {
        return Err(format!("calls.c failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |key: &str| -> Result<f64, String> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .ok_or_else(|| format!("no `{key}` in the C output:\n{text}"))
    };
    Ok((get("wasm_to_host")?, get("host_to_wasm")?))
}

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rust = match rust_side() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Rust side: {e}");
            std::process::exit(1);
        }
    };
    let (c_in, c_out) = match c_side(here) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("C side: {e}");
            std::process::exit(1);
        }
    };
    println!("thread CPU time per call, median of {ROUNDS} rounds of {N} calls");
    println!("{:<48} {:>8.2} ns", "wasm_to_host, C API wasm_func_new callback", c_in);
    for (name, ns) in &rust[..2] {
        println!("{name:<48} {ns:>8.2} ns   C/Rust = {:.2}x", c_in / ns);
    }
    println!("{:<48} {:>8.2} ns", "host_to_wasm, C API wasm_func_call", c_out);
    for (name, ns) in &rust[2..] {
        println!("{name:<48} {ns:>8.2} ns   C/Rust = {:.2}x", c_out / ns);
    }
}
