//! wasi-threads: the proposal's test programs (prebuilt, from
//! WebAssembly/wasi-testsuite, kept in the shared tree beside the
//! repository) and our own checks.
//!
//! A wasi-threads program ends the whole process when any thread calls
//! `proc_exit` or traps, so each suite program runs in a child process:
//! this test binary again, with `KILN_WASI_THREADS_CHILD` naming the
//! program, set up as an embedder would (`run_child`); the parent checks
//! the child's exit status and standard output against the `.json`. Its
//! standard input is a pipe kept open until it exits (the `*_wasi_read`
//! programs block a thread reading it). When the programs are missing
//! (a clone without the shared tree) they are one trial, ignored with the
//! path it looked for, or failing under `KILN_REQUIRE_TEST_DATA=1` (see
//! kiln-test-data).
//!
//! Our own checks run in this process: a counter that 8 threads increment
//! with atomics (`tests/wat/threads_counter.wat`; hand-written, since
//! Debian's wasi-libc, 0.0~git20220510, has no `wasm32-wasi-threads`
//! build, no `pthread.h`, to compile a C pthreads program against), the
//! exit handler, thread-spawn errors, and that a thread blocked in a WASI
//! call does not block the others'.

mod common;

use common::Expectation;
use kiln::{Engine, Linker, Module, Store, Trap};
use kiln_wasi::{I32Exit, InputStream, MemoryOutputPipe, ThreadExit, WasiCtx, WasiCtxBuilder, WasiThreads};
use libtest_mimic::{Arguments, Failed, Trial};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Suite programs that do not pass, each with the reason; reported as
/// ignored. Empty: all pass.
const NOT_PASSING: &[(&str, &str)] = &[];

/// Names the program the child process runs.
const CHILD_VAR: &str = "KILN_WASI_THREADS_CHILD";

/// How long a suite program may take (they take about half a second).
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// The store data of a wasi-threads program.
struct Host {
    wasi: WasiCtx,
    threads: Option<WasiThreads<Host>>,
}

/// A linker with WASI, `thread-spawn` and new shared memories for
/// `module`'s shared-memory imports.
fn threads_linker(module: &Module) -> anyhow::Result<Linker<Host>> {
    let mut linker = Linker::new(module.engine());
    kiln_wasi::add_to_linker(&mut linker, |h: &mut Host| &mut h.wasi)?;
    kiln_wasi::add_thread_spawn_to_linker(&mut linker, |h: &mut Host| h.threads.as_ref())?;
    kiln_wasi::define_shared_memories(&mut linker, module)?;
    Ok(linker)
}

/// Each new thread's data: a handle on the same WASI state and threads.
fn share(parent: &mut Host) -> Host {
    Host { wasi: parent.wasi.share(), threads: parent.threads.clone() }
}

// ---- the suite ----

/// The test's expectation; a preopened `root` is not supported here.
fn expectation(wasm: &Path) -> Result<Expectation, String> {
    let e = common::expectation(wasm)?;
    if e.root.is_some() {
        return Err(format!("{}: `root` (a preopened directory) is not supported by this runner", wasm.display()));
    }
    Ok(e)
}

/// The child process: runs `wasm` as `kiln run -S threads` would, with
/// the standard streams inherited, and exits with its status. A thread's
/// `proc_exit` or trap ends the process from that thread (the default
/// exit handler).
fn run_child(wasm: &Path) -> ! {
    let code = match child_main(wasm) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<Trap>().is_some() { 134 } else { 1 }
        }
    };
    std::process::exit(code)
}

