//! Allocation strategies, reuse of memory, and InstancePre.

use kiln::*;

const WAT: &str = r#"(module
    (memory (export "m") 1 4)
    (table $t (export "t") 4 funcref)
    (func $a (result i32) i32.const 11)
    (func $b (result i32) i32.const 22)
    (elem (i32.const 1) $a $b)
    (data (i32.const 100) "hello")
    (func (export "peek") (param i32) (result i32) local.get 0 i32.load8_u)
    (func (export "poke") (param i32 i32) local.get 0 local.get 1 i32.store8)
    (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
    (func (export "call") (param i32) (result i32) local.get 0 call_indirect (result i32))
    (func (export "set_null") (param i32) (table.set $t (local.get 0) (ref.null func))))"#;

fn pooling(total: u32) -> Engine {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(total).total_memories(total).total_tables(total).table_elements(100);
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).expect("pooling engine")
}

/// Instantiates, checks the fresh state, then dirties memory and table.
fn use_once(engine: &Engine, module: &Module) {
    let mut store = Store::new(engine, ());
    let i = Instance::new(&mut store, module, &[]).expect("instantiate");
    let peek = i.get_typed_func::<i32, i32>(&mut store, "peek").unwrap();
    let poke = i.get_typed_func::<(i32, i32), ()>(&mut store, "poke").unwrap();
    let grow = i.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
    let call = i.get_typed_func::<i32, i32>(&mut store, "call").unwrap();
    let set_null = i.get_typed_func::<i32, ()>(&mut store, "set_null").unwrap();
    // Fresh: data segment present, the rest zero, size 1 page, table as declared.
    assert_eq!(peek.call(&mut store, 100).unwrap(), 'h' as i32);
    assert_eq!(peek.call(&mut store, 0).unwrap(), 0);
    assert_eq!(peek.call(&mut store, 5000).unwrap(), 0);
    assert!(peek.call(&mut store, 70000).is_err(), "second page must not be accessible");
    assert_eq!(call.call(&mut store, 1).unwrap(), 11);
    assert_eq!(call.call(&mut store, 2).unwrap(), 22);
    assert!(call.call(&mut store, 0).is_err());
    // Dirty everything for the next user of the slots.
    poke.call(&mut store, (100, 'X' as i32)).unwrap();
    poke.call(&mut store, (5000, 7)).unwrap();
    assert_eq!(grow.call(&mut store, 2).unwrap(), 1);
    poke.call(&mut store, (70000, 9)).unwrap();
    set_null.call(&mut store, 1).unwrap();
}

#[test]
fn reused_slots_start_fresh_in_both_allocators() {
    for engine in [Engine::default(), pooling(2)] {
        let module = Module::new(&engine, WAT).unwrap();
        for _ in 0..50 {
            use_once(&engine, &module);
        }
    }
}

/// Stores that are dropped without running anything give their slots back
/// without a reset; stores whose host wrote through `Memory`/`Table`
/// handles must not: the next user of the slots still starts fresh.
#[test]
fn slots_start_fresh_after_untouched_and_host_written_instances() {
    for engine in [Engine::default(), pooling(1)] {
        let module = Module::new(&engine, WAT).unwrap();
        for _ in 0..20 {
            {
                let mut store = Store::new(&engine, ());
                Instance::new(&mut store, &module, &[]).unwrap();
            }
            {
                let mut store = Store::new(&engine, ());
                let i = Instance::new(&mut store, &module, &[]).unwrap();
                let m = i.get_memory(&mut store, "m").unwrap();
                m.data_mut(&mut store)[100] = b'Z';
                m.data_mut(&mut store)[6000] = 1;
                let t = i.get_table(&mut store, "t").unwrap();
                t.set(&mut store, 1, Val::FuncRef(None)).unwrap();
                t.set(&mut store, 3, Val::FuncRef(None)).unwrap();
            }
            {
                // Only reads a table element through the host: lazy
                // initialization writes the computed reference.
                let mut store = Store::new(&engine, ());
                let i = Instance::new(&mut store, &module, &[]).unwrap();
                let t = i.get_table(&mut store, "t").unwrap();
                assert!(matches!(t.get(&mut store, 2), Some(Val::FuncRef(Some(_)))));
            }
            use_once(&engine, &module);
        }
    }
}

#[test]
fn pooling_limit_is_a_clear_error() {
    let engine = pooling(2);
    let module = Module::new(&engine, WAT).unwrap();
    let mut store = Store::new(&engine, ());
    Instance::new(&mut store, &module, &[]).unwrap();
    Instance::new(&mut store, &module, &[]).unwrap();
    let err = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert!(format!("{err:#}").contains("limit reached"), "{err:#}");
    drop(store);
    // Slots come back when the store is dropped.
    let mut store = Store::new(&engine, ());
    Instance::new(&mut store, &module, &[]).unwrap();
    // A table larger than the slot is refused.
    let big = Module::new(&engine, "(module (table 1000 funcref))").unwrap();
    assert!(Instance::new(&mut store, &big, &[]).is_err());
}

#[test]
fn instance_pre_instantiates_in_many_stores() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (import "host" "double" (func $d (param i32) (result i32)))
        (func (export "run") (param i32) (result i32) local.get 0 call $d))"#,
    )?;
    let mut linker = Linker::<u32>::new(&engine);
    linker.func_wrap("host", "double", |mut c: Caller<'_, u32>, x: i32| {
        *c.data_mut() += 1;
        x * 2
    })?;
    let pre = linker.instantiate_pre(&module)?;
    for k in 0..20 {
        let mut store = Store::new(&engine, 0);
        let i = pre.instantiate(&mut store)?;
        let run = i.get_typed_func::<i32, i32>(&mut store, "run")?;
        assert_eq!(run.call(&mut store, k)?, 2 * k);
        assert_eq!(*store.data(), 1);
    }
    // Type errors are found once, up front.
    let mut bad = Linker::<u32>::new(&engine);
    bad.func_wrap("host", "double", |x: i64| x)?;
    assert!(bad.instantiate_pre(&module).is_err());
    Ok(())
}

#[test]
fn instantiation_scales_across_threads() {
    for engine in [Engine::default(), pooling(64)] {
        let module = Module::new(&engine, WAT).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (engine, module) = (engine.clone(), module.clone());
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        use_once(&engine, &module);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
}

/// Idle regions sit in per-thread shards; a thread must still find the
/// slots another thread gave back before it reports the pool exhausted,
/// and those slots must start fresh there too.
#[test]
fn slots_freed_on_one_thread_serve_another() {
    let engine = pooling(2);
    let module = Module::new(&engine, WAT).unwrap();
    for _ in 0..3 {
        std::thread::scope(|s| {
            // This thread takes both slots, dirties them, and gives them back.
            s.spawn(|| {
                let mut store = Store::new(&engine, ());
                Instance::new(&mut store, &module, &[]).unwrap();
                use_once(&engine, &module);
            })
            .join()
            .unwrap();
        });
        // Another thread needs both at once: the first thread's shard holds them.
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut store = Store::new(&engine, ());
                Instance::new(&mut store, &module, &[]).expect("first slot");
                Instance::new(&mut store, &module, &[]).expect("second slot");
            })
            .join()
            .unwrap();
        });
        use_once(&engine, &module);
    }
}
