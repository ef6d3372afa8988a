//! Lazy compilation (`CompileStrategy::Lazy`): functions compiled at their
//! first call behave as if compiled with the module.

use kiln::*;
use std::sync::{Arc, Barrier};

fn lazy_engine(background: bool) -> Engine {
    let mut config = Config::new();
    config.compile_strategy(CompileStrategy::Lazy).background_compilation(background);
    Engine::new(&config).expect("engine")
}

fn compiled(module: &Module) -> u32 {
    kiln::__private_testing::lazily_compiled(module).expect("compiled lazily")
}

#[test]
fn nothing_is_compiled_before_it_is_called() {
    let engine = lazy_engine(false);
    let module = Module::new(
        &engine,
        r#"(module
             (func $a (result i32) i32.const 1)
             (func $b (result i32) call $a i32.const 1 i32.add)
             (func (export "b") (result i32) call $b)
             (func (export "unused") (result i32) i32.const 7))"#,
    )
    .expect("compiles");
    assert_eq!(compiled(&module), 0);
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).expect("instance");
    assert_eq!(compiled(&module), 0, "instantiation compiles nothing");
    let b = i.get_typed_func::<(), i32>(&mut store, "b").expect("b");
    assert_eq!(b.call(&mut store, ()).expect("runs"), 2);
    assert_eq!(compiled(&module), 3, "the export, $b and $a");
    assert_eq!(b.call(&mut store, ()).expect("runs"), 2);
    assert_eq!(compiled(&module), 3, "once each");
}

#[test]
fn functions_compiled_later_start_at_different_places_in_their_pages() {
    // Each install takes fresh pages; starting them all at a page boundary
    // would put every function's first cache line in the same few sets of
    // the instruction cache.
    let engine = lazy_engine(false);
    let funcs: String = (0..16).map(|i| format!("(func (export \"f{i}\") (result i32) i32.const {i})\n")).collect();
    let module = Module::new(&engine, format!("(module {funcs})")).expect("compiles");
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).expect("instance");
    for n in 0..16 {
        let f = i.get_typed_func::<(), i32>(&mut store, &format!("f{n}")).expect("export");
        assert_eq!(f.call(&mut store, ()).expect("runs"), n);
    }
    let offsets = kiln::__private_testing::lazy_code_page_offsets(&module).expect("compiled lazily");
    let mut starts: Vec<usize> = offsets.iter().map(|o| o.expect("installed")).collect();
    starts.sort_unstable();
    starts.dedup();
    assert_eq!(starts.len(), 16, "16 different starts in a page: {offsets:?}");
}

#[test]
fn a_trap_in_a_function_compiled_on_its_first_call_has_a_backtrace() {
    let engine = lazy_engine(false);
    let module = Module::new(
        &engine,
        r#"(module $m
             (func $inner (param i32) (result i32)
               local.get 0 i32.const 0 i32.div_u)
             (func $outer (export "run") (param i32) (result i32)
               local.get 0 call $inner i32.const 1 i32.add))"#,
    )
    .expect("compiles");
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).expect("instance");
    let run = i.get_typed_func::<i32, i32>(&mut store, "run").expect("run");
    for _ in 0..2 {
        let t = run.call(&mut store, 5).expect_err("traps").downcast::<Trap>().expect("a trap");
        assert_eq!(t.code(), TrapCode::IntegerDivisionByZero);
        let frames = t.backtrace().frames();
        let names: Vec<_> = frames.iter().map(|f| f.func_name().unwrap_or("?")).collect();
        assert_eq!(names, ["inner", "outer"]);
        assert!(frames.iter().all(|f| f.module_offset().is_some()), "{frames:?}");
    }
}

#[test]
fn call_indirect_and_ref_func_reach_functions_not_compiled_yet() {
    let engine = lazy_engine(false);
    let module = Module::new(
        &engine,
        r#"(module
             (type $t (func (param i32) (result i32)))
             (table 3 funcref)
             (elem (i32.const 0) $double $square $boom)
             (func $double (type $t) local.get 0 i32.const 2 i32.mul)
             (func $square (type $t) local.get 0 local.get 0 i32.mul)
             (func $boom (type $t) unreachable)
             (func (export "call") (param i32 i32) (result i32)
               local.get 1 local.get 0 call_indirect (type $t))
             (func (export "ref") (result funcref) ref.func $square))"#,
    )
    .expect("compiles");
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).expect("instance");
    let call = i.get_typed_func::<(i32, i32), i32>(&mut store, "call").expect("call");
    assert_eq!(call.call(&mut store, (0, 21)).expect("double"), 42);
    assert_eq!(call.call(&mut store, (1, 9)).expect("square"), 81);
    let t = call.call(&mut store, (2, 1)).expect_err("traps").downcast::<Trap>().expect("a trap");
    assert_eq!(t.code(), TrapCode::UnreachableCodeReached);
    let names: Vec<_> = t.backtrace().frames().iter().map(|f| f.func_name().unwrap_or("?").to_string()).collect();
    assert_eq!(names, ["boom", "?"], "{t}");
    let r = i.get_typed_func::<(), Option<Func>>(&mut store, "ref").expect("ref");
    let square = r.call(&mut store, ()).expect("runs").expect("not null");
    let mut out = [Val::I32(0)];
    square.call(&mut store, &[Val::I32(12)], &mut out).expect("runs");
    assert_eq!(out[0].i32(), Some(144));
}

#[test]
fn functions_with_many_arguments_get_them_all_through_the_first_call() {
    // More integer and float arguments than registers: the stack
    // arguments must reach the function compiled in between.
    let engine = lazy_engine(false);
    let module = Module::new(
        &engine,
        r#"(module
             (func $sum (param i32 i64 f32 f64 i32 i64 f32 f64 i32 i64 f32 f64 i32 i64 f32 f64 i32 i64 f32 f64)
                        (result f64)
               (f64.add (f64.add (f64.add (f64.convert_i32_s (local.get 0)) (f64.convert_i64_s (local.get 1)))
                                 (f64.add (f64.promote_f32 (local.get 2)) (local.get 3)))
               (f64.add (f64.add (f64.add (f64.convert_i32_s (local.get 16)) (f64.convert_i64_s (local.get 17)))
                                 (f64.add (f64.promote_f32 (local.get 18)) (local.get 19)))
                        (f64.add (f64.add (f64.convert_i32_s (local.get 12)) (f64.convert_i64_s (local.get 13)))
                                 (f64.add (f64.promote_f32 (local.get 14)) (local.get 15))))))
             (func (export "run") (result f64)
               (call $sum (i32.const 1) (i64.const 2) (f32.const 3) (f64.const 4)
                          (i32.const 0) (i64.const 0) (f32.const 0) (f64.const 0)
                          (i32.const 0) (i64.const 0) (f32.const 0) (f64.const 0)
                          (i32.const 100) (i64.const 200) (f32.const 300) (f64.const 400)
                          (i32.const 1000) (i64.const 2000) (f32.const 3000) (f64.const 4000))))"#,
    )
    .expect("compiles");
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).expect("instance");
    let run = i.get_typed_func::<(), f64>(&mut store, "run").expect("run");
    assert_eq!(run.call(&mut store, ()).expect("runs"), 11010.0);
}

#[test]
fn concurrent_first_calls_compile_a_function_once() {
    let engine = lazy_engine(false);
    // A body large enough that compiling it takes a while, so both threads
    // are likely to arrive while it is being compiled.
    let mut body = String::new();
    for k in 0..3000 {
        body.push_str(&format!("local.get 0 i32.const {k} i32.add i32.const 3 i32.mul local.set 0\n"));
    }
    let wat = format!(r#"(module (func (export "big") (param i32) (result i32) {body} local.get 0))"#);
    for _ in 0..4 {
        let module = Module::new(&engine, &wat).expect("compiles");
        let barrier = Arc::new(Barrier::new(2));
        let results: Vec<i32> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (engine, module, barrier) = (engine.clone(), module.clone(), barrier.clone());
                    s.spawn(move || {
                        let mut store = Store::new(&engine, ());
                        let i = Instance::new(&mut store, &module, &[]).expect("instance");
                        let big = i.get_typed_func::<i32, i32>(&mut store, "big").expect("big");
                        barrier.wait();
                        big.call(&mut store, 1).expect("runs")
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().expect("thread")).collect()
        });
        assert_eq!(results[0], results[1]);
        assert_eq!(compiled(&module), 1, "two first calls, one compilation");
    }
}

