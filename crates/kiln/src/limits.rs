//! Resource limits: a store's say over memory and table growth.

use anyhow::Result;

/// Decides whether a store's memories and tables may grow. Installed with
/// [`Store::limiter`](crate::Store::limiter).
///
/// Each growth request gets one of three answers: `Ok(true)` allows it,
/// `Ok(false)` denies it (`memory.grow`/`table.grow` return -1, as the spec
/// says; instantiation of a module whose initial sizes are denied fails),
/// and `Err(e)` stops the wasm that asked, returning `e` to the caller.
pub trait ResourceLimiter: Send {
    /// A memory wants to grow from `current` to `desired` bytes; `maximum`
    /// is its declared maximum, if any.
    ///
    /// # Errors
    ///
    /// An error stops execution and is returned to the caller of wasm.
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool>;

    /// A table wants to grow from `current` to `desired` elements.
    ///
    /// # Errors
    ///
    /// An error stops execution and is returned to the caller of wasm.
    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool>;

    /// The store's GC heap wants to hold `desired` bytes of objects, more
    /// than the `current` bytes this limiter allowed so far (0 at first);
    /// `maximum` is [`Config::max_gc_heap_size`](crate::Config::max_gc_heap_size).
    /// Asked by allocations of wasm and of the host API (not by constant
    /// expressions at instantiation, which only the configured maximum
    /// bounds), in steps of at least 1 MiB. `Ok(false)` lets the heap use
    /// only what a collection frees within `current`: if that is not
    /// enough, the allocation traps `allocation failed` (the host API's
    /// returns an error). Allows everything by default.
    ///
    /// # Errors
    ///
    /// An error stops execution and is returned to the caller of wasm.
    fn gc_heap_growing(&mut self, current: usize, desired: usize, maximum: usize) -> Result<bool> {
        let _ = (current, desired, maximum);
        Ok(true)
    }

    /// The most bytes this limiter lets any one memory have, if it has
    /// such a fixed cap; only used to word errors (the decisions are
    /// [`memory_growing`](Self::memory_growing)'s). `None` by default.
    fn memory_size_limit(&self) -> Option<usize> {
        None
    }

    /// The most bytes this limiter lets a store's GC heap have, if it has
    /// such a fixed cap: the heap sizes its nursery to fit (a quarter of
    /// it at most) rather than asking for more than the cap. The decisions
    /// are still [`gc_heap_growing`](Self::gc_heap_growing)'s. `None` by
    /// default: the first request then includes a nursery of up to 1 MiB
    /// (it grows to at most 4 MiB within what the limiter allowed),
    /// and a refusal makes the heap ask again without one.
    fn gc_heap_size_limit(&self) -> Option<usize> {
        None
    }

    /// The most elements this limiter lets any one table have, if it has
    /// such a fixed cap; only used to word errors (the decisions are
    /// [`table_growing`](Self::table_growing)'s). `None` by default.
    fn table_elements_limit(&self) -> Option<usize> {
        None
    }

    /// Most instances the store may hold.
    fn instances(&self) -> usize {
        DEFAULT_COUNT_LIMIT
    }

    /// Most tables the store may hold.
    fn tables(&self) -> usize {
        DEFAULT_COUNT_LIMIT
    }

    /// Most memories the store may hold.
    fn memories(&self) -> usize {
        DEFAULT_COUNT_LIMIT
    }
}

/// A [`ResourceLimiter`] whose growth decisions are async: installed
/// with [`Store::limiter_async`](crate::Store::limiter_async), consulted
/// during async calls and async instantiation, where the store waits for
/// each decision without blocking the thread (a limiter may, say, ask a
/// quota service). Implement it with `#[async_trait::async_trait]`, as
/// the trait is declared. A decision reached from a synchronous call is
/// an error (see [`Func::call_async`](crate::Func::call_async)).
#[async_trait::async_trait]
pub trait ResourceLimiterAsync: Send {
    /// As [`ResourceLimiter::memory_growing`].
    ///
    /// # Errors
    ///
    /// An error stops execution and is returned to the caller of wasm.
    async fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool>;

    /// As [`ResourceLimiter::table_growing`].
    ///
    /// # Errors
    ///
    /// An error stops execution and is returned to the caller of wasm.
    async fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> Result<bool>;

    /// As [`ResourceLimiter::gc_heap_growing`] (allows everything by
    /// default).
    ///
    /// # Errors
    ///
    /// An error stops execution and is returned to the caller of wasm.
    async fn gc_heap_growing(&mut self, current: usize, desired: usize, maximum: usize) -> Result<bool> {
        let _ = (current, desired, maximum);
        Ok(true)
    }

    /// As [`ResourceLimiter::memory_size_limit`].
    fn memory_size_limit(&self) -> Option<usize> {
        None
    }

    /// As [`ResourceLimiter::gc_heap_size_limit`].
    fn gc_heap_size_limit(&self) -> Option<usize> {
        None
    }

    /// As [`ResourceLimiter::table_elements_limit`].
    fn table_elements_limit(&self) -> Option<usize> {
        None
    }

    /// Most instances the store may hold.
    fn instances(&self) -> usize {
        DEFAULT_COUNT_LIMIT
    }

    /// Most tables the store may hold.
    fn tables(&self) -> usize {
        DEFAULT_COUNT_LIMIT
    }

    /// Most memories the store may hold.
    fn memories(&self) -> usize {
        DEFAULT_COUNT_LIMIT
    }
}

