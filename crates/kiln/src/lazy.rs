//! Lazy compilation ([`CompileStrategy::Lazy`](crate::CompileStrategy)):
//! creating a module validates every function and compiles only what the
//! function cache does not already hold; the rest is compiled at its first
//! call (`vm/lazy_code.rs` has the stubs, the installation and the
//! compile-once state) or ahead of it by the background compiler below.
//!
//! When the module is dropped, what was compiled goes into the function
//! cache, and the module cache gets an artifact of everything compiled so
//! far: a *lazy* artifact (stubs for what is missing) or, once every
//! function is compiled, an ordinary complete one. The next run loads it
//! like any artifact and compiles only what is still missing.

use crate::cache::{Cache, CacheKind};
use crate::codegen::FirstCall;
use crate::compile::{entry_trampolines, parse_trampolines, runtime};
use crate::engine::Engine;
use crate::function_cache;
use crate::seal::{EntrySeal, MacKeys, module_key};
use crate::vm::code_memory::ModuleCode;
use crate::vm::lazy_code::{Background, LazyCode, LazyCompiler, Tier};
use crate::vm::module_runtime::ModuleRuntime;
use anyhow::{Context, Result, anyhow};
use kiln_baseline::RegisterLocals;
use kiln_environ::wasmparser::{
    BinaryReader, FuncToValidate, FuncValidatorAllocations, FunctionBody, ValidatorResources, WasmFeatures,
};
use kiln_environ::*;
use rayon::prelude::*;
use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Whether lazy compilation is implemented for this target.
pub(crate) const SUPPORTED: bool = cfg!(target_arch = "x86_64");

/// Compiles `wasm` lazily: validates it whole, links the functions found
/// in the function cache (`cache`, if the engine has one) with a stub for
/// every other one, and returns the module; the others are compiled on
/// demand.
pub(crate) fn compile_lazy(
    engine: &Engine,
    wasm: &[u8],
    cache: Option<(&dyn Cache, Option<&MacKeys>)>,
) -> Result<Arc<ModuleRuntime>> {
    let features = engine.config().features;
    let translation = translate_module(wasm, features)?;
    let bodies = translation.bodies;
    let info = translation.info;
    let offsets = VMOffsets::new(&info);
    let n = bodies.len();
    let func_of = |i: usize| info.func_index(DefinedFuncIndex::from_u32(i as u32));
    let ranges = body_ranges(&bodies);
    let body_bytes = |i: usize| wasm.get(ranges[i].clone());

    // Validation stays eager (the spec wants errors at compile time).
    // When first calls use the baseline compiler, validation also counts
    // each body's local uses and chooses the locals its baseline code
    // keeps in registers, so that a first call reads the body once, not
    // twice (bench/LAZY.md, eleventh session).
    let mut register_locals = Vec::new();
    if engine.inner.compiler.baseline_first_calls() {
        let choose = |(a, u): &mut (FuncValidatorAllocations, LocalUses), b: &FunctionBodyInput<'_>| {
            validate_function_body_counting(b, a, u).map(|()| Some(RegisterLocals::choose(u)))
        };
        let init = || (FuncValidatorAllocations::default(), LocalUses::default());
        register_locals = if engine.config().parallel_compilation {
            bodies.par_iter().map_init(init, choose).collect::<WasmResult<Vec<_>>>()?
        } else {
            let mut state = init();
            bodies.iter().map(|b| choose(&mut state, b)).collect::<WasmResult<Vec<_>>>()?
        };
    } else if engine.config().parallel_compilation {
        bodies.par_iter().try_for_each_init(FuncValidatorAllocations::default, |a, b| validate_function_body(b, a))?;
    } else {
        let mut a = FuncValidatorAllocations::default();
        bodies.iter().try_for_each(|b| validate_function_body(b, &mut a))?;
    }

    // What the function cache has is linked now.
    let (cache, mac_keys) = match cache {
        Some((c, k)) => (Some(c), k),
        None => (None, None),
    };
    let pack_source = cache.map(|c| function_cache::PackSource::lookup(c, &engine.inner.salt, &info, &offsets));
    let packs = cache.zip(pack_source.as_ref()).map(|(c, p)| p.open(c, mac_keys));
    let found: Vec<Option<FunctionCode<'_>>> =
        (0..n).map(|i| packs.as_ref()?.find(i, func_of(i), body_bytes(i)?).ok().map(|hit| hit.code)).collect();
    if let Some(c) = cache {
        c.record_functions(found.iter().flatten().count() as u64, 0);
    }
    let body_offsets: Vec<u32> = ranges.iter().map(|r| r.start as u32).collect();
    let (info, text) = link_lazy(engine, info, &found, &body_offsets)?;
    let info = Arc::new(info);
    let validators = bodies
        .iter()
        .map(|b| {
            let v = &b.validator;
            FuncToValidate { resources: v.resources.clone(), index: v.index, ty: v.ty, features: v.features }
        })
        .collect();
    let compiler = ModuleCompiler::new(engine, wasm, info.clone(), false);
    compiler.bodies.get_or_init(|| Ok(Bodies { ranges, validators, register_locals }));
    map_lazy(engine, &text, info, compiler)
}

