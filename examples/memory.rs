//! Memory: the host writes into a guest's linear memory, the guest sums
//! it, the host reads the guest's answer back, and grows the memory.
//!
//! `cargo run --example memory`

use anyhow::Result;
use kiln::{Engine, Instance, Module, Store};

const GUEST: &str = r#"(module
    (memory (export "memory") 1 4)
    ;; Sums `len` bytes at `ptr` and stores the total (an i32) at address 0.
    (func (export "sum") (param $ptr i32) (param $len i32) (local $i i32) (local $total i32)
        (block $done
            (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
                (local.set $total (i32.add (local.get $total) (i32.load8_u (i32.add (local.get $ptr) (local.get $i)))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $next)))
        (i32.store (i32.const 0) (local.get $total))))"#;

/// Runs the exchange; returns what it printed.
fn run() -> Result<String> {
    let engine = Engine::default();
    let module = Module::new(&engine, GUEST)?;
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[])?;
    let memory = instance.get_memory(&mut store, "memory").ok_or_else(|| anyhow::anyhow!("no memory export"))?;
    let sum = instance.get_typed_func::<(u32, u32), ()>(&mut store, "sum")?;

    // Write through the bounds-checked API...
    memory.write(&mut store, 100, &[1, 2, 3, 4, 5])?;
    // ...or through a slice of the whole memory.
    memory.data_mut(&mut store)[105..110].copy_from_slice(&[10, 20, 30, 40, 50]);
    sum.call(&mut store, (100, 10))?;
    let mut total = [0u8; 4];
    memory.read(&store, 0, &mut total)?;
    let mut out = format!("sum = {}\n", u32::from_le_bytes(total));

    // Out-of-bounds accesses are errors, not crashes.
    let past_end = memory.data_size(&store);
    out += &format!(
        "write past the end: {}\n",
        if memory.write(&mut store, past_end, &[0]).is_err() { "refused" } else { "accepted" }
    );
    let before = memory.grow(&mut store, 2)?;
    out += &format!("grown from {before} to {} pages ({} bytes)\n", memory.size(&store), memory.data_size(&store));
    out += &format!(
        "growing past the maximum: {}\n",
        if memory.grow(&mut store, 10).is_err() { "refused" } else { "accepted" }
    );
    Ok(out)
}

fn main() -> Result<()> {
    print!("{}", run()?);
    Ok(())
}

#[test]
fn host_and_guest_share_memory() -> Result<()> {
    assert_eq!(
        run()?,
        "sum = 165\nwrite past the end: refused\ngrown from 1 to 3 pages (196608 bytes)\ngrowing past the maximum: refused\n"
    );
    Ok(())
}
