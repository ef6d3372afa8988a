//! Runs the C programs of `tests/c/` (built by `tests/c/build.sh`, the
//! .wasm files committed) and small WAT modules under kiln-wasi, and checks
//! what they print, the files they leave, their exit codes, and that every
//! way out of a preopened directory fails.

use kiln::{Engine, Linker, Module, Store, Trap};
use kiln_wasi::{DirPerms, I32Exit, MemoryInputPipe, MemoryOutputPipe, WasiCtx, WasiCtxBuilder};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

fn program(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c").join(format!("{name}.wasm"))
}

/// What a run produced.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `_start` of `module` with the context `configure` sets up (the
/// standard output and error are captured here).
fn run_module(module: &Module, configure: impl FnOnce(&mut WasiCtxBuilder)) -> Outcome {
    let engine = module.engine();
    let stdout = MemoryOutputPipe::new(1 << 20);
    let stderr = MemoryOutputPipe::new(1 << 20);
    let mut b = WasiCtxBuilder::new();
    b.stdout(stdout.clone()).stderr(stderr.clone());
    configure(&mut b);
    let mut linker: Linker<WasiCtx> = Linker::new(engine);
    kiln_wasi::add_to_linker(&mut linker, |cx| cx).unwrap();
    let mut store = Store::new(engine, b.build());
    let instance = linker.instantiate(&mut store, module).unwrap();
    let start = instance.get_typed_func::<(), ()>(&mut store, "_start").unwrap();
    let code = match start.call(&mut store, ()) {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => exit.0,
            None => panic!("{e:#}\nstderr: {}", stderr.contents_string()),
        },
    };
    Outcome { code, stdout: stdout.contents_string(), stderr: stderr.contents_string() }
}

fn run(name: &str, configure: impl FnOnce(&mut WasiCtxBuilder)) -> Outcome {
    let engine = Engine::default();
    let module = Module::from_file(&engine, program(name)).unwrap();
    run_module(&module, configure)
}

#[test]
fn arguments_environment_and_exit_status() {
    let out = run("args_env", |b| {
        b.args(["args_env.wasm", "7", "two words"]).env("KILN_TEST_VAR", "hello").env("A", "x=y");
    });
    assert_eq!(out.code, 7);
    assert_eq!(
        out.stdout,
        "argc=3\nargv[0]=args_env.wasm\nargv[1]=7\nargv[2]=two words\nenv KILN_TEST_VAR=hello\nenv A=x=y\nKILN_TEST_VAR=hello\n"
    );

    // Returning from main is status 0; no arguments, no environment.
    let out = run("args_env", |_| {});
    assert_eq!(out.code, 0);
    assert_eq!(out.stdout, "argc=0\nKILN_TEST_VAR=(unset)\n");
}

#[test]
fn bad_pointers_descriptors_and_arguments_are_errnos() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("errors", |b| {
        b.preopened_dir(dir.path(), "/pre", DirPerms::ReadWrite).unwrap();
    });
    assert_eq!(out.code, 3, "stderr: {}", out.stderr);
    let expected = "\
args_sizes_get_oob=21
fd_write_oob_buffer=21
fd_write_oob_iovecs=21
fd_write_oob_result=21
random_get_oob=21
clock_time_get_oob=21
path_open_oob_path=21
fd_prestat_get_oob=21
fd_fdstat_get_oob=21
fd_close_bad=8
fd_write_bad=8
fd_fdstat_get_bad=8
fd_renumber_bad_to=8
fd_prestat_get_stdout=8
fd_read_dir=8
fd_seek_stdout=70
path_open_on_stdout=54
sock_shutdown_stdout=57
sock_accept_dir=57
fd_readdir_stdout=54
clock_time_get_bad_clock=28
fd_seek_bad_whence=28
poll_oneoff_none=28
path_open_bad_utf8=25
fd_prestat_dir_name_short=37
proc_raise=52
sched_yield=0
open_rw=0
drop_write=0
write_without_right=76
regain_write=76
close=0
close_again=8
";
    assert_eq!(out.stdout, expected);
    assert_eq!(std::fs::read(dir.path().join("rights.txt")).unwrap(), b"");
}

