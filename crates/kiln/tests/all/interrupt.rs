//! Fuel, epochs and resource limits stop untrusted code.

use kiln::*;
use std::time::{Duration, Instant};

const PROGRAMS: &str = r#"(module
    (import "host" "tick" (func $tick))
    (func (export "spin") (loop $l (br $l)))
    (func $down (export "recurse") (call $down))
    (func (export "host_loop") (loop $l (call $tick) (br $l)))
    (func (export "count") (param $n i32) (result i32) (local $acc i32)
        (block $done
            (loop $l
                (br_if $done (i32.eqz (local.get $n)))
                (local.set $acc (i32.add (local.get $acc) (local.get $n)))
                (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                (br $l)))
        (local.get $acc)))"#;

fn setup(config: &Config) -> (Store<()>, Instance) {
    let engine = Engine::new(config).expect("engine");
    let module = Module::new(&engine, PROGRAMS).expect("module");
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker.func_wrap("host", "tick", || {}).expect("define");
    let instance = linker.instantiate(&mut store, &module).expect("instance");
    (store, instance)
}

fn trap_code(r: Result<()>) -> Option<TrapCode> {
    r.err().and_then(|e| e.downcast_ref::<Trap>().map(Trap::code))
}

#[test]
fn fuel_stops_loops_recursion_and_host_loops() {
    // Eagerly, and lazily (each function compiled at its first call).
    for strategy in [CompileStrategy::Eager, CompileStrategy::Lazy] {
        let mut config = Config::new();
        config.consume_fuel(true).compile_strategy(strategy).background_compilation(false);
        let (mut store, instance) = setup(&config);
        for name in ["spin", "recurse", "host_loop"] {
            store.set_fuel(1_000).unwrap();
            let f = instance.get_typed_func::<(), ()>(&mut store, name).unwrap();
            assert_eq!(trap_code(f.call(&mut store, ())), Some(TrapCode::OutOfFuel), "{name} {strategy:?}");
            assert_eq!(store.get_fuel().unwrap(), 0, "{name} {strategy:?}");
        }
    }
}

#[test]
fn fuel_is_exact_and_deterministic() {
    let mut config = Config::new();
    config.consume_fuel(true);
    let (mut store, instance) = setup(&config);
    let count = instance.get_typed_func::<i32, i32>(&mut store, "count").unwrap();
    let mut used = Vec::new();
    for _ in 0..5 {
        store.set_fuel(1_000_000).unwrap();
        assert_eq!(count.call(&mut store, 1000).unwrap(), 500500);
        used.push(1_000_000 - store.get_fuel().unwrap());
    }
    assert!(used.windows(2).all(|w| w[0] == w[1]), "{used:?}");
    // Linear in the work done: 1000 more iterations cost the same again.
    store.set_fuel(1_000_000).unwrap();
    count.call(&mut store, 2000).unwrap();
    let used2 = 1_000_000 - store.get_fuel().unwrap();
    let per_iteration = (used2 - used[0]) / 1000;
    assert!(per_iteration > 0 && used2 - used[0] == per_iteration * 1000, "{used2} vs {}", used[0]);
    // Exactly enough fuel succeeds; one less traps.
    store.set_fuel(used[0]).unwrap();
    assert!(count.call(&mut store, 1000).is_ok());
    store.set_fuel(used[0] - 1 - per_iteration).unwrap();
    assert!(count.call(&mut store, 1000).is_err());
    // Without fuel enabled, the fuel API is an error.
    let (mut plain, _) = setup(&Config::new());
    assert!(plain.set_fuel(1).is_err());
}

