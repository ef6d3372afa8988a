//! Loop headers whose first stretch of fuel is paid on the edges into them
//! (the translator's `prepay.rs`) consume exactly what unprepaid loops do.
//!
//! Every shape below comes in two variants with the same operators: in one
//! a never-taken `br_table` targets the loop, which keeps the translator
//! from prepaying it; in the other it targets an enclosing block. For every
//! fuel budget both must run the same iterations, trap or finish alike, and
//! leave the same fuel.

use super::counted_loops::fuel_runner;

/// Loop bodies, with `T` standing for the dead `br_table`'s target (a loop
/// label, or `$out`, a block around the loop with the same result types).
/// Each is the body of a `(param $n i32) (local $i i32) (local $x i32)
/// (local $j i32)` function counting its iterations in global `$g`.
const SHAPES: &[(&str, &str)] = &[
    (
        "if_else",
        r#"(block $out
          (loop $l
            (global.set $g (i32.add (global.get $g) (i32.const 1)))
            (if (i32.and (local.get $i) (i32.const 1))
              (then (local.set $x (i32.add (local.get $x) (i32.const 3))))
              (else (local.set $x (i32.sub (local.get $x) (i32.const 1)))))
            (if (i32.eqz (global.get $g)) (then (br_table T T (i32.const 0))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))"#,
    ),
    (
        "br_from_nested_block",
        r#"(block $out
          (loop $l
            (global.set $g (i32.add (global.get $g) (i32.const 1)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (block $skip
              (br_if $skip (i32.and (local.get $i) (i32.const 2)))
              (local.set $x (i32.mul (local.get $x) (i32.const 3))))
            (if (i32.eqz (global.get $g)) (then (br_table T T (i32.const 0))))
            (if (i32.lt_u (local.get $i) (local.get $n)) (then (br $l)))))"#,
    ),
    (
        "exit_by_branch",
        r#"(block $out
          (loop $l
            (global.set $g (i32.add (global.get $g) (i32.const 1)))
            (br_if $out (i32.ge_u (global.get $g) (local.get $n)))
            (local.set $x (i32.add (local.get $x) (i32.const 5)))
            (if (i32.eqz (global.get $g)) (then (br_table T T (i32.const 0))))
            (br $l)))
        (local.set $x (i32.add (local.get $x) (i32.const 1)))
        (local.set $x (i32.add (local.get $x) (i32.const 1)))"#,
    ),
    (
        "call_first",
        r#"(block $out
          (loop $l
            (local.set $x (call $f (local.get $x)))
            (global.set $g (i32.add (global.get $g) (i32.const 1)))
            (if (i32.eqz (global.get $g)) (then (br_table T T (i32.const 0))))
            (br_if $l (i32.lt_u (global.get $g) (local.get $n)))))"#,
    ),
    (
        "nested",
        r#"(block $out
          (loop $outer
            (global.set $g (i32.add (global.get $g) (i32.const 1)))
            (local.set $j (i32.const 0))
            (loop $inner
              (local.set $x (i32.add (local.get $x) (local.get $j)))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (if (i32.eqz (global.get $g)) (then (br_table T2 T2 (i32.const 0))))
              (br_if $inner (i32.lt_u (local.get $j) (local.get $i))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (if (i32.eqz (global.get $g)) (then (br_table T T (i32.const 0))))
            (br_if $outer (i32.lt_u (global.get $g) (local.get $n)))))"#,
    ),
    (
        "loop_with_params",
        r#"(block $out (result i32)
          (local.get $n)
          (loop $l (param i32) (result i32)
            (local.set $x)
            (global.set $g (i32.add (global.get $g) (i32.const 1)))
            (if (i32.eqz (global.get $g)) (then (br_table T T (local.get $x) (i32.const 0))))
            (i32.sub (local.get $x) (i32.const 1))
            (local.tee $x)
            (br_if $l (i32.gt_s (local.get $x) (i32.const 0)))))
        drop"#,
    ),
];

#[test]
fn prepaid_loop_headers_consume_exactly_what_unprepaid_ones_do() {
    for (name, shape) in SHAPES {
        let func = |loop_target: &str, inner_target: &str, export: &str| {
            let body = shape.replace("T2", inner_target).replace('T', loop_target);
            format!(r#"(func (export "{export}") (param $n i32) (local $i i32) (local $x i32) (local $j i32) {body})"#)
        };
        let (outer_label, inner_label) = if *name == "nested" { ("$outer", "$inner") } else { ("$l", "$l") };
        let wat = format!(
            r#"(module (global $g (export "g") (mut i32) (i32.const 0))
                (func $f (param i32) (result i32) (i32.add (i32.mul (local.get 0) (i32.const 7)) (i32.const 1)))
                {}
                {})"#,
            func("$out", "$out", "prepaid"),
            func(outer_label, inner_label, "unprepaid"),
        );
        let mut run = fuel_runner(&wat);
        for n in [1, 2, 7, 40] {
            let mut finished = false;
            for fuel in (0..600).chain((600..20_000).step_by(53)).chain([1 << 20]) {
                let prepaid = run("prepaid", fuel, n);
                let unprepaid = run("unprepaid", fuel, n);
                assert_eq!(prepaid, unprepaid, "{name}: n = {n}, fuel = {fuel}");
                finished |= prepaid.0.is_none();
            }
            assert!(finished, "{name}: n = {n} never ran to its end");
        }
    }
}
