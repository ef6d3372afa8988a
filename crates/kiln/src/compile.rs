//! The compilation pipeline: module cache lookup, function-level cache,
//! parallel compilation, linking, and the artifact round trip.

use crate::cache::{Cache, CacheEntry, CacheKind};
use crate::compile_observer::{CompileObserver, CompilePhase, FunctionOutcome, FunctionReport};
use crate::engine::Engine;
use crate::fast_hash::FastHashMap;
use crate::function_cache;
use crate::seal::{EntrySeal, MacKeys, module_key};
use crate::vm::code_memory::{MappedFile, ModuleCode};
use crate::vm::module_runtime::ModuleRuntime;
use anyhow::{Context, Result, anyhow};
use kiln_environ::wasmparser::FuncValidatorAllocations;
use kiln_environ::*;
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Times phases for an observer; does nothing (reads no clock) without one.
struct PhaseClock<'a> {
    observer: Option<&'a dyn CompileObserver>,
    start: Option<Instant>,
}

impl<'a> PhaseClock<'a> {
    fn start(observer: Option<&'a dyn CompileObserver>) -> Self {
        PhaseClock { observer, start: observer.map(|_| Instant::now()) }
    }

    /// Reports `phase` as ended now, and starts timing the next one.
    fn done(&mut self, phase: CompilePhase) {
        if let (Some(o), Some(start)) = (self.observer, self.start) {
            let now = Instant::now();
            o.phase_done(phase, now - start);
            self.start = Some(now);
        }
    }
}

/// Compiles `wasm`, consulting and filling the engine's cache if it has
/// one, and reporting to `observer`, if given.
pub(crate) fn compile_module(
    engine: &Engine,
    wasm: &[u8],
    observer: Option<&dyn CompileObserver>,
) -> Result<Arc<ModuleRuntime>> {
    let lazy = engine.config().compile_strategy == crate::CompileStrategy::Lazy && crate::lazy::SUPPORTED;
    let Some(cache) = engine.config().cache.clone() else {
        if lazy {
            return crate::lazy::compile_lazy(engine, wasm, None);
        }
        return Ok(compile_uncached(engine, wasm, None, observer)?.0);
    };
    let mut clock = PhaseClock::start(observer);
    let mac_keys = cache.mac_key().map(|k| MacKeys::derive(&k));
    let key = module_key(mac_keys.as_ref(), &engine.inner.salt, wasm);
    let seal = EntrySeal::new(mac_keys.as_ref(), CacheKind::Module, &key);
    if let Some(entry) = cache.get(CacheKind::Module, &key) {
        match load_entry(engine, entry, &seal, Some(wasm)) {
            Ok(None) => {}
            Ok(Some((rt, saved))) => {
                cache.record(saved, false);
                clock.done(CompilePhase::CacheLookup);
                if let Some(o) = observer {
                    o.loaded_from_cache();
                }
                return Ok(rt);
            }
            Err(_) => {
                cache.remove(CacheKind::Module, &key);
                cache.record(Duration::ZERO, true);
            }
        }
    }
    clock.done(CompilePhase::CacheLookup);
    if lazy {
        return crate::lazy::compile_lazy(engine, wasm, Some((&*cache, mac_keys.as_ref())));
    }
    let start = Instant::now();
    let (rt, text) = compile_uncached(engine, wasm, Some((&*cache, mac_keys.as_ref())), observer)?;
    let header = engine.artifact_header(start.elapsed());
    let mut clock = PhaseClock::start(observer);
    cache.put(CacheKind::Module, &key, serialize_artifact_in_place(&header, &rt.info, text, &seal));
    clock.done(CompilePhase::CacheStore);
    Ok(rt)
}

/// The text and metadata of `rt` as a complete artifact would hold them:
/// `rt`'s own, or for a lazily compiled module, those of the whole module
/// compiled now.
pub(crate) fn complete_text(engine: &Engine, rt: &Arc<ModuleRuntime>) -> Result<(Arc<CompiledModuleInfo>, Vec<u8>)> {
    match rt.code.lazy() {
        Some(lazy) => {
            let (whole, text) = compile_uncached(engine, lazy.wasm(), None, None)?;
            Ok((whole.info.clone(), text))
        }
        None => Ok((rt.info.clone(), rt.code.text().to_vec())),
    }
}

