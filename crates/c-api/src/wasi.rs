//! WASI preview 1 through the C API (`kiln.h`): a `kiln_wasi_config_t`
//! describes the program's arguments, environment, standard streams and
//! preopened directories; `kiln_store_set_wasi` gives it to a store;
//! `kiln_wasi_imports` makes the WASI functions a module imports, in its
//! import order, for `wasm_instance_new`.

use crate::error::{kiln_error_t, new_error};
use crate::ffi;
use crate::refs::{RefKind, wasm_extern_vec_t, wasm_module_t, wasm_ref_t};
use crate::store::{StoreData, store_arg, wasm_store_t};
use crate::vec::{CVec, vec_bytes, wasm_byte_vec_t};
use kiln::{Extern, Linker};
use kiln_wasi::{DirPerms, MemoryInputPipe, WasiCtxBuilder};
use std::ffi::c_char;

/// `kiln_wasi_config_t`.
pub struct kiln_wasi_config_t {
    builder: WasiCtxBuilder,
    /// The arguments (each setting replaces the last; applied at build).
    args: Vec<std::ffi::OsString>,
}

/// `kiln_wasi_config_new`: no arguments, no environment, empty stdin,
/// discarded stdout and stderr, no directories.
#[unsafe(no_mangle)]
pub extern "C" fn kiln_wasi_config_new() -> *mut kiln_wasi_config_t {
    ffi::into_raw(kiln_wasi_config_t { builder: WasiCtxBuilder::new(), args: Vec::new() })
}

/// `kiln_wasi_config_delete`.
///
/// # Safety
///
/// NULL or a config of this library owned by the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_wasi_config_delete(config: *mut kiln_wasi_config_t) {
    // SAFETY: NULL or ours and owned, per the contract.
    drop(unsafe { ffi::from_raw(config) });
}

/// Runs `f` on a WASI config argument; false for NULL.
///
/// # Safety
///
/// `config` is NULL or live.
unsafe fn with_builder(config: *mut kiln_wasi_config_t, f: impl FnOnce(&mut WasiCtxBuilder) -> bool) -> bool {
    // SAFETY: NULL or live, per the contract.
    match unsafe { ffi::borrow_mut(config, "the WASI config") } {
        Some(c) => ffi::guard(false, || f(&mut c.builder)),
        None => false,
    }
}

/// Reads `n` C strings at `p`.
///
/// # Safety
///
/// `p` is NULL (only if `n` is 0) or holds `n` pointers to C strings.
unsafe fn strings(p: *const *const c_char, n: usize) -> Option<Vec<String>> {
    // SAFETY: `n` pointers at `p`, per the contract.
    let ptrs = unsafe { ffi::slice(p, n) }?;
    ptrs.iter()
        // SAFETY: each is a C string, per the contract.
        .map(|s| unsafe { ffi::c_str(*s, "a string") }.map(str::to_string))
        .collect()
}

/// `kiln_wasi_config_set_argv`: the program's arguments (`argv[0]`
/// first), replacing any set before; false for NULL or a string that is
/// not UTF-8.
///
/// # Safety
///
/// `config` is NULL or live; `argv` holds `argc` C strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_wasi_config_set_argv(
    config: *mut kiln_wasi_config_t,
    argc: usize,
    argv: *const *const c_char,
) -> bool {
    // SAFETY: per the contract.
    let Some(args) = (unsafe { strings(argv, argc) }) else { return false };
    // SAFETY: NULL or live, per the contract.
    match unsafe { ffi::borrow_mut(config, "the WASI config") } {
        Some(c) => {
            c.args = args.into_iter().map(Into::into).collect();
            true
        }
        None => false,
    }
}

/// `kiln_wasi_config_inherit_argv`: the host process's arguments,
/// replacing any set before.
///
/// # Safety
///
/// `config` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_wasi_config_inherit_argv(config: *mut kiln_wasi_config_t) -> bool {
    // SAFETY: NULL or live, per the contract.
    match unsafe { ffi::borrow_mut(config, "the WASI config") } {
        Some(c) => {
            c.args = std::env::args_os().collect();
            true
        }
        None => false,
    }
}

