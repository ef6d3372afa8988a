//! Globals, tables, memories, and externals (the four of them seen as one).

use crate::ffi;
use crate::refs::{RefKind, is, ref_casts, wasm_extern_t, wasm_global_t, wasm_memory_t, wasm_ref_t, wasm_table_t};
use crate::store::{StoreData, StoreRef, store_arg, wasm_store_t};
use crate::types::{extern_kind, wasm_externtype_t, wasm_globaltype_t, wasm_memorytype_t, wasm_tabletype_t};
use crate::val::{from_c, ref_to_val, to_c, wasm_val_t};
use crate::vec::Element;
use kiln::{ExternType, Global, Memory, StoreContextMut, Table};

ref_casts!(is::func, wasm_func_as_extern, wasm_func_as_extern_const, wasm_extern_as_func, wasm_extern_as_func_const);
ref_casts!(
    is::global,
    wasm_global_as_extern,
    wasm_global_as_extern_const,
    wasm_extern_as_global,
    wasm_extern_as_global_const
);
ref_casts!(
    is::table,
    wasm_table_as_extern,
    wasm_table_as_extern_const,
    wasm_extern_as_table,
    wasm_extern_as_table_const
);
ref_casts!(
    is::memory,
    wasm_memory_as_extern,
    wasm_memory_as_extern_const,
    wasm_extern_as_memory,
    wasm_extern_as_memory_const
);

/// Runs `f` on object `p` (of the kind `test` accepts) with its store;
/// `fallback` for NULL, another kind, a panic or a busy store.
///
/// # Safety
///
/// `p` is NULL or a live object of this library.
unsafe fn with_object<R>(
    p: *const wasm_ref_t,
    test: fn(&wasm_ref_t) -> bool,
    what: &str,
    fallback: R,
    f: impl FnOnce(&RefKind, &StoreRef, StoreContextMut<'_, StoreData>) -> R,
) -> R {
    // SAFETY: NULL or live, per the contract.
    let Some(r) = (unsafe { crate::refs::arg(p, test, what) }) else {
        return fallback;
    };
    let Some(store) = r.store() else { return fallback };
    ffi::guard(None, || store.with(|ctx| f(&r.kind, store, ctx))).unwrap_or(fallback)
}

fn fail<T>(msg: impl std::fmt::Display, fallback: T) -> T {
    crate::error::set_last_error(msg.to_string());
    fallback
}

/// `wasm_global_new`: NULL for NULL arguments, or an initial value of the
/// wrong kind or of another store.
///
/// # Safety
///
/// Each argument is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_global_new(
    store: *mut wasm_store_t,
    ty: *const wasm_globaltype_t,
    val: *const wasm_val_t,
) -> *mut wasm_global_t {
    // SAFETY: NULL or live, per the contract.
    let (store, ty, val) = unsafe { (store_arg(store), ffi::borrow(ty, "the type"), ffi::borrow(val, "the value")) };
    let (Some(store), Some(ty), Some(val)) = (store, ty, val) else {
        return std::ptr::null_mut();
    };
    let gt = match ty.to_global() {
        Ok(t) => t,
        Err(e) => return fail(e, std::ptr::null_mut()),
    };
    let v = match from_c(val, gt.content(), store) {
        Ok(v) => v,
        Err(e) => return fail(e, std::ptr::null_mut()),
    };
    ffi::guard(std::ptr::null_mut(), || match store.with(|ctx| Global::new(ctx, gt, v)) {
        Some(Ok(g)) => wasm_ref_t::boxed(Some(store.clone()), RefKind::Global(g)),
        Some(Err(e)) => fail(format!("{e:#}"), std::ptr::null_mut()),
        None => std::ptr::null_mut(),
    })
}

/// `wasm_global_type` (NULL for NULL).
///
/// # Safety
///
/// `g` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_global_type(g: *const wasm_global_t) -> *mut wasm_globaltype_t {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_object(g, is::global, "the global", std::ptr::null_mut(), |k, _, ctx| match k {
            RefKind::Global(g) => wasm_externtype_t::from_kiln(&ExternType::Global(g.ty(&ctx)))
                .map_or(std::ptr::null_mut(), ffi::into_raw),
            _ => std::ptr::null_mut(),
        })
    }
}

/// `wasm_global_get`: the value (an `own` value) into `out`; an `i32` 0
/// for NULL.
///
/// # Safety
///
/// `g` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_global_get(g: *const wasm_global_t, out: *mut wasm_val_t) {
    // SAFETY: NULL or live, per the contract.
    let v = unsafe {
        with_object(g, is::global, "the global", wasm_val_t::empty(), |k, store, ctx| match k {
            RefKind::Global(g) => to_c(&g.get(ctx), store).unwrap_or_else(|e| fail(e, wasm_val_t::empty())),
            _ => wasm_val_t::empty(),
        })
    };
    // SAFETY: NULL or writable, per the contract.
    unsafe { ffi::write_out(out, v) };
}

