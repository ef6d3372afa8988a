//! Type representations: value, function, global, table, memory, extern,
//! import and export types.
//!
//! The four extern types share one Rust type, [`wasm_externtype_t`], so
//! that `wasm_functype_as_externtype` and its inverse are the same pointer
//! (as the standard requires of these casts).

use crate::ffi;
use crate::vec::{CVec, declare_vec, wasm_name_t};
use kiln::{ExternType, FuncType, GlobalType, MemoryType, Mutability, TableType, ValType};
use std::ffi::c_char;

/// `wasm_valkind_t` values.
pub mod kind {
    /// `WASM_I32`.
    pub const I32: u8 = 0;
    /// `WASM_I64`.
    pub const I64: u8 = 1;
    /// `WASM_F32`.
    pub const F32: u8 = 2;
    /// `WASM_F64`.
    pub const F64: u8 = 3;
    /// `KILN_V128` (kiln.h): a `v128`, which the standard has no kind for.
    pub const V128: u8 = 4;
    /// `WASM_EXTERNREF`.
    pub const EXTERNREF: u8 = 128;
    /// `WASM_FUNCREF`.
    pub const FUNCREF: u8 = 129;
    /// `KILN_EXNREF` (kiln.h).
    pub const EXNREF: u8 = 130;
    /// `KILN_ANYREF` (kiln.h).
    pub const ANYREF: u8 = 131;
}

/// `wasm_externkind_t` values.
pub mod extern_kind {
    /// `WASM_EXTERN_FUNC`.
    pub const FUNC: u8 = 0;
    /// `WASM_EXTERN_GLOBAL`.
    pub const GLOBAL: u8 = 1;
    /// `WASM_EXTERN_TABLE`.
    pub const TABLE: u8 = 2;
    /// `WASM_EXTERN_MEMORY`.
    pub const MEMORY: u8 = 3;
}

/// The kind of a Kiln value type.
pub fn valkind(t: ValType) -> u8 {
    match t {
        ValType::I32 => kind::I32,
        ValType::I64 => kind::I64,
        ValType::F32 => kind::F32,
        ValType::F64 => kind::F64,
        ValType::V128 => kind::V128,
        ValType::FuncRef => kind::FUNCREF,
        ValType::ExternRef => kind::EXTERNREF,
        ValType::ExnRef => kind::EXNREF,
        ValType::AnyRef => kind::ANYREF,
    }
}

/// The Kiln value type of a kind, if it is one.
pub fn valtype_of(k: u8) -> Option<ValType> {
    Some(match k {
        kind::I32 => ValType::I32,
        kind::I64 => ValType::I64,
        kind::F32 => ValType::F32,
        kind::F64 => ValType::F64,
        kind::V128 => ValType::V128,
        kind::FUNCREF => ValType::FuncRef,
        kind::EXTERNREF => ValType::ExternRef,
        kind::EXNREF => ValType::ExnRef,
        kind::ANYREF => ValType::AnyRef,
        _ => return None,
    })
}

/// `wasm_valtype_t`.
#[derive(Clone)]
pub struct wasm_valtype_t {
    pub(crate) kind: u8,
}

/// `wasm_limits_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct wasm_limits_t {
    /// Minimum size.
    pub min: u32,
    /// Maximum size (`0xffffffff`: none).
    pub max: u32,
}

/// What an extern type is.
#[derive(Clone)]
pub enum ExternTypeKind {
    /// A function type.
    Func {
        /// Parameter types.
        params: wasm_valtype_vec_t,
        /// Result types.
        results: wasm_valtype_vec_t,
    },
    /// A global type.
    Global {
        /// Its value type.
        content: Box<wasm_valtype_t>,
        /// `WASM_CONST` or `WASM_VAR`.
        mutability: u8,
    },
    /// A table type.
    Table {
        /// Its element type.
        element: Box<wasm_valtype_t>,
        /// Its limits.
        limits: wasm_limits_t,
    },
    /// A memory type.
    Memory {
        /// Its limits, in pages.
        limits: wasm_limits_t,
    },
}

