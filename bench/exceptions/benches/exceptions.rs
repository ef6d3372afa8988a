//! `cargo bench` here: the cost of WebAssembly exception handling, Kiln
//! against the Wasmtime 48 crate (exceptions on) in the same process.
//!
//! - `throw_catch/D`: one call that recurses `D` frames deep, throws a tag
//!   with an `i32` payload at the bottom and catches it at the top
//!   (`try_table` with `catch`), for D = 1, 10, 100.
//! - `calls_with_handler` / `calls_without_handler`: 1,000 calls of a tiny
//!   function in a loop, inside a `try_table` or not (no throw): installing
//!   a handler must cost nothing.
//!
//! Each measurement is thread CPU time per outer call, median over
//! Criterion's samples; the runtimes alternate round by round and the
//! program prints each round's figures and the Kiln/Wasmtime ratios. A
//! runtime that cannot run the module is reported as such (Kiln before it
//! implements `throw`/`try_table`), not measured.

use criterion::{BenchmarkId, Criterion};
use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

#[path = "../../common/timing.rs"]
mod timing;
use timing::{median, timed, Samples};

/// The benchmark module.
const WAT: &str = r#"(module
  (tag $e (param i32))
  (func $thrower (param $depth i32) (param $v i32) (result i32)
    (if (i32.eqz (local.get $depth)) (then (throw $e (local.get $v))))
    (i32.add (call $thrower (i32.sub (local.get $depth) (i32.const 1)) (local.get $v)) (i32.const 1)))
  (func (export "throw_catch") (param $depth i32) (result i32)
    (block $caught (result i32)
      (try_table (result i32) (catch $e $caught)
        (call $thrower (local.get $depth) (i32.const 7)))))
  (func $leaf (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func (export "calls_with_handler") (param $n i32) (result i32)
    (local $acc i32)
    (block $caught (result i32)
      (try_table (result i32) (catch $e $caught)
        (loop $l
          (local.set $acc (call $leaf (local.get $acc)))
          (br_if $l (i32.lt_u (local.get $acc) (local.get $n))))
        (local.get $acc))))
  (func (export "calls_without_handler") (param $n i32) (result i32)
    (local $acc i32)
    (loop $l
      (local.set $acc (call $leaf (local.get $acc)))
      (br_if $l (i32.lt_u (local.get $acc) (local.get $n))))
    (local.get $acc)))"#;

/// Rounds of alternating measurements.
const ROUNDS: usize = 5;
/// Throw depths measured.
const DEPTHS: [i32; 3] = [1, 10, 100];
/// Loop length of the handler-cost pair.
const CALLS: i32 = 1000;

/// A call of one export with one `i32` argument, as each runtime makes it.
type Call = Box<dyn FnMut(i32) -> i32>;

