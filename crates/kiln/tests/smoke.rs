use kiln::*;

#[test]
fn fib() -> Result<()> {
    let engine = Engine::default();
    let module = Module::from_file(&engine, concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/fib.wat"))?;
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[])?;
    let fib = instance.get_typed_func::<i32, i32>(&mut store, "fib")?;
    assert_eq!(fib.call(&mut store, 20)?, 6765);
    Ok(())
}
