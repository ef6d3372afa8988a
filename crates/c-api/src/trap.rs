//! Traps and frames.
//!
//! A trap is a message, the wasm frames at the trap (innermost first) and,
//! for Kiln's extensions, its trap code or WASI exit status. A trap a host
//! callback returns travels through wasm as a Kiln host error
//! ([`HostTrap`]) and comes out of `wasm_func_call` as the same trap
//! object: no C frame is ever unwound.

use crate::error::message_vec;
use crate::ffi;
use crate::module::ModuleMeta;
use crate::refs::{RefKind, wasm_ref_t, wasm_trap_t};
use crate::store::wasm_store_t;
use crate::vec::{CVec, declare_vec, vec_bytes, wasm_byte_vec_t};
use std::sync::Arc;

/// `wasm_frame_t`: one wasm frame of a trap.
#[derive(Clone, Debug)]
pub struct wasm_frame_t {
    pub(crate) func_index: u32,
    pub(crate) func_offset: usize,
    pub(crate) module_offset: usize,
}

/// What a trap holds.
#[derive(Debug)]
pub struct TrapData {
    /// The message (no NUL).
    pub message: String,
    /// The wasm frames, innermost first.
    pub frames: Vec<wasm_frame_t>,
    /// The Kiln trap code, for traps raised by wasm.
    pub code: Option<u8>,
    /// The exit status, for a WASI `proc_exit`.
    pub exit_status: Option<i32>,
}

impl TrapData {
    /// A trap of just a message.
    pub fn message(message: impl Into<String>) -> Arc<TrapData> {
        Arc::new(TrapData { message: message.into(), frames: Vec::new(), code: None, exit_status: None })
    }
}

/// A trap returned by a host callback, carried through wasm as an error.
#[derive(Debug)]
pub struct HostTrap(pub Arc<TrapData>);

impl std::fmt::Display for HostTrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for HostTrap {}

/// The trap for an error of a call into wasm; `modules` place its frames
/// (their function body offsets).
pub fn from_error(err: &anyhow::Error, modules: &[Arc<ModuleMeta>]) -> Arc<TrapData> {
    if let Some(HostTrap(t)) = err.downcast_ref::<HostTrap>() {
        return t.clone();
    }
    if let Some(t) = err.downcast_ref::<kiln::Trap>() {
        return Arc::new(TrapData {
            message: t.code().message().to_string(),
            frames: frames_of(t.backtrace(), modules),
            code: Some(t.code() as u8),
            exit_status: None,
        });
    }
    if let Some(exit) = err.downcast_ref::<kiln_wasi::I32Exit>() {
        return Arc::new(TrapData {
            message: format!("exited with status {}", exit.0),
            frames: Vec::new(),
            code: None,
            exit_status: Some(exit.0),
        });
    }
    TrapData::message(format!("{err:#}"))
}

/// The C frames of a Kiln backtrace; `modules` place them (their function
/// body offsets).
pub fn frames_of(bt: &kiln::WasmBacktrace, modules: &[Arc<ModuleMeta>]) -> Vec<wasm_frame_t> {
    bt.frames()
        .iter()
        .map(|f| {
            let module_offset = f.module_offset().unwrap_or(0);
            let func_offset = modules.iter().find_map(|m| m.func_offset(f.func_index(), module_offset)).unwrap_or(0);
            wasm_frame_t { func_index: f.func_index(), func_offset, module_offset: module_offset as usize }
        })
        .collect()
}

/// A new `own` trap object for C.
pub fn boxed(data: Arc<TrapData>) -> *mut wasm_trap_t {
    wasm_ref_t::boxed(None, RefKind::Trap(data))
}

/// A new `own` trap of just `message` (also the last error).
pub fn boxed_message(message: impl Into<String>) -> *mut wasm_trap_t {
    let message = message.into();
    crate::error::set_last_error(message.clone());
    boxed(TrapData::message(message))
}

/// Borrows a trap argument's data.
///
/// # Safety
///
/// `t` is NULL or a live object of this library.
pub unsafe fn trap_arg<'a>(t: *const wasm_trap_t) -> Option<&'a Arc<TrapData>> {
    // SAFETY: NULL or live, per the contract.
    match unsafe { crate::refs::arg(t, crate::refs::is::trap, "the trap") } {
        Some(wasm_ref_t { kind: RefKind::Trap(d), .. }) => Some(d),
        _ => None,
    }
}

