//! Error messages as strings: `kiln_error_t` (returned by `kiln_*`
//! functions) and the thread's last error (set by any function that
//! fails, standard or not).

use crate::ffi;
use crate::vec::{bytes_vec, wasm_name_t};
use std::cell::RefCell;

thread_local! {
    static LAST_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records `msg` as this thread's last error.
pub fn set_last_error(msg: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(msg));
}

/// An error: a message (`kiln_error_t`).
pub struct kiln_error_t {
    pub(crate) message: String,
}

/// An `own` error for C from any error value (also recorded as the last error).
pub fn new_error(err: impl std::fmt::Display) -> *mut kiln_error_t {
    let message = format!("{err:#}");
    set_last_error(message.clone());
    ffi::into_raw(kiln_error_t { message })
}

/// A message of `text` as the standard's `wasm_message_t`: NUL-terminated,
/// the NUL counted in `size`.
pub fn message_vec(text: &str) -> wasm_name_t {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(0);
    bytes_vec(&bytes)
}

/// `kiln_error_message`: writes the message (NUL-terminated) to `out`.
///
/// # Safety
///
/// `err` is NULL or a live error; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_error_message(err: *const kiln_error_t, out: *mut wasm_name_t) {
    // SAFETY: NULL or live, per the contract.
    let text = unsafe { ffi::borrow(err, "the error") }.map_or("", |e| e.message.as_str());
    // SAFETY: NULL or writable, per the contract.
    unsafe { ffi::write_out(out, message_vec(text)) };
}

/// `kiln_error_delete`.
///
/// # Safety
///
/// `err` is NULL or an error this library returned, not yet deleted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_error_delete(err: *mut kiln_error_t) {
    // SAFETY: NULL or ours and not yet deleted, per the contract.
    drop(unsafe { ffi::from_raw(err) });
}

/// `kiln_last_error_message`: the message of the last failure on this
/// thread (NUL-terminated) into `out`; false (and an empty `out`) if none.
///
/// # Safety
///
/// `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kiln_last_error_message(out: *mut wasm_name_t) -> bool {
    let msg = LAST_ERROR.with(|e| e.borrow().clone());
    let (found, v) = match &msg {
        Some(m) => (true, message_vec(m)),
        None => (false, crate::vec::CVec::empty()),
    };
    // SAFETY: NULL or writable, per the contract.
    unsafe { ffi::write_out(out, v) };
    found
}

/// `kiln_last_error_clear`: forgets this thread's last error.
#[unsafe(no_mangle)]
pub extern "C" fn kiln_last_error_clear() {
    LAST_ERROR.with(|e| *e.borrow_mut() = None);
}
