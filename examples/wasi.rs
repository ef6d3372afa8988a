//! WASI: a program reads a file from a preopened directory, prints it, and
//! writes a reply next to it; its standard output is captured in memory.
//!
//! `cargo run --example wasi`

use anyhow::Result;
use kiln::{Engine, Linker, Module, Store};
use kiln_wasi::{DirPerms, I32Exit, MemoryOutputPipe, WasiCtx, WasiCtxBuilder};

/// Opens `greeting.txt` in the first preopened directory (descriptor 3),
/// copies it to standard output, and creates `reply.txt` there. Exits with
/// 1, 2 or 3 if opening, reading or creating fails.
const PROGRAM: &str = r#"(module
    (import "wasi_snapshot_preview1" "path_open"
        (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
    (memory (export "memory") 1)
    (data (i32.const 100) "greeting.txt")
    (data (i32.const 120) "reply.txt")
    (data (i32.const 140) "thanks\n")
    (func (export "_start")
        ;; open greeting.txt with the right to read (rights bit 1: fd_read)
        (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 12)
                (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 220))
            (then (call $proc_exit (i32.const 1))))
        ;; read up to 1000 bytes into 1024 (iovec at 200), the count goes to 216
        (i32.store (i32.const 200) (i32.const 1024))
        (i32.store (i32.const 204) (i32.const 1000))
        (if (call $fd_read (i32.load (i32.const 220)) (i32.const 200) (i32.const 1) (i32.const 216))
            (then (call $proc_exit (i32.const 2))))
        ;; write them to standard output
        (i32.store (i32.const 204) (i32.load (i32.const 216)))
        (drop (call $fd_write (i32.const 1) (i32.const 200) (i32.const 1) (i32.const 216)))
        ;; create reply.txt (oflags: creat | trunc; rights bit 6: fd_write) and write to it
        (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 120) (i32.const 9)
                (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 220))
            (then (call $proc_exit (i32.const 3))))
        (i32.store (i32.const 200) (i32.const 140))
        (i32.store (i32.const 204) (i32.const 7))
        (drop (call $fd_write (i32.load (i32.const 220)) (i32.const 200) (i32.const 1) (i32.const 216)))
        (call $proc_exit (i32.const 0))))"#;

/// Runs the program in a temporary directory; returns what happened.
fn run() -> Result<String> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("greeting.txt"), "Hello from a file!\n")?;

    let engine = Engine::default();
    let module = Module::new(&engine, PROGRAM)?;
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    // The closure finds the WASI context in the store's data.
    kiln_wasi::add_to_linker(&mut linker, |cx| cx)?;

    let stdout = MemoryOutputPipe::new(1 << 16);
    let ctx = WasiCtxBuilder::new()
        .args(["greeter.wasm"])
        .stdout(stdout.clone())
        .inherit_stderr()
        .preopened_dir(dir.path(), "data", DirPerms::ReadWrite)?
        .build();
    let mut store = Store::new(&engine, ctx);
    let start = linker.instantiate(&mut store, &module)?.get_typed_func::<(), ()>(&mut store, "_start")?;
    // `proc_exit` ends the call with an `I32Exit` error holding the status.
    let status = match start.call(&mut store, ()) {
        Ok(()) => 0,
        Err(e) => e.downcast_ref::<I32Exit>().map(|x| x.0).ok_or(e)?,
    };
    let reply = std::fs::read_to_string(dir.path().join("reply.txt"))?;
    Ok(format!("exit status {status}\nstdout: {}reply.txt: {reply}", stdout.contents_string()))
}

fn main() -> Result<()> {
    print!("{}", run()?);
    Ok(())
}

#[test]
fn reads_and_writes_the_preopened_directory() -> Result<()> {
    assert_eq!(run()?, "exit status 0\nstdout: Hello from a file!\nreply.txt: thanks\n");
    Ok(())
}
