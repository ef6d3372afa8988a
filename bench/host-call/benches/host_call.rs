//! `cargo bench` here: the cost of one host-to-wasm call through each
//! runtime's typed-function API, Kiln against the Wasmtime 48 crate in the
//! same process, as a bars/probe-style embedder makes them (one store,
//! millions of calls of tiny exports).
//!
//! Each measurement is a Criterion benchmark timed in thread CPU time.
//! The runtimes alternate, round by round (Kiln, Wasmtime, Kiln, ...), and
//! after the last round the program prints every round's median ns per
//! call and the Kiln/Wasmtime ratio of each round and of their medians.

use criterion::{BenchmarkId, Criterion};
use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

#[path = "../../common/timing.rs"]
mod timing;
use timing::{median, timed, Samples};

/// The calls measured: an export doing nothing and one adding two `i32`s.
const WAT: &str = r#"(module
  (func (export "nop"))
  (func (export "add") (param i32 i32) (result i32)
    (i32.add (local.get 0) (local.get 1))))"#;

/// Rounds of alternating measurements.
const ROUNDS: usize = 5;

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();

    let kiln_engine = kiln::Engine::default();
    let kiln_module = kiln::Module::new(&kiln_engine, WAT).expect("kiln module");
    let mut kiln_store = kiln::Store::new(&kiln_engine, ());
    let kiln_instance = kiln::Instance::new(&mut kiln_store, &kiln_module, &[]).expect("kiln instance");
    let kiln_nop = kiln_instance.get_typed_func::<(), ()>(&mut kiln_store, "nop").expect("kiln nop");
    let kiln_add = kiln_instance.get_typed_func::<(i32, i32), i32>(&mut kiln_store, "add").expect("kiln add");

    let wt_engine = wasmtime::Engine::default();
    let wasm = wat::parse_str(WAT).expect("valid wat");
    let wt_module = wasmtime::Module::new(&wt_engine, &wasm).expect("wasmtime module");
    let mut wt_store = wasmtime::Store::new(&wt_engine, ());
    let wt_instance = wasmtime::Instance::new(&mut wt_store, &wt_module, &[]).expect("wasmtime instance");
    let wt_nop = wt_instance.get_typed_func::<(), ()>(&mut wt_store, "nop").expect("wasmtime nop");
    let wt_add = wt_instance.get_typed_func::<(i32, i32), i32>(&mut wt_store, "add").expect("wasmtime add");

    let samples = Samples::default();
    for round in 0..ROUNDS {
        let mut g = c.benchmark_group("host_call");
        g.bench_function(BenchmarkId::new("kiln_nop", round), |b| {
            b.iter_custom(|n| timed(&samples, "kiln_nop", n, || kiln_nop.call(&mut kiln_store, ()).expect("call")))
        });
        g.bench_function(BenchmarkId::new("wasmtime_nop", round), |b| {
            b.iter_custom(|n| timed(&samples, "wasmtime_nop", n, || wt_nop.call(&mut wt_store, ()).expect("call")))
        });
        g.bench_function(BenchmarkId::new("kiln_add", round), |b| {
            b.iter_custom(|n| {
                timed(&samples, "kiln_add", n, || {
                    black_box(kiln_add.call(&mut kiln_store, (black_box(1), black_box(2))).expect("call"));
                })
            })
        });
        g.bench_function(BenchmarkId::new("wasmtime_add", round), |b| {
            b.iter_custom(|n| {
                timed(&samples, "wasmtime_add", n, || {
                    black_box(wt_add.call(&mut wt_store, (black_box(1), black_box(2))).expect("call"));
                })
            })
        });
        g.finish();
        // Each round's samples are summarized on their own below.
        let mut all = samples.borrow_mut();
        for (name, v) in all.iter_mut() {
            let m = median(v);
            v.clear();
            ROUND_MEDIANS.with(|r| r.borrow_mut().push((round, name.clone(), m)));
        }
    }
    report();
}

thread_local! {
    /// (round, benchmark, median ns per call) for every round.
    static ROUND_MEDIANS: RefCell<Vec<(usize, String, f64)>> = const { RefCell::new(Vec::new()) };
}

/// Prints each round's medians and the Kiln/Wasmtime ratios.
fn report() {
    ROUND_MEDIANS.with(|r| {
        let r = r.borrow();
        let get = |round: usize, name: &str| r.iter().find(|(k, n, _)| *k == round && n == name).map(|e| e.2);
        println!("\nhost-to-wasm typed calls, thread CPU time, median ns per call:");
        println!(
            "{:>5} {:>9} {:>9} {:>7} {:>9} {:>9} {:>7}",
            "round", "kiln nop", "wt nop", "ratio", "kiln add", "wt add", "ratio"
        );
        let mut ratios = (vec![], vec![]);
        let mut kn = vec![];
        for round in 0..ROUNDS {
            let (Some(a), Some(b), Some(c), Some(d)) = (
                get(round, "kiln_nop"),
                get(round, "wasmtime_nop"),
                get(round, "kiln_add"),
                get(round, "wasmtime_add"),
            ) else {
                continue;
            };
            println!("{round:>5} {a:>9.2} {b:>9.2} {:>7.3} {c:>9.2} {d:>9.2} {:>7.3}", a / b, c / d);
            ratios.0.push(a / b);
            ratios.1.push(c / d);
            kn.push(a);
        }
        if !kn.is_empty() {
            println!(
                "median: kiln nop {:.2} ns; kiln/wasmtime nop {:.3}, add {:.3}",
                median(&kn),
                median(&ratios.0),
                median(&ratios.1)
            );
        }
    });
}