/// Loads a module cache entry sealed with `seal`, the artifact of the
/// module `wasm`. `None` for a lazy artifact (one lacking functions) when
/// the engine compiles eagerly: a miss, to be replaced by a complete one.
fn load_entry(
    engine: &Engine,
    entry: CacheEntry,
    seal: &dyn Sealer,
    wasm: Option<&[u8]>,
) -> Result<Option<(Arc<ModuleRuntime>, Duration)>> {
    let lazy_ok = engine.config().compile_strategy == crate::CompileStrategy::Lazy && crate::lazy::SUPPORTED;
    let wasm = wasm.filter(|_| lazy_ok);
    match entry {
        CacheEntry::Bytes(b) => load_artifact_bytes(engine, &b, seal, wasm),
        CacheEntry::File(file) => {
            let (mapped, parsed) = parse_artifact_file(engine, &file, seal)?;
            if parsed.info.lazy {
                let Some(wasm) = wasm else { return Ok(None) };
                let took = Duration::from_nanos(parsed.header.compile_time_ns);
                let info = Arc::new(parsed.info);
                return Ok(Some((crate::lazy::load_lazy(engine, wasm, info, &mapped.bytes()[parsed.text])?, took)));
            }
            Ok(Some(map_parsed_file(engine, mapped, parsed)?))
        }
    }
}

/// Loads an artifact held in memory (as [`load_entry`]).
fn load_artifact_bytes(
    engine: &Engine,
    bytes: &[u8],
    seal: &dyn Sealer,
    wasm: Option<&[u8]>,
) -> Result<Option<(Arc<ModuleRuntime>, Duration)>> {
    let parsed = parse_artifact(bytes, &engine.artifact_header(Duration::ZERO), seal)?;
    let took = Duration::from_nanos(parsed.header.compile_time_ns);
    let info = Arc::new(parsed.info);
    if info.lazy {
        let Some(wasm) = wasm else { return Ok(None) };
        return Ok(Some((crate::lazy::load_lazy(engine, wasm, info, &bytes[parsed.text])?, took)));
    }
    let code = ModuleCode::new(&bytes[parsed.text], info.clone(), true).context("failed to map compiled code")?;
    Ok(Some((runtime(engine, info, code), took)))
}

/// An error for a lazy artifact where a complete one is needed.
fn incomplete() -> anyhow::Error {
    anyhow!("this artifact lacks functions (a lazily compiled module's, from a cache): it cannot be loaded by itself")
}

/// Loads an artifact held in memory (the text is copied into fresh code
/// memory) whose tag verifies with `seal`.
pub(crate) fn from_artifact_bytes(
    engine: &Engine,
    bytes: &[u8],
    seal: &dyn Sealer,
) -> Result<(Arc<ModuleRuntime>, Duration)> {
    load_artifact_bytes(engine, bytes, seal, None)?.ok_or_else(incomplete)
}

/// Loads an artifact file whose tag verifies with `seal`, mapping its text
/// in place.
pub(crate) fn from_artifact_file(
    engine: &Engine,
    file: &std::fs::File,
    seal: &dyn Sealer,
) -> Result<(Arc<ModuleRuntime>, Duration)> {
    let (mapped, parsed) = parse_artifact_file(engine, file, seal)?;
    if parsed.info.lazy {
        return Err(incomplete());
    }
    map_parsed_file(engine, mapped, parsed)
}

/// Maps `file` and parses the artifact in it, checking its tag with `seal`.
fn parse_artifact_file(
    engine: &Engine,
    file: &std::fs::File,
    seal: &dyn Sealer,
) -> Result<(Arc<MappedFile>, ParsedArtifact)> {
    let mapped = Arc::new(MappedFile::new(file).context("failed to map the file")?);
    // Large tables are read in place from the mapping, not copied.
    let parsed =
        with_source(mapped.clone(), || parse_artifact(mapped.bytes(), &engine.artifact_header(Duration::ZERO), seal))?;
    Ok((mapped, parsed))
}

