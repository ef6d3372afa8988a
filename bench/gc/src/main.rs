//! `cargo run --release -- [--rounds N] [--arg N] [WORKLOAD...]`: the
//! WebAssembly GC benchmarks (bench/GC.md), Kiln against the Wasmtime 48
//! crate and node 24.
//!
//! Every measurement is one child process that compiles the workload's
//! module and calls its `run` export once: this program run again with
//! the hidden `--child RUNTIME FILE.wasm N` for Kiln and Wasmtime, and
//! `node run.mjs FILE.wasm N` for node. The runtimes take turns round by
//! round (Kiln, Wasmtime, node, Kiln, ...). From `wait4` come the child's
//! user+system CPU time and peak resident set; the child itself reports
//! the CPU time of the `run` call alone and the checksum `run` returned,
//! which every runtime must agree on. The tables at the end give medians
//! over the rounds and Kiln's ratios to the others.

mod child;

use anyhow::{anyhow, bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A benchmark: a module in `wat/` and the argument of its `run` call.
struct Workload {
    /// Name on the command line and in the tables.
    name: &'static str,
    /// File in `wat/`.
    file: &'static str,
    /// Argument of `run`: the size parameter (see bench/GC.md).
    arg: i32,
}

/// The suite, in the order it runs.
const WORKLOADS: &[Workload] = &[
    Workload { name: "binary-trees", file: "binary-trees.wat", arg: 18 },
    Workload { name: "splay", file: "splay.wat", arg: 12_000 },
    Workload { name: "strings", file: "strings.wat", arg: 250 },
];

/// Default number of rounds.
const ROUNDS: usize = 5;

/// The runtimes, in the order each round runs them.
const RUNTIMES: [&str; 3] = ["kiln", "wasmtime", "node"];

/// One child's figures.
#[derive(Clone, Debug)]
struct Sample {
    /// User+system CPU time of the whole child process (`wait4`), µs.
    process_us: u64,
    /// Peak resident set of the child (`ru_maxrss`), KiB.
    maxrss_kib: u64,
    /// CPU time of compiling and instantiating, as the child measured it, µs.
    compile_us: u64,
    /// CPU time of the `run` call alone, as the child measured it, µs.
    run_us: u64,
    /// Wall time of the `run` call, µs.
    run_wall_us: u64,
    /// What `run` returned.
    checksum: i64,
}

/// How one runtime fared on one workload.
enum Outcome {
    /// Samples so far, one per round.
    Ran(Vec<Sample>),
    /// It could not run the workload (reported once, not retried).
    Failed(String),
    /// The runtime is not available (node not found, say).
    Skipped,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        let status = match &args[1..] {
            [runtime, wasm, arg] => child::main(runtime, wasm, arg),
            _ => {
                eprintln!("usage: --child RUNTIME FILE.wasm N");
                1
            }
        };
        std::process::exit(status);
    }
    match run(&args) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Options of the parent.
struct Options {
    rounds: usize,
    arg: Option<i32>,
    workloads: Vec<&'static Workload>,
}

fn parse_options(args: &[String]) -> Result<Option<Options>> {
    let mut options = Options { rounds: ROUNDS, arg: None, workloads: Vec::new() };
    let mut args = args.iter();
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| anyhow!("{name} needs a value"));
        match a.as_str() {
            "--rounds" => {
                let v = value("--rounds")?;
                options.rounds = v.parse().with_context(|| format!("--rounds {v}"))?;
                if options.rounds == 0 {
                    bail!("--rounds must be at least 1");
                }
            }
            "--arg" => {
                let v = value("--arg")?;
                options.arg = Some(v.parse().with_context(|| format!("--arg {v}"))?);
            }
            "-h" | "--help" => {
                println!("usage: kiln-gc-bench [--rounds N (default {ROUNDS})] [--arg N] [WORKLOAD...]");
                println!("  --arg N    call run(N) instead of each workload's default size");
                println!("  WORKLOAD   {} (default: all)", names());
                println!("  node 24: ./fetch-node.sh, or KILN_BENCH_NODE=/path/to/node");
                return Ok(None);
            }
            name => match WORKLOADS.iter().find(|w| w.name == name) {
                Some(w) => options.workloads.push(w),
                None => bail!("unknown workload {name:?} (workloads: {})", names()),
            },
        }
    }
    if options.workloads.is_empty() {
        options.workloads = WORKLOADS.iter().collect();
    }
    Ok(Some(options))
}