#[test]
fn background_compilation_finishes_the_module() {
    let engine = lazy_engine(true);
    let mut funcs = String::new();
    for k in 0..50 {
        funcs.push_str(&format!("(func (export \"f{k}\") (result i32) i32.const {k})\n"));
    }
    let module = Module::new(&engine, format!("(module {funcs})")).expect("compiles");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while compiled(&module) < 50 {
        assert!(std::time::Instant::now() < deadline, "only {} of 50 compiled", compiled(&module));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).expect("instance");
    let f = i.get_typed_func::<(), i32>(&mut store, "f49").expect("f49");
    assert_eq!(f.call(&mut store, ()).expect("runs"), 49);
    assert_eq!(compiled(&module), 50, "nothing compiled twice");
}

#[test]
fn the_next_run_starts_with_what_the_last_one_compiled() {
    let wat = r#"(module
         (func $a (result i32) i32.const 40)
         (func (export "run") (result i32) call $a i32.const 2 i32.add)
         (func (export "other") (result i32) i32.const 0))"#;
    let cache = Arc::new(MemoryCache::new(64 << 20));
    let mut config = Config::new();
    config.compile_strategy(CompileStrategy::Lazy).background_compilation(false).cache(cache.clone());
    let engine = Engine::new(&config).expect("engine");
    // (export called, functions compiled in that run): the first run
    // compiles the two it calls; the second finds them in the module
    // cache's lazy artifact; the third compiles only `other`; after it
    // the artifact is complete.
    for (round, (export, expected)) in [("run", 2), ("run", 0), ("other", 1), ("other", 0)].into_iter().enumerate() {
        let module = Module::new(&engine, wat).expect("compiles");
        let mut store = Store::new(&engine, ());
        let i = Instance::new(&mut store, &module, &[]).expect("instance");
        let f = i.get_typed_func::<(), i32>(&mut store, export).expect("export");
        assert_eq!(f.call(&mut store, ()).expect("runs"), if export == "run" { 42 } else { 0 });
        if round == 3 {
            assert_eq!(kiln::__private_testing::lazily_compiled(&module), None, "complete: loaded as an eager module");
        } else {
            assert_eq!(compiled(&module), expected, "round {round}");
        }
    }
    // An eager engine on the same cache never loads a lazy artifact.
    let lazy_only =
        r#"(module (func (export "x") (result i32) i32.const 1) (func (export "y") (result i32) i32.const 2))"#;
    let module = Module::new(&engine, lazy_only).expect("compiles");
    drop(module);
    let mut eager = Config::new();
    eager.cache(cache.clone());
    let eager = Engine::new(&eager).expect("engine");
    let module = Module::new(&eager, lazy_only).expect("compiles");
    assert_eq!(kiln::__private_testing::lazily_compiled(&module), None);
    let mut store = Store::new(&eager, ());
    let i = Instance::new(&mut store, &module, &[]).expect("instance");
    let y = i.get_typed_func::<(), i32>(&mut store, "y").expect("y");
    assert_eq!(y.call(&mut store, ()).expect("runs"), 2);
}

#[test]
fn serializing_a_lazy_module_gives_a_complete_artifact() {
    let engine = lazy_engine(false);
    let module = Module::new(
        &engine,
        r#"(module (func $a (result i32) i32.const 5) (func (export "run") (result i32) call $a))"#,
    )
    .expect("compiles");
    let bytes = module.serialize().expect("serializes");
    // SAFETY: the artifact was produced just now by this process.
    let loaded = unsafe { Module::deserialize(&engine, &bytes) }.expect("loads");
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &loaded, &[]).expect("instance");
    let run = i.get_typed_func::<(), i32>(&mut store, "run").expect("run");
    assert_eq!(run.call(&mut store, ()).expect("runs"), 5);
}

#[test]
fn a_function_that_fails_to_compile_traps_at_its_first_call() {
    let mut config = Config::new();
    config.compile_strategy(CompileStrategy::Lazy).background_compilation(false);
    kiln::__private_testing::fail_lazy_compilation(&mut config);
    let engine = Engine::new(&config).expect("engine");
    let module = Module::new(
        &engine,
        r#"(module $m
             (import "host" "f" (func $host))
             (func $never (result i32) i32.const 1)
             (func (export "run") (result i32) call $host call $never))"#,
    )
    .expect("validates: compiling comes later");
    let mut store = Store::new(&engine, ());
    let host = Func::wrap(&mut store, || {});
    let i = Instance::new(&mut store, &module, &[host.into()]).expect("instance");
    let run = i.get_typed_func::<(), i32>(&mut store, "run").expect("run");
    for _ in 0..2 {
        let e = run.call(&mut store, ()).expect_err("cannot compile");
        let text = format!("{e:#}");
        assert!(text.contains("failed to compile function") && text.contains("on purpose"), "{text}");
    }
    // The store is still usable.
    let f = Func::wrap(&mut store, || 5i32);
    assert_eq!(f.typed::<(), i32>(&store).expect("typed").call(&mut store, ()).expect("runs"), 5);
}

#[test]
fn async_calls_compile_on_the_fiber_stack_or_beside_it() {
    let mut config = Config::new();
    config.compile_strategy(CompileStrategy::Lazy).background_compilation(false);
    let engine = Engine::new(&config).expect("engine");
    let module = Module::new(
        &engine,
        r#"(module
             (func $a (param i32) (result i32) local.get 0 i32.const 3 i32.mul)
             (func (export "run") (param i32) (result i32) local.get 0 call $a))"#,
    )
    .expect("compiles");
    let mut store = Store::new(&engine, ());
    kiln::__private_testing::force_fibers(&mut store);
    let fut = async {
        let i = Instance::new_async(&mut store, &module, &[]).await.expect("instance");
        let run = i.get_typed_func::<i32, i32>(&mut store, "run").expect("run");
        run.call_async(&mut store, 14).await.expect("runs")
    };
    let mut fut = Box::pin(fut);
    let result = loop {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            break v;
        }
    };
    assert_eq!(result, 42);
    assert_eq!(compiled(&module), 2);
}

#[test]
fn a_module_from_the_cache_compiles_ahead_only_after_a_call_misses() {
    let mut funcs = String::new();
    for k in 0..30 {
        funcs.push_str(&format!("(func (export \"f{k}\") (result i32) i32.const {k})\n"));
    }
    let wat = format!("(module {funcs})");
    let cache = Arc::new(MemoryCache::new(64 << 20));
    let engine = |background: bool| {
        let mut config = Config::new();
        config.compile_strategy(CompileStrategy::Lazy).background_compilation(background).cache(cache.clone());
        Engine::new(&config).expect("engine")
    };
    let call = |engine: &Engine, module: &Module, name: &str| {
        let mut store = Store::new(engine, ());
        let i = Instance::new(&mut store, module, &[]).expect("instance");
        i.get_typed_func::<(), i32>(&mut store, name).expect("export").call(&mut store, ()).expect("runs")
    };
    // A first run, compiling only f0, leaves a lazy artifact.
    let first = engine(false);
    let module = Module::new(&first, &wat).expect("compiles");
    assert_eq!(call(&first, &module, "f0"), 0);
    drop(module);
    // The next run needs nothing more: no background compilation.
    let next = engine(true);
    let module = Module::new(&next, &wat).expect("loads");
    assert_eq!(call(&next, &module, "f0"), 0);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(compiled(&module), 0);
    // A call that misses starts it: everything gets compiled.
    assert_eq!(call(&next, &module, "f7"), 7);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while compiled(&module) < 29 {
        assert!(std::time::Instant::now() < deadline, "only {} of 29 compiled", compiled(&module));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn tiered_engine(background: bool) -> Engine {
    let mut config = Config::new();
    config
        .compile_strategy(CompileStrategy::Lazy)
        .background_compilation(background)
        .baseline_compilation(BaselineCompilation::FirstCalls);
    Engine::new(&config).expect("engine")
}

fn tiers(module: &Module) -> (u32, u32) {
    kiln::__private_testing::lazy_tiers(module).expect("compiled lazily")
}

/// The defined functions reported hot so far, in index order.
fn hot(module: &Module) -> Vec<u32> {
    kiln::__private_testing::lazy_hot(module).expect("compiled lazily")
}

/// Validation stays eager when compilation is lazy and first calls get
/// baseline code (which is compiled without validating again): a body
/// that no call would ever reach still makes the module fail to compile,
/// and nothing of it runs.
#[test]
fn an_invalid_body_never_called_fails_the_module_before_anything_runs() {
    let engine = tiered_engine(false);
    let invalid = r#"(module
         (func (export "run") (result i32) i32.const 1)
         (func $never (result i32) i64.const 1))"#;
    let err = Module::new(&engine, invalid).expect_err("an invalid body fails the module");
    assert!(format!("{err:#}").contains("type mismatch"), "{err:#}");
    let valid = r#"(module
         (func (export "run") (result i32) i32.const 1)
         (func $never (result i32) i32.const 1))"#;
    let module = Module::new(&engine, valid).expect("compiles");
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).expect("instance");
    let run = i.get_typed_func::<(), i32>(&mut store, "run").expect("run");
    assert_eq!(run.call(&mut store, ()).expect("runs"), 1);
    assert_eq!(tiers(&module), (1, 0), "the first call got baseline code");
}

