//! 64-bit memories past 4 GiB: they grow as far as their reservation
//! (`Config::memory64_reservation`) and are bounds-checked at their length.

use kiln::{Config, Engine, Instance, Module, Store};

const WAT: &str = r#"
    (module
      (memory (export "mem") i64 1)
      (func (export "grow") (param i64) (result i64) (memory.grow (local.get 0)))
      (func (export "size") (result i64) memory.size)
      (func (export "store") (param i64 i32) (i32.store (local.get 0) (local.get 1)))
      (func (export "load") (param i64) (result i32) (i32.load (local.get 0))))
"#;

fn instance(reservation: Option<u64>) -> anyhow::Result<(Store<()>, Instance)> {
    let mut config = Config::new();
    config.wasm_memory64(true);
    if let Some(r) = reservation {
        config.memory64_reservation(r);
    }
    let engine = Engine::new(&config)?;
    let mut store = Store::new(&engine, ());
    let module = Module::new(&engine, WAT)?;
    let instance = Instance::new(&mut store, &module, &[])?;
    Ok((store, instance))
}

#[test]
fn a_64_bit_memory_grows_past_4_gib() -> anyhow::Result<()> {
    let (mut store, instance) = instance(None)?;
    let grow = instance.get_typed_func::<i64, i64>(&mut store, "grow")?;
    let size = instance.get_typed_func::<(), i64>(&mut store, "size")?;
    let store_i32 = instance.get_typed_func::<(i64, i32), ()>(&mut store, "store")?;
    let load = instance.get_typed_func::<i64, i32>(&mut store, "load")?;
    // 1 + 65,536 pages: 4 GiB and 64 KiB.
    assert_eq!(grow.call(&mut store, 0x1_0000)?, 1);
    assert_eq!(size.call(&mut store, ())?, 0x1_0001);
    assert_eq!(grow.call(&mut store, 0)?, 0x1_0001);
    let past_4_gib = (1i64 << 32) + 8;
    store_i32.call(&mut store, (past_4_gib, 0x1234_5678))?;
    assert_eq!(load.call(&mut store, past_4_gib)?, 0x1234_5678);
    let end = 0x1_0001i64 << 16;
    assert!(load.call(&mut store, end - 4).is_ok());
    assert!(load.call(&mut store, end - 3).is_err(), "an access crossing the end traps");
    Ok(())
}

#[test]
fn growth_stops_at_the_64_bit_reservation() -> anyhow::Result<()> {
    let (mut store, instance) = instance(Some(1 << 20))?;
    let grow = instance.get_typed_func::<i64, i64>(&mut store, "grow")?;
    assert_eq!(grow.call(&mut store, 15)?, 1);
    assert_eq!(grow.call(&mut store, 1)?, -1, "16 pages fill a 1 MiB reservation");
    Ok(())
}
