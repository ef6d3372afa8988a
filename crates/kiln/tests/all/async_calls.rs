//! Async calls: wasm on fibers, async host functions, epoch yields,
//! cancellation, and what crosses the fiber boundary (traps, panics,
//! stack overflow, threads).

use kiln::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

/// Polls `fut` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(Waker::noop()))
}

/// Polls `fut` until it completes; returns its output and how many polls
/// returned `Pending`.
fn run<F: Future>(fut: F) -> (F::Output, usize) {
    let mut fut = Box::pin(fut);
    let mut pending = 0;
    loop {
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => return (v, pending),
            Poll::Pending => pending += 1,
        }
    }
}

/// A future that is pending `n` times (waking itself), then ready with `v`.
struct PendingFor<T> {
    n: usize,
    v: Option<T>,
}

impl<T: Unpin> Future for PendingFor<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if self.n == 0 {
            return Poll::Ready(self.v.take().expect("polled after completion"));
        }
        self.n -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn assert_send<T: Send>(_: &T) {}

fn instance(store: &mut Store<()>, wat: &str) -> Instance {
    let module = Module::new(store.engine(), wat).unwrap();
    Instance::new(store, &module, &[]).unwrap()
}

#[test]
fn call_async_returns_what_call_returns() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let i = instance(
        &mut store,
        r#"(module (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"#,
    );
    let add = i.get_typed_func::<(i32, i32), i32>(&mut store, "add").unwrap();
    let fut = add.call_async(&mut store, (2, 40));
    assert_send(&fut);
    let (r, pending) = run(fut);
    assert_eq!(r.unwrap(), 42);
    assert_eq!(pending, 0);

    let f = i.get_func(&mut store, "add").unwrap();
    let mut out = [Val::I32(0)];
    let (r, _) = run(f.call_async(&mut store, &[Val::I32(5), Val::I32(6)], &mut out));
    r.unwrap();
    assert_eq!(out[0].i32().unwrap(), 11);
    // Synchronous calls still work on the same store.
    assert_eq!(add.call(&mut store, (1, 1)).unwrap(), 2);

    // Nothing in this store can wait, so its async calls ran directly;
    // on a fiber they return the same.
    kiln::__private_testing::force_fibers(&mut store);
    let (r, pending) = run(add.call_async(&mut store, (2, 40)));
    assert_eq!((r.unwrap(), pending), (42, 0));
    let (r, _) = run(f.call_async(&mut store, &[Val::I32(5), Val::I32(7)], &mut out));
    r.unwrap();
    assert_eq!(out[0].i32().unwrap(), 12);
}

fn linker_with_sleep(engine: &Engine, polls: usize) -> Linker<()> {
    let mut linker = Linker::new(engine);
    linker
        .func_wrap_async("host", "sleep", move |_caller: Caller<'_, ()>, (x,): (i32,)| {
            Box::new(PendingFor { n: polls, v: Some(x * 2) })
        })
        .unwrap();
    linker
}

const CALLS_SLEEP: &str = r#"(module
    (import "host" "sleep" (func $sleep (param i32) (result i32)))
    (func (export "run") (param i32) (result i32)
        (i32.add (call $sleep (local.get 0)) (call $sleep (i32.const 1)))))"#;

#[test]
fn an_async_host_function_suspends_the_call_until_its_future_is_ready() {
    let engine = Engine::default();
    let linker = linker_with_sleep(&engine, 3);
    let module = Module::new(&engine, CALLS_SLEEP).unwrap();
    let mut store = Store::new(&engine, ());
    let (i, pending) = run(linker.instantiate_async(&mut store, &module));
    let i = i.unwrap();
    assert_eq!(pending, 0);
    let f = i.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    let (r, pending) = run(f.call_async(&mut store, 10));
    assert_eq!(r.unwrap(), 22);
    assert_eq!(pending, 6, "each of the two host calls is pending three times");
}

