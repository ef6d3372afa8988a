//! Many stores on many threads, sharing one engine and module.

use kiln::*;

#[test]
fn stores_run_in_parallel() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (func $fib (export "fib") (param i32) (result i32)
            (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
                (then (local.get 0))
                (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                               (call $fib (i32.sub (local.get 0) (i32.const 2))))))))"#,
    )
    .unwrap();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let engine = engine.clone();
            let module = module.clone();
            std::thread::spawn(move || {
                let mut store = Store::new(&engine, ());
                let i = Instance::new(&mut store, &module, &[]).unwrap();
                let fib = i.get_typed_func::<i32, i32>(&mut store, "fib").unwrap();
                let mut sum = 0;
                for n in 0..20 {
                    sum += fib.call(&mut store, n + (t % 2)).unwrap();
                }
                sum
            })
        })
        .collect();
    let sums: Vec<i32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (t, s) in sums.iter().enumerate() {
        assert_eq!(*s, if t % 2 == 0 { 10945 } else { 17710 });
    }
}

#[test]
fn traps_on_many_threads() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (memory 1)
        (func (export "oob") (param i32) (result i32) local.get 0 i32.load))"#,
    )
    .unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (engine, module) = (engine.clone(), module.clone());
            std::thread::spawn(move || {
                let mut store = Store::new(&engine, ());
                let i = Instance::new(&mut store, &module, &[]).unwrap();
                let f = i.get_typed_func::<i32, i32>(&mut store, "oob").unwrap();
                for k in 0..200 {
                    let e = f.call(&mut store, 70000 + k).unwrap_err();
                    assert_eq!(e.downcast_ref::<Trap>().map(|t| t.code()), Some(TrapCode::MemoryOutOfBounds));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn producer_consumer_on_a_shared_memory() -> Result<()> {
    // A ring of one slot: the producer waits until the slot is empty (0),
    // stores a value and notifies; the consumer waits until it is full,
    // adds it to a sum, empties it and notifies.
    let wat = r#"(module
        (memory (import "env" "memory") 1 1 shared)
        (func (export "produce") (param $n i32)
            (local $i i32) (local $v i32)
            (local.set $i (i32.const 1))
            (block $done (loop $l
                (br_if $done (i32.gt_u (local.get $i) (local.get $n)))
                (block $ready (loop $wait
                    ;; Waits on the value seen full: reloading it for the
                    ;; wait could see the slot emptied meanwhile and sleep
                    ;; on 0 while the consumer sleeps waiting for a value.
                    (local.set $v (i32.atomic.load (i32.const 0)))
                    (br_if $ready (i32.eqz (local.get $v)))
                    (drop (memory.atomic.wait32 (i32.const 0) (local.get $v) (i64.const -1)))
                    (br $wait)))
                (i32.atomic.store (i32.const 0) (local.get $i))
                (drop (memory.atomic.notify (i32.const 0) (i32.const 1)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $l))))
        (func (export "consume") (param $n i32) (result i64)
            (local $sum i64) (local $v i32)
            (block $done (loop $l
                (br_if $done (i32.eqz (local.get $n)))
                (block $ready (loop $wait
                    (local.set $v (i32.atomic.load (i32.const 0)))
                    (br_if $ready (local.get $v))
                    (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1)))
                    (br $wait)))
                (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_u (local.get $v))))
                (i32.atomic.store (i32.const 0) (i32.const 0))
                (drop (memory.atomic.notify (i32.const 0) (i32.const 1)))
                (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                (br $l)))
            (local.get $sum)))"#;
    let engine = Engine::default();
    let module = Module::new(&engine, wat)?;
    let memory = SharedMemory::new(&engine, MemoryType::shared(1, 1))?;
    const N: i32 = 20_000;
    let run = |role: &'static str| {
        let (engine, module, memory) = (engine.clone(), module.clone(), memory.clone());
        std::thread::spawn(move || -> Result<i64> {
            let mut store = Store::new(&engine, ());
            let i = Instance::new(&mut store, &module, &[memory.into()])?;
            if role == "produce" {
                i.get_typed_func::<i32, ()>(&mut store, "produce")?.call(&mut store, N)?;
                Ok(0)
            } else {
                i.get_typed_func::<i32, i64>(&mut store, "consume")?.call(&mut store, N)
            }
        })
    };
    let consumer = run("consume");
    let producer = run("produce");
    producer.join().expect("producer thread")?;
    let sum = consumer.join().expect("consumer thread")?;
    assert_eq!(sum, i64::from(N) * i64::from(N + 1) / 2);
    Ok(())
}

#[test]
fn wait_times_out_and_unshared_wait_traps() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (memory (export "m") 1 1 shared)
        (func (export "wait") (param i64) (result i32) (memory.atomic.wait32 (i32.const 0) (i32.const 0) (local.get 0))))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let wait = i.get_typed_func::<i64, i32>(&mut store, "wait")?;
    let start = std::time::Instant::now();
    assert_eq!(wait.call(&mut store, 20_000_000)?, 2, "timed out");
    assert!(start.elapsed() >= std::time::Duration::from_millis(20));
    assert!(i.get_export(&mut store, "m").and_then(Extern::into_shared_memory).is_some());
    let unshared = Module::new(
        &engine,
        r#"(module (memory 1)
        (func (export "wait") (result i32) (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const 0))))"#,
    )?;
    let i = Instance::new(&mut store, &unshared, &[])?;
    let err = i.get_typed_func::<(), i32>(&mut store, "wait")?.call(&mut store, ()).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>().map(|t| t.code()), Some(TrapCode::AtomicWaitNonSharedMemory));
    Ok(())
}