#[test]
fn file_and_directory_operations() {
    let dir = tempfile::tempdir().unwrap();
    let out = run("fs_ops", |b| {
        b.args(["fs_ops", "/sandbox"]);
        b.preopened_dir(dir.path(), "/sandbox", DirPerms::ReadWrite).unwrap();
    });
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let failed: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| {
            !l.ends_with(": ok") && !l.starts_with("entries:") && !l.starts_with("many:") && !l.starts_with("raw")
        })
        .collect();
    assert!(failed.is_empty(), "failed steps: {failed:#?}\n{}", out.stdout);
    assert!(out.stdout.contains("entries: . .. b.txt hard link sub\n"), "{}", out.stdout);
    assert!(out.stdout.contains("many: 302 entries, sum 44850\n"));
    // Small buffers: resumed with cookies, nothing lost or repeated.
    assert!(out.stdout.contains("raw readdir, 100-byte buffer: 302 entries\n"));
    assert!(out.stdout.contains("raw readdir, 256-byte buffer: 302 entries\n"));
    assert!(out.stdout.contains("raw readdir, 10-byte buffer: -2\n"));
    assert_eq!(out.stdout.lines().count(), 47, "{}", out.stdout);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["result.txt"]);
    assert_eq!(std::fs::read_to_string(dir.path().join("result.txt")).unwrap(), "done\n");
}

/// The tree the escape test runs in:
///
/// ```text
/// secret.txt  outside/secret.txt  outlink -> secret.txt
/// sandbox/    (preopened read-write as /sandbox, fd 3)
///   inside.txt  sub/link_deep -> ../../secret.txt
///   link_etc -> /etc   link_up -> ..   link_abs_secret -> /abs/secret.txt
///   link_rel_secret -> ../secret.txt   link_dangling_out -> ../created_by_dangling.txt
/// ro/         (preopened read-only as /ro, fd 4)
///   existing.txt  sub/
/// ```
fn escape_tree(root: &Path) {
    use std::os::unix::fs::symlink;
    let sb = root.join("sandbox");
    std::fs::create_dir_all(sb.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("outside")).unwrap();
    std::fs::create_dir_all(root.join("ro/sub")).unwrap();
    std::fs::write(root.join("secret.txt"), "SECRET\n").unwrap();
    std::fs::write(root.join("outside/secret.txt"), "OUTSIDE\n").unwrap();
    std::fs::write(sb.join("inside.txt"), "inside\n").unwrap();
    std::fs::write(root.join("ro/existing.txt"), "ro\n").unwrap();
    symlink("/etc", sb.join("link_etc")).unwrap();
    symlink("..", sb.join("link_up")).unwrap();
    symlink(root.join("secret.txt"), sb.join("link_abs_secret")).unwrap();
    symlink("../secret.txt", sb.join("link_rel_secret")).unwrap();
    symlink("../../secret.txt", sb.join("sub/link_deep")).unwrap();
    symlink("../created_by_dangling.txt", sb.join("link_dangling_out")).unwrap();
    symlink("secret.txt", root.join("outlink")).unwrap();
}

#[test]
fn no_path_leaves_the_preopened_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    escape_tree(&root);
    let secret = root.join("secret.txt");
    let out = run("escape", |b| {
        b.arg("escape").arg(&secret);
        b.preopened_dir(root.join("sandbox"), "/sandbox", DirPerms::ReadWrite).unwrap();
        b.preopened_dir(root.join("ro"), "/ro", DirPerms::ReadOnly).unwrap();
    });
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    // perm (63) for every escape; loop (32) for a symlink opened without
    // following; noent (44) for the symlink that could not be created.
    let expected = "\
dotdot: errno 63
dotdot_deep: errno 63
dotdot_dir: errno 63
absolute_etc: errno 63
absolute_host_path: errno 63
symlink_to_etc: errno 63
symlink_to_parent: errno 63
symlink_absolute_file: errno 63
symlink_relative_escape: errno 63
symlink_nested_escape: errno 63
symlink_nofollow: errno 32
create_through_symlink: errno 63
create_dangling_symlink: errno 63
guest_symlink_absolute: errno 63
follow_guest_symlink_absolute: errno 44
guest_symlink_relative: ok
follow_guest_symlink_relative: errno 63
mkdir_outside: errno 63
rename_out: errno 63
rename_in: errno 63
hardlink_out: errno 63
hardlink_in: errno 63
unlink_outside: errno 63
unlink_through_symlink: errno 63
rmdir_outside: errno 63
stat_outside: errno 63
stat_through_symlink: errno 63
set_times_outside: errno 63
readlink_outside: errno 63
libc_dotdot: errno 63
libc_absolute: errno 76
ro_read: opened
ro_create: errno 63
ro_write: errno 63
ro_truncate: errno 63
ro_mkdir: errno 63
ro_unlink: errno 63
ro_rename: errno 63
ro_symlink: errno 63
ro_set_times: errno 63
ro_rename_into_rw: errno 63
ro_open_subdir: opened
ro_subdir_create: errno 63
";
    assert_eq!(out.stdout, expected);

    // Nothing outside changed, nothing was created or moved.
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "SECRET\n");
    assert_eq!(std::fs::read_to_string(root.join("outside/secret.txt")).unwrap(), "OUTSIDE\n");
    for gone in ["created.txt", "created_by_dangling.txt", "newdir", "moved.txt", "hardlink.txt"] {
        assert!(!root.join(gone).exists(), "{gone} was created outside the sandbox");
    }
    for kept in ["sandbox/inside.txt", "ro/existing.txt", "outside"] {
        assert!(root.join(kept).exists(), "{kept} disappeared");
    }
    for absent in
        ["sandbox/stolen.txt", "sandbox/stolen2.txt", "sandbox/g_abs", "ro/new.txt", "ro/newdir", "sandbox/taken.txt"]
    {
        assert!(std::fs::symlink_metadata(root.join(absent)).is_err(), "{absent} exists");
    }
    assert_eq!(std::fs::read_to_string(root.join("ro/existing.txt")).unwrap(), "ro\n");
}

