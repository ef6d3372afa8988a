//! Flags shared by the commands that compile or run: resource limits and
//! the compilation cache (Kiln's spellings; `-W` and `-C` set the same
//! things Wasmtime's way and are merged in here).

use crate::wasm_flags::WasmSettings;
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use kiln::{Config, DirectoryCache, EpochTicker, LimitExceeded, Store, StoreLimits, StoreLimitsBuilder, TrapCode};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Epoch tick of `--timeout`: interruption lands within one tick of the deadline.
const TICK: Duration = Duration::from_millis(5);

/// Default of `--max-table-elements`: 8 MiB of references per table when
/// every element is written, well above what real programs use (Yosys,
/// 30 MB of wasm, has 10,266 elements), and small enough that a tiny module
/// cannot claim gigabytes by declaring many huge tables.
pub const DEFAULT_MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// The `--help` heading of the limits, shared with `-W`.
const HEADING: &str = "WebAssembly and limits";

/// Limits on what the program may do.
#[derive(Args, Clone, Default)]
pub struct LimitFlags {
    /// Stop the program (with a trap) after it consumed this much fuel
    /// (roughly one unit per wasm instruction). Also `-W fuel=N`.
    #[arg(long, value_name = "N", value_parser = parse_count, help_heading = HEADING)]
    fuel: Option<u64>,

    /// Stop the program after this much wall time, e.g. `100ms`, `2s`, `1m`.
    /// Also `-W timeout=D`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = HEADING)]
    timeout: Option<Duration>,

    /// Most bytes each linear memory may grow to, e.g. `64MiB`; beyond it
    /// `memory.grow` fails (returns -1) and oversized modules do not start.
    /// Also `-W max-memory-size=N`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = HEADING)]
    max_memory: Option<usize>,

    /// Most elements each table may have (default 1000000, i.e. 8 MiB of
    /// references once all are written; Kiln's own limit is 10000000);
    /// beyond it `table.grow` fails (returns -1) and modules with larger
    /// tables do not start. Also `-W max-table-elements=N`.
    #[arg(long, value_name = "N", help_heading = HEADING)]
    max_table_elements: Option<usize>,

    /// Most bytes of native stack wasm may use, e.g. `1MiB` (default
    /// 512KiB). Also `-W max-wasm-stack=N`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = HEADING)]
    max_wasm_stack: Option<usize>,

    /// Most bytes of GC objects (structs and arrays, `-W gc`) the program
    /// may allocate, e.g. `256MiB` (default: the heap's 4 GiB); beyond it
    /// allocation traps. Also `-W max-gc-heap-size=N`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = HEADING)]
    max_gc_heap: Option<usize>,
}

/// Takes Wasmtime's spelling of a limit into Kiln's: either may be given,
/// or both if they agree.
fn merge<T: PartialEq + Copy>(kiln: &mut Option<T>, wasmtime: Option<T>, (ours, theirs): (&str, &str)) -> Result<()> {
    match (*kiln, wasmtime) {
        (Some(a), Some(b)) if a != b => bail!("`{ours}` and `-W {theirs}` give different values: give one of them"),
        (_, Some(b)) => *kiln = Some(b),
        _ => {}
    }
    Ok(())
}

impl LimitFlags {
    /// Adds the limits given with `-W` (`fuel=`, `timeout=`,
    /// `max-memory-size=`, `max-table-elements=`, `max-wasm-stack=`,
    /// `max-gc-heap-size=`).
    ///
    /// # Errors
    ///
    /// A limit given both ways with different values.
    pub fn merge_wasm(&mut self, w: &WasmSettings) -> Result<()> {
        merge(&mut self.fuel, w.fuel, ("--fuel", "fuel"))?;
        merge(&mut self.timeout, w.timeout, ("--timeout", "timeout"))?;
        merge(&mut self.max_memory, w.max_memory_size, ("--max-memory", "max-memory-size"))?;
        merge(&mut self.max_table_elements, w.max_table_elements, ("--max-table-elements", "max-table-elements"))?;
        merge(&mut self.max_wasm_stack, w.max_wasm_stack, ("--max-wasm-stack", "max-wasm-stack"))?;
        merge(&mut self.max_gc_heap, w.max_gc_heap_size, ("--max-gc-heap", "max-gc-heap-size"))
    }