fn names() -> String {
    WORKLOADS.iter().map(|w| w.name).collect::<Vec<_>>().join(", ")
}

/// The parent: runs the rounds and prints the tables. `Ok(false)` when
/// the checksums disagree or Wasmtime or node failed.
fn run(args: &[String]) -> Result<bool> {
    let Some(options) = parse_options(args)? else { return Ok(true) };
    let exe = std::env::current_exe().context("locating this program")?;
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let wasm_dir = exe.parent().context("this program's directory")?.join("gc-bench-wasm");
    std::fs::create_dir_all(&wasm_dir).with_context(|| format!("creating {}", wasm_dir.display()))?;

    let node = find_node(&exe);
    match &node {
        Ok(path) => eprintln!("node: {}", path.display()),
        Err(reason) => eprintln!("node: SKIPPED: {reason}"),
    }

    let mut ok = true;
    let mut mismatches: Vec<&str> = Vec::new();
    let mut results: Vec<(&Workload, i32, Vec<Outcome>)> = Vec::new();
    for w in &options.workloads {
        let arg = options.arg.unwrap_or(w.arg);
        let wat_path = manifest_dir.join("wat").join(w.file);
        let wasm = wat::parse_file(&wat_path).map_err(|e| anyhow!("{}: {e}", wat_path.display()))?;
        let wasm_path = wasm_dir.join(w.file).with_extension("wasm");
        std::fs::write(&wasm_path, wasm).with_context(|| format!("writing {}", wasm_path.display()))?;

        let mut outcomes: Vec<Outcome> = RUNTIMES
            .iter()
            .map(|r| if *r == "node" && node.is_err() { Outcome::Skipped } else { Outcome::Ran(Vec::new()) })
            .collect();
        for round in 1..=options.rounds {
            for (runtime, outcome) in RUNTIMES.iter().zip(outcomes.iter_mut()) {
                let Outcome::Ran(samples) = outcome else { continue };
                let mut cmd = match (*runtime, &node) {
                    ("node", Ok(node)) => {
                        let mut c = Command::new(node);
                        c.arg(manifest_dir.join("run.mjs"));
                        c
                    }
                    _ => {
                        let mut c = Command::new(&exe);
                        c.args(["--child", runtime]);
                        c
                    }
                };
                cmd.arg(&wasm_path).arg(arg.to_string());
                match measure(cmd) {
                    Ok(s) => {
                        eprintln!(
                            "{} run({arg}) round {round}/{} {runtime:<8}: run {:.3} s cpu ({:.3} s wall), process {:.3} s cpu, peak {:.1} MiB, checksum {}",
                            w.name,
                            options.rounds,
                            secs(s.run_us),
                            secs(s.run_wall_us),
                            secs(s.process_us),
                            mib(s.maxrss_kib),
                            s.checksum
                        );
                        samples.push(s);
                    }
                    Err(e) => {
                        let e = format!("{e:#}");
                        eprintln!("{} {runtime:<8}: {e}", w.name);
                        if *runtime != "kiln" {
                            ok = false;
                        }
                        *outcome = Outcome::Failed(e);
                    }
                }
            }
        }
        if !checksums_agree(w.name, &outcomes) {
            mismatches.push(w.name);
        }
        results.push((w, arg, outcomes));
    }
    print_tables(&results, options.rounds, &node);
    for name in &mismatches {
        println!("\n!!! CHECKSUM MISMATCH in {name}: the runtimes disagree (see the checksums above)");
    }
    Ok(ok && mismatches.is_empty())
}

