//! `kiln run`.

use crate::engine_flags::EngineFlags;
use crate::options::LimitFlags;
use crate::progress::CompileProgress;
use crate::unknown_imports::{UnknownImportCalled, UnknownImports};
use crate::wasi_flags::{WasiFlags, WasiSettings};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use kiln::{
    Engine, ExternType, Func, Instance, LimitExceeded, Linker, Module, Store, StoreLimits, Trap, TrapCode, Val, ValType,
};
use kiln_wasi::{DirPerms, I32Exit, ThreadExit, WasiCtx, WasiCtxBuilder, WasiThreads};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status when wasm traps (128 + SIGABRT).
const TRAP_EXIT: u8 = 134;

/// `kiln run [OPTIONS] FILE [--invoke NAME] [ARGS...]`
#[derive(Args)]
pub struct RunCommand {
    /// Call this exported function instead of `_start`, passing ARGS as its
    /// parameters, and print each result on its own line.
    #[arg(long, value_name = "NAME")]
    invoke: Option<String>,

    /// Give the program the host directory HOST, named GUEST inside (HOST
    /// itself when `::GUEST` is left out). Add `::ro` after GUEST to make
    /// it read-only. Repeatable.
    #[arg(long = "dir", value_name = "HOST[::GUEST[::ro]]", help_heading = "WASI")]
    dirs: Vec<String>,

    /// Set environment variable K for the program; `--env K` alone passes
    /// the host's value of K. Repeatable.
    #[arg(long = "env", value_name = "K[=V]", help_heading = "WASI")]
    envs: Vec<String>,

    /// Listen on this TCP address (e.g. 127.0.0.1:8080) and give the
    /// program the listening socket, after the preopened directories
    /// (also `-S tcplisten=ADDR`).
    #[arg(long = "tcplisten", value_name = "ADDR", help_heading = "WASI")]
    listen: Vec<String>,

    #[command(flatten)]
    wasi: WasiFlags,

    #[command(flatten)]
    engine: EngineFlags,

    /// Define every imported function that nothing provides as one that
    /// traps when called (also `-W unknown-imports-trap`).
    #[arg(long, help_heading = "Imports")]
    trap_unknown_imports: bool,

    /// Define every import that nothing provides with a default: functions
    /// return zeros and nulls, globals hold zero or null, tables and
    /// memories are new and of their minimum size (also
    /// `-W unknown-imports-default`). With --trap-unknown-imports,
    /// functions trap and the other imports get defaults.
    #[arg(long, help_heading = "Imports")]
    default_values_unknown_imports: bool,

    /// Describe generated code to a profiler: `perfmap` writes
    /// /tmp/perf-<pid>.map so `perf report` names wasm functions.
    #[arg(long, value_name = "STRATEGY", value_parser = parse_profile, help_heading = "Compilation and cache")]
    profile: Option<kiln::ProfilingStrategy>,

    /// Run FILE even if it is a precompiled artifact (`kiln compile`
    /// output). Its native code runs as is, unchecked: only for artifacts
    /// from a source trusted as much as Kiln itself.
    #[arg(long, help_heading = "Compilation and cache")]
    allow_precompiled: bool,

    /// The module to run (.wasm or .wat; a precompiled .cwasm only with
    /// --allow-precompiled).
    file: PathBuf,

    /// Arguments: the function's parameters with --invoke, otherwise passed
    /// to the program (whose argv[0] is FILE as given). `--invoke NAME` may
    /// also directly follow FILE.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn parse_profile(s: &str) -> Result<kiln::ProfilingStrategy> {
    match s {
        "perfmap" => Ok(kiln::ProfilingStrategy::PerfMap),
        "none" => Ok(kiln::ProfilingStrategy::None),
        _ => bail!("unknown profiler `{s}` (known: perfmap, none)"),
    }
}

