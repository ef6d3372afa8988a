//! Values (`wasm_val_t`) and their conversions to and from Kiln's `Val`.

use crate::ffi;
use crate::refs::{RefKind, wasm_ref_t};
use crate::store::StoreRef;
use crate::types::{kind, valkind};
use crate::vec::{Element, declare_vec};
use kiln::{Val, ValType};
use std::rc::Rc;

/// The payload of a value.
#[repr(C)]
#[derive(Clone, Copy)]
pub union wasm_val_union {
    /// `WASM_I32`.
    pub i32: i32,
    /// `WASM_I64`.
    pub i64: i64,
    /// `WASM_F32`.
    pub f32: f32,
    /// `WASM_F64`.
    pub f64: f64,
    /// The reference kinds (NULL is the null reference); owned by the value.
    pub ref_: *mut wasm_ref_t,
}

/// `wasm_val_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct wasm_val_t {
    /// A `wasm_valkind_t`.
    pub kind: u8,
    /// The value, as `kind` says.
    pub of: wasm_val_union,
}

impl wasm_val_t {
    /// The reference of a reference-kind value (NULL for other kinds).
    pub fn reference(&self) -> *mut wasm_ref_t {
        if self.kind >= kind::EXTERNREF {
            // SAFETY: a value of a reference kind holds `ref_` (the
            // standard's rule for `wasm_val_t`).
            unsafe { self.of.ref_ }
        } else {
            std::ptr::null_mut()
        }
    }
}

impl Element for wasm_val_t {
    fn empty() -> Self {
        wasm_val_t { kind: kind::I32, of: wasm_val_union { i64: 0 } }
    }

    fn duplicate(&self) -> Self {
        let r = self.reference();
        if r.is_null() {
            return *self;
        }
        // SAFETY: a value's non-null reference is a live reference of this
        // library (the standard's ownership rule for values).
        let copy = unsafe { &*r }.clone();
        wasm_val_t { kind: self.kind, of: wasm_val_union { ref_: ffi::into_raw(copy) } }
    }

    #[inline]
    fn release(&mut self) {
        // Numbers own nothing. Testing the kind before touching the union
        // (in a call the optimizer cannot hoist a load out of) matters:
        // reading all 8 bytes right after C wrote a 4-byte `i32` stalls.
        if self.kind >= kind::EXTERNREF {
            self.release_ref();
        }
    }
}

impl wasm_val_t {
    /// Releases the reference of a reference-kind value.
    #[inline(never)]
    fn release_ref(&mut self) {
        let r = self.reference();
        // SAFETY: a value owns its non-null reference, made by this
        // library; after this the value no longer holds it.
        drop(unsafe { ffi::from_raw(r) });
        *self = Self::empty();
    }
}

declare_vec!(
    wasm_val_vec_t,
    wasm_val_t,
    wasm_val_vec_new_empty,
    wasm_val_vec_new_uninitialized,
    wasm_val_vec_new,
    wasm_val_vec_copy,
    wasm_val_vec_delete
);

/// The C value of `v`; references become new `own` handles of `store`.
///
/// # Errors
///
/// A value the standard cannot express (a `v128`, an `exnref` or a GC
/// reference).
#[inline(always)]
pub fn to_c(v: &Val, store: &StoreRef) -> Result<wasm_val_t, String> {
    let of = match v {
        Val::I32(i) => wasm_val_union { i32: *i },
        Val::I64(i) => wasm_val_union { i64: *i },
        Val::F32(b) => wasm_val_union { f32: f32::from_bits(*b) },
        Val::F64(b) => wasm_val_union { f64: f64::from_bits(*b) },
        Val::FuncRef(f) => wasm_val_union {
            ref_: f.map_or(std::ptr::null_mut(), |f| wasm_ref_t::boxed(Some(store.clone()), RefKind::Func(f))),
        },
        Val::ExternRef(e) => wasm_val_union {
            ref_: e
                .as_ref()
                .map_or(std::ptr::null_mut(), |e| wasm_ref_t::boxed(Some(store.clone()), RefKind::Foreign(e.clone()))),
        },
        other => return Err(format!("a value of type {} cannot cross the C API", other.ty())),
    };
    Ok(wasm_val_t { kind: valkind(v.ty()), of })
}

