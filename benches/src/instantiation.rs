//! Instantiation measurements shared by the criterion bench and
//! `instantiate-bench`: a new `Store` (with an empty WASI context when the
//! module imports anything) plus `InstancePre::instantiate`, dropped
//! afterwards — the same work Wasmtime's peer runner times.

use kiln::{
    Config, DirectoryCache, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, PoolingAllocationConfig,
    Store,
};
use kiln_wasi::{WasiCtx, WasiCtxBuilder};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which instance allocator an engine uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocation {
    /// The default on-demand allocator.
    OnDemand,
    /// The pooling allocator, with the limits Wasmtime's peer runner uses
    /// (1,000 instances, memories and tables; 20,000 table elements).
    Pooling,
}

/// Store data: a WASI context for modules that import anything.
pub struct Host {
    /// The WASI context, when the module needs one.
    pub wasi: Option<WasiCtx>,
}

/// An engine with `allocation`, caching compiled modules in the user's
/// directory cache so that a large module compiles once across runs.
///
/// # Errors
///
/// The engine could not be created (pooling reservations failed).
pub fn engine(allocation: Allocation) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.cranelift_debug_verifier(false);
    if allocation == Allocation::Pooling {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(1000).total_memories(1000).total_tables(1000).table_elements(20_000);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    if let Some(Ok(cache)) = DirectoryCache::default_dir().map(DirectoryCache::new) {
        config.cache(Arc::new(cache));
    }
    Engine::new(&config)
}

/// A module ready to instantiate repeatedly.
pub struct Prepared {
    engine: Engine,
    pre: InstancePre<Host>,
    needs_wasi: bool,
}

impl Prepared {
    /// Compiles (or loads from the cache) `wasm` and resolves its imports
    /// against WASI preview 1.
    ///
    /// # Errors
    ///
    /// The module is invalid or imports something WASI does not provide.
    pub fn new(engine: &Engine, wasm: &[u8]) -> anyhow::Result<Prepared> {
        let module = Module::from_binary(engine, wasm)?;
        let needs_wasi = module.imports().next().is_some();
        let mut linker = Linker::new(engine);
        kiln_wasi::add_to_linker(&mut linker, |h: &mut Host| h.wasi.as_mut().expect("a WASI context"))?;
        let pre = linker.instantiate_pre(&module)?;
        Ok(Prepared { engine: engine.clone(), pre, needs_wasi })
    }

    /// One instantiation: new store, instance, both dropped.
    ///
    /// # Errors
    ///
    /// Instantiation failed (e.g. a pooling limit).
    pub fn instantiate_once(&self) -> anyhow::Result<()> {
        let wasi = self.needs_wasi.then(|| WasiCtxBuilder::new().build());
        let mut store = Store::new(&self.engine, Host { wasi });
        self.pre.instantiate(&mut store)?;
        Ok(())
    }

    /// Wall time of `iters` instantiations spread over `threads` threads.
    ///
    /// # Errors
    ///
    /// Any instantiation failed.
    pub fn run(&self, iters: u64, threads: usize) -> anyhow::Result<Duration> {
        if threads <= 1 {
            let t = Instant::now();
            for _ in 0..iters {
                self.instantiate_once()?;
            }
            return Ok(t.elapsed());
        }
        let per_thread = iters.div_ceil(threads as u64);
        let t = Instant::now();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(move || -> anyhow::Result<()> {
                        for _ in 0..per_thread {
                            self.instantiate_once()?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles.into_iter().try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("thread panicked"))?)
        })?;
        Ok(t.elapsed().mul_f64(iters as f64 / (per_thread * threads as u64) as f64))
    }
}

/// Module (a) of the instantiation benchmark: 30,000 functions, a
/// 7,500-element table filled by element segments, 1 MiB of data.
pub fn module_a() -> Vec<u8> {
    wat::parse_str(crate::large_module_wat(30_000, 7_500, 1 << 20)).expect("generated text is valid")
}
