//! Counted loops are strip-mined when fuel or epochs are on (their
//! interruption check runs once per strip instead of once per iteration,
//! see kiln-cranelift's `translate/interrupt/strip/`): they must compute exactly
//! what they computed before, use exactly the same fuel, and still be
//! interruptible when they never end.

use kiln::*;
use std::time::{Duration, Instant};

/// Back-edge comparisons, as wasm operator names.
const CMPS: [&str; 10] = ["ne", "eq", "lt_u", "lt_s", "le_u", "le_s", "gt_u", "gt_s", "ge_u", "ge_s"];
const STEPS: [i64; 12] = [1, 2, 3, 4, 16, 65536, 65537, -1, -2, -3, -8, -65536];
/// Iterations after which the test loops stop on their own.
const CAP: u32 = 5000;

/// `iv cmp limit` as wasm computes it.
fn holds(cmp: &str, a: u32, b: u32) -> bool {
    let (sa, sb) = (a as i32, b as i32);
    match cmp {
        "ne" => a != b,
        "eq" => a == b,
        "lt_u" => a < b,
        "lt_s" => sa < sb,
        "le_u" => a <= b,
        "le_s" => sa <= sb,
        "gt_u" => a > b,
        "gt_s" => sa > sb,
        "ge_u" => a >= b,
        "ge_s" => sa >= sb,
        _ => unreachable!(),
    }
}

/// The update of `$iv` by `step`, as clang writes it (`i32.sub` for
/// negative steps, except that some use `i32.add` of a negative constant).
fn update(step: i64, use_add: bool) -> String {
    if step > 0 || use_add {
        format!("local.get $iv i32.const {step} i32.add local.tee $iv")
    } else {
        format!("local.get $iv i32.const {} i32.sub local.tee $iv", -step)
    }
}

/// A loop shape under test: export name, wat of the back edge's tail, its
/// step, and a model of the condition given the new value and the limit.
struct Shape {
    name: String,
    tail: String,
    /// The constant step, or for `None` the step is the third parameter
    /// `$s`, added (`true`) or subtracted.
    step: Result<i64, bool>,
    cond: Box<dyn Fn(u32, u32) -> bool>,
}

fn shapes() -> Vec<Shape> {
    let mut v = Vec::new();
    let mut add = |name: String, tail: String, step: Result<i64, bool>, cond: Box<dyn Fn(u32, u32) -> bool>| {
        v.push(Shape { name, tail, step, cond })
    };
    for (si, &step) in STEPS.iter().enumerate() {
        let use_add = si % 2 == 0;
        for cmp in CMPS {
            let up = update(step, use_add);
            add(
                format!("{cmp}_{si}"),
                format!("{up} local.get $n i32.{cmp}"),
                Ok(step),
                Box::new(move |x, n| holds(cmp, x, n)),
            );
            add(
                format!("{cmp}_{si}_swapped"),
                format!("local.get $n {up} i32.{cmp}"),
                Ok(step),
                Box::new(move |x, n| holds(cmp, n, x)),
            );
        }
        add(format!("nonzero_{si}"), update(step, use_add), Ok(step), Box::new(|x, _| x != 0));
    }
    // Steps in a local, added (either operand order) or subtracted.
    for cmp in CMPS {
        let up1 = "local.get $s local.get $iv i32.add local.tee $iv";
        let up2 = "local.get $iv local.get $s i32.add local.tee $iv";
        let down = "local.get $iv local.get $s i32.sub local.tee $iv";
        add(
            format!("{cmp}_var_up"),
            format!("{up1} local.get $n i32.{cmp}"),
            Err(true),
            Box::new(move |x, n| holds(cmp, x, n)),
        );
        add(
            format!("{cmp}_var_up_swapped"),
            format!("local.get $n {up2} i32.{cmp}"),
            Err(true),
            Box::new(move |x, n| holds(cmp, n, x)),
        );
        add(
            format!("{cmp}_var_down"),
            format!("{down} local.get $n i32.{cmp}"),
            Err(false),
            Box::new(move |x, n| holds(cmp, x, n)),
        );
    }
    v
}

/// A module with one function per shape: `(iv, n) -> (iterations, iv)`,
/// leaving after `CAP` iterations if the loop has not ended by then.
fn shapes_module() -> String {
    let mut wat = String::from("(module");
    for Shape { name, tail, .. } in shapes() {
        wat.push_str(&format!(
            r#"
  (func (export "{name}") (param $iv i32) (param $n i32) (param $s i32) (result i32 i32) (local $count i32)
    (block $out
      (loop $l
        (local.set $count (i32.add (local.get $count) (i32.const 1)))
        (br_if $out (i32.eq (local.get $count) (i32.const {CAP})))
        {tail}
        br_if $l))
    (local.get $count) (local.get $iv))"#
        ));
    }
    wat.push(')');
    wat
}