/// Every way a call can trap, each after `$n` iterations of work.
const TRAPPING: &str = r#"(module
    (import "host" "fail" (func $fail))
    (import "host" "refuel" (func $refuel))
    (memory 1)
    (table $t 1 funcref)
    (func $work (param $n i32)
        (loop $l
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br_if $l (i32.gt_s (local.get $n) (i32.const 0)))))
    (func $deeper (param $n i32) (call $deeper (local.get $n)))
    (func (export "loop_then_fault") (param $n i32) (result i32)
        (loop $l
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br_if $l (i32.gt_s (local.get $n) (i32.const 0))))
        (i32.load (i32.const 65536)))
    (func (export "trap") (param $n i32) (param $kind i32) (result i32)
        (call $work (local.get $n))
        (block $k7 (block $k6 (block $k5 (block $k4 (block $k3 (block $k2 (block $k1 (block $k0
            (br_table $k0 $k1 $k2 $k3 $k4 $k5 $k6 $k7 (local.get $kind)))
            unreachable)
            (return (i32.load (i32.const 65536))))
            (return (i32.div_u (local.get $n) (i32.const 0))))
            (call_indirect (i32.const 0)) (return (i32.const 0)))
            (table.copy (i32.const 0) (i32.const 1) (i32.const 1)) (return (i32.const 0)))
            (call $fail) (return (i32.const 0)))
            (call $deeper (local.get $n)) (return (i32.const 0)))
        (call $refuel) (return (i32.const 0))))"#;

const TRAP_KINDS: [&str; 7] = [
    "unreachable",
    "out-of-bounds load",
    "divide by zero",
    "null call_indirect",
    "table.copy out of bounds (builtin)",
    "host error",
    "stack overflow",
];

/// A call that traps is charged what it ran before the trap, whatever
/// trapped: a hardware fault, an explicit trap, a builtin or the host.
#[test]
fn trapping_calls_are_charged_what_they_ran() {
    for epochs in [false, true] {
        let mut config = Config::new();
        config.consume_fuel(true).epoch_interruption(epochs);
        let engine = Engine::new(&config).expect("engine");
        let module = Module::new(&engine, TRAPPING).expect("module");
        let mut store = Store::new(&engine, ());
        store.set_epoch_deadline(u64::MAX / 2);
        let mut linker = Linker::new(&engine);
        linker.func_wrap("host", "fail", || -> Result<()> { Err(anyhow::anyhow!("host says no")) }).expect("define");
        linker
            .func_wrap("host", "refuel", |mut caller: Caller<'_, ()>| -> Result<()> {
                // Sees the calling wasm's consumption, and its change sticks.
                let left = caller.get_fuel()?;
                assert!(left < 1_000_000);
                caller.set_fuel(left + 7)
            })
            .expect("define");
        let instance = linker.instantiate(&mut store, &module).expect("instance");
        let f = instance.get_typed_func::<(i32, i32), i32>(&mut store, "trap").unwrap();
        let used = |store: &mut Store<()>, n: i32, kind: i32| {
            store.set_fuel(1_000_000).unwrap();
            let r = f.call(&mut *store, (n, kind));
            (r.is_err(), 1_000_000 - store.get_fuel().unwrap())
        };
        for (kind, name) in TRAP_KINDS.iter().enumerate() {
            let kind = kind as i32;
            let (trapped, base) = used(&mut store, 1, kind);
            let (_, more) = used(&mut store, 1_001, kind);
            let (_, again) = used(&mut store, 1_001, kind);
            assert!(trapped, "{name}: should trap");
            assert_eq!(more, again, "{name}: deterministic");
            // The loop's body costs at least its five operators an iteration.
            assert!(
                more >= base + 5_000,
                "{name} (epochs {epochs}): 1,000 more iterations charged {} fuel",
                more - base
            );
        }
        // Work in the trapping function itself counts too.
        let g = instance.get_typed_func::<i32, i32>(&mut store, "loop_then_fault").unwrap();
        let mut in_place = |n: i32| {
            store.set_fuel(1_000_000).unwrap();
            assert!(g.call(&mut store, n).is_err());
            1_000_000 - store.get_fuel().unwrap()
        };
        let (base, more) = (in_place(1), in_place(1_001));
        assert!(more >= base + 5_000, "loop then fault (epochs {epochs}): {base} vs {more}");
        // The host's refuelling is seen by the wasm that called it.
        let (trapped, refuelled) = used(&mut store, 1, 7);
        assert!(!trapped);
        let (_, unreachable) = used(&mut store, 1, 0);
        assert!(refuelled < unreachable, "refuel: {refuelled} vs {unreachable}");
    }
}