const TIERED_WAT: &str = r#"(module
     (memory 1)
     (func $fib (export "fib") (param i32) (result i32)
       local.get 0 i32.const 2 i32.lt_u
       if (result i32) local.get 0
       else
         local.get 0 i32.const 1 i32.sub call $fib
         local.get 0 i32.const 2 i32.sub call $fib
         i32.add
       end)
     (func $sum (export "sum") (param i32) (result i64) (local i64)
       block $done
         loop $next
           local.get 0 i32.eqz br_if $done
           local.get 1 local.get 0 i64.extend_i32_u i64.add local.set 1
           local.get 0 i32.const 1 i32.sub local.set 0
           br $next
         end
       end
       local.get 1)
     (func (export "load") (param i32) (result i32) local.get 0 i32.load)
     (func (export "deep") (param i32) (result i32)
       local.get 0 i32.const 1 i32.add call 3))"#;

#[test]
fn first_calls_run_baseline_code_that_traps_and_recurses_like_any() {
    let engine = tiered_engine(false);
    let module = Module::new(&engine, TIERED_WAT).expect("compiles");
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).expect("instance");
    let fib = i.get_typed_func::<i32, i32>(&mut store, "fib").expect("fib");
    let sum = i.get_typed_func::<i32, i64>(&mut store, "sum").expect("sum");
    assert_eq!(fib.call(&mut store, 20).expect("runs"), 6765);
    assert_eq!(sum.call(&mut store, 100_000).expect("runs"), 5_000_050_000);
    // No background compiler: both stay baseline code.
    assert_eq!(tiers(&module), (2, 0));
    let load = i.get_typed_func::<i32, i32>(&mut store, "load").expect("load");
    let e = load.call(&mut store, 65_535).expect_err("out of bounds");
    let t = e.downcast_ref::<Trap>().expect("a trap");
    assert_eq!(t.code(), TrapCode::MemoryOutOfBounds, "{e:?}");
    assert_eq!(t.backtrace().frames().len(), 1, "{e:?}");
    let deep = i.get_typed_func::<i32, i32>(&mut store, "deep").expect("deep");
    let e = deep.call(&mut store, 0).expect_err("no end");
    let t = e.downcast_ref::<Trap>().expect("a trap");
    assert_eq!(t.code(), TrapCode::StackOverflow, "{e:?}");
    assert!(t.backtrace().frames().len() > 100, "a backtrace through the baseline frames");
    assert_eq!(tiers(&module), (4, 0));
}

/// Baseline code keeps a function's most used integer locals in
/// registers (four at most; the rest stay in their slots): parameters
/// arriving in registers and on the stack, copies between register and
/// slot locals, a tee, a set while a read of the old value waits, an
/// `i32` local holding a negative constant then zero-extended, an `i64`
/// local, a call with values pending, addresses and stored values, a
/// branch and a select must all see what Cranelift's code sees.
#[test]
fn baseline_code_keeps_hot_locals_in_registers() {
    let wat = r#"(module
             (memory 1)
             (func $mix (param i32 i64) (result i32)
               local.get 0 local.get 1 i32.wrap_i64 i32.xor i32.const 0x9e37 i32.mul)
             (func (export "f") (param $n i32) (param $a i32) (param $b i64) (param $c i32) (param $d i32)
                 (result i64)
                 (local $i i32) (local $s i64) (local $t i32) (local $u i32) (local $f f64)
               loop $top
                 ;; a set of $a while its old value waits below
                 local.get $a
                 local.get $a i32.const 3 i32.add local.set $a
                 local.get $a i32.sub
                 local.set $t
                 ;; copies between locals, some in slots
                 local.get $c local.set $u
                 local.get $d local.set $c
                 local.get $u local.set $d
                 ;; a negative i32 constant, zero-extended into the i64 sum
                 i32.const -7 local.set $u
                 local.get $s local.get $u i64.extend_i32_u i64.add
                 local.get $t i64.extend_i32_s i64.add
                 local.get $b i64.const 3 i64.mul local.tee $b
                 i64.add local.set $s
                 ;; a call with values pending, its arguments locals
                 local.get $i
                 local.get $a local.get $s call $mix
                 i32.add
                 local.set $t
                 ;; memory: the address and the value from locals
                 local.get $i i32.const 60 i32.and local.get $t i32.store
                 local.get $s local.get $i i32.const 60 i32.and i32.load i64.extend_i32_u i64.xor local.set $s
                 ;; a select and a float local alongside
                 local.get $c local.get $d local.get $i i32.const 1 i32.and select
                 local.get $a i32.add local.set $a
                 local.get $f local.get $i f64.convert_i32_u f64.add local.set $f
                 local.get $i i32.const 1 i32.add local.tee $i
                 local.get $n i32.lt_u
                 br_if $top
               end
               local.get $s local.get $f i64.trunc_f64_s i64.add
               local.get $a i64.extend_i32_u i64.add
               local.get $c local.get $d i32.sub i64.extend_i32_s i64.add))"#;
    let run = |baseline: BaselineCompilation, n: i32| {
        let (mut store, i) = baseline_instance(baseline, wat);
        let f = i.get_typed_func::<(i32, i32, i64, i32, i32), i64>(&mut store, "f").expect("f");
        f.call(&mut store, (n, n.wrapping_mul(7), i64::from(n) << 33, -5, n ^ 0x55)).expect("runs")
    };
    for n in [1, 2, 3, 17, 1000] {
        assert_eq!(run(BaselineCompilation::Always, n), run(BaselineCompilation::Off, n), "f({n})");
    }
}