/// Whether every sample of every runtime has the same checksum; says so
/// loudly when not.
fn checksums_agree(workload: &str, outcomes: &[Outcome]) -> bool {
    let mut seen: Vec<(&str, i64)> = Vec::new();
    for (runtime, outcome) in RUNTIMES.iter().zip(outcomes) {
        if let Outcome::Ran(samples) = outcome {
            for s in samples {
                if !seen.contains(&(runtime, s.checksum)) {
                    seen.push((runtime, s.checksum));
                }
            }
        }
    }
    let first = seen.first().map(|(_, c)| *c);
    if seen.iter().all(|(_, c)| Some(*c) == first) {
        return true;
    }
    eprintln!("\n!!! CHECKSUM MISMATCH in {workload}:");
    for (runtime, c) in &seen {
        eprintln!("!!!   {runtime}: {c}");
    }
    false
}

/// Runs `cmd` (a child speaking the protocol of `child.rs`) to its end and
/// returns its figures; an error says why it gave none.
fn measure(mut cmd: Command) -> Result<Sample> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let mut stderr_pipe = child.stderr.take().context("child's standard error")?;
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout).context("reading the child's output")?;
    }
    let stderr = stderr_reader.join().map_err(|_| anyhow!("the thread reading the child's standard error panicked"))?;
    let (status, usage) = wait4(child.id())?;
    let first_error_line = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
    if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => {}
            child::EXIT_COMPILE => bail!("unsupported: {first_error_line}"),
            code => bail!("failed (exit status {code}): {first_error_line}"),
        }
    } else if libc::WIFSIGNALED(status) {
        bail!("failed (killed by signal {}): {first_error_line}", libc::WTERMSIG(status));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("result "))
        .ok_or_else(|| anyhow!("failed: no result line in the child's output {stdout:?}"))?;
    let field = |key: &str| -> Result<&str> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .ok_or_else(|| anyhow!("failed: no {key} in {line:?}"))
    };
    let number = |key: &str| -> Result<u64> {
        let v = field(key)?;
        v.parse().map_err(|e| anyhow!("failed: {key}={v}: {e}"))
    };
    let checksum = field("checksum")?;
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Ok(Sample {
        process_us: us(usage.ru_utime) + us(usage.ru_stime),
        maxrss_kib: usage.ru_maxrss as u64,
        compile_us: number("compile_us")?,
        run_us: number("run_us")?,
        run_wall_us: number("run_wall_us")?,
        checksum: checksum.parse().map_err(|e| anyhow!("failed: checksum={checksum}: {e}"))?,
    })
}

/// Waits for the child `pid`: its wait status and resource usage.
fn wait4(pid: u32) -> Result<(libc::c_int, libc::rusage)> {
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    loop {
        // SAFETY: `pid` is our own child, not yet waited for; wait4 writes
        // the status and the usage struct it is given.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, usage.as_mut_ptr()) };
        if r == pid as libc::pid_t {
            // SAFETY: filled in by the successful wait4 (and zeroed before).
            return Ok((status, unsafe { usage.assume_init() }));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("waiting for the child");
        }
    }
}

/// The node 24 binary: `$KILN_BENCH_NODE`, or what `fetch-node.sh` put in
/// the target directory. `Err` says why there is none.
fn find_node(exe: &Path) -> std::result::Result<PathBuf, String> {
    let path = match std::env::var_os("KILN_BENCH_NODE") {
        Some(p) => PathBuf::from(p),
        None => {
            let target = exe.parent().and_then(Path::parent).ok_or("no target directory above this program")?;
            let path = target.join("node24/package/bin/node");
            if !path.exists() {
                return Err(format!("{} does not exist: run ./fetch-node.sh (or set KILN_BENCH_NODE)", path.display()));
            }
            path
        }
    };
    let out = Command::new(&path)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {} --version: {e}", path.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !version.starts_with("v24.") {
        return Err(format!("{} is {version:?}, not node 24", path.display()));
    }
    Ok(path)
}

fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The median of `v` (the upper one of an even count).
fn median(mut v: Vec<u64>) -> Option<u64> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// A runtime's medians: run CPU, process CPU, compile CPU (µs), peak RSS (KiB).
fn medians(outcome: &Outcome) -> Option<[u64; 4]> {
    let Outcome::Ran(s) = outcome else { return None };
    Some([
        median(s.iter().map(|s| s.run_us).collect())?,
        median(s.iter().map(|s| s.process_us).collect())?,
        median(s.iter().map(|s| s.compile_us).collect())?,
        median(s.iter().map(|s| s.maxrss_kib).collect())?,
    ])
}

fn print_tables(
    results: &[(&Workload, i32, Vec<Outcome>)],
    rounds: usize,
    node: &std::result::Result<PathBuf, String>,
) {
    println!("\nMedians of {rounds} rounds; CPU time is user+system, seconds; peak RSS in MiB.\n");
    println!("| workload | runtime | run cpu s | process cpu s | compile cpu s | peak RSS MiB | checksum |");
    println!("|---|---|---:|---:|---:|---:|---|");
    for (w, arg, outcomes) in results {
        for (runtime, outcome) in RUNTIMES.iter().zip(outcomes) {
            let label = format!("{} ({arg})", w.name);
            match (outcome, medians(outcome)) {
                (Outcome::Ran(s), Some([run, process, compile, rss])) => println!(
                    "| {label} | {runtime} | {:.3} | {:.3} | {:.3} | {:.1} | {} |",
                    secs(run),
                    secs(process),
                    secs(compile),
                    mib(rss),
                    s[0].checksum
                ),
                (Outcome::Failed(e), _) => println!("| {label} | {runtime} | {} | | | | |", e.replace('|', "\\|")),
                (Outcome::Skipped, _) => {
                    let reason = node.as_ref().err().map_or("", String::as_str);
                    println!("| {label} | {runtime} | skipped: {} | | | | |", reason.replace('|', "\\|"))
                }
                (Outcome::Ran(_), None) => println!("| {label} | {runtime} | no samples | | | | |"),
            }
        }
    }

    println!("\nKiln's ratios (finish line: run cpu ≤ 0.5× Wasmtime and ≤ 2× node, peak RSS ≤ 1× Wasmtime):\n");
    println!("| workload | run cpu /wasmtime | run cpu /node | process cpu /wasmtime | process cpu /node | peak RSS /wasmtime | peak RSS /node | finish line |");
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for (w, _, outcomes) in results {
        let [k, wt, nd] = [&outcomes[0], &outcomes[1], &outcomes[2]].map(medians);
        let ratio = |i: usize, other: Option<[u64; 4]>| -> Option<f64> {
            match (k, other) {
                (Some(k), Some(o)) if o[i] > 0 => Some(k[i] as f64 / o[i] as f64),
                _ => None,
            }
        };
        let show = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}"));
        let (run_wt, run_nd, rss_wt) = (ratio(0, wt), ratio(0, nd), ratio(3, wt));
        let verdict = match (run_wt, run_nd, rss_wt) {
            (Some(a), Some(b), Some(c)) => {
                if a <= 0.5 && b <= 2.0 && c <= 1.0 {
                    "met"
                } else {
                    "not met"
                }
            }
            (Some(a), None, Some(c)) => {
                if a <= 0.5 && c <= 1.0 {
                    "met vs Wasmtime; node not measured"
                } else {
                    "not met"
                }
            }
            _ => "-",
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {verdict} |",
            w.name,
            show(run_wt),
            show(run_nd),
            show(ratio(1, wt)),
            show(ratio(1, nd)),
            show(rss_wt),
            show(ratio(3, nd)),
        );
    }
}