fn model(cond: &dyn Fn(u32, u32) -> bool, step: u32, mut iv: u32, n: u32) -> (u32, u32) {
    let mut count = 0;
    loop {
        count += 1;
        if count == CAP {
            return (count, iv);
        }
        iv = iv.wrapping_add(step);
        if !cond(iv, n) {
            return (count, iv);
        }
    }
}

const INTERESTING_VALUES: [u32; 18] = [
    0,
    1,
    2,
    3,
    7,
    1000,
    1023,
    1024,
    1025,
    4999,
    0x7fff_ff00,
    0x7fff_fffe,
    0x7fff_ffff,
    0x8000_0000,
    0x8000_0001,
    0xffff_f000,
    0xffff_fffe,
    0xffff_ffff,
];

fn check_all_shapes(config: &Config, prepare: impl Fn(&mut Store<()>)) {
    let engine = Engine::new(config).unwrap();
    let module = Module::new(&engine, shapes_module()).unwrap();
    let mut store = Store::new(&engine, ());
    prepare(&mut store);
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let values = INTERESTING_VALUES.to_vec();
    let variable_steps = [1u32, 2, 3, 7, 1024, 65536, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0xffff_fffe, 0];
    for Shape { name, step, cond, .. } in shapes() {
        let f = instance.get_typed_func::<(i32, i32, i32), (i32, i32)>(&mut store, &name).unwrap();
        let steps: Vec<(u32, u32)> = match step {
            Ok(step) => vec![(0, step as i32 as u32)],
            Err(up) => variable_steps.iter().map(|&s| (s, if up { s } else { s.wrapping_neg() })).collect(),
        };
        for (s, step) in steps {
            for &start in &values {
                let mut limits = values.clone();
                for d in [1u32, 2, 3, 16, 1024, 2048, 2050, 65536] {
                    limits.push(start.wrapping_add(d));
                    limits.push(start.wrapping_sub(d));
                }
                for &n in &limits {
                    let got = f.call(&mut store, (start as i32, n as i32, s as i32)).unwrap();
                    let want = model(&*cond, step, start, n);
                    assert_eq!((got.0 as u32, got.1 as u32), want, "{name} (step {step:#x}) from {start:#x} to {n:#x}");
                }
            }
        }
    }
}

#[test]
fn counted_loops_compute_the_same_with_epochs() {
    // Polled: with signals there are no checks and no strips.
    let mut config = Config::new();
    config.epoch_interruption(true).epoch_interruption_signals(false);
    check_all_shapes(&config, |store| store.set_epoch_deadline(u64::MAX / 2));
}

#[test]
fn counted_loops_compute_the_same_with_fuel() {
    let mut config = Config::new();
    config.consume_fuel(true);
    check_all_shapes(&config, |store| store.set_fuel(u64::MAX / 2).unwrap());
}

/// What running export `name` of a fuel-metered module with `fuel` and
/// argument `n` ends with: its trap code if it trapped, the iterations its
/// loop counted in global `g`, and the fuel left.
pub(crate) type FuelOutcome = (Option<Option<TrapCode>>, Option<i32>, u64);

/// Instantiates `wat` (which exports a counter global `g` and functions
/// `(i32) -> ()`) with fuel on, and returns a runner for its exports.
pub(crate) fn fuel_runner(wat: &str) -> impl FnMut(&str, u64, i32) -> FuelOutcome {
    let mut config = Config::new();
    config.consume_fuel(true);
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(&engine, wat).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let g = instance.get_global(&mut store, "g").unwrap();
    move |name: &str, fuel: u64, n: i32| {
        let f = instance.get_typed_func::<i32, ()>(&mut store, name).unwrap();
        g.set(&mut store, Val::I32(0)).unwrap();
        store.set_fuel(fuel).unwrap();
        let r = f.call(&mut store, n);
        let trapped = r.map_err(|e| e.downcast_ref::<Trap>().map(Trap::code)).err();
        (trapped, g.get(&mut store).i32(), store.get_fuel().unwrap())
    }
}

