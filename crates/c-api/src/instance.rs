//! Instances.

use crate::ffi;
use crate::refs::{RefKind, wasm_instance_t, wasm_ref_t, wasm_trap_t};
use crate::store::{StoreRef, store_arg, wasm_store_t};
use crate::trap::TrapData;
use kiln::{Engine, Extern, Instance};
use std::rc::Rc;
use std::sync::Arc;

/// The Kiln extern of an import object of `store`.
fn import_of(r: Option<&wasm_ref_t>, i: usize, store: &StoreRef) -> Result<Extern, String> {
    let r = r.ok_or_else(|| format!("import {i} is NULL"))?;
    if !r.store.as_ref().is_some_and(|s| Rc::ptr_eq(s, store)) {
        return Err(format!("import {i} belongs to another store"));
    }
    Ok(match &r.kind {
        RefKind::Func(f) => Extern::Func(*f),
        RefKind::Global(g) => Extern::Global(*g),
        RefKind::Table(t) => Extern::Table(*t),
        RefKind::Memory(m) => Extern::Memory(*m),
        _ => return Err(format!("import {i} is not an external")),
    })
}

/// Instantiates; the trap or error message on failure.
pub fn instantiate(
    store: &StoreRef,
    module: &crate::module::ModuleData,
    imports: &[Option<Box<wasm_ref_t>>],
) -> Result<*mut wasm_instance_t, Arc<TrapData>> {
    if !Engine::same(&store.engine, module.module.engine()) {
        return Err(TrapData::message("the module belongs to another engine"));
    }
    let externs = imports
        .iter()
        .enumerate()
        .map(|(i, r)| import_of(r.as_deref(), i, store))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TrapData::message)?;
    let r = store.with(|mut ctx| {
        let r = Instance::new(&mut ctx, &module.module, &externs);
        let modules = &mut ctx.data_mut().modules;
        if !modules.iter().any(|m| Arc::ptr_eq(m, &module.meta)) {
            modules.push(module.meta.clone());
        }
        r.map_err(|e| crate::trap::from_error(&e, &ctx.data().modules))
    });
    match r {
        None => Err(TrapData::message("the store is in use")),
        Some(Err(t)) => Err(t),
        Some(Ok(i)) => Ok(wasm_ref_t::boxed(Some(store.clone()), RefKind::Instance(i))),
    }
}

/// `wasm_instance_new`: instantiates `module` with `imports` in the
/// module's import order. On failure returns NULL and, if `trap` is not
/// NULL, stores an `own` trap in it: the start function's trap, or a trap
/// with the reason it could not be instantiated (a missing or mismatched
/// import, an import of another store). `*trap` is set to NULL on success.
///
/// # Safety
///
/// `store`, `module` and `imports` are NULL or live; `trap` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_instance_new(
    store: *mut wasm_store_t,
    module: *const crate::refs::wasm_module_t,
    imports: *const crate::refs::wasm_extern_vec_t,
    trap: *mut *mut wasm_trap_t,
) -> *mut wasm_instance_t {
    // SAFETY: NULL or live, per the contract.
    let (store, module) = unsafe { (store_arg(store), crate::module::module_arg(module)) };
    // SAFETY: NULL or live, per the contract.
    let imports = match unsafe { ffi::optional(imports) } {
        None => Some(&[][..]),
        Some(v) => v.as_slice(),
    };
    let r = match (store, module, imports) {
        (Some(store), Some(module), Some(imports)) => {
            ffi::guard(Err(TrapData::message("internal error")), || instantiate(store, module, imports))
        }
        _ => Err(TrapData::message("wasm_instance_new: NULL argument")),
    };
    let (instance, t) = match r {
        Ok(i) => (i, std::ptr::null_mut()),
        Err(t) => {
            crate::error::set_last_error(t.message.clone());
            (std::ptr::null_mut(), crate::trap::boxed(t))
        }
    };
    if trap.is_null() {
        // SAFETY: `t` is NULL or the trap just made, which nobody else has.
        drop(unsafe { ffi::from_raw(t) });
    } else {
        // SAFETY: `trap` is writable, per the contract.
        unsafe { ffi::write_out(trap, t) };
    }
    instance
}

/// `wasm_instance_exports`: the exports in the module's order (tags left
/// out); empty for NULL.
///
/// # Safety
///
/// `instance` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_instance_exports(
    instance: *const wasm_instance_t,
    out: *mut crate::refs::wasm_extern_vec_t,
) {
    // SAFETY: NULL or live, per the contract.
    let r = unsafe { crate::refs::arg(instance, crate::refs::is::instance, "the instance") };
    let v = match r {
        Some(wasm_ref_t { store: Some(store), kind: RefKind::Instance(i), .. }) => ffi::guard(Vec::new(), || {
            store
                .with(|ctx| i.exports(ctx))
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(_, e)| {
                    let kind = match e {
                        Extern::Func(f) => RefKind::Func(f),
                        Extern::Global(g) => RefKind::Global(g),
                        Extern::Table(t) => RefKind::Table(t),
                        Extern::Memory(m) => RefKind::Memory(m),
                        _ => return None,
                    };
                    Some(Some(Box::new(wasm_ref_t::new(Some(store.clone()), kind))))
                })
                .collect()
        }),
        _ => Vec::new(),
    };
    // SAFETY: NULL or writable, per the contract.
    unsafe { ffi::write_out(out, crate::vec::CVec::from_vec(v)) };
}