impl RunCommand {
    pub fn execute(mut self) -> Result<ExitCode> {
        // Accept `kiln run FILE --invoke NAME ARGS...`.
        if self.invoke.is_none() && self.args.first().map(String::as_str) == Some("--invoke") {
            if self.args.len() < 2 {
                bail!("--invoke needs a function name");
            }
            self.invoke = Some(self.args[1].clone());
            self.args.drain(..2);
        } else if let Some(rest) = self.args.first().and_then(|a| a.strip_prefix("--invoke=")) {
            self.invoke = Some(rest.to_string());
            self.args.remove(0);
        }

        let (mut config, wasm) = self.engine.resolve()?;
        if crate::cache_fill::is_filler() {
            return self.fill_cache(config);
        }
        // `run` compiles lazily unless told otherwise (`-C lazy=n`).
        let lazy = self.engine.codegen.lazy()?.unwrap_or(true);
        if self.engine.codegen.lazy()?.is_none() {
            config.compile_strategy(kiln::CompileStrategy::Lazy);
        }
        // ... with tiering unless told otherwise (`-C tiering=n`).
        let tiering = lazy && self.engine.codegen.tiering()?.unwrap_or(true);
        if lazy && self.engine.codegen.tiering()?.is_none() {
            config.baseline_compilation(kiln::BaselineCompilation::FirstCalls);
        }
        let wasi = self.wasi.parse()?;
        if wasi.inherit_network {
            eprintln!(
                "warning: -S inherit-network has no effect: WASI preview 1 programs cannot open sockets (see -S tcplisten)"
            );
        }
        let unknown = UnknownImports {
            trap: self.trap_unknown_imports || wasm.unknown_imports_trap,
            default: self.default_values_unknown_imports || wasm.unknown_imports_default,
        };
        if let Some(p) = self.profile {
            config.profiler(p);
        }
        let engine = Engine::new(&config)?;
        let progress = CompileProgress::new(&self.file, self.engine.timings);
        let module = crate::load::load_module(&engine, &self.file, self.allow_precompiled, &progress)?;
        if let Some(t) = progress.timings() {
            eprint!("{}", crate::timings_report::format(t, None, progress.elapsed()));
        }
        let status = self.run_module(&engine, &module, &wasi, unknown);
        let unfinished = tiering && engine.cache().is_some() && !module.has_final_code();
        // Dropping the module stores what was compiled lazily in the cache.
        drop(module);
        // The cache stores a newly compiled module in the background; make
        // sure it is on disk before the process ends.
        if let Some(cache) = engine.cache() {
            cache.flush();
        }
        if unfinished {
            crate::cache_fill::spawn(&self.file);
        }
        status
    }

    /// As a cache filler (see `cache_fill.rs`): compiles the module
    /// whole with Cranelift into the cache, at the lowest priority, and
    /// runs nothing.
    fn fill_cache(&self, mut config: kiln::Config) -> Result<ExitCode> {
        kiln::lowest_thread_priority();
        config.compile_strategy(kiln::CompileStrategy::Eager).baseline_compilation(kiln::BaselineCompilation::Off);
        let result = (|| -> Result<()> {
            let engine = Engine::new(&config)?;
            let progress = CompileProgress::new(&self.file, false);
            let module = crate::load::load_module(&engine, &self.file, false, &progress)?;
            drop(module);
            if let Some(cache) = engine.cache() {
                cache.flush();
            }
            Ok(())
        })();
        crate::cache_fill::release();
        result.map(|()| ExitCode::SUCCESS)
    }