#[test]
fn epochs_stop_loops_recursion_and_host_loops() {
    for signals in [true, false] {
        // Also with every function compiled lazily, at its first call: the
        // signal handler finds code installed after the module was made.
        for lazy in [false, true] {
            epochs_stop_everything(signals, lazy);
        }
    }
}

fn epochs_stop_everything(signals: bool, lazy: bool) {
    let mut config = Config::new();
    config.epoch_interruption(true).epoch_interruption_signals(signals);
    if lazy {
        config.compile_strategy(CompileStrategy::Lazy).background_compilation(false);
    }
    let (mut store, instance) = setup(&config);
    let engine = store.engine().clone();
    let _ticker = engine.start_epoch_ticker(Duration::from_millis(5));
    for name in ["spin", "recurse", "host_loop"] {
        store.set_epoch_deadline(2);
        let f = instance.get_typed_func::<(), ()>(&mut store, name).unwrap();
        let start = Instant::now();
        let code = trap_code(f.call(&mut store, ()));
        // Unbounded recursion may exhaust the stack before the deadline.
        assert!(matches!(code, Some(TrapCode::Interrupt | TrapCode::StackOverflow)), "{name}: {code:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    // A deadline in the past stops wasm at its first check.
    store.set_epoch_deadline(0);
    let count = instance.get_typed_func::<i32, i32>(&mut store, "count").unwrap();
    assert_eq!(trap_code(count.call(&mut store, 10).map(|_| ())), Some(TrapCode::Interrupt));
}

#[test]
fn epoch_callback_extends_the_deadline() {
    for signals in [true, false] {
        callback_extends_the_deadline(signals);
    }
}

fn callback_extends_the_deadline(signals: bool) {
    let mut config = Config::new();
    config.epoch_interruption(true).epoch_interruption_signals(signals);
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(&engine, PROGRAMS).unwrap();
    let mut store = Store::new(&engine, 0u32);
    let mut linker = Linker::new(&engine);
    let e2 = engine.clone();
    linker.func_wrap("host", "tick", move || e2.increment_epoch()).unwrap();
    let instance = linker.instantiate(&mut store, &module).unwrap();
    store.epoch_deadline_callback(|mut cx| {
        *cx.data_mut() += 1;
        if *cx.data() < 10 { Ok(UpdateDeadline::Continue(1)) } else { anyhow::bail!("enough") }
    });
    store.set_epoch_deadline(1);
    let f = instance.get_typed_func::<(), ()>(&mut store, "host_loop").unwrap();
    let err = f.call(&mut store, ()).unwrap_err();
    assert_eq!(err.to_string(), "enough");
    assert_eq!(*store.data(), 10);
}

struct Limits(StoreLimits);

#[test]
fn limiter_decisions() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (memory (export "m") 1)
        (table 1 funcref)
        (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
        (func (export "tgrow") (param i32) (result i32) ref.null func local.get 0 table.grow))"#,
    )
    .unwrap();
    // Deny: memory.grow returns -1, not a trap.
    let mut store =
        Store::new(&engine, Limits(StoreLimitsBuilder::new().memory_size(3 << 16).table_elements(5).build()));
    store.limiter(|l| &mut l.0);
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let grow = i.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
    let tgrow = i.get_typed_func::<i32, i32>(&mut store, "tgrow").unwrap();
    assert_eq!(grow.call(&mut store, 2).unwrap(), 1);
    assert_eq!(grow.call(&mut store, 1).unwrap(), -1);
    assert_eq!(tgrow.call(&mut store, 4).unwrap(), 1);
    assert_eq!(tgrow.call(&mut store, 1).unwrap(), -1);
    let mem = i.get_memory(&mut store, "m").unwrap();
    assert!(mem.grow(&mut store, 1).is_err());
    // Error: stops execution with the limiter's error.
    let mut store =
        Store::new(&engine, Limits(StoreLimitsBuilder::new().memory_size(2 << 16).trap_on_grow_failure(true).build()));
    store.limiter(|l| &mut l.0);
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let grow = i.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
    let err = grow.call(&mut store, 5).unwrap_err();
    assert!(err.downcast_ref::<LimitExceeded>().is_some(), "{err:#}");
    // Instantiation is refused when the initial size or count is over the limit.
    let mut store = Store::new(&engine, Limits(StoreLimitsBuilder::new().memory_size(1000).build()));
    store.limiter(|l| &mut l.0);
    assert!(Instance::new(&mut store, &module, &[]).is_err());
    let mut store = Store::new(&engine, Limits(StoreLimitsBuilder::new().instances(1).build()));
    store.limiter(|l| &mut l.0);
    assert!(Instance::new(&mut store, &module, &[]).is_ok());
    let err = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert!(format!("{err}").contains("instance limit"), "{err}");
}