/// `kiln_wasi_config_set_env`: adds `n` variables `names[i]=values[i]`.
///
/// # Safety
///
/// `config` is NULL or live; `names` and `values` hold `n` C strings each.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_wasi_config_set_env(
    config: *mut kiln_wasi_config_t,
    n: usize,
    names: *const *const c_char,
    values: *const *const c_char,
) -> bool {
    // SAFETY: per the contract.
    let (Some(names), Some(values)) = (unsafe { strings(names, n) }, unsafe { strings(values, n) }) else {
        return false;
    };
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_builder(config, |b| {
            b.envs(names.into_iter().zip(values));
            true
        })
    }
}

/// `kiln_wasi_config_inherit_env`: the host process's environment.
///
/// # Safety
///
/// `config` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_wasi_config_inherit_env(config: *mut kiln_wasi_config_t) -> bool {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_builder(config, |b| {
            b.inherit_env();
            true
        })
    }
}

/// `kiln_wasi_config_inherit_stdio`: the host's stdin, stdout and stderr.
///
/// # Safety
///
/// `config` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_wasi_config_inherit_stdio(config: *mut kiln_wasi_config_t) -> bool {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_builder(config, |b| {
            b.inherit_stdio();
            true
        })
    }
}

/// `kiln_wasi_config_set_stdin_bytes`: stdin reads these bytes, then
/// end-of-file.
///
/// # Safety
///
/// `config` is NULL or live; `bytes` is NULL or a live vector.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_wasi_config_set_stdin_bytes(
    config: *mut kiln_wasi_config_t,
    bytes: *const wasm_byte_vec_t,
) -> bool {
    // SAFETY: NULL or live, per the contract.
    let Some(bytes) = (unsafe { ffi::borrow(bytes, "the bytes") }).and_then(vec_bytes) else { return false };
    let pipe = MemoryInputPipe::new(bytes.to_vec());
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_builder(config, |b| {
            b.stdin(pipe);
            true
        })
    }
}

/// Opens the file at `path` (created or truncated when `write`) and gives
/// it to `config` with `set`; false (and the last error) if `path` is NULL
/// or the file cannot be opened.
///
/// # Safety
///
/// `config` is NULL or live; `path` is NULL or a C string.
unsafe fn set_stream(
    config: *mut kiln_wasi_config_t,
    path: *const c_char,
    write: bool,
    set: impl FnOnce(&mut WasiCtxBuilder, std::fs::File),
) -> bool {
    // SAFETY: NULL or a C string, per the contract.
    let Some(path) = (unsafe { ffi::c_str(path, "the path") }) else { return false };
    let opened = if write { std::fs::File::create(path) } else { std::fs::File::open(path) };
    let file = match opened {
        Ok(f) => f,
        Err(e) => {
            crate::error::set_last_error(format!("`{path}`: {e}"));
            return false;
        }
    };
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_builder(config, |b| {
            set(b, file);
            true
        })
    }
}

/// `kiln_wasi_config_set_stdin_file`: stdin reads the file at `path`;
/// false if it cannot be opened.
///
/// # Safety
///
/// `config` is NULL or live; `path` is NULL or a C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_wasi_config_set_stdin_file(config: *mut kiln_wasi_config_t, path: *const c_char) -> bool {
    // SAFETY: the same contract.
    unsafe {
        set_stream(config, path, false, |b, f| {
            b.stdin(f);
        })
    }
}

/// `kiln_wasi_config_set_stdout_file`: stdout writes to the file at
/// `path` (created or truncated); false if it cannot be.
///
/// # Safety
///
/// `config` is NULL or live; `path` is NULL or a C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_wasi_config_set_stdout_file(
    config: *mut kiln_wasi_config_t,
    path: *const c_char,
) -> bool {
    // SAFETY: the same contract.
    unsafe {
        set_stream(config, path, true, |b, f| {
            b.stdout(f);
        })
    }
}

/// `kiln_wasi_config_set_stderr_file`: stderr writes to the file at
/// `path` (created or truncated); false if it cannot be.
///
/// # Safety
///
/// `config` is NULL or live; `path` is NULL or a C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_wasi_config_set_stderr_file(
    config: *mut kiln_wasi_config_t,
    path: *const c_char,
) -> bool {
    // SAFETY: the same contract.
    unsafe {
        set_stream(config, path, true, |b, f| {
            b.stderr(f);
        })
    }
}

