//! Settings that change the generated code, and therefore belong in every
//! cache key and compiled-artifact header.

use serde::{Deserialize, Serialize};

/// How much fuel each kind of operator costs. Fuel is charged per basic
/// block (the sum of its operators' costs), so the same program with the
/// same input always consumes the same fuel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FuelCosts {
    /// Operators not covered below.
    pub default: u32,
    /// `nop`, `drop`, `block`, `loop`, `else`, `end` and `unreachable`,
    /// which produce no work of their own.
    pub structural: u32,
    /// Loads and stores.
    pub memory: u32,
    /// Calls (direct, indirect, to the host).
    pub call: u32,
    /// `memory.grow`, bulk memory and table operations (per operation,
    /// not per byte).
    pub bulk: u32,
}

impl Default for FuelCosts {
    fn default() -> Self {
        FuelCosts { default: 1, structural: 0, memory: 1, call: 1, bulk: 1 }
    }
}

/// Code-generation settings shared by compiler and runtime.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tunables {
    /// Bytes of address space reserved for each linear memory (not counting
    /// the guard region). 32-bit memories with a reservation of at least
    /// 4 GiB never move and need no bounds checks for small offsets.
    pub memory_reservation: u64,
    /// Most bytes of address space reserved for a 64-bit linear memory
    /// (one with a smaller declared maximum reserves that). 64-bit memories
    /// are always bounds-checked explicitly and never move, so this is how
    /// far they can grow.
    pub memory64_reservation: u64,
    /// Bytes of inaccessible guard region after each memory's reservation.
    pub memory_guard_size: u64,
    /// Whether to instrument code for fuel accounting.
    pub consume_fuel: bool,
    /// With `consume_fuel`: whether running out of fuel calls into the
    /// runtime, which can refuel and yield to an async executor, instead
    /// of trapping on the spot (the cheaper check).
    pub fuel_async_yields: bool,
    /// Whether to instrument code for epoch-based interruption.
    pub epoch_interruption: bool,
    /// With `epoch_interruption`: whether a reached deadline is delivered
    /// by a signal to the thread running the store's wasm instead of
    /// being polled for at loop headers and calls (so compiled code
    /// carries no epoch checks; only on x86-64 Linux).
    pub epoch_signals: bool,
    /// Whether float results are canonicalized to a single NaN.
    pub nan_canonicalization: bool,
    /// Whether relaxed-SIMD operators use one fixed lowering on every host.
    pub relaxed_simd_deterministic: bool,
    /// Whether defined funcref tables start uninitialized and compute
    /// elements on first use (runtime behaviour only).
    pub table_lazy_init: bool,
    /// Whether memories with known initial contents map a copy-on-write
    /// image instead of copying data segments (runtime behaviour only).
    pub memory_init_cow: bool,
    /// Whether linear memories ask the OS for transparent huge pages
    /// (runtime behaviour only).
    pub memory_huge_pages: bool,
    /// Fuel charged per operator, when `consume_fuel` is on.
    pub fuel_costs: FuelCosts,
    /// The enabled WebAssembly features (wasmparser's `WasmFeatures` bits).
    pub features: u64,
}

impl Tunables {
    /// Whether a 32-bit memory access with this static `offset` and access
    /// `size` can rely entirely on the reservation plus guard region, so that
    /// no explicit bounds check is needed.
    pub fn access_needs_no_check(&self, offset: u64, size: u64) -> bool {
        // The largest address touched is (2^32 - 1) + offset + size - 1.
        let span = self.memory_reservation.saturating_add(self.memory_guard_size);
        self.memory_reservation >= 1 << 32 && (u64::from(u32::MAX)).saturating_add(offset).saturating_add(size) <= span
    }
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            memory_reservation: 1 << 32,
            memory64_reservation: 1 << 36,
            memory_guard_size: 2 << 30,
            consume_fuel: false,
            fuel_async_yields: false,
            epoch_interruption: false,
            epoch_signals: false,
            nan_canonicalization: false,
            relaxed_simd_deterministic: false,
            table_lazy_init: true,
            memory_init_cow: true,
            memory_huge_pages: true,
            fuel_costs: FuelCosts::default(),
            features: 0,
        }
    }
}