fn child_main(wasm: &Path) -> anyhow::Result<i32> {
    let exp = expectation(wasm).map_err(anyhow::Error::msg)?;
    let engine = Engine::default();
    let module = Module::from_file(&engine, wasm)?;
    let linker = threads_linker(&module)?;
    let pre = linker.instantiate_pre(&module)?;
    let threads = if kiln_wasi::uses_threads(&module) { Some(WasiThreads::new(pre.clone(), share)?) } else { None };
    let name = wasm.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut b = WasiCtxBuilder::new();
    b.inherit_stdio().arg(&name).args(&exp.args).envs(exp.env.iter().map(|(k, v)| (k, v)));
    let mut store = Store::new(&engine, Host { wasi: b.build(), threads });
    let instance = pre.instantiate(&mut store)?;
    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
    match start.call(&mut store, ()) {
        Ok(()) => Ok(0),
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(u8::try_from(exit.0).map_or(1, i32::from)),
            None => Err(e),
        },
    }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn run_suite_program(wasm: &Path) -> Result<(), Failed> {
    let exp = expectation(wasm)?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .env(CHILD_VAR, wasm)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the child process: {e}"))?;
    // Kept open (never written) until the child exits.
    let stdin = child.stdin.take();
    let out = drain(child.stdout.take().ok_or("no stdout pipe")?);
    let err = drain(child.stderr.take().ok_or("no stderr pipe")?);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("waiting: {e}"))? {
            break status;
        }
        if started.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {CHILD_TIMEOUT:?}; killed").into());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(stdin);
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    let code = status.code().ok_or_else(|| format!("killed by a signal: {status}\nstderr:\n{err}"))?;
    if code != exp.exit_code || exp.stdout.as_ref().is_some_and(|s| *s != out) {
        return Err(format!(
            "exit code {code} (expected {}), stdout {out:?} (expected {:?})\nstderr:\n{err}",
            exp.exit_code, exp.stdout
        )
        .into());
    }
    Ok(())
}

fn suite_trials() -> Vec<Trial> {
    let files = match kiln_test_data::shared_files("wasi-testsuite/tests/proposals/wasi-threads", "wasm") {
        Ok(files) => files,
        Err(e) => return vec![e.into_trial("testsuite/*")],
    };
    files
        .into_iter()
        .map(|wasm| {
            let stem = wasm.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let ignored = NOT_PASSING.iter().any(|(n, _)| *n == stem);
            Trial::test(format!("testsuite/{stem}"), move || run_suite_program(&wasm)).with_ignored_flag(ignored)
        })
        .collect()
}

// ---- our own ----

/// Runs `_start` of `module` (WAT or binary) in this process with the
/// given stdin, an exit handler, and captured stdout; returns `_start`'s
/// result and the output.
fn run_here(
    wat: &[u8],
    stdin: InputStream,
    on_exit: impl Fn(u32, ThreadExit) + Send + Sync + 'static,
) -> anyhow::Result<(anyhow::Result<()>, MemoryOutputPipe)> {
    let engine = Engine::default();
    let module = Module::new(&engine, wat)?;
    let linker = threads_linker(&module)?;
    let pre = linker.instantiate_pre(&module)?;
    let threads = WasiThreads::builder(pre.clone(), share).on_exit(on_exit).build()?;
    let stdout = MemoryOutputPipe::new(1 << 20);
    let wasi = WasiCtxBuilder::new().stdin(stdin).stdout(stdout.clone()).inherit_stderr().build();
    let mut store = Store::new(&engine, Host { wasi, threads: Some(threads) });
    let instance = pre.instantiate(&mut store)?;
    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
    Ok((start.call(&mut store, ()), stdout))
}

/// Runs `f` on its own thread; fails if it takes longer than `limit`
/// (a deadlock would hang the test binary otherwise).
fn within(limit: Duration, f: impl FnOnce() -> Result<(), Failed> + Send + 'static) -> Result<(), Failed> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).map_err(|_| format!("did not finish within {limit:?}"))?
}

fn no_exit(tid: u32, exit: ThreadExit) {
    panic!("thread {tid} ended the program: {exit:?}");
}

fn counter() -> Result<(), Failed> {
    let wat = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wat/threads_counter.wat"))
        .map_err(|e| format!("threads_counter.wat: {e}"))?;
    let (result, stdout) = run_here(&wat, InputStream::Empty, no_exit)?;
    result?;
    let expected = format!("{}counter=1600000\n", "thread done\n".repeat(8));
    if stdout.contents_string() != expected {
        return Err(format!("stdout {:?}, expected {expected:?}", stdout.contents_string()).into());
    }
    Ok(())
}