/// Baseline code stores constants as immediates and values in registers
/// straight from there (memory at every width, and globals), compares and
/// tests locals in their registers, and takes a `br_table` index from
/// where it is before storing the rest of the stack: each must see what
/// Cranelift's code sees.
#[test]
fn baseline_code_stores_and_branches_on_values_where_they_are() {
    let wat = r#"(module
             (memory 1)
             (global $g (mut i32) (i32.const 5))
             (global $h (mut i64) (i64.const -9))
             (global $x (mut f64) (f64.const 1.5))
             (func (export "f") (param $p i32) (result i64) (local $a i32) (local $b i64) (local $k i32)
               loop $top
                 ;; constants at every width, negative ones too
                 i32.const 0 i32.const -2 i32.store8
                 i32.const 1 i32.const 0x12345 i32.store16
                 ;; (each after its neighbour above: a wider write would show)
                 i32.const 8 i64.const -4 i64.store
                 i32.const 4 i32.const -3 i32.store
                 i32.const 24 i64.const 0x123456789 i64.store
                 i32.const 20 i64.const 0x7fffffff i64.store32
                 ;; values in registers (locals and results) at every width
                 local.get $k local.get $a i32.store8 offset=32
                 local.get $k local.get $a i32.store16 offset=34
                 local.get $k local.get $b i64.store32 offset=36
                 local.get $k local.get $b i64.store offset=40
                 local.get $k local.get $a local.get $p i32.add i32.store8 offset=48
                 ;; globals: a constant, a result, a local, a float
                 i32.const -7 global.set $g
                 global.get $g local.get $a i32.add global.set $g
                 local.get $b global.set $h
                 global.get $x f64.const 0.25 f64.add global.set $x
                 ;; compares and tests of locals in registers
                 ;; selects: of locals in registers, of a constant and a
                 ;; result, of floats (a load's bits and a constant), of i64s
                 local.get $a local.get $k local.get $a i32.const 1 i32.and select
                 i32.const -9 local.get $a i32.const 3 i32.mul local.get $k select i32.add
                 i32.const 56 local.get $a f64.convert_i32_u f64.const 0.5 f64.mul f64.store
                 i32.const 56 f64.load f64.const 2.5 local.get $a i32.const 2 i32.and select
                 i64.trunc_f64_s i32.wrap_i64 i32.add
                 local.get $b i64.const 77 local.get $a i32.const 4 i32.lt_u select i32.wrap_i64 i32.add
                 global.set $g
                 local.get $a local.get $p i32.lt_s
                 local.get $a i32.const 3 i32.gt_u i32.add
                 local.get $a i32.eqz i32.add
                 local.get $b i64.eqz i32.add
                 local.get $b i64.const -5 i64.le_s i32.add
                 local.set $k
                 ;; br_table on a local, a result and a constant
                 block $d block $c block $b0 block $a0
                   local.get $a i32.const 3 i32.and
                   br_table $a0 $b0 $c $d
                 end
                 local.get $b i64.const 3 i64.add local.set $b br $d
                 end
                 local.get $b i64.const -11 i64.mul local.set $b br $d
                 end
                 block $e0 block $e1
                   i32.const 1 br_table $e0 $e1 $e0
                 end
                 local.get $b i64.const 1 i64.xor local.set $b
                 end
                 end
                 block $f0 block $f1
                   local.get $a br_table $f1 $f0
                 end
                 ;; values below the index go with the branch
                 block $v (result i32)
                   local.get $a i32.const 2 i32.and
                   if
                     i32.const 111
                     local.get $a i32.const 1 i32.and
                     br_table $v $v
                   end
                   local.get $k
                   local.get $a i32.const 1 i32.and
                   br_table $v $v
                 end
                 i64.extend_i32_u local.get $b i64.add local.set $b
                 local.get $b i64.const 100 i64.add local.set $b
                 end
                 local.get $a i32.const 1 i32.add local.tee $a
                 local.get $p i32.lt_s br_if $top
               end
               ;; fold memory and globals into the result
               i64.const 0
               i32.const 0 i64.load i64.add
               i32.const 8 i64.load i64.add
               i32.const 16 i64.load i64.add
               i32.const 24 i64.load i64.add
               i32.const 32 i64.load i64.add
               i32.const 40 i64.load i64.add
               i32.const 48 i64.load i64.add
               global.get $g i64.extend_i32_s i64.add
               global.get $h i64.add
               global.get $x i64.trunc_f64_s i64.add
               local.get $b i64.add
               local.get $k i64.extend_i32_u i64.add))"#;
    let run = |baseline, p: i32| call_f::<i32, i64>(baseline, wat, p);
    for p in [1, 2, 3, 4, 7, 300] {
        assert_eq!(run(BaselineCompilation::Always, p), run(BaselineCompilation::Off, p), "f({p})");
    }
}

/// Baseline code converts integers from where they are (a local's
/// register, the result register, a slot) and takes a constant too wide
/// for an immediate in a register: each must see what Cranelift's code
/// sees.
#[test]
fn baseline_code_converts_and_computes_with_values_where_they_are() {
    let wat = r#"(module
             (func (export "f") (param $p i64) (result i64) (local $w i64) (local $i i32) (local $acc i64)
               loop $top
                 local.get $p local.get $i i64.extend_i32_u i64.const 0x9e3779b97f4a7c15 i64.mul i64.xor
                 local.set $w
                 ;; from a local's register
                 local.get $acc
                 local.get $w i32.wrap_i64 i64.extend_i32_s i64.add
                 local.get $w i32.wrap_i64 i64.extend_i32_u i64.add
                 local.get $w i64.extend8_s i64.add
                 local.get $w i64.extend16_s i64.add
                 local.get $w i64.extend32_s i64.add
                 local.get $w i32.wrap_i64 i32.extend8_s i64.extend_i32_s i64.add
                 local.get $w i32.wrap_i64 i32.extend16_s i64.extend_i32_u i64.add
                 ;; from the result register
                 local.get $w i64.const 7 i64.rotl i64.extend8_s i64.add
                 local.get $w i64.const 1 i64.shr_u i32.wrap_i64 i32.extend16_s i64.extend_i32_s i64.add
                 ;; wide constants in every kind of binary operator
                 local.get $w i64.const 0x123456789abc i64.add i64.add
                 local.get $w i64.const 0x7ff0000000000001 i64.and i64.add
                 local.get $w i64.const 0x100000001 i64.div_u i64.add
                 local.get $w i64.const -0x100000001 i64.rem_s i64.add
                 local.get $w i64.const 0x1000000000000003 i64.shl i64.add
                 local.get $w i64.const 0x80000000 i64.sub i64.add
                 i32.const -1 local.get $i i32.const 0x80000000 i32.or i32.div_u i64.extend_i32_u i64.add
                 local.set $acc
                 local.get $i i32.const 1 i32.add local.tee $i
                 i32.const 50 i32.lt_u br_if $top
               end
               local.get $acc))"#;
    let run = |baseline, p: i64| call_f::<i64, i64>(baseline, wat, p);
    for p in [0, 1, -1, 0x1234_5678_9abc_def0, i64::MIN, 0xff80] {
        assert_eq!(run(BaselineCompilation::Always, p), run(BaselineCompilation::Off, p), "f({p})");
    }
}

/// Baseline code uses an `i32` local's register as a memory index as it
/// is, so every write of it must leave its upper half zero: a parameter
/// whose register a Cranelift caller left with upper bits set (a wrapped
/// `i64`), a negative constant, a wrapped result. A wrong upper half
/// would reach outside the memory or wrap around to the wrong bytes.
#[test]
fn baseline_code_addresses_memory_through_i32_locals_in_registers() {
    let wat = r#"(module
             (memory 1)
             (data (i32.const 16) "\01\02\03\04\05\06\07\08")
             (func $sum (param $p i32) (param $q i64) (result i32) (local $a i32) (local $i i32) (local $s i32)
               local.get $q i32.wrap_i64 local.set $a
               loop $l
                 local.get $s local.get $p i32.load8_u i32.add
                 local.get $a i32.load8_u offset=1 i32.add local.set $s
                 local.get $p i32.const 1 i32.add local.set $p
                 local.get $i i32.const 1 i32.add local.tee $i
                 i32.const 4 i32.lt_u br_if $l
               end
               ;; a negative constant as an address: 0xfffffff0 + 32 is out of bounds
               i32.const -16 local.set $a
               ;; (only for g, whose $q has 4 in its upper half)
               local.get $q i64.const 32 i64.shr_u i64.const 4 i64.eq
               if local.get $a i32.load offset=32 local.set $s end
               local.get $s)
             (func (export "f") (param $x i64) (result i32)
               ;; SIMD: Cranelift compiles this caller; the wrap keeps the
               ;; upper bits in the argument's register
               v128.const i64x2 0 0 drop
               local.get $x i32.wrap_i64
               local.get $x i64.const 0x100000000 i64.or
               call $sum)
             (func (export "g") (result i32)
               i32.const 400 i64.const 0x400000013 call $sum))"#;
    let run = |baseline: BaselineCompilation, x: i64| {
        let (mut store, i) = baseline_instance(baseline, wat);
        let f = i.get_typed_func::<i64, i32>(&mut store, "f").expect("f");
        let g = i.get_typed_func::<(), i32>(&mut store, "g").expect("g");
        let trapped = g.call(&mut store, ()).expect_err("out of bounds").downcast_ref::<Trap>().map(|t| t.code());
        (f.call(&mut store, x).expect("runs"), trapped)
    };
    for x in [0x1_0000_0010, 0x7fff_ffff_0000_0011, 0xffff_ffff_0000_0012_u64 as i64] {
        let always = run(BaselineCompilation::Always, x);
        assert_eq!(always, run(BaselineCompilation::Off, x), "f({x})");
        assert_eq!(always.1, Some(TrapCode::MemoryOutOfBounds));
    }
    // x = 0x1_0000_0010: bytes 16-19, plus byte 17 four times
    assert_eq!(run(BaselineCompilation::Always, 0x1_0000_0010).0, (1 + 2 + 3 + 4) + 4 * 2);
}