/// `wasm_externtype_t`, and also `wasm_functype_t`, `wasm_globaltype_t`,
/// `wasm_tabletype_t` and `wasm_memorytype_t`.
#[derive(Clone)]
pub struct wasm_externtype_t {
    pub(crate) which: ExternTypeKind,
}

/// `wasm_functype_t`.
pub type wasm_functype_t = wasm_externtype_t;
/// `wasm_globaltype_t`.
pub type wasm_globaltype_t = wasm_externtype_t;
/// `wasm_tabletype_t`.
pub type wasm_tabletype_t = wasm_externtype_t;
/// `wasm_memorytype_t`.
pub type wasm_memorytype_t = wasm_externtype_t;

fn limits(min: u64, max: Option<u64>) -> wasm_limits_t {
    let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    wasm_limits_t { min: clamp(min), max: max.map_or(u32::MAX, clamp) }
}

fn valtypes(ts: impl Iterator<Item = ValType>) -> wasm_valtype_vec_t {
    CVec::from_vec(ts.map(|t| Some(Box::new(wasm_valtype_t { kind: valkind(t) }))).collect())
}

impl wasm_externtype_t {
    /// The C form of a Kiln function type.
    pub fn from_func(ty: &FuncType) -> Self {
        wasm_externtype_t {
            which: ExternTypeKind::Func { params: valtypes(ty.params()), results: valtypes(ty.results()) },
        }
    }

    /// The C form of a Kiln extern type (`None` for a tag, which the
    /// standard cannot describe).
    pub fn from_kiln(ty: &ExternType) -> Option<Self> {
        let which = match ty {
            ExternType::Func(f) => return Some(Self::from_func(f)),
            ExternType::Global(g) => ExternTypeKind::Global {
                content: Box::new(wasm_valtype_t { kind: valkind(g.content()) }),
                mutability: u8::from(g.mutability() == Mutability::Var),
            },
            ExternType::Table(t) => ExternTypeKind::Table {
                element: Box::new(wasm_valtype_t { kind: valkind(t.element()) }),
                limits: limits(t.minimum(), t.maximum()),
            },
            ExternType::Memory(m) => ExternTypeKind::Memory { limits: limits(m.minimum(), m.maximum()) },
            ExternType::Tag(_) => return None,
        };
        Some(wasm_externtype_t { which })
    }

    /// The Kiln function type, if this is a valid function type.
    pub fn to_func(&self) -> Result<FuncType, String> {
        let ExternTypeKind::Func { params, results } = &self.which else {
            return Err("not a function type".to_string());
        };
        let conv = |v: &wasm_valtype_vec_t| -> Result<Vec<ValType>, String> {
            v.as_slice()
                .ok_or("a value type vector has NULL data")?
                .iter()
                .map(|t| {
                    let t = t.as_ref().ok_or("a value type is NULL")?;
                    valtype_of(t.kind).ok_or_else(|| format!("unknown value kind {}", t.kind))
                })
                .collect()
        };
        Ok(FuncType::new(conv(params)?, conv(results)?))
    }

    /// The Kiln global type, if this is a valid global type.
    pub fn to_global(&self) -> Result<GlobalType, String> {
        match &self.which {
            ExternTypeKind::Global { content, mutability } => {
                let t = valtype_of(content.kind).ok_or("unknown value kind")?;
                let m = match mutability {
                    0 => Mutability::Const,
                    1 => Mutability::Var,
                    _ => return Err(format!("unknown mutability {mutability}")),
                };
                Ok(GlobalType::new(t, m))
            }
            _ => Err("not a global type".to_string()),
        }
    }