/// Runs the code of a parsed complete artifact in place in its file.
fn map_parsed_file(
    engine: &Engine,
    mapped: Arc<MappedFile>,
    parsed: ParsedArtifact,
) -> Result<(Arc<ModuleRuntime>, Duration)> {
    let info = Arc::new(parsed.info);
    let code =
        ModuleCode::from_mapped_file(mapped, parsed.text, info.clone()).context("failed to map compiled code")?;
    Ok((runtime(engine, info, code), Duration::from_nanos(parsed.header.compile_time_ns)))
}

/// What the runtime keeps of a module whose code is mapped.
pub(crate) fn runtime(engine: &Engine, info: Arc<CompiledModuleInfo>, code: Box<ModuleCode>) -> Arc<ModuleRuntime> {
    if engine.config().profiling == crate::ProfilingStrategy::PerfMap {
        crate::profiling::register_perf_map(&info, code.text_start());
    }
    let offsets = VMOffsets::new(&info.module);
    // Group by group, in order: a type refers only to earlier groups and
    // its own (checked when translating and when loading an artifact).
    let mut type_ids: Vec<u32> = Vec::with_capacity(info.module.types.len());
    for group in info.module.rec_groups() {
        let key: Vec<kiln_environ::WasmSubType> = info.module.types[group.clone()]
            .iter()
            .map(|t| {
                t.map_heap(|h| match (h.concrete_index(), h.concrete_kind()) {
                    (Some(i), Some(kind)) => match i.index().checked_sub(group.start) {
                        Some(local) => kiln_environ::WasmHeapType::RecLocal(local as u32),
                        None => kiln_environ::WasmHeapType::engine(kind, type_ids[i.index()]),
                    },
                    _ => h,
                })
            })
            .collect();
        let first = engine.inner.types.register_group(&key);
        type_ids.extend((0..group.len() as u32).map(|k| first + k));
    }
    let type_ids = type_ids.into_boxed_slice();
    Arc::new(ModuleRuntime {
        info,
        code,
        offsets,
        type_ids,
        tunables: engine.tunables().clone(),
        images: Default::default(),
    })
}

/// How one defined function of a module was obtained.
enum Obtained<'p> {
    /// From a function pack (checked); its body is validated later.
    Cached(function_cache::Hit<'p>),
    /// Not in the cache (with its key, if the module is compiled through
    /// a cache): to compile, or to share the code of a body it repeats.
    Pending(Option<CacheKey>),
    /// Compiled now (its body validated on the way), encoded, in this
    /// long; with its key and source if the module is compiled through a
    /// cache.
    Compiled { code: Vec<u8>, took: Duration, key: Option<CacheKey>, source: Option<Vec<u8>> },
    /// It repeats the body of defined function `.0`, compiled now: that
    /// one's code is used; its body is validated later.
    Duplicate(usize),
}

/// The code of a function obtained (not a duplicate).
fn code_of<'a>(o: &'a Obtained<'a>) -> Result<FunctionCode<'a>> {
    match o {
        Obtained::Cached(hit) => Ok(hit.code),
        Obtained::Compiled { code, .. } => {
            FunctionCode::parse(code).ok_or_else(|| anyhow!("internal: a compiled function encodes inconsistently"))
        }
        Obtained::Pending(_) | Obtained::Duplicate(_) => {
            Err(anyhow!("internal: a function was neither found nor compiled"))
        }
    }
}

