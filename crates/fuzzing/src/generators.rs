//! Generators: Kiln engine configurations, wasm-smith configurations
//! restricted to what Kiln supports, and argument values.

use arbitrary::{Result, Unstructured};
use wasmparser::WasmFeatures;

/// The WebAssembly features a Kiln engine of `settings` accepts, as its
/// `Config` adds them up (Kiln's feature list is the one source).
pub fn kiln_features(settings: &KilnSettings) -> WasmFeatures {
    settings.config().wasm_features()
}

/// Whether wasmparser, with the features of a Kiln engine of `settings`,
/// accepts `wasm`.
pub fn validates(wasm: &[u8], settings: &KilnSettings) -> bool {
    wasmparser::Validator::new_with_features(kiln_features(settings)).validate_all(wasm).is_ok()
}

/// The Kiln settings a test case runs with. Only settings that must not
/// change observable behaviour are varied (code generation, bounds-check
/// strategy, fuel and epoch instrumentation with budgets too large to run
/// out, lazy tables, copy-on-write memory images, the instance
/// allocator), plus the proposals the module needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KilnSettings {
    /// Cranelift optimization level.
    pub opt_level: kiln::OptLevel,
    /// `Config::cranelift_nan_canonicalization`.
    pub nan_canonicalization: bool,
    /// `Config::consume_fuel` (the store then gets [`KilnSettings::FUEL`]).
    pub consume_fuel: bool,
    /// `Config::epoch_interruption` (with a deadline that never passes).
    pub epoch_interruption: bool,
    /// `Config::memory_reservation`, when not the default.
    pub memory_reservation: Option<u64>,
    /// `Config::memory_guard_size`, when not the default.
    pub memory_guard_size: Option<u64>,
    /// `Config::table_lazy_init`.
    pub table_lazy_init: bool,
    /// `Config::memory_init_cow`.
    pub memory_init_cow: bool,
    /// The pooling instance allocator (with [`KilnSettings::pooling_config`])
    /// instead of the on-demand one.
    pub pooling: bool,
    /// `Config::wasm_multi_memory`.
    pub multi_memory: bool,
    /// `Config::wasm_tail_call`.
    pub tail_call: bool,
    /// `Config::wasm_relaxed_simd`.
    pub relaxed_simd: bool,
    /// `Config::relaxed_simd_deterministic`.
    pub relaxed_simd_deterministic: bool,
    /// `Config::wasm_memory64`.
    pub memory64: bool,
    /// `Config::wasm_threads`.
    pub threads: bool,
    /// `WasmFeature::WideArithmetic`.
    pub wide_arithmetic: bool,
    /// `WasmFeature::CustomPageSizes`.
    pub custom_page_sizes: bool,
    /// `WasmFeature::Gc`.
    pub gc: bool,
    /// `Config::compile_strategy(Lazy)`: functions compiled at their first
    /// call, with (`Some(true)`) or without a background compiler.
    pub lazy: Option<bool>,
    /// `Config::baseline_compilation`.
    pub baseline: kiln::BaselineCompilation,
}

impl Default for KilnSettings {
    /// Kiln's defaults, with the optional proposals off.
    fn default() -> Self {
        KilnSettings {
            opt_level: kiln::OptLevel::Speed,
            nan_canonicalization: false,
            consume_fuel: false,
            epoch_interruption: false,
            memory_reservation: None,
            memory_guard_size: None,
            table_lazy_init: true,
            memory_init_cow: true,
            pooling: false,
            multi_memory: false,
            tail_call: false,
            relaxed_simd: false,
            relaxed_simd_deterministic: false,
            memory64: false,
            threads: false,
            wide_arithmetic: false,
            custom_page_sizes: false,
            gc: false,
            lazy: None,
            baseline: kiln::BaselineCompilation::Off,
        }
    }
}

impl KilnSettings {
    /// Fuel given to stores when `consume_fuel` is on: far more than any
    /// generated case uses, so running out means a runaway computation.
    pub const FUEL: u64 = 1 << 40;