    /// The Kiln table type, if this is a valid table type.
    pub fn to_table(&self) -> Result<TableType, String> {
        match &self.which {
            ExternTypeKind::Table { element, limits } => {
                let t =
                    valtype_of(element.kind).filter(ValType::is_ref).ok_or("a table's elements must be references")?;
                Ok(TableType::new(t, limits.min, (limits.max != u32::MAX).then_some(limits.max)))
            }
            _ => Err("not a table type".to_string()),
        }
    }

    /// The Kiln memory type, if this is a valid memory type.
    pub fn to_memory(&self) -> Result<MemoryType, String> {
        match &self.which {
            ExternTypeKind::Memory { limits } => {
                Ok(MemoryType::new(limits.min, (limits.max != u32::MAX).then_some(limits.max)))
            }
            _ => Err("not a memory type".to_string()),
        }
    }

    fn extern_kind(&self) -> u8 {
        match self.which {
            ExternTypeKind::Func { .. } => extern_kind::FUNC,
            ExternTypeKind::Global { .. } => extern_kind::GLOBAL,
            ExternTypeKind::Table { .. } => extern_kind::TABLE,
            ExternTypeKind::Memory { .. } => extern_kind::MEMORY,
        }
    }
}

declare_vec!(
    wasm_valtype_vec_t,
    Option<Box<wasm_valtype_t>>,
    wasm_valtype_vec_new_empty,
    wasm_valtype_vec_new_uninitialized,
    wasm_valtype_vec_new,
    wasm_valtype_vec_copy,
    wasm_valtype_vec_delete
);
declare_vec!(
    wasm_functype_vec_t,
    Option<Box<wasm_functype_t>>,
    wasm_functype_vec_new_empty,
    wasm_functype_vec_new_uninitialized,
    wasm_functype_vec_new,
    wasm_functype_vec_copy,
    wasm_functype_vec_delete
);
declare_vec!(
    wasm_globaltype_vec_t,
    Option<Box<wasm_globaltype_t>>,
    wasm_globaltype_vec_new_empty,
    wasm_globaltype_vec_new_uninitialized,
    wasm_globaltype_vec_new,
    wasm_globaltype_vec_copy,
    wasm_globaltype_vec_delete
);
declare_vec!(
    wasm_tabletype_vec_t,
    Option<Box<wasm_tabletype_t>>,
    wasm_tabletype_vec_new_empty,
    wasm_tabletype_vec_new_uninitialized,
    wasm_tabletype_vec_new,
    wasm_tabletype_vec_copy,
    wasm_tabletype_vec_delete
);
declare_vec!(
    wasm_memorytype_vec_t,
    Option<Box<wasm_memorytype_t>>,
    wasm_memorytype_vec_new_empty,
    wasm_memorytype_vec_new_uninitialized,
    wasm_memorytype_vec_new,
    wasm_memorytype_vec_copy,
    wasm_memorytype_vec_delete
);
declare_vec!(
    wasm_externtype_vec_t,
    Option<Box<wasm_externtype_t>>,
    wasm_externtype_vec_new_empty,
    wasm_externtype_vec_new_uninitialized,
    wasm_externtype_vec_new,
    wasm_externtype_vec_copy,
    wasm_externtype_vec_delete
);
declare_vec!(
    wasm_importtype_vec_t,
    Option<Box<wasm_importtype_t>>,
    wasm_importtype_vec_new_empty,
    wasm_importtype_vec_new_uninitialized,
    wasm_importtype_vec_new,
    wasm_importtype_vec_copy,
    wasm_importtype_vec_delete
);
declare_vec!(
    wasm_exporttype_vec_t,
    Option<Box<wasm_exporttype_t>>,
    wasm_exporttype_vec_new_empty,
    wasm_exporttype_vec_new_uninitialized,
    wasm_exporttype_vec_new,
    wasm_exporttype_vec_copy,
    wasm_exporttype_vec_delete
);