/// Translates, compiles (through the function cache, if given) and links
/// `wasm`, then maps the code, reporting to `observer`. Returns the
/// runtime module and its text.
fn compile_uncached(
    engine: &Engine,
    wasm: &[u8],
    cache: Option<(&dyn Cache, Option<&MacKeys>)>,
    observer: Option<&dyn CompileObserver>,
) -> Result<(Arc<ModuleRuntime>, Vec<u8>)> {
    let (cache, mac_keys) = match cache {
        Some((c, k)) => (Some(c), k),
        None => (None, None),
    };
    let mut clock = PhaseClock::start(observer);
    let translation = translate_module(wasm, engine.config().features)?;
    clock.done(CompilePhase::Parse);
    if let Some(o) = observer {
        o.functions_started(translation.bodies.len());
    }
    let bodies = translation.bodies;
    let info = translation.info;
    let offsets = VMOffsets::new(&info);
    let compiler = &engine.inner.compiler;
    // The module index of the `i`th defined function.
    let func_of = |i: usize| info.func_index(DefinedFuncIndex::from_u32(i as u32));
    let parallel = engine.config().parallel_compilation;
    let body_offsets: Vec<u32> = bodies.iter().map(|b| b.body.range().start as u32).collect();
    let body_bytes = |b: &FunctionBodyInput<'_>| {
        let r = b.body.range();
        wasm.get(r.start as usize..r.end as usize)
    };

    // The packs of this module's environment: a lookup and a tag check each.
    let pack_source = cache.map(|c| function_cache::PackSource::lookup(c, &engine.inner.salt, &info, &offsets));
    let function_keys = pack_source.as_ref().map(function_cache::PackSource::keys);
    let packs = cache.zip(pack_source.as_ref()).map(|(c, p)| p.open(c, mac_keys));

    // Every body found in the packs (its body is validated below), or its key.
    let report = |func: FuncIndex, outcome: FunctionOutcome, times: FunctionCompileTimes| {
        if let Some(o) = observer {
            let name = info.func_name(func);
            o.function_done(&FunctionReport {
                index: func.as_u32(),
                name,
                outcome,
                translate: times.translate,
                codegen: times.codegen,
            });
        }
    };
    let find = |(i, input): (usize, &FunctionBodyInput<'_>)| -> Obtained<'_> {
        let (Some(packs), Some(body)) = (&packs, body_bytes(input)) else { return Obtained::Pending(None) };
        match packs.find(i, func_of(i), body) {
            Ok(hit) => {
                report(func_of(i), FunctionOutcome::Cached, FunctionCompileTimes::default());
                Obtained::Cached(hit)
            }
            Err(key) => Obtained::Pending(key),
        }
    };
    let mut obtained: Vec<Obtained<'_>> = if parallel {
        bodies.par_iter().enumerate().map(find).collect()
    } else {
        bodies.iter().enumerate().map(find).collect()
    };

    // The others: each distinct body compiled once; one that repeats an
    // earlier body shares its code.
    let mut first_with_key: FastHashMap<CacheKey, usize> = FastHashMap::default();
    let mut jobs: Vec<(usize, Option<CacheKey>)> = Vec::new();
    for (i, o) in obtained.iter_mut().enumerate() {
        let Obtained::Pending(key) = *o else { continue };
        match key.map(|k| *first_with_key.entry(k).or_insert(i)) {
            Some(j) if j != i => {
                report(func_of(i), FunctionOutcome::Duplicate, FunctionCompileTimes::default());
                *o = Obtained::Duplicate(j);
            }
            _ => jobs.push((i, key)),
        }
    }
    drop(first_with_key);
    let compile = |(i, key): (usize, Option<CacheKey>)| -> WasmResult<(usize, Obtained<'_>)> {
        let (func, input) = (func_of(i), &bodies[i]);
        let source = function_keys.and_then(|k| k.source(func, body_bytes(input)?));
        let start = Instant::now();
        let f = match observer {
            Some(_) => {
                let (f, times) = compiler.compile_function_timed(&info, &offsets, func, input.clone())?;
                report(func, FunctionOutcome::Compiled, times);
                f
            }
            None => compiler.compile_function(&info, &offsets, func, input.clone())?,
        };
        Ok((i, Obtained::Compiled { code: f.encode(), took: start.elapsed(), key, source }))
    };
    let compiled: Vec<(usize, Obtained<'_>)> = if parallel {
        jobs.into_par_iter().map(compile).collect::<Result<_, _>>()?
    } else {
        jobs.into_iter().map(compile).collect::<Result<_, _>>()?
    };
    for (i, o) in compiled {
        obtained[i] = o;
    }
    let funcs: Vec<FunctionCode<'_>> = obtained
        .iter()
        .map(|o| match o {
            Obtained::Duplicate(j) => {
                obtained.get(*j).map_or_else(|| Err(anyhow!("internal: a duplicate of nothing")), code_of)
            }
            o => code_of(o),
        })
        .collect::<Result<_>>()?;
    clock.done(CompilePhase::Functions);

    // The bodies not compiled (found, or repeating another) still have to
    // be validated: on the other cores while this one stores the packs,
    // links and maps the code (which is thrown away if one is invalid).
    let not_compiled = |i: &usize| !matches!(obtained[*i], Obtained::Compiled { .. });
    let validate = || -> WasmResult<()> {
        if parallel {
            (0..bodies.len())
                .into_par_iter()
                .filter(not_compiled)
                .try_for_each_init(FuncValidatorAllocations::default, |a, i| validate_function_body(&bodies[i], a))
        } else {
            let mut a = FuncValidatorAllocations::default();
            (0..bodies.len()).filter(not_compiled).try_for_each(|i| validate_function_body(&bodies[i], &mut a))
        }
    };
    let build = || -> Result<(Arc<ModuleRuntime>, Vec<u8>)> {
        if let (Some(cache), Some(packs)) = (cache, &packs) {
            record_and_store(cache, packs, &obtained);
        }
        link_and_map(engine, info, &funcs, &body_offsets)
    };
    let (validated, built) = if parallel { rayon::join(validate, build) } else { (validate(), build()) };
    validated?;
    let built = built?;
    clock.done(CompilePhase::Link);
    Ok(built)
}

