//! What the baseline compiler takes and what it declines. (Whether its
//! code is right is the spec suite's `[baseline]` mode, which runs every
//! .wast file with it: crates/wast/tests/spec.rs.)

use kiln_baseline::{CpuFeatures, Options, compile_function};
use kiln_environ::{DefinedFuncIndex, Tunables, VMOffsets, translate_module};

/// Compiles every defined function of `wat`, returning each outcome.
fn outcomes(wat: &str, tunables: &Tunables) -> Vec<Result<usize, String>> {
    let wasm = wat::parse_str(wat).expect("valid text");
    let t = translate_module(&wasm, wasmparser::WasmFeatures::default()).expect("valid module");
    let offsets = VMOffsets::new(&t.info);
    t.bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let func = t.info.func_index(DefinedFuncIndex::from_u32(i as u32));
            compile_function(
                tunables,
                CpuFeatures::detect(),
                Options { osr: true, ..Options::default() },
                &t.info,
                &offsets,
                func,
                &b.body,
            )
            .map(|f| f.code.len())
            .map_err(|e| e.to_string())
        })
        .collect()
}

#[test]
fn integer_float_memory_and_control_code_compiles() {
    let wat = r#"(module
        (import "env" "f" (func $imp (param i32) (result i32)))
        (memory 1)
        (global $g (mut i64) (i64.const 0))
        (table 2 funcref)
        (type $t (func (param i32) (result i32)))
        (func $fib (param i32) (result i32)
            local.get 0 i32.const 2 i32.lt_u
            if (result i32) local.get 0
            else local.get 0 i32.const 1 i32.sub call $fib local.get 0 i32.const 2 i32.sub call $fib i32.add end)
        (func (param f64 f32) (result f64)
            local.get 0 local.get 1 f64.promote_f32 f64.min f64.sqrt)
        (func (param i32) (result i64)
            (i64.store (local.get 0) (i64.load offset=8 (local.get 0)))
            (global.set $g (i64.extend_i32_u (memory.grow (i32.const 1))))
            (block $a (block $b (br_table $a $b $a (local.get 0))))
            global.get $g)
        (func (param i32 i32 i32 i32 i32 i32 i32) (result i32)
            (call_indirect (type $t) (local.get 6) (local.get 0)))
        (func (result i32) (call $imp (i32.const 7))))"#;
    for (i, o) in outcomes(wat, &Tunables::default()).into_iter().enumerate() {
        let bytes = o.unwrap_or_else(|e| panic!("function {i}: {e}"));
        assert!(bytes > 0);
    }
}

#[test]
fn what_it_does_not_handle_is_declined() {
    let wat = r#"(module
        (memory 1)
        (func (result v128) v128.const i32x4 1 2 3 4)
        (func (param externref) (result externref) local.get 0)
        (func (param i32 i32 i32) (memory.copy (local.get 0) (local.get 1) (local.get 2))))"#;
    let outcomes = outcomes(wat, &Tunables::default());
    assert_eq!(outcomes.len(), 3);
    for o in outcomes {
        let why = o.expect_err("declined");
        assert!(why.starts_with("baseline compiler declined: "), "{why}");
    }
}

#[test]
fn instrumentation_it_does_not_emit_declines_everything() {
    let wat = "(module (func (result i32) i32.const 1))";
    let fuel = Tunables { consume_fuel: true, ..Tunables::default() };
    assert!(outcomes(wat, &fuel)[0].as_ref().is_err_and(|e| e.contains("fuel")));
    let polled = Tunables { epoch_interruption: true, epoch_signals: false, ..Tunables::default() };
    assert!(outcomes(wat, &polled)[0].as_ref().is_err_and(|e| e.contains("epoch")));
    assert!(outcomes(wat, &Tunables::default())[0].is_ok());
}

