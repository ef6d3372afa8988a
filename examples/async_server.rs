//! Many guests on few threads: thousands of instances of a module that
//! loops forever, each in its own store and tokio task on two executor
//! threads, time-sliced by yields to the executor (epoch deadlines from a
//! 1 ms ticker, or a fuel interval), with one more guest that sleeps
//! through an async host function. Prints, per guest, how many loop
//! iterations it ran (min, median, max), how long the slowest guest took
//! to make its first progress, the sleeper's wake-ups and the process's
//! peak memory.
//!
//! `cargo run --release --example async_server -- [--guests N] [--seconds S] [--fuel]`

use anyhow::{Context as _, Result};
use kiln::{Caller, Config, Engine, HostFuture, InstancePre, Linker, Module, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The guest: counts forever in a global, and reports the count to the
/// host every 4,096 iterations.
const SPINNER: &str = r#"(module
    (import "host" "report" (func $report (param i64)))
    (global $n (mut i64) (i64.const 0))
    (func (export "run")
        (loop $forever
            (global.set $n (i64.add (global.get $n) (i64.const 1)))
            (if (i64.eqz (i64.and (global.get $n) (i64.const 4095)))
                (then (call $report (global.get $n))))
            (br $forever))))"#;

/// The sleeper: sleeps 10 ms through the host, over and over.
const SLEEPER: &str = r#"(module
    (import "host" "sleep_ms" (func $sleep (param i32)))
    (func (export "run") (loop $forever (call $sleep (i32.const 10)) (br $forever))))"#;

/// How guests are made to yield.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slicing {
    /// At epoch deadlines: one tick after each yield, from a 1 ms ticker.
    Epoch,
    /// Every this many units of fuel.
    Fuel(u64),
}

/// A guest not started yet: its store and what to instantiate in it.
type Guest = (Store<GuestData>, Arc<InstancePre<GuestData>>);

/// What one guest's store holds: where it reports its progress.
struct GuestData {
    progress: Arc<Progress>,
}

/// A guest's progress, read by the main task while the guest runs.
#[derive(Default)]
struct Progress {
    /// Loop iterations reported so far.
    iterations: AtomicU64,
    /// Microseconds from the start to the first report (0 until then).
    first_us: AtomicU64,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Report {
    /// Iterations per spinning guest, sorted.
    pub iterations: Vec<u64>,
    /// The latest first report of any guest, from the start.
    pub slowest_first_progress: Option<Duration>,
    /// Guests that never reported.
    pub never_progressed: usize,
    /// Times the sleeping guest woke from a 10 ms sleep.
    pub sleeper_wakeups: u64,
    /// The process's peak resident memory, in KiB (Linux).
    pub peak_rss_kib: Option<u64>,
    /// Epoch ticks during the run (epoch slicing).
    pub ticks: u64,
}

impl Report {
    /// Iterations of the guest at fraction `q` (0 to 1) of the sorted list.
    pub fn quantile(&self, q: f64) -> u64 {
        let i = ((self.iterations.len().saturating_sub(1)) as f64 * q).round() as usize;
        self.iterations.get(i).copied().unwrap_or(0)
    }
}

/// Runs `guests` spinners and one sleeper for `seconds` on a 2-thread
/// tokio runtime.
///
/// # Errors
///
/// The engine, a module, an instance or the runtime could not be made.
pub fn run(guests: usize, seconds: f64, slicing: Slicing) -> Result<Report> {
    let mut config = Config::new();
    match slicing {
        Slicing::Epoch => {
            config.epoch_interruption(true);
        }
        Slicing::Fuel(_) => {
            config.consume_fuel(true).fuel_async_yields(true);
        }
    }
    let engine = Engine::new(&config)?;
    let spinner = Module::new(&engine, SPINNER)?;
    let sleeper = Module::new(&engine, SLEEPER)?;

    let mut linker = Linker::<GuestData>::new(&engine);
    linker.func_wrap("host", "report", |caller: Caller<'_, GuestData>, n: i64| {
        let p = &caller.data().progress;
        p.iterations.store(n as u64, Ordering::Relaxed);
        p.first_us
            .compare_exchange(0, 1 + START.elapsed().as_micros() as u64, Ordering::Relaxed, Ordering::Relaxed)
            .ok();
    })?;
    linker.func_wrap_async(
        "host",
        "sleep_ms",
        |caller: Caller<'_, GuestData>, (ms,): (i32,)| -> HostFuture<'_, ()> {
            Box::new(async move {
                tokio::time::sleep(Duration::from_millis(ms as u64)).await;
                caller.data().progress.iterations.fetch_add(1, Ordering::Relaxed);
            })
        },
    )?;
    let spinner = Arc::new(linker.instantiate_pre(&spinner)?);
    let sleeper = linker.instantiate_pre(&sleeper)?;

    let _ticker = (slicing == Slicing::Epoch).then(|| engine.start_epoch_ticker(Duration::from_millis(1)));
    std::sync::LazyLock::force(&START);