/// Tells `cache` what was found and compiled, and writes new packs if
/// anything was compiled.
fn record_and_store(cache: &dyn Cache, packs: &function_cache::Packs<'_>, obtained: &[Obtained<'_>]) {
    let (mut hits, mut misses, mut saved) = (0u64, 0u64, Duration::ZERO);
    for o in obtained {
        match o {
            Obtained::Cached(hit) => {
                hits += 1;
                saved += packs.function(hit).map_or(Duration::ZERO, |f| f.compile_time);
            }
            Obtained::Compiled { .. } => misses += 1,
            _ => {}
        }
    }
    cache.record(saved, false);
    cache.record_functions(hits, misses);
    if misses > 0 {
        packs.store(&|visit| {
            for o in obtained {
                match o {
                    Obtained::Cached(hit) => visit(function_cache::PackInput::Found(*hit)),
                    // A body whose key or source is unknown is invalid and
                    // has failed to compile: never here.
                    Obtained::Compiled { code, took, key: Some(key), source: Some(source) } => {
                        visit(function_cache::PackInput::Compiled { key: *key, compile_time: *took, source, code })
                    }
                    _ => {}
                }
            }
        });
    }
}

/// Encoded entry trampolines, and for each module type that needs one,
/// the index of its trampoline among them.
pub(crate) type EntryTrampolines = (Vec<Vec<u8>>, Vec<(TypeIndex, usize)>);

/// The entry trampolines a module needs: one per distinct signature of a
/// function the host can call.
pub(crate) fn entry_trampolines(engine: &Engine, info: &ModuleInfo) -> Result<EntryTrampolines> {
    let mut needed: Vec<TypeIndex> = info
        .defined_escaping_funcs()
        .iter()
        .chain(info.start.iter().filter(|f| !info.is_imported_func(**f)))
        .map(|f| info.func_type_index(*f))
        .collect();
    needed.sort_unstable();
    needed.dedup();
    let mut unique: Vec<&FuncType> = Vec::new();
    let mut slot_of: HashMap<&FuncType, usize> = HashMap::new();
    let mut type_slots = Vec::new();
    for t in &needed {
        let ft = info.func_type_at(*t);
        let slot = *slot_of.entry(ft).or_insert_with(|| {
            unique.push(ft);
            unique.len() - 1
        });
        type_slots.push((*t, slot));
    }
    let compiler = &engine.inner.compiler;
    let trampolines = unique
        .par_iter()
        .map(|ft| Ok(compiler.compile_array_to_wasm_trampoline(ft)?.encode()))
        .collect::<Result<Vec<_>, WasmError>>()?;
    Ok((trampolines, type_slots))
}

/// Reads encoded trampolines in place.
pub(crate) fn parse_trampolines(encoded: &[Vec<u8>]) -> Result<Vec<FunctionCode<'_>>> {
    encoded
        .iter()
        .map(|t| FunctionCode::parse(t).ok_or_else(|| anyhow!("internal: a trampoline encodes inconsistently")))
        .collect()
}

