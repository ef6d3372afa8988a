//! Lazy compilation ([`CompileStrategy::Lazy`](crate::CompileStrategy)):
//! creating a module validates every function and compiles only what the
//! function cache does not already hold; the rest is compiled at its first
//! call (`vm/lazy_code.rs` has the stubs, the installation and the
//! compile-once state) or ahead of it by the background compiler below.
//! What was compiled goes into the function-level cache when the module is
//! dropped, so the next run starts with it.

use crate::cache::Cache;
use crate::compile::{entry_trampolines, parse_trampolines, runtime};
use crate::engine::Engine;
use crate::function_cache;
use crate::seal::MacKeys;
use crate::vm::code_memory::ModuleCode;
use crate::vm::lazy_code::{LazyCode, LazyCompiler};
use crate::vm::mmap::round_up_to_page;
use crate::vm::module_runtime::ModuleRuntime;
use anyhow::{Context, Result, anyhow};
use kiln_environ::wasmparser::{
    BinaryReader, FuncToValidate, FuncValidatorAllocations, FunctionBody, ValidatorResources, WasmFeatures,
};
use kiln_environ::*;
use rayon::prelude::*;
use std::collections::{HashSet, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
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
    let ranges: Vec<Range<usize>> =
        bodies.iter().map(|b| b.body.range()).map(|r| r.start as usize..r.end as usize).collect();
    let body_bytes = |i: usize| wasm.get(ranges[i].clone());

    // Validation stays eager (the spec wants errors at compile time).
    let parallel = engine.config().parallel_compilation;
    if parallel {
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
    let function_keys = cache.map(|_| FunctionKeys::new(&engine.inner.salt, &info, &offsets));
    let pack_keys = function_keys.as_ref().map(FunctionKeys::pack_keys);
    let pack_bytes = match (cache, &pack_keys) {
        (Some(c), Some(k)) => function_cache::lookup(c, k),
        _ => [None, None],
    };
    let packs = match (cache, &function_keys, pack_keys) {
        (Some(c), Some(f), Some(k)) => Some(function_cache::Packs::open(c, mac_keys, f, k, &pack_bytes)),
        _ => None,
    };
    let lookups: Vec<Result<FunctionCode<'_>, Option<CacheKey>>> = (0..n)
        .map(|i| match (packs.as_ref(), body_bytes(i)) {
            (Some(packs), Some(body)) => packs.find(i, func_of(i), body).map(|hit| hit.code),
            _ => Err(None),
        })
        .collect();
    let found: Vec<Option<FunctionCode<'_>>> = lookups.iter().map(|l| l.ok()).collect();
    if let Some(c) = cache {
        let hits = found.iter().flatten().count() as u64;
        c.record_functions(hits, 0);
    }

    let (trampolines, type_slots) = entry_trampolines(engine, &info)?;
    let trampolines = parse_trampolines(&trampolines)?;
    let layout_count = u32::try_from(n).map_err(|_| anyhow!("too many functions"))?;
    let stubs_len = layout_count * STUB_SIZE;
    let linked_funcs: Vec<(DefinedFuncIndex, FunctionCode<'_>)> =
        found.iter().enumerate().filter_map(|(i, f)| Some((DefinedFuncIndex::from_u32(i as u32), (*f)?))).collect();
    let position: Vec<Option<usize>> = {
        let mut k = 0;
        found
            .iter()
            .map(|f| {
                f.map(|_| {
                    k += 1;
                    k - 1
                })
            })
            .collect()
    };
    let body_offsets: Box<[u32]> = ranges.iter().map(|r| r.start as u32).collect();
    let stub_layout = |slots: u32| StubLayout { stubs: 0, slots, count: layout_count };
    let target = |g: DefinedFuncIndex, locs: &[FunctionLoc]| match position.get(g.index())? {
        Some(k) => locs.get(*k).map(|l| l.start),
        None => Some(stub_layout(0).stub(g.as_u32())),
    };
    let linked = link_placed(&info, &linked_funcs, &body_offsets, &trampolines, stubs_len, &target)?;
    let mut text = vec![0xcc_u8; stubs_len as usize];
    text.extend_from_slice(&linked.text);
    let slots = round_up_to_page(text.len().max(1)).ok_or_else(|| anyhow!("code too large"))?;
    let layout = stub_layout(u32::try_from(slots).map_err(|_| anyhow!("code too large"))?);

    // Every function has a location; one not compiled yet has no bytes, at
    // the position it would have had (the table stays sorted).
    let mut funcs = Vec::with_capacity(n);
    let mut end = stubs_len;
    for k in &position {
        match k {
            Some(k) => {
                let loc = linked.funcs[*k];
                end = loc.start + loc.length;
                funcs.push(loc);
            }
            None => funcs.push(FunctionLoc { start: end, length: 0 }),
        }
    }
    let compiled: Vec<Option<u32>> = position.iter().map(|k| k.map(|k| linked.funcs[k].start)).collect();
    let array_to_wasm_trampolines = type_slots.into_iter().map(|(t, s)| (t, linked.trampolines[s])).collect();
    let code_bytes: usize = ranges.iter().map(|r| r.len()).sum();
    let info = Arc::new(CompiledModuleInfo {
        module: info,
        funcs,
        array_to_wasm_trampolines,
        traps: linked.traps,
        address_map: linked.address_map,
        exn_table: linked.exn_table,
        stack_maps: linked.stack_maps,
    });

    let validators = bodies
        .iter()
        .map(|b| {
            let v = &b.validator;
            FuncToValidate { resources: v.resources.clone(), index: v.index, ty: v.ty, features: v.features }
        })
        .collect();
    let keys = lookups.iter().map(|l| l.err().flatten()).collect();
    let compiler = ModuleCompiler {
        engine: engine.clone(),
        wasm: Arc::from(wasm),
        features,
        info: info.clone(),
        offsets: VMOffsets::new(&info.module),
        ranges,
        validators,
        keys,
        times: (0..n).map(|_| AtomicU64::new(0)).collect(),
        compiled: Mutex::new(Vec::new()),
    };
    // Room for every function compiled later: a page each at least, and
    // generously more than the code it could become.
    let area = (n * 4096).saturating_add(code_bytes.saturating_mul(16)).saturating_add(16 << 20).min(1 << 30);
    let lazy = LazyCode::new(text, layout, &compiled, area, info.clone(), body_offsets, Box::new(compiler))
        .context("failed to map compiled code")?;
    let lazy = Arc::new(lazy);
    if engine.config().background_compilation && compiled.iter().any(Option::is_none) {
        background().submit(&lazy);
    }
    let code = ModuleCode::new_lazy(lazy, info.clone());
    Ok(runtime(engine, info, code))
}

/// Compiles the functions of one module on demand; keeps what it compiled
/// for the function cache.
struct ModuleCompiler {
    engine: Engine,
    wasm: Arc<[u8]>,
    features: WasmFeatures,
    info: Arc<CompiledModuleInfo>,
    offsets: VMOffsets,
    ranges: Vec<Range<usize>>,
    validators: Vec<FuncToValidate<ValidatorResources>>,
    /// Each function's cache key, if the module is compiled through a
    /// cache and the function was not found in it.
    keys: Vec<Option<CacheKey>>,
    /// Nanoseconds each function took to compile.
    times: Box<[AtomicU64]>,
    /// What was compiled: (defined index, encoded code, time taken).
    compiled: Mutex<Vec<(u32, Vec<u8>, Duration)>>,
}

impl LazyCompiler for ModuleCompiler {
    fn compile(&self, index: DefinedFuncIndex) -> Result<Vec<u8>> {
        let i = index.index();
        let (range, v) = self.ranges.get(i).zip(self.validators.get(i)).ok_or_else(|| anyhow!("no such function"))?;
        let bytes = self.wasm.get(range.clone()).ok_or_else(|| anyhow!("body outside the module"))?;
        let body = FunctionBody::new(BinaryReader::new_features(bytes, range.start as u64, self.features));
        let validator =
            FuncToValidate { resources: v.resources.clone(), index: v.index, ty: v.ty, features: v.features };
        let func = self.info.module.func_index(index);
        let start = Instant::now();
        let f = self.engine.inner.compiler.compile_function(
            &self.info.module,
            &self.offsets,
            func,
            FunctionBodyInput { body, validator },
        )?;
        if let Some(t) = self.times.get(i) {
            t.store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        Ok(f.encode())
    }

    fn installed(&self, index: DefinedFuncIndex, encoded: Vec<u8>) {
        if self.engine.config().cache.is_some() {
            let took = Duration::from_nanos(self.times.get(index.index()).map_or(0, |t| t.load(Ordering::Relaxed)));
            self.compiled.lock().unwrap_or_else(|e| e.into_inner()).push((index.as_u32(), encoded, took));
        }
    }

    fn retired(&self) {
        self.store_in_cache();
    }

    fn wasm(&self) -> &[u8] {
        &self.wasm
    }
}

impl ModuleCompiler {
    /// Writes what was compiled to the function cache, with what the
    /// cache already had of the module.
    fn store_in_cache(&self) {
        let compiled = std::mem::take(&mut *self.compiled.lock().unwrap_or_else(|e| e.into_inner()));
        let Some(cache) = self.engine.config().cache.clone() else { return };
        if compiled.is_empty() {
            return;
        }
        let mac_keys = cache.mac_key().map(|k| MacKeys::derive(&k));
        let info = &self.info.module;
        let function_keys = FunctionKeys::new(&self.engine.inner.salt, info, &self.offsets);
        let pack_keys = function_keys.pack_keys();
        let pack_bytes = function_cache::lookup(&*cache, &pack_keys);
        let sources: Vec<Option<Vec<u8>>> = compiled
            .iter()
            .map(|(i, _, _)| {
                let d = DefinedFuncIndex::from_u32(*i);
                function_keys.source(info.func_index(d), self.wasm.get(self.ranges.get(d.index())?.clone())?)
            })
            .collect();
        let packs = function_cache::Packs::open(&*cache, mac_keys.as_ref(), &function_keys, pack_keys, &pack_bytes);
        let mut by_index: Vec<Option<usize>> = vec![None; self.ranges.len()];
        for (k, (i, _, _)) in compiled.iter().enumerate() {
            if let Some(slot) = by_index.get_mut(*i as usize) {
                *slot = Some(k);
            }
        }
        let mut seen: HashSet<CacheKey> = HashSet::new();
        let mut inputs: Vec<function_cache::PackInput<'_>> = Vec::new();
        for (i, k) in by_index.iter().enumerate() {
            let body = self.ranges.get(i).and_then(|r| self.wasm.get(r.clone()));
            let func = info.func_index(DefinedFuncIndex::from_u32(i as u32));
            match (k, body) {
                (Some(k), _) => {
                    let (Some(key), Some(source)) = (self.keys.get(i).copied().flatten(), sources[*k].as_deref())
                    else {
                        continue;
                    };
                    if seen.insert(key) {
                        let (_, code, took) = &compiled[*k];
                        inputs.push(function_cache::PackInput::Compiled { key, compile_time: *took, source, code });
                    }
                }
                (None, Some(body)) => {
                    if let Ok(hit) = packs.find(i, func, body) {
                        inputs.push(function_cache::PackInput::Found(hit));
                    }
                }
                (None, None) => {}
            }
        }
        cache.record_functions(0, compiled.len() as u64);
        packs.store(&|visit| {
            for input in &inputs {
                visit(input.clone());
            }
        });
    }
}

/// The process's background compiler: threads (one fewer than the cores,
/// at least one) that compile, one function at a time, the functions of
/// lazily compiled modules not called yet, taking modules in turn.
struct Background {
    queue: Mutex<VecDeque<Weak<LazyCode>>>,
    ready: Condvar,
}

fn background() -> &'static Background {
    static BACKGROUND: OnceLock<Background> = OnceLock::new();
    BACKGROUND.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1)).clamp(1, 4);
        for i in 0..threads {
            // Without threads, functions are still compiled at first call.
            let _ = std::thread::Builder::new()
                .name(format!("kiln-background-{i}"))
                .stack_size(8 << 20)
                .spawn(|| background().work());
        }
        Background { queue: Mutex::new(VecDeque::new()), ready: Condvar::new() }
    })
}

impl Background {
    fn submit(&self, lazy: &Arc<LazyCode>) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push_back(Arc::downgrade(lazy));
        self.ready.notify_one();
    }

    fn work(&self) {
        loop {
            let next = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    match queue.pop_front() {
                        Some(m) => break m,
                        None => queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner()),
                    }
                }
            };
            let Some(lazy) = next.upgrade() else { continue };
            let Some(index) = lazy.next_to_compile() else { continue };
            // Another thread may have taken the module meanwhile; `ensure`
            // compiles once either way. A failure is reported at the call.
            self.submit(&lazy);
            let _ = lazy.ensure(index);
        }
    }
}