#[test]
fn swapping_a_directory_for_an_outside_symlink_never_escapes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let sb = root.join("sandbox");
    std::fs::create_dir_all(sb.join("swap")).unwrap();
    std::fs::create_dir_all(root.join("outside")).unwrap();
    std::fs::write(sb.join("swap/secret.txt"), "inside").unwrap();
    std::fs::write(root.join("outside/secret.txt"), "outside").unwrap();

    // The host keeps replacing sandbox/swap with a symlink to ../outside
    // (relative and absolute in turn) and back, while the guest opens
    // swap/secret.txt 20000 times.
    let stop = Arc::new(AtomicBool::new(false));
    let toggles = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (stop, toggles, root) = (stop.clone(), toggles.clone(), root.clone());
        std::thread::spawn(move || {
            let (swap, real) = (root.join("sandbox/swap"), root.join("sandbox/real"));
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                std::fs::rename(&swap, &real).unwrap();
                let target = if i.is_multiple_of(2) { PathBuf::from("../outside") } else { root.join("outside") };
                std::os::unix::fs::symlink(target, &swap).unwrap();
                std::thread::yield_now();
                std::fs::remove_file(&swap).unwrap();
                std::fs::rename(&real, &swap).unwrap();
                i += 1;
                toggles.store(i, Ordering::Relaxed);
            }
        })
    };
    let out = run("race", |b| {
        b.preopened_dir(&sb, "/sandbox", DirPerms::ReadWrite).unwrap();
    });
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(out.stdout.contains(" outside=0 "), "{}", out.stdout);
    assert_eq!(out.code, 0);
    assert!(toggles.load(Ordering::Relaxed) > 0, "the swapper never ran");
}

#[test]
fn clocks_and_sleeping() {
    let out = run("clocks", |_| {});
    assert_eq!(out.code, 0);
    let mut lines = out.stdout.lines();
    let realtime: u64 = lines.next().and_then(|l| l.strip_prefix("realtime=")).unwrap().parse().unwrap();
    let host = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(realtime.abs_diff(host) < 120, "guest realtime {realtime}, host {host}");
    let rest: Vec<&str> = lines.collect();
    assert_eq!(
        rest,
        [
            "monotonic_res_ok=1",
            "realtime_res_ok=1",
            "monotonic_went_back=0",
            "nanosleep_100ms_ok=1",
            "poll_50ms_ok=1",
            "abstime_ok=1",
            "cputime_advanced=1"
        ]
    );
}