    let new_store = |progress: Arc<Progress>| -> Result<Store<GuestData>> {
        let mut store = Store::new(&engine, GuestData { progress });
        match slicing {
            Slicing::Epoch => {
                store.set_epoch_deadline(1);
                store.epoch_deadline_async_yield_and_update(1);
            }
            Slicing::Fuel(interval) => {
                store.set_fuel(u64::MAX)?;
                store.fuel_async_yield_interval(Some(interval))?;
            }
        }
        Ok(store)
    };

    // The executor: two threads, each running a single-threaded tokio
    // runtime whose run queue is first in, first out, so guests that
    // yield take turns in order (tokio's multi-threaded scheduler serves
    // a worker's own queue ahead of the shared one, which with thousands
    // of always-runnable tasks leaves some waiting for seconds).
    const THREADS: usize = 2;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut progress = Vec::with_capacity(guests);
    let mut per_thread: Vec<Vec<Guest>> = (0..THREADS).map(|_| Vec::new()).collect();
    for g in 0..guests {
        let p = Arc::new(Progress::default());
        progress.push(p.clone());
        per_thread[g % THREADS].push((new_store(p)?, spinner.clone()));
    }
    let sleeps = Arc::new(Progress::default());
    per_thread[0].push((new_store(sleeps.clone())?, Arc::new(sleeper)));

    let threads: Vec<std::thread::JoinHandle<Result<()>>> = per_thread
        .into_iter()
        .map(|stores| {
            let stop_rx = stop_rx.clone();
            std::thread::spawn(move || -> Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
                runtime.block_on(async move {
                    let tasks: Vec<_> = stores
                        .into_iter()
                        .map(|(mut store, pre)| {
                            let mut stop = stop_rx.clone();
                            tokio::spawn(async move {
                                let instance = pre.instantiate_async(&mut store).await?;
                                let run = instance.get_typed_func::<(), ()>(&mut store, "run")?;
                                // Runs until told to stop: dropping the call cancels it.
                                tokio::select! {
                                    r = run.call_async(&mut store, ()) => r,
                                    _ = stop.changed() => Ok(()),
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.context("a guest task panicked")??;
                    }
                    Ok(())
                })
            })
        })
        .collect();

    let epoch0 = engine.current_epoch();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let ticks = engine.current_epoch() - epoch0;
    stop_tx.send(true).context("stopping the guests")?;
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("an executor thread panicked"))??;
    }

    let mut iterations: Vec<u64> = progress.iter().map(|p| p.iterations.load(Ordering::Relaxed)).collect();
    iterations.sort_unstable();
    let firsts: Vec<u64> = progress.iter().map(|p| p.first_us.load(Ordering::Relaxed)).collect();
    let never_progressed = firsts.iter().filter(|&&f| f == 0).count();
    let slowest_first_progress =
        (never_progressed == 0).then(|| firsts.iter().max().map(|&us| Duration::from_micros(us - 1))).flatten();
    Ok(Report {
        iterations,
        slowest_first_progress,
        never_progressed,
        sleeper_wakeups: sleeps.iterations.load(Ordering::Relaxed),
        peak_rss_kib: peak_rss_kib(),
        ticks,
    })
}

/// When the run started (first use).
static START: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// `VmHWM` from /proc/self/status.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<()> {
    let mut guests = 10_000;
    let mut seconds = 10.0;
    let mut slicing = Slicing::Epoch;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--guests" => guests = args.next().context("--guests N")?.parse()?,
            "--seconds" => seconds = args.next().context("--seconds S")?.parse()?,
            "--fuel" => slicing = Slicing::Fuel(100_000),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let r = run(guests, seconds, slicing)?;
    let min = r.quantile(0.0).max(1);
    println!("{guests} guests, {seconds} s, {slicing:?} slicing, 2 threads");
    println!(
        "iterations per guest: min {} p1 {} median {} p99 {} max {} (max/min {:.2})",
        r.quantile(0.0),
        r.quantile(0.01),
        r.quantile(0.5),
        r.quantile(0.99),
        r.quantile(1.0),
        r.quantile(1.0) as f64 / min as f64
    );
    match r.slowest_first_progress {
        Some(d) => println!("every guest progressed; the last first did after {:.3} s", d.as_secs_f64()),
        None => println!("{} guests never progressed", r.never_progressed),
    }
    println!("sleeper woke {} times from 10 ms sleeps", r.sleeper_wakeups);
    if slicing == Slicing::Epoch {
        println!("{} epoch ticks ({:.2} ms apart)", r.ticks, seconds * 1000.0 / r.ticks.max(1) as f64);
    }
    if let Some(kib) = r.peak_rss_kib {
        println!("peak RSS {:.1} MiB", kib as f64 / 1024.0);
    }
    Ok(())
}

#[test]
fn every_guest_progresses_and_the_sleeper_wakes() -> Result<()> {
    for slicing in [Slicing::Epoch, Slicing::Fuel(20_000)] {
        let r = run(50, 1.0, slicing)?;
        assert_eq!(r.never_progressed, 0, "{slicing:?}: {r:?}");
        assert!(r.quantile(0.0) > 0, "{slicing:?}: {r:?}");
        assert!(r.sleeper_wakeups >= 5, "{slicing:?}: the sleeper was starved: {r:?}");
    }
    Ok(())
}