#[test]
fn max_wasm_stack_is_configurable() {
    let wat = r#"(module (func $r (export "r") (param i32) (result i32)
        (if (result i32) (local.get 0)
            (then (i32.add (i32.const 1) (call $r (i32.sub (local.get 0) (i32.const 1)))))
            (else (i32.const 0)))))"#;
    let depth = |stack: usize| {
        let mut config = Config::new();
        config.max_wasm_stack(stack);
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, wat).unwrap();
        let mut store = Store::new(&engine, ());
        let i = Instance::new(&mut store, &module, &[]).unwrap();
        let r = i.get_typed_func::<i32, i32>(&mut store, "r").unwrap();
        r.call(&mut store, 10_000).is_ok()
    };
    assert!(depth(1 << 20));
    assert!(!depth(16 << 10));
}

/// Many values live across a loop whose epoch check fires on every
/// iteration (a deadline of "now" that the callback keeps at "now"): the
/// interruption path must hand every register back intact (the builtin is
/// called without clobbering anything), so the result equals an
/// uninterrupted run. The same for a counted loop, whose check runs once
/// per strip of iterations (see kiln-cranelift's `translate/interrupt/strip/`).
///
/// With epoch signals there are no checks: the signal stops the loop at
/// whatever instruction it reaches, and the handler's register save must
/// be complete (integer, flags, vector) for the result to come out equal.
#[test]
fn epoch_interruptions_preserve_live_values() {
    // Not a counted loop: the variable is re-read after a `local.set`.
    let plain = "(local.set $n (i32.sub (local.get $n) (i32.const 1))) (br_if $l (local.get $n))";
    let counted = "(br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))";
    live_values_across_checks(plain, Interruptions::Polled { iterations_per_check: 1 });
    live_values_across_checks(counted, Interruptions::Polled { iterations_per_check: 1024 });
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        live_values_across_checks(plain, Interruptions::Signals);
        live_values_across_checks(counted, Interruptions::Signals);
    }
}

#[derive(Clone, Copy)]
enum Interruptions {
    /// Compiled checks, the callback running at each.
    Polled { iterations_per_check: u32 },
    /// Epoch signals, redelivered while the deadline stays reached.
    Signals,
}

