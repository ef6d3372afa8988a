//! Engine configuration.

use crate::features::WasmFeature;
use kiln_environ::Tunables;
use kiln_environ::wasmparser::WasmFeatures;

/// Optimization level for generated code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptLevel {
    /// No optimizations: fastest compilation.
    None,
    /// Optimize for speed (the default).
    Speed,
    /// Optimize for speed, and also for size where it does not cost speed.
    SpeedAndSize,
}

/// Global settings for an [`Engine`](crate::Engine): which WebAssembly
/// features are on, how code is generated, and runtime limits.
///
/// `Config::new()` gives the defaults: WebAssembly 3.0 as far as Kiln
/// implements it — 2.0 (SIMD, bulk memory, reference types, multi-value,
/// sign extension, saturating conversions, mutable globals) plus
/// extended-const, tail calls, relaxed SIMD, memory64, multi-memory and
/// typed function references, and threads; not yet exception handling or
/// GC ([`WasmFeature`](crate::WasmFeature) lists every switch and its
/// default) — optimizing compilation, 512 KiB of
/// wasm stack, and 4 GiB + 2 GiB guard reservations for 32-bit memories so
/// that loads and stores need no bounds checks.
#[derive(Clone)]
pub struct Config {
    pub(crate) features: WasmFeatures,
    pub(crate) tunables: Tunables,
    pub(crate) max_wasm_stack: usize,
    pub(crate) async_stack_size: usize,
    pub(crate) max_gc_heap: u64,
    pub(crate) gc_zeal: Option<u32>,
    pub(crate) opt_level: OptLevel,
    pub(crate) verifier: bool,
    pub(crate) parallel_compilation: bool,
    pub(crate) compile_strategy: CompileStrategy,
    pub(crate) background_compilation: bool,
    pub(crate) baseline_compilation: crate::codegen::BaselineCompilation,
    /// Tests only (`__private_testing::fail_lazy_compilation`).
    pub(crate) fail_lazy_compilation: bool,
    pub(crate) cache: Option<std::sync::Arc<dyn crate::Cache>>,
    pub(crate) allocation: InstanceAllocationStrategy,
    pub(crate) profiling: crate::ProfilingStrategy,
    /// See [`Config::epoch_interruption_signals`].
    pub(crate) epoch_signals_wanted: bool,
}

/// Where epoch interruption can be delivered by a signal (see
/// [`Config::epoch_interruption_signals`]).
pub(crate) const EPOCH_SIGNALS_SUPPORTED: bool = cfg!(all(target_os = "linux", target_arch = "x86_64"));

/// When a module's functions are compiled; see [`Config::compile_strategy`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CompileStrategy {
    /// Every function is compiled before [`Module::new`](crate::Module::new)
    /// returns (the default for embedders): no compilation while wasm runs,
    /// so call latency is predictable.
    #[default]
    Eager,
    /// [`Module::new`](crate::Module::new) validates every function but
    /// compiles only those found in the cache; each other function is
    /// compiled when it is first called (or earlier, on a spare core,
    /// with [`Config::background_compilation`]). A module starts much
    /// sooner when a run calls a fraction of its functions, at the price
    /// of compilation pauses at first calls and an indirect jump on calls
    /// into functions compiled after their caller. Implemented on x86-64;
    /// elsewhere this compiles eagerly. See "Lazy compilation" in
    /// docs/ARCHITECTURE.md.
    Lazy,
}

/// How instances get their memory; see [`Config::allocation_strategy`].
#[derive(Clone, Debug, Default)]
pub enum InstanceAllocationStrategy {
    /// Allocate as needed; a few released VMContexts, tables and memory
    /// reservations of each size are kept for reuse (the default).
    #[default]
    OnDemand,
    /// Reserve fixed numbers of slots up front; instantiation fails with a
    /// "limit reached" error when a kind of slot runs out.
    Pooling(PoolingAllocationConfig),
}

/// Limits of the pooling allocator. Defaults: 1000 instances, memories and
/// tables; 20,000 table elements; 1 MiB of VMContext per instance. Each
/// memory slot reserves the configured memory reservation plus guard
/// (6 GiB by default) of address space, not memory.
#[derive(Clone, Debug, Default)]
pub struct PoolingAllocationConfig {
    pub(crate) limits: crate::vm::allocator::PoolingLimits,
}

impl PoolingAllocationConfig {
    /// Default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Instances that can exist at once, in all stores of the engine.
    pub fn total_core_instances(&mut self, n: u32) -> &mut Self {
        self.limits.total_core_instances = n;
        self
    }