/// A store and an instance of `wat` in an engine whose baseline compiler
/// is used as `baseline` says.
/// What export `f` of `wat` returns for `params`, in a fresh instance
/// compiled as `baseline` says.
fn call_f<P: WasmParams, R: WasmResults>(baseline: BaselineCompilation, wat: &str, params: P) -> R {
    let (mut store, i) = baseline_instance(baseline, wat);
    let f = i.get_typed_func::<P, R>(&mut store, "f").expect("f");
    f.call(&mut store, params).expect("runs")
}

fn baseline_instance(baseline: BaselineCompilation, wat: &str) -> (Store<()>, Instance) {
    let mut config = Config::new();
    config.baseline_compilation(baseline);
    let engine = Engine::new(&config).expect("engine");
    let module = Module::new(&engine, wat).expect("compiles");
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).expect("instance");
    (store, i)
}

/// Baseline code reads a `local.get` from the local itself until an
/// operator needs the value in its stack slot; a write to the local, a
/// block, a branch or a call in between must not change what was read.
#[test]
fn baseline_code_reads_each_local_get_as_it_was() {
    let wat = r#"(module
             (func $id (param i32) (result i32) local.get 0)
             (func (export "f") (param i32) (result i32) (local i32 i64)
               ;; old 0, then 0 := 5: old + 5 * 100
               local.get 0
               i32.const 5 local.set 0
               local.get 0 i32.const 100 i32.mul
               i32.add
               ;; through a tee, a block and a call
               local.get 0
               i32.const 7 local.tee 0
               drop
               block (result i32) local.get 0 end
               i32.add
               local.get 0 call $id
               i32.add
               i32.add
               ;; a wrap of a local, then the local changes
               local.get 1 i32.const 1 i32.add local.set 1
               local.get 1 i64.extend_i32_u i32.wrap_i64
               i32.add
               ;; a wrap of a local read directly
               i64.const 0x100000002 local.set 2
               local.get 2 i32.wrap_i64
               i32.add
               ;; constants: immediates, stored, compared, set while read
               local.get 2 i64.const 0x100000000 i64.sub i32.wrap_i64
               i32.add
               local.get 1 i32.const 9 local.set 1 i32.add
               i64.const -1 i64.const 0x7fffffffffff i64.lt_s
               i32.add
               f64.const 2.5 i32.trunc_f64_s
               i32.add
               i32.const -1 i32.const 1 i32.lt_u
               i32.add))"#;
    let run = |baseline, x: i32| call_f::<i32, i32>(baseline, wat, x);
    // (3 + 500) + (5 + 7 + 7) + 1 + 2, then 2 + 1 + 1 + 2 + 0
    assert_eq!(run(BaselineCompilation::Always, 3), 531);
    for x in [0, -1, 1 << 20] {
        assert_eq!(run(BaselineCompilation::Always, x), run(BaselineCompilation::Off, x), "f({x})");
    }
}

/// Baseline code leaves an integer result in a register, and a
/// comparison's in the flags, until something needs it in its slot: a
/// second result, a tee, a store, a branch that carries values, a call, a
/// float consumer, a select, `eqz`, `if` or a block's end must each see
/// the value it would have read from the slot.
#[test]
fn baseline_code_keeps_results_in_a_register_only_while_they_are_the_same() {
    let wat = r#"(module
             (memory 1)
             (func $id (param i32) (result i32) local.get 0)
             (func (export "f") (param i32) (result i32) (local i32 i64)
               ;; two results in a row, each in a register of its own
               local.get 0 i32.const 3 i32.add
               local.get 0 i32.const 5 i32.mul
               i32.sub
               ;; a tee keeps it; the local and the stack agree
               local.get 0 i32.const 1 i32.add local.tee 1
               local.get 1 i32.add
               i32.add
               ;; a result below a local.set of a local read by a deferred entry
               local.get 0 i32.const 2 i32.shl
               local.get 1
               i32.const 100 local.set 1
               i32.add
               i32.add
               ;; a load, its address computed, its value stored and read back
               i32.const 8 local.get 0 i32.const 6 i32.xor i32.store
               i32.const 8 i32.load
               i32.const 16 i32.const 8 i32.load i32.const 1 i32.add i32.store
               i32.const 16 i32.load
               i32.add
               i32.add
               ;; a branch carrying a result, its condition a result too
               block (result i32)
                 local.get 0 i32.const 7 i32.and
                 local.get 0 i32.const 0 i32.lt_s
                 br_if 0
                 i32.const 1000 i32.add
               end
               i32.add
               ;; a result below a call, and one passed to it
               local.get 0 i32.const 9 i32.or
               local.get 0 i32.const 11 i32.rem_u call $id
               i32.add
               i32.add
               ;; float bits from a load, and a select of results
               i32.const 24 local.get 0 f64.convert_i32_s f64.store
               i32.const 24 f64.load f64.const 0.5 f64.add i32.trunc_f64_s
               local.get 0 i32.const 1 i32.shr_u
               local.get 0 i32.const 4 i32.div_s
               local.get 0 i32.eqz
               select
               i32.add
               i32.add
               ;; i64 results, wrapped
               local.get 0 i64.extend_i32_s i64.const 0x100000000 i64.mul local.tee 2
               i64.const 32 i64.shr_s local.get 2 i64.const 1 i64.add i64.eq
               i32.add
               ;; comparisons left in the flags: inverted, branched on, stored
               local.get 0 i32.const 5 i32.gt_s i32.eqz i32.eqz
               local.get 0 i32.const 2 i32.lt_u i32.eqz
               i32.add
               i32.add
               block (result i32)
                 i32.const 40
                 local.get 0 i32.const 100 i32.add
                 local.get 0 i32.const 3 i32.ne
                 br_if 0
                 drop
               end
               i32.add
               local.get 0 local.get 1 i32.le_s
               if (result i32) i32.const 7 else i32.const 9 end
               i32.add
               block (result i32) local.get 0 i64.extend_i32_s i64.const 0 i64.ge_s end
               i32.add
               local.get 0 i32.const 1 i32.eq local.set 1 local.get 1
               i32.add
               i32.const 1 i32.const 2 local.get 0 i32.const 0 i32.eq select
               i32.add
               ;; immediates: shifts (counts past the width), rotations, products
               local.get 0 i32.const 35 i32.shl local.get 0 i32.const -1 i32.shr_u i32.xor
               local.get 0 i32.const 7 i32.rotl i32.xor local.get 0 i32.const -12 i32.mul i32.xor
               local.get 0 i64.extend_i32_s i64.const 70 i64.shr_s
               local.get 0 i64.extend_i32_u i64.const -3 i64.mul i64.xor
               local.get 0 i64.extend_i32_u i64.const 13 i64.rotr i64.xor i32.wrap_i64
               i32.xor
               i32.add
               ;; eqz of a value that is no comparison, branched on
               block (result i32)
                 i32.const 5
                 local.get 0 i32.const 3 i32.and i32.eqz
                 br_if 0
                 i32.const 6 i32.add
               end
               i32.add))"#;
    let run = |baseline, x: i32| call_f::<i32, i32>(baseline, wat, x);
    for x in [0, 1, 3, -1, -8, 1 << 20, i32::MIN, i32::MAX] {
        assert_eq!(run(BaselineCompilation::Always, x), run(BaselineCompilation::Off, x), "f({x})");
    }
    // x = 3: 6 - 15, then 4 + 4, then 12 + 4 (the local's value when
    // read), then 5 + 6, then 1003, then 11 + 3, then 3 + 0, then 0; the
    // comparisons: 0 + 1, 40, 7, 1, 0, 2; then the immediates, and 11
    let imm = (3i32 << 3) ^ (3u32 >> 31) as i32 ^ 3i32.rotate_left(7) ^ 3i32.wrapping_mul(-12);
    // (3 >> (70 mod 64) is 0.)
    let imm64 = 3i64.wrapping_mul(-3) ^ 3i64.rotate_right(13);
    let total = -9 + 8 + 16 + 11 + 1003 + 14 + 3 + 1 + 40 + 7 + 1 + 2;
    assert_eq!(run(BaselineCompilation::Always, 3), (total + (imm ^ imm64 as i32)).wrapping_add(11));
}

