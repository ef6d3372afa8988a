//! `fairness <kiln|wasmtime> [--guests N] [--seconds S] [--fuel] [--tick-us N] [--rt-ticker] [--tickers N]
//! [--first-deadline N] [--kiln-polled-epochs]`: how
//! evenly one runtime's async API shares two threads between thousands of
//! guests that never stop on their own.
//!
//! Every guest is its own store and instance of a module that counts
//! forever in a global and calls a synchronous host function `report(n)`
//! every 4,096 iterations. The guests are tokio tasks, split between two
//! threads that each run a single-threaded tokio runtime (its run queue is
//! first in, first out, so guests that yield take turns in order). A guest
//! gives its thread back either at epoch deadlines (a ticker thread, the
//! same hand-written one for both runtimes, every 1 ms or `--tick-us`,
//! real-time with `--rt-ticker`, or `--tickers N` threads pinned one per
//! CPU taking turns; deadline one tick after each yield) or, with `--fuel`, every 100,000 units of fuel. After S
//! seconds every call future is dropped (each task `select!`s the call
//! against a stop signal).
//!
//! Measured, for one runtime per process (so that the peak RSS is that
//! runtime's): iterations per guest when the stop was sent (min, p1,
//! median, p99, max, max/min), all guests' iterations per second, the
//! executor-thread CPU time each guest's turns took (min, p1, median,
//! p99, max), the
//! latest first report of any guest, how many guests reported within one
//! second, how many never did, turns per guest (polls of its task) and
//! the latest first turn, the epoch ticks in the run and how long one
//! `increment_epoch` took, the process's CPU time during the run (how
//! much of the two threads it got), the time the stop took (dropping the
//! suspended calls and the stores), and the peak RSS (`VmHWM`). The last
//! line, `RESULT key=value ...`, is what `fairness.sh` reads.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The guest: loops forever, adding one to a global; every 4,096
/// iterations it calls `host.report` with the count.
const SPINNER: &str = r#"(module
    (import "host" "report" (func $report (param i64)))
    (global $n (mut i64) (i64.const 0))
    (func (export "run")
        (loop $again
            (global.set $n (i64.add (global.get $n) (i64.const 1)))
            (if (i64.eqz (i64.and (global.get $n) (i64.const 4095)))
                (then (call $report (global.get $n))))
            (br $again))))"#;

/// Executor threads.
const THREADS: usize = 2;

/// Fuel between two yields in `--fuel` mode.
const FUEL_INTERVAL: u64 = 100_000;

/// Choices that change how a runtime's guests are set up.
struct Options {
    /// Epoch ticks from the start of a guest's call to the end of its
    /// first slice (`--first-deadline N`, default 1). The call starts
    /// after the instantiation, which took part of the current tick
    /// period: with 1, a guest whose instantiation ends just before a
    /// tick gets almost no first slice; 2 gives at least one whole
    /// period, but makes the first round of turns longer.
    first_deadline: u64,
    /// Kiln only: compiled code checks the epoch at loop heads instead of
    /// being interrupted by a signal (`--kiln-polled-epochs`).
    polled_epochs: bool,
}

/// Time between epoch ticks in epoch mode.
const TICK: Duration = Duration::from_millis(1);

type Res<T> = Result<T, String>;

/// Turns any runtime's error into text.
fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// The start of the run (set just before the executor threads start).
static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// One guest's progress, written by its `report` calls and read by the
/// main thread.
#[derive(Default)]
struct Progress {
    /// The last count reported.
    iterations: AtomicU64,
    /// 1 + microseconds from the start to the first report; 0 before it.
    first_us: AtomicU64,
    /// Times the guest's task was polled (its turns on the thread).
    turns: AtomicU64,
    /// 1 + microseconds from the start to the guest's first turn; 0 before.
    first_turn_us: AtomicU64,
    /// Turns the guest had had when it first reported.
    turns_at_first: AtomicU64,
    /// Executor-thread CPU time spent in the guest's turns, in ns: how
    /// evenly the runtime shared the threads, apart from how fast each
    /// turn's CPU ran (on a VM the same loop runs at very different
    /// speeds from one second to the next; see bench/ASYNC.md).
    turns_cpu_ns: AtomicU64,
}

