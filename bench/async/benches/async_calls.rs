//! `cargo bench` here: the cost of the async embedding API, Kiln against
//! the Wasmtime 48 crate in the same process. Per call or instantiation,
//! in thread CPU time:
//!
//! - `async_nop`: `TypedFunc::call_async` of an export doing nothing,
//!   awaited by a minimal executor (poll with a no-op waker until ready);
//! - `sync_nop`: the same runtime's synchronous `TypedFunc::call` of it, on
//!   the same store (for the async/sync ratio);
//! - `pause`: `call_async` of an export calling an async host function
//!   (`func_wrap_async`) whose future is pending once, then ready: one
//!   suspend of the call and one resume;
//! - `inst_async`: `InstancePre::instantiate_async` of a small module (no
//!   start function) into a fresh store; the stores are made before and
//!   dropped after the timed part, 8 at a time (fewer than the 16 released
//!   mappings and stacks Kiln's on-demand allocator keeps for reuse);
//! - `inst_sync`: the same with `InstancePre::instantiate`;
//! - `inst_async_64`: as `inst_async`, 64 stores at a time (more than Kiln
//!   keeps: most instantiations map fresh memory and a fresh stack);
//! - `inst_start_async`: as `inst_async`, for the module with a start
//!   function (Wasmtime 48 runs `instantiate_async` on a fiber only then);
//! - `store_inst_drop`: making a store, `instantiate_async` into it and
//!   dropping the store, all timed (what one request costs an embedder that
//!   uses a store per request).
//!
//! Each measurement is a Criterion benchmark. The runtimes alternate,
//! benchmark by benchmark within each round (Kiln, Wasmtime, Kiln, ...),
//! for five rounds; after the last round the program prints every round's
//! median per call, the Kiln/Wasmtime ratio of each round, the medians of
//! those ratios, and Kiln's (and Wasmtime's) `call_async` over `call`.

use criterion::{BenchmarkId, Criterion};
use kiln_async_bench::{NOP_WAT, PAUSE_WAT, SMALL_WAT, block_on, kiln_linker, small_with_start_wat, wasmtime_linker};
use std::cell::RefCell;
use std::time::Duration;

#[path = "../../common/timing.rs"]
mod timing;
use timing::{Samples, median, timed};

/// Rounds of alternating measurements.
const ROUNDS: usize = 5;