/// `kiln_wasi_config_preopen_dir`: the program sees host directory
/// `host_path` as `guest_path`, read-only if asked; false if it cannot be
/// opened.
///
/// # Safety
///
/// `config` is NULL or live; the paths are NULL or C strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_wasi_config_preopen_dir(
    config: *mut kiln_wasi_config_t,
    host_path: *const c_char,
    guest_path: *const c_char,
    read_only: bool,
) -> bool {
    // SAFETY: NULL or C strings, per the contract.
    let (Some(host), Some(guest)) =
        (unsafe { ffi::c_str(host_path, "the host path") }, unsafe { ffi::c_str(guest_path, "the guest path") })
    else {
        return false;
    };
    let perms = if read_only { DirPerms::ReadOnly } else { DirPerms::ReadWrite };
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_builder(config, |b| match b.preopened_dir(host, guest, perms) {
            Ok(_) => true,
            Err(e) => {
                crate::error::set_last_error(format!("{e:#}"));
                false
            }
        })
    }
}

/// `kiln_store_set_wasi`: takes `config` and makes it the store's WASI
/// state (replacing any earlier one).
///
/// # Safety
///
/// `store` is NULL or live; `config` is NULL or owned by the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_store_set_wasi(
    store: *mut wasm_store_t,
    config: *mut kiln_wasi_config_t,
) -> *mut kiln_error_t {
    // SAFETY: NULL or ours and owned, per the contract.
    let Some(mut config) = (unsafe { ffi::from_raw(config) }) else {
        return new_error("the WASI config is NULL");
    };
    // SAFETY: NULL or live, per the contract.
    let Some(store) = (unsafe { store_arg(store) }) else {
        return new_error("the store is NULL");
    };
    let done = ffi::guard(None, || {
        let args = std::mem::take(&mut config.args);
        let ctx = config.builder.args(args).build();
        store.with(|mut s| s.data_mut().wasi = Some(ctx))
    });
    match done {
        Some(()) => std::ptr::null_mut(),
        None => new_error("the store is in use"),
    }
}

/// `kiln_wasi_imports`: for each import of `module`, in order, the WASI
/// function of that name in `store` (its WASI state: `kiln_store_set_wasi`,
/// or an empty one), or NULL for an import that is not WASI's (fill those
/// in before `wasm_instance_new`); an error for an unknown WASI function.
///
/// # Safety
///
/// `store` and `module` are NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_wasi_imports(
    store: *mut wasm_store_t,
    module: *const wasm_module_t,
    out: *mut wasm_extern_vec_t,
) -> *mut kiln_error_t {
    // SAFETY: NULL or live, per the contract.
    let (store, module) = unsafe { (store_arg(store), crate::module::module_arg(module)) };
    let (Some(store), Some(module)) = (store, module) else {
        return new_error("NULL argument");
    };
    if out.is_null() {
        return new_error("the out-parameter is NULL");
    }
    let r = ffi::guard(Err(anyhow::anyhow!("internal error")), || {
        let mut linker: Linker<StoreData> = Linker::new(&store.engine);
        kiln_wasi::add_to_linker(&mut linker, |d: &mut StoreData| {
            d.wasi.get_or_insert_with(|| WasiCtxBuilder::new().build())
        })?;
        store
            .with(|mut ctx| {
                module
                    .module
                    .imports()
                    .filter(|i| !matches!(i.ty(), kiln::ExternType::Tag(_)))
                    .map(|i| {
                        if i.module() != kiln_wasi::MODULE {
                            return Ok(None);
                        }
                        let e = linker
                            .get(&mut ctx, i.module(), i.name())
                            .ok_or_else(|| anyhow::anyhow!("unknown WASI function `{}`", i.name()))?;
                        let kind = match e {
                            Extern::Func(f) => RefKind::Func(f),
                            _ => anyhow::bail!("WASI import `{}` is not a function", i.name()),
                        };
                        Ok(Some(Box::new(wasm_ref_t::new(Some(store.clone()), kind))))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()
            })
            .ok_or_else(|| anyhow::anyhow!("the store is in use"))?
    });
    match r {
        Ok(v) => {
            // SAFETY: checked non-NULL; writable per the contract.
            unsafe { ffi::write_out(out, CVec::from_vec(v)) };
            std::ptr::null_mut()
        }
        Err(e) => new_error(e),
    }
}