    /// Adds the code-generation side of the limits to `config`.
    pub fn configure(&self, config: &mut Config) {
        if self.fuel.is_some() {
            config.consume_fuel(true);
        }
        if self.timeout.is_some() {
            config.epoch_interruption(true);
        }
        if let Some(s) = self.max_wasm_stack {
            config.max_wasm_stack(s);
        }
        if let Some(s) = self.max_gc_heap {
            config.max_gc_heap_size(s as u64);
        }
    }

    /// The store limits (for the main store and every wasi-threads store).
    pub fn store_limits(&self) -> StoreLimits {
        let mut b = StoreLimitsBuilder::new().table_elements(self.max_table_elements());
        if let Some(m) = self.max_memory {
            b = b.memory_size(m);
        }
        b.build()
    }

    /// The `--max-table-elements` in effect.
    pub fn max_table_elements(&self) -> usize {
        self.max_table_elements.unwrap_or(DEFAULT_MAX_TABLE_ELEMENTS)
    }

    /// The flag that raises the limit behind `e`, in words.
    pub fn describe_exceeded(&self, e: &LimitExceeded) -> String {
        match e.what {
            "table" => format!(
                "each table may have at most {} elements; raise the limit with --max-table-elements",
                self.max_table_elements()
            ),
            _ => "raise the limit with --max-memory".to_string(),
        }
    }

    /// Applies fuel and the deadline to `store` and starts the timer; keep
    /// the returned ticker alive while the program runs.
    ///
    /// # Errors
    ///
    /// Fuel could not be set (not configured).
    pub fn start<T: 'static>(&self, store: &mut Store<T>) -> Result<Option<EpochTicker>> {
        if let Some(f) = self.fuel {
            store.set_fuel(f)?;
        }
        Ok(self.timeout.map(|t| {
            let ticks = t.as_nanos().div_ceil(TICK.as_nanos()).max(1) as u64;
            store.set_epoch_deadline(ticks);
            store.engine().start_epoch_ticker(TICK)
        }))
    }

    /// Applies fuel and the deadline to the store of a wasi-threads thread:
    /// the same amount of fuel as the main thread started with, and the
    /// same time limit counted from now (the main thread's ticker drives
    /// the engine's epochs).
    ///
    /// # Errors
    ///
    /// Fuel could not be set (not configured).
    pub fn apply_to_thread<T: 'static>(&self, store: &mut Store<T>) -> Result<()> {
        if let Some(f) = self.fuel {
            store.set_fuel(f)?;
        }
        if let Some(t) = self.timeout {
            store.set_epoch_deadline(t.as_nanos().div_ceil(TICK.as_nanos()).max(1) as u64);
        }
        Ok(())
    }

    /// The native stack of a wasi-threads thread: room for the wasm stack
    /// limit and the host below it, and never less than 8 MiB.
    pub fn thread_stack_size(&self) -> usize {
        self.max_wasm_stack.map_or(0, |s| s.saturating_add(1 << 20)).max(8 << 20)
    }

    /// The limit behind a trap, in words, if a limit caused it.
    pub fn describe(&self, code: TrapCode) -> Option<String> {
        match code {
            TrapCode::OutOfFuel => self.fuel.map(|f| format!("the program used up its fuel (--fuel {f})")),
            TrapCode::Interrupt => {
                self.timeout.map(|t| format!("the program ran past its time limit (--timeout {t:?})"))
            }
            TrapCode::StackOverflow => {
                self.max_wasm_stack.map(|s| format!("the program exhausted its stack (--max-wasm-stack {s} bytes)"))
            }
            _ => None,
        }
    }
}