/// Declares `_delete` and `_copy` of a type object.
macro_rules! type_own_copy {
    ($t:ty, $delete:ident, $copy:ident) => {
        #[doc = concat!("`", stringify!($delete), "`.")]
        ///
        /// # Safety
        ///
        /// The argument is NULL or an object of this library owned by the
        /// caller.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $delete(p: *mut $t) {
            // SAFETY: NULL or ours and owned, per the contract.
            drop(unsafe { ffi::from_raw(p) });
        }

        #[doc = concat!("`", stringify!($copy), "`: NULL for NULL.")]
        ///
        /// # Safety
        ///
        /// The argument is NULL or a live object of this library.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $copy(p: *const $t) -> *mut $t {
            // SAFETY: NULL or live, per the contract.
            match unsafe { ffi::borrow(p, "the type") } {
                Some(t) => ffi::into_raw(t.clone()),
                None => std::ptr::null_mut(),
            }
        }
    };
}

type_own_copy!(wasm_valtype_t, wasm_valtype_delete, wasm_valtype_copy);
type_own_copy!(wasm_functype_t, wasm_functype_delete, wasm_functype_copy);
type_own_copy!(wasm_globaltype_t, wasm_globaltype_delete, wasm_globaltype_copy);
type_own_copy!(wasm_tabletype_t, wasm_tabletype_delete, wasm_tabletype_copy);
type_own_copy!(wasm_memorytype_t, wasm_memorytype_delete, wasm_memorytype_copy);
type_own_copy!(wasm_externtype_t, wasm_externtype_delete, wasm_externtype_copy);
type_own_copy!(wasm_importtype_t, wasm_importtype_delete, wasm_importtype_copy);
type_own_copy!(wasm_exporttype_t, wasm_exporttype_delete, wasm_exporttype_copy);

/// `wasm_valtype_new`: NULL for a kind that is not one.
#[unsafe(no_mangle)]
pub extern "C" fn wasm_valtype_new(k: u8) -> *mut wasm_valtype_t {
    if valtype_of(k).is_none() {
        crate::error::set_last_error(format!("unknown value kind {k}"));
        return std::ptr::null_mut();
    }
    ffi::into_raw(wasm_valtype_t { kind: k })
}

/// `wasm_valtype_kind` (`WASM_I32` for NULL).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_valtype_kind(t: *const wasm_valtype_t) -> u8 {
    // SAFETY: NULL or live, per the contract.
    unsafe { ffi::borrow(t, "the value type") }.map_or(0, |t| t.kind)
}

/// `wasm_functype_new`: takes both vectors (they are left empty). NULL if
/// either is NULL or holds a NULL type.
///
/// # Safety
///
/// Both are NULL or vectors of this library owned by the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_functype_new(
    params: *mut wasm_valtype_vec_t,
    results: *mut wasm_valtype_vec_t,
) -> *mut wasm_functype_t {
    // SAFETY: NULL or live, per the contract.
    let p = unsafe { ffi::borrow_mut(params, "the parameter types") }.map(|v| v.take());
    // SAFETY: NULL or live, per the contract.
    let r = unsafe { ffi::borrow_mut(results, "the result types") }.map(|v| v.take());
    let (Some(p), Some(r)) = (p, r) else { return std::ptr::null_mut() };
    if p.iter().chain(&r).any(Option::is_none) {
        crate::error::set_last_error("a value type is NULL".to_string());
        return std::ptr::null_mut();
    }
    ffi::into_raw(wasm_externtype_t {
        which: ExternTypeKind::Func { params: CVec::from_vec(p), results: CVec::from_vec(r) },
    })
}

/// `wasm_functype_params` (NULL for NULL or a non-function type).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_functype_params(t: *const wasm_functype_t) -> *const wasm_valtype_vec_t {
    // SAFETY: NULL or live, per the contract.
    match unsafe { ffi::borrow(t, "the function type") }.map(|t| &t.which) {
        Some(ExternTypeKind::Func { params, .. }) => params,
        _ => std::ptr::null(),
    }
}