    /// Instantiates `module` with WASI and runs it (or the `--invoke`d
    /// function).
    fn run_module(
        &self,
        engine: &Engine,
        module: &Module,
        wasi: &WasiSettings,
        unknown: UnknownImports,
    ) -> Result<ExitCode> {
        if !wasi.threads {
            if kiln_wasi::uses_threads(module) {
                bail!(
                    "the module imports `{}::{}` (wasi-threads); run it with `-S threads`",
                    kiln_wasi::THREADS_MODULE,
                    kiln_wasi::THREAD_SPAWN
                );
            }
            if let Some(i) = module.imports().find(|i| matches!(i.ty(), ExternType::Memory(m) if m.is_shared())) {
                bail!(
                    "the module imports the shared memory `{}::{}`; run it with `-S threads`, which creates it",
                    i.module(),
                    i.name()
                );
            }
        }
        let host = Host { wasi: self.wasi_ctx(wasi)?, limits: self.engine.limits.store_limits(), threads: None };
        let mut store = Store::new(engine, host);
        store.limiter(|h| &mut h.limits);
        let _ticker = self.engine.limits.start(&mut store)?;
        let mut linker = Linker::new(engine);
        if wasi.cli && kiln_wasi::uses_wasi(module) {
            kiln_wasi::add_to_linker(&mut linker, |h: &mut Host| &mut h.wasi)?;
        }
        if wasi.threads {
            kiln_wasi::add_thread_spawn_to_linker(&mut linker, |h: &mut Host| h.threads.as_ref())?;
            kiln_wasi::define_shared_memories(&mut linker, module)?;
        }
        if let Err(e) = unknown.define(&mut linker, &mut store, module) {
            return Ok(self.report(&mut store, e));
        }
        let instance = if wasi.threads {
            let pre = match linker.instantiate_pre(module) {
                Ok(pre) => pre,
                Err(e) => return Ok(self.report(&mut store, e)),
            };
            if kiln_wasi::uses_threads(module) {
                store.data_mut().threads = Some(self.threads(pre.clone())?);
            }
            pre.instantiate(&mut store)
        } else {
            linker.instantiate(&mut store, module)
        };
        let instance = match instance {
            Ok(i) => i,
            Err(e) => return Ok(self.report(&mut store, e)),
        };
        // A WASI reactor initializes itself before any export is called.
        if let Some(init) = instance.get_func(&mut store, "_initialize")
            && let Err(e) = init.call(&mut store, &[], &mut [])
        {
            return Ok(self.report(&mut store, e));
        }
        match &self.invoke {
            Some(name) => self.invoke(&mut store, instance, name),
            None => {
                let Some(start) = instance.get_func(&mut store, "_start") else {
                    return Ok(ExitCode::SUCCESS);
                };
                match start.call(&mut store, &[], &mut []) {
                    Ok(()) => Ok(ExitCode::SUCCESS),
                    Err(e) => Ok(self.report(&mut store, e)),
                }
            }
        }
    }

    /// Picks the exit status for an error from running wasm (see
    /// [`exit_status`]); an uncaught wasm exception is described with its
    /// tag's type and payload, taken from `store`.
    fn report(&self, store: &mut Store<Host>, e: anyhow::Error) -> ExitCode {
        let e = describe_uncaught_exception(store, e);
        ExitCode::from(exit_status(&self.engine.limits, e))
    }

    /// The wasi-threads context of the program `pre` instantiates: each
    /// new thread gets a handle on the same WASI state, the same limits
    /// (its own fuel and memory budget, the same time limit), and ends
    /// the whole process when it calls `proc_exit` or traps, with the
    /// status and message the main thread would have given.
    fn threads(&self, pre: kiln::InstancePre<Host>) -> Result<WasiThreads<Host>> {
        let for_store = self.engine.limits.clone();
        let for_exit = self.engine.limits.clone();
        let store_limits = self.engine.limits.store_limits();
        let engine = pre.module().engine().clone();
        let threads = WasiThreads::builder(pre, move |parent: &mut Host| Host {
            wasi: parent.wasi.share(),
            limits: store_limits.clone(),
            threads: parent.threads.clone(),
        })
        .configure_store(move |store| {
            store.limiter(|h| &mut h.limits);
            for_store.apply_to_thread(store)
        })
        .on_exit(move |tid, exit| {
            let code = match exit {
                ThreadExit::Exit(code) => u8::try_from(code).unwrap_or(1),
                ThreadExit::Error(e) => exit_status(&for_exit, e.context(format!("in wasi thread {tid}"))),
            };
            // Finish storing the compiled module before the process ends.
            if let Some(cache) = engine.cache() {
                cache.flush();
            }
            std::process::exit(i32::from(code))
        })
        .stack_size(self.engine.limits.thread_stack_size())
        .trace(std::env::var_os("KILN_WASI_TRACE").is_some())
        .build()?;
        Ok(threads)
    }