#[test]
fn an_async_host_function_in_a_synchronous_call_is_an_error() {
    let engine = Engine::default();
    let linker = linker_with_sleep(&engine, 1);
    let module = Module::new(&engine, CALLS_SLEEP).unwrap();
    let mut store = Store::new(&engine, ());
    let i = linker.instantiate(&mut store, &module).unwrap();
    let f = i.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    let e = f.call(&mut store, 1).unwrap_err();
    assert!(format!("{e:?}").contains("call_async"), "{e:?}");
    // The store is fine afterwards.
    let (r, _) = run(f.call_async(&mut store, 1));
    assert_eq!(r.unwrap(), 4);
}

#[test]
fn traps_and_stack_overflow_on_a_fiber_are_ordinary_traps() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    kiln::__private_testing::force_fibers(&mut store);
    let i = instance(
        &mut store,
        r#"(module
            (func (export "boom") unreachable)
            (func $r (export "recurse") (param i32) (result i32)
                (i32.add (i32.const 1) (call $r (local.get 0)))))"#,
    );
    let boom = i.get_typed_func::<(), ()>(&mut store, "boom").unwrap();
    let e = run(boom.call_async(&mut store, ())).0.unwrap_err();
    assert_eq!(e.downcast_ref::<Trap>().map(Trap::code), Some(TrapCode::UnreachableCodeReached));
    let recurse = i.get_typed_func::<i32, i32>(&mut store, "recurse").unwrap();
    for _ in 0..3 {
        let e = run(recurse.call_async(&mut store, 0)).0.unwrap_err();
        assert_eq!(e.downcast_ref::<Trap>().map(Trap::code), Some(TrapCode::StackOverflow), "{e:?}");
    }
    // The same store then runs normally, on and off fibers.
    assert!(run(boom.call_async(&mut store, ())).0.is_err());
    assert!(recurse.call(&mut store, 0).is_err());
}

#[test]
fn a_host_panic_on_a_fiber_reaches_the_poller() {
    let engine = Engine::default();
    let mut linker = Linker::<()>::new(&engine);
    linker
        .func_wrap_async("host", "sleep", |_c: Caller<'_, ()>, (_x,): (i32,)| -> HostFuture<'_, i32> {
            Box::new(async { panic!("host function failed") })
        })
        .unwrap();
    let module = Module::new(&engine, CALLS_SLEEP).unwrap();
    let mut store = Store::new(&engine, ());
    let i = linker.instantiate(&mut store, &module).unwrap();
    let f = i.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(f.call_async(&mut store, 1))));
    let payload = r.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"host function failed"));
}

/// Runs `spin` for five polls while another thread advances the epoch
/// every millisecond, then drops (cancels) the call.
fn spin_for_five_polls<T: Send + 'static>(engine: &Engine, store: &mut Store<T>, spin: TypedFunc<(), ()>) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let (engine, stop) = (engine.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(1));
                engine.increment_epoch();
            }
        })
    };
    let mut fut = Box::pin(spin.call_async(store, ()));
    for _ in 0..5 {
        assert!(poll_once(&mut fut).is_pending());
    }
    stop.store(true, Ordering::SeqCst);
    ticker.join().unwrap();
}