/// The benchmarks, each measured for both runtimes (`kiln_<name>`,
/// `wasmtime_<name>`), and the unit their figures are printed in.
const BENCHES: [(&str, &str); 9] = [
    ("async_nop", "ns"),
    ("async_nop_fiber", "ns"),
    ("sync_nop", "ns"),
    ("pause", "ns"),
    ("inst_async", "us"),
    ("inst_sync", "us"),
    ("inst_async_64", "us"),
    ("inst_start_async", "us"),
    ("store_inst_drop", "us"),
];

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();

    // Kiln: default `Config` (on-demand allocation, 2 MiB async stacks).
    let k_engine = kiln::Engine::default();
    let k_linker = kiln_linker(&k_engine);
    let k_nop_module = kiln::Module::new(&k_engine, NOP_WAT).expect("kiln nop module");
    let k_pause_module = kiln::Module::new(&k_engine, PAUSE_WAT).expect("kiln pause module");
    let k_small = kiln::Module::new(&k_engine, SMALL_WAT).expect("kiln small module");
    let k_pre = k_linker.instantiate_pre(&k_small).expect("kiln instance_pre");
    let start_wat = small_with_start_wat();
    let k_start = kiln::Module::new(&k_engine, &start_wat).expect("kiln start module");
    let k_start_pre = k_linker.instantiate_pre(&k_start).expect("kiln instance_pre");
    let mut k_store = kiln::Store::new(&k_engine, ());
    let k_nop = kiln::Instance::new(&mut k_store, &k_nop_module, &[])
        .expect("kiln nop instance")
        .get_typed_func::<(), ()>(&mut k_store, "nop")
        .expect("kiln nop");
    // A store of its own: the one with the async host function.
    let mut k_pause_store = kiln::Store::new(&k_engine, ());
    let k_pause_instance =
        block_on(k_linker.instantiate_async(&mut k_pause_store, &k_pause_module)).0.expect("kiln pause instance");
    let k_pause = k_pause_instance.get_typed_func::<(), ()>(&mut k_pause_store, "run").expect("kiln run");
    let k_nop_fiber = k_pause_instance.get_typed_func::<(), ()>(&mut k_pause_store, "nop").expect("kiln nop");

    // Wasmtime: default `Config` too (on-demand allocator, Cranelift).
    let w_engine = wasmtime::Engine::default();
    let w_linker = wasmtime_linker(&w_engine);
    let w_nop_module = wasmtime::Module::new(&w_engine, wat::parse_str(NOP_WAT).unwrap()).expect("wt nop module");
    let w_pause_module = wasmtime::Module::new(&w_engine, wat::parse_str(PAUSE_WAT).unwrap()).expect("wt pause module");
    let w_small = wasmtime::Module::new(&w_engine, wat::parse_str(SMALL_WAT).unwrap()).expect("wt small module");
    let w_pre = w_linker.instantiate_pre(&w_small).expect("wt instance_pre");
    let w_start = wasmtime::Module::new(&w_engine, wat::parse_str(&start_wat).unwrap()).expect("wt start module");
    let w_start_pre = w_linker.instantiate_pre(&w_start).expect("wt instance_pre");
    let mut w_store = wasmtime::Store::new(&w_engine, ());
    let w_nop = wasmtime::Instance::new(&mut w_store, &w_nop_module, &[])
        .expect("wt nop instance")
        .get_typed_func::<(), ()>(&mut w_store, "nop")
        .expect("wt nop");
    let mut w_pause_store = wasmtime::Store::new(&w_engine, ());
    let w_pause_instance =
        block_on(w_linker.instantiate_async(&mut w_pause_store, &w_pause_module)).0.expect("wt pause instance");
    let w_pause = w_pause_instance.get_typed_func::<(), ()>(&mut w_pause_store, "run").expect("wt run");
    let w_nop_fiber = w_pause_instance.get_typed_func::<(), ()>(&mut w_pause_store, "nop").expect("wt nop");

    // What is timed behaves as described: the nop and the instantiations
    // complete on the first poll, the pausing call on the second.
    for _ in 0..3 {
        let (r, pending) = block_on(k_nop.call_async(&mut k_store, ()));
        r.expect("kiln call_async nop");
        assert_eq!(pending, 0, "kiln call_async nop was pending");
        let (r, pending) = block_on(w_nop.call_async(&mut w_store, ()));
        r.expect("wt call_async nop");
        assert_eq!(pending, 0, "wt call_async nop was pending");
        let (r, pending) = block_on(k_pause.call_async(&mut k_pause_store, ()));
        r.expect("kiln call_async pause");
        assert_eq!(pending, 1, "kiln: the pausing call should be pending exactly once");
        let (r, pending) = block_on(w_pause.call_async(&mut w_pause_store, ()));
        r.expect("wt call_async pause");
        assert_eq!(pending, 1, "wt: the pausing call should be pending exactly once");
        let mut s = kiln::Store::new(&k_engine, ());
        let (i, pending) = block_on(k_pre.instantiate_async(&mut s));
        let a = i.expect("kiln instantiate_async").get_typed_func::<i32, i32>(&mut s, "c").expect("kiln c");
        assert_eq!((a.call(&mut s, 35).expect("kiln c"), pending), (42, 0));
        let mut s = wasmtime::Store::new(&w_engine, ());
        let (i, pending) = block_on(w_pre.instantiate_async(&mut s));
        let a = i.expect("wt instantiate_async").get_typed_func::<i32, i32>(&mut s, "c").expect("wt c");
        assert_eq!((a.call(&mut s, 35).expect("wt c"), pending), (42, 0));
        let mut s = kiln::Store::new(&k_engine, ());
        let (i, pending) = block_on(k_start_pre.instantiate_async(&mut s));
        let a = i.expect("kiln instantiate_async").get_typed_func::<i32, i32>(&mut s, "c").expect("kiln c");
        assert_eq!((a.call(&mut s, 35).expect("kiln c"), pending), (43, 0), "kiln: the start function ran");
        let mut s = wasmtime::Store::new(&w_engine, ());
        let (i, pending) = block_on(w_start_pre.instantiate_async(&mut s));
        let a = i.expect("wt instantiate_async").get_typed_func::<i32, i32>(&mut s, "c").expect("wt c");
        assert_eq!((a.call(&mut s, 35).expect("wt c"), pending), (43, 0), "wt: the start function ran");
    }

    let samples = Samples::default();
    for round in 0..ROUNDS {
        let mut g = c.benchmark_group("async");
        g.bench_function(BenchmarkId::new("kiln_async_nop", round), |b| {
            b.iter_custom(|n| {
                timed(&samples, "kiln_async_nop", n, || block_on(k_nop.call_async(&mut k_store, ())).0.expect("call"))
            })
        });
        g.bench_function(BenchmarkId::new("wasmtime_async_nop", round), |b| {
            b.iter_custom(|n| {
                timed(&samples, "wasmtime_async_nop", n, || {
                    block_on(w_nop.call_async(&mut w_store, ())).0.expect("call")
                })
            })
        });
        g.bench_function(BenchmarkId::new("kiln_async_nop_fiber", round), |b| {
            b.iter_custom(|n| {
                timed(&samples, "kiln_async_nop_fiber", n, || {
                    block_on(k_nop_fiber.call_async(&mut k_pause_store, ())).0.expect("call")
                })
            })
        });
        g.bench_function(BenchmarkId::new("wasmtime_async_nop_fiber", round), |b| {
            b.iter_custom(|n| {
                timed(&samples, "wasmtime_async_nop_fiber", n, || {
                    block_on(w_nop_fiber.call_async(&mut w_pause_store, ())).0.expect("call")
                })
            })
        });
        g.bench_function(BenchmarkId::new("kiln_sync_nop", round), |b| {
            b.iter_custom(|n| timed(&samples, "kiln_sync_nop", n, || k_nop.call(&mut k_store, ()).expect("call")))
        });
        g.bench_function(BenchmarkId::new("wasmtime_sync_nop", round), |b| {
            b.iter_custom(|n| timed(&samples, "wasmtime_sync_nop", n, || w_nop.call(&mut w_store, ()).expect("call")))
        });
        g.bench_function(BenchmarkId::new("kiln_pause", round), |b| {
            b.iter_custom(|n| {
                timed(&samples, "kiln_pause", n, || {
                    block_on(k_pause.call_async(&mut k_pause_store, ())).0.expect("call")
                })
            })
        });
        g.bench_function(BenchmarkId::new("wasmtime_pause", round), |b| {
            b.iter_custom(|n| {
                timed(&samples, "wasmtime_pause", n, || {
                    block_on(w_pause.call_async(&mut w_pause_store, ())).0.expect("call")
                })
            })
        });
        for (name, batch, k_pre, w_pre) in [
            ("inst_async", 8, &k_pre, &w_pre),
            ("inst_async_64", 64, &k_pre, &w_pre),
            ("inst_start_async", 8, &k_start_pre, &w_start_pre),
        ] {
            let kn = format!("kiln_{name}");
            g.bench_function(BenchmarkId::new(&kn, round), |b| {
                b.iter_custom(|n| {
                    in_fresh_stores(
                        &samples,
                        &kn,
                        n,
                        batch,
                        || kiln::Store::new(&k_engine, ()),
                        |s| {
                            block_on(k_pre.instantiate_async(s)).0.expect("instantiate_async");
                        },
                    )
                })
            });
            let wn = format!("wasmtime_{name}");
            g.bench_function(BenchmarkId::new(&wn, round), |b| {
                b.iter_custom(|n| {
                    in_fresh_stores(
                        &samples,
                        &wn,
                        n,
                        batch,
                        || wasmtime::Store::new(&w_engine, ()),
                        |s| {
                            block_on(w_pre.instantiate_async(s)).0.expect("instantiate_async");
                        },
                    )
                })
            });
            if name == "inst_async" {
                g.bench_function(BenchmarkId::new("kiln_inst_sync", round), |b| {
                    b.iter_custom(|n| {
                        in_fresh_stores(
                            &samples,
                            "kiln_inst_sync",
                            n,
                            batch,
                            || kiln::Store::new(&k_engine, ()),
                            |s| {
                                k_pre.instantiate(s).expect("instantiate");
                            },
                        )
                    })
                });
                g.bench_function(BenchmarkId::new("wasmtime_inst_sync", round), |b| {
                    b.iter_custom(|n| {
                        in_fresh_stores(
                            &samples,
                            "wasmtime_inst_sync",
                            n,
                            batch,
                            || wasmtime::Store::new(&w_engine, ()),
                            |s| {
                                w_pre.instantiate(s).expect("instantiate");
                            },
                        )
                    })
                });
            }
        }
        g.bench_function(BenchmarkId::new("kiln_store_inst_drop", round), |b| {
            b.iter_custom(|n| {
                timed(&samples, "kiln_store_inst_drop", n, || {
                    let mut s = kiln::Store::new(&k_engine, ());
                    block_on(k_pre.instantiate_async(&mut s)).0.expect("instantiate_async");
                    drop(s);
                })
            })
        });
        g.bench_function(BenchmarkId::new("wasmtime_store_inst_drop", round), |b| {
            b.iter_custom(|n| {
                timed(&samples, "wasmtime_store_inst_drop", n, || {
                    let mut s = wasmtime::Store::new(&w_engine, ());
                    block_on(w_pre.instantiate_async(&mut s)).0.expect("instantiate_async");
                    drop(s);
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

/// Runs `f` on `iters` fresh stores, `batch` at a time: each batch's
/// stores are made by `make` before, and dropped after, the timed part.
/// Records the mean thread CPU time per call of `f` under `name` and
/// returns the timed total for Criterion.
fn in_fresh_stores<S>(
    samples: &Samples,
    name: &str,
    iters: u64,
    batch: u64,
    mut make: impl FnMut() -> S,
    mut f: impl FnMut(&mut S),
) -> Duration {
    let mut stores: Vec<S> = Vec::with_capacity(batch as usize);
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let k = left.min(batch);
        stores.extend((0..k).map(|_| make()));
        let start = cpu_time::ThreadTime::now();
        for s in &mut stores {
            f(s);
        }
        total += start.elapsed();
        stores.clear();
        left -= k;
    }
    let per_call = total.as_secs_f64() * 1e9 / iters as f64;
    let mut all = samples.borrow_mut();
    match all.iter_mut().find(|(n, _)| n == name) {
        Some((_, v)) => v.push(per_call),
        None => all.push((name.to_string(), vec![per_call])),
    }
    total
}

thread_local! {
    /// (round, benchmark, median ns per call) for every round.
    static ROUND_MEDIANS: RefCell<Vec<(usize, String, f64)>> = const { RefCell::new(Vec::new()) };
}

/// Prints each round's medians and ratios, then the medians over rounds.
fn report() {
    ROUND_MEDIANS.with(|r| {
        let r = r.borrow();
        let get = |round: usize, name: &str| r.iter().find(|(k, n, _)| *k == round && n == name).map(|e| e.2);
        let scale = |unit: &str| if unit == "us" { 1e-3 } else { 1.0 };
        println!("\nasync embedding API, thread CPU time, median per call or instantiation:");
        let mut summary = vec![];
        for (bench, unit) in BENCHES {
            let (kn, wn) = (format!("kiln_{bench}"), format!("wasmtime_{bench}"));
            println!("\n{bench} ({unit}):");
            println!("{:>5} {:>10} {:>10} {:>7}", "round", "kiln", "wasmtime", "ratio");
            let (mut ks, mut ws, mut ratios) = (vec![], vec![], vec![]);
            for round in 0..ROUNDS {
                let (Some(k), Some(w)) = (get(round, &kn), get(round, &wn)) else { continue };
                let s = scale(unit);
                println!("{round:>5} {:>10.2} {:>10.2} {:>7.3}", k * s, w * s, k / w);
                ks.push(k * s);
                ws.push(w * s);
                ratios.push(k / w);
            }
            if !ratios.is_empty() {
                summary.push((bench, unit, median(&ks), median(&ws), median(&ratios)));
            }
        }
        // call_async over call, per round, for each runtime.
        let own_ratio = |rt: &str| -> Vec<f64> {
            (0..ROUNDS)
                .filter_map(|round| {
                    Some(get(round, &format!("{rt}_async_nop"))? / get(round, &format!("{rt}_sync_nop"))?)
                })
                .collect()
        };
        let (k_own, w_own) = (own_ratio("kiln"), own_ratio("wasmtime"));
        let own_fiber = |rt: &str| -> Vec<f64> {
            (0..ROUNDS)
                .filter_map(|round| {
                    Some(get(round, &format!("{rt}_async_nop_fiber"))? / get(round, &format!("{rt}_sync_nop"))?)
                })
                .collect()
        };
        let (k_fiber, w_fiber) = (own_fiber("kiln"), own_fiber("wasmtime"));
        println!("\ncall_async nop / call nop, per round:");
        println!("{:>5} {:>7} {:>9}", "round", "kiln", "wasmtime");
        for (round, (k, w)) in k_own.iter().zip(&w_own).enumerate() {
            println!("{round:>5} {k:>7.2} {w:>9.2}");
        }

        println!("\nmedians over the {ROUNDS} rounds:");
        println!("{:<16} {:>5} {:>10} {:>10} {:>15}", "benchmark", "unit", "kiln", "wasmtime", "kiln/wasmtime");
        for (bench, unit, k, w, ratio) in &summary {
            println!("{bench:<16} {unit:>5} {k:>10.2} {w:>10.2} {ratio:>15.3}");
        }
        if !k_own.is_empty() {
            println!("call_async/call nop: kiln {:.2}x, wasmtime {:.2}x", median(&k_own), median(&w_own));
        }
        if !k_fiber.is_empty() {
            println!(
                "call_async/call nop in a store with an async host function: kiln {:.2}x, wasmtime {:.2}x",
                median(&k_fiber),
                median(&w_fiber)
            );
        }
    });
}