/// Counting local uses while validating gives what reading the body gives,
/// an invalid body fails the same way, the choice ranks uses in loops
/// above more uses outside them, and the count is bounded by the body's
/// size, not by how many locals it declares.
#[test]
fn locals_chosen_while_validating_match_reading_the_body() {
    use kiln_baseline::RegisterLocals;
    use kiln_environ::{LocalUses, validate_function_body, validate_function_body_counting};
    let wat = r#"(module
        (func (param $p i32) (param $q i64) (result i32)
          (local $a i32) (local $b i32) (local $f f64) (local $c i64) (local $d i32) (local $e i32)
          ;; five uses of $a outside any loop
          local.get $a local.get $a i32.add local.tee $a local.get $a i32.add local.set $a
          block
            loop $outer
              ;; $b in one loop: 4 each
              local.get $b i32.const 1 i32.add local.set $b
              loop $inner
                ;; $c and $f in two loops: 16 each ($f is not an integer)
                local.get $c i64.const 1 i64.add local.set $c
                local.get $f f64.const 1 f64.add local.set $f
                local.get $c i64.const 9 i64.lt_s br_if $inner
              end
              try_table (catch_all 1)
                local.get $d local.set $d
              end
              local.get $b i32.const 9 i32.lt_s br_if $outer
            end
          end
          ;; $e used three times: below the threshold
          local.get $e local.get $e i32.add local.set $e
          local.get $p)
        (func (param i32) (result i32)
          local.get 0))"#;
    let wasm = wat::parse_str(wat).expect("valid text");
    let t = translate_module(&wasm, wasmparser::WasmFeatures::default()).expect("valid module");
    let mut counted = LocalUses::default();
    for b in &t.bodies {
        validate_function_body_counting(b, &mut Default::default(), &mut counted).expect("valid body");
        let mut read = LocalUses::default();
        let integer = |i: u32| counted.is_integer(i);
        read.count(&b.body, counted.counts().len() as u32, integer).expect("readable body");
        assert_eq!(counted.counts(), read.counts());
        assert_eq!(RegisterLocals::choose(&counted), RegisterLocals::choose(&read));
    }
    validate_function_body_counting(&t.bodies[0], &mut Default::default(), &mut counted).expect("valid body");
    // $p 1, $q 0, $a 5, $b 3*4, $f 2*16, $c 3*16, $d 2*4, $e 3.
    assert_eq!(counted.counts(), &[1, 0, 5, 12, 32, 48, 8, 3]);
    assert!(!counted.is_integer(4) && counted.is_integer(5));
    // $c, then $b, $d, $a; $f is a float, $e and $p are used too little.
    assert_eq!(RegisterLocals::choose(&counted).in_order(), &[Some(5), Some(3), Some(6), Some(2)]);

    // A few bytes can declare 50,000 locals: the count stays as large as
    // the body, not as the locals.
    let many = wat::parse_str(format!("(module (func (local {}) local.get 49999 drop))", "i32 ".repeat(50_000)))
        .expect("text");
    let t = translate_module(&many, wasmparser::WasmFeatures::default()).expect("valid module");
    validate_function_body_counting(&t.bodies[0], &mut Default::default(), &mut counted).expect("valid body");
    let range = t.bodies[0].body.range();
    assert!(counted.counts().len() as u64 <= range.end - range.start, "{} counted", counted.counts().len());
    assert_eq!(RegisterLocals::choose(&counted).in_order(), &[None; 4]);

    let invalid = wat::parse_str(r#"(module (func (result i32) (local $x i64) local.get $x))"#).expect("text");
    let features = wasmparser::WasmFeatures::default();
    let t = translate_module(&invalid, features).expect("valid module structure");
    let plain = validate_function_body(&t.bodies[0], &mut Default::default()).expect_err("invalid body");
    let counting =
        validate_function_body_counting(&t.bodies[0], &mut Default::default(), &mut counted).expect_err("invalid body");
    assert_eq!(plain.to_string(), counting.to_string());
}