#[test]
fn epoch_deadlines_yield_to_the_executor_and_the_loop_continues() {
    for signals in [true, false] {
        let mut config = Config::new();
        config.epoch_interruption(true).epoch_interruption_signals(signals);
        let engine = Engine::new(&config).unwrap();
        let mut linker = Linker::<usize>::new(&engine);
        linker.func_wrap("host", "tick", |mut c: Caller<'_, usize>| *c.data_mut() += 1).unwrap();
        let module = Module::new(
            &engine,
            r#"(module (import "host" "tick" (func $tick))
                (global $n (export "n") (mut i64) (i64.const 0))
                (func (export "spin") (loop $l (call $tick) (br $l)))
                (func (export "count") (loop $l
                    (global.set $n (i64.add (global.get $n) (i64.const 1))) (br $l))))"#,
        )
        .unwrap();
        let mut store = Store::new(&engine, 0usize);
        store.epoch_deadline_async_yield_and_update(1);
        let i = linker.instantiate(&mut store, &module).unwrap();
        for (name, progress) in [("spin", None), ("count", Some("n"))] {
            store.set_epoch_deadline(1);
            let f = i.get_typed_func::<(), ()>(&mut store, name).unwrap();
            spin_for_five_polls(&engine, &mut store, f);
            let ran = match progress {
                None => *store.data() as i64,
                Some(g) => i.get_global(&mut store, g).unwrap().get(&mut store).i64().unwrap(),
            };
            assert!(ran > 0, "{name} (signals: {signals}) ran between yields");
        }
        // A synchronous call reaching the deadline gets an error saying why.
        store.set_epoch_deadline(1);
        engine.increment_epoch();
        let spin = i.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
        let e = spin.call(&mut store, ()).unwrap_err();
        assert!(format!("{e:?}").contains("call_async"), "{e:?}");
    }
}

