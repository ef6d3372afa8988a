//! Kiln's own extensions (`kiln.h`): config settings, fuel and epochs,
//! modules with error messages, serialization, trap codes, cache stats.

use crate::error::{kiln_error_t, new_error};
use crate::ffi;
use crate::refs::{wasm_module_t, wasm_trap_t};
use crate::store::{Lent, store_arg, wasm_config_t, wasm_engine_t, wasm_store_t};
use crate::vec::{bytes_vec, vec_bytes, wasm_byte_vec_t};
use kiln::{Config, DirectoryCache, InstanceAllocationStrategy, PoolingAllocationConfig};
use std::ffi::c_char;
use std::sync::Arc;

/// Runs `f` on a config argument (nothing for NULL).
///
/// # Safety
///
/// `config` is NULL or live.
unsafe fn with_config(config: *mut wasm_config_t, f: impl FnOnce(&mut Config)) {
    // SAFETY: NULL or live, per the contract.
    if let Some(c) = unsafe { ffi::borrow_mut(config, "the config") } {
        f(&mut c.config);
    }
}

/// `kiln_config_wasm_feature_set`: turns a WebAssembly feature on or off
/// by name (`simd`, `threads`, `gc`, ... as `kiln run -W` spells them);
/// false for an unknown name or NULL.
///
/// # Safety
///
/// `config` is NULL or live; `name` is NULL or a C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_config_wasm_feature_set(
    config: *mut wasm_config_t,
    name: *const c_char,
    enable: bool,
) -> bool {
    // SAFETY: NULL or a C string, per the contract.
    let Some(name) = (unsafe { ffi::c_str(name, "the feature name") }) else { return false };
    let mut ok = false;
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_config(config, |c| match c.wasm_feature(name, enable) {
            Ok(_) => ok = true,
            Err(e) => crate::error::set_last_error(format!("{e:#}")),
        });
    }
    ok
}

/// `kiln_config_cache_dir_set`: compiled code is cached in directory
/// `path` (made if missing); an error if it cannot be used.
///
/// # Safety
///
/// `config` is NULL or live; `path` is NULL or a C string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_config_cache_dir_set(
    config: *mut wasm_config_t,
    path: *const c_char,
) -> *mut kiln_error_t {
    // SAFETY: NULL or a C string, per the contract.
    let Some(path) = (unsafe { ffi::c_str(path, "the cache directory") }) else {
        return new_error("the cache directory is NULL or not UTF-8");
    };
    // SAFETY: NULL or live, per the contract.
    let Some(c) = (unsafe { ffi::borrow_mut(config, "the config") }) else {
        return new_error("the config is NULL");
    };
    ffi::guard_with(
        || new_error("internal error"),
        || match DirectoryCache::new(path) {
            Ok(cache) => {
                c.config.cache(Arc::new(cache));
                std::ptr::null_mut()
            }
            Err(e) => new_error(format_args!("cache directory `{path}`: {e}")),
        },
    )
}

/// `kiln_config_consume_fuel_set`: wasm consumes fuel, and traps when the
/// store's runs out (`kiln_store_set_fuel`).
///
/// # Safety
///
/// `config` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_config_consume_fuel_set(config: *mut wasm_config_t, enable: bool) {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_config(config, |c| {
            c.consume_fuel(enable);
        });
    }
}

/// `kiln_config_epoch_interruption_set`: wasm checks the engine's epoch
/// against the store's deadline (`kiln_store_set_epoch_deadline`).
///
/// # Safety
///
/// `config` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_config_epoch_interruption_set(config: *mut wasm_config_t, enable: bool) {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_config(config, |c| {
            c.epoch_interruption(enable);
        });
    }
}

/// `kiln_config_max_wasm_stack_set`: bytes of native stack wasm may use.
///
/// # Safety
///
/// `config` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_config_max_wasm_stack_set(config: *mut wasm_config_t, bytes: usize) {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_config(config, |c| {
            c.max_wasm_stack(bytes);
        });
    }
}

/// `kiln_config_memory_reservation_set`: bytes of address space reserved
/// per 32-bit memory (smaller: bounds checks in code instead of guard
/// pages).
///
/// # Safety
///
/// `config` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_config_memory_reservation_set(config: *mut wasm_config_t, bytes: u64) {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_config(config, |c| {
            c.memory_reservation(bytes);
        });
    }
}

/// `kiln_config_memory_guard_size_set`: bytes of guard pages after each
/// memory's reservation.
///
/// # Safety
///
/// `config` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_config_memory_guard_size_set(config: *mut wasm_config_t, bytes: u64) {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_config(config, |c| {
            c.memory_guard_size(bytes);
        });
    }
}

/// `kiln_config_parallel_compilation_set`: compile functions on several
/// threads (the default) or one.
///
/// # Safety
///
/// `config` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_config_parallel_compilation_set(config: *mut wasm_config_t, enable: bool) {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_config(config, |c| {
            c.parallel_compilation(enable);
        });
    }
}

