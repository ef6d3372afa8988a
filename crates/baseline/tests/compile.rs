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