    /// Draws settings from `u` (proposals off: see
    /// [`KilnSettings::enable_proposals_of`]). Memory reservations are never
    /// smaller than `max_memory_bytes`, the most memory a generated module
    /// can have, so that `memory.grow` behaves as in other engines.
    pub fn arbitrary(u: &mut Unstructured<'_>, max_memory_bytes: u64) -> Result<KilnSettings> {
        // (Callers pass `max_memory_bytes(&smith)`.)
        let opt_level = *u.choose(&[kiln::OptLevel::None, kiln::OptLevel::Speed, kiln::OptLevel::SpeedAndSize])?;
        let memory_reservation = match u.int_in_range(0u8..=5)? {
            // Exactly the largest memory: every access is explicitly checked.
            0 => Some(max_memory_bytes.max(1 << 16)),
            1 => Some((max_memory_bytes.max(1 << 16)).next_power_of_two() * 2),
            2 => Some(1 << 31),
            _ => None,
        };
        let memory_guard_size = match u.int_in_range(0u8..=5)? {
            0 => Some(0),
            1 => Some(1 << 16),
            2 => Some(1 << 20),
            _ => None,
        };
        Ok(KilnSettings {
            opt_level,
            nan_canonicalization: u.ratio(1, 4)?,
            consume_fuel: u.ratio(1, 3)?,
            epoch_interruption: u.ratio(1, 4)?,
            memory_reservation,
            memory_guard_size,
            table_lazy_init: u.ratio(3, 4)?,
            memory_init_cow: u.ratio(3, 4)?,
            pooling: u.ratio(1, 4)?,
            relaxed_simd_deterministic: u.ratio(1, 2)?,
            ..KilnSettings::default()
        }
        .with_lazy_from_the_rest())
    }

    /// Chooses lazy compilation (a third of the settings), its
    /// background compiler and the baseline compiler's use from a hash of
    /// the other settings, not from the
    /// fuzz input, so that saved inputs (tests/regressions) still build
    /// the cases they were saved for.
    fn with_lazy_from_the_rest(mut self) -> KilnSettings {
        let text = format!("{self:?}");
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        self.lazy = (hash % 3 == 0).then_some(hash & 8 != 0);
        // The baseline compiler: for good in a third, for first calls
        // (tiering, when lazy) in another third.
        self.baseline = match (hash >> 16) % 3 {
            0 => kiln::BaselineCompilation::Always,
            1 => kiln::BaselineCompilation::FirstCalls,
            _ => kiln::BaselineCompilation::Off,
        };
        self
    }

    /// Switches on every proposal modules generated with `c` may use.
    pub fn enable_proposals_of(&mut self, c: &wasm_smith::Config) {
        self.multi_memory |= c.max_memories > 1;
        self.tail_call |= c.tail_call_enabled;
        self.relaxed_simd |= c.relaxed_simd_enabled;
        self.memory64 |= c.memory64_enabled;
        self.threads |= c.threads_enabled;
        self.wide_arithmetic |= c.wide_arithmetic_enabled;
        self.custom_page_sizes |= c.custom_page_sizes_enabled;
        self.gc |= c.gc_enabled;
    }

    /// The pooling allocator's limits: room for every instance, memory and
    /// table an oracle keeps alive at once (the other limits are Kiln's
    /// defaults).
    pub fn pooling_config() -> kiln::PoolingAllocationConfig {
        let mut p = kiln::PoolingAllocationConfig::new();
        p.total_core_instances(32).total_memories(32).total_tables(32).table_elements(20_000);
        p
    }

