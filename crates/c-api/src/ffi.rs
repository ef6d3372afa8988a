//! The raw-pointer helpers: every dereference of a pointer received from C
//! goes through one of these, each stating what it assumes of the caller.
//!
//! What C code can get wrong in a way we can see (a null pointer, a size
//! that does not match) is checked here; what we cannot see (a dangling
//! pointer, a vector whose `size` exceeds its allocation) is the caller's
//! side of the contract the standard states, and these helpers rely on it.

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Borrows the object behind `p`, or `None` when `p` is null (recording
/// that as the thread's last error).
///
/// # Safety
///
/// `p` is null or points to a live `T` (one this library handed out, or a
/// C value of that layout) that nobody mutates for `'a`.
pub unsafe fn borrow<'a, T>(p: *const T, what: &str) -> Option<&'a T> {
    if p.is_null() {
        crate::error::set_last_error(format!("{what} is NULL"));
        return None;
    }
    // SAFETY: non-null, and live and unaliased by mutation per this
    // function's contract.
    Some(unsafe { &*p })
}

/// Borrows the object behind `p` mutably, or `None` when `p` is null.
///
/// # Safety
///
/// `p` is null or points to a live `T` that nothing else accesses for `'a`.
pub unsafe fn borrow_mut<'a, T>(p: *mut T, what: &str) -> Option<&'a mut T> {
    if p.is_null() {
        crate::error::set_last_error(format!("{what} is NULL"));
        return None;
    }
    // SAFETY: non-null, live and exclusive per this function's contract.
    Some(unsafe { &mut *p })
}

/// Borrows the object behind `p` when NULL is allowed (NULL: `None`, no
/// error recorded; for optional arguments like a null reference).
///
/// # Safety
///
/// As [`borrow`].
pub unsafe fn optional<'a, T>(p: *const T) -> Option<&'a T> {
    // SAFETY: NULL or live and unaliased by mutation, per the contract.
    unsafe { p.as_ref() }
}

/// Borrows the object behind `p` mutably when NULL is allowed.
///
/// # Safety
///
/// As [`borrow_mut`].
pub unsafe fn optional_mut<'a, T>(p: *mut T) -> Option<&'a mut T> {
    // SAFETY: NULL or live and exclusive, per the contract.
    unsafe { p.as_mut() }
}

/// Views `len` elements at `data` (an empty slice when `len` is 0, whatever
/// `data` is; `None` when `len` is not 0 but `data` is null).
///
/// # Safety
///
/// When `len` is not 0 and `data` is not null, `data` points to `len`
/// initialized, live `T`s not mutated for `'a`.
pub unsafe fn slice<'a, T>(data: *const T, len: usize) -> Option<&'a [T]> {
    if len == 0 {
        return Some(&[]);
    }
    if data.is_null() {
        crate::error::set_last_error("a vector of non-zero size has NULL data".to_string());
        return None;
    }
    // SAFETY: `len` initialized elements at non-null `data`, per the
    // contract (the standard's: a vector's `data` holds `size` elements).
    Some(unsafe { std::slice::from_raw_parts(data, len) })
}

/// Views `len` elements at `data` mutably, as [`slice`].
///
/// # Safety
///
/// As [`slice`], and nothing else accesses the elements for `'a`.
pub unsafe fn slice_mut<'a, T>(data: *mut T, len: usize) -> Option<&'a mut [T]> {
    if len == 0 {
        return Some(&mut []);
    }
    if data.is_null() {
        crate::error::set_last_error("a vector of non-zero size has NULL data".to_string());
        return None;
    }
    // SAFETY: as in `slice`, and exclusive per the contract.
    Some(unsafe { std::slice::from_raw_parts_mut(data, len) })
}

/// Writes `value` to the out-parameter `out` without reading or dropping
/// what was there (out-parameters are uninitialized memory in C). Does
/// nothing but record an error when `out` is null.
///
/// # Safety
///
/// `out` is null or valid for a write of one `T`.
pub unsafe fn write_out<T>(out: *mut T, value: T) -> bool {
    if out.is_null() {
        crate::error::set_last_error("an out-parameter is NULL".to_string());
        drop(value);
        return false;
    }
    // SAFETY: non-null and writable per the contract; `write` does not
    // drop the uninitialized previous contents.
    unsafe { out.write(value) };
    true
}

/// Moves a new object to the heap and hands C the pointer (an `own`
/// result).
pub fn into_raw<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back an `own` pointer made by [`into_raw`] (null gives `None`).
///
/// # Safety
///
/// `p` is null or came from [`into_raw`] of a `T` (also as the non-null
/// case of an `Option<Box<T>>` element), and is not used again.
pub unsafe fn from_raw<T>(p: *mut T) -> Option<Box<T>> {
    if p.is_null() {
        return None;
    }
    // SAFETY: per the contract, `p` is a `Box<T>` pointer given up by
    // `into_raw` and ownership returns here exactly once.
    Some(unsafe { Box::from_raw(p) })
}

/// Reads a NUL-terminated C string as UTF-8 (`None` for null or invalid
/// UTF-8, recording why).
///
/// # Safety
///
/// `p` is null or points to a NUL-terminated string live for `'a`.
pub unsafe fn c_str<'a>(p: *const c_char, what: &str) -> Option<&'a str> {
    if p.is_null() {
        crate::error::set_last_error(format!("{what} is NULL"));
        return None;
    }
    // SAFETY: non-null and NUL-terminated per the contract.
    let s = unsafe { CStr::from_ptr(p) };
    match s.to_str() {
        Ok(s) => Some(s),
        Err(_) => {
            crate::error::set_last_error(format!("{what} is not UTF-8"));
            None
        }
    }
}

/// Runs `f`, turning a panic into `fallback` (and the panic's message into
/// the thread's last error), so that no unwind crosses into C.
pub fn guard<R>(fallback: R, f: impl FnOnce() -> R) -> R {
    guard_with(|| fallback, f)
}

/// As [`guard`], with the fallback made only if `f` panics (for fallbacks
/// that allocate: an `own` trap or error).
pub fn guard_with<R>(fallback: impl FnOnce() -> R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            crate::error::set_last_error(format!("internal error: {msg}"));
            fallback()
        }
    }
}