/// The calling thread's CPU time, in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to fill in.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Progress {
    /// What `host.report(n)` does in both runtimes.
    fn report(&self, n: i64) {
        self.iterations.store(n as u64, Ordering::Relaxed);
        if self.first_us.load(Ordering::Relaxed) == 0 {
            self.first_us.store(1 + START.elapsed().as_micros() as u64, Ordering::Relaxed);
            self.turns_at_first.store(self.turns.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}

/// How guests give their thread back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Slicing {
    Epoch,
    Fuel,
}

/// A guest ready to run: instantiates its module, then calls `run` until
/// `stop` changes, when the call's future is dropped.
trait Guest: Send + 'static {
    fn run(self, stop: watch::Receiver<bool>) -> impl Future<Output = Res<()>> + Send;
}

/// A guest's task: its future, counting its polls (turns) in `progress`.
struct Counted<F> {
    fut: std::pin::Pin<Box<F>>,
    progress: Arc<Progress>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        if self.progress.turns.fetch_add(1, Ordering::Relaxed) == 0 {
            self.progress.first_turn_us.store(1 + START.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        let cpu = thread_cpu_ns();
        let r = self.fut.as_mut().poll(cx);
        self.progress.turns_cpu_ns.fetch_add(thread_cpu_ns().saturating_sub(cpu), Ordering::Relaxed);
        r
    }
}

/// Waits for the stop signal, then drops `call` (or returns its early
/// end: the guest loops forever, so any end is an error).
async fn until_stopped<E: std::fmt::Debug>(
    call: impl Future<Output = Result<(), E>>,
    mut stop: watch::Receiver<bool>,
) -> Res<()> {
    tokio::select! {
        // Checked first: a guest told to stop must not run another slice.
        biased;
        _ = stop.changed() => Ok(()),
        r = call => match r {
            Ok(()) => Err("the guest's endless loop returned".into()),
            Err(e) => Err(err(e)),
        },
    }
}

struct KilnGuest {
    store: kiln::Store<Arc<Progress>>,
    pre: Arc<kiln::InstancePre<Arc<Progress>>>,
    slicing: Slicing,
    first_deadline: u64,
}

impl Guest for KilnGuest {
    fn run(mut self, stop: watch::Receiver<bool>) -> impl Future<Output = Res<()>> + Send {
        async move {
            let instance = self.pre.instantiate_async(&mut self.store).await.map_err(err)?;
            let run = instance.get_typed_func::<(), ()>(&mut self.store, "run").map_err(err)?;
            if self.slicing == Slicing::Epoch {
                // The first slice: `--first-deadline` ticks from now.
                self.store.set_epoch_deadline(self.first_deadline);
            }
            until_stopped(run.call_async(&mut self.store, ()), stop).await
        }
    }
}

struct WasmtimeGuest {
    store: wasmtime::Store<Arc<Progress>>,
    pre: Arc<wasmtime::InstancePre<Arc<Progress>>>,
    slicing: Slicing,
    first_deadline: u64,
}

impl Guest for WasmtimeGuest {
    fn run(mut self, stop: watch::Receiver<bool>) -> impl Future<Output = Res<()>> + Send {
        async move {
            let instance = self.pre.instantiate_async(&mut self.store).await.map_err(err)?;
            let run = instance.get_typed_func::<(), ()>(&mut self.store, "run").map_err(err)?;
            if self.slicing == Slicing::Epoch {
                self.store.set_epoch_deadline(self.first_deadline);
            }
            until_stopped(run.call_async(&mut self.store, ()), stop).await
        }
    }
}

/// Kiln: the engine's epoch ticker (if any) and the guests.
fn kiln_guests(n: usize, slicing: Slicing, opts: &Options, progress: &[Arc<Progress>]) -> Res<(Tick, Vec<KilnGuest>)> {
    let mut config = kiln::Config::new();
    match slicing {
        Slicing::Epoch => {
            config.epoch_interruption(true).epoch_interruption_signals(!opts.polled_epochs);
        }
        Slicing::Fuel => {
            config.consume_fuel(true).fuel_async_yields(true);
        }
    }
    let engine = kiln::Engine::new(&config).map_err(err)?;
    let module = kiln::Module::new(&engine, SPINNER).map_err(err)?;
    let mut linker = kiln::Linker::<Arc<Progress>>::new(&engine);
    linker
        .func_wrap("host", "report", |caller: kiln::Caller<'_, Arc<Progress>>, n: i64| caller.data().report(n))
        .map_err(err)?;
    let pre = Arc::new(linker.instantiate_pre(&module).map_err(err)?);
    let mut guests = Vec::with_capacity(n);
    for p in progress {
        let mut store = kiln::Store::new(&engine, p.clone());
        match slicing {
            Slicing::Epoch => store.epoch_deadline_async_yield_and_update(1),
            Slicing::Fuel => {
                store.set_fuel(u64::MAX).map_err(err)?;
                store.fuel_async_yield_interval(Some(FUEL_INTERVAL)).map_err(err)?;
            }
        }
        guests.push(KilnGuest { store, pre: pre.clone(), slicing, first_deadline: opts.first_deadline });
    }
    Ok((Arc::new(move || engine.increment_epoch()), guests))
}

/// Wasmtime 48: the same as [`kiln_guests`].
fn wasmtime_guests(
    n: usize,
    slicing: Slicing,
    opts: &Options,
    progress: &[Arc<Progress>],
) -> Res<(Tick, Vec<WasmtimeGuest>)> {
    let mut config = wasmtime::Config::new();
    match slicing {
        Slicing::Epoch => {
            config.epoch_interruption(true);
        }
        Slicing::Fuel => {
            config.consume_fuel(true);
        }
    }
    let engine = wasmtime::Engine::new(&config).map_err(err)?;
    let module = wasmtime::Module::new(&engine, wat::parse_str(SPINNER).map_err(err)?).map_err(err)?;
    let mut linker = wasmtime::Linker::<Arc<Progress>>::new(&engine);
    linker
        .func_wrap("host", "report", |caller: wasmtime::Caller<'_, Arc<Progress>>, n: i64| caller.data().report(n))
        .map_err(err)?;
    let pre = Arc::new(linker.instantiate_pre(&module).map_err(err)?);
    let mut guests = Vec::with_capacity(n);
    for p in progress {
        let mut store = wasmtime::Store::new(&engine, p.clone());
        match slicing {
            Slicing::Epoch => store.epoch_deadline_async_yield_and_update(1),
            Slicing::Fuel => {
                store.set_fuel(u64::MAX).map_err(err)?;
                store.fuel_async_yield_interval(Some(FUEL_INTERVAL)).map_err(err)?;
            }
        }
        guests.push(WasmtimeGuest { store, pre: pre.clone(), slicing, first_deadline: opts.first_deadline });
    }
    Ok((Arc::new(move || engine.increment_epoch()), guests))
}

/// What the run measured, apart from the per-guest progress.
struct Run {
    /// Each guest's iterations, read when the stop was sent.
    iterations: Vec<u64>,
    /// Each guest's executor-thread CPU time in its turns until then, µs.
    turns_cpu_us: Vec<u64>,
    /// Each guest's first report (1 + µs from the start), 0 if none.
    firsts: Vec<u64>,
    /// Each guest's turns (polls of its task).
    turns: Vec<u64>,
    /// Each guest's first turn (1 + µs from the start), 0 if none.
    first_turns: Vec<u64>,
    /// Epoch ticks during the run (0 in fuel mode).
    ticks: u64,
    /// Mean and longest time one `increment_epoch` call took, in µs.
    tick_mean_us: f64,
    tick_max_us: f64,
    /// The longest time between two ticks, in µs.
    gap_max_us: f64,
    /// Ticks that came more than twice the period after the one before.
    long_gaps: u64,
    /// From sending the stop to every executor thread finishing.
    stop_time: Duration,
    /// CPU time the process used during the run (all threads), seconds.
    cpu: f64,
}

/// Advances a runtime's epoch (an engine's `increment_epoch`).
type Tick = Arc<dyn Fn() + Send + Sync>;

/// How the ticks are made.
#[derive(Clone, Copy)]
struct Ticker {
    /// Time between two ticks (default [`TICK`]).
    every: Duration,
    /// Ticker threads made real-time (`--rt-ticker`).
    realtime: bool,
    /// Ticker threads (`--tickers N`, default 1), each pinned to its own
    /// CPU (thread `i` to CPU `i`) when more than one, ticking every
    /// `every * threads`, thread `i` starting `every * i` later, so that
    /// together they tick every `every`; when one CPU is taken away from
    /// the process, the others' ticks still come.
    threads: usize,
}

/// Runs `guests` on [`THREADS`] single-threaded tokio runtimes for
/// `seconds`, with `tick` called as `ticker` says if given.
fn drive<G: Guest>(
    guests: Vec<G>,
    progress: &[Arc<Progress>],
    seconds: f64,
    tick: Option<Tick>,
    ticker: Ticker,
) -> Res<Run> {
    let (every, realtime) = (ticker.every, ticker.realtime);
    // Guest g runs on thread g % THREADS.
    let mut per_thread: Vec<Vec<(G, Arc<Progress>)>> = (0..THREADS).map(|_| Vec::new()).collect();
    for (g, guest) in guests.into_iter().enumerate() {
        per_thread[g % THREADS].push((guest, progress[g].clone()));
    }

    let ticks = Arc::new(AtomicU64::new(0));
    // Nanoseconds spent in `tick` in total, and the longest call.
    let tick_ns = Arc::new(AtomicU64::new(0));
    let tick_max_ns = Arc::new(AtomicU64::new(0));
    // The longest time between two ticks, and how many were longer than
    // twice `every` (the ticker thread woke late).
    let gap_max_ns = Arc::new(AtomicU64::new(0));
    let long_gaps = Arc::new(AtomicU64::new(0));
    let ticking = Arc::new(AtomicBool::new(true));
    // When the last tick came (any ticker thread's), in ns since START.
    let last_tick_ns = Arc::new(AtomicU64::new(START.elapsed().as_nanos() as u64));
    let tickers: Vec<std::thread::JoinHandle<Res<()>>> = tick
        .map(|tick| {
            (0..ticker.threads.max(1))
                .map(|i| {
                    let (ticks, ticking, tick_ns, tick_max_ns) =
                        (ticks.clone(), ticking.clone(), tick_ns.clone(), tick_max_ns.clone());
                    let (gap_max_ns, long_gaps, last_tick_ns) =
                        (gap_max_ns.clone(), long_gaps.clone(), last_tick_ns.clone());
                    let tick = tick.clone();
                    let n = ticker.threads.max(1);
                    std::thread::spawn(move || {
                        if n > 1 {
                            kiln_async_bench::pin_to_cpu(i).map_err(|e| format!("--tickers: {e}"))?;
                        }
                        if realtime {
                            realtime_thread()?;
                        }
                        // Ticks at fixed times (thread i at START plus
                        // i, i + n, i + 2n, ... periods), so that the
                        // threads keep their places between each other's
                        // ticks; a tick that comes late does not delay the
                        // next one, and a missed one is skipped.
                        let period = every * n as u32;
                        let mut next = *START + every * i as u32;
                        while ticking.load(Ordering::Relaxed) {
                            next += period;
                            let now = Instant::now();
                            if next > now {
                                std::thread::sleep(next - now);
                            } else {
                                let behind = (now - next).as_nanos() / period.as_nanos().max(1);
                                next += period * behind as u32;
                            }
                            let t = Instant::now();
                            let now = START.elapsed().as_nanos() as u64;
                            let gap = now.saturating_sub(last_tick_ns.swap(now, Ordering::Relaxed));
                            gap_max_ns.fetch_max(gap, Ordering::Relaxed);
                            if gap > 2 * every.as_nanos() as u64 {
                                long_gaps.fetch_add(1, Ordering::Relaxed);
                            }
                            tick();
                            let ns = t.elapsed().as_nanos() as u64;
                            tick_ns.fetch_add(ns, Ordering::Relaxed);
                            tick_max_ns.fetch_max(ns, Ordering::Relaxed);
                            ticks.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok::<(), String>(())
                    })
                })
                .collect()
        })
        .unwrap_or_default();

    LazyLock::force(&START);
    let (stop_tx, stop_rx) = watch::channel(false);
    let threads: Vec<std::thread::JoinHandle<Res<()>>> = per_thread
        .into_iter()
        .map(|guests| {
            let stop_rx = stop_rx.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().build().map_err(err)?;
                runtime.block_on(async move {
                    let tasks: Vec<_> = guests
                        .into_iter()
                        .map(|(g, progress)| tokio::spawn(Counted { fut: Box::pin(g.run(stop_rx.clone())), progress }))
                        .collect();
                    for t in tasks {
                        t.await.map_err(|e| format!("a guest task failed: {e}"))??;
                    }
                    Ok(())
                })
            })
        })
        .collect();

    let cpu0 = process_cpu_s();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let cpu = process_cpu_s() - cpu0;
    let ticks = ticks.load(Ordering::Relaxed);
    let tick_mean_us = tick_ns.load(Ordering::Relaxed) as f64 / 1e3 / ticks.max(1) as f64;
    let tick_max_us = tick_max_ns.load(Ordering::Relaxed) as f64 / 1e3;
    let gap_max_us = gap_max_ns.load(Ordering::Relaxed) as f64 / 1e3;
    let long_gaps = long_gaps.load(Ordering::Relaxed);
    let iterations = progress.iter().map(|p| p.iterations.load(Ordering::Relaxed)).collect();
    let turns_cpu_us = progress.iter().map(|p| p.turns_cpu_ns.load(Ordering::Relaxed) / 1000).collect();
    let firsts = progress.iter().map(|p| p.first_us.load(Ordering::Relaxed)).collect();
    let turns = progress.iter().map(|p| p.turns.load(Ordering::Relaxed)).collect();
    let first_turns = progress.iter().map(|p| p.first_turn_us.load(Ordering::Relaxed)).collect();
    let stopping = Instant::now();
    stop_tx.send(true).map_err(err)?;
    for t in threads {
        t.join().map_err(|_| "an executor thread panicked".to_string())??;
    }
    let stop_time = stopping.elapsed();
    ticking.store(false, Ordering::Relaxed);
    for t in tickers {
        t.join().map_err(|_| "the ticker panicked".to_string())??;
    }
    Ok(Run {
        iterations,
        turns_cpu_us,
        firsts,
        turns,
        first_turns,
        ticks,
        tick_mean_us,
        tick_max_us,
        gap_max_us,
        long_gaps,
        stop_time,
        cpu,
    })
}

/// Makes the calling thread real-time (`SCHED_FIFO`, priority 1) with a
/// timer slack of 1 ns, so that it wakes on time although the executor
/// threads keep both cores busy (a normal thread's sleep of 0.1 ms ends
/// 0.05-4 ms late there). Needs root or `CAP_SYS_NICE`.
fn realtime_thread() -> Res<()> {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: plain system calls on the calling thread with valid arguments.
    let (sched, slack) = unsafe {
        (libc::sched_setscheduler(0, libc::SCHED_FIFO, &param), libc::prctl(libc::PR_SET_TIMERSLACK, 1u64, 0, 0, 0))
    };
    if sched != 0 || slack != 0 {
        return Err(format!("--rt-ticker: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// User plus system CPU time of this process so far, in seconds (from
/// /proc/self/stat, in clock ticks of 1/100 s).
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    (f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0)) as f64 / 100.0
}

/// A `kB` field of /proc/self/status (`VmHWM`, `VmRSS`), in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The value at fraction `q` of the sorted `v`.
fn quantile(v: &[u64], q: f64) -> u64 {
    let i = ((v.len().saturating_sub(1)) as f64 * q).round() as usize;
    v.get(i).copied().unwrap_or(0)
}

fn main() -> Res<()> {
    let usage = "usage: fairness <kiln|wasmtime> [--guests N] [--seconds S] [--fuel] [--tick-us N] [--rt-ticker] [--tickers N] \
         [--first-deadline N] [--kiln-polled-epochs]";
    let mut args = std::env::args().skip(1);
    let runtime = args.next().ok_or(usage)?;
    let (mut guests, mut seconds, mut slicing) = (10_000usize, 10.0f64, Slicing::Epoch);
    let mut ticker = Ticker { every: TICK, realtime: false, threads: 1 };
    let mut opts = Options { first_deadline: 1, polled_epochs: false };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--guests" => guests = args.next().ok_or(usage)?.parse().map_err(err)?,
            "--seconds" => seconds = args.next().ok_or(usage)?.parse().map_err(err)?,
            "--fuel" => slicing = Slicing::Fuel,
            "--first-deadline" => opts.first_deadline = args.next().ok_or(usage)?.parse().map_err(err)?,
            "--kiln-polled-epochs" => opts.polled_epochs = true,
            "--rt-ticker" => ticker.realtime = true,
            "--tick-us" => ticker.every = Duration::from_micros(args.next().ok_or(usage)?.parse().map_err(err)?),
            "--tickers" => ticker.threads = args.next().ok_or(usage)?.parse().map_err(err)?,
            _ => return Err(usage.into()),
        }
    }
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let loadavg = loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" ");

    let progress: Vec<Arc<Progress>> = (0..guests).map(|_| Arc::default()).collect();
    let rss_before = status_kib("VmRSS:").unwrap_or(0);
    let setup = Instant::now();
    let run = match runtime.as_str() {
        "kiln" => {
            let (tick, g) = kiln_guests(guests, slicing, &opts, &progress)?;
            let setup = setup.elapsed();
            eprintln!("kiln: {guests} stores made in {:.3} s", setup.as_secs_f64());
            drive(g, &progress, seconds, (slicing == Slicing::Epoch).then_some(tick), ticker)?
        }
        "wasmtime" => {
            let (tick, g) = wasmtime_guests(guests, slicing, &opts, &progress)?;
            let setup = setup.elapsed();
            eprintln!("wasmtime: {guests} stores made in {:.3} s", setup.as_secs_f64());
            drive(g, &progress, seconds, (slicing == Slicing::Epoch).then_some(tick), ticker)?
        }
        _ => return Err(usage.into()),
    };
    let peak_kib = status_kib("VmHWM:").unwrap_or(0);

    let mut it = run.iterations.clone();
    it.sort_unstable();
    let (min, max) = (quantile(&it, 0.0), quantile(&it, 1.0));
    let ratio = if min == 0 { f64::INFINITY } else { max as f64 / min as f64 };
    let total: u64 = it.iter().sum();
    let never = run.firsts.iter().filter(|&&f| f == 0).count();
    let within_1s = run.firsts.iter().filter(|&&f| f != 0 && f - 1 <= 1_000_000).count();
    let last_first_s = run.firsts.iter().max().map_or(0.0, |&f| f.saturating_sub(1) as f64 / 1e6);
    let mode = match slicing {
        Slicing::Epoch => "epoch",
        Slicing::Fuel => "fuel",
    };

    println!(
        "{runtime}: {guests} guests, {seconds} s, {mode} slicing (ticks every {} us), {THREADS} threads (load average {loadavg})",
        ticker.every.as_micros()
    );
    println!(
        "iterations per guest: min {min} p1 {} median {} p99 {} max {max} (max/min {ratio:.2}); all guests {:.3e}/s",
        quantile(&it, 0.01),
        quantile(&it, 0.5),
        quantile(&it, 0.99),
        total as f64 / seconds
    );
    if never == 0 {
        println!("every guest progressed; the last first did after {last_first_s:.3} s");
    } else {
        println!("{never} guests never progressed (the latest that did: after {last_first_s:.3} s)");
    }
    println!("{within_1s} of {guests} guests progressed within 1 s");
    let mut cpu_us = run.turns_cpu_us.clone();
    cpu_us.sort_unstable();
    let cpu_ms = |q: f64| quantile(&cpu_us, q) as f64 / 1e3;
    println!(
        "executor CPU time in each guest's turns: min {:.2} p1 {:.2} median {:.2} p99 {:.2} max {:.2} ms",
        cpu_ms(0.0),
        cpu_ms(0.01),
        cpu_ms(0.5),
        cpu_ms(0.99),
        cpu_ms(1.0)
    );
    let mut turns = run.turns.clone();
    turns.sort_unstable();
    let never_turned = run.first_turns.iter().filter(|&&f| f == 0).count();
    let last_first_turn_s = run.first_turns.iter().max().map_or(0.0, |&f| f.saturating_sub(1) as f64 / 1e6);
    println!(
        "turns (polls) per guest: min {} median {} max {}; {never_turned} guests never polled; the last first turn \
         after {last_first_turn_s:.3} s",
        quantile(&turns, 0.0),
        quantile(&turns, 0.5),
        quantile(&turns, 1.0)
    );
    let late_first: Vec<u64> =
        progress.iter().map(|p| p.turns_at_first.load(Ordering::Relaxed)).filter(|&t| t > 1).collect();
    println!(
        "{} guests first reported after their first turn (a tick came before 4,096 iterations; in turn 2: {}, \
         later: {})",
        late_first.len(),
        late_first.iter().filter(|&&t| t == 2).count(),
        late_first.iter().filter(|&&t| t > 2).count()
    );
    if slicing == Slicing::Epoch {
        println!(
            "{} epoch ticks ({:.3} ms apart, {:.3} ms at most, {} over twice the period; {} {} ticker); one \
             increment_epoch took {:.1} µs on average, {:.1} µs at most",
            run.ticks,
            seconds * 1e3 / run.ticks.max(1) as f64,
            run.gap_max_us / 1e3,
            run.long_gaps,
            ticker.threads.max(1),
            if ticker.realtime { "real-time" } else { "normal" },
            run.tick_mean_us,
            run.tick_max_us
        );
    }
    println!("stopping (dropping every call) took {:.3} s", run.stop_time.as_secs_f64());
    println!(
        "CPU time used during the run: {:.2} s of {:.2} s on {THREADS} threads ({:.0} %)",
        run.cpu,
        seconds * THREADS as f64,
        100.0 * run.cpu / (seconds * THREADS as f64)
    );
    println!(
        "peak RSS {:.1} MiB ({:.1} MiB before the engine; {:.1} KiB per guest above that)",
        peak_kib as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        peak_kib.saturating_sub(rss_before) as f64 / guests.max(1) as f64
    );
    println!(
        "RESULT runtime={runtime} mode={mode} guests={guests} seconds={seconds} min={min} p1={} median={} p99={} \
         max={max} ratio={ratio:.3} total_per_s={:.0} last_first_s={last_first_s:.3} within_1s={within_1s} \
         never={never} turns_min={} turns_median={} turns_max={} last_first_turn_s={last_first_turn_s:.3} ticks={} \
         tick_us={:.1} tick_max_us={:.1} late_first={} gap_max_us={:.0} long_gaps={} rt_ticker={} tickers={} first_deadline={} kiln_polled_epochs={} cpu_ms_min={:.2} cpu_ms_p1={:.2} \
         cpu_ms_median={:.2} cpu_ms_p99={:.2} cpu_ms_max={:.2} stop_s={:.3} cpu_pct={:.0} peak_rss_mib={:.1} load=\"{loadavg}\"",
        quantile(&it, 0.01),
        quantile(&it, 0.5),
        quantile(&it, 0.99),
        total as f64 / seconds,
        quantile(&turns, 0.0),
        quantile(&turns, 0.5),
        quantile(&turns, 1.0),
        run.ticks,
        run.tick_mean_us,
        run.tick_max_us,
        late_first.len(),
        run.gap_max_us,
        run.long_gaps,
        ticker.realtime,
        ticker.threads.max(1),
        opts.first_deadline,
        opts.polled_epochs,
        cpu_ms(0.0),
        cpu_ms(0.01),
        cpu_ms(0.5),
        cpu_ms(0.99),
        cpu_ms(1.0),
        run.stop_time.as_secs_f64(),
        100.0 * run.cpu / (seconds * THREADS as f64),
        peak_kib as f64 / 1024.0
    );
    Ok(())
}
