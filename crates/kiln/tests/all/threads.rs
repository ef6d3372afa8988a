//! Many stores on many threads, sharing one engine and module.

use kiln::*;

#[test]
fn stores_run_in_parallel() {
    let engine = Engine::default();
    let module = Module::new(&engine, r#"(module
        (func $fib (export "fib") (param i32) (result i32)
            (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
                (then (local.get 0))
                (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                               (call $fib (i32.sub (local.get 0) (i32.const 2))))))))"#)
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
    let module = Module::new(&engine, r#"(module (memory 1)
        (func (export "oob") (param i32) (result i32) local.get 0 i32.load))"#)
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
