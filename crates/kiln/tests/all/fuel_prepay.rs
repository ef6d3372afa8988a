//! Fuel prepaid on the edges into loop headers and joins (the translator's
//! `interrupt/prepay.rs`) adds up to exactly what charging each block at its end does.
//!
//! The translator prepays no frame that a `br_table` targets. Every shape
//! below marks never-taken `br_table`s as `DEAD[labels]`, and comes in two
//! variants with the same operators: one where those `br_table`s target the
//! listed frames (so none of them is prepaid) and one where they target only
//! a neutral outer block. For every fuel budget both must run the same
//! iterations, trap or finish alike, and leave the same fuel.

use super::counted_loops::fuel_runner;

/// A loop-and-branch shape: the body of a `(param $n i32) (local $i i32)
/// (local $x i32) (local $j i32)` function counting its iterations in
/// global `$g`, wrapped in `(block $z ...)`.
struct Shape {
    name: &'static str,
    body: &'static str,
    /// The label the prepaid variant's `br_table`s target instead.
    neutral: &'static str,
    /// What the `br_table`s carry to their targets.
    operands: &'static str,
}

const fn shape(name: &'static str, body: &'static str) -> Shape {
    Shape { name, body, neutral: "$z", operands: "" }
}

const SHAPES: &[Shape] = &[
    shape(
        "if_else",
        r#"(block $out
          (loop $l
            (global.set $g (i32.add (global.get $g) (i32.const 1)))
            (if $d (i32.and (local.get $i) (i32.const 1))
              (then (local.set $x (i32.add (local.get $x) (i32.const 3))) DEAD[$d $l $out])
              (else (local.set $x (i32.sub (local.get $x) (i32.const 1)))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))"#,
    ),
    shape(
        "br_from_nested_block",
        r#"(block $out
          (loop $l
            (global.set $g (i32.add (global.get $g) (i32.const 1)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (block $skip
              (br_if $skip (i32.and (local.get $i) (i32.const 2)))
              (local.set $x (i32.mul (local.get $x) (i32.const 3)))
              DEAD[$skip $l $out])
            (if $c (i32.lt_u (local.get $i) (local.get $n)) (then DEAD[$c $l $out] (br $l)))))"#,
    ),
    shape(
        "diamonds",
        r#"(block $out
          (loop $l
            (global.set $g (i32.add (global.get $g) (i32.const 1)))
            (if $a (i32.and (local.get $i) (i32.const 1))
              (then (local.set $x (i32.add (local.get $x) (i32.const 1))) DEAD[$a $l $out]))
            (block $b
              (br_if $b (i32.and (local.get $i) (i32.const 2)))
              (local.set $x (i32.xor (local.get $x) (i32.const 5)))
              (if $c (i32.and (local.get $i) (i32.const 4)) (then DEAD[$c $b $l $out] (br $b)))
              (local.set $x (i32.add (local.get $x) (i32.const 7))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
        (if $e (i32.and (local.get $x) (i32.const 1))
          (then (local.set $x (i32.const 1)) DEAD[$e])
          (else (local.set $x (i32.const 2))))
        (local.set $x (i32.add (local.get $x) (i32.const 1)))"#,
    ),
    shape(
        "exit_by_branch",
        r#"(block $out
          (loop $l
            (global.set $g (i32.add (global.get $g) (i32.const 1)))
            (br_if $out (i32.ge_u (global.get $g) (local.get $n)))
            (local.set $x (i32.add (local.get $x) (i32.const 5)))
            DEAD[$l $out]
            (br $l)))
        (local.set $x (i32.add (local.get $x) (i32.const 1)))
        (local.set $x (i32.add (local.get $x) (i32.const 1)))"#,
    ),
    shape(
        "call_first",
        r#"(block $out
          (loop $l
            (local.set $x (call $f (local.get $x)))
            (global.set $g (i32.add (global.get $g) (i32.const 1)))
            DEAD[$l $out]
            (br_if $l (i32.lt_u (global.get $g) (local.get $n)))))"#,
    ),
    shape(
        "nested",
        r#"(block $out
          (loop $outer
            (global.set $g (i32.add (global.get $g) (i32.const 1)))
            (local.set $j (i32.const 0))
            (loop $inner
              (local.set $x (i32.add (local.get $x) (local.get $j)))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              DEAD[$inner $outer $out]
              (br_if $inner (i32.lt_u (local.get $j) (local.get $i))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            DEAD[$outer $out]
            (br_if $outer (i32.lt_u (global.get $g) (local.get $n)))))"#,
    ),
    Shape {
        name: "loop_with_params",
        body: r#"(block $z2 (result i32)
          (block $out (result i32)
            (local.get $n)
            (loop $l (param i32) (result i32)
              (local.set $x)
              (global.set $g (i32.add (global.get $g) (i32.const 1)))
              DEAD[$l $out]
              (i32.sub (local.get $x) (i32.const 1))
              (local.tee $x)
              (br_if $l (i32.gt_s (local.get $x) (i32.const 0))))))
        drop"#,
        neutral: "$z2",
        operands: "(local.get $x)",
    },
];

/// `shape`'s body with each `DEAD[labels]` a never-taken `br_table` to
/// those labels (`exclude`) or to the neutral label only.
fn instantiate(shape: &Shape, exclude: bool) -> String {
    let mut out = String::new();
    let mut rest = shape.body;
    while let Some(start) = rest.find("DEAD[") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find(']').expect("closing bracket");
        let labels: Vec<&str> = rest[start + 5..end].split_whitespace().collect();
        let targets: Vec<&str> = if exclude { labels } else { vec![shape.neutral; labels.len()] };
        out.push_str(&format!(
            "(if (i32.eqz (global.get $g)) (then (br_table {} {} {} (i32.const 0))))",
            targets.join(" "),
            shape.neutral,
            shape.operands
        ));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn prepaid_frames_consume_exactly_what_unprepaid_ones_do() {
    for shape in SHAPES {
        let func = |exclude: bool, export: &str| {
            let body = instantiate(shape, exclude);
            format!(
                r#"(func (export "{export}") (param $n i32) (local $i i32) (local $x i32) (local $j i32) (block $z {body}))"#
            )
        };
        let wat = format!(
            r#"(module (global $g (export "g") (mut i32) (i32.const 0))
                (func $f (param i32) (result i32) (i32.add (i32.mul (local.get 0) (i32.const 7)) (i32.const 1)))
                {}
                {})"#,
            func(false, "prepaid"),
            func(true, "unprepaid"),
        );
        let mut run = fuel_runner(&wat);
        let name = shape.name;
        for n in [1, 2, 7, 40] {
            let mut finished = false;
            for fuel in (0..700).chain((700..25_000).step_by(53)).chain([1 << 20]) {
                let prepaid = run("prepaid", fuel, n);
                let unprepaid = run("unprepaid", fuel, n);
                assert_eq!(prepaid, unprepaid, "{name}: n = {n}, fuel = {fuel}");
                finished |= prepaid.0.is_none();
            }
            assert!(finished, "{name}: n = {n} never ran to its end");
        }
    }
}