/// A thread that does `body`; `_start` spawns it and waits for word 0 to
/// become nonzero (1 s at most).
fn one_thread(body: &str) -> String {
    format!(
        r#"(module
          (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
          (import "env" "memory" (memory 1 1 shared))
          (export "memory" (memory 0))
          (func (export "wasi_thread_start") (param i32 i32) {body})
          (func (export "_start")
            (if (i32.le_s (call $spawn (i32.const 0)) (i32.const 0)) (then unreachable))
            (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const 1_000_000_000)))))"#
    )
}

/// `proc_exit` and traps in a spawned thread reach the exit handler (which
/// here records them instead of ending the process).
fn thread_endings_reach_the_handler() -> Result<(), Failed> {
    for (body, want) in [("(call $proc_exit (i32.const 7))", "exit 7"), ("unreachable", "trap"), ("", "none")] {
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let (result, _) = run_here(one_thread(body).as_bytes(), InputStream::Empty, move |tid, exit| {
            let seen = match exit {
                ThreadExit::Exit(code) => format!("exit {code}"),
                ThreadExit::Error(e) if e.downcast_ref::<Trap>().is_some() => "trap".to_string(),
                ThreadExit::Error(e) => format!("error {e:#}"),
            };
            let _ = tx.lock().map(|tx| tx.send((tid, seen)));
        })?;
        result?;
        let got = rx.recv_timeout(Duration::from_secs(if want == "none" { 1 } else { 10 }));
        match (got, want) {
            (Err(_), "none") => {}
            (Ok((tid, seen)), _) if seen == want && tid == 1 => {}
            (got, _) => return Err(format!("body {body:?}: handler saw {got:?}, expected {want}").into()),
        }
    }
    Ok(())
}

/// `thread-spawn` reports failures as a negative errno: no threads context
/// in the store, or a module whose instantiation fails.
fn spawn_failures_are_negative() -> Result<(), Failed> {
    let wat = r#"(module
      (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
      (import "env" "memory" (memory 1 1 shared))
      (export "memory" (memory 0))
      (func (export "wasi_thread_start") (param i32 i32))
      (func (export "spawn") (result i32) (call $spawn (i32.const 0))))"#;
    let engine = Engine::default();
    let module = Module::new(&engine, wat)?;
    let linker = threads_linker(&module)?;
    let pre = linker.instantiate_pre(&module)?;
    let threads = WasiThreads::builder(pre.clone(), share)
        .configure_store(|_| Err(anyhow::anyhow!("no more stores")))
        .on_exit(no_exit)
        .build()?;
    for threads in [None, Some(threads)] {
        let mut store = Store::new(&engine, Host { wasi: WasiCtxBuilder::new().build(), threads });
        let instance = pre.instantiate(&mut store)?;
        let spawn = instance.get_typed_func::<(), i32>(&mut store, "spawn")?;
        let r = spawn.call(&mut store, ())?;
        if r != -6 {
            return Err(format!("thread-spawn returned {r}, expected -6 (-EAGAIN)").into());
        }
    }
    Ok(())
}