/// Compiles the entry trampolines of `info`, links them and `funcs` into
/// one text, and maps it. Returns the runtime module and its text.
fn link_and_map(
    engine: &Engine,
    info: ModuleInfo,
    funcs: &[FunctionCode<'_>],
    body_offsets: &[u32],
) -> Result<(Arc<ModuleRuntime>, Vec<u8>)> {
    let (info, text) = link_complete(engine, info, funcs, body_offsets)?;
    let info = Arc::new(info);
    let code = ModuleCode::new(&text, info.clone(), true).context("failed to map compiled code")?;
    Ok((runtime(engine, info, code), text))
}

/// Compiles the entry trampolines of `info` and links them and `funcs`
/// (every defined function, in order) into one text.
pub(crate) fn link_complete(
    engine: &Engine,
    info: ModuleInfo,
    funcs: &[FunctionCode<'_>],
    body_offsets: &[u32],
) -> Result<(CompiledModuleInfo, Vec<u8>)> {
    let (trampolines, type_slots) = entry_trampolines(engine, &info)?;
    let trampolines = parse_trampolines(&trampolines)?;
    let linked = link(&info, funcs, body_offsets, &trampolines)?;
    let array_to_wasm_trampolines = type_slots.into_iter().map(|(t, s)| (t, linked.trampolines[s])).collect();
    let info = CompiledModuleInfo {
        module: info,
        funcs: linked.funcs,
        array_to_wasm_trampolines,
        traps: linked.traps,
        address_map: linked.address_map,
        exn_table: linked.exn_table,
        stack_maps: linked.stack_maps,
        lazy: false,
    };
    Ok((info, linked.text))
}

#[cfg(test)]
mod stack_map_tests {
    use crate::{Config, Engine, Module, WasmFeature};

    pub(super) fn engine(gc: bool) -> Engine {
        let mut config = Config::new();
        config.wasm_feature_set(WasmFeature::Gc, gc);
        Engine::new(&config).expect("engine")
    }

    #[test]
    fn gc_references_live_across_calls_get_stack_maps() {
        let wat = r#"(module
            (type $s (struct (field i32)))
            (func $g)
            ;; $a and the new struct are live across both calls.
            (func (export "f") (param $a (ref null $s)) (result i32)
              (local $b (ref null $s))
              (local.set $b (struct.new $s (i32.const 1)))
              (call $g)
              (call $g)
              (i32.add (struct.get $s 0 (local.get $a)) (struct.get $s 0 (local.get $b)))))"#;
        let m = Module::new(&engine(true), wat).expect("compiles");
        let info = &m.runtime().info;
        assert!(info.stack_maps.len() >= 2, "a stack map per call: {:?}", info.stack_maps);
        // The allocation's slow-path call has $a live; the two calls of $g
        // have $a and $b.
        let text = m.runtime().code.text();
        let counts: Vec<usize> =
            (0..text.len() as u32).filter_map(|ret| info.stack_maps.lookup(ret)).map(|(_, s)| s.len()).collect();
        assert_eq!(counts.iter().filter(|n| **n == 2).count(), 2, "{counts:?}");
        assert!(counts.iter().all(|n| (1..=2).contains(n)), "{counts:?}");
    }

    #[test]
    fn code_without_gc_references_is_the_same_with_gc_on() {
        let wat = r#"(module
            (func $g (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
            (func (export "f") (param funcref i32) (result i32) (call $g (call $g (local.get 1)))))"#;
        let on = Module::new(&engine(true), wat).expect("compiles");
        let off = Module::new(&engine(false), wat).expect("compiles");
        assert!(on.runtime().info.stack_maps.is_empty());
        assert_eq!(on.runtime().code.text(), off.runtime().code.text());
    }
}

/// The frame walk (`vm/gc_roots.rs`) over the stack maps.
#[cfg(test)]
mod frame_root_tests {
    use super::stack_map_tests::engine;
    use crate::{AsContext, Caller, Func, Instance, Module, Store, Val};
    use std::sync::{Arc, Mutex};

    /// A host function called from wasm holding GC references in two
    /// frames sees exactly those references through the stack maps.
    #[test]
    fn the_frame_walk_finds_exactly_the_live_references() {
        let engine = engine(true);
        let module = Module::new(
            &engine,
            r#"(module
                 (type $s (struct (field i32)))
                 (import "host" "look" (func $look))
                 (func $inner (param $x (ref $s)) (result i32)
                   (call $look)
                   (struct.get $s 0 (local.get $x)))
                 (func (export "outer") (result i32)
                   (local $a (ref null $s)) (local $b (ref null $s))
                   (local.set $a (struct.new $s (i32.const 1)))
                   (local.set $b (struct.new $s (i32.const 2)))
                   (i32.add
                     (call $inner (struct.new $s (i32.const 3)))
                     (i32.add (struct.get $s 0 (local.get $a)) (struct.get $s 0 (local.get $b))))))"#,
        )
        .expect("module");
        let seen: Arc<Mutex<Vec<Vec<u64>>>> = Default::default();
        let mut store = Store::new(&engine, ());
        let record = seen.clone();
        let look = Func::wrap(&mut store, move |caller: Caller<'_, ()>| {
            record.lock().expect("lock").push(caller.store.opaque.vm().gc_frame_roots());
        });
        let i = Instance::new(&mut store, &module, &[look.into()]).expect("instance");
        let mut out = [Val::I32(0)];
        i.get_func(&mut store, "outer").expect("outer").call(&mut store, &[], &mut out).expect("runs");
        assert_eq!(out[0].i32(), Some(6));
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 1);
        let roots = &seen[0];
        // $inner holds $x; $outer holds $a and $b (the argument went to
        // $inner). All three are distinct objects.
        assert_eq!(roots.len(), 3, "{roots:x?}");
        let mut distinct = roots.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "{roots:x?}");
        assert!(roots.iter().all(|r| store.as_context().0.opaque.vm().gc_header(*r).is_some()), "{roots:x?}");
        // Outside wasm there are none.
        assert!(store.as_context().0.opaque.vm().gc_frame_roots().is_empty());
    }
}

