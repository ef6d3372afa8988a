//! What a one-function edit costs through the real `kiln run`, against a
//! cold compile, on the generated many-small-functions module (see
//! `kiln_benches::many_funcs`):
//!
//! ```text
//! cargo build --release -p kiln-cli --bin kiln
//! cargo run --release -p kiln-benches --bin edit-bench -- [--kiln PATH] [--funcs N] [--runs R] [--dir WORK] [--keep]
//! ```
//!
//! Each of `R` rounds (default 15, after one round not counted) times
//! three whole `kiln run --cache-dir DIR FILE` processes:
//!
//! - *cold*: the original module, with a new, empty cache directory
//!   (directories are removed only at the end: removing thousands of
//!   files just before a run slows the file system down during it);
//! - *edit*: the module after one more one-function edit than the round
//!   before (a different function each round), with a cache directory
//!   that holds everything the earlier rounds compiled;
//! - *warm*: the same edited module again (the module entry is a hit).
//!
//! It prints the minimum and median wall time of each, the mean CPU time
//! (user + system, from the operating system's accounting of finished
//! children, which counts in clock ticks: hence means over all rounds),
//! and edit / cold. `--kiln` defaults to the `kiln` next to this binary
//! (`target/release/kiln`); `--funcs` to 6,000.

use kiln_benches::many_funcs::many_funcs_wasm;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// CPU time (user + system) of this process's waited-for children so far,
/// from `/proc/self/stat`.
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may
    // contain spaces: state is field 3, cutime and cstime fields 16 and 17.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [13, 14].iter().filter_map(|i| fields.get(*i)?.parse::<u64>().ok()).sum();
    let per_second = rustix::param::clock_ticks_per_second().max(1);
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / per_second)
}

/// One measured process: wall time and CPU time.
#[derive(Clone, Copy)]
struct Run {
    wall: Duration,
    cpu: Duration,
}

/// Runs `kiln run --cache-dir cache file`, which must succeed.
fn kiln_run(kiln: &Path, cache: &Path, file: &Path) -> Run {
    let cpu_before = children_cpu();
    let start = Instant::now();
    let status = Command::new(kiln)
        .arg("run")
        .arg("--cache-dir")
        .arg(cache)
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status();
    let wall = start.elapsed();
    match status {
        Ok(s) if s.success() => Run { wall, cpu: children_cpu().saturating_sub(cpu_before) },
        Ok(s) => fail(&format!("{} run {} exited with {s}", kiln.display(), file.display())),
        Err(e) => fail(&format!("cannot run {}: {e}", kiln.display())),
    }
}

fn fail(why: &str) -> ! {
    eprintln!("edit-bench: {why}");
    std::process::exit(1);
}

/// Minimum and median wall time and mean CPU time of `runs`.
struct Summary {
    min: Duration,
    median: Duration,
    mean_cpu: Duration,
}

fn summarize(runs: &[Run]) -> Summary {
    let mut walls: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
    walls.sort();
    let cpu: Duration = runs.iter().map(|r| r.cpu).sum();
    Summary {
        min: walls.first().copied().unwrap_or_default(),
        median: walls.get(walls.len() / 2).copied().unwrap_or_default(),
        mean_cpu: cpu / u32::try_from(runs.len().max(1)).unwrap_or(u32::MAX),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Options {
    kiln: PathBuf,
    funcs: u32,
    runs: u32,
    dir: PathBuf,
    keep: bool,
}

fn options() -> Options {
    let beside_us = std::env::current_exe().ok().and_then(|p| Some(p.parent()?.join("kiln")));
    let mut o = Options {
        kiln: beside_us.unwrap_or_else(|| PathBuf::from("kiln")),
        funcs: 6000,
        runs: 15,
        dir: std::env::temp_dir().join(format!("kiln-edit-bench-{}", std::process::id())),
        keep: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| fail(&format!("{a} needs a value")));
        let number = |v: String| v.parse::<u32>().unwrap_or_else(|_| fail(&format!("{a}: {v} is not a number")));
        match a.as_str() {
            "--kiln" => o.kiln = value().into(),
            "--funcs" => o.funcs = number(value()),
            "--runs" => o.runs = number(value()).max(1),
            "--dir" => o.dir = value().into(),
            "--keep" => o.keep = true,
            _ => fail(&format!(
                "unknown argument {a}; usage: edit-bench [--kiln PATH] [--funcs N] [--runs R] [--dir WORK] [--keep]"
            )),
        }
    }
    o
}

fn main() {
    let o = options();
    let _ = std::fs::remove_dir_all(&o.dir);
    std::fs::create_dir_all(&o.dir).unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", o.dir.display())));
    let write = |edits: u32| -> PathBuf {
        let path = o.dir.join(format!("edit-{edits}.wasm"));
        std::fs::write(&path, many_funcs_wasm(o.funcs, edits))
            .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", path.display())));
        path
    };
    let base = write(0);
    let warm_dir = o.dir.join("warm-cache");
    println!(
        "module: {} functions, {} bytes; kiln: {}",
        o.funcs,
        std::fs::metadata(&base).map(|m| m.len()).unwrap_or(0),
        o.kiln.display()
    );
    // Fills the warm cache with the original module.
    kiln_run(&o.kiln, &warm_dir, &base);
    let (mut cold, mut edit, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=o.runs {
        let c = kiln_run(&o.kiln, &o.dir.join(format!("cold-cache-{round}")), &base);
        let edited = write(round + 1);
        let e = kiln_run(&o.kiln, &warm_dir, &edited);
        let w = kiln_run(&o.kiln, &warm_dir, &edited);
        // Round 0 warms up the page cache and the CPU's clocks.
        if round > 0 {
            cold.push(c);
            edit.push(e);
            warm.push(w);
        }
        let _ = std::fs::remove_file(&edited);
    }
    let (c, e, w) = (summarize(&cold), summarize(&edit), summarize(&warm));
    println!("{} rounds (cold, edit, warm in turn), wall min / median, CPU mean:", o.runs);
    for (name, s) in [("cold compile (empty cache)", &c), ("one-function edit", &e), ("warm start (module hit)", &w)] {
        println!("  {name:<28} {:>8.2} / {:>8.2} ms   CPU {:>8.2} ms", ms(s.min), ms(s.median), ms(s.mean_cpu));
    }
    println!(
        "edit / cold: {:.2} % (median wall), {:.2} % (mean CPU)",
        100.0 * e.median.as_secs_f64() / c.median.as_secs_f64().max(1e-9),
        100.0 * e.mean_cpu.as_secs_f64() / c.mean_cpu.as_secs_f64().max(1e-9)
    );
    if !o.keep {
        let _ = std::fs::remove_dir_all(&o.dir);
    }
}
