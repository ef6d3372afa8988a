//! `cpu_speed [--seconds S] [--chunk-us N]`: how steady the machine's CPUs
//! are, for reading `fairness` results. One thread pinned to each CPU runs
//! the same native loop in chunks of about `--chunk-us` (default 100 µs, a
//! `fairness` slice) for S seconds (default 10) and records each chunk's
//! speed. Printed per CPU: the speed quantiles relative to that CPU's
//! median, the share of chunks under two thirds of it, and the longest run
//! of such slow chunks. Epoch slices are wall-clock time, so a guest whose
//! turns fall in slow stretches does less work in them, whatever the
//! runtime does.
//!
//! Last, with `--guests N` (default 10,000): the max/min of work per
//! guest that a perfect scheduler would give on these measured speeds,
//! with no overhead and exact slices: guest `g` on CPU `g % CPUs`, taking
//! every (N / CPUs)-th chunk of that CPU in turn, as `fairness` runs them.

use kiln_async_bench::pin_to_cpu;
use std::time::{Duration, Instant};

/// Loop iterations per chunk, calibrated to `--chunk-us` at start.
fn calibrate(chunk: Duration) -> u64 {
    let mut n = 1_000u64;
    loop {
        let t = Instant::now();
        spin(n);
        let e = t.elapsed();
        if e >= Duration::from_millis(20) {
            return (n as f64 * chunk.as_secs_f64() / e.as_secs_f64()).max(1.0) as u64;
        }
        n *= 2;
    }
}

/// The work: `n` dependent additions the optimizer cannot remove.
fn spin(n: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..n {
        x = std::hint::black_box(x.wrapping_add(i));
    }
    x
}

fn main() -> Result<(), String> {
    let usage = "usage: cpu_speed [--seconds S] [--chunk-us N] [--guests N]";
    let (mut seconds, mut chunk_us, mut guests) = (10.0f64, 100u64, 10_000usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().ok_or(usage)?.parse().map_err(|e| format!("{e}"))?,
            "--chunk-us" => chunk_us = args.next().ok_or(usage)?.parse().map_err(|e| format!("{e}"))?,
            "--guests" => guests = args.next().ok_or(usage)?.parse().map_err(|e| format!("{e}"))?,
            _ => return Err(usage.into()),
        }
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_chunk = calibrate(Duration::from_micros(chunk_us));
    let threads: Vec<_> = (0..cpus)
        .map(|cpu| {
            std::thread::spawn(move || -> Result<Vec<f64>, String> {
                pin_to_cpu(cpu)?;
                let end = Instant::now() + Duration::from_secs_f64(seconds);
                let mut speeds = Vec::new();
                let mut t = Instant::now();
                while t < end {
                    spin(per_chunk);
                    let now = Instant::now();
                    speeds.push(per_chunk as f64 / (now - t).as_secs_f64());
                    t = now;
                }
                Ok(speeds)
            })
        })
        .collect();
    println!("{cpus} CPUs, {seconds} s, chunks of {chunk_us} µs ({per_chunk} iterations when calibrated)");
    let mut work = vec![0.0f64; guests.max(1)];
    for (cpu, t) in threads.into_iter().enumerate() {
        let speeds = t.join().map_err(|_| "a thread panicked".to_string())??;
        // This CPU's guests, in turn, one chunk each.
        let mine: Vec<usize> = (cpu..work.len()).step_by(cpus).collect();
        for (i, s) in speeds.iter().enumerate() {
            if let Some(&g) = mine.get(i % mine.len().max(1)) {
                work[g] += s;
            }
        }
        let mut sorted = speeds.clone();
        sorted.sort_by(f64::total_cmp);
        let q = |x: f64| sorted[((sorted.len() - 1) as f64 * x).round() as usize];
        let median = q(0.5);
        let slow = |s: &f64| *s < median * 2.0 / 3.0;
        let (mut longest, mut run) = (0usize, 0usize);
        for s in &speeds {
            run = if slow(s) { run + 1 } else { 0 };
            longest = longest.max(run);
        }
        println!(
            "CPU {cpu}: speed / median: p1 {:.2} p10 {:.2} p90 {:.2} p99 {:.2}; chunks under 2/3 of the median: \
             {:.1} %, the longest run of them {:.1} ms",
            q(0.01) / median,
            q(0.1) / median,
            q(0.9) / median,
            q(0.99) / median,
            100.0 * speeds.iter().filter(|s| slow(s)).count() as f64 / speeds.len() as f64,
            longest as f64 * chunk_us as f64 / 1e3
        );
    }
    let (min, max) = work.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &w| (lo.min(w), hi.max(w)));
    println!(
        "{} guests, perfect slices of {chunk_us} µs on these speeds: work per guest max/min {:.2}",
        work.len(),
        if min > 0.0 { max / min } else { f64::INFINITY }
    );
    Ok(())
}