fn live_values_across_checks(back_edge: &str, mode: Interruptions) {
    let mut wat = String::from("(module (func (export \"mix\") (param $n i32) (result i64)");
    for i in 0..10 {
        wat.push_str(&format!(" (local $f{i} f64) (local $x{i} i64)"));
    }
    for i in 0..10 {
        wat.push_str(&format!(
            " (local.set $f{i} (f64.const {}.5)) (local.set $x{i} (i64.const {}))",
            i + 1,
            i * 7919 + 1
        ));
    }
    wat.push_str(" (loop $l");
    for i in 0..10 {
        let j = (i + 1) % 10;
        wat.push_str(&format!(
            " (local.set $f{i} (f64.add (f64.mul (local.get $f{i}) (f64.const 0.999)) (f64.convert_i64_s (i64.and (local.get $x{j}) (i64.const 255)))))\
              (local.set $x{i} (i64.add (i64.mul (local.get $x{i}) (i64.const 6364136223846793005)) (local.get $x{j})))"
        ));
    }
    wat.push_str(back_edge);
    wat.push(')');
    wat.push_str(" (i64.const 0)");
    for i in 0..10 {
        wat.push_str(&format!(" (i64.xor (i64.reinterpret_f64 (local.get $f{i}))) (i64.xor (local.get $x{i}))"));
    }
    wat.push_str("))");

    let iterations: i32 = match mode {
        Interruptions::Polled { .. } => 20_000,
        // Long enough (tens of milliseconds) for many redeliveries.
        Interruptions::Signals => 4_000_000,
    };
    let run = |epochs: bool| -> (i64, u32) {
        let mut config = Config::new();
        config.epoch_interruption(epochs).epoch_interruption_signals(matches!(mode, Interruptions::Signals));
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, &wat).unwrap();
        let mut store = Store::new(&engine, 0u32);
        if epochs {
            store.set_epoch_deadline(0);
            store.epoch_deadline_callback(|mut cx| {
                *cx.data_mut() += 1;
                Ok(UpdateDeadline::Continue(0))
            });
        }
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let mix = instance.get_typed_func::<i32, i64>(&mut store, "mix").unwrap();
        let r = mix.call(&mut store, iterations).unwrap();
        (r, *store.data())
    };
    let (plain, _) = run(false);
    let (interrupted, callbacks) = run(true);
    let expected = match mode {
        Interruptions::Polled { iterations_per_check } => iterations as u32 / iterations_per_check,
        Interruptions::Signals => 5,
    };
    assert!(callbacks >= expected, "the epoch path ran only {callbacks} times, expected {expected}");
    assert_eq!(plain, interrupted);
}

/// A thread parked forever in `memory.atomic.wait32` is still reached by
/// its epoch deadline (the wait polls it), and traps.
#[test]
fn epoch_deadline_reaches_a_thread_blocked_in_atomic_wait() {
    let mut config = Config::new();
    config.epoch_interruption(true);
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(
        &engine,
        r#"(module (memory 1 1 shared)
            (func (export "park") (result i32)
                (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    store.set_epoch_deadline(1);
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let park = instance.get_typed_func::<(), i32>(&mut store, "park").unwrap();
    let _ticker = engine.start_epoch_ticker(Duration::from_millis(10));
    let started = Instant::now();
    let err = park.call(&mut store, ()).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>().map(Trap::code), Some(TrapCode::Interrupt));
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The epoch check only reads a flag raised by whoever advances the epoch:
/// moving the deadline clears a raised flag, and many stores coming and
/// going on several threads while the epoch advances still each get
/// interrupted.
#[test]
fn epoch_flags_follow_deadlines_across_stores_and_threads() {
    let mut config = Config::new();
    config.epoch_interruption(true);
    let (mut store, instance) = setup(&config);
    let engine = store.engine().clone();
    let count = instance.get_typed_func::<i32, i32>(&mut store, "count").unwrap();
    // Reached deadline, then moved before running: no interruption.
    store.set_epoch_deadline(1);
    engine.increment_epoch();
    store.set_epoch_deadline(10);
    assert_eq!(count.call(&mut store, 1000).unwrap(), 500_500);
    // Deadline set in the past: interrupted at once.
    store.set_epoch_deadline(0);
    assert_eq!(trap_code(count.call(&mut store, 1000).map(drop)), Some(TrapCode::Interrupt));

    let ticker = engine.start_epoch_ticker(Duration::from_millis(1));
    std::thread::scope(|s| {
        for _ in 0..2 {
            let engine = engine.clone();
            s.spawn(move || {
                let module = Module::new(&engine, PROGRAMS).unwrap();
                for _ in 0..20 {
                    let mut store = Store::new(&engine, ());
                    let mut linker = Linker::new(&engine);
                    linker.func_wrap("host", "tick", || {}).unwrap();
                    let i = linker.instantiate(&mut store, &module).unwrap();
                    // Short-lived stores register and unregister meanwhile.
                    drop(Store::new(&engine, ()));
                    store.set_epoch_deadline(2);
                    let spin = i.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
                    let t = Instant::now();
                    assert_eq!(trap_code(spin.call(&mut store, ())), Some(TrapCode::Interrupt));
                    assert!(t.elapsed() < Duration::from_secs(5));
                }
            });
        }
    });
    drop(ticker);
}