fn kiln_calls() -> Result<Vec<(&'static str, Call)>, String> {
    let mut config = kiln::Config::new();
    config.wasm_feature_set(kiln::WasmFeature::Exceptions, true);
    let engine = kiln::Engine::new(&config).map_err(|e| format!("{e:#}"))?;
    let module = kiln::Module::new(&engine, WAT).map_err(|e| format!("{e:#}"))?;
    let store = std::rc::Rc::new(RefCell::new(kiln::Store::new(&engine, ())));
    let instance = kiln::Instance::new(&mut *store.borrow_mut(), &module, &[]).map_err(|e| format!("{e:#}"))?;
    let mut calls: Vec<(&'static str, Call)> = Vec::new();
    for name in ["throw_catch", "calls_with_handler", "calls_without_handler"] {
        let f = instance.get_typed_func::<i32, i32>(&mut *store.borrow_mut(), name).map_err(|e| format!("{e:#}"))?;
        let store = store.clone();
        calls.push((name, Box::new(move |x| f.call(&mut *store.borrow_mut(), x).expect("call"))));
    }
    Ok(calls)
}

fn wasmtime_calls() -> Result<Vec<(&'static str, Call)>, String> {
    let mut config = wasmtime::Config::new();
    config.wasm_exceptions(true);
    let engine = wasmtime::Engine::new(&config).map_err(|e| format!("{e:#}"))?;
    let wasm = wat::parse_str(WAT).map_err(|e| e.to_string())?;
    let module = wasmtime::Module::new(&engine, &wasm).map_err(|e| format!("{e:#}"))?;
    let store = std::rc::Rc::new(RefCell::new(wasmtime::Store::new(&engine, ())));
    let instance = wasmtime::Instance::new(&mut *store.borrow_mut(), &module, &[]).map_err(|e| format!("{e:#}"))?;
    let mut calls: Vec<(&'static str, Call)> = Vec::new();
    for name in ["throw_catch", "calls_with_handler", "calls_without_handler"] {
        let f = instance.get_typed_func::<i32, i32>(&mut *store.borrow_mut(), name).map_err(|e| format!("{e:#}"))?;
        let store = store.clone();
        calls.push((name, Box::new(move |x| f.call(&mut *store.borrow_mut(), x).expect("call"))));
    }
    Ok(calls)
}

/// The measured cases: (label, export, argument).
fn cases() -> Vec<(String, &'static str, i32)> {
    let mut c: Vec<(String, &'static str, i32)> =
        DEPTHS.iter().map(|d| (format!("throw_catch/{d}"), "throw_catch", *d)).collect();
    c.push(("calls_with_handler".into(), "calls_with_handler", CALLS));
    c.push(("calls_without_handler".into(), "calls_without_handler", CALLS));
    c
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
        .configure_from_args();
    let mut runtimes: Vec<(&str, Result<Vec<(&'static str, Call)>, String>)> =
        vec![("kiln", kiln_calls()), ("wasmtime", wasmtime_calls())];
    for (name, r) in &runtimes {
        if let Err(e) = r {
            println!("{name}: cannot run the benchmark module: {e}");
        }
    }
    let samples = Samples::default();
    let mut medians: Vec<(usize, String, f64)> = Vec::new();
    for round in 0..ROUNDS {
        let mut g = c.benchmark_group("exceptions");
        for (label, export, arg) in cases() {
            for (runtime, calls) in runtimes.iter_mut() {
                let Ok(calls) = calls else { continue };
                let Some((_, f)) = calls.iter_mut().find(|(n, _)| *n == export) else { continue };
                let key = format!("{runtime} {label}");
                g.bench_function(BenchmarkId::new(key.clone(), round), |b| {
                    b.iter_custom(|n| {
                        timed(&samples, &key, n, || {
                            black_box(f(black_box(arg)));
                        })
                    })
                });
            }
        }
        g.finish();
        for (name, v) in samples.borrow_mut().iter_mut() {
            medians.push((round, name.clone(), median(v)));
            v.clear();
        }
    }
    report(&medians);
}

/// Prints each case's per-round medians and the Kiln/Wasmtime ratio of
/// their medians.
fn report(medians: &[(usize, String, f64)]) {
    println!("\nthread CPU time per call, ns (median of each round; ratio of the medians of rounds):");
    println!("{:<24} {:>12} {:>12} {:>8}", "case", "kiln", "wasmtime", "ratio");
    for (label, _, _) in cases() {
        let of = |runtime: &str| -> Option<f64> {
            let v: Vec<f64> =
                medians.iter().filter(|(_, n, _)| *n == format!("{runtime} {label}")).map(|e| e.2).collect();
            (!v.is_empty()).then(|| median(&v))
        };
        let (k, w) = (of("kiln"), of("wasmtime"));
        let fmt = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.1}"));
        let ratio = match (k, w) {
            (Some(k), Some(w)) => format!("{:.3}", k / w),
            _ => "-".into(),
        };
        println!("{label:<24} {:>12} {:>12} {ratio:>8}", fmt(k), fmt(w));
    }
}