/// `wasm_functype_results` (NULL for NULL or a non-function type).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_functype_results(t: *const wasm_functype_t) -> *const wasm_valtype_vec_t {
    // SAFETY: NULL or live, per the contract.
    match unsafe { ffi::borrow(t, "the function type") }.map(|t| &t.which) {
        Some(ExternTypeKind::Func { results, .. }) => results,
        _ => std::ptr::null(),
    }
}

/// `wasm_globaltype_new`: takes `content`; NULL for NULL or a bad
/// mutability.
///
/// # Safety
///
/// `content` is NULL or a value type owned by the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_globaltype_new(content: *mut wasm_valtype_t, mutability: u8) -> *mut wasm_globaltype_t {
    // SAFETY: NULL or ours and owned, per the contract.
    let Some(content) = (unsafe { ffi::from_raw(content) }) else {
        crate::error::set_last_error("the value type is NULL".to_string());
        return std::ptr::null_mut();
    };
    if mutability > 1 {
        crate::error::set_last_error(format!("unknown mutability {mutability}"));
        return std::ptr::null_mut();
    }
    ffi::into_raw(wasm_externtype_t { which: ExternTypeKind::Global { content, mutability } })
}

/// `wasm_globaltype_content` (NULL for NULL or a non-global type).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_globaltype_content(t: *const wasm_globaltype_t) -> *const wasm_valtype_t {
    // SAFETY: NULL or live, per the contract.
    match unsafe { ffi::borrow(t, "the global type") }.map(|t| &t.which) {
        Some(ExternTypeKind::Global { content, .. }) => &**content,
        _ => std::ptr::null(),
    }
}

/// `wasm_globaltype_mutability` (`WASM_CONST` for NULL).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_globaltype_mutability(t: *const wasm_globaltype_t) -> u8 {
    // SAFETY: NULL or live, per the contract.
    match unsafe { ffi::borrow(t, "the global type") }.map(|t| &t.which) {
        Some(ExternTypeKind::Global { mutability, .. }) => *mutability,
        _ => 0,
    }
}

/// `wasm_tabletype_new`: takes `element`; NULL for NULL arguments or a
/// non-reference element type.
///
/// # Safety
///
/// `element` is NULL or owned by the caller; `limits` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_tabletype_new(
    element: *mut wasm_valtype_t,
    limits: *const wasm_limits_t,
) -> *mut wasm_tabletype_t {
    // SAFETY: NULL or ours and owned, per the contract.
    let element = unsafe { ffi::from_raw(element) };
    // SAFETY: NULL or live, per the contract.
    let limits = unsafe { ffi::borrow(limits, "the limits") };
    let (Some(element), Some(limits)) = (element, limits) else {
        crate::error::set_last_error("the element type or limits are NULL".to_string());
        return std::ptr::null_mut();
    };
    if element.kind < kind::EXTERNREF {
        crate::error::set_last_error("a table's elements must be references".to_string());
        return std::ptr::null_mut();
    }
    ffi::into_raw(wasm_externtype_t { which: ExternTypeKind::Table { element, limits: *limits } })
}

/// `wasm_tabletype_element` (NULL for NULL or a non-table type).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_tabletype_element(t: *const wasm_tabletype_t) -> *const wasm_valtype_t {
    // SAFETY: NULL or live, per the contract.
    match unsafe { ffi::borrow(t, "the table type") }.map(|t| &t.which) {
        Some(ExternTypeKind::Table { element, .. }) => &**element,
        _ => std::ptr::null(),
    }
}

/// `wasm_tabletype_limits` (NULL for NULL or a non-table type).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_tabletype_limits(t: *const wasm_tabletype_t) -> *const wasm_limits_t {
    // SAFETY: NULL or live, per the contract.
    match unsafe { ffi::borrow(t, "the table type") }.map(|t| &t.which) {
        Some(ExternTypeKind::Table { limits, .. }) => limits,
        _ => std::ptr::null(),
    }
}