#[test]
fn random_bytes() {
    let out = run("random", |_| {});
    assert_eq!(out.code, 0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert_eq!(lines[0].len(), 64);
    assert_ne!(lines[0], lines[1]);
    assert_ne!(lines[0], "0".repeat(64));
    assert_eq!(&lines[2..], ["histogram_ok=1", "zero_length_ok=1"]);
}

#[test]
fn standard_streams_as_pipes_and_files() {
    let out = run("stdio", |b| {
        b.stdin(MemoryInputPipe::new("hello, world\n".repeat(20)));
    });
    assert_eq!(out.code, 0);
    assert_eq!(out.stdout, "HELLO, WORLD\n".repeat(20));
    assert_eq!(out.stderr, "read 260 bytes, isatty(0)=0 isatty(1)=0\n");

    // Output to a host file, input from a host file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "from a file\n").unwrap();
    let input = std::fs::File::open(dir.path().join("in.txt")).unwrap();
    let output = std::fs::File::create(dir.path().join("out.txt")).unwrap();
    let out = run("stdio", |b| {
        b.stdin(input).stdout(output);
    });
    assert_eq!(out.code, 0);
    assert_eq!(std::fs::read_to_string(dir.path().join("out.txt")).unwrap(), "FROM A FILE\n");
    assert_eq!(out.stderr, "read 12 bytes, isatty(0)=0 isatty(1)=0\n");

    // A full output pipe: the program sees a short write, then nospc.
    let small = MemoryOutputPipe::new(8);
    let engine = Engine::default();
    let module = Module::from_file(&engine, program("stdio")).unwrap();
    let out = run_module(&module, |b| {
        b.stdin(MemoryInputPipe::new("0123456789abcdef")).stdout(small.clone());
    });
    assert_eq!(out.code, 0);
    assert_eq!(small.contents(), b"01234567");
}

#[test]
fn poll_oneoff_on_descriptors_and_clocks() {
    let out = run("poll", |b| {
        b.stdin(MemoryInputPipe::new("abc"));
    });
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        "rc=0\nstdin+clock+stdout: [ud=1 type=1 err=0 nbytes=3] [ud=3 type=2 err=0 nbytes=0]\n\
         rc=0\nclosed_fd: [ud=4 type=1 err=8 nbytes=0]\n\
         rc=0\ntwo_clocks: [ud=6 type=0 err=0 nbytes=0]\nwaited_40ms=1\n"
    );
}

#[test]
fn preopened_listening_socket() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"echo me\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        reply
    });
    let out = run("sock", |b| {
        b.preopened_listener(listener);
    });
    assert_eq!(client.join().unwrap(), "ECHO ME\n");
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        "listener_filetype=6\naccept=0\nsend=0\nsent=8\nshutdown=0\nshutdown_stdout=57\nshutdown_closed=8\naccept_on_stdin=57\n"
    );
}

#[test]
fn proc_exit_is_an_error_value_and_traps_stay_traps() {
    let engine = Engine::default();
    let exit = Module::new(
        &engine,
        r#"(module
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (func $deep (param i32) (if (local.get 0)
                (then (call $deep (i32.sub (local.get 0) (i32.const 1))))
                (else (call $exit (i32.const 42)))))
            (func (export "_start") (call $deep (i32.const 100)) unreachable))"#,
    )
    .unwrap();
    assert!(kiln_wasi::uses_wasi(&exit));
    assert_eq!(run_module(&exit, |_| {}).code, 42);

    let trap = Module::new(
        &engine,
        r#"(module
            (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
            (func (export "_start") (drop (call $yield)) unreachable))"#,
    )
    .unwrap();
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    kiln_wasi::add_to_linker(&mut linker, |cx| cx).unwrap();
    let mut store = Store::new(&engine, WasiCtx::builder().build());
    let instance = linker.instantiate(&mut store, &trap).unwrap();
    let err = instance.get_typed_func::<(), ()>(&mut store, "_start").unwrap().call(&mut store, ()).unwrap_err();
    assert!(err.downcast_ref::<I32Exit>().is_none());
    assert!(err.downcast_ref::<Trap>().is_some(), "{err:#}");
}

#[test]
fn a_module_without_memory_gets_fault() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (func (export "_start") (call $exit (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 0)))))"#,
    )
    .unwrap();
    assert_eq!(run_module(&module, |_| {}).code, 21);
}

#[test]
fn the_context_can_live_inside_other_host_state() {
    struct Host {
        counter: u32,
        wasi: WasiCtx,
    }
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
            (import "host" "bump" (func $bump))
            (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (data (i32.const 16) "hi\n")
            (func (export "_start")
                (i32.store (i32.const 0) (i32.const 16))
                (i32.store (i32.const 4) (i32.const 3))
                (call $bump)
                (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
                (call $bump)))"#,
    )
    .unwrap();
    let stdout = MemoryOutputPipe::new(64);
    let mut linker: Linker<Host> = Linker::new(&engine);
    kiln_wasi::add_to_linker(&mut linker, |h: &mut Host| &mut h.wasi).unwrap();
    linker.func_wrap("host", "bump", |mut c: kiln::Caller<'_, Host>| c.data_mut().counter += 1).unwrap();
    let wasi = WasiCtxBuilder::new().stdout(stdout.clone()).build();
    let mut store = Store::new(&engine, Host { counter: 0, wasi });
    let instance = linker.instantiate(&mut store, &module).unwrap();
    instance.get_typed_func::<(), ()>(&mut store, "_start").unwrap().call(&mut store, ()).unwrap();
    assert_eq!(store.data().counter, 2);
    assert_eq!(stdout.contents(), b"hi\n");
    let memory = instance.get_memory(&mut store, "memory").unwrap();
    assert_eq!(&memory.data(&store)[8..12], &3u32.to_le_bytes());
}