/// Loads a lazy artifact's `text` and `info` (from the module cache, for
/// the module `wasm`): the functions it lacks are compiled on demand.
pub(crate) fn load_lazy(
    engine: &Engine,
    wasm: &[u8],
    info: Arc<CompiledModuleInfo>,
    text: &[u8],
) -> Result<Arc<ModuleRuntime>> {
    let compiler = ModuleCompiler::new(engine, wasm, info.clone(), true);
    map_lazy(engine, text, info, compiler)
}

/// Maps a lazy text and starts the background compiler on it.
fn map_lazy(
    engine: &Engine,
    text: &[u8],
    info: Arc<CompiledModuleInfo>,
    compiler: ModuleCompiler,
) -> Result<Arc<ModuleRuntime>> {
    let missing = info.funcs.iter().filter(|l| l.length == 0).count();
    // Room for every function compiled later: a page each at least, and
    // generously more than the code it could become.
    let code_bytes = compiler.wasm.len();
    let area = (missing * 4096).saturating_add(code_bytes.saturating_mul(16)).saturating_add(16 << 20).min(1 << 30);
    // A module loaded from the cache starts its background compiler only
    // when a call needs a function the artifact lacks: a run that needs
    // nothing new (the usual warm start) then has the machine to itself.
    let background = match (engine.config().background_compilation && missing > 0, compiler.from_artifact) {
        (false, _) => Background::Off,
        (true, false) => Background::Now,
        (true, true) => Background::AtFirstMiss,
    };
    let lazy = LazyCode::new(text, area, info.clone(), Box::new(compiler), background)
        .context("failed to map compiled code")?;
    let lazy = Arc::new(lazy);
    lazy.start_background(false);
    let code = ModuleCode::new_lazy(lazy, info.clone());
    Ok(runtime(engine, info, code))
}

