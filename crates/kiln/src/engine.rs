//! The `Engine`: compiler, configuration and type registry shared by
//! modules and stores.

use crate::config::{Config, OptLevel};
use crate::vm::code_memory::ModuleCode;
use crate::vm::host_func::HostTrampoline;
use anyhow::{Context, Result};
use kiln_cranelift::{CompilerOptions, CraneliftCompiler};
use kiln_environ::{CompiledModuleInfo, Compiler, FuncType, Tunables, WasmHeapType, WasmSubType};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// A compilation and runtime environment: the compiler, the configuration,
/// and the registry of function signatures. Cheap to clone (shared);
/// `Send + Sync`. Modules and stores belong to one engine.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

// 128-byte aligned: its `Arc` counts get cache lines of their own (see
// "Instantiating from many threads" in docs/ARCHITECTURE.md).
#[repr(align(128))]
pub(crate) struct EngineInner {
    pub(crate) config: Config,
    pub(crate) compiler: crate::codegen::EngineCompiler,
    pub(crate) types: Arc<TypeRegistry>,
    host_trampolines: Mutex<HashMap<u32, Arc<ModuleCode>>>,
    pub(crate) epoch: Arc<crate::vm::epoch::Epoch>,
    /// Cache-key salt: Kiln version, compiler fingerprint, tunables.
    pub(crate) salt: kiln_environ::CacheKey,
    /// Where instances, memories and tables get their memory.
    pub(crate) allocator: crate::vm::allocator::Allocator,
}

/// Engine-wide interning of defined types (function, struct and array
/// types), by recursion group: groups that are equal once their references
/// to earlier types are replaced by those types' ids and their references
/// within the group by positions in it (iso-recursive equivalence) get the
/// same ids, consecutive within a group, in any module. `call_indirect`,
/// imports and casts compare ids, and subtyping between ids is decided by
/// each type's display: its chain of declared supertypes from the root
/// down to itself, so that `a <: b` exactly when `display(a)` has `b` at
/// position `depth(b)` (one lookup, however deep the hierarchy). Ids are
/// never reused. The displays are also in a table that compiled code reads
/// (`vm/type_displays.rs`), so casts to non-final types are inline.
pub(crate) struct TypeRegistry {
    inner: RwLock<Registry>,
    /// The address where the displays' table starts (fixed for the
    /// registry's life), for compiled code.
    display_base: usize,
}

struct Registry {
    /// A group's key (its types with references within the group as
    /// `RecLocal`) to its first id.
    groups: HashMap<Vec<WasmSubType>, u32>,
    /// Each id's type in engine form (references as `Engine*` ids).
    types: Vec<Arc<WasmSubType>>,
    /// Each id's function type, if it is one (shared with callers).
    funcs: Vec<Option<Arc<FuncType>>>,
    /// Each id's display: its supertypes from the root, then itself.
    displays: Vec<Arc<[u32]>>,
    /// Each id's trace information (where its objects hold GC references).
    traces: Vec<Arc<kiln_environ::gc_layout::GcTrace>>,
    /// The displays again, in the table compiled code reads.
    table: crate::vm::type_displays::DisplayTable,
}

impl Registry {
    fn register_group(&mut self, key: &[WasmSubType]) -> u32 {
        if let Some(first) = self.groups.get(key) {
            return *first;
        }
        let first = self.types.len() as u32;
        for (i, t) in key.iter().enumerate() {
            let ty = t.map_heap(|h| match h {
                WasmHeapType::RecLocal(j) => match key.get(j as usize) {
                    Some(u) => WasmHeapType::engine(u.composite.kind(), first + j),
                    None => h,
                },
                other => other,
            });
            let id = first + i as u32;
            // A supertype is an earlier type: of an earlier group, or
            // earlier in this one (validated), so its display exists.
            let display: Arc<[u32]> = match ty.supertype.and_then(|s| s.engine_id()) {
                Some(s) if s < id => self.displays[s as usize].iter().copied().chain([id]).collect(),
                _ => Arc::from([id]),
            };
            self.funcs.push(ty.as_func().map(|f| Arc::new(f.clone())));
            self.traces.push(Arc::new(kiln_environ::gc_layout::GcTrace::of(&ty.composite)));
            self.types.push(Arc::new(ty));
            self.table.set(id, &display);
            self.displays.push(display);
        }
        self.groups.insert(key.to_vec(), first);
        first
    }
}