/// Baseline code keeps up to three integer results in registers at once
/// and computes in place where an operand is one (the second only for a
/// commutative operator): a fourth result stores
/// the deepest, non-commutative operators keep their operand order, loads
/// and `global.get` go straight into a free register while others wait,
/// an extension rewrites its operand's register, and branches, calls and
/// stores find every pending value where it should be.
#[test]
fn baseline_code_keeps_several_results_in_registers() {
    let wat = r#"(module
             (memory 1)
             (global $g (mut i32) (i32.const 77))
             (global $h (mut i64) (i64.const -1234567890123))
             (func $mix (param i32 i32) (result i32) local.get 0 i32.const 31 i32.mul local.get 1 i32.xor)
             (func (export "f") (param i32) (result i32) (local i64)
               i32.const 0 local.get 0 i32.const 0x01020304 i32.mul i32.store
               i32.const 4 local.get 0 i64.extend_i32_s i64.const -7 i64.mul i64.store
               ;; five results pending: the two deepest go to their slots
               local.get 0 i32.const 1 i32.add
               local.get 0 i32.const 2 i32.sub
               local.get 0 i32.const 3 i32.mul
               local.get 0 i32.const 4 i32.xor
               local.get 0 i32.const 5 i32.shl
               i32.sub i32.sub i32.sub i32.sub
               ;; loads of every width into registers, others pending
               i32.const 0 i32.load8_s i32.const 1 i32.load8_u i32.const 2 i32.load16_s
               i32.const 0 i32.load16_u i32.const 0 i32.load
               i32.sub i32.add i32.sub i32.sub
               i32.add
               i32.const 4 i64.load i32.const 4 i64.load32_s i32.const 8 i64.load32_u
               i32.const 4 i64.load8_s i32.const 5 i64.load16_u
               i64.sub i64.sub i64.add i64.sub i32.wrap_i64
               i32.add
               ;; globals into registers, an i64 extended and wrapped in place
               global.get $g global.get $h i32.wrap_i64 i32.sub
               global.get $h i64.const 3 i64.shr_s global.get $g i64.extend_i32_u i64.sub
               local.tee 1 i64.const 40 i64.rotl i32.wrap_i64
               i32.xor i32.add
               ;; results below a call and a branch on a result, in a block
               block (result i32)
                 local.get 0 i32.const 9 i32.add
                 local.get 0 i32.const 10 i32.rem_s
                 local.get 0 i32.const 11 i32.and
                 local.get 0 i32.const 3 i32.shr_u call $mix
                 i32.sub
                 local.get 0 i32.const 6 i32.and
                 br_if 0
                 i32.sub
               end
               i32.add
               ;; a select of three results, a store of a result at a result
               local.get 0 i32.const 13 i32.mul
               local.get 0 i32.const 17 i32.add
               local.get 0 i32.const 2 i32.and
               select
               i32.add
               local.get 0 i32.const 7 i32.and i32.const 64 i32.add
               local.get 0 i32.const 99 i32.mul
               i32.store
               local.get 0 i32.const 7 i32.and i32.const 64 i32.add i32.load
               i32.add
               ;; a local below a result: commutative operators in the
               ;; result's register, a subtraction not
               local.get 0 local.get 0 i32.const 5 i32.mul i32.add i32.add
               local.get 0 local.get 0 i32.const 3 i32.shl i32.xor i32.add
               local.get 0 local.get 0 i32.const 7 i32.or i32.and i32.add
               local.get 0 local.get 0 i32.const 9 i32.add i32.sub i32.add
               local.get 1 local.get 1 i64.const 11 i64.mul i64.or i32.wrap_i64 i32.add
               local.get 1 i32.wrap_i64 i32.add))"#;
    let run = |baseline, x: i32| call_f::<i32, i32>(baseline, wat, x);
    for x in [0, 1, 3, -1, -8, 255, 1 << 20, i32::MIN, i32::MAX] {
        assert_eq!(run(BaselineCompilation::Always, x), run(BaselineCompilation::Off, x), "f({x})");
    }
}

/// Baseline code keeps memory 0's base in a callee-saved register: a
/// caller compiled by Cranelift (its SIMD makes the baseline compiler
/// decline it) with many values live across calls into baseline code
/// that reads and writes memory must find them all intact, through a
/// return and through a trap.
#[test]
fn baseline_code_gives_back_the_register_holding_the_memory_base() {
    let wat = r#"(module
             (memory 1)
             (func $touch (param i32) (result i32)
               local.get 0 local.get 0 i32.load i32.const 1 i32.add i32.store
               local.get 0 i32.load)
             (func (export "f") (param i64) (result i64)
               (local i64 i64 i64 i64 i64 i64)
               v128.const i64x2 0 0 drop
               local.get 0 i64.const 3 i64.mul local.set 1
               local.get 0 i64.const 5 i64.mul local.set 2
               local.get 0 i64.const 7 i64.mul local.set 3
               local.get 0 i64.const 11 i64.mul local.set 4
               local.get 0 i64.const 13 i64.mul local.set 5
               local.get 0 i64.const 17 i64.mul local.set 6
               i32.const 64 call $touch i64.extend_i32_u
               local.get 1 local.get 2 i64.mul i64.add
               local.get 3 local.get 4 i64.mul i64.add
               i32.const 64 call $touch i64.extend_i32_u i64.add
               local.get 5 local.get 6 i64.mul i64.add
               local.get 1 i64.add local.get 6 i64.add)
             (func (export "oob") (param i64) (result i64)
               (local i64 i64)
               v128.const i64x2 0 0 drop
               local.get 0 i64.const 3 i64.mul local.set 1
               local.get 0 i64.const 5 i64.mul local.set 2
               i32.const -4 call $touch drop
               local.get 1 local.get 2 i64.add))"#;
    let run = |baseline: BaselineCompilation| {
        let (mut store, i) = baseline_instance(baseline, wat);
        let f = i.get_typed_func::<i64, i64>(&mut store, "f").expect("f");
        let oob = i.get_typed_func::<i64, i64>(&mut store, "oob").expect("oob");
        let mut out = Vec::new();
        for x in [1i64, 2, 1 << 40, -9] {
            out.push(f.call(&mut store, x).expect("runs"));
            assert!(oob.call(&mut store, x).is_err(), "out of bounds");
        }
        out
    };
    let x = 2i64;
    let (a, b, c, d, e, g) = (3 * x, 5 * x, 7 * x, 11 * x, 13 * x, 17 * x);
    // The counter at 64 reads 3 and 4 in the second call (two calls per run).
    let want = 3 + a * b + c * d + 4 + e * g + a + g;
    assert_eq!(run(BaselineCompilation::Always)[1], want);
    assert_eq!(run(BaselineCompilation::Always), run(BaselineCompilation::Off));
}