/// Two loops with the same operators and costs, one counted (its dummy
/// write goes to `$d`) and one not (the write goes to the limit `$n`, so it
/// is not loop-invariant): for every fuel budget both must run the same
/// number of iterations, trap or finish alike, and leave the same fuel.
#[test]
fn counted_loops_run_out_of_fuel_at_the_same_point() {
    let body = |written: &str| {
        format!(
            r#"(param $n i32) (local $i i32) (local $d i32)
            (loop $l
              (global.set $g (i32.add (global.get $g) (i32.const 1)))
              (if (i32.eqz (i32.and (local.get $i) (i32.const 3)))
                (then (local.set {written} (i32.add (local.get {written}) (i32.const 0)))))
              local.get $i i32.const 1 i32.add local.tee $i local.get $n i32.lt_u
              br_if $l)"#
        )
    };
    let wat = format!(
        r#"(module (global $g (export "g") (mut i32) (i32.const 0))
            (func (export "counted") {})
            (func (export "uncounted") {}))"#,
        body("$d"),
        body("$n")
    );
    let mut run = fuel_runner(&wat);
    for n in [1, 5, 50, 3000] {
        for fuel in (0..400).chain((400..30_000).step_by(97)).chain([1 << 20, u64::MAX / 2]) {
            let counted = run("counted", fuel, n);
            let uncounted = run("uncounted", fuel, n);
            assert_eq!(counted, uncounted, "n = {n}, fuel = {fuel}");
        }
    }
}