    /// The engine configuration.
    pub fn config(&self) -> kiln::Config {
        let mut c = kiln::Config::new();
        c.cranelift_opt_level(self.opt_level)
            .cranelift_nan_canonicalization(self.nan_canonicalization)
            .consume_fuel(self.consume_fuel)
            .epoch_interruption(self.epoch_interruption)
            .table_lazy_init(self.table_lazy_init)
            .memory_init_cow(self.memory_init_cow)
            .wasm_multi_memory(self.multi_memory)
            .wasm_tail_call(self.tail_call)
            .wasm_relaxed_simd(self.relaxed_simd)
            .relaxed_simd_deterministic(self.relaxed_simd_deterministic)
            .wasm_memory64(self.memory64)
            .wasm_threads(self.threads)
            .wasm_feature_set(kiln::WasmFeature::WideArithmetic, self.wide_arithmetic)
            .wasm_feature_set(kiln::WasmFeature::CustomPageSizes, self.custom_page_sizes)
            .wasm_feature_set(kiln::WasmFeature::Gc, self.gc)
            // Deterministic, and friendlier to a machine shared with builds.
            .parallel_compilation(false);
        if let Some(r) = self.memory_reservation {
            c.memory_reservation(r);
        }
        if let Some(g) = self.memory_guard_size {
            c.memory_guard_size(g);
        }
        if self.pooling {
            c.allocation_strategy(kiln::InstanceAllocationStrategy::Pooling(Self::pooling_config()));
        }
        if let Some(background) = self.lazy {
            c.compile_strategy(kiln::CompileStrategy::Lazy).background_compilation(background);
        }
        c.baseline_compilation(self.baseline);
        c
    }

    /// A store for an engine of these settings, with fuel and an epoch
    /// deadline that running code cannot exhaust.
    pub fn store<T: 'static>(&self, engine: &kiln::Engine, data: T) -> kiln::Store<T> {
        let mut store = kiln::Store::new(engine, data);
        if self.consume_fuel {
            // Only fails when fuel is off.
            let _ = store.set_fuel(Self::FUEL);
        }
        if self.epoch_interruption {
            store.set_epoch_deadline(u64::MAX / 2);
        }
        store
    }
}

/// Whether an error is a pooling allocator running out of slots or
/// refusing a size (a configured limit, not a bug).
pub fn is_pooling_limit(message: &str) -> bool {
    message.contains("pooling")
}

/// Limits applied to every generated module.
#[derive(Clone, Copy, Debug)]
pub struct ModuleLimits {
    /// Most functions.
    pub max_funcs: usize,
    /// Most instructions per function.
    pub max_instructions: usize,
    /// Largest memory, initial or maximum, in bytes.
    pub max_memory_bytes: u64,
    /// Largest table, initial or maximum.
    pub max_table_elements: u64,
    /// Most memories (more than one turns on multi-memory).
    pub max_memories: usize,
}

impl ModuleLimits {
    /// Limits for modules that are executed (small, fast).
    pub const EXECUTE: ModuleLimits = ModuleLimits {
        max_funcs: 30,
        max_instructions: 120,
        max_memory_bytes: 4 << 16,
        max_table_elements: 200,
        max_memories: 2,
    };

    /// Limits for modules that are only compiled or instantiated.
    pub const COMPILE: ModuleLimits = ModuleLimits {
        max_funcs: 100,
        max_instructions: 400,
        max_memory_bytes: 64 << 16,
        max_table_elements: 10_000,
        max_memories: 3,
    };
}

/// Proposals beyond WebAssembly 2.0 (and extended-const) that a generated
/// module may use; each is then on or off by chance.
#[derive(Clone, Copy, Debug, Default)]
pub struct Proposals {
    /// Several memories.
    pub multi_memory: bool,
    /// `return_call`, `return_call_indirect`.
    pub tail_call: bool,
    /// Relaxed SIMD (implementation-defined results).
    pub relaxed_simd: bool,
    /// 64-bit memories and tables.
    pub memory64: bool,
    /// Shared memories and atomics.
    pub threads: bool,
    /// `i64.add128`, `i64.sub128`, `i64.mul_wide_s/u`.
    pub wide_arithmetic: bool,
    /// Memories with 1-byte pages.
    pub custom_page_sizes: bool,
}

impl Proposals {
    /// Everything Kiln supports.
    pub const ALL: Proposals = Proposals {
        multi_memory: true,
        tail_call: true,
        relaxed_simd: true,
        memory64: true,
        threads: true,
        wide_arithmetic: true,
        custom_page_sizes: true,
    };
}

