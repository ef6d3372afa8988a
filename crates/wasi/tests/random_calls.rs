//! Calls every WASI function from wasm thousands of times with random
//! arguments (descriptors, in- and out-of-bounds pointers, huge lengths,
//! stray flag bits): each call must return an errno, never trap, never
//! panic, and the store must stay usable.

use kiln::{Engine, Linker, Module, Store, Val};
use kiln_wasi::{DirPerms, MemoryInputPipe, MemoryOutputPipe, WasiCtx, WasiCtxBuilder};

/// (name, parameter types: b'i' = i32, b'I' = i64). `poll_oneoff` (random
/// clock timeouts could sleep for a year), `proc_exit` and `sock_accept`
/// (no socket to accept on here, but keep the call list honest) are
/// covered elsewhere.
const CALLS: &[(&str, &[u8])] = &[
    ("args_get", b"ii"),
    ("args_sizes_get", b"ii"),
    ("environ_get", b"ii"),
    ("environ_sizes_get", b"ii"),
    ("clock_res_get", b"ii"),
    ("clock_time_get", b"iIi"),
    ("fd_advise", b"iIIi"),
    ("fd_allocate", b"iII"),
    ("fd_close", b"i"),
    ("fd_datasync", b"i"),
    ("fd_fdstat_get", b"ii"),
    ("fd_fdstat_set_flags", b"ii"),
    ("fd_fdstat_set_rights", b"iII"),
    ("fd_filestat_get", b"ii"),
    ("fd_filestat_set_size", b"iI"),
    ("fd_filestat_set_times", b"iIIi"),
    ("fd_pread", b"iiiIi"),
    ("fd_prestat_get", b"ii"),
    ("fd_prestat_dir_name", b"iii"),
    ("fd_pwrite", b"iiiIi"),
    ("fd_read", b"iiii"),
    ("fd_readdir", b"iiiIi"),
    ("fd_renumber", b"ii"),
    ("fd_seek", b"iIii"),
    ("fd_sync", b"i"),
    ("fd_tell", b"ii"),
    ("fd_write", b"iiii"),
    ("path_create_directory", b"iii"),
    ("path_filestat_get", b"iiiii"),
    ("path_filestat_set_times", b"iiiiIIi"),
    ("path_link", b"iiiiiii"),
    ("path_open", b"iiiiiIIii"),
    ("path_readlink", b"iiiiii"),
    ("path_remove_directory", b"iii"),
    ("path_rename", b"iiiiii"),
    ("path_symlink", b"iiiii"),
    ("path_unlink_file", b"iii"),
    ("proc_raise", b"i"),
    ("random_get", b"ii"),
    ("sched_yield", b""),
    ("sock_recv", b"iiiiii"),
    ("sock_send", b"iiiii"),
    ("sock_shutdown", b"ii"),
];

/// A module importing every call above and exporting `call_NAME`, which
/// forwards its parameters, so that calls come from wasm (with a caller
/// and its memory). Memory starts with a few path strings at 0..64.
fn module_text() -> String {
    let mut imports = String::new();
    let mut exports = String::new();
    for (name, params) in CALLS {
        let tys: Vec<&str> = params.iter().map(|p| if *p == b'I' { "i64" } else { "i32" }).collect();
        let ps = tys.iter().map(|t| format!("(param {t})")).collect::<String>();
        imports.push_str(&format!("(import \"wasi_snapshot_preview1\" \"{name}\" (func ${name} {ps} (result i32)))\n"));
        let gets = (0..tys.len()).map(|i| format!("local.get {i} ")).collect::<String>();
        exports.push_str(&format!("(func (export \"call_{name}\") {ps} (result i32) {gets} call ${name})\n"));
    }
    format!(
        "(module\n{imports}(memory (export \"memory\") 1)\n\
         (data (i32.const 0) \"a\\00b/c\\00..\\00.\\00d/../a\\00/etc\\00f.txt\\00dir\\00\")\n{exports})"
    )
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Mostly small, plausible values; sometimes anything at all.
    fn arg(&mut self) -> u64 {
        match self.next() % 8 {
            0 => self.next(),
            1 => u64::from(u32::MAX) - self.next() % 16,
            2 => 65536 - self.next() % 64,
            3 | 4 => self.next() % 8,
            _ => self.next() % 96,
        }
    }
}

#[test]
fn random_arguments_never_trap_or_panic() {
    let engine = Engine::default();
    let module = Module::new(&engine, module_text()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("dir")).unwrap();
    std::fs::write(dir.path().join("f.txt"), "some text").unwrap();
    std::fs::create_dir(dir.path().join("ro")).unwrap();
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    kiln_wasi::add_to_linker(&mut linker, |cx| cx).unwrap();
    let ctx = WasiCtxBuilder::new()
        .args(["prog", "arg"])
        .env("K", "V")
        .stdin(MemoryInputPipe::new("input"))
        .stdout(MemoryOutputPipe::new(1 << 16))
        .stderr(MemoryOutputPipe::new(1 << 16))
        .preopened_dir(dir.path(), "/", DirPerms::ReadWrite)
        .unwrap()
        .preopened_dir(dir.path().join("ro"), "/ro", DirPerms::ReadOnly)
        .unwrap()
        .build();
    let mut store = Store::new(&engine, ctx);
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let funcs: Vec<_> = CALLS
        .iter()
        .map(|(name, params)| (*name, *params, instance.get_func(&mut store, &format!("call_{name}")).unwrap()))
        .collect();

    // KILN_WASI_SEED=N tries another sequence.
    let seed = std::env::var("KILN_WASI_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x9e37_79b9_7f4a_7c15u64);
    let mut rng = Rng(seed | 1);
    let mut successes = 0;
    for i in 0..20_000 {
        let (name, params, func) = &funcs[(rng.next() % funcs.len() as u64) as usize];
        let args: Vec<Val> = params
            .iter()
            .map(|p| if *p == b'I' { Val::I64(rng.arg() as i64) } else { Val::I32(rng.arg() as i32) })
            .collect();
        let mut result = [Val::I32(0)];
        if let Err(e) = func.call(&mut store, &args, &mut result) {
            panic!("call {i}: {name}{args:?} failed: {e:#}");
        }
        let Val::I32(errno) = result[0] else { panic!("{name} returned {:?}", result[0]) };
        assert!((0..=76).contains(&errno), "call {i}: {name}{args:?} returned errno {errno}");
        successes += usize::from(errno == 0);
    }
    eprintln!("{successes} of 20000 calls succeeded");
    assert!(successes > 100, "only {successes} calls succeeded: the arguments are too random to test much");
    // Still usable: the context came back after every call.
    let mut result = [Val::I32(-1)];
    let sizes = instance.get_func(&mut store, "call_args_sizes_get").unwrap();
    sizes.call(&mut store, &[Val::I32(100), Val::I32(104)], &mut result).unwrap();
    let memory = instance.get_memory(&mut store, "memory").unwrap();
    assert_eq!(result[0].i32(), Some(0));
    assert_eq!(&memory.data(&store)[100..108], &[2, 0, 0, 0, 9, 0, 0, 0]);
}
