//! WASI in async calls (`add_to_linker_async`): waiting calls leave the
//! thread to other tasks.

use kiln::{Engine, Linker, Module, Store};
use kiln_wasi::{WasiCtx, WasiCtxBuilder};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `sleep(ns)`: `poll_oneoff` on one monotonic clock subscription;
/// returns the errno.
const SLEEPER: &str = r#"(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "sleep") (param $ns i64) (result i32)
    (i64.store (i32.const 0) (i64.const 1))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (local.get $ns))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128))))"#;

/// Runs the sleeper for `sleep` on a single-threaded tokio runtime next
/// to a task ticking every 10 ms; returns (errno, time the call took,
/// ticks meanwhile).
fn sleep_next_to_ticker(linker_async: bool, sleep: Duration) -> (i32, Duration, usize) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let engine = Engine::default();
        let mut linker = Linker::<WasiCtx>::new(&engine);
        if linker_async {
            kiln_wasi::add_to_linker_async(&mut linker, |c| c).unwrap();
        } else {
            kiln_wasi::add_to_linker(&mut linker, |c| c).unwrap();
        }
        let module = Module::new(&engine, SLEEPER).unwrap();
        let mut store = Store::new(&engine, WasiCtxBuilder::new().build());
        let instance = linker.instantiate_async(&mut store, &module).await.unwrap();
        let f = instance.get_typed_func::<i64, i32>(&mut store, "sleep").unwrap();
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                t.fetch_add(1, Ordering::SeqCst);
            }
        });
        // Let the ticker start.
        tokio::task::yield_now().await;
        let start = Instant::now();
        let errno = f.call_async(&mut store, sleep.as_nanos() as i64).await.unwrap();
        let took = start.elapsed();
        let n = ticks.load(Ordering::SeqCst);
        ticker.abort();
        (errno, took, n)
    })
}

#[test]
fn a_guest_sleeping_in_poll_oneoff_leaves_the_thread_to_other_tasks() {
    let (errno, took, ticks) = sleep_next_to_ticker(true, Duration::from_millis(300));
    assert_eq!(errno, 0);
    assert!(took >= Duration::from_millis(300), "slept {took:?}");
    assert!(ticks >= 15, "the other task ticked {ticks} times in {took:?}: the thread was blocked");

    // The blocking flavour holds the thread: the ticker stands still.
    let (errno, took, ticks) = sleep_next_to_ticker(false, Duration::from_millis(150));
    assert_eq!(errno, 0);
    assert!(took >= Duration::from_millis(150));
    assert!(ticks <= 1, "the blocking flavour let the ticker run {ticks} times");
}

/// `serve()`: accepts a connection on the preopened listener (fd 3) and
/// reads up to 16 bytes from it; returns the byte count, or -errno.
const SERVER: &str = r#"(module
  (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv" (func $recv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "serve") (result i32) (local $e i32)
    (local.set $e (call $accept (i32.const 3) (i32.const 0) (i32.const 0)))
    (if (local.get $e) (then (return (i32.sub (i32.const 0) (local.get $e)))))
    ;; one iovec at 16: buffer 64, 16 bytes
    (i32.store (i32.const 16) (i32.const 64))
    (i32.store (i32.const 20) (i32.const 16))
    (local.set $e (call $recv (i32.load (i32.const 0)) (i32.const 16) (i32.const 1) (i32.const 0)
                              (i32.const 32) (i32.const 36)))
    (if (local.get $e) (then (return (i32.sub (i32.const 0) (local.get $e)))))
    (i32.load (i32.const 32))))"#;

#[test]
fn a_guest_waiting_for_a_socket_leaves_the_thread_to_other_tasks() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let engine = Engine::default();
        let mut linker = Linker::<WasiCtx>::new(&engine);
        kiln_wasi::add_to_linker_async(&mut linker, |c| c).unwrap();
        let module = Module::new(&engine, SERVER).unwrap();
        let mut store = Store::new(&engine, WasiCtxBuilder::new().preopened_listener(listener).build());
        let instance = linker.instantiate_async(&mut store, &module).await.unwrap();
        let serve = instance.get_typed_func::<(), i32>(&mut store, "serve").unwrap();
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = ticks.clone();
        // A client on the same thread: connects after 100 ms, writes after
        // 100 more, counting ticks all along.
        let client = tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                t.fetch_add(1, Ordering::SeqCst);
            }
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                t.fetch_add(1, Ordering::SeqCst);
            }
            tokio::io::AsyncWriteExt::write_all(&mut s, b"hello").await.unwrap();
            s
        });
        let n = serve.call_async(&mut store, ()).await.unwrap();
        assert_eq!(n, 5, "the guest read what the client sent");
        assert_eq!(ticks.load(Ordering::SeqCst), 20, "the client ran while the guest waited");
        drop(client.await.unwrap());
    });
}