/// `WasiThreads` refuses modules threads cannot run.
fn modules_are_checked() -> Result<(), Failed> {
    let engine = Engine::default();
    for (wat, message) in [
        (r#"(module (import "env" "memory" (memory 1 1 shared)))"#, "does not export a function `wasi_thread_start`"),
        (
            r#"(module (import "env" "memory" (memory 1 1 shared)) (func (export "wasi_thread_start") (param i32)))"#,
            "must take (i32, i32)",
        ),
        (r#"(module (memory (export "memory") 1) (func (export "wasi_thread_start") (param i32 i32)))"#, "not shared"),
    ] {
        let module = Module::new(&engine, wat)?;
        let pre = threads_linker(&module)?.instantiate_pre(&module)?;
        match WasiThreads::new(pre, share) {
            Ok(_) => return Err(format!("{wat}: accepted").into()),
            Err(e) if e.to_string().contains(message) => {}
            Err(e) => return Err(format!("{wat}: {e}, expected `{message}`").into()),
        }
    }
    Ok(())
}

/// A thread blocked reading standard input (a pipe nobody writes), and
/// another sleeping in `poll_oneoff`, do not hold up the main thread's
/// WASI calls: the shared context is not locked while a call waits.
fn waiting_threads_do_not_block_others() -> Result<(), Failed> {
    let wat = r#"(module
      (import "wasi" "thread-spawn" (func $spawn (param i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
      (import "env" "memory" (memory 1 1 shared))
      (export "memory" (memory 0))
      ;; 0: threads about to wait; 100: read iovec; 200: thread 1's clock
      ;; subscription, 300: its event; 400: main's sleep, 500: its event;
      ;; 600: write iovec; 700: "main ran\n"
      (func $sleep (param $sub i32) (param $event i32) (param $ns i64)
        (i64.store offset=24 (local.get $sub) (local.get $ns))
        (if (call $poll (local.get $sub) (local.get $event) (i32.const 1) (i32.add (local.get $event) (i32.const 64)))
          (then unreachable)))
      (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
        (drop (i32.atomic.rmw.add (i32.const 0) (i32.const 1)))
        (if (i32.eqz (local.get $arg))
          (then
            (i32.store (i32.const 100) (i32.const 120))
            (i32.store (i32.const 104) (i32.const 8))
            (drop (call $fd_read (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 108))))
          (else (call $sleep (i32.const 200) (i32.const 300) (i64.const 5_000_000_000)))))
      (func (export "_start")
        (if (i32.le_s (call $spawn (i32.const 0)) (i32.const 0)) (then unreachable))
        (if (i32.le_s (call $spawn (i32.const 1)) (i32.const 0)) (then unreachable))
        (block $both
          (loop $wait
            (br_if $both (i32.eq (i32.atomic.load (i32.const 0)) (i32.const 2)))
            (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const 10_000_000)))
            (br $wait)))
        ;; give them time to be inside their calls
        (call $sleep (i32.const 400) (i32.const 500) (i64.const 100_000_000))
        (i64.store (i32.const 700) (i64.const 0x0a6e6172206e6961)) ;; "ain ran\n"
        (i32.store8 (i32.const 699) (i32.const 0x6d))              ;; "m"
        (i32.store (i32.const 600) (i32.const 699))
        (i32.store (i32.const 604) (i32.const 9))
        (if (call $fd_write (i32.const 1) (i32.const 600) (i32.const 1) (i32.const 608)) (then unreachable))))"#;
    let (reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let stdin = InputStream::File(std::fs::File::from(std::os::fd::OwnedFd::from(reader)));
    let result = within(Duration::from_secs(4), move || {
        let (result, stdout) = run_here(wat.as_bytes(), stdin, no_exit)?;
        result?;
        match stdout.contents_string().as_str() {
            "main ran\n" => Ok(()),
            other => Err(format!("stdout {other:?}").into()),
        }
    });
    // End-of-file for the reader thread.
    drop(writer);
    result
}

fn main() {
    if let Some(wasm) = std::env::var_os(CHILD_VAR) {
        run_child(Path::new(&wasm));
    }
    let args = Arguments::from_args();
    let mut trials = suite_trials();
    trials.push(Trial::test("own/counter", counter));
    trials.push(Trial::test("own/thread_endings_reach_the_handler", thread_endings_reach_the_handler));
    trials.push(Trial::test("own/spawn_failures_are_negative", spawn_failures_are_negative));
    trials.push(Trial::test("own/modules_are_checked", modules_are_checked));
    trials.push(Trial::test("own/waiting_threads_do_not_block_others", waiting_threads_do_not_block_others));
    libtest_mimic::run(&args, trials).exit();
}