/// `wasm_memorytype_new` (NULL for NULL limits).
///
/// # Safety
///
/// `limits` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_memorytype_new(limits: *const wasm_limits_t) -> *mut wasm_memorytype_t {
    // SAFETY: NULL or live, per the contract.
    match unsafe { ffi::borrow(limits, "the limits") } {
        Some(l) => ffi::into_raw(wasm_externtype_t { which: ExternTypeKind::Memory { limits: *l } }),
        None => std::ptr::null_mut(),
    }
}

/// `wasm_memorytype_limits` (NULL for NULL or a non-memory type).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_memorytype_limits(t: *const wasm_memorytype_t) -> *const wasm_limits_t {
    // SAFETY: NULL or live, per the contract.
    match unsafe { ffi::borrow(t, "the memory type") }.map(|t| &t.which) {
        Some(ExternTypeKind::Memory { limits }) => limits,
        _ => std::ptr::null(),
    }
}

/// `wasm_externtype_kind` (`WASM_EXTERN_FUNC` for NULL).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_externtype_kind(t: *const wasm_externtype_t) -> u8 {
    // SAFETY: NULL or live, per the contract.
    unsafe { ffi::borrow(t, "the extern type") }.map_or(0, wasm_externtype_t::extern_kind)
}

/// Declares the casts between an extern type and one of its kinds: to
/// the extern type always succeeds (same pointer), from it checks the kind.
macro_rules! type_casts {
    ($k:expr, $to:ident, $to_const:ident, $from:ident, $from_const:ident) => {
        #[doc = concat!("`", stringify!($to), "`: the same object.")]
        #[unsafe(no_mangle)]
        pub extern "C" fn $to(t: *mut wasm_externtype_t) -> *mut wasm_externtype_t {
            t
        }

        #[doc = concat!("`", stringify!($to_const), "`: the same object.")]
        #[unsafe(no_mangle)]
        pub extern "C" fn $to_const(t: *const wasm_externtype_t) -> *const wasm_externtype_t {
            t
        }

        #[doc = concat!("`", stringify!($from), "`: the same object if of that kind, else NULL.")]
        ///
        /// # Safety
        ///
        /// `t` is NULL or live.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $from(t: *mut wasm_externtype_t) -> *mut wasm_externtype_t {
            // SAFETY: NULL or live, per the contract.
            match unsafe { ffi::borrow(t, "the extern type") } {
                Some(x) if x.extern_kind() == $k => t,
                _ => std::ptr::null_mut(),
            }
        }

        #[doc = concat!("`", stringify!($from_const), "`: the same object if of that kind, else NULL.")]
        ///
        /// # Safety
        ///
        /// `t` is NULL or live.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $from_const(t: *const wasm_externtype_t) -> *const wasm_externtype_t {
            // SAFETY: NULL or live, per the contract.
            match unsafe { ffi::borrow(t, "the extern type") } {
                Some(x) if x.extern_kind() == $k => t,
                _ => std::ptr::null(),
            }
        }
    };
}

type_casts!(
    extern_kind::FUNC,
    wasm_functype_as_externtype,
    wasm_functype_as_externtype_const,
    wasm_externtype_as_functype,
    wasm_externtype_as_functype_const
);
type_casts!(
    extern_kind::GLOBAL,
    wasm_globaltype_as_externtype,
    wasm_globaltype_as_externtype_const,
    wasm_externtype_as_globaltype,
    wasm_externtype_as_globaltype_const
);
type_casts!(
    extern_kind::TABLE,
    wasm_tabletype_as_externtype,
    wasm_tabletype_as_externtype_const,
    wasm_externtype_as_tabletype,
    wasm_externtype_as_tabletype_const
);
type_casts!(
    extern_kind::MEMORY,
    wasm_memorytype_as_externtype,
    wasm_memorytype_as_externtype_const,
    wasm_externtype_as_memorytype,
    wasm_externtype_as_memorytype_const
);

/// `wasm_importtype_t`.
#[derive(Clone)]
pub struct wasm_importtype_t {
    pub(crate) module: wasm_name_t,
    pub(crate) name: wasm_name_t,
    pub(crate) ty: Box<wasm_externtype_t>,
}

