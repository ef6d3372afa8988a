//! Exception tags through the embedding API: defined, exported, imported
//! (by instances and from the host), type-checked at import, and compared
//! by identity.

use kiln::{Config, Engine, FuncType, Instance, Linker, Module, Store, Tag, TagType, ValType, WasmFeature};

fn engine() -> Engine {
    let mut config = Config::new();
    config.wasm_feature_set(WasmFeature::Exceptions, true);
    Engine::new(&config).expect("engine")
}

const DEFINES: &str = r#"
    (module
      (tag $e (export "e") (param i32))
      (export "e-again" (tag $e))
      (tag (export "other") (param i32)))
"#;

const IMPORTS: &str = r#"
    (module
      (import "m" "e" (tag $e (param i32)))
      (export "reexported" (tag $e)))
"#;

#[test]
fn tags_are_exported_imported_and_compared_by_identity() -> anyhow::Result<()> {
    let engine = engine();
    let mut store = Store::new(&engine, ());
    let defines = Instance::new(&mut store, &Module::new(&engine, DEFINES)?, &[])?;
    let e = defines.get_tag(&mut store, "e").expect("tag e");
    let again = defines.get_tag(&mut store, "e-again").expect("tag e again");
    let other = defines.get_tag(&mut store, "other").expect("tag other");
    assert!(e.same(&store, &again));
    assert!(!e.same(&store, &other), "same type, different tags");
    assert_eq!(e.ty(&store).ty().params().collect::<Vec<_>>(), vec![ValType::I32]);

    let mut linker = Linker::new(&engine);
    linker.define("m", "e", e)?;
    let imports = linker.instantiate(&mut store, &Module::new(&engine, IMPORTS)?)?;
    let reexported = imports.get_tag(&mut store, "reexported").expect("reexported");
    assert!(reexported.same(&store, &e));
    Ok(())
}

#[test]
fn tag_imports_are_type_checked() -> anyhow::Result<()> {
    let engine = engine();
    let mut store = Store::new(&engine, ());
    let wrong = Tag::new(&mut store, &TagType::new(FuncType::new([ValType::I64], []))?)?;
    let module = Module::new(&engine, IMPORTS)?;
    let err = Instance::new(&mut store, &module, &[wrong.into()]).expect_err("i64 payload for an i32 tag");
    assert!(format!("{err:#}").contains("incompatible import type"), "{err:#}");
    let right = Tag::new(&mut store, &TagType::new(FuncType::new([ValType::I32], []))?)?;
    let instance = Instance::new(&mut store, &module, &[right.into()])?;
    assert!(instance.get_tag(&mut store, "reexported").expect("tag").same(&store, &right));
    Ok(())
}

#[test]
fn tags_need_the_feature_and_a_result_free_type() {
    assert!(TagType::new(FuncType::new([], [ValType::I32])).is_err());
    let mut config = Config::new();
    config.wasm_feature_set(WasmFeature::Exceptions, false);
    let engine = Engine::new(&config).expect("engine");
    assert!(Module::new(&engine, DEFINES).is_err());
    let mut store = Store::new(&engine, ());
    let ty = TagType::new(FuncType::new([], [])).expect("type");
    assert!(Tag::new(&mut store, &ty).is_err());
}
