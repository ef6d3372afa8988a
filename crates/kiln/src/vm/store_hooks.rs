//! What the runtime needs from the (generic) store: epoch events and
//! resource-limit decisions for builtins, and its [`VmStore`]. A call into
//! wasm lends the store as a `&mut dyn VMStore` to the activation it pushes.

use super::store::VmStore;
use kiln_environ::TrapCode;
use std::any::Any;

/// How a store hook ends: continue, or stop wasm with a trap or host error.
pub enum HookError {
    /// Trap with this code.
    Trap(TrapCode),
    /// Stop with this error (returned unchanged to the caller of wasm).
    Host(anyhow::Error),
}

/// Store behaviour the runtime calls into.
pub trait VMStore: Any {
    /// The raw half of the store.
    fn vm_store(&mut self) -> &mut VmStore;
    /// The store as `Any`, for host functions to find their store type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// The epoch deadline passed: returns the new deadline, or stops.
    fn new_epoch(&mut self) -> Result<u64, HookError>;
    /// The fuel counter in the store context reached `threshold`: refuel
    /// it below that from the store's reserve (see
    /// `VmStore::refuel_from_reserve`), or stop with `OutOfFuel`.
    fn out_of_fuel(&mut self, threshold: i64) -> Result<(), HookError>;
    /// A memory wants to grow from `current` to `desired` bytes (`maximum`
    /// is its declared limit): `Ok(false)` makes `memory.grow` return -1.
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool, HookError>;
    /// A table wants to grow from `current` to `desired` elements.
    fn table_growing(&mut self, current: u64, desired: u64, maximum: Option<u64>) -> Result<bool, HookError>;
    /// The GC heap wants to hold `desired` bytes, more than the `current`
    /// allowed so far (`maximum` is the configured limit): `Ok(false)`
    /// keeps it within `current`.
    fn gc_heap_growing(&mut self, current: u64, desired: u64, maximum: u64) -> Result<bool, HookError>;
    /// The store limiter's fixed cap on the GC heap, if it states one.
    fn gc_heap_size_limit(&mut self) -> Option<u64>;
    /// Creates the store's GC heap if it has none (from the engine's
    /// allocator): the first allocation of a module that declares no GC
    /// type makes it.
    fn ensure_gc_heap(&mut self) -> Result<(), HookError>;
}