    /// The program's WASI view: arguments, environment, preopens, and
    /// (unless `-S inherit-std*=n`) the host's standard streams.
    fn wasi_ctx(&self, wasi: &WasiSettings) -> Result<WasiCtx> {
        let mut b = WasiCtxBuilder::new();
        if wasi.inherit_stdin {
            b.inherit_stdin();
        }
        if wasi.inherit_stdout {
            b.inherit_stdout();
        }
        if wasi.inherit_stderr {
            b.inherit_stderr();
        }
        if self.invoke.is_none() {
            b.arg(&self.file).args(&self.args);
        } else {
            b.arg(&self.file);
        }
        if wasi.inherit_env {
            b.inherit_env();
        }
        for e in &self.envs {
            match e.split_once('=') {
                Some((k, v)) => b.env(k, v),
                None => match std::env::var_os(e) {
                    Some(v) => b.env(e, v),
                    None => &mut b,
                },
            };
        }
        for d in &self.dirs {
            let (spec, perms) = match d.strip_suffix("::ro") {
                Some(rest) if rest.contains("::") => (rest, DirPerms::ReadOnly),
                _ => (d.as_str(), DirPerms::ReadWrite),
            };
            let (host, guest) = spec.split_once("::").unwrap_or((spec, spec));
            if host.is_empty() || guest.is_empty() {
                bail!("`--dir {d}`: expected HOST[::GUEST[::ro]]");
            }
            b.preopened_dir(host, guest, perms)?;
        }
        for addr in self.listen.iter().chain(&wasi.tcplisten) {
            let l = std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on `{addr}`"))?;
            b.preopened_listener(l);
        }
        if std::env::var_os("KILN_WASI_TRACE").is_some() {
            b.trace_calls(true);
        }
        Ok(b.build())
    }