/// Links the functions of `info` that have code (`funcs[i]`, by defined
/// index) and the module's entry trampolines after a stub area (see
/// `kiln_environ::StubLayout`); a function without code gets a location
/// of length 0 where it would have been, and calls to it go to its stub.
fn link_lazy(
    engine: &Engine,
    info: ModuleInfo,
    funcs: &[Option<FunctionCode<'_>>],
    body_offsets: &[u32],
) -> Result<(CompiledModuleInfo, Vec<u8>)> {
    let n = u32::try_from(funcs.len()).map_err(|_| anyhow!("too many functions"))?;
    let stubs = StubLayout { stubs: 0, slots: 0, count: n };
    let (trampolines, type_slots) = entry_trampolines(engine, &info)?;
    let trampolines = parse_trampolines(&trampolines)?;
    let mut position = Vec::with_capacity(funcs.len());
    let mut placed = Vec::new();
    for (i, f) in funcs.iter().enumerate() {
        position.push(f.map(|_| placed.len()));
        if let Some(f) = f {
            placed.push((DefinedFuncIndex::from_u32(i as u32), *f, body_offsets.get(i).copied().unwrap_or(0)));
        }
    }
    let target = |g: DefinedFuncIndex, locs: &[FunctionLoc]| match position.get(g.index())? {
        Some(k) => locs.get(*k).map(|l| l.start),
        None => Some(stubs.stub(g.as_u32())),
    };
    let stubs_len = n * STUB_SIZE;
    let linked = link_placed(&info, &placed, &trampolines, stubs_len, &target)?;
    let mut text = vec![0xcc_u8; stubs_len as usize];
    text.extend_from_slice(&linked.text);
    // A function without code sits, with no bytes, where it would have
    // been: the table stays sorted.
    let mut locs = Vec::with_capacity(funcs.len());
    let mut end = stubs_len;
    for k in &position {
        match k {
            Some(k) => {
                let loc = linked.funcs[*k];
                end = loc.start + loc.length;
                locs.push(loc);
            }
            None => locs.push(FunctionLoc { start: end, length: 0 }),
        }
    }
    let array_to_wasm_trampolines = type_slots.into_iter().map(|(t, s)| (t, linked.trampolines[s])).collect();
    let info = CompiledModuleInfo {
        module: info,
        funcs: locs,
        array_to_wasm_trampolines,
        traps: linked.traps,
        address_map: linked.address_map,
        exn_table: linked.exn_table,
        stack_maps: linked.stack_maps,
        lazy: true,
    };
    Ok((info, text))
}

/// Where each body lies in the module's bytes.
fn body_ranges(bodies: &[FunctionBodyInput<'_>]) -> Vec<Range<usize>> {
    bodies.iter().map(|b| b.body.range()).map(|r| r.start as usize..r.end as usize).collect()
}

/// The function bodies of a module and their validators.
struct Bodies {
    ranges: Vec<Range<usize>>,
    validators: Vec<FuncToValidate<ValidatorResources>>,
    /// The locals each body's baseline code keeps in registers, chosen
    /// while validating the module (empty when it was not validated
    /// here, or first calls do not use the baseline compiler).
    register_locals: Vec<Option<RegisterLocals>>,
}

/// Compiles the functions of one module on demand; keeps what it compiled
/// for the caches.
struct ModuleCompiler {
    engine: Engine,
    wasm: Arc<[u8]>,
    features: WasmFeatures,
    info: Arc<CompiledModuleInfo>,
    offsets: VMOffsets,
    /// Read from the module on first use (a module loaded from a lazy
    /// artifact may never need them).
    bodies: OnceLock<Result<Bodies, String>>,
    /// Whether the module came from a module cache artifact (not to be
    /// written again unless something was compiled).
    from_artifact: bool,
    /// Whether every body was validated when the module was created in
    /// this process (`compile_lazy`), so that a first call gives a body to
    /// the baseline compiler, which does not validate, without validating
    /// it again. A module loaded from an artifact (`load_lazy`) was
    /// validated by the process that wrote the artifact, not by this one:
    /// its first calls validate each body first.
    validated: bool,
    /// Nanoseconds each function took to compile.
    times: Box<[AtomicU64]>,
    /// What was compiled: (defined index, encoded code, time taken).
    compiled: Mutex<Vec<(u32, Vec<u8>, Duration)>>,
    /// Whether a call had to compile something (the module cache's
    /// artifact lacked what the program needed).
    called_missing: std::sync::atomic::AtomicBool,
}

impl ModuleCompiler {
    fn new(engine: &Engine, wasm: &[u8], info: Arc<CompiledModuleInfo>, from_artifact: bool) -> ModuleCompiler {
        ModuleCompiler {
            engine: engine.clone(),
            wasm: Arc::from(wasm),
            features: engine.config().features,
            offsets: VMOffsets::new(&info.module),
            times: (0..info.funcs.len()).map(|_| AtomicU64::new(0)).collect(),
            info,
            bodies: OnceLock::new(),
            from_artifact,
            validated: !from_artifact,
            compiled: Mutex::new(Vec::new()),
            called_missing: Default::default(),
        }
    }

    fn bodies(&self) -> Result<&Bodies> {
        let bodies = self.bodies.get_or_init(|| {
            let t = translate_module(&self.wasm, self.features).map_err(|e| e.to_string())?;
            let ranges = body_ranges(&t.bodies);
            let validators = t.bodies.into_iter().map(|b| b.validator).collect();
            Ok(Bodies { ranges, validators, register_locals: Vec::new() })
        });
        bodies.as_ref().map_err(|e| anyhow!("{e}"))
    }

    /// The body of defined function `index` and its validator.
    fn input(&self, index: DefinedFuncIndex) -> Result<FunctionBodyInput<'_>> {
        let i = index.index();
        let bodies = self.bodies()?;
        let (range, v) =
            bodies.ranges.get(i).zip(bodies.validators.get(i)).ok_or_else(|| anyhow!("no such function"))?;
        let bytes = self.wasm.get(range.clone()).ok_or_else(|| anyhow!("body outside the module"))?;
        let body = FunctionBody::new(BinaryReader::new_features(bytes, range.start as u64, self.features));
        let validator =
            FuncToValidate { resources: v.resources.clone(), index: v.index, ty: v.ty, features: v.features };
        Ok(FunctionBodyInput { body, validator })
    }
}

impl LazyCompiler for ModuleCompiler {
    fn compile(&self, index: DefinedFuncIndex, tier: Tier, entry_counter: u64) -> Result<(Vec<u8>, Tier)> {
        if self.engine.config().fail_lazy_compilation {
            anyhow::bail!("compilation failed on purpose (a test)");
        }
        let i = index.index();
        let input = self.input(index)?;
        let func = self.info.module.func_index(index);
        let compiler = &self.engine.inner.compiler;
        if tier == Tier::Baseline
            && let Some(f) = compiler.compile_first_call(
                &self.info.module,
                &self.offsets,
                func,
                &input,
                FirstCall {
                    entry_counter,
                    validated: self.validated,
                    register_locals: self.bodies()?.register_locals.get(i).copied().flatten(),
                },
            )?
        {
            return Ok((f.encode(), Tier::Baseline));
        }
        let start = Instant::now();
        let f = compiler.compile_function(&self.info.module, &self.offsets, func, input)?;
        if let Some(t) = self.times.get(i) {
            t.store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        Ok((f.encode(), Tier::Optimized))
    }

    fn compile_osr(&self, index: DefinedFuncIndex) -> Result<Vec<u8>> {
        let input = self.input(index)?;
        let func = self.info.module.func_index(index);
        let f = self.engine.inner.compiler.compile_osr_entry(&self.info.module, &self.offsets, func, input)?;
        Ok(f.encode())
    }

    fn installed(&self, index: DefinedFuncIndex, encoded: Vec<u8>, tier: Tier, addr: usize, len: u32) {
        if !crate::vm::lazy_code::is_background_thread() {
            self.called_missing.store(true, Ordering::Relaxed);
        }
        if self.engine.config().profiling == crate::ProfilingStrategy::PerfMap {
            let kind = (tier == Tier::Baseline).then_some("baseline");
            crate::profiling::register_perf_map_function(&self.info.module, index, addr, len, kind);
        }
        // Baseline code is replaced soon and never cached.
        if self.engine.config().cache.is_some() && tier == Tier::Optimized {
            let took = Duration::from_nanos(self.times.get(index.index()).map_or(0, |t| t.load(Ordering::Relaxed)));
            self.compiled.lock().unwrap_or_else(|e| e.into_inner()).push((index.as_u32(), encoded, took));
        }
    }

    fn osr_installed(&self, index: DefinedFuncIndex, addr: usize, len: u32) {
        if self.engine.config().profiling == crate::ProfilingStrategy::PerfMap {
            crate::profiling::register_perf_map_function(&self.info.module, index, addr, len, Some("osr"));
        }
    }

    fn retired(&self, installed: &[bool]) {
        self.store_in_cache(installed);
    }

    fn wasm(&self) -> &[u8] {
        &self.wasm
    }

    fn body_offset(&self, index: DefinedFuncIndex) -> u32 {
        self.bodies().ok().and_then(|b| b.ranges.get(index.index())).map_or(0, |r| r.start as u32)
    }
}

impl ModuleCompiler {
    /// Writes what was compiled to the function cache, and an artifact of
    /// every function that has code (`installed`) to the module cache.
    fn store_in_cache(&self, installed: &[bool]) {
        let compiled = std::mem::take(&mut *self.compiled.lock().unwrap_or_else(|e| e.into_inner()));
        let Some(cache) = self.engine.config().cache.clone() else { return };
        // A module loaded from the module cache stores anything only if a
        // call needed a function its artifact lacked, or nothing is
        // missing now. What the background compiler added in a run that
        // needed nothing new is dropped: storing it would cost every such
        // run more than compiling it again costs the rare run that needs
        // it (and a run that completes the module stores it all).
        let complete = installed.iter().all(|has| *has);
        if self.from_artifact && !complete && !self.called_missing.load(Ordering::Relaxed) {
            return;
        }
        let Ok(bodies) = self.bodies() else { return };
        let info = &self.info.module;
        let mac_keys = cache.mac_key().map(|k| MacKeys::derive(&k));
        let pack_source = function_cache::PackSource::lookup(&*cache, &self.engine.inner.salt, info, &self.offsets);
        let function_keys = pack_source.keys();
        let packs = pack_source.open(&*cache, mac_keys.as_ref());
        let n = bodies.ranges.len();
        let body = |i: usize| bodies.ranges.get(i).and_then(|r| self.wasm.get(r.clone()));
        let func = |i: usize| info.func_index(DefinedFuncIndex::from_u32(i as u32));
        let mut own: Vec<Option<usize>> = vec![None; n];
        for (k, (i, _, _)) in compiled.iter().enumerate() {
            if let Some(slot) = own.get_mut(*i as usize) {
                *slot = Some(k);
            }
        }
        let sources: Vec<Option<Vec<u8>>> =
            compiled.iter().map(|(i, _, _)| function_keys.source(func(*i as usize), body(*i as usize)?)).collect();

        // The function cache: what was compiled now, with what it had.
        let mut seen: HashSet<CacheKey> = HashSet::new();
        let mut inputs: Vec<function_cache::PackInput<'_>> = Vec::new();
        let mut codes: Vec<Option<FunctionCode<'_>>> = vec![None; n];
        for (i, code) in codes.iter_mut().enumerate() {
            let Some(b) = body(i) else { continue };
            if let Some(k) = own[i] {
                let (_, encoded, took) = &compiled[k];
                *code = FunctionCode::parse(encoded);
                if let (Some(key), Some(source)) = (function_keys.key(func(i), b), sources[k].as_deref())
                    && seen.insert(key)
                {
                    inputs.push(function_cache::PackInput::Compiled {
                        key,
                        compile_time: *took,
                        source,
                        code: encoded,
                    });
                }
            } else if let Ok(hit) = packs.find(i, func(i), b) {
                *code = Some(hit.code);
                inputs.push(function_cache::PackInput::Found(hit));
            }
        }
        if !compiled.is_empty() {
            cache.record_functions(0, compiled.len() as u64);
            packs.store(&|visit| {
                for input in &inputs {
                    visit(*input);
                }
            });
        }

        // The module cache: every function that has code, if all of them
        // can be found (one loaded from an artifact is in the packs).
        let with_code: Vec<Option<FunctionCode<'_>>> =
            codes.iter().zip(installed).map(|(c, has)| c.filter(|_| *has)).collect();
        if with_code.iter().zip(installed).any(|(c, has)| *has && c.is_none()) {
            return;
        }
        let body_offsets: Vec<u32> = bodies.ranges.iter().map(|r| r.start as u32).collect();
        let linked = if with_code.iter().all(Option::is_some) {
            let all: Vec<FunctionCode<'_>> = with_code.iter().flatten().copied().collect();
            crate::compile::link_complete(&self.engine, info.clone(), &all, &body_offsets)
        } else {
            link_lazy(&self.engine, info.clone(), &with_code, &body_offsets)
        };
        let Ok((artifact_info, text)) = linked else { return };
        let key = module_key(mac_keys.as_ref(), &self.engine.inner.salt, &self.wasm);
        let seal = EntrySeal::new(mac_keys.as_ref(), CacheKind::Module, &key);
        let took = self.times.iter().map(|t| Duration::from_nanos(t.load(Ordering::Relaxed))).sum();
        let header = self.engine.artifact_header(took);
        cache.put(CacheKind::Module, &key, serialize_artifact_in_place(&header, &artifact_info, text, &seal));
    }
}
