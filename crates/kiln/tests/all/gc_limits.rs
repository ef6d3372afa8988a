//! Limits on the GC heap (`-W gc`): a store's resource limiter bounds it
//! (wasm and host allocations, with collections before a refusal is
//! final), and fuel and epoch interruption stop loops that only allocate.

use kiln::{
    AsContextMut, Config, Engine, Instance, LimitExceeded, Module, ResourceLimiter, Store, StoreLimits,
    StoreLimitsBuilder, StructRef, StructType, Val, WasmFeature,
};

fn engine(config: impl FnOnce(&mut Config)) -> Engine {
    let mut c = Config::new();
    c.wasm_feature_set(WasmFeature::Gc, true);
    config(&mut c);
    Engine::new(&c).expect("engine")
}

/// `keep(n)` links `n` more 64 KiB arrays into a list held by a global;
/// `churn(n)` makes `n` such arrays and drops each; `reset()` drops the
/// list.
const ARRAYS: &str = r#"
    (module
      (type $a (array (mut i8)))
      (type $link (struct (field (ref $a)) (field (ref null $link))))
      (global $keep (mut (ref null $link)) (ref.null $link))
      (func (export "keep") (param $n i32)
        (loop $more
          (global.set $keep (struct.new $link (array.new_default $a (i32.const 0x1_0000)) (global.get $keep)))
          (local.tee $n (i32.sub (local.get $n) (i32.const 1)))
          (br_if $more)))
      (func (export "churn") (param $n i32)
        (loop $more
          (drop (array.new_default $a (i32.const 0x1_0000)))
          (local.tee $n (i32.sub (local.get $n) (i32.const 1)))
          (br_if $more)))
      (func (export "reset") (global.set $keep (ref.null $link))))"#;

fn call(
    mut store: impl AsContextMut<Data: Send + 'static>,
    i: &Instance,
    name: &str,
    args: &[Val],
) -> kiln::Result<()> {
    let f = i.get_func(&mut store, name).expect("export");
    f.call(&mut store, args, &mut [])
}

#[test]
fn store_limits_bound_the_gc_heap() -> kiln::Result<()> {
    let engine = engine(|_| {});
    let module = Module::new(&engine, ARRAYS)?;
    let mut store = Store::new(&engine, StoreLimitsBuilder::new().gc_heap_size(2 << 20).build());
    store.limiter(|l| l as &mut dyn ResourceLimiter);
    let i = Instance::new(&mut store, &module, &[])?;
    // Garbage is collected within the limit: 64 MiB made in all.
    call(&mut store, &i, "churn", &[Val::I32(1024)])?;
    let stats = store.gc_heap_stats().expect("a heap");
    assert!(stats.collections > 0);
    assert!(stats.used_bytes <= 2 << 20, "{stats:?}");
    // Live data past the limit traps, after a collection finds nothing to free.
    let err = call(&mut store, &i, "keep", &[Val::I32(64)]).expect_err("4 MiB of live arrays");
    assert!(format!("{err:?}").contains("allocation failed"), "{err:?}");
    // Once the list is dropped, the same heap serves again.
    call(&mut store, &i, "reset", &[])?;
    call(&mut store, &i, "keep", &[Val::I32(16)])?;
    // The host API is bounded too.
    let ty = StructType::new(
        &engine,
        [kiln::FieldType { storage: kiln::StorageType::Val(kiln::ValType::I32), mutable: false }],
    );
    let err = (|| -> kiln::Result<()> {
        for _ in 0..100_000 {
            let mut scope = kiln::RootScope::new(&mut store);
            call(&mut scope, &i, "keep", &[Val::I32(1)])?;
            StructRef::new(&mut scope, &ty, &[Val::I32(1)])?;
        }
        Ok(())
    })()
    .expect_err("the limit holds for host allocations");
    assert!(format!("{err:?}").contains("allocation failed"), "{err:?}");
    Ok(())
}

#[test]
fn trap_on_grow_failure_reports_the_gc_heap_limit() -> kiln::Result<()> {
    let engine = engine(|_| {});
    let module = Module::new(&engine, ARRAYS)?;
    let limits = StoreLimitsBuilder::new().gc_heap_size(1 << 20).trap_on_grow_failure(true).build();
    let mut store = Store::new(&engine, limits);
    store.limiter(|l| l as &mut dyn ResourceLimiter);
    let i = Instance::new(&mut store, &module, &[])?;
    let err = call(&mut store, &i, "keep", &[Val::I32(64)]).expect_err("past 1 MiB");
    let limit = err.downcast_ref::<LimitExceeded>().expect("the limiter's error");
    assert_eq!((limit.what, limit.limit), ("GC heap", 1 << 20));
    Ok(())
}

/// A limiter that records what it is asked and allows up to a cap.
struct Recorder {
    asked: Vec<(usize, usize, usize)>,
    cap: usize,
}

impl ResourceLimiter for Recorder {
    fn memory_growing(&mut self, _: usize, _: usize, _: Option<usize>) -> kiln::Result<bool> {
        Ok(true)
    }
    fn table_growing(&mut self, _: usize, _: usize, _: Option<usize>) -> kiln::Result<bool> {
        Ok(true)
    }
    fn gc_heap_growing(&mut self, current: usize, desired: usize, maximum: usize) -> kiln::Result<bool> {
        self.asked.push((current, desired, maximum));
        Ok(desired <= self.cap)
    }
}