/// A wasm-smith configuration chosen by `u` (swarm testing: features,
/// instruction kinds and limits vary), restricted to what Kiln supports:
/// WebAssembly 2.0, extended-const, and the `allowed` proposals. Never
/// exceptions, GC, or other proposals Kiln does not implement.
///
/// Memories and tables always declare a maximum within `limits`, so that
/// growth and memory comparison stay cheap.
pub fn smith_config(u: &mut Unstructured<'_>, limits: ModuleLimits, allowed: Proposals) -> Result<wasm_smith::Config> {
    let mut c: wasm_smith::Config = u.arbitrary()?;
    // wasm-smith's arbitrary configurations never enable proposals below
    // phase 4; these two Kiln implements, so they are turned on by chance.
    c.wide_arithmetic_enabled = u.ratio(1, 4)?;
    c.custom_page_sizes_enabled = u.ratio(1, 4)?;
    restrict_to_kiln(&mut c, limits, allowed);
    Ok(c)
}

/// Turns off everything in `c` that Kiln (or `allowed`) does not support
/// and clamps its sizes to `limits`.
pub fn restrict_to_kiln(c: &mut wasm_smith::Config, limits: ModuleLimits, allowed: Proposals) {
    c.threads_enabled &= allowed.threads;
    c.tail_call_enabled &= allowed.tail_call;
    c.relaxed_simd_enabled &= allowed.relaxed_simd;
    c.memory64_enabled &= allowed.memory64;
    if !allowed.multi_memory {
        c.max_memories = c.max_memories.min(1);
    }
    c.shared_everything_threads_enabled = false;
    c.exceptions_enabled = false;
    c.gc_enabled = false;
    c.wide_arithmetic_enabled &= allowed.wide_arithmetic;
    c.custom_page_sizes_enabled &= allowed.custom_page_sizes;
    c.compact_imports_enabled = false;
    c.custom_descriptors_enabled = false;
    c.acquire_release_atomics_enabled = false;
    c.multibyte_array_access_enabled = false;
    c.max_tags = 0;
    c.allow_invalid_funcs = false;

    c.max_funcs = c.max_funcs.min(limits.max_funcs);
    c.max_instructions = c.max_instructions.min(limits.max_instructions);
    c.max_types = c.max_types.min(50);
    c.max_imports = c.max_imports.min(20);
    c.max_globals = c.max_globals.min(30);
    c.max_exports = c.max_exports.min(50);
    c.max_data_segments = c.max_data_segments.min(20);
    c.max_element_segments = c.max_element_segments.min(20);
    c.max_elements = c.max_elements.min(100);
    c.max_memories = c.max_memories.min(limits.max_memories);
    c.max_tables = c.max_tables.min(4);
    c.max_memory32_bytes = c.max_memory32_bytes.min(limits.max_memory_bytes);
    c.max_memory64_bytes = c.max_memory64_bytes.min(u128::from(limits.max_memory_bytes));
    c.memory_max_size_required = true;
    c.max_table_elements = c.max_table_elements.min(limits.max_table_elements);
    c.table_max_size_required = true;
    if !c.reference_types_enabled {
        c.max_tables = c.max_tables.min(1);
    }
}

/// A WebAssembly value independent of any engine (references are always
/// null: the oracles pass no host references in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// `i32`.
    I32(i32),
    /// `i64`.
    I64(i64),
    /// `f32` bits.
    F32(u32),
    /// `f64` bits.
    F64(u64),
    /// `v128` bits.
    V128(u128),
    /// A null `funcref`.
    NullFuncRef,
    /// A null `externref`.
    NullExternRef,
    /// A null `exnref` (only Kiln runs modules with exception handling:
    /// the differential generators leave it out).
    NullExnRef,
    /// A null `anyref` (GC types: the differential generators leave them
    /// out).
    NullAnyRef,
}