#[cfg(test)]
mod nested_frame_root_tests {
    use super::stack_map_tests::engine;
    use crate::{AsContextMut, Caller, Extern, Func, Instance, Module, Store, Val};
    use std::sync::{Arc, Mutex};

    /// wasm ($outer, holding 2 references) calls the host, which calls
    /// wasm again ($deep, holding 1) which calls the host that looks: the
    /// walk covers both activations.
    #[test]
    fn the_frame_walk_crosses_nested_activations() {
        let engine = engine(true);
        let module = Module::new(
            &engine,
            r#"(module
                 (type $s (struct (field i32)))
                 (import "host" "reenter" (func $reenter))
                 (import "host" "look" (func $look))
                 (func (export "deep") (result i32)
                   (local $c (ref null $s))
                   (local.set $c (struct.new $s (i32.const 3)))
                   (call $look)
                   (struct.get $s 0 (local.get $c)))
                 (func (export "outer") (result i32)
                   (local $a (ref null $s)) (local $b (ref null $s))
                   (local.set $a (struct.new $s (i32.const 1)))
                   (local.set $b (struct.new $s (i32.const 2)))
                   (call $reenter)
                   (i32.add (struct.get $s 0 (local.get $a)) (struct.get $s 0 (local.get $b)))))"#,
        )
        .expect("module");
        let seen: Arc<Mutex<Vec<u64>>> = Default::default();
        let mut store = Store::new(&engine, ());
        let record = seen.clone();
        let look = Func::wrap(&mut store, move |caller: Caller<'_, ()>| {
            *record.lock().expect("lock") = caller.store.opaque.vm().gc_frame_roots();
        });
        let reenter = Func::wrap(&mut store, |mut caller: Caller<'_, ()>| {
            let Some(Extern::Func(deep)) = caller.get_export("deep") else { panic!("deep") };
            let mut out = [Val::I32(0)];
            deep.call(caller.as_context_mut(), &[], &mut out).expect("deep runs");
        });
        let i = Instance::new(&mut store, &module, &[reenter.into(), look.into()]).expect("instance");
        let mut out = [Val::I32(0)];
        i.get_func(&mut store, "outer").expect("outer").call(&mut store, &[], &mut out).expect("runs");
        assert_eq!(out[0].i32(), Some(3));
        let roots = seen.lock().expect("lock").clone();
        assert_eq!(roots.len(), 3, "$c in the inner activation, $a and $b in the outer: {roots:x?}");
    }
}
