//! C programs compiled to wasm with clang (`tests/c/build.sh`) give the same
//! results as their native builds (recorded in `tests/c/*.expected`).

use kiln::*;

fn check(name: &str) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/c/");
    let engine = Engine::default();
    let module = Module::from_file(&engine, format!("{dir}{name}.wasm")).expect("compiles");
    let expected = std::fs::read_to_string(format!("{dir}{name}.expected")).expect("expected output");
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).expect("instantiates");
    let mut checked = 0;
    for line in expected.lines() {
        let (func, want) = line.split_once(' ').expect("`name value` lines");
        let f = instance.get_typed_func::<(), i64>(&mut store, func).expect("export");
        let got = f.call(&mut store, ()).expect("runs") as u64;
        assert_eq!(got.to_string(), want, "{name}: {func}");
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn simd_auto_vectorized_matches_native() {
    check("simd_auto");
}

#[test]
fn simd_intrinsics_match_native() {
    check("simd_intrinsics");
}

#[test]
fn nan_canonicalization_switch() -> Result<()> {
    let wat = r#"(module (func (export "f") (param f32 f32) (result f32) local.get 0 local.get 1 f32.add))"#;
    let nan_with_payload = Val::F32(0x7fa0_0001);
    for (canon, want_canonical) in [(false, false), (true, true)] {
        let mut config = Config::new();
        config.cranelift_nan_canonicalization(canon);
        let engine = Engine::new(&config)?;
        let module = Module::new(&engine, wat)?;
        let mut store = Store::new(&engine, ());
        let i = Instance::new(&mut store, &module, &[])?;
        let f = i.get_func(&mut store, "f").expect("f");
        let mut out = [Val::F32(0)];
        f.call(&mut store, &[nan_with_payload.clone(), Val::from(1.0f32)], &mut out)?;
        let Val::F32(bits) = out[0] else { panic!("f32 expected") };
        assert!(f32::from_bits(bits).is_nan());
        assert_eq!(bits & 0x7fff_ffff == 0x7fc0_0000, want_canonical, "bits {bits:#x} canonicalize={canon}");
    }
    Ok(())
}