impl Value {
    /// An argument of type `ty` drawn from `u`: often a boundary value
    /// (0, -1, the extremes, NaNs, infinities), otherwise arbitrary bits.
    /// Returns zero when `u` is exhausted.
    pub fn arbitrary(u: &mut Unstructured<'_>, ty: kiln::ValType) -> Value {
        use kiln::ValType as T;
        let special = u.ratio(1, 3).unwrap_or(false);
        match ty {
            T::I32 => Value::I32(if special {
                *u.choose(&[0, 1, -1, i32::MIN, i32::MAX, 0x8000, 0xffff, 65536]).unwrap_or(&0)
            } else {
                u.arbitrary().unwrap_or(0)
            }),
            T::I64 => Value::I64(if special {
                *u.choose(&[0, 1, -1, i64::MIN, i64::MAX, 1 << 32, u32::MAX as i64]).unwrap_or(&0)
            } else {
                u.arbitrary().unwrap_or(0)
            }),
            T::F32 => Value::F32(if special {
                *u.choose(&[
                    0,
                    0x8000_0000,
                    0x7fc0_0000,
                    0xffc0_0000,
                    0x7fa0_0001,
                    0x7f80_0000,
                    0xff80_0000,
                    0x4f00_0000,
                    0xcf00_0001,
                    1,
                ])
                .unwrap_or(&0)
            } else {
                u.arbitrary().unwrap_or(0)
            }),
            T::F64 => Value::F64(if special {
                *u.choose(&[
                    0,
                    0x8000_0000_0000_0000,
                    0x7ff8_0000_0000_0000,
                    0xfff8_0000_0000_0000,
                    0x7ff4_0000_0000_0001,
                    0x7ff0_0000_0000_0000,
                    0xfff0_0000_0000_0000,
                    0x43e0_0000_0000_0000,
                    0xc1e0_0000_0020_0000,
                    1,
                ])
                .unwrap_or(&0)
            } else {
                u.arbitrary().unwrap_or(0)
            }),
            T::V128 => Value::V128(u.arbitrary().unwrap_or(0)),
            T::FuncRef => Value::NullFuncRef,
            T::ExternRef => Value::NullExternRef,
            T::ExnRef => Value::NullExnRef,
            T::AnyRef => Value::NullAnyRef,
        }
    }

    /// The Kiln value.
    pub fn to_kiln(self) -> kiln::Val {
        match self {
            Value::I32(v) => kiln::Val::I32(v),
            Value::I64(v) => kiln::Val::I64(v),
            Value::F32(v) => kiln::Val::F32(v),
            Value::F64(v) => kiln::Val::F64(v),
            Value::V128(v) => kiln::Val::V128(v.into()),
            Value::NullFuncRef => kiln::Val::FuncRef(None),
            Value::NullExternRef => kiln::Val::ExternRef(None),
            Value::NullExnRef => kiln::Val::ExnRef(None),
            Value::NullAnyRef => kiln::Val::AnyRef(None),
        }
    }

    /// The zero (or null) value of `ty`.
    pub fn zero(ty: kiln::ValType) -> Value {
        use kiln::ValType as T;
        match ty {
            T::I32 => Value::I32(0),
            T::I64 => Value::I64(0),
            T::F32 => Value::F32(0),
            T::F64 => Value::F64(0),
            T::V128 => Value::V128(0),
            T::FuncRef => Value::NullFuncRef,
            T::ExternRef => Value::NullExternRef,
            T::ExnRef => Value::NullExnRef,
            T::AnyRef => Value::NullAnyRef,
        }
    }
}

/// Generates a valid module with `config` (plus wasm-smith's termination
/// instrumentation when `fuel` is set: a global counting loop iterations
/// and calls, trapping with `unreachable` when it reaches zero).
pub fn smith_module(u: &mut Unstructured<'_>, config: wasm_smith::Config, fuel: Option<u32>) -> Result<Vec<u8>> {
    let mut m = wasm_smith::Module::new(config, u)?;
    if let Some(fuel) = fuel {
        m.ensure_termination(fuel).map_err(|_| arbitrary::Error::IncorrectFormat)?;
    }
    Ok(m.to_bytes())
}

/// The largest memory a module generated with `c` can have, 32- or 64-bit:
/// what [`KilnSettings::arbitrary`] must reserve so that `memory.grow`
/// succeeds in Kiln wherever it does in other engines.
pub fn max_memory_bytes(c: &wasm_smith::Config) -> u64 {
    let m64 = if c.memory64_enabled { u64::try_from(c.max_memory64_bytes).unwrap_or(u64::MAX) } else { 0 };
    c.max_memory32_bytes.max(m64)
}
