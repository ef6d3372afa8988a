//! What the async benchmark (`benches/async_calls.rs`) and the strace
//! driver (`src/bin/calls.rs`) share: the wasm they run, a minimal
//! executor (polling with a no-op waker until ready), and the host
//! future that is pending once; and for `fairness` and `cpu_speed`,
//! pinning a thread to a CPU. Nothing here is timed by itself.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

/// An export doing nothing: the call measured with `call_async` and `call`.
pub const NOP_WAT: &str = r#"(module (func (export "nop")))"#;

/// An export calling an async host function once (`host.pause`, which is
/// pending on its first poll): one suspend and one resume per call. And a
/// nop export: the nop called in a store that has an async host function
/// (where Kiln runs async calls on a fiber; in a store with nothing that
/// can wait it runs them directly).
pub const PAUSE_WAT: &str = r#"(module
  (import "host" "pause" (func $pause))
  (func (export "run") (call $pause))
  (func (export "nop")))"#;

/// The module instantiated: an imported host function, a one-page memory
/// with a data segment, a mutable global, a table with an element segment,
/// and three functions. No start function.
pub const SMALL_WAT: &str = r#"(module
  (import "host" "log" (func $log (param i32)))
  (memory (export "memory") 1)
  (global $g (mut i32) (i32.const 7))
  (table 4 funcref)
  (elem (i32.const 0) $a $b)
  (data (i32.const 16) "a small module")
  (func $a (export "a") (param i32) (result i32)
    (i32.add (local.get 0) (global.get $g)))
  (func $b (export "b") (param i32) (result i32)
    (call $log (i32.load (i32.const 16)))
    (local.get 0))
  (func (export "c") (param i32) (result i32)
    (call_indirect (param i32) (result i32) (local.get 0) (i32.const 0))))"#;

/// [`SMALL_WAT`] with a start function (setting the global): the one
/// instantiation here that runs wasm, which Wasmtime 48's
/// `instantiate_async` does on a fiber (for a module without one it runs
/// no fiber at all; Kiln runs every `instantiate_async` on one).
pub fn small_with_start_wat() -> String {
    let body = SMALL_WAT.strip_suffix(')').expect("a module");
    format!("{body}\n  (func $init (global.set $g (i32.const 8)))\n  (start $init))")
}

/// Runs `fut` to completion on this thread, polling it again at once
/// whenever it is pending (the waker does nothing; every future here wakes
/// itself before returning `Pending`). Returns the output and how many
/// polls returned `Pending`. No allocation: the future is pinned on the
/// stack.
#[inline]
pub fn block_on<F: Future>(fut: F) -> (F::Output, u32) {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    let mut pending = 0;
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return (v, pending),
            Poll::Pending => pending += 1,
        }
    }
}

/// The async host function's future: `Pending` on its first poll (after
/// waking its waker), `Ready(())` on the second.
#[derive(Default)]
pub struct PendingOnce {
    polled: bool,
}

impl Future for PendingOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.polled {
            return Poll::Ready(());
        }
        self.polled = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Kiln: a linker defining `host.pause` (async, [`PendingOnce`]) and
/// `host.log` (synchronous, does nothing).
pub fn kiln_linker(engine: &kiln::Engine) -> kiln::Linker<()> {
    let mut linker = kiln::Linker::new(engine);
    linker
        .func_wrap_async("host", "pause", |_caller: kiln::Caller<'_, ()>, (): ()| -> kiln::HostFuture<'_, ()> {
            Box::new(PendingOnce::default())
        })
        .expect("define host.pause");
    linker.func_wrap("host", "log", |_x: i32| {}).expect("define host.log");
    linker
}

/// Wasmtime: the same two host functions as [`kiln_linker`].
pub fn wasmtime_linker(engine: &wasmtime::Engine) -> wasmtime::Linker<()> {
    let mut linker = wasmtime::Linker::new(engine);
    linker
        .func_wrap_async(
            "host",
            "pause",
            |_caller: wasmtime::Caller<'_, ()>, (): ()| -> Box<dyn Future<Output = ()> + Send + '_> {
                Box::new(PendingOnce::default())
            },
        )
        .expect("define host.pause");
    linker.func_wrap("host", "log", |_x: i32| {}).expect("define host.log");
    linker
}

/// Pins the calling thread to CPU `cpu`.
///
/// # Errors
///
/// The system's error when the thread cannot run there (no such CPU, or
/// not in the process's allowed set).
pub fn pin_to_cpu(cpu: usize) -> Result<(), String> {
    // SAFETY: `set` is a plain bit set the calls below fill in and read;
    // sched_setaffinity acts on the calling thread only.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if ok { Ok(()) } else { Err(format!("pinning to CPU {cpu}: {}", std::io::Error::last_os_error())) }
}
