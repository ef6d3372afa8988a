//! What builtins need from the (generic) store: fuel and epoch events and
//! resource-limit decisions, behind a trait object the store registers in
//! its `VMStoreContext`.

use kiln_environ::TrapCode;

/// How a store hook ends: continue, or stop wasm with a trap or host error.
pub enum HookError {
    /// Trap with this code.
    Trap(TrapCode),
    /// Stop with this error (returned unchanged to the caller of wasm).
    Host(anyhow::Error),
}

/// Store behaviour builtins call into.
pub trait VMStore {
    /// The epoch deadline passed: returns the new deadline, or stops.
    fn new_epoch(&mut self) -> Result<u64, HookError>;
    /// A memory wants to grow from `current` to `desired` bytes (`maximum`
    /// is its declared limit): `Ok(false)` makes `memory.grow` return -1.
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool, HookError>;
    /// A table wants to grow from `current` to `desired` elements.
    fn table_growing(&mut self, current: u64, desired: u64, maximum: Option<u64>) -> Result<bool, HookError>;
}
