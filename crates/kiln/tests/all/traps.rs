//! Every trap kind surfaces as a `Trap` with its code and a wasm backtrace.

use kiln::*;

fn trap_of(wat: &str, func: &str, args: &[Val]) -> Trap {
    let engine = Engine::default();
    let module = Module::new(&engine, wat).expect("compiles");
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).expect("instantiates");
    let f = instance.get_func(&mut store, func).expect("export");
    let mut results: Vec<Val> = f.ty(&store).results().map(Val::default_for).collect();
    let err = f.call(&mut store, args, &mut results).expect_err("should trap");
    err.downcast::<Trap>().expect("a Trap")
}

#[test]
fn unreachable_with_named_backtrace() {
    let t = trap_of(
        r#"(module $m
            (func $inner unreachable)
            (func $outer (export "run") call $inner))"#,
        "run",
        &[],
    );
    assert_eq!(t.code(), TrapCode::UnreachableCodeReached);
    let names: Vec<_> = t.backtrace().frames().iter().map(|f| f.func_name().unwrap_or("?").to_string()).collect();
    assert_eq!(names, ["inner", "outer"]);
    assert_eq!(t.backtrace().frames()[0].module_name(), Some("m"));
    assert!(t.backtrace().frames()[0].module_offset().is_some());
    let text = t.to_string();
    assert!(text.contains("unreachable") && text.contains("m!inner"), "{text}");
}

/// Self-recursive functions get their own body spliced into their
/// self-calls: results, traps and backtraces stay right (a trap in the
/// spliced copy is reported at the call it replaced, in the same function).
#[test]
fn self_recursion_inlined_keeps_results_traps_and_backtraces() {
    let wat = r#"(module $m
        (func $fib (export "fib") (param i32) (result i32)
            local.get 0 i32.const 2 i32.lt_u
            if (result i32) local.get 0
            else
                local.get 0 i32.const 1 i32.sub call $fib
                local.get 0 i32.const 2 i32.sub call $fib
                i32.add
            end)
        (func $down (export "down") (param i32) (result i32)
            local.get 0 i32.eqz if unreachable end
            local.get 0 i32.const 1 i32.sub call $down))"#;
    let engine = Engine::default();
    let module = Module::new(&engine, wat).unwrap();
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let fib = i.get_typed_func::<i32, i32>(&mut store, "fib").unwrap();
    assert_eq!(fib.call(&mut store, 20).unwrap(), 6765);
    for depth in [0, 1, 2, 5] {
        let t = trap_of(wat, "down", &[Val::I32(depth)]);
        assert_eq!(t.code(), TrapCode::UnreachableCodeReached);
        let frames = t.backtrace().frames();
        assert!(!frames.is_empty() && frames.len() <= depth as usize + 1, "{depth}: {} frames", frames.len());
        assert!(frames.iter().all(|f| f.func_name() == Some("down") && f.module_offset().is_some()));
    }
}

#[test]
fn integer_traps() {
    let wat = r#"(module
        (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
        (func (export "rem") (param i64 i64) (result i64) local.get 0 local.get 1 i64.rem_u)
        (func (export "trunc") (param f64) (result i32) local.get 0 i32.trunc_f64_s))"#;
    assert_eq!(trap_of(wat, "div", &[Val::I32(1), Val::I32(0)]).code(), TrapCode::IntegerDivisionByZero);
    assert_eq!(trap_of(wat, "div", &[Val::I32(i32::MIN), Val::I32(-1)]).code(), TrapCode::IntegerOverflow);
    assert_eq!(trap_of(wat, "rem", &[Val::I64(1), Val::I64(0)]).code(), TrapCode::IntegerDivisionByZero);
    assert_eq!(trap_of(wat, "trunc", &[Val::from(f64::NAN)]).code(), TrapCode::BadConversionToInteger);
    assert_eq!(trap_of(wat, "trunc", &[Val::from(1e12f64)]).code(), TrapCode::IntegerOverflow);
}

#[test]
fn memory_out_of_bounds() {
    let wat = r#"(module (memory 1)
        (func (export "load") (param i32) (result i32) local.get 0 i32.load)
        (func (export "far") (param i32) (result i32) local.get 0 i32.load offset=0xffffffff)
        (func (export "store") (param i32) local.get 0 i64.const 1 i64.store))"#;
    assert_eq!(trap_of(wat, "load", &[Val::I32(65536)]).code(), TrapCode::MemoryOutOfBounds);
    assert_eq!(trap_of(wat, "load", &[Val::I32(65533)]).code(), TrapCode::MemoryOutOfBounds);
    assert_eq!(trap_of(wat, "load", &[Val::I32(-1)]).code(), TrapCode::MemoryOutOfBounds);
    assert_eq!(trap_of(wat, "far", &[Val::I32(-1)]).code(), TrapCode::MemoryOutOfBounds);
    assert_eq!(trap_of(wat, "store", &[Val::I32(65529)]).code(), TrapCode::MemoryOutOfBounds);
}