/// `wasm_global_set`: sets the value; ignored (with the last error set)
/// for NULL, a constant global, or a value of the wrong kind or store.
///
/// # Safety
///
/// `g` and `val` are NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_global_set(g: *mut wasm_global_t, val: *const wasm_val_t) {
    // SAFETY: NULL or live, per the contract.
    let Some(val) = (unsafe { ffi::borrow(val, "the value") }) else { return };
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_object(g, is::global, "the global", (), |k, store, mut ctx| {
            if let RefKind::Global(g) = k {
                let r = from_c(val, g.ty(&ctx).content(), store)
                    .map_err(anyhow::Error::msg)
                    .and_then(|v| g.set(&mut ctx, v));
                if let Err(e) = r {
                    fail(format!("{e:#}"), ());
                }
            }
        })
    }
}

/// `wasm_table_new`: NULL for NULL arguments, an invalid type, or an
/// initial reference of the wrong kind or store (`init` NULL: null).
///
/// # Safety
///
/// `store` and `ty` are NULL or live; `init` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_table_new(
    store: *mut wasm_store_t,
    ty: *const wasm_tabletype_t,
    init: *mut wasm_ref_t,
) -> *mut wasm_table_t {
    // SAFETY: NULL or live, per the contract.
    let (store, ty) = unsafe { (store_arg(store), ffi::borrow(ty, "the type")) };
    let (Some(store), Some(ty)) = (store, ty) else {
        return std::ptr::null_mut();
    };
    let tt = match ty.to_table() {
        Ok(t) => t,
        Err(e) => return fail(e, std::ptr::null_mut()),
    };
    // SAFETY: NULL or live, per the contract.
    let init = match ref_to_val(unsafe { ffi::optional(init) }, tt.element(), store) {
        Ok(v) => v,
        Err(e) => return fail(e, std::ptr::null_mut()),
    };
    ffi::guard(std::ptr::null_mut(), || match store.with(|ctx| Table::new(ctx, tt, init)) {
        Some(Ok(t)) => wasm_ref_t::boxed(Some(store.clone()), RefKind::Table(t)),
        Some(Err(e)) => fail(format!("{e:#}"), std::ptr::null_mut()),
        None => std::ptr::null_mut(),
    })
}

/// `wasm_table_type` (NULL for NULL).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_table_type(t: *const wasm_table_t) -> *mut wasm_tabletype_t {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_object(t, is::table, "the table", std::ptr::null_mut(), |k, _, ctx| match k {
            RefKind::Table(t) => {
                wasm_externtype_t::from_kiln(&ExternType::Table(t.ty(&ctx))).map_or(std::ptr::null_mut(), ffi::into_raw)
            }
            _ => std::ptr::null_mut(),
        })
    }
}

/// `wasm_table_get`: an `own` reference to element `index`; NULL for a
/// null element, an index out of bounds, or NULL.
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_table_get(t: *const wasm_table_t, index: u32) -> *mut wasm_ref_t {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_object(t, is::table, "the table", std::ptr::null_mut(), |k, store, ctx| {
            let RefKind::Table(t) = k else { return std::ptr::null_mut() };
            match t.get(ctx, u64::from(index)) {
                Some(v) => to_c(&v, store).map_or(std::ptr::null_mut(), |v| v.reference()),
                None => fail("table index out of bounds", std::ptr::null_mut()),
            }
        })
    }
}

/// `wasm_table_set`: false for an index out of bounds, a reference of the
/// wrong kind or store, or NULL.
///
/// # Safety
///
/// `t` is NULL or live; `r` is NULL (null) or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_table_set(t: *mut wasm_table_t, index: u32, r: *mut wasm_ref_t) -> bool {
    // SAFETY: NULL or live, per the contract.
    let r = unsafe { ffi::optional(r) };
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_object(t, is::table, "the table", false, |k, store, mut ctx| {
            let RefKind::Table(t) = k else { return false };
            let res = ref_to_val(r, t.ty(&ctx).element(), store)
                .map_err(anyhow::Error::msg)
                .and_then(|v| t.set(&mut ctx, u64::from(index), v));
            res.map_err(|e| fail(format!("{e:#}"), ())).is_ok()
        })
    }
}

/// `wasm_table_size` (0 for NULL; the largest `u32` if larger).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_table_size(t: *const wasm_table_t) -> u32 {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_object(t, is::table, "the table", 0, |k, _, ctx| match k {
            RefKind::Table(t) => u32::try_from(t.size(&ctx)).unwrap_or(u32::MAX),
            _ => 0,
        })
    }
}

/// `wasm_table_grow`: grows by `delta` elements set to `init`; false if
/// the table cannot grow so, for a bad `init`, or NULL.
///
/// # Safety
///
/// `t` is NULL or live; `init` is NULL (null) or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_table_grow(t: *mut wasm_table_t, delta: u32, init: *mut wasm_ref_t) -> bool {
    // SAFETY: NULL or live, per the contract.
    let init = unsafe { ffi::optional(init) };
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_object(t, is::table, "the table", false, |k, store, mut ctx| {
            let RefKind::Table(t) = k else { return false };
            let res = ref_to_val(init, t.ty(&ctx).element(), store)
                .map_err(anyhow::Error::msg)
                .and_then(|v| t.grow(&mut ctx, u64::from(delta), v));
            res.map_err(|e| fail(format!("{e:#}"), ())).is_ok()
        })
    }
}