/// Default limit on instances, memories and tables per store.
pub const DEFAULT_COUNT_LIMIT: usize = 10_000;

/// A ready [`ResourceLimiter`] with fixed caps, built by [`StoreLimitsBuilder`].
#[derive(Clone, Debug)]
pub struct StoreLimits {
    memory_size: Option<usize>,
    table_elements: Option<usize>,
    gc_heap_size: Option<usize>,
    instances: usize,
    tables: usize,
    memories: usize,
    trap_on_grow_failure: bool,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            memory_size: None,
            table_elements: None,
            gc_heap_size: None,
            instances: DEFAULT_COUNT_LIMIT,
            tables: DEFAULT_COUNT_LIMIT,
            memories: DEFAULT_COUNT_LIMIT,
            trap_on_grow_failure: false,
        }
    }
}

/// Builds [`StoreLimits`].
#[derive(Clone, Debug, Default)]
pub struct StoreLimitsBuilder(StoreLimits);

impl StoreLimitsBuilder {
    /// No limits beyond the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Each memory may have at most `bytes` bytes: `memory.grow` beyond it
    /// fails, and so do instantiating a module and [`Memory::new`](crate::Memory::new)
    /// with a larger minimum.
    pub fn memory_size(mut self, bytes: usize) -> Self {
        self.0.memory_size = Some(bytes);
        self
    }

    /// Each table may have at most `elements` elements: `table.grow` beyond
    /// it fails, and so do instantiating a module and [`Table::new`](crate::Table::new)
    /// with a larger minimum. Untouched elements cost no memory, but every
    /// element may be written, at 8 bytes each.
    pub fn table_elements(mut self, elements: usize) -> Self {
        self.0.table_elements = Some(elements);
        self
    }

    /// The store's GC heap may hold at most `bytes` bytes of objects
    /// (rounded up to whole MiB): past it, allocations collect and then
    /// trap `allocation failed` if live objects still fill it. Applies to
    /// allocations by wasm and the host API.
    pub fn gc_heap_size(mut self, bytes: usize) -> Self {
        self.0.gc_heap_size = Some(bytes);
        self
    }

    /// At most `n` instances per store.
    pub fn instances(mut self, n: usize) -> Self {
        self.0.instances = n;
        self
    }

    /// At most `n` tables per store.
    pub fn tables(mut self, n: usize) -> Self {
        self.0.tables = n;
        self
    }

    /// At most `n` memories per store.
    pub fn memories(mut self, n: usize) -> Self {
        self.0.memories = n;
        self
    }

    /// Whether growth past a limit is an error that stops execution (true)
    /// rather than a -1 from `memory.grow`/`table.grow` (false, the default).
    pub fn trap_on_grow_failure(mut self, trap: bool) -> Self {
        self.0.trap_on_grow_failure = trap;
        self
    }

    /// The limits.
    pub fn build(self) -> StoreLimits {
        self.0
    }
}

/// The error a [`StoreLimits`] returns when it is set to stop execution on
/// a denied growth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    /// "memory", "table" or "GC heap".
    pub what: &'static str,
    /// The size asked for (bytes or elements).
    pub desired: usize,
    /// The limit.
    pub limit: usize,
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = if self.what == "table" { "elements" } else { "bytes" };
        write!(f, "{} limit exceeded: {} {unit} requested, limit is {}", self.what, self.desired, self.limit)
    }
}

impl std::error::Error for LimitExceeded {}

/// The error for a memory or table (`what`, described by `name`) whose
/// initial size of `desired` bytes or elements the store's limiter
/// refused; a [`LimitExceeded`] when the limiter states its `limit`.
pub(crate) fn refused(what: &'static str, name: &str, desired: usize, limit: Option<usize>) -> anyhow::Error {
    let unit = if what == "table" { "elements" } else { "bytes" };
    match limit {
        Some(limit) => anyhow::Error::new(LimitExceeded { what, desired, limit })
            .context(format!("{name} is too large for the store's limits")),
        None => anyhow::anyhow!("{name} of {desired} {unit} exceeds the store's limits"),
    }
}

impl StoreLimits {
    /// The answer to a request to grow `what` to `desired` under `limit`:
    /// allowed within it; past it, refused or (with
    /// `trap_on_grow_failure`) an error naming the limit.
    fn decide(&self, what: &'static str, desired: usize, limit: Option<usize>) -> Result<bool> {
        match limit {
            Some(limit) if desired > limit => {
                if self.trap_on_grow_failure {
                    Err(LimitExceeded { what, desired, limit }.into())
                } else {
                    Ok(false)
                }
            }
            _ => Ok(true),
        }
    }
}

impl ResourceLimiter for StoreLimits {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        self.decide("memory", desired, self.memory_size)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        self.decide("table", desired, self.table_elements)
    }

    fn gc_heap_growing(&mut self, _current: usize, desired: usize, _maximum: usize) -> Result<bool> {
        // The heap asks in whole MiB: a limit that is not a multiple of
        // one is rounded up.
        self.decide("GC heap", desired, self.gc_heap_size.map(|l| l.next_multiple_of(1 << 20)))
    }

    fn memory_size_limit(&self) -> Option<usize> {
        self.memory_size
    }

    fn gc_heap_size_limit(&self) -> Option<usize> {
        self.gc_heap_size
    }

    fn table_elements_limit(&self) -> Option<usize> {
        self.table_elements
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}