#[test]
fn baseline_code_reports_functions_called_often_or_looping_long() {
    let engine = tiered_engine(false);
    let module = Module::new(&engine, TIERED_WAT).expect("compiles");
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).expect("instance");
    let fib = i.get_typed_func::<i32, i32>(&mut store, "fib").expect("fib");
    let sum = i.get_typed_func::<i32, i64>(&mut store, "sum").expect("sum");
    let load = i.get_typed_func::<i32, i32>(&mut store, "load").expect("load");
    // fib(10) is 177 calls, sum(500) 500 iterations: neither is hot yet.
    assert_eq!(fib.call(&mut store, 10).expect("runs"), 55);
    assert_eq!(sum.call(&mut store, 500).expect("runs"), 125_250);
    assert_eq!(load.call(&mut store, 0).expect("runs"), 0);
    assert_eq!(hot(&module), Vec::<u32>::new());
    // sum(5,000) loops past the on-stack-replacement check, which
    // reports it while it has no optimized code; fib(15) is 1,973 calls
    // (the entry counter).
    assert_eq!(sum.call(&mut store, 5_000).expect("runs"), 12_502_500);
    assert_eq!(hot(&module), vec![1]);
    assert_eq!(fib.call(&mut store, 15).expect("runs"), 610);
    assert_eq!(hot(&module), vec![0, 1]);
    // Reported, not optimized: no background compiler here.
    assert_eq!(tiers(&module), (3, 0));
    // What a background compiler would optimize first: the two reported
    // functions (their order depends on their sizes and waits, see the
    // next test).
    let next = |m: &Module| kiln::__private_testing::lazy_next_optimized(m).expect("compiled lazily");
    let mut first = [next(&module), next(&module)];
    first.sort();
    assert_eq!(first, [Some(0), Some(1)]);
}

#[test]
fn of_the_hot_functions_a_small_one_that_waited_is_optimized_first() {
    // `big` turned hot first, `small` after it; once both have waited a
    // while, `small` (far cheaper to compile) goes first.
    let adds = "local.get 0 i32.const 3 i32.mul i32.const 1 i32.add local.set 0\n".repeat(1500);
    let wat = format!(
        r#"(module
             (func (export "big") (param i32) (result i32) {adds} local.get 0)
             (func (export "small") (param i32) (result i32) local.get 0 i32.const 1 i32.add))"#
    );
    let engine = tiered_engine(false);
    let module = Module::new(&engine, wat).expect("compiles");
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).expect("instance");
    let big = i.get_typed_func::<i32, i32>(&mut store, "big").expect("big");
    let small = i.get_typed_func::<i32, i32>(&mut store, "small").expect("small");
    while hot(&module).is_empty() {
        big.call(&mut store, 1).expect("runs");
    }
    while hot(&module).len() < 2 {
        assert_eq!(small.call(&mut store, 1).expect("runs"), 2);
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    let next = |m: &Module| kiln::__private_testing::lazy_next_optimized(m).expect("compiled lazily");
    assert_eq!([next(&module), next(&module)], [Some(1), Some(0)]);
}

#[test]
fn the_background_compiler_replaces_baseline_code() {
    let engine = tiered_engine(true);
    let module = Module::new(&engine, TIERED_WAT).expect("compiles");
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).expect("instance");
    let fib = i.get_typed_func::<i32, i32>(&mut store, "fib").expect("fib");
    assert_eq!(fib.call(&mut store, 25).expect("runs"), 75025);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while tiers(&module) != (0, 4) {
        assert!(std::time::Instant::now() < deadline, "tiers stuck at {:?}", tiers(&module));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Calls now reach Cranelift's code through the stubs' slots, and the
    // recursion that started in baseline code goes there too.
    assert_eq!(fib.call(&mut store, 25).expect("runs"), 75025);
    let sum = i.get_typed_func::<i32, i64>(&mut store, "sum").expect("sum");
    assert_eq!(sum.call(&mut store, 10).expect("runs"), 55);
}

/// A loop that runs in baseline code until the host, asked every 2^16
/// iterations, says optimized code took the activation over (or a minute
/// passed): its locals of every type, parameters on the stack included,
/// must come out as if nothing had happened.
#[test]
fn a_loop_running_baseline_code_moves_to_optimized_code_on_the_stack() {
    let wat = r#"(module
         (import "host" "done" (func $done (param i64) (result i32)))
         (func (export "run") (param $a i32) (param $b i64) (param $c f32) (param $d f64)
                              (param $e i32) (param $f i32) (param $g i32)
                              (result i64 i64 i32 f32 f64 i32)
           (local $i i64) (local $sum i64) (local $x i32)
           block $out
             loop $next
               local.get $i i64.const 1 i64.add local.set $i
               local.get $sum local.get $i local.get $b i64.mul i64.add local.set $sum
               local.get $x i32.const 3 i32.mul local.get $a i32.add local.set $x
               local.get $c f32.neg local.set $c
               local.get $d f64.const 0.5 f64.add local.set $d
               local.get $i i64.const 65535 i64.and i64.eqz
               if
                 local.get $i call $done br_if $out
               end
               br $next
             end
           end
           local.get $i local.get $sum local.get $x local.get $c local.get $d
           local.get $e local.get $f i32.add local.get $g i32.add))"#;
    // No background compiler: the host optimizes `run` (defined function
    // 0) at the loop's first check, while its activation runs baseline
    // code; the entry is then compiled by the background pool on the
    // loop's next on-stack-replacement check.
    let engine = tiered_engine(false);
    let module = Arc::new(Module::new(&engine, wat).expect("compiles"));
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    let start = std::time::Instant::now();
    let watched = module.clone();
    // Done at the first check after one that saw the activation move: the
    // loop has run in the optimized code since.
    let seen = std::sync::atomic::AtomicBool::new(false);
    linker
        .func_wrap("host", "done", move |_i: i64| -> i32 {
            assert!(kiln::__private_testing::lazy_optimize(&watched, 0), "compiled lazily");
            let moved = kiln::__private_testing::lazy_osr(&watched).is_some_and(|(_, moved)| moved > 0);
            let was = seen.swap(moved, std::sync::atomic::Ordering::Relaxed);
            i32::from((was && moved) || start.elapsed() > std::time::Duration::from_secs(60))
        })
        .expect("define");
    let i = linker.instantiate(&mut store, &module).expect("instance");
    let run = i
        .get_typed_func::<(i32, i64, f32, f64, i32, i32, i32), (i64, i64, i32, f32, f64, i32)>(&mut store, "run")
        .expect("run");
    let (n, sum, x, c, d, efg) = run.call(&mut store, (5, 7, 1.5, 0.25, 100, 20, 3)).expect("runs");
    assert_eq!(kiln::__private_testing::lazy_osr(&module), Some((1, 1)), "one entry, one activation moved to it");
    // What the loop computes after n iterations, step by step.
    let (mut s, mut xx, mut cc, mut dd) = (0i64, 0i32, 1.5f32, 0.25f64);
    for k in 1..=n {
        s = s.wrapping_add(k.wrapping_mul(7));
        xx = xx.wrapping_mul(3).wrapping_add(5);
        cc = -cc;
        dd += 0.5;
    }
    assert_eq!((sum, x, c, d, efg), (s, xx, cc, dd, 123), "after {n} iterations");
    assert_eq!(n % 65536, 0);
    eprintln!("moved to optimized code after at most {n} iterations");
}