#[test]
fn table_traps() {
    let wat = r#"(module
        (type $v (func))
        (type $i (func (result i32)))
        (table 3 funcref)
        (elem (i32.const 0) $f)
        (func $f)
        (func (export "call") (param i32) local.get 0 call_indirect (type $v))
        (func (export "call_i") (param i32) (result i32) local.get 0 call_indirect (type $i)))"#;
    assert_eq!(trap_of(wat, "call", &[Val::I32(5)]).code(), TrapCode::TableOutOfBounds);
    assert_eq!(trap_of(wat, "call", &[Val::I32(1)]).code(), TrapCode::IndirectCallToNull);
    assert_eq!(trap_of(wat, "call_i", &[Val::I32(0)]).code(), TrapCode::BadSignature);
}

#[test]
fn stack_overflow_is_a_trap() {
    let wat = r#"(module (func $r (export "r") (param i64) (result i64)
        local.get 0 i64.const 1 i64.add call $r))"#;
    let t = trap_of(wat, "r", &[Val::I64(0)]);
    assert_eq!(t.code(), TrapCode::StackOverflow);
    assert!(t.backtrace().frames().len() > 100);
}

#[test]
fn store_is_usable_after_a_trap() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (func (export "boom") unreachable)
        (func (export "ok") (result i32) i32.const 7))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let boom = instance.get_typed_func::<(), ()>(&mut store, "boom").unwrap();
    let ok = instance.get_typed_func::<(), i32>(&mut store, "ok").unwrap();
    for _ in 0..100 {
        assert!(boom.call(&mut store, ()).is_err());
        assert_eq!(ok.call(&mut store, ()).unwrap(), 7);
    }
}

#[test]
fn start_function_trap_fails_instantiation() {
    let engine = Engine::default();
    let module = Module::new(&engine, r#"(module (func $s unreachable) (start $s))"#).unwrap();
    let mut store = Store::new(&engine, ());
    let err = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>().map(|t| t.code()), Some(TrapCode::UnreachableCodeReached));
}

#[test]
fn data_segment_out_of_bounds_traps_at_instantiation() {
    let engine = Engine::default();
    let module = Module::new(&engine, r#"(module (memory 1) (data (i32.const 65535) "ab"))"#).unwrap();
    let mut store = Store::new(&engine, ());
    let err = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>().map(|t| t.code()), Some(TrapCode::MemoryOutOfBounds));
}

/// Every frame of a backtrace names the exact wasm instruction: the one
/// that trapped (a heap access out of bounds, a division by zero) and, in
/// outer frames, the call. The compiler keeps its code-to-wasm map only at
/// those points (see `address_map` in kiln-cranelift), so this pins them.
#[test]
fn backtrace_offsets_are_exact_instructions() {
    let wat = r#"(module
        (memory 1)
        (func $load (param i32) (result i32) local.get 0 i32.load offset=7)
        (func $div (param i32) (result i32) i32.const 1 local.get 0 i32.div_u)
        (func (export "a") (param i32) (result i32) nop nop local.get 0 call $load)
        (func (export "b") (param i32) (result i32) nop local.get 0 call $div i32.const 2 i32.add))"#;
    let wasm = wat::parse_str(wat).unwrap();
    // Module offsets of the instructions that trap or call.
    let mut at = std::collections::HashMap::new();
    for payload in wasmparser::Parser::new(0).parse_all(&wasm) {
        if let Ok(wasmparser::Payload::CodeSectionEntry(body)) = payload {
            let mut ops = body.get_operators_reader().unwrap();
            while !ops.eof() {
                let (op, offset) = ops.read_with_offset().unwrap();
                let name = match op {
                    wasmparser::Operator::I32Load { .. } => "load",
                    wasmparser::Operator::I32DivU => "div",
                    wasmparser::Operator::Call { function_index: 0 } => "call load",
                    wasmparser::Operator::Call { function_index: 1 } => "call div",
                    _ => continue,
                };
                at.insert(name, offset as u32);
            }
        }
    }
    let engine = Engine::default();
    let module = Module::from_binary(&engine, &wasm).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    for (export, arg, code, inner, outer) in [
        ("a", 65_536, TrapCode::MemoryOutOfBounds, "load", "call load"),
        ("b", 0, TrapCode::IntegerDivisionByZero, "div", "call div"),
    ] {
        let f = instance.get_typed_func::<i32, i32>(&mut store, export).unwrap();
        let t = f.call(&mut store, arg).unwrap_err().downcast::<Trap>().unwrap();
        assert_eq!(t.code(), code);
        let offsets: Vec<_> = t.backtrace().frames().iter().map(|f| f.module_offset()).collect();
        assert_eq!(offsets, [Some(at[inner]), Some(at[outer])], "{export}: {t}");
    }
}