/// The Kiln value of `v`, which must be of type `want` and (for
/// references) belong to `store`.
///
/// # Errors
///
/// The kind does not match `want`, a reference is of another store or of
/// a kind that cannot be that value (only functions are funcrefs, only
/// foreign objects externrefs).
#[inline(always)]
pub fn from_c(v: &wasm_val_t, want: ValType, store: &StoreRef) -> Result<Val, String> {
    if v.kind != valkind(want) {
        return Err(format!("expected a value of kind {}, got kind {}", valkind(want), v.kind));
    }
    Ok(match want {
        // SAFETY: `kind` (checked above) says the value holds `i32`.
        ValType::I32 => Val::I32(unsafe { v.of.i32 }),
        // SAFETY: `kind` (checked above) says the value holds `i64`.
        ValType::I64 => Val::I64(unsafe { v.of.i64 }),
        // SAFETY: `kind` (checked above) says the value holds `f32`.
        ValType::F32 => Val::F32(unsafe { v.of.f32 }.to_bits()),
        // SAFETY: `kind` (checked above) says the value holds `f64`.
        ValType::F64 => Val::F64(unsafe { v.of.f64 }.to_bits()),
        ValType::FuncRef | ValType::ExternRef => {
            // SAFETY: a reference value holds NULL or a live reference.
            let r = unsafe { ffi::optional(v.reference()) };
            ref_to_val(r, want, store)?
        }
        _ => return Err(format!("values of type {want} cannot cross the C API")),
    })
}

/// The Kiln value of reference `r` (NULL: the null reference) as an
/// element of type `want`.
///
/// # Errors
///
/// As [`from_c`].
pub fn ref_to_val(r: Option<&wasm_ref_t>, want: ValType, store: &StoreRef) -> Result<Val, String> {
    match (want, r) {
        (ValType::FuncRef, None) => Ok(Val::FuncRef(None)),
        (ValType::ExternRef, None) => Ok(Val::ExternRef(None)),
        (ValType::FuncRef, Some(r)) => match &r.kind {
            RefKind::Func(f) if r.store.as_ref().is_some_and(|s| Rc::ptr_eq(s, store)) => Ok(Val::FuncRef(Some(*f))),
            RefKind::Func(_) => Err("a function of another store".to_string()),
            _ => Err("a funcref must be a function".to_string()),
        },
        (ValType::ExternRef, Some(r)) => match &r.kind {
            RefKind::Foreign(e) => Ok(Val::ExternRef(Some(e.clone()))),
            _ => Err("an externref must be a foreign object (wasm_foreign_new)".to_string()),
        },
        _ => Err(format!("references of type {want} cannot cross the C API")),
    }
}

/// `wasm_val_delete`: releases the value's reference, if any.
///
/// # Safety
///
/// `v` is NULL or a value owned by the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_val_delete(v: *mut wasm_val_t) {
    // SAFETY: NULL or live, per the contract.
    if let Some(v) = unsafe { ffi::borrow_mut(v, "the value") } {
        v.release();
    }
}

/// `wasm_val_copy`: a copy with its own reference handle.
///
/// # Safety
///
/// `out` is NULL or writable; `v` is NULL or a live value.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_val_copy(out: *mut wasm_val_t, v: *const wasm_val_t) {
    // SAFETY: NULL or live, per the contract.
    let copy = unsafe { ffi::borrow(v, "the value") }.map_or_else(wasm_val_t::empty, Element::duplicate);
    // SAFETY: NULL or writable, per the contract.
    unsafe { ffi::write_out(out, copy) };
}
