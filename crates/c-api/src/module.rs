//! Modules: compiling, reflecting, serializing, sharing across threads.

use crate::ffi;
use crate::refs::{RefKind, wasm_module_t, wasm_ref_t};
use crate::store::{store_arg, wasm_store_t};
use crate::types::{
    name_of, wasm_exporttype_t, wasm_exporttype_vec_t, wasm_externtype_t, wasm_importtype_t, wasm_importtype_vec_t,
};
use crate::vec::{CVec, bytes_vec, vec_bytes, wasm_byte_vec_t};
use kiln::{Engine, Module};
use std::sync::Arc;

/// What the C API keeps of a module's binary: where its function bodies
/// are, to give trap frames their function offsets.
#[derive(Debug, Default)]
pub struct ModuleMeta {
    /// Imported functions (defined function `i` is function `imported + i`).
    imported_funcs: u32,
    /// Each defined function's body as a range of module offsets.
    bodies: Vec<(u32, u32)>,
}

impl ModuleMeta {
    /// Reads the function bodies' places from `wasm` (nothing if it is not
    /// a binary module).
    pub fn of(wasm: &[u8]) -> ModuleMeta {
        let mut meta = ModuleMeta::default();
        for payload in wasmparser::Parser::new(0).parse_all(wasm) {
            match payload {
                Ok(wasmparser::Payload::ImportSection(s)) => {
                    meta.imported_funcs += s
                        .into_imports()
                        .flatten()
                        .filter(|i| matches!(i.ty, wasmparser::TypeRef::Func(_) | wasmparser::TypeRef::FuncExact(_)))
                        .count() as u32;
                }
                Ok(wasmparser::Payload::CodeSectionEntry(body)) => {
                    let r = body.range();
                    meta.bodies.push((r.start as u32, r.end as u32));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        meta
    }

    /// The offset of module offset `off` within function `func`'s body,
    /// if `func` is a defined function of this module whose body holds it.
    pub fn func_offset(&self, func: u32, off: u32) -> Option<usize> {
        let (start, end) = *self.bodies.get(func.checked_sub(self.imported_funcs)? as usize)?;
        (start..end).contains(&off).then(|| (off - start) as usize)
    }
}

/// A module and what the C API keeps of it.
pub struct ModuleInner {
    /// The compiled module.
    pub module: Module,
    /// Its function body places.
    pub meta: Arc<ModuleMeta>,
}

/// The shared module behind a `wasm_module_t`.
pub type ModuleData = Arc<ModuleInner>;

/// `wasm_shared_module_t`: a module that may move to another thread.
pub struct wasm_shared_module_t {
    inner: ModuleData,
}

/// Borrows a module argument.
///
/// # Safety
///
/// `m` is NULL or a live object of this library.
pub unsafe fn module_arg<'a>(m: *const wasm_module_t) -> Option<&'a ModuleData> {
    // SAFETY: NULL or live, per the contract.
    match unsafe { crate::refs::arg(m, crate::refs::is::module, "the module") } {
        Some(wasm_ref_t { kind: RefKind::Module(d), .. }) => Some(d),
        _ => None,
    }
}

/// Compiles `bytes` (a binary module, or text when `text` allows) for
/// `engine`.
pub fn compile(engine: &Engine, bytes: &[u8], text: bool) -> anyhow::Result<*mut wasm_module_t> {
    let binary = if text { wat::parse_bytes(bytes)? } else { std::borrow::Cow::Borrowed(bytes) };
    let module = Module::from_binary(engine, &binary)?;
    let inner = Arc::new(ModuleInner { module, meta: Arc::new(ModuleMeta::of(&binary)) });
    Ok(wasm_ref_t::boxed(None, RefKind::Module(inner)))
}

/// `wasm_module_new`: compiles a binary module; NULL if it is invalid
/// (the reason in `kiln_last_error_message`).
///
/// # Safety
///
/// `store` and `binary` are NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_module_new(
    store: *mut wasm_store_t,
    binary: *const wasm_byte_vec_t,
) -> *mut wasm_module_t {
    // SAFETY: NULL or live, per the contract.
    let (store, binary) = unsafe { (store_arg(store), ffi::borrow(binary, "the binary")) };
    let (Some(store), Some(bytes)) = (store, binary.and_then(vec_bytes)) else {
        return std::ptr::null_mut();
    };
    ffi::guard(std::ptr::null_mut(), || {
        compile(&store.engine, bytes, false).unwrap_or_else(|e| {
            crate::error::set_last_error(format!("{e:#}"));
            std::ptr::null_mut()
        })
    })
}

/// `wasm_module_validate`: whether `binary` is a valid module for the
/// store's engine (false for NULL arguments).
///
/// # Safety
///
/// `store` and `binary` are NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_module_validate(store: *mut wasm_store_t, binary: *const wasm_byte_vec_t) -> bool {
    // SAFETY: NULL or live, per the contract.
    let (store, binary) = unsafe { (store_arg(store), ffi::borrow(binary, "the binary")) };
    let (Some(store), Some(bytes)) = (store, binary.and_then(vec_bytes)) else {
        return false;
    };
    ffi::guard(false, || match Module::validate(&store.engine, bytes) {
        Ok(()) => true,
        Err(e) => {
            crate::error::set_last_error(format!("{e:#}"));
            false
        }
    })
}

/// `wasm_module_imports`: the imports in order (tags, which the standard
/// cannot describe, are left out).
///
/// # Safety
///
/// `module` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_module_imports(module: *const wasm_module_t, out: *mut wasm_importtype_vec_t) {
    // SAFETY: NULL or live, per the contract.
    let v = match unsafe { module_arg(module) } {
        Some(m) => ffi::guard_with(Vec::new, || {
            m.module
                .imports()
                .filter_map(|i| {
                    let ty = wasm_externtype_t::from_kiln(&i.ty())?;
                    Some(Some(Box::new(wasm_importtype_t {
                        module: name_of(i.module()),
                        name: name_of(i.name()),
                        ty: Box::new(ty),
                    })))
                })
                .collect()
        }),
        None => Vec::new(),
    };
    // SAFETY: NULL or writable, per the contract.
    unsafe { ffi::write_out(out, CVec::from_vec(v)) };
}