/// Counts drops, to check that cancelling a call frees what its frames held.
struct DropCounter(Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn dropping_a_suspended_call_frees_what_it_held_and_the_store_stays_usable() {
    let engine = Engine::default();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut linker = Linker::<()>::new(&engine);
    let d = drops.clone();
    linker
        .func_wrap_async("host", "sleep", move |_c: Caller<'_, ()>, (x,): (i32,)| -> HostFuture<'_, i32> {
            let guard = DropCounter(d.clone());
            Box::new(async move {
                let _guard = guard;
                PendingFor { n: usize::MAX, v: Some(x) }.await
            })
        })
        .unwrap();
    let module = Module::new(&engine, CALLS_SLEEP).unwrap();
    let mut store = Store::new(&engine, ());
    let i = linker.instantiate(&mut store, &module).unwrap();
    let f = i.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    for round in 1..=3 {
        let mut fut = Box::pin(f.call_async(&mut store, 1));
        for _ in 0..4 {
            assert!(poll_once(&mut fut).is_pending());
        }
        assert_eq!(drops.load(Ordering::SeqCst), round - 1);
        drop(fut);
        assert_eq!(drops.load(Ordering::SeqCst), round, "the host future was dropped with the call");
    }
    // The store runs calls to completion afterwards.
    let linker = linker_with_sleep(&engine, 1);
    let i = linker.instantiate(&mut store, &module).unwrap();
    let f = i.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    assert_eq!(run(f.call_async(&mut store, 1)).0.unwrap(), 4);
}

#[test]
fn a_suspended_call_continues_on_another_thread() {
    let engine = Engine::default();
    let linker = linker_with_sleep(&engine, 2);
    let module = Module::new(&engine, CALLS_SLEEP).unwrap();
    let mut store = Store::new(&engine, ());
    let i = linker.instantiate(&mut store, &module).unwrap();
    let f = i.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    let mut fut = Box::pin(f.call_async(&mut store, 20));
    assert!(poll_once(&mut fut).is_pending());
    let r = std::thread::scope(|s| {
        s.spawn(move || {
            assert!(poll_once(&mut fut).is_pending());
            // And on to a third thread.
            std::thread::scope(|s2| s2.spawn(move || run(fut).0).join().unwrap())
        })
        .join()
        .unwrap()
    });
    assert_eq!(r.unwrap(), 42);
}

#[test]
fn an_async_host_function_can_call_back_into_wasm_asynchronously() {
    let engine = Engine::default();
    let mut linker = Linker::<()>::new(&engine);
    linker
        .func_wrap_async("host", "sleep", |mut caller: Caller<'_, ()>, (x,): (i32,)| -> HostFuture<'_, i32> {
            Box::new(async move {
                PendingFor { n: 1, v: Some(()) }.await;
                let Some(Extern::Func(double)) = caller.get_export("double") else { panic!("no export") };
                let double = double.typed::<i32, i32>(&caller).unwrap();
                double.call_async(&mut caller, x).await.unwrap()
            })
        })
        .unwrap();
    let module = Module::new(
        &engine,
        r#"(module
            (import "host" "sleep" (func $sleep (param i32) (result i32)))
            (func (export "double") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
            (func (export "run") (param i32) (result i32)
                (i32.add (call $sleep (local.get 0)) (call $sleep (i32.const 1)))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let i = linker.instantiate(&mut store, &module).unwrap();
    let f = i.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    let (r, pending) = run(f.call_async(&mut store, 10));
    assert_eq!(r.unwrap(), 22);
    assert_eq!(pending, 2);
}

#[test]
fn the_start_function_may_call_async_host_functions() {
    let engine = Engine::default();
    let mut linker = Linker::<()>::new(&engine);
    linker
        .func_wrap_async("host", "sleep", |_c: Caller<'_, ()>, (x,): (i32,)| -> HostFuture<'_, i32> {
            Box::new(PendingFor { n: 2, v: Some(x + 1) })
        })
        .unwrap();
    let module = Module::new(
        &engine,
        r#"(module
            (import "host" "sleep" (func $sleep (param i32) (result i32)))
            (global $g (export "g") (mut i32) (i32.const 0))
            (func $start (global.set $g (call $sleep (i32.const 41))))
            (start $start))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let pre = linker.instantiate_pre(&module).unwrap();
    let (i, pending) = run(pre.instantiate_async(&mut store));
    let i = i.unwrap();
    assert_eq!(pending, 2);
    let g = i.get_global(&mut store, "g").unwrap();
    assert_eq!(g.get(&mut store).i32().unwrap(), 42);
    assert!(pre.instantiate(&mut store).is_err(), "the synchronous path cannot wait");
}

#[test]
fn an_async_stack_no_larger_than_the_wasm_stack_is_an_error() {
    let mut config = Config::new();
    config.max_wasm_stack(1 << 20).async_stack_size(1 << 20);
    let engine = Engine::new(&config).unwrap();
    let mut store = Store::new(&engine, ());
    let i = instance(&mut store, r#"(module (func (export "f")))"#);
    let f = i.get_typed_func::<(), ()>(&mut store, "f").unwrap();
    let e = run(f.call_async(&mut store, ())).0.unwrap_err();
    assert!(e.to_string().contains("async stack size"), "{e}");
    f.call(&mut store, ()).unwrap();
}

#[test]
fn the_pooling_allocator_bounds_the_async_stacks_and_reuses_them() {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_stacks(1);
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).unwrap();
    let linker = linker_with_sleep(&engine, 1);
    let module = Module::new(&engine, CALLS_SLEEP).unwrap();
    let mut a = Store::new(&engine, ());
    let mut b = Store::new(&engine, ());
    let ia = linker.instantiate(&mut a, &module).unwrap();
    let ib = linker.instantiate(&mut b, &module).unwrap();
    let fa = ia.get_typed_func::<i32, i32>(&mut a, "run").unwrap();
    let fb = ib.get_typed_func::<i32, i32>(&mut b, "run").unwrap();
    let mut first = Box::pin(fa.call_async(&mut a, 1));
    assert!(poll_once(&mut first).is_pending());
    // The only stack is in use: the second store's call fails cleanly.
    let e = run(fb.call_async(&mut b, 1)).0.unwrap_err();
    assert!(format!("{e:?}").contains("total_stacks"), "{e:?}");
    assert_eq!(run(first).0.unwrap(), 4);
    // Store `a` keeps its stack for its next calls...
    for _ in 0..3 {
        assert_eq!(run(fa.call_async(&mut a, 2)).0.unwrap(), 6);
    }
    assert!(run(fb.call_async(&mut b, 1)).0.is_err());
    // ...and gives it back when dropped.
    drop(a);
    assert_eq!(run(fb.call_async(&mut b, 1)).0.unwrap(), 4);
}

const COUNT_FOREVER: &str = r#"(module
    (global $n (export "n") (mut i64) (i64.const 0))
    (func (export "count") (loop $l
        (global.set $n (i64.add (global.get $n) (i64.const 1))) (br $l))))"#;

fn fuel_store(interval: Option<u64>, fuel: u64) -> (Store<()>, Instance) {
    let mut config = Config::new();
    config.consume_fuel(true).fuel_async_yields(true);
    let engine = Engine::new(&config).unwrap();
    let mut store = Store::new(&engine, ());
    store.set_fuel(fuel).unwrap();
    store.fuel_async_yield_interval(interval).unwrap();
    let i = instance(&mut store, COUNT_FOREVER);
    (store, i)
}

#[test]
fn fuel_yields_are_deterministic_and_fuel_still_runs_out() {
    // Each run: how many times the call yielded, and how far it counted
    // before running out of fuel.
    let outcome = || {
        let (mut store, i) = fuel_store(Some(10_000), 1_000_000);
        let count = i.get_typed_func::<(), ()>(&mut store, "count").unwrap();
        let (r, yields) = run(count.call_async(&mut store, ()));
        let e = r.unwrap_err();
        assert_eq!(e.downcast_ref::<Trap>().map(Trap::code), Some(TrapCode::OutOfFuel), "{e:?}");
        let n = i.get_global(&mut store, "n").unwrap().get(&mut store).i64().unwrap();
        assert_eq!(store.get_fuel().unwrap(), 0);
        (yields, n)
    };
    let (yields, n) = outcome();
    assert!((95..=100).contains(&yields), "about one yield per 10,000 units of 1,000,000: {yields}");
    assert_eq!(outcome(), (yields, n), "the same yields and the same progress every run");

    // Without yields, the same fuel gets exactly as far.
    let (mut store, i) = fuel_store(None, 1_000_000);
    let count = i.get_typed_func::<(), ()>(&mut store, "count").unwrap();
    let (r, pending) = run(count.call_async(&mut store, ()));
    assert!(r.is_err());
    assert_eq!(pending, 0);
    assert_eq!(i.get_global(&mut store, "n").unwrap().get(&mut store).i64().unwrap(), n);
}

#[test]
fn fuel_yields_need_an_async_call_and_keep_the_fuel_total() {
    let (mut store, i) = fuel_store(Some(1000), 50_000);
    assert_eq!(store.get_fuel().unwrap(), 50_000, "the interval does not change the fuel left");
    let count = i.get_typed_func::<(), ()>(&mut store, "count").unwrap();
    let e = count.call(&mut store, ()).unwrap_err();
    assert!(format!("{e:?}").contains("call_async"), "{e:?}");
    assert!(store.fuel_async_yield_interval(Some(0)).is_err());
    let mut no_fuel = Store::new(&Engine::default(), ());
    assert!(no_fuel.fuel_async_yield_interval(Some(10)).is_err());
    let mut config = Config::new();
    config.consume_fuel(true);
    let mut plain_fuel = Store::new(&Engine::new(&config).unwrap(), ());
    let e = plain_fuel.fuel_async_yield_interval(Some(10)).unwrap_err();
    assert!(e.to_string().contains("fuel_async_yields"), "{e}");
    // A very large amount of fuel is kept whole (beyond the counter's range).
    store.fuel_async_yield_interval(None).unwrap();
    store.set_fuel(u64::MAX).unwrap();
    assert_eq!(store.get_fuel().unwrap(), u64::MAX);
}

/// The refuelling path (`Config::fuel_async_yields`, with small yield
/// intervals) runs out of fuel at exactly the point the trapping path
/// does, for every budget: the same progress, trap and fuel left.
#[test]
fn fuel_yields_consume_exactly_what_trapping_fuel_does() {
    let wat = r#"(module
        (global $g (export "g") (mut i32) (i32.const 0))
        (func $f (param i32) (result i32) (i32.add (i32.mul (local.get 0) (i32.const 7)) (i32.const 1)))
        (func (export "run") (param $n i32) (local $i i32) (local $j i32)
            (loop $outer
                (local.set $j (i32.const 0))
                (loop $inner
                    (global.set $g (call $f (global.get $g)))
                    (local.set $j (i32.add (local.get $j) (i32.const 1)))
                    (br_if $inner (i32.lt_u (local.get $j) (i32.const 5))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $outer (i32.lt_u (local.get $i) (local.get $n))))))"#;
    let setup = |yields: bool| {
        let mut config = Config::new();
        config.consume_fuel(true).fuel_async_yields(yields);
        let engine = Engine::new(&config).unwrap();
        let mut store = Store::new(&engine, ());
        let module = Module::new(&engine, wat).unwrap();
        let i = Instance::new(&mut store, &module, &[]).unwrap();
        (store, i)
    };
    let (mut plain, pi) = setup(false);
    let (mut yielding, yi) = setup(true);
    let outcome = |store: &mut Store<()>, i: &Instance, r: Result<()>| {
        let trap = r.err().map(|e| e.downcast_ref::<Trap>().map(Trap::code));
        (trap, i.get_global(&mut *store, "g").unwrap().get(&mut *store).i32(), store.get_fuel().unwrap())
    };
    for interval in [1, 3, 64] {
        for fuel in (0..400).chain((400..5_000).step_by(37)) {
            pi.get_global(&mut plain, "g").unwrap().set(&mut plain, Val::I32(0)).unwrap();
            plain.set_fuel(fuel).unwrap();
            let f = pi.get_typed_func::<i32, ()>(&mut plain, "run").unwrap();
            let r = f.call(&mut plain, 20);
            let want = outcome(&mut plain, &pi, r);

            yi.get_global(&mut yielding, "g").unwrap().set(&mut yielding, Val::I32(0)).unwrap();
            yielding.fuel_async_yield_interval(None).unwrap();
            yielding.set_fuel(fuel).unwrap();
            yielding.fuel_async_yield_interval(Some(interval)).unwrap();
            let f = yi.get_typed_func::<i32, ()>(&mut yielding, "run").unwrap();
            let (r, _) = run(f.call_async(&mut yielding, 20));
            let got = outcome(&mut yielding, &yi, r);
            assert_eq!(got, want, "fuel {fuel}, interval {interval}");
        }
    }
}

/// Allows memories up to `max` bytes, after a pending decision each time.
struct SlowLimiter {
    max: usize,
    asked: usize,
}

#[async_trait::async_trait]
impl ResourceLimiterAsync for SlowLimiter {
    async fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        self.asked += 1;
        PendingFor { n: 2, v: Some(()) }.await;
        Ok(desired <= self.max)
    }

    async fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> Result<bool> {
        Ok(true)
    }
}

#[test]
fn an_async_limiter_decides_growth_during_async_calls() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, SlowLimiter { max: 3 << 16, asked: 0 });
    store.limiter_async(|l| l);
    let module = Module::new(
        &engine,
        r#"(module (memory (export "m") 1)
            (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#,
    )
    .unwrap();
    let (i, pending) = run(Instance::new_async(&mut store, &module, &[]));
    let i = i.unwrap();
    assert_eq!(pending, 2, "the initial memory was decided asynchronously");
    let grow = i.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
    assert_eq!(run(grow.call_async(&mut store, 2)).0.unwrap(), 1);
    assert_eq!(run(grow.call_async(&mut store, 1)).0.unwrap(), -1, "past the limiter's maximum");
    assert_eq!(store.data().asked, 3);
    // Synchronous paths cannot wait for the decision.
    let e = grow.call(&mut store, 1).unwrap_err();
    assert!(format!("{e:?}").contains("call_async"), "{e:?}");
    assert!(Instance::new(&mut store, &module, &[]).is_err());
}
