//! Interruption: another thread stops a guest stuck in an endless loop by
//! advancing the engine's epoch past the store's deadline.
//!
//! `cargo run --example interrupt`

use anyhow::Result;
use kiln::{Config, Engine, Instance, Module, Store, Trap, TrapCode};
use std::time::{Duration, Instant};

const SPIN: &str = r#"(module (func (export "spin") (loop $forever (br $forever))))"#;

/// Runs the endless loop and stops it after 100 ms; returns what happened.
fn run() -> Result<String> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    let engine = Engine::new(&config)?;
    let module = Module::new(&engine, SPIN)?;
    let mut store = Store::new(&engine, ());
    // Stop once the epoch is one tick past its current value.
    store.set_epoch_deadline(1);
    let spin = Instance::new(&mut store, &module, &[])?.get_typed_func::<(), ()>(&mut store, "spin")?;

    // Engines are cheap handles: the timer thread gets its own.
    let timer = engine.clone();
    let started = Instant::now();
    let ticker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        timer.increment_epoch();
    });
    let result = spin.call(&mut store, ());
    let elapsed = started.elapsed();
    ticker.join().map_err(|_| anyhow::anyhow!("the timer thread panicked"))?;

    let err = result.err().ok_or_else(|| anyhow::anyhow!("an endless loop returned"))?;
    match err.downcast_ref::<Trap>().map(Trap::code) {
        Some(TrapCode::Interrupt) => {
            let when = if elapsed >= Duration::from_millis(100) { "after the timer" } else { "too early" };
            Ok(format!("interrupted {when}: {}\n", TrapCode::Interrupt.message()))
        }
        _ => Err(err),
    }
}

fn main() -> Result<()> {
    print!("{}", run()?);
    Ok(())
}

#[test]
fn the_timer_thread_stops_the_loop() -> Result<()> {
    assert_eq!(run()?, "interrupted after the timer: interrupt: epoch deadline reached\n");
    Ok(())
}