/// `wasm_trap_new`: a trap with `message` (a NUL at its end is dropped);
/// NULL for a NULL message. The store is not needed (traps are
/// store-independent here) and may be NULL.
///
/// # Safety
///
/// `message` is NULL or a live byte vector.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_trap_new(_store: *mut wasm_store_t, message: *const wasm_byte_vec_t) -> *mut wasm_trap_t {
    // SAFETY: NULL or live, per the contract.
    let Some(bytes) = unsafe { ffi::borrow(message, "the message") }.and_then(vec_bytes) else {
        return std::ptr::null_mut();
    };
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    boxed(TrapData::message(String::from_utf8_lossy(bytes)))
}

/// `wasm_trap_message`: the message, NUL-terminated (the NUL counted in
/// `size`); empty for NULL.
///
/// # Safety
///
/// `trap` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_trap_message(trap: *const wasm_trap_t, out: *mut wasm_byte_vec_t) {
    // SAFETY: NULL or live, per the contract.
    let v = match unsafe { trap_arg(trap) } {
        Some(t) => message_vec(&t.message),
        None => CVec::empty(),
    };
    // SAFETY: NULL or writable, per the contract.
    unsafe { ffi::write_out(out, v) };
}

/// `wasm_trap_origin`: the innermost frame, or NULL if there is none.
///
/// # Safety
///
/// `trap` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_trap_origin(trap: *const wasm_trap_t) -> *mut wasm_frame_t {
    // SAFETY: NULL or live, per the contract.
    match unsafe { trap_arg(trap) }.and_then(|t| t.frames.first()) {
        Some(f) => ffi::into_raw(f.clone()),
        None => std::ptr::null_mut(),
    }
}

/// `wasm_trap_trace`: the frames, innermost first.
///
/// # Safety
///
/// `trap` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_trap_trace(trap: *const wasm_trap_t, out: *mut wasm_frame_vec_t) {
    // SAFETY: NULL or live, per the contract.
    let frames = match unsafe { trap_arg(trap) } {
        Some(t) => t.frames.iter().map(|f| Some(Box::new(f.clone()))).collect(),
        None => Vec::new(),
    };
    // SAFETY: NULL or writable, per the contract.
    unsafe { ffi::write_out(out, CVec::from_vec(frames)) };
}

declare_vec!(
    wasm_frame_vec_t,
    Option<Box<wasm_frame_t>>,
    wasm_frame_vec_new_empty,
    wasm_frame_vec_new_uninitialized,
    wasm_frame_vec_new,
    wasm_frame_vec_copy,
    wasm_frame_vec_delete
);

/// `wasm_frame_delete`.
///
/// # Safety
///
/// NULL or a frame of this library owned by the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_frame_delete(f: *mut wasm_frame_t) {
    // SAFETY: NULL or ours and owned, per the contract.
    drop(unsafe { ffi::from_raw(f) });
}

/// `wasm_frame_copy` (NULL for NULL).
///
/// # Safety
///
/// NULL or a live frame.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_frame_copy(f: *const wasm_frame_t) -> *mut wasm_frame_t {
    // SAFETY: NULL or live, per the contract.
    unsafe { ffi::borrow(f, "the frame") }.map_or(std::ptr::null_mut(), |f| ffi::into_raw(f.clone()))
}

/// `wasm_frame_instance`: always NULL (Kiln's backtraces name the
/// function and module offsets, not the instance).
#[unsafe(no_mangle)]
pub extern "C" fn wasm_frame_instance(_f: *const wasm_frame_t) -> *mut wasm_ref_t {
    std::ptr::null_mut()
}

/// `wasm_frame_func_index`: the function's index in its module.
///
/// # Safety
///
/// NULL or a live frame.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_frame_func_index(f: *const wasm_frame_t) -> u32 {
    // SAFETY: NULL or live, per the contract.
    unsafe { ffi::borrow(f, "the frame") }.map_or(0, |f| f.func_index)
}

/// `wasm_frame_func_offset`: the instruction's offset from the start of
/// its function's body (0 if the module's binary was not seen, as for a
/// deserialized module).
///
/// # Safety
///
/// NULL or a live frame.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_frame_func_offset(f: *const wasm_frame_t) -> usize {
    // SAFETY: NULL or live, per the contract.
    unsafe { ffi::borrow(f, "the frame") }.map_or(0, |f| f.func_offset)
}

/// `wasm_frame_module_offset`: the instruction's offset in the module's
/// binary.
///
/// # Safety
///
/// NULL or a live frame.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_frame_module_offset(f: *const wasm_frame_t) -> usize {
    // SAFETY: NULL or live, per the contract.
    unsafe { ffi::borrow(f, "the frame") }.map_or(0, |f| f.module_offset)
}
