//! `switch [ROUNDS] [N] [kiln|corosensei]`: the cost of one round trip into a fiber and
//! back (a resume, then a suspend), for Kiln's hand-written stack switch
//! and for the `corosensei` crate.
//!
//! - Kiln: `kiln::__private_testing::fiber_round_trips(N)`, which resumes a
//!   raw Kiln fiber (64 KiB stack) whose body loops on `suspend()` N times.
//!   Kiln's `Fiber::resume` also swaps the thread's wasm state (activation
//!   chain, stack limit) in and out around the switch, as every async call
//!   does; that is part of its figure.
//! - corosensei: a `Coroutine` on a 64 KiB `DefaultStack` whose body loops
//!   on `yielder.suspend(())`, resumed N times.
//!
//! Both are started (resumed once) before the clock starts. The two
//! alternate for ROUNDS rounds (default 15; which goes first alternates
//! too), N round trips each (default 10,000,000). Prints every round's
//! wall-clock ns per round trip and the medians. Naming one of the two
//! runs only that one (for `perf stat`).

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, CoroutineResult};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Kiln's fiber: `n` round trips.
fn kiln(n: u64) -> Duration {
    kiln::__private_testing::fiber_round_trips(n)
}

/// corosensei: `n` round trips, timed the same way.
fn corosensei(n: u64) -> Duration {
    let stack = DefaultStack::new(64 << 10).expect("a corosensei stack");
    // The body counts its suspends, so that the run can check that every
    // resume really ran it (the count costs an add per round trip).
    let mut co: Coroutine<(), u64, (), DefaultStack> = Coroutine::with_stack(stack, |yielder, ()| {
        let mut suspends = 0u64;
        loop {
            suspends += 1;
            yielder.suspend(suspends);
        }
    });
    // Start it: runs the body to its first suspend.
    assert!(matches!(co.resume(()), CoroutineResult::Yield(1)));
    let mut last = 0;
    let start = Instant::now();
    for _ in 0..n {
        if let CoroutineResult::Yield(s) = co.resume(black_box(())) {
            last = s;
        }
    }
    let t = start.elapsed();
    assert_eq!(last, n + 1, "corosensei: a resume did not run the body");
    // Dropping a suspended coroutine unwinds its stack (outside the timing).
    drop(co);
    t
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: switch [ROUNDS] [N] [kiln|corosensei]";
    let rounds: usize = args.get(1).map_or(15, |s| s.parse().expect(usage));
    let n: u64 = args.get(2).map_or(10_000_000, |s| s.parse().expect(usage));
    match args.get(3).map(String::as_str) {
        None => {}
        Some(which) => {
            let f = match which {
                "kiln" => kiln,
                "corosensei" => corosensei,
                _ => panic!("{usage}"),
            };
            let per: Vec<f64> = (0..rounds).map(|_| f(n).as_secs_f64() * 1e9 / n as f64).collect();
            println!("{which}: median {:.2} ns per round trip over {rounds} rounds of {n}", median(&per));
            return;
        }
    }
    let ns = |d: Duration| d.as_secs_f64() * 1e9 / n as f64;

    // Warm up both (page faults on the stacks, code in cache).
    kiln(n / 10);
    corosensei(n / 10);

    let (mut k, mut c) = (Vec::new(), Vec::new());
    println!("{rounds} rounds of {n} round trips each; ns per round trip (wall clock)");
    println!("round  kiln   corosensei  kiln/corosensei");
    for r in 0..rounds {
        let (kn, cn) = if r % 2 == 0 {
            let kn = ns(kiln(n));
            (kn, ns(corosensei(n)))
        } else {
            let cn = ns(corosensei(n));
            (ns(kiln(n)), cn)
        };
        println!("{r:>5}  {kn:5.2}  {cn:10.2}  {:15.3}", kn / cn);
        k.push(kn);
        c.push(cn);
    }
    let ratios: Vec<f64> = k.iter().zip(&c).map(|(a, b)| a / b).collect();
    println!(
        "median: kiln {:.2} ns, corosensei {:.2} ns, kiln/corosensei {:.3} (median of the per-round ratios)",
        median(&k),
        median(&c),
        median(&ratios)
    );
}