/// `kiln_config_pooling_allocation_set`: instances, memories and tables
/// come from pools of fixed sizes reserved up front (0: the default size
/// of that pool); instantiation fails when a pool is empty.
///
/// # Safety
///
/// `config` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_config_pooling_allocation_set(
    config: *mut wasm_config_t,
    total_core_instances: u32,
    total_memories: u32,
    total_tables: u32,
) {
    let mut pool = PoolingAllocationConfig::new();
    if total_core_instances != 0 {
        pool.total_core_instances(total_core_instances);
    }
    if total_memories != 0 {
        pool.total_memories(total_memories);
    }
    if total_tables != 0 {
        pool.total_tables(total_tables);
    }
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_config(config, |c| {
            c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        });
    }
}

/// `kiln_engine_increment_epoch`: advances the engine's epoch by one
/// (safe from any thread).
///
/// # Safety
///
/// `engine` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_engine_increment_epoch(engine: *const wasm_engine_t) {
    // SAFETY: NULL or live, per the contract.
    if let Some(e) = unsafe { ffi::borrow(engine, "the engine") } {
        e.engine.increment_epoch();
    }
}

/// Runs `f` with a store argument lent (an error for NULL or a busy
/// store).
///
/// # Safety
///
/// `store` is NULL or live.
unsafe fn with_store<R>(store: *mut wasm_store_t, f: impl FnOnce(Lent<'_>) -> anyhow::Result<R>) -> anyhow::Result<R> {
    // SAFETY: NULL or live, per the contract.
    let store = unsafe { store_arg(store) }.ok_or_else(|| anyhow::anyhow!("the store is NULL"))?;
    ffi::guard(Err(anyhow::anyhow!("internal error")), || {
        store.lend(f).ok_or_else(|| anyhow::anyhow!("the store is in use"))?
    })
}

/// `kiln_store_set_fuel`: the fuel the store's wasm may still consume
/// (from a host callback: what the calling wasm continues with); an error
/// unless the engine consumes fuel.
///
/// # Safety
///
/// `store` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_store_set_fuel(store: *mut wasm_store_t, fuel: u64) -> *mut kiln_error_t {
    // SAFETY: NULL or live, per the contract.
    let r = unsafe {
        with_store(store, |l| match l {
            Lent::Store(s) => s.set_fuel(fuel),
            Lent::Caller(c) => c.set_fuel(fuel),
        })
    };
    r.err().map_or(std::ptr::null_mut(), new_error)
}

/// `kiln_store_get_fuel`: the fuel left into `*out`; an error unless the
/// engine consumes fuel.
///
/// # Safety
///
/// `store` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_store_get_fuel(store: *mut wasm_store_t, out: *mut u64) -> *mut kiln_error_t {
    // SAFETY: NULL or live, per the contract.
    let r = unsafe {
        with_store(store, |l| match l {
            Lent::Store(s) => s.get_fuel(),
            Lent::Caller(c) => c.get_fuel(),
        })
    };
    match r {
        Ok(f) => {
            // SAFETY: NULL or writable, per the contract.
            unsafe { ffi::write_out(out, f) };
            std::ptr::null_mut()
        }
        Err(e) => new_error(e),
    }
}

/// `kiln_store_set_epoch_deadline`: wasm in this store traps once the
/// engine's epoch is `ticks` beyond its current value; an error from
/// inside a host callback.
///
/// # Safety
///
/// `store` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_store_set_epoch_deadline(store: *mut wasm_store_t, ticks: u64) -> *mut kiln_error_t {
    // SAFETY: NULL or live, per the contract.
    let r = unsafe {
        with_store(store, |l| match l {
            Lent::Store(s) => {
                s.set_epoch_deadline(ticks);
                Ok(())
            }
            Lent::Caller(_) => Err(anyhow::anyhow!("the epoch deadline cannot be set from a host callback")),
        })
    };
    r.err().map_or(std::ptr::null_mut(), new_error)
}

/// `kiln_module_new`: compiles a module from binary or text (`.wat`)
/// into `*out`; an error with the reason if it is invalid.
///
/// # Safety
///
/// `engine` and `bytes` are NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_module_new(
    engine: *const wasm_engine_t,
    bytes: *const wasm_byte_vec_t,
    out: *mut *mut wasm_module_t,
) -> *mut kiln_error_t {
    // SAFETY: NULL or live, per the contract.
    let (engine, bytes) = unsafe { (ffi::borrow(engine, "the engine"), ffi::borrow(bytes, "the bytes")) };
    let (Some(engine), Some(bytes)) = (engine, bytes.and_then(vec_bytes)) else {
        return new_error("NULL argument");
    };
    if out.is_null() {
        return new_error("the out-parameter is NULL");
    }
    match ffi::guard(Err(anyhow::anyhow!("internal error")), || crate::module::compile(&engine.engine, bytes, true)) {
        Ok(m) => {
            // SAFETY: checked non-NULL; writable per the contract.
            unsafe { ffi::write_out(out, m) };
            std::ptr::null_mut()
        }
        Err(e) => new_error(e),
    }
}