/// The same with straight-line bodies, whose fuel is charged once per
/// strip from the distance the variable moved, in both directions and
/// with i64 variables.
#[test]
fn straight_counted_loops_run_out_of_fuel_at_the_same_point() {
    // (name, back edge, the local the twin also writes in its body so that
    // it is not a counted loop).
    let tails = [
        ("up", "local.get $i i32.const 4 i32.add local.tee $i local.get $lim i32.lt_u", "$lim"),
        ("down", "local.get $n i32.const 1 i32.sub local.tee $n", "$n"),
        ("ne", "local.get $i i32.const 2 i32.add local.tee $i local.get $lim i32.ne", "$lim"),
        ("wide", "local.get $w i64.const 1 i64.add local.tee $w local.get $m i64.ne", "$m"),
        ("odd", "local.get $i i32.const 3 i32.add local.tee $i local.get $lim i32.lt_u", "$lim"),
        // Step n & 7: 1, 5, 2 and, for n = 3000, 0 (endless).
        ("var", "local.get $s local.get $i i32.add local.tee $i local.get $lim i32.lt_u", "$lim"),
        ("var_down", "local.get $lim local.get $s i32.sub local.tee $lim i32.const 0 i32.gt_s", "$lim"),
    ];
    let body = |written: &str, tail: &str| {
        let write = if written == "$m" || written == "$e" {
            format!("(local.set {written} (i64.add (local.get {written}) (i64.const 0)))")
        } else {
            format!("(local.set {written} (i32.add (local.get {written}) (i32.const 0)))")
        };
        format!(
            r#"(param $n i32) (local $i i32) (local $d i32) (local $lim i32) (local $w i64) (local $m i64) (local $e i64) (local $s i32)
            (local.set $lim (i32.shl (local.get $n) (i32.const 2)))
            (local.set $s (i32.and (local.get $n) (i32.const 7)))
            (local.set $m (i64.extend_i32_u (local.get $n)))
            (loop $l
              (global.set $g (i32.add (global.get $g) (i32.const 1)))
              {write}
              {tail}
              br_if $l)"#
        )
    };
    let mut wat = String::from(r#"(module (global $g (export "g") (mut i32) (i32.const 0))"#);
    for (name, tail, twin_writes) in tails {
        let own = if name == "wide" { "$e" } else { "$d" };
        wat.push_str(&format!(r#"(func (export "{name}") {})"#, body(own, tail)));
        wat.push_str(&format!(r#"(func (export "{name}_twin") {})"#, body(twin_writes, tail)));
    }
    wat.push(')');
    let mut run = fuel_runner(&wat);
    for (name, _, _) in tails {
        for n in [1, 5, 50, 3000] {
            let endless = name.starts_with("var") && n == 3000;
            let ample: &[u64] = if endless { &[1 << 20] } else { &[1 << 20, u64::MAX / 2] };
            for fuel in (0..300).chain((300..40_000).step_by(89)).chain(ample.iter().copied()) {
                let counted = run(name, fuel, n);
                let twin = run(&format!("{name}_twin"), fuel, n);
                assert_eq!(counted, twin, "{name}: n = {n}, fuel = {fuel}");
            }
        }
        // The loop ran to its end with ample fuel.
        let (trapped, iterations, _) = run(name, u64::MAX / 2, 2002);
        assert_eq!(trapped, None, "{name}");
        assert!(iterations.is_some_and(|i| i >= 2000 / 3), "{name}: {iterations:?}");
    }
}

/// Counted loops that never end: stopped by fuel and by epochs, including
/// one whose variable wraps (its strips end early near the wrap).
#[test]
fn endless_counted_loops_are_interrupted() {
    let wat = r#"(module
        (func (export "odd_distance") (local $i i32)
          (loop $l local.get $i i32.const 2 i32.add local.tee $i i32.const 1 i32.ne br_if $l))
        (func (export "wraps") (local $i i32)
          (loop $l local.get $i i32.const 2 i32.add local.tee $i i32.const -1 i32.lt_u br_if $l))
        (func (export "down_wraps") (local $i i32)
          (loop $l local.get $i i32.const 3 i32.sub local.tee $i i32.const -2147483648 i32.gt_s br_if $l)))"#;
    let names = ["odd_distance", "wraps", "down_wraps"];

    let mut config = Config::new();
    config.consume_fuel(true);
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(&engine, wat).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    for name in names {
        let f = instance.get_typed_func::<(), ()>(&mut store, name).unwrap();
        store.set_fuel(50_000_000).unwrap();
        let e = f.call(&mut store, ()).unwrap_err();
        assert_eq!(e.downcast_ref::<Trap>().map(Trap::code), Some(TrapCode::OutOfFuel), "{name}");
    }

    let mut config = Config::new();
    config.epoch_interruption(true).epoch_interruption_signals(false);
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(&engine, wat).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let _ticker = engine.start_epoch_ticker(Duration::from_millis(5));
    for name in names {
        let f = instance.get_typed_func::<(), ()>(&mut store, name).unwrap();
        store.set_epoch_deadline(4);
        let started = Instant::now();
        let e = f.call(&mut store, ()).unwrap_err();
        assert_eq!(e.downcast_ref::<Trap>().map(Trap::code), Some(TrapCode::Interrupt), "{name}");
        assert!(started.elapsed() < Duration::from_secs(5), "{name} took {:?}", started.elapsed());
    }
}

/// i64 induction variables with `i64.ne` (constant steps), against a model.
#[test]
fn counted_i64_loops_compute_the_same() {
    let steps: [i64; 8] = [1, 2, 16, 3, -1, -2, -16, 65536];
    let mut wat = String::from("(module");
    for (si, step) in steps.iter().enumerate() {
        let up = if *step > 0 {
            format!("local.get $iv i64.const {step} i64.add local.tee $iv")
        } else {
            format!("local.get $iv i64.const {} i64.sub local.tee $iv", -step)
        };
        for (suffix, tail) in
            [("", format!("{up} local.get $n i64.ne")), ("_swapped", format!("local.get $n {up} i64.ne"))]
        {
            wat.push_str(&format!(
                r#"
  (func (export "ne64_{si}{suffix}") (param $iv i64) (param $n i64) (result i32 i64) (local $count i32)
    (block $out
      (loop $l
        (local.set $count (i32.add (local.get $count) (i32.const 1)))
        (br_if $out (i32.eq (local.get $count) (i32.const {CAP})))
        {tail}
        br_if $l))
    (local.get $count) (local.get $iv))"#
            ));
        }
    }
    wat.push(')');
    let values: Vec<u64> = vec![
        0,
        1,
        2,
        1023,
        1024,
        4999,
        0x7fff_ffff,
        0xffff_ffff,
        0x1_0000_0000,
        0x7fff_ffff_ffff_fff0,
        0x8000_0000_0000_0000,
        u64::MAX - 1,
        u64::MAX,
    ];
    for setup in ["epoch", "fuel"] {
        let mut config = Config::new();
        config.epoch_interruption(setup == "epoch").epoch_interruption_signals(false).consume_fuel(setup == "fuel");
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, &wat).unwrap();
        let mut store = Store::new(&engine, ());
        if setup == "epoch" {
            store.set_epoch_deadline(u64::MAX / 2);
        } else {
            store.set_fuel(u64::MAX / 2).unwrap();
        }
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        for (si, &step) in steps.iter().enumerate() {
            for suffix in ["", "_swapped"] {
                let name = format!("ne64_{si}{suffix}");
                let f = instance.get_typed_func::<(i64, i64), (i32, i64)>(&mut store, &name).unwrap();
                for &start in &values {
                    let mut limits = values.clone();
                    for d in [1u64, 2, 3, 16, 1024, 2048, 2050, 65536] {
                        limits.push(start.wrapping_add(d));
                        limits.push(start.wrapping_sub(d));
                    }
                    for &n in &limits {
                        let (count, iv) = f.call(&mut store, (start as i64, n as i64)).unwrap();
                        let (mut want_iv, mut want_count) = (start, 0u32);
                        loop {
                            want_count += 1;
                            if want_count == CAP {
                                break;
                            }
                            want_iv = want_iv.wrapping_add(step as u64);
                            if want_iv == n {
                                break;
                            }
                        }
                        assert_eq!(
                            (count as u32, iv as u64),
                            (want_count, want_iv),
                            "{setup} {name} from {start:#x} to {n:#x}"
                        );
                    }
                }
            }
        }
    }
}
