//! Memories with 1-byte pages (the custom-page-sizes proposal) through the
//! embedding API: host-created, imported, grown byte by byte, limited by
//! the store's limiter, and bounds-checked at the exact byte length.

use kiln::{Config, Engine, Instance, Memory, MemoryType, Module, Store, StoreLimits, StoreLimitsBuilder, WasmFeature};

const WAT: &str = r#"
    (module
      (import "host" "mem" (memory 3 (pagesize 1)))
      (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
      (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
      (func (export "size") (result i32) memory.size))
"#;

fn engine(custom_pages: bool) -> Engine {
    let mut config = Config::new();
    config.wasm_feature_set(WasmFeature::CustomPageSizes, custom_pages);
    Engine::new(&config).expect("engine")
}

#[test]
fn one_byte_pages_grow_by_bytes_and_trap_at_the_exact_length() -> anyhow::Result<()> {
    let engine = engine(true);
    let mut store = Store::new(&engine, StoreLimitsBuilder::new().memory_size(10).build());
    store.limiter(|limits: &mut StoreLimits| limits);
    let ty = MemoryType::new(3, None).with_page_size_log2(0)?;
    assert_eq!((ty.page_size(), ty.page_size_log2()), (1, 0));
    let memory = Memory::new(&mut store, ty)?;
    memory.data_mut(&mut store).copy_from_slice(b"xyz");
    let module = Module::new(&engine, WAT)?;
    let instance = Instance::new(&mut store, &module, &[memory.into()])?;
    let load = instance.get_typed_func::<i32, i32>(&mut store, "load")?;
    let grow = instance.get_typed_func::<i32, i32>(&mut store, "grow")?;
    let size = instance.get_typed_func::<(), i32>(&mut store, "size")?;

    assert_eq!(load.call(&mut store, 2)?, i32::from(b'z'));
    let trap = load.call(&mut store, 3).expect_err("one past the end");
    assert!(format!("{trap:?}").contains("out of bounds"), "{trap:?}");

    assert_eq!(grow.call(&mut store, 1)?, 3);
    assert_eq!((size.call(&mut store, ())?, memory.data_size(&store)), (4, 4));
    assert_eq!(load.call(&mut store, 3)?, 0);
    assert!(load.call(&mut store, 4).is_err());
    // The limiter counts bytes: 10 allowed, so growing by 7 more fails.
    assert_eq!(grow.call(&mut store, 7)?, -1);
    assert_eq!(grow.call(&mut store, 6)?, 4);
    assert_eq!(memory.size(&store), 10);
    Ok(())
}

#[test]
fn one_byte_pages_need_the_feature() -> anyhow::Result<()> {
    let engine = engine(false);
    let mut store = Store::new(&engine, ());
    let ty = MemoryType::new(3, None).with_page_size_log2(0)?;
    let err = Memory::new(&mut store, ty).expect_err("feature off");
    assert!(err.to_string().contains("custom-page-sizes"), "{err}");
    let err = Module::new(&engine, WAT).expect_err("feature off");
    assert!(format!("{err:#}").contains("page size"), "{err:#}");
    Ok(())
}

#[test]
fn page_sizes_other_than_1_and_65536_are_refused() {
    assert!(MemoryType::new(1, None).with_page_size_log2(12).is_err());
    assert!(MemoryType::new(1, None).with_page_size_log2(16).is_ok());
    // 2^32 one-byte pages is the most a 32-bit memory can have.
    assert!(MemoryType::new64(1 << 33, None).with_page_size_log2(0).is_ok());
    assert!(MemoryType::new(0, Some(u32::MAX)).with_page_size_log2(0).is_ok());
}