/// `wasm_exporttype_t`.
#[derive(Clone)]
pub struct wasm_exporttype_t {
    pub(crate) name: wasm_name_t,
    pub(crate) ty: Box<wasm_externtype_t>,
}

/// Takes an `own wasm_name_t*` argument's bytes (leaving it empty).
///
/// # Safety
///
/// `name` is NULL or a vector of this library owned by the caller.
unsafe fn take_name(name: *mut wasm_name_t) -> Option<wasm_name_t> {
    // SAFETY: NULL or live, per the contract.
    unsafe { ffi::borrow_mut(name, "the name") }.map(|n| CVec::from_vec(n.take()))
}

/// `wasm_importtype_new`: takes all three; NULL if any is NULL.
///
/// # Safety
///
/// Each is NULL or an object of this library owned by the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_importtype_new(
    module: *mut wasm_name_t,
    name: *mut wasm_name_t,
    ty: *mut wasm_externtype_t,
) -> *mut wasm_importtype_t {
    // SAFETY: per the contract.
    let (module, name, ty) = unsafe { (take_name(module), take_name(name), ffi::from_raw(ty)) };
    match (module, name, ty) {
        (Some(module), Some(name), Some(ty)) => ffi::into_raw(wasm_importtype_t { module, name, ty }),
        _ => std::ptr::null_mut(),
    }
}

/// `wasm_importtype_module` (NULL for NULL).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_importtype_module(t: *const wasm_importtype_t) -> *const wasm_name_t {
    // SAFETY: NULL or live, per the contract.
    unsafe { ffi::borrow(t, "the import type") }.map_or(std::ptr::null(), |t| &t.module)
}

/// `wasm_importtype_name` (NULL for NULL).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_importtype_name(t: *const wasm_importtype_t) -> *const wasm_name_t {
    // SAFETY: NULL or live, per the contract.
    unsafe { ffi::borrow(t, "the import type") }.map_or(std::ptr::null(), |t| &t.name)
}

/// `wasm_importtype_type` (NULL for NULL).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_importtype_type(t: *const wasm_importtype_t) -> *const wasm_externtype_t {
    // SAFETY: NULL or live, per the contract.
    unsafe { ffi::borrow(t, "the import type") }.map_or(std::ptr::null(), |t| &*t.ty)
}

/// `wasm_exporttype_new`: takes both; NULL if either is NULL.
///
/// # Safety
///
/// Each is NULL or an object of this library owned by the caller.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_exporttype_new(
    name: *mut wasm_name_t,
    ty: *mut wasm_externtype_t,
) -> *mut wasm_exporttype_t {
    // SAFETY: per the contract.
    let (name, ty) = unsafe { (take_name(name), ffi::from_raw(ty)) };
    match (name, ty) {
        (Some(name), Some(ty)) => ffi::into_raw(wasm_exporttype_t { name, ty }),
        _ => std::ptr::null_mut(),
    }
}

/// `wasm_exporttype_name` (NULL for NULL).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_exporttype_name(t: *const wasm_exporttype_t) -> *const wasm_name_t {
    // SAFETY: NULL or live, per the contract.
    unsafe { ffi::borrow(t, "the export type") }.map_or(std::ptr::null(), |t| &t.name)
}

/// `wasm_exporttype_type` (NULL for NULL).
///
/// # Safety
///
/// `t` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_exporttype_type(t: *const wasm_exporttype_t) -> *const wasm_externtype_t {
    // SAFETY: NULL or live, per the contract.
    unsafe { ffi::borrow(t, "the export type") }.map_or(std::ptr::null(), |t| &*t.ty)
}

/// A name vector holding `s`'s bytes (not NUL-terminated, as names are).
pub fn name_of(s: &str) -> wasm_name_t {
    CVec::from_vec(s.bytes().map(|b| b as c_char).collect())
}