#[test]
fn the_limiter_is_asked_in_growing_steps_up_to_the_configured_maximum() -> kiln::Result<()> {
    let engine = engine(|c| {
        c.max_gc_heap_size(64 << 20);
    });
    let module = Module::new(&engine, ARRAYS)?;
    let mut store = Store::new(&engine, Recorder { asked: Vec::new(), cap: 8 << 20 });
    store.limiter(|r| r as &mut dyn ResourceLimiter);
    let i = Instance::new(&mut store, &module, &[])?;
    call(&mut store, &i, "keep", &[Val::I32(64)])?;
    let err = call(&mut store, &i, "keep", &[Val::I32(128)]).expect_err("past 8 MiB of live data");
    assert!(format!("{err:?}").contains("allocation failed"), "{err:?}");
    let asked = &store.data().asked;
    assert!(asked.len() >= 4, "{asked:?}");
    // What was allowed only grows (after a refusal the heap may ask for
    // less: the same without its nursery).
    for w in asked.windows(2) {
        assert!(w[0].0 <= w[1].0, "allowances grow: {asked:?}");
    }
    assert!(asked.iter().all(|&(current, desired, maximum)| current < desired && maximum == 64 << 20), "{asked:?}");
    assert!(asked.iter().any(|&(_, desired, _)| desired > 8 << 20), "a refused request: {asked:?}");
    Ok(())
}

const ALLOCATE_FOREVER: &str = r#"
    (module
      (type $s (struct (field i32) (field (ref null $s))))
      (func (export "run")
        (local $l (ref null $s))
        (loop $forever
          (local.set $l (struct.new $s (i32.const 1) (local.get $l)))
          (local.set $l (struct.new $s (i32.const 2) (ref.null $s)))
          (br $forever))))"#;

#[test]
fn fuel_stops_a_loop_that_only_allocates() -> kiln::Result<()> {
    let engine = engine(|c| {
        c.consume_fuel(true);
    });
    let module = Module::new(&engine, ALLOCATE_FOREVER)?;
    let mut store = Store::new(&engine, ());
    store.set_fuel(5_000_000)?;
    let i = Instance::new(&mut store, &module, &[])?;
    let err = call(&mut store, &i, "run", &[]).expect_err("fuel runs out");
    assert!(format!("{err:?}").contains("fuel"), "{err:?}");
    assert!(store.gc_heap_stats().expect("a heap").collections > 0, "the loop allocated enough to collect");
    Ok(())
}

#[test]
fn an_epoch_deadline_stops_a_loop_that_only_allocates() -> kiln::Result<()> {
    let engine = engine(|c| {
        c.epoch_interruption(true);
    });
    let module = Module::new(&engine, ALLOCATE_FOREVER)?;
    let mut store = Store::new(&engine, ());
    store.set_epoch_deadline(1);
    store.epoch_deadline_trap();
    let i = Instance::new(&mut store, &module, &[])?;
    let ticker = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            engine.increment_epoch();
        })
    };
    let err = call(&mut store, &i, "run", &[]).expect_err("the deadline passes");
    ticker.join().expect("ticker");
    assert!(format!("{err:?}").contains("interrupt"), "{err:?}");
    assert!(store.gc_heap_stats().expect("a heap").collections > 0, "the loop allocated enough to collect");
    Ok(())
}

#[test]
fn store_limits_default_to_no_gc_limit() {
    // Only the configured maximum applies without a limiter's cap.
    let mut limits: StoreLimits = StoreLimitsBuilder::new().build();
    assert!(limits.gc_heap_growing(0, 1 << 30, 1 << 31).expect("no error"));
}

#[test]
fn the_pooling_allocator_gives_each_store_a_gc_heap_slot() -> kiln::Result<()> {
    let mut pooling = kiln::PoolingAllocationConfig::new();
    pooling.total_gc_heaps(2);
    let engine = engine(|c| {
        c.allocation_strategy(kiln::InstanceAllocationStrategy::Pooling(pooling));
    });
    let module = Module::new(&engine, ARRAYS)?;
    let start = |engine: &Engine| -> kiln::Result<(Store<()>, Instance)> {
        let mut store = Store::new(engine, ());
        let i = Instance::new(&mut store, &module, &[])?;
        Ok((store, i))
    };
    let (mut a, ia) = start(&engine)?;
    let (mut b, ib) = start(&engine)?;
    call(&mut a, &ia, "keep", &[Val::I32(40)])?;
    call(&mut b, &ib, "churn", &[Val::I32(200)])?;
    let err = start(&engine).map(|_| ()).expect_err("both slots are in use");
    assert!(format!("{err:?}").contains("limit reached"), "{err:?}");
    // A dropped store's slot serves the next store, reset.
    drop(a);
    let (mut c, ic) = start(&engine)?;
    call(&mut c, &ic, "keep", &[Val::I32(40)])?;
    call(&mut c, &ic, "churn", &[Val::I32(200)])?;
    let stats = c.gc_heap_stats().expect("a heap");
    assert!(stats.collections > 0 && stats.live_bytes >= 40 << 16, "{stats:?}");
    call(&mut b, &ib, "keep", &[Val::I32(4)])?;
    Ok(())
}