    fn invoke(&self, store: &mut Store<Host>, instance: Instance, name: &str) -> Result<ExitCode> {
        let func: Func = instance
            .get_func(&mut *store, name)
            .ok_or_else(|| anyhow!("the module has no exported function `{name}`"))?;
        let ty = func.ty(&*store);
        if ty.params().len() != self.args.len() {
            bail!("function `{name}` takes {} arguments, {} given", ty.params().len(), self.args.len());
        }
        let params = ty
            .params()
            .zip(&self.args)
            .enumerate()
            .map(|(i, (t, a))| parse_arg(t, a).with_context(|| format!("argument {}: `{a}` is not a valid {t}", i + 1)))
            .collect::<Result<Vec<_>>>()?;
        let mut results: Vec<Val> = ty.results().map(Val::default_for).collect();
        if let Err(e) = func.call(&mut *store, &params, &mut results) {
            return Ok(self.report(store, e));
        }
        for r in &results {
            println!("{}", format_val(r));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `e` with, if it is an uncaught wasm exception, the exception's tag type
/// and payload as context (the store's pending exception is taken).
fn describe_uncaught_exception(store: &mut Store<Host>, e: anyhow::Error) -> anyhow::Error {
    if !e.is::<kiln::ThrownException>() {
        return e;
    }
    let Some(exn) = store.take_pending_exception() else { return e };
    let tag = exn.tag(&*store).map(|t| t.ty(&*store).to_string()).unwrap_or_else(|_| "?".into());
    let payload = match exn.fields(&mut *store) {
        Ok(fields) => fields.iter().map(format_val).collect::<Vec<_>>().join(", "),
        Err(_) => "?".into(),
    };
    e.context(format!("uncaught wasm exception of tag {tag} with payload [{payload}]"))
}

/// The exit status for an error from running wasm: the program's own for
/// `proc_exit` (statuses outside 0..=255 become 1), otherwise prints the
/// error, naming the limit that stopped the program if one did: 134 for a
/// trap, 1 for anything else (such as a table or memory too large for its
/// limit at instantiation).
fn exit_status(limits: &LimitFlags, e: anyhow::Error) -> u8 {
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return u8::try_from(exit.0).unwrap_or(1);
    }
    if e.downcast_ref::<UnknownImportCalled>().is_some() {
        eprintln!("error: {e:#}");
        return TRAP_EXIT;
    }
    if let Some(exceeded) = e.downcast_ref::<LimitExceeded>() {
        eprintln!("error: {e:#}\n({})", limits.describe_exceeded(exceeded));
        return 1;
    }
    let Some(trap) = e.downcast_ref::<Trap>() else {
        eprintln!("error: {e:#}");
        return 1;
    };
    match (trap.code(), &limits.describe(trap.code())) {
        (_, Some(limit)) => eprintln!("error: {limit}\n{e:#}"),
        (TrapCode::StackOverflow, None) => {
            eprintln!("error: {e:#}\n(the wasm stack limit can be raised with --max-wasm-stack)")
        }
        _ => eprintln!("error: {e:#}"),
    }
    TRAP_EXIT
}

/// The store's data: the program's WASI context, its resource limits, and
/// with `-S threads`, the wasi-threads context.
pub struct Host {
    wasi: WasiCtx,
    limits: StoreLimits,
    threads: Option<WasiThreads<Host>>,
}

fn parse_int<T: TryFrom<i128>>(s: &str) -> Result<T> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let v = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(hex) => i128::from_str_radix(hex, 16)?,
        None => body.parse::<i128>()?,
    };
    let v = if neg { -v } else { v };
    T::try_from(v).map_err(|_| anyhow!("out of range"))
}

fn parse_arg(ty: ValType, s: &str) -> Result<Val> {
    Ok(match ty {
        // Accept both signed and unsigned spellings of the bit pattern.
        ValType::I32 => Val::I32(parse_int::<i32>(s).or_else(|_| parse_int::<u32>(s).map(|v| v as i32))?),
        ValType::I64 => Val::I64(parse_int::<i64>(s).or_else(|_| parse_int::<u64>(s).map(|v| v as i64))?),
        ValType::F32 => Val::F32(s.parse::<f32>()?.to_bits()),
        ValType::F64 => Val::F64(s.parse::<f64>()?.to_bits()),
        ValType::V128 => Val::V128(kiln::V128::from(parse_int::<u128>(s)?)),
        ValType::FuncRef | ValType::ExternRef | ValType::ExnRef | ValType::AnyRef => {
            if s == "null" {
                Val::default_for(ty)
            } else {
                bail!("only `null` can be passed for reference parameters")
            }
        }
    })
}

fn format_val(v: &Val) -> String {
    match v {
        Val::I32(x) => x.to_string(),
        Val::I64(x) => x.to_string(),
        Val::F32(b) => f32::from_bits(*b).to_string(),
        Val::F64(b) => f64::from_bits(*b).to_string(),
        Val::V128(x) => format!("{:#034x}", x.as_u128()),
        Val::FuncRef(None) | Val::ExternRef(None) | Val::ExnRef(None) | Val::AnyRef(None) => "null".to_string(),
        Val::AnyRef(Some(_)) => "<anyref>".to_string(),
        Val::ExnRef(Some(_)) => "<exnref>".to_string(),
        Val::FuncRef(Some(_)) => "<funcref>".to_string(),
        Val::ExternRef(Some(_)) => "<externref>".to_string(),
    }
}
