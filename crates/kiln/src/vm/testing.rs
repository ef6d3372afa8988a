//! Hooks for Kiln's own tests, re-exported (hidden) as
//! `kiln::__private_testing`. Not part of the API: they break invariants
//! on purpose, to check that the runtime notices.

use crate::store::AsContextMut;

pub use crate::seal::reseal_entry;

/// Makes compiled code see `memory`'s base address as `base`, so that its
/// loads and stores of this memory go to `base + index` (checked against
/// the real memory's bounds, or relying on its guard region), as after a
/// bounds-check bug, while
/// the host's accesses still use the real memory. Used to check that a
/// fault at a trap site outside every linear memory is not taken for a
/// wasm trap.
///
/// # Safety
///
/// Every access wasm makes to this memory afterwards (at `base + index`,
/// for whatever indices it uses) must land on unmapped or inaccessible
/// memory and fault, instead of reading or corrupting whatever lies there.
/// A fault outside this store's memories kills the process: run such a
/// test in a child process. (Growing the memory publishes the real base
/// again.)
///
/// # Panics
///
/// `memory` belongs to another store.
pub unsafe fn set_memory_base(mut store: impl AsContextMut, memory: crate::Memory, base: *mut u8) {
    let opaque = &store.as_context_mut().0.opaque;
    opaque.check(&memory.0);
    let def = opaque.vm().memory(memory.0.index).definition();
    // SAFETY: `def` is the live definition of an unshared memory of this
    // store (a `Memory` handle never names a shared one), so only this
    // store's wasm reads it, and none runs while this thread holds the
    // store's exclusive borrow; what compiled code does with the new base
    // is the caller's contract.
    unsafe { std::ptr::addr_of_mut!((*def.as_ptr()).base).write(base) };
}

/// The number of exception objects `store` holds (live, or dead and not
/// collected yet): tests check that throwing in a loop keeps it bounded.
pub fn exception_objects(store: impl crate::store::AsContext) -> usize {
    store.as_context().0.opaque.vm().exns().len()
}

/// Runs `n` round trips into a fiber and back (a resume and a suspend
/// each) on a fresh 64 KiB stack, and returns the time they took: the raw
/// cost of Kiln's stack switch, for comparing it with other fiber
/// libraries (bench/async).
///
/// # Panics
///
/// The stack cannot be mapped.
pub fn fiber_round_trips(n: u64) -> std::time::Duration {
    let stack = super::fiber::FiberStack::new(64 << 10).expect("mapping a fiber stack");
    let mut fiber = super::fiber::Fiber::<()>::new(stack);
    let mut body = Some(|s: &super::fiber::Suspend| {
        loop {
            s.suspend()
        }
    });
    // Start it (the first resume runs the body to its first suspension).
    assert!(fiber.resume(&mut body).is_none());
    let start = std::time::Instant::now();
    for _ in 0..n {
        let _ = fiber.resume(&mut body);
    }
    let t = start.elapsed();
    // The body never returns: leak the fiber rather than drop it suspended.
    std::mem::forget(fiber);
    t
}

/// Makes every async call and async instantiation in `store` run on a
/// fiber, as in a store that may wait (an async host function, say),
/// rather than directly: for tests of the fiber path with modules that
/// never wait (the spec suite's async mode).
pub fn force_fibers<T>(store: &mut crate::Store<T>) {
    store.inner.opaque.note_may_wait();
}

/// How many functions of `module` were compiled after it was created
/// (lazily, at a first call or in the background); `None` if it was
/// compiled eagerly.
pub fn lazily_compiled(module: &crate::Module) -> Option<u32> {
    module.runtime().code.lazy().map(|l| l.compiled_count())
}

/// For a lazily compiled module: how many of its functions run baseline
/// code, and how many have final (Cranelift) code.
pub fn lazy_tiers(module: &crate::Module) -> Option<(u32, u32)> {
    module.runtime().code.lazy().map(|l| l.tier_counts())
}

/// For a lazily compiled module: where each defined function's code
/// starts within its page, for the functions installed after the module
/// was created (`None` for the others).
pub fn lazy_code_page_offsets(module: &crate::Module) -> Option<Vec<Option<usize>>> {
    module.runtime().code.lazy().map(|l| l.code_page_offsets())
}

/// For a lazily compiled module: how many on-stack-replacement entries
/// (optimized code taking over baseline activations at loop heads) it
/// has, and how many activations moved to one.
pub fn lazy_osr(module: &crate::Module) -> Option<(usize, u32)> {
    module.runtime().code.lazy().map(|l| l.osr_counts())
}

/// For a lazily compiled module: how many activations of defined
/// function `index` its baseline code counts as running.
pub fn lazy_running_activations(module: &crate::Module, index: u32) -> Option<i32> {
    module.runtime().code.lazy().map(|l| l.running_activations(index))
}

/// For a lazily compiled module: the defined functions reported hot by
/// their baseline code (called often, or a loop that ran long), which are
/// optimized before the others, in index order.
pub fn lazy_hot(module: &crate::Module) -> Option<Vec<u32>> {
    module.runtime().code.lazy().map(|l| l.hot_functions())
}

/// For a lazily compiled module: takes the next piece of background work
/// and, if it is replacing a function's baseline code, returns that
/// defined function (without compiling it). Shows the order in which a
/// background compiler would optimize.
pub fn lazy_next_optimized(module: &crate::Module) -> Option<Option<u32>> {
    module.runtime().code.lazy().map(|l| match l.next_to_compile() {
        Some(super::lazy_code::Work::Optimize(i)) => Some(i),
        _ => None,
    })
}

/// For a lazily compiled module: replaces defined function `index`'s
/// baseline code with optimized code now, on this thread (as the
/// background compiler would), so a test decides when that happens.
/// Returns whether the module compiles lazily.
pub fn lazy_optimize(module: &crate::Module, index: u32) -> bool {
    module.runtime().code.lazy().map(|l| l.optimize(index)).is_some()
}

/// Makes every compilation of a lazily compiled function fail in engines
/// made from `config`: tests the failure path of a first call (a trap
/// with the message, never a crash).
pub fn fail_lazy_compilation(config: &mut crate::Config) {
    config.fail_lazy_compilation = true;
}