/// `wasm_module_exports`: the exports in order (tags left out).
///
/// # Safety
///
/// `module` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_module_exports(module: *const wasm_module_t, out: *mut wasm_exporttype_vec_t) {
    // SAFETY: NULL or live, per the contract.
    let v = match unsafe { module_arg(module) } {
        Some(m) => ffi::guard_with(Vec::new, || {
            m.module
                .exports()
                .filter_map(|e| {
                    let ty = wasm_externtype_t::from_kiln(&e.ty())?;
                    Some(Some(Box::new(wasm_exporttype_t { name: name_of(e.name()), ty: Box::new(ty) })))
                })
                .collect()
        }),
        None => Vec::new(),
    };
    // SAFETY: NULL or writable, per the contract.
    unsafe { ffi::write_out(out, CVec::from_vec(v)) };
}

/// `wasm_module_serialize`: the compiled module as bytes (empty on
/// failure, the reason in `kiln_last_error_message`).
///
/// # Safety
///
/// `module` is NULL or live; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_module_serialize(module: *const wasm_module_t, out: *mut wasm_byte_vec_t) {
    // SAFETY: NULL or live, per the contract.
    let bytes = match unsafe { module_arg(module) } {
        Some(m) => ffi::guard(None, || match m.module.serialize() {
            Ok(b) => Some(b),
            Err(e) => {
                crate::error::set_last_error(format!("{e:#}"));
                None
            }
        }),
        None => None,
    };
    let v = bytes.map_or_else(CVec::empty, |b| bytes_vec(&b));
    // SAFETY: NULL or writable, per the contract.
    unsafe { ffi::write_out(out, v) };
}

/// Loads serialized compiled code for `engine`.
///
/// # Safety
///
/// `bytes` came from `wasm_module_serialize` (or `kiln_module_serialize`)
/// of a build of this library and was not altered: it is native code,
/// which is run as it is.
pub unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> anyhow::Result<*mut wasm_module_t> {
    // SAFETY: the bytes are a trusted artifact, per this function's contract.
    let module = unsafe { Module::deserialize(engine, bytes) }?;
    let inner = Arc::new(ModuleInner { module, meta: Arc::new(ModuleMeta::default()) });
    Ok(wasm_ref_t::boxed(None, RefKind::Module(inner)))
}

/// `wasm_module_deserialize`: a module from `wasm_module_serialize`'s
/// bytes; NULL if they are not an artifact of this build and settings.
///
/// # Safety
///
/// `store` and `bytes` are NULL or live, and the bytes are trusted: see
/// [`deserialize`] (the artifact's native code is run as it is).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_module_deserialize(
    store: *mut wasm_store_t,
    bytes: *const wasm_byte_vec_t,
) -> *mut wasm_module_t {
    // SAFETY: NULL or live, per the contract.
    let (store, bytes) = unsafe { (store_arg(store), ffi::borrow(bytes, "the bytes")) };
    let (Some(store), Some(bytes)) = (store, bytes.and_then(vec_bytes)) else {
        return std::ptr::null_mut();
    };
    ffi::guard(std::ptr::null_mut(), || {
        // SAFETY: the caller vouches for the bytes, per this function's contract.
        unsafe { deserialize(&store.engine, bytes) }.unwrap_or_else(|e| {
            crate::error::set_last_error(format!("{e:#}"));
            std::ptr::null_mut()
        })
    })
}

/// `wasm_module_share`: a handle on the module that may be sent to
/// another thread (NULL for NULL).
///
/// # Safety
///
/// `module` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_module_share(module: *const wasm_module_t) -> *mut wasm_shared_module_t {
    // SAFETY: NULL or live, per the contract.
    unsafe { module_arg(module) }
        .map_or(std::ptr::null_mut(), |m| ffi::into_raw(wasm_shared_module_t { inner: m.clone() }))
}

/// `wasm_module_obtain`: the shared module as a module of `store`'s
/// thread; NULL if the store's engine is not the module's.
///
/// # Safety
///
/// `store` and `shared` are NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_module_obtain(
    store: *mut wasm_store_t,
    shared: *const wasm_shared_module_t,
) -> *mut wasm_module_t {
    // SAFETY: NULL or live, per the contract.
    let (store, shared) = unsafe { (store_arg(store), ffi::borrow(shared, "the shared module")) };
    let (Some(store), Some(shared)) = (store, shared) else {
        return std::ptr::null_mut();
    };
    if !Engine::same(&store.engine, shared.inner.module.engine()) {
        crate::error::set_last_error("the module belongs to another engine".to_string());
        return std::ptr::null_mut();
    }
    wasm_ref_t::boxed(None, RefKind::Module(shared.inner.clone()))
}

/// `wasm_shared_module_delete`.
///
/// # Safety
///
/// NULL or a shared module of this library owned by the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_shared_module_delete(shared: *mut wasm_shared_module_t) {
    // SAFETY: NULL or ours and owned, per the contract.
    drop(unsafe { ffi::from_raw(shared) });
}