    /// Linear memories that can exist at once.
    pub fn total_memories(&mut self, n: u32) -> &mut Self {
        self.limits.total_memories = n;
        self
    }

    /// Tables that can exist at once.
    pub fn total_tables(&mut self, n: u32) -> &mut Self {
        self.limits.total_tables = n;
        self
    }

    /// GC heaps that can exist at once (one per store that uses GC; 1,000
    /// by default). Each reserves 4 GiB of address space (not memory), all
    /// of them when the first is needed; a store whose heap finds every
    /// slot in use fails to instantiate its first GC module.
    pub fn total_gc_heaps(&mut self, n: u32) -> &mut Self {
        self.limits.total_gc_heaps = n;
        self
    }

    /// Async call stacks that can exist at once (1,000 by default; see
    /// [`Config::async_stack_size`]). A store keeps the stack of its last
    /// async call until it is dropped; an async call that finds every
    /// stack in use fails. Idle stacks keep their address space and give
    /// their memory back to the OS.
    pub fn total_stacks(&mut self, n: u32) -> &mut Self {
        self.limits.total_stacks = n;
        self
    }

    /// Most elements per table.
    pub fn table_elements(&mut self, n: usize) -> &mut Self {
        self.limits.table_elements = n;
        self
    }

    /// Most bytes of VMContext per instance (it grows with imports,
    /// globals, and the number of functions referenced from tables).
    pub fn max_core_instance_size(&mut self, bytes: usize) -> &mut Self {
        self.limits.max_core_instance_size = bytes;
        self
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("features", &self.features)
            .field("tunables", &self.tunables)
            .field("max_wasm_stack", &self.max_wasm_stack)
            .field("async_stack_size", &self.async_stack_size)
            .field("opt_level", &self.opt_level)
            .field("cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

impl Config {
    /// The default configuration.
    pub fn new() -> Config {
        let features = crate::features::default_features();
        Config {
            features,
            tunables: Tunables::default(),
            max_wasm_stack: 512 * 1024,
            async_stack_size: 2 << 20,
            max_gc_heap: u64::MAX,
            gc_zeal: None,
            opt_level: OptLevel::Speed,
            verifier: cfg!(debug_assertions),
            parallel_compilation: true,
            compile_strategy: CompileStrategy::Eager,
            background_compilation: true,
            baseline_compilation: crate::codegen::BaselineCompilation::Off,
            fail_lazy_compilation: false,
            cache: None,
            allocation: InstanceAllocationStrategy::OnDemand,
            profiling: crate::ProfilingStrategy::None,
            epoch_signals_wanted: true,
        }
    }

    /// Enables or disables `feature`.
    pub fn wasm_feature_set(&mut self, feature: WasmFeature, enable: bool) -> &mut Self {
        self.features.set(feature.flags(), enable);
        self
    }

    /// Whether modules may use `feature`.
    pub fn wasm_feature_enabled(&self, feature: WasmFeature) -> bool {
        self.features.contains(feature.flags())
    }

    /// The full set of features modules are validated against (what the
    /// switches above add up to), for tools that validate or generate
    /// modules the way this configuration will.
    pub fn wasm_features(&self) -> WasmFeatures {
        self.features
    }

    /// Enables or disables the SIMD proposal (`v128`). On by default.
    pub fn wasm_simd(&mut self, enable: bool) -> &mut Self {
        self.wasm_feature_set(WasmFeature::Simd, enable)
    }

    /// Enables or disables the bulk-memory proposal. On by default.
    pub fn wasm_bulk_memory(&mut self, enable: bool) -> &mut Self {
        self.wasm_feature_set(WasmFeature::BulkMemory, enable)
    }

    /// Enables or disables the reference-types proposal. On by default.
    pub fn wasm_reference_types(&mut self, enable: bool) -> &mut Self {
        self.wasm_feature_set(WasmFeature::ReferenceTypes, enable)
    }

    /// Enables or disables the multi-value proposal. On by default.
    pub fn wasm_multi_value(&mut self, enable: bool) -> &mut Self {
        self.wasm_feature_set(WasmFeature::MultiValue, enable)
    }

    /// Enables or disables the extended-const proposal. On by default.
    pub fn wasm_extended_const(&mut self, enable: bool) -> &mut Self {
        self.wasm_feature_set(WasmFeature::ExtendedConst, enable)
    }

    /// Enables or disables the multi-memory proposal. On by default.
    pub fn wasm_multi_memory(&mut self, enable: bool) -> &mut Self {
        self.wasm_feature_set(WasmFeature::MultiMemory, enable)
    }

    /// Enables or disables the memory64 proposal (64-bit memory and table
    /// indices). On by default.
    pub fn wasm_memory64(&mut self, enable: bool) -> &mut Self {
        self.wasm_feature_set(WasmFeature::Memory64, enable)
    }

    /// Enables or disables the tail-call proposal (`return_call`,
    /// `return_call_indirect`). On by default.
    pub fn wasm_tail_call(&mut self, enable: bool) -> &mut Self {
        self.wasm_feature_set(WasmFeature::TailCall, enable)
    }

    /// Enables or disables the relaxed-SIMD proposal. On by default.
    pub fn wasm_relaxed_simd(&mut self, enable: bool) -> &mut Self {
        self.wasm_feature_set(WasmFeature::RelaxedSimd, enable)
    }

    /// Makes relaxed-SIMD operators behave identically on every host (the
    /// choices x86-64 makes). Off by default.
    pub fn relaxed_simd_deterministic(&mut self, enable: bool) -> &mut Self {
        self.tunables.relaxed_simd_deterministic = enable;
        self
    }

    /// Enables or disables the threads proposal (shared memories, atomics,
    /// `memory.atomic.wait`/`notify`). On by default.
    pub fn wasm_threads(&mut self, enable: bool) -> &mut Self {
        self.wasm_feature_set(WasmFeature::Threads, enable)
    }

    /// Enables or disables the sign-extension operators. On by default.
    pub fn wasm_sign_extension(&mut self, enable: bool) -> &mut Self {
        self.wasm_feature_set(WasmFeature::SignExtension, enable)
    }

    /// Enables or disables the non-trapping float-to-int conversions. On by default.
    pub fn wasm_nontrapping_float_to_int(&mut self, enable: bool) -> &mut Self {
        self.wasm_feature_set(WasmFeature::NontrappingFloatToInt, enable)
    }

    /// Enables or disables importing and exporting mutable globals. On by default.
    pub fn wasm_mutable_global(&mut self, enable: bool) -> &mut Self {
        self.wasm_feature_set(WasmFeature::MutableGlobal, enable)
    }

    /// Sets a feature by its proposal name ([`WasmFeature::name`]: `simd`,
    /// `tail-call`, `memory64`, ...; see [`WasmFeature::from_name`]).
    ///
    /// # Errors
    ///
    /// An unknown name.
    pub fn wasm_feature(&mut self, name: &str, enable: bool) -> anyhow::Result<&mut Self> {
        match WasmFeature::from_name(name) {
            Some(feature) => Ok(self.wasm_feature_set(feature, enable)),
            None => anyhow::bail!("unknown WebAssembly feature `{name}`"),
        }
    }

    /// Restricts the accepted language to WebAssembly 1.0 (MVP) plus
    /// mutable globals: no 2.0 proposals, 1.0 segment-initialization
    /// semantics (every segment is bounds-checked before any is applied).
    pub fn wasm_mvp_only(&mut self) -> &mut Self {
        self.features = crate::features::mvp_features();
        self
    }

    /// Maximum bytes of native stack wasm code may use before a
    /// stack-overflow trap (default 512 KiB).
    pub fn max_wasm_stack(&mut self, bytes: usize) -> &mut Self {
        self.max_wasm_stack = bytes;
        self
    }

    /// Bytes of stack each async call (`call_async`, `instantiate_async`)
    /// runs on (default 2 MiB). Wasm may use up to
    /// [`Config::max_wasm_stack`] of it; the rest is for the host
    /// functions it calls. A store keeps its last stack for its next async
    /// call. Below each stack is an inaccessible guard region, so a host
    /// function that overflows faults rather than corrupting memory.
    ///
    /// Async calls fail with an error if this is not larger than
    /// `max_wasm_stack`.
    pub fn async_stack_size(&mut self, bytes: usize) -> &mut Self {
        self.async_stack_size = bytes;
        self
    }

    /// Most bytes of GC objects (structs, arrays; the GC proposal) a store
    /// may hold (default, and at most: 2 GiB less 1 MiB, the size of each
    /// of the heap's two spaces). When an allocation finds the heap full,
    /// the store collects; if what survives leaves no room, the allocation
    /// traps `allocation failed`. While collecting, the copies of the live
    /// objects take up to that much again. Memory is taken from the OS a
    /// megabyte at a time as objects need it, and given back when a
    /// collection shrinks the heap.
    pub fn max_gc_heap_size(&mut self, bytes: u64) -> &mut Self {
        self.max_gc_heap = bytes;
        self
    }

    /// Testing aid: makes every GC allocation go through the runtime and
    /// every `n`th one collect (`None`, the default: only when the heap is
    /// full), which moves objects at every possible moment. Very slow.
    #[doc(hidden)]
    pub fn gc_zeal(&mut self, n: Option<u32>) -> &mut Self {
        self.gc_zeal = n;
        self
    }

    /// Describes generated code to an external profiler (default: none).
    /// See [`ProfilingStrategy`](crate::ProfilingStrategy).
    pub fn profiler(&mut self, strategy: crate::ProfilingStrategy) -> &mut Self {
        self.profiling = strategy;
        self
    }

    /// Code optimization level (default [`OptLevel::Speed`]).
    pub fn cranelift_opt_level(&mut self, level: OptLevel) -> &mut Self {
        self.opt_level = level;
        self
    }

    /// Runs Cranelift's IR verifier on every function (default: on in debug
    /// builds of Kiln, off in release builds). Slows compilation about 2x.
    pub fn cranelift_debug_verifier(&mut self, enable: bool) -> &mut Self {
        self.verifier = enable;
        self
    }

    /// Uses `cache` for compiled modules and functions. One cache can serve
    /// any number of engines (of any configuration: keys include every
    /// setting that changes code). Default: no cache.
    pub fn cache(&mut self, cache: std::sync::Arc<dyn crate::Cache>) -> &mut Self {
        self.cache = Some(cache);
        self
    }

    /// Instruments code to consume fuel: every operator has a cost
    /// ([`Config::fuel_costs`]), charged per basic block; running out traps
    /// with [`TrapCode::OutOfFuel`](crate::TrapCode::OutOfFuel). Set fuel with
    /// [`Store::set_fuel`](crate::Store::set_fuel). Off by default.
    pub fn consume_fuel(&mut self, enable: bool) -> &mut Self {
        self.tunables.consume_fuel = enable;
        self
    }

    /// The fuel cost of each kind of operator (defaults: 1 per operator, 0
    /// for `nop`, `drop` and structural operators).
    pub fn fuel_costs(&mut self, costs: kiln_environ::FuelCosts) -> &mut Self {
        self.tunables.fuel_costs = costs;
        self
    }

    /// Compiles fuel checks so that running out of fuel can refuel and
    /// yield to the executor instead of trapping: needed for
    /// [`Store::fuel_async_yield_interval`](crate::Store::fuel_async_yield_interval)
    /// (with [`Config::consume_fuel`]). Off by default: a fuel check is
    /// then a compare and a trap, which costs fuel-metered code less than
    /// a compare and a call (measured in bench/ASYNC.md).
    pub fn fuel_async_yields(&mut self, enable: bool) -> &mut Self {
        self.tunables.fuel_async_yields = enable;
        self
    }

    /// Lets [`Engine::increment_epoch`](crate::Engine::increment_epoch)
    /// interrupt running wasm once a store's deadline is reached (see
    /// [`Store::set_epoch_deadline`](crate::Store::set_epoch_deadline)).
    /// Off by default.
    ///
    /// On x86-64 Linux the interruption is delivered by a signal
    /// (`SIGURG`) to the thread running the store's wasm, so compiled code
    /// carries no checks at all; elsewhere, with fuel also on, or with
    /// [`Config::epoch_interruption_signals(false)`](Config::epoch_interruption_signals),
    /// code checks a flag at loop headers and before calls.
    pub fn epoch_interruption(&mut self, enable: bool) -> &mut Self {
        self.tunables.epoch_interruption = enable;
        self
    }

    /// Whether epoch interruption may use a signal instead of checks in
    /// compiled code (default on where supported: x86-64 Linux; ignored
    /// elsewhere, and when fuel is on too, whose counter the interrupted
    /// code keeps in a register of its own). With signals, a thread
    /// running wasm past its store's deadline receives `SIGURG` from
    /// whichever thread advanced the epoch;
    /// the handler makes the interrupted wasm call the deadline logic at
    /// the point it was stopped, as a check would have. Kiln's handler
    /// passes on the `SIGURG`s that are not its own to a handler installed
    /// before it. Turn this off if the process must not receive `SIGURG`.
    pub fn epoch_interruption_signals(&mut self, enable: bool) -> &mut Self {
        self.epoch_signals_wanted = enable;
        self
    }

    /// Chooses the instance allocator (default [`InstanceAllocationStrategy::OnDemand`]).
    pub fn allocation_strategy(&mut self, strategy: InstanceAllocationStrategy) -> &mut Self {
        self.allocation = strategy;
        self
    }

    /// When functions are compiled: all before a module is ready
    /// ([`CompileStrategy::Eager`], the default), or each at its first
    /// call ([`CompileStrategy::Lazy`]). A module found whole in the cache
    /// loads the same way under both. The generated code is the same, so
    /// the function-level cache is shared between the two.
    pub fn compile_strategy(&mut self, strategy: CompileStrategy) -> &mut Self {
        self.compile_strategy = strategy;
        self
    }

    /// Which functions Kiln's baseline compiler compiles: a one-pass
    /// compiler whose code is ready much sooner than Cranelift's and runs
    /// several times slower (see [`BaselineCompilation`](crate::BaselineCompilation);
    /// default off). It handles part of WebAssembly so far, and leaves
    /// the rest to Cranelift; it is used only on x86-64.
    pub fn baseline_compilation(&mut self, which: crate::codegen::BaselineCompilation) -> &mut Self {
        self.baseline_compilation = which;
        self
    }

    /// With [`CompileStrategy::Lazy`], whether idle cores compile the
    /// functions not called yet while the program runs, the callees of
    /// what ran first (default on). Off, a function is only ever compiled
    /// by its first call.
    pub fn background_compilation(&mut self, enable: bool) -> &mut Self {
        self.background_compilation = enable;
        self
    }

    /// Whether to compile functions on several threads (default on).
    pub fn parallel_compilation(&mut self, enable: bool) -> &mut Self {
        self.parallel_compilation = enable;
        self
    }

    /// Replaces every NaN produced by a float operation with the canonical
    /// NaN, making float results bit-for-bit deterministic across hosts.
    /// Off by default.
    pub fn cranelift_nan_canonicalization(&mut self, enable: bool) -> &mut Self {
        self.tunables.nan_canonicalization = enable;
        self
    }

    /// Bytes of address space reserved for each 32-bit linear memory
    /// (default 4 GiB). With at least 4 GiB, memory accesses need no
    /// explicit bounds checks; smaller values save address space at the
    /// cost of checks, and cap how far a memory can grow. 64-bit memories
    /// have their own limit, [`Config::memory64_reservation`].
    pub fn memory_reservation(&mut self, bytes: u64) -> &mut Self {
        self.tunables.memory_reservation = bytes;
        self
    }

    /// Most bytes of address space reserved for each 64-bit linear memory
    /// (default 64 GiB). A 64-bit memory reserves the smaller of its
    /// declared maximum and this (or its minimum size, if larger), and
    /// `memory.grow` beyond the reservation returns -1. Reserved address
    /// space costs no memory until it is used; what limits the default is
    /// the address space itself (x86-64 Linux gives a process 128 TiB).
    /// 64-bit memories do not come from the pooling allocator's slots.
    pub fn memory64_reservation(&mut self, bytes: u64) -> &mut Self {
        self.tunables.memory64_reservation = bytes;
        self
    }

    /// Whether defined funcref tables start uninitialized and compute each
    /// element the first time it is used (default on). Off, element
    /// segments are copied into tables at instantiation.
    pub fn table_lazy_init(&mut self, enable: bool) -> &mut Self {
        self.tunables.table_lazy_init = enable;
        self
    }

    /// Whether memories whose initial contents are known map a shared
    /// copy-on-write image instead of copying data segments (default on).
    pub fn memory_init_cow(&mut self, enable: bool) -> &mut Self {
        self.tunables.memory_init_cow = enable;
        self
    }

    /// Whether linear memories ask the OS for transparent huge pages
    /// (default on; Linux `madvise(MADV_HUGEPAGE)`, honoured when the
    /// system's THP setting is `madvise` or `always`). Large memories then
    /// take 512 times fewer page faults and far fewer TLB misses; memory
    /// use grows in 2 MiB steps once a memory is larger than that.
    pub fn memory_huge_pages(&mut self, enable: bool) -> &mut Self {
        self.tunables.memory_huge_pages = enable;
        self
    }

    /// Bytes of guard region after each memory's reservation (default 2 GiB).
    pub fn memory_guard_size(&mut self, bytes: u64) -> &mut Self {
        self.tunables.memory_guard_size = bytes;
        self
    }
}