impl TypeRegistry {
    /// An empty registry.
    ///
    /// # Errors
    ///
    /// The OS refuses the displays' table its address space.
    pub(crate) fn new() -> std::io::Result<TypeRegistry> {
        let table = crate::vm::type_displays::DisplayTable::new()?;
        let display_base = table.base() as usize;
        let registry = Registry {
            groups: HashMap::new(),
            types: Vec::new(),
            funcs: Vec::new(),
            displays: Vec::new(),
            traces: Vec::new(),
            table,
        };
        Ok(TypeRegistry { inner: RwLock::new(registry), display_base })
    }

    /// The first row of the displays' table, for compiled code
    /// (`store_context::TYPE_DISPLAYS`).
    pub(crate) fn display_table(&self) -> usize {
        self.display_base
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The first id of recursion group `key` (its types with references to
    /// earlier types as `Engine*` ids and to types of the group as
    /// `RecLocal` positions); the others follow in order.
    pub(crate) fn register_group(&self, key: &[WasmSubType]) -> u32 {
        if let Some(first) = self.read().groups.get(key) {
            return *first;
        }
        self.inner.write().unwrap_or_else(|e| e.into_inner()).register_group(key)
    }

    /// The id of function type `ty` in engine form, made by the host (a
    /// host function's or a tag's type): a final type without supertype in
    /// a recursion group of its own, so the same as a module's type that is
    /// written without `sub` and not in an explicit group with others. (A
    /// type in a larger group is a different type, even with the same
    /// engine form: iso-recursive equality.)
    pub(crate) fn register(&self, ty: &FuncType) -> u32 {
        self.register_group(std::slice::from_ref(&WasmSubType::func(ty.clone())))
    }

    /// The function type with id `id`.
    ///
    /// # Panics
    ///
    /// `id` is not a function type's id of this registry (ids of function
    /// types come only from registering them).
    pub(crate) fn func(&self, id: u32) -> Arc<FuncType> {
        self.read().funcs[id as usize].clone().expect("a function type id names a function type")
    }

    /// The trace information of objects of the type with id `id`, if there
    /// is such a type.
    pub(crate) fn trace(&self, id: u32) -> Option<Arc<kiln_environ::gc_layout::GcTrace>> {
        self.read().traces.get(id as usize).cloned()
    }

    /// Calls `f` with every id's trace information, by id (under the
    /// registry's read lock: `f` must not register types).
    pub(crate) fn with_traces<R>(&self, f: impl FnOnce(&[Arc<kiln_environ::gc_layout::GcTrace>]) -> R) -> R {
        f(&self.read().traces)
    }

    /// The type with id `id` (engine form), if there is one.
    pub(crate) fn get(&self, id: u32) -> Option<Arc<WasmSubType>> {
        self.read().types.get(id as usize).cloned()
    }

    /// Whether the type with id `a` is the type with id `b` or declares it
    /// as a (transitive) supertype. Unknown ids are subtypes of nothing.
    pub(crate) fn is_subtype(&self, a: u32, b: u32) -> bool {
        if a == b {
            return true;
        }
        let r = self.read();
        let (Some(da), Some(db)) = (r.displays.get(a as usize), r.displays.get(b as usize)) else { return false };
        da.get(db.len() - 1) == Some(&b)
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(&Config::new()).expect("the default configuration works on supported hosts")
    }
}

impl Engine {
    /// The engine-wide id of function type `ty` (in engine form).
    pub(crate) fn register_type(&self, ty: &kiln_environ::FuncType) -> u32 {
        self.inner.types.register(ty)
    }

    /// Creates an engine with `config`.
    ///
    /// # Errors
    ///
    /// Fails when the host CPU is not supported by the code generator (on
    /// x86-64, SSE4.1 is required) or the configuration is inconsistent.
    pub fn new(config: &Config) -> Result<Engine> {
        let mut tunables: Tunables = config.tunables.clone();
        tunables.features = config.features.bits();
        tunables.epoch_signals = tunables.epoch_interruption
            && !tunables.consume_fuel
            && config.epoch_signals_wanted
            && crate::config::EPOCH_SIGNALS_SUPPORTED;
        let opt_level = match config.opt_level {
            OptLevel::None => "none",
            OptLevel::Speed => "speed",
            OptLevel::SpeedAndSize => "speed_and_size",
        };
        let compiler = CraneliftCompiler::new(CompilerOptions { tunables, verifier: config.verifier, opt_level })
            .context("cannot create the code generator")?;
        let compiler = crate::codegen::EngineCompiler::new(compiler, config.baseline_compilation);
        crate::vm::signals::init_traps();
        let salt = kiln_environ::engine_salt(kiln_environ::KILN_VERSION, &compiler.fingerprint(), compiler.tunables());
        let allocator = match &config.allocation {
            crate::config::InstanceAllocationStrategy::OnDemand => {
                crate::vm::allocator::Allocator::on_demand(compiler.tunables(), config.async_stack_size)
            }
            crate::config::InstanceAllocationStrategy::Pooling(p) => {
                crate::vm::allocator::Allocator::pooling(compiler.tunables(), p.limits.clone(), config.async_stack_size)
                    .context("cannot reserve the pooling allocator's slots")?
            }
        };
        Ok(Engine {
            inner: Arc::new(EngineInner {
                config: config.clone(),
                compiler,
                types: Arc::new(TypeRegistry::new().context("cannot map the engine's type table")?),
                host_trampolines: Mutex::new(HashMap::new()),
                epoch: Default::default(),
                salt,
                allocator,
            }),
        })
    }

    /// The stack size of async calls.
    ///
    /// # Errors
    ///
    /// The configured size leaves no room beyond `max_wasm_stack`.
    pub(crate) fn async_stack_size(&self) -> Result<usize> {
        let config = &self.inner.config;
        if config.async_stack_size <= config.max_wasm_stack {
            anyhow::bail!(
                "the async stack size ({} bytes) must be larger than max_wasm_stack ({} bytes): \
                 host functions called from wasm on an async stack need room of their own",
                config.async_stack_size,
                config.max_wasm_stack
            );
        }
        Ok(config.async_stack_size)
    }

    /// The configuration this engine was created with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Whether two handles refer to the same engine.
    pub fn same(a: &Engine, b: &Engine) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }

    /// Advances the engine's epoch counter by one (for epoch-based
    /// interruption) and flags the stores whose deadline it reached. Never
    /// blocks, so it may be called from a signal handler.
    pub fn increment_epoch(&self) {
        self.inner.epoch.increment();
    }

    pub(crate) fn tunables(&self) -> &Tunables {
        self.inner.compiler.tunables()
    }

    /// The engine's current epoch.
    pub fn current_epoch(&self) -> u64 {
        self.inner.epoch.current()
    }

    /// Starts a thread that calls [`Engine::increment_epoch`] every
    /// `interval` until the returned guard is dropped: with
    /// [`Store::set_epoch_deadline`](crate::Store::set_epoch_deadline)`(n)`,
    /// wasm is interrupted after roughly `n * interval` of wall time.
    pub fn start_epoch_ticker(&self, interval: std::time::Duration) -> EpochTicker {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let engine = self.clone();
        let thread = std::thread::Builder::new()
            .name("kiln-epoch-ticker".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop: Some(tx), thread }
    }

    /// The header artifacts produced by this engine carry.
    pub(crate) fn artifact_header(&self, compile_time: std::time::Duration) -> kiln_environ::ArtifactHeader {
        kiln_environ::ArtifactHeader {
            kiln_version: kiln_environ::KILN_VERSION.to_string(),
            compiler: self.inner.compiler.fingerprint(),
            tunables: self.tunables().clone(),
            compile_time_ns: compile_time.as_nanos().min(u128::from(u64::MAX)) as u64,
        }
    }

    /// The cache configured for this engine, if any.
    pub fn cache(&self) -> Option<&std::sync::Arc<dyn crate::Cache>> {
        self.inner.config.cache.as_ref()
    }

    /// The wasm-to-host trampoline for signature `id`, compiled on first use.
    pub(crate) fn host_trampoline(&self, id: u32) -> Result<HostTrampoline> {
        let mut map = self.inner.host_trampolines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(code) = map.get(&id) {
            return Ok(HostTrampoline::new(code.clone()));
        }
        let ty = self.inner.types.func(id);
        let f = self.inner.compiler.compile_wasm_to_array_trampoline(&ty)?.encode();
        let f = kiln_environ::FunctionCode::parse(&f)
            .ok_or_else(|| anyhow::anyhow!("internal: a trampoline encodes inconsistently"))?;
        let linked = kiln_environ::link(&kiln_environ::ModuleInfo::default(), &[], &[], &[f])?;
        let info = Arc::new(CompiledModuleInfo {
            module: Default::default(),
            funcs: vec![],
            array_to_wasm_trampolines: vec![],
            traps: Default::default(),
            address_map: Default::default(),
            exn_table: Default::default(),
            stack_maps: Default::default(),
            lazy: false,
        });
        let code: Arc<ModuleCode> =
            ModuleCode::new(&linked.text, info, false).context("mapping trampoline code")?.into();
        map.insert(id, code.clone());
        Ok(HostTrampoline::new(code))
    }
}

/// Increments an engine's epoch on a timer; stops when dropped. See
/// [`Engine::start_epoch_ticker`].
pub struct EpochTicker {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