/// `wasm_memory_new`: NULL for NULL arguments or a memory that cannot be
/// made.
///
/// # Safety
///
/// `store` and `ty` are NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_memory_new(store: *mut wasm_store_t, ty: *const wasm_memorytype_t) -> *mut wasm_memory_t {
    // SAFETY: NULL or live, per the contract.
    let (store, ty) = unsafe { (store_arg(store), ffi::borrow(ty, "the type")) };
    let (Some(store), Some(ty)) = (store, ty) else {
        return std::ptr::null_mut();
    };
    let mt = match ty.to_memory() {
        Ok(t) => t,
        Err(e) => return fail(e, std::ptr::null_mut()),
    };
    ffi::guard(std::ptr::null_mut(), || match store.with(|ctx| Memory::new(ctx, mt)) {
        Some(Ok(m)) => wasm_ref_t::boxed(Some(store.clone()), RefKind::Memory(m)),
        Some(Err(e)) => fail(format!("{e:#}"), std::ptr::null_mut()),
        None => std::ptr::null_mut(),
    })
}

/// `wasm_memory_type` (NULL for NULL).
///
/// # Safety
///
/// `m` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_memory_type(m: *const wasm_memory_t) -> *mut wasm_memorytype_t {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_object(m, is::memory, "the memory", std::ptr::null_mut(), |k, _, ctx| match k {
            RefKind::Memory(m) => wasm_externtype_t::from_kiln(&ExternType::Memory(m.ty(&ctx)))
                .map_or(std::ptr::null_mut(), ffi::into_raw),
            _ => std::ptr::null_mut(),
        })
    }
}

/// `wasm_memory_data`: the first byte of the memory (NULL for NULL); valid
/// until the memory grows.
///
/// # Safety
///
/// `m` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_memory_data(m: *mut wasm_memory_t) -> *mut std::ffi::c_char {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_object(m, is::memory, "the memory", std::ptr::null_mut(), |k, _, ctx| match k {
            RefKind::Memory(m) => m.data_mut(ctx).as_mut_ptr().cast(),
            _ => std::ptr::null_mut(),
        })
    }
}

/// `wasm_memory_data_size`: its size in bytes (0 for NULL).
///
/// # Safety
///
/// `m` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_memory_data_size(m: *const wasm_memory_t) -> usize {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_object(m, is::memory, "the memory", 0, |k, _, ctx| match k {
            RefKind::Memory(m) => m.data_size(&ctx),
            _ => 0,
        })
    }
}

/// `wasm_memory_size`: its size in pages (0 for NULL).
///
/// # Safety
///
/// `m` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_memory_size(m: *const wasm_memory_t) -> u32 {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_object(m, is::memory, "the memory", 0, |k, _, ctx| match k {
            RefKind::Memory(m) => u32::try_from(m.size(&ctx)).unwrap_or(u32::MAX),
            _ => 0,
        })
    }
}

/// `wasm_memory_grow`: grows by `delta` pages; false if it cannot, or NULL.
///
/// # Safety
///
/// `m` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_memory_grow(m: *mut wasm_memory_t, delta: u32) -> bool {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_object(m, is::memory, "the memory", false, |k, _, mut ctx| match k {
            RefKind::Memory(m) => m.grow(&mut ctx, u64::from(delta)).map_err(|e| fail(format!("{e:#}"), ())).is_ok(),
            _ => false,
        })
    }
}

/// `wasm_extern_kind` (`WASM_EXTERN_FUNC` for NULL).
///
/// # Safety
///
/// `e` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_extern_kind(e: *const wasm_extern_t) -> u8 {
    // SAFETY: NULL or live, per the contract.
    match unsafe { crate::refs::arg(e, is::extern_, "the external") }.map(|r| &r.kind) {
        Some(RefKind::Global(_)) => extern_kind::GLOBAL,
        Some(RefKind::Table(_)) => extern_kind::TABLE,
        Some(RefKind::Memory(_)) => extern_kind::MEMORY,
        _ => extern_kind::FUNC,
    }
}

/// `wasm_extern_type`: its current type (NULL for NULL).
///
/// # Safety
///
/// `e` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_extern_type(e: *const wasm_extern_t) -> *mut wasm_externtype_t {
    // SAFETY: NULL or live, per the contract.
    unsafe {
        with_object(e, is::extern_, "the external", std::ptr::null_mut(), |k, _, ctx| {
            let ty = match k {
                RefKind::Func(f) => ExternType::Func(f.ty(&ctx)),
                RefKind::Global(g) => ExternType::Global(g.ty(&ctx)),
                RefKind::Table(t) => ExternType::Table(t.ty(&ctx)),
                RefKind::Memory(m) => ExternType::Memory(m.ty(&ctx)),
                _ => return std::ptr::null_mut(),
            };
            wasm_externtype_t::from_kiln(&ty).map_or(std::ptr::null_mut(), ffi::into_raw)
        })
    }
}