/// A large function whose baseline code reported a loop running long
/// gets its on-stack-replacement entry compiled as soon as its optimized
/// code is in, with no activation asking again (one of an interpreter's
/// main loop may still be running the baseline code).
#[test]
fn a_large_function_still_looping_in_baseline_code_asks_for_its_entry_at_once() {
    // 4,000 straight-line steps after the loop make well over 32 KiB of
    // baseline code. Each iteration calls the host, which is told when to
    // have the function optimized.
    let steps = "local.get 1 i32.const 3 i32.xor local.get 0 i32.add local.set 1\n".repeat(4000);
    let wat = format!(
        r#"(module
             (import "host" "tick" (func $tick (param i32)))
             (func (export "run") (param i32) (result i32) (local i32)
               loop $l
                 local.get 1 call $tick
                 local.get 1 i32.const 1 i32.add local.set 1
                 local.get 1 local.get 0 i32.lt_u br_if $l
               end
               local.get 0 i32.const 0 i32.lt_s
               if {steps} end
               local.get 1))"#
    );
    let engine = tiered_engine(false);
    // A fresh module and instance whose host optimizes the function at
    // iteration `optimize_at` (never if negative).
    let start = |optimize_at: i32| {
        let module = Module::new(&engine, &wat).expect("compiles");
        let mut store = Store::new(&engine, ());
        let m = module.clone();
        let tick = Func::wrap(&mut store, move |i: i32| {
            if i == optimize_at {
                assert!(kiln::__private_testing::lazy_optimize(&m, 0), "compiled lazily");
            }
        });
        let i = Instance::new(&mut store, &module, &[tick.into()]).expect("instance");
        let run = i.get_typed_func::<i32, i32>(&mut store, "run").expect("run");
        (module, store, run)
    };
    let osr = |m: &Module| kiln::__private_testing::lazy_osr(m).expect("compiled lazily");
    let (module, mut store, run) = start(-1);
    // 1,500 iterations of baseline code: the loop reports (at 1,000).
    assert_eq!(run.call(&mut store, 1500).expect("runs"), 1500);
    assert_eq!(tiers(&module), (1, 0));
    // Optimized while no activation runs its baseline code: nothing asks
    // for an entry (this one would compile in well under a second).
    assert!(kiln::__private_testing::lazy_optimize(&module, 0), "compiled lazily");
    assert_eq!(tiers(&module), (0, 1));
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(osr(&module), (0, 0));

    // Again in a fresh module, optimized from inside the loop at iteration
    // 1,200: the activation asks at its next check, long before its
    // counter would have run out again (at 2,000; it stops at 1,900), and
    // gets its entry (while it still runs: the host waits for it at
    // iteration 1,300) without moving to it.
    let module = Module::new(&engine, &wat).expect("compiles");
    let mut store = Store::new(&engine, ());
    let m = module.clone();
    let tick = Func::wrap(&mut store, move |i: i32| {
        if i == 1200 {
            assert!(kiln::__private_testing::lazy_optimize(&m, 0), "compiled lazily");
        }
        if i == 1300 {
            let asked = std::time::Instant::now();
            while osr(&m) != (1, 0) {
                assert!(asked.elapsed() < std::time::Duration::from_secs(60), "no entry asked for: {:?}", osr(&m));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    });
    let i = Instance::new(&mut store, &module, &[tick.into()]).expect("instance");
    let run = i.get_typed_func::<i32, i32>(&mut store, "run").expect("run");
    assert_eq!(run.call(&mut store, 1900).expect("runs"), 1900);
    assert_eq!(tiers(&module), (0, 1));
    assert_eq!(osr(&module), (1, 0));
}

/// Tiered baseline code counts the activations running it (one more at
/// entry, one less at each return), which is how the runtime knows an
/// on-stack-replacement entry asked for can still be taken; an activation
/// that a trap unwinds stays counted (the entry is then compiled for
/// nothing, as before the count).
#[test]
fn baseline_code_counts_its_running_activations() {
    let wat = r#"(module
         (import "host" "tick" (func $tick (param i32)))
         (func $down (export "down") (param i32) (result i32)
           local.get 0 call $tick
           local.get 0 i32.eqz
           if (result i32)
             i32.const 0
           else
             local.get 0 i32.const 1 i32.sub call $down i32.const 1 i32.add
           end)
         (func (export "trap") (param i32) (result i32)
           local.get 0 call $down drop
           unreachable))"#;
    let engine = tiered_engine(false);
    let module = Module::new(&engine, wat).expect("compiles");
    let mut store = Store::new(&engine, ());
    let m = module.clone();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let tick = Func::wrap(&mut store, move |_: i32| {
        let running = kiln::__private_testing::lazy_running_activations(&m, 0).expect("compiled lazily");
        log.lock().expect("log").push(running);
    });
    let i = Instance::new(&mut store, &module, &[tick.into()]).expect("instance");
    let down = i.get_typed_func::<i32, i32>(&mut store, "down").expect("down");
    let trap = i.get_typed_func::<i32, i32>(&mut store, "trap").expect("trap");
    let running = || kiln::__private_testing::lazy_running_activations(&module, 0).expect("compiled lazily");
    assert_eq!(running(), 0);
    // Three nested activations of `down` (baseline code calls itself
    // through its stub while it has no optimized code), each seen from
    // the host before it recurses.
    assert_eq!(down.call(&mut store, 2).expect("runs"), 2);
    assert_eq!(*seen.lock().expect("log"), vec![1, 2, 3]);
    assert_eq!(running(), 0);
    // `down` returns before `trap` traps: its count goes back to 0.
    seen.lock().expect("log").clear();
    trap.call(&mut store, 1).expect_err("traps");
    assert_eq!(*seen.lock().expect("log"), vec![1, 2]);
    assert_eq!(running(), 0);
    // `trap`'s own activation was unwound, not returned from.
    assert_eq!(kiln::__private_testing::lazy_running_activations(&module, 1), Some(1));
    assert_eq!(tiers(&module).0, 2);
}

/// Two baseline activations of one function, each running a different
/// loop (the inner in its second, the outer, after the inner returns, in
/// its first) move to optimized code through one on-stack-replacement
/// entry, compiled once; what each loop computed, and the inner result
/// the outer activation holds in its locals, come out right.
#[test]
fn one_entry_takes_over_activations_in_different_loops() {
    let wat = r#"(module
         (import "host" "done" (func $done (param i64) (result i32)))
         (func $run (export "run") (param $outer i32) (result i64 i64 i64 i64)
           (local $i i64) (local $sum i64) (local $na i64) (local $sa i64)
           local.get $outer
           if
             i32.const 0 call $run drop drop local.set $sa local.set $na
             block $out
               loop $b
                 local.get $i i64.const 1 i64.add local.set $i
                 local.get $sum local.get $i i64.const 5 i64.mul i64.add local.set $sum
                 local.get $i i64.const 65535 i64.and i64.eqz
                 if local.get $i call $done br_if $out end
                 br $b
               end
             end
             local.get $na local.get $sa local.get $i local.get $sum return
           end
           block $out
             loop $a
               local.get $i i64.const 1 i64.add local.set $i
               local.get $sum local.get $i i64.const 3 i64.mul i64.add local.set $sum
               local.get $i i64.const 65535 i64.and i64.eqz
               if local.get $i call $done br_if $out end
               br $a
             end
           end
           local.get $i local.get $sum i64.const 0 i64.const 0))"#;
    // No background compiler: the host optimizes `run` (defined function
    // 0) at the inner loop's first check, when both activations run
    // baseline code; the entry is then compiled by the background pool
    // on the inner loop's next on-stack-replacement check.
    let engine = tiered_engine(false);
    let module = Arc::new(Module::new(&engine, wat).expect("compiles"));
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    let start = std::time::Instant::now();
    let watched = module.clone();
    // Each loop ends at the first check after one that saw its activation
    // move (the n-th loop to end waits for the n-th move).
    let state = std::sync::Mutex::new((1u32, false));
    linker
        .func_wrap("host", "done", move |_i: i64| -> i32 {
            assert!(kiln::__private_testing::lazy_optimize(&watched, 0), "compiled lazily");
            let moved = kiln::__private_testing::lazy_osr(&watched).map_or(0, |(_, moved)| moved);
            let mut state = state.lock().unwrap();
            let now = moved >= state.0;
            let done = (state.1 && now) || start.elapsed() > std::time::Duration::from_secs(60);
            state.1 = now && !done;
            if done {
                state.0 += 1;
            }
            i32::from(done)
        })
        .expect("define");
    let i = linker.instantiate(&mut store, &module).expect("instance");
    let run = i.get_typed_func::<i32, (i64, i64, i64, i64)>(&mut store, "run").expect("run");
    let (na, sa, nb, sb) = run.call(&mut store, 1).expect("runs");
    assert_eq!(kiln::__private_testing::lazy_osr(&module), Some((1, 2)), "one entry, two activations moved to it");
    let sum = |n: i64, k: i64| k.wrapping_mul(n).wrapping_mul(n + 1) / 2;
    assert_eq!((sa, sb), (sum(na, 3), sum(nb, 5)), "after {na} and {nb} iterations");
}