/// Parses `100ms`, `2s`, `1.5s`, `3m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| anyhow!("`{s}` is not a duration (try 100ms, 2s, 1m)"))?;
    let secs = match unit.trim() {
        "ns" => n / 1e9,
        "us" | "µs" | "μs" => n / 1e6,
        "ms" => n / 1e3,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => bail!("unknown time unit `{other}` in `{s}`"),
    };
    if !secs.is_finite() || secs < 0.0 {
        bail!("`{s}` is not a valid duration");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a count: decimal or `0x` hexadecimal, `_` allowed between
/// digits (`1_000_000`), as Wasmtime writes them.
pub fn parse_count(s: &str) -> Result<u64> {
    let digits = s.trim().replace('_', "");
    let n = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse(),
    };
    n.map_err(|_| anyhow!("`{s}` is not a number"))
}

/// Parses `4096`, `64KiB`, `64k`, `2MiB`, `1G`, ... (binary multiples);
/// plain numbers may also be written `0x10000` or `1_048_576`.
pub fn parse_size(s: &str) -> Result<usize> {
    let s = s.trim();
    if s.starts_with("0x") || s.starts_with("0X") || s.contains('_') {
        return usize::try_from(parse_count(s)?).map_err(|_| anyhow!("`{s}` is too large"));
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| anyhow!("`{s}` is not a size (try 65536, 64KiB, 16MiB)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => bail!("unknown size unit `{other}` in `{s}`"),
    };
    let bytes = n.checked_mul(mult).ok_or_else(|| anyhow!("`{s}` is too large"))?;
    usize::try_from(bytes).map_err(|_| anyhow!("`{s}` is too large"))
}

/// Where compiled code is cached.
#[derive(Args, Default)]
pub struct CacheFlags {
    /// Do not read or write the compilation cache (also `-C cache=n`).
    #[arg(long, help_heading = "Compilation and cache")]
    no_cache: bool,

    /// Use this cache directory (default: $KILN_CACHE_DIR, else
    /// $XDG_CACHE_HOME/kiln, else ~/.cache/kiln).
    #[arg(long, value_name = "DIR", help_heading = "Compilation and cache")]
    cache_dir: Option<PathBuf>,

    /// Size cap of the cache (from `-C cache-config`).
    #[arg(skip)]
    max_bytes: Option<u64>,
}

impl CacheFlags {
    /// Turns the cache on or off (`-C cache=y|n`); off wins over on.
    pub fn set_enabled(&mut self, on: bool) {
        self.no_cache |= !on;
    }

    /// Takes the directory and size cap of a cache configuration file
    /// (`-C cache-config=FILE`).
    ///
    /// # Errors
    ///
    /// `--cache-dir` names another directory.
    pub fn merge_config(&mut self, dir: Option<PathBuf>, max_bytes: Option<u64>) -> Result<()> {
        if let Some(d) = dir {
            match &self.cache_dir {
                Some(given) if *given != d => {
                    bail!(
                        "--cache-dir {} and the cache configuration's directory {} differ",
                        given.display(),
                        d.display()
                    )
                }
                _ => self.cache_dir = Some(d),
            }
        }
        self.max_bytes = max_bytes.or(self.max_bytes);
        Ok(())
    }

    /// Installs the directory cache in `config` unless disabled; a cache
    /// that cannot be opened is reported and skipped.
    pub fn configure(&self, config: &mut Config) {
        if self.no_cache {
            return;
        }
        let dir = self.cache_dir.clone().or_else(DirectoryCache::default_dir);
        match dir.map(DirectoryCache::new) {
            Some(Ok(cache)) => {
                let cache = match self.max_bytes {
                    Some(max) => cache.with_max_bytes(max),
                    None => cache,
                };
                config.cache(Arc::new(cache));
            }
            Some(Err(e)) => eprintln!("warning: compilation cache disabled: {e}"),
            None => {}
        }
    }

    /// The cache directory these flags select.
    ///
    /// # Errors
    ///
    /// No directory could be determined.
    pub fn dir(&self) -> Result<PathBuf> {
        self.cache_dir
            .clone()
            .or_else(DirectoryCache::default_dir)
            .context("no cache directory: set --cache-dir, KILN_CACHE_DIR or HOME")
    }
}