/// `kiln_module_serialize`: the compiled module's bytes into `out`.
///
/// # Safety
///
/// `module` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_module_serialize(
    module: *const wasm_module_t,
    out: *mut wasm_byte_vec_t,
) -> *mut kiln_error_t {
    // SAFETY: NULL or live, per the contract.
    let Some(m) = (unsafe { crate::module::module_arg(module) }) else {
        return new_error("the module is NULL");
    };
    match ffi::guard(Err(anyhow::anyhow!("internal error")), || m.module.serialize()) {
        Ok(b) => {
            // SAFETY: NULL or writable, per the contract.
            unsafe { ffi::write_out(out, bytes_vec(&b)) };
            std::ptr::null_mut()
        }
        Err(e) => new_error(e),
    }
}

/// `kiln_module_deserialize`: a module from serialized bytes into `*out`.
///
/// # Safety
///
/// `engine` and `bytes` are NULL or live; `out` is NULL or writable; the
/// bytes are trusted: they are native code, run as they are (only bytes
/// this build serialized, unaltered).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_module_deserialize(
    engine: *const wasm_engine_t,
    bytes: *const wasm_byte_vec_t,
    out: *mut *mut wasm_module_t,
) -> *mut kiln_error_t {
    // SAFETY: NULL or live, per the contract.
    let (engine, bytes) = unsafe { (ffi::borrow(engine, "the engine"), ffi::borrow(bytes, "the bytes")) };
    let (Some(engine), Some(bytes)) = (engine, bytes.and_then(vec_bytes)) else {
        return new_error("NULL argument");
    };
    if out.is_null() {
        return new_error("the out-parameter is NULL");
    }
    // SAFETY: the caller vouches for the bytes, per this function's contract.
    match ffi::guard(Err(anyhow::anyhow!("internal error")), || unsafe {
        crate::module::deserialize(&engine.engine, bytes)
    }) {
        Ok(m) => {
            // SAFETY: checked non-NULL; writable per the contract.
            unsafe { ffi::write_out(out, m) };
            std::ptr::null_mut()
        }
        Err(e) => new_error(e),
    }
}

/// `kiln_trap_code`: the Kiln trap code (`KILN_TRAP_*`) of a trap raised
/// by wasm into `*out`; false for other traps (host traps, exits) or NULL.
///
/// # Safety
///
/// `trap` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_trap_code(trap: *const wasm_trap_t, out: *mut u8) -> bool {
    // SAFETY: NULL or live, per the contract.
    match unsafe { crate::trap::trap_arg(trap) }.and_then(|t| t.code) {
        // SAFETY: NULL or writable, per the contract.
        Some(c) => unsafe { ffi::write_out(out, c) },
        None => false,
    }
}

/// `kiln_trap_exit_status`: the status a WASI `proc_exit` ended the call
/// with, into `*out`; false for other traps or NULL.
///
/// # Safety
///
/// `trap` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_trap_exit_status(trap: *const wasm_trap_t, out: *mut i32) -> bool {
    // SAFETY: NULL or live, per the contract.
    match unsafe { crate::trap::trap_arg(trap) }.and_then(|t| t.exit_status) {
        // SAFETY: NULL or writable, per the contract.
        Some(s) => unsafe { ffi::write_out(out, s) },
        None => false,
    }
}

/// `kiln_cache_stats_t`: the compilation cache's counters.
#[repr(C)]
#[derive(Default)]
pub struct kiln_cache_stats_t {
    /// Module lookups that found an entry.
    pub module_hits: u64,
    /// Module lookups that found nothing.
    pub module_misses: u64,
    /// Functions found in the function cache.
    pub function_hits: u64,
    /// Functions looked for and compiled.
    pub function_misses: u64,
    /// Bytes returned by lookups.
    pub bytes_read: u64,
    /// Bytes stored.
    pub bytes_written: u64,
    /// Compile time the hits saved, in nanoseconds.
    pub time_saved_ns: u64,
    /// Entries found damaged or foreign.
    pub rejected: u64,
}

/// `kiln_engine_cache_stats`: the engine's cache counters into `*out`;
/// false if the engine has no cache (or NULL).
///
/// # Safety
///
/// `engine` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_engine_cache_stats(engine: *const wasm_engine_t, out: *mut kiln_cache_stats_t) -> bool {
    // SAFETY: NULL or live, per the contract.
    let Some(cache) = (unsafe { ffi::borrow(engine, "the engine") }).and_then(|e| e.engine.cache().cloned()) else {
        return false;
    };
    let s = ffi::guard(None, || Some(cache.stats()));
    let Some(s) = s else { return false };
    let stats = kiln_cache_stats_t {
        module_hits: s.module_hits,
        module_misses: s.module_misses,
        function_hits: s.function_hits,
        function_misses: s.function_misses,
        bytes_read: s.bytes_read,
        bytes_written: s.bytes_written,
        time_saved_ns: u64::try_from(s.time_saved.as_nanos()).unwrap_or(u64::MAX),
        rejected: s.rejected,
    };
    // SAFETY: NULL or writable, per the contract.
    unsafe { ffi::write_out(out, stats) }
}
