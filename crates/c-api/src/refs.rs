//! References: one Rust type, [`wasm_ref_t`], for every reference kind of
//! the standard (`wasm_func_t`, `wasm_global_t`, `wasm_table_t`,
//! `wasm_memory_t`, `wasm_extern_t`, `wasm_instance_t`, `wasm_module_t`,
//! `wasm_foreign_t`, `wasm_trap_t`), so that the `_as_ref`/`_as_extern`
//! casts are the same pointer and the downcasts check the kind.
//!
//! Host info lives in a [`HostInfo`] shared by a handle and its copies;
//! for a foreign object it lives in the object itself (inside the
//! `ExternRef` wasm sees), so it survives a trip through wasm. A
//! finalizer runs once, when the last holder of its host info goes.

use crate::ffi;
use crate::module::ModuleData;
use crate::store::StoreRef;
use crate::trap::TrapData;
use kiln::{ExternRef, Func, Global, Instance, Memory, Table};
use std::cell::OnceCell;
use std::ffi::c_void;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

/// A C finalizer.
pub type Finalizer = unsafe extern "C" fn(*mut c_void);

/// Host info and its finalizer (run once, when this is dropped).
#[derive(Default)]
pub struct HostInfo {
    slot: Mutex<(usize, Option<Finalizer>)>,
}

impl HostInfo {
    /// The host info pointer.
    pub fn get(&self) -> *mut c_void {
        self.slot.lock().map_or(std::ptr::null_mut(), |s| s.0 as *mut c_void)
    }

    /// Replaces the host info; a finalizer of the previous info is run
    /// now (it will not be reached any more).
    pub fn set(&self, info: *mut c_void, fin: Option<Finalizer>) {
        let old = match self.slot.lock() {
            Ok(mut s) => std::mem::replace(&mut *s, (info as usize, fin)),
            Err(_) => return,
        };
        run_finalizer(old);
    }
}

fn run_finalizer((info, fin): (usize, Option<Finalizer>)) {
    if let Some(f) = fin {
        // SAFETY: the finalizer and its argument are what C gave together
        // with `set_host_info_with_finalizer`; it is called once, here.
        ffi::guard((), || unsafe { f(info as *mut c_void) });
    }
}

impl Drop for HostInfo {
    fn drop(&mut self) {
        let slot = match self.slot.get_mut() {
            Ok(s) => std::mem::take(s),
            Err(p) => std::mem::take(p.into_inner()),
        };
        run_finalizer(slot);
    }
}

/// The value inside the `ExternRef` of a foreign object: its host info.
pub struct Foreign {
    pub(crate) info: Arc<HostInfo>,
}

/// What a reference refers to.
#[derive(Clone)]
pub enum RefKind {
    /// A function.
    Func(Func),
    /// A global.
    Global(Global),
    /// A table.
    Table(Table),
    /// A memory.
    Memory(Memory),
    /// An instance.
    Instance(Instance),
    /// A compiled module.
    Module(ModuleData),
    /// A host (foreign) object, or any externref from wasm.
    Foreign(ExternRef),
    /// A trap.
    Trap(Arc<TrapData>),
}

/// `wasm_ref_t`, the object behind every reference kind.
#[derive(Clone)]
pub struct wasm_ref_t {
    /// The store the object belongs to (none for modules and traps).
    pub(crate) store: Option<StoreRef>,
    /// The host info of this handle and its copies.
    pub(crate) info: Arc<HostInfo>,
    /// The object.
    pub(crate) kind: RefKind,
    /// A function's type, once asked for (calls check against it).
    pub(crate) func_ty: OnceCell<Rc<kiln::FuncType>>,
}

/// `wasm_func_t`.
pub type wasm_func_t = wasm_ref_t;
/// `wasm_global_t`.
pub type wasm_global_t = wasm_ref_t;
/// `wasm_table_t`.
pub type wasm_table_t = wasm_ref_t;
/// `wasm_memory_t`.
pub type wasm_memory_t = wasm_ref_t;
/// `wasm_extern_t`.
pub type wasm_extern_t = wasm_ref_t;
/// `wasm_instance_t`.
pub type wasm_instance_t = wasm_ref_t;
/// `wasm_module_t`.
pub type wasm_module_t = wasm_ref_t;
/// `wasm_foreign_t`.
pub type wasm_foreign_t = wasm_ref_t;
/// `wasm_trap_t`.
pub type wasm_trap_t = wasm_ref_t;

impl wasm_ref_t {
    /// A new handle on `kind` (with fresh host info; a foreign object
    /// brings its own).
    pub fn new(store: Option<StoreRef>, kind: RefKind) -> wasm_ref_t {
        let info = match &kind {
            RefKind::Foreign(e) => match e.data().downcast_ref::<Foreign>() {
                Some(f) => f.info.clone(),
                None => Arc::default(),
            },
            _ => Arc::default(),
        };
        wasm_ref_t { store, info, kind, func_ty: OnceCell::new() }
    }

    /// A new `own` handle for C.
    pub fn boxed(store: Option<StoreRef>, kind: RefKind) -> *mut wasm_ref_t {
        ffi::into_raw(wasm_ref_t::new(store, kind))
    }

    /// Whether `self` and `other` refer to the same object.
    pub fn same(&self, other: &wasm_ref_t) -> bool {
        let same_store = match (&self.store, &other.store) {
            (Some(a), Some(b)) => Rc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        same_store
            && match (&self.kind, &other.kind) {
                (RefKind::Func(a), RefKind::Func(b)) => a == b,
                (RefKind::Global(a), RefKind::Global(b)) => a == b,
                (RefKind::Table(a), RefKind::Table(b)) => a == b,
                (RefKind::Memory(a), RefKind::Memory(b)) => a == b,
                (RefKind::Instance(a), RefKind::Instance(b)) => a == b,
                (RefKind::Module(a), RefKind::Module(b)) => Arc::ptr_eq(a, b),
                (RefKind::Foreign(a), RefKind::Foreign(b)) => ExternRef::ptr_eq(a, b),
                (RefKind::Trap(a), RefKind::Trap(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }

    /// The store this object belongs to, or the last error if it has none.
    pub fn store(&self) -> Option<&StoreRef> {
        if self.store.is_none() {
            crate::error::set_last_error("the object belongs to no store".to_string());
        }
        self.store.as_ref()
    }
}

/// Kind tests for the casts.
pub mod is {
    use super::{RefKind, wasm_ref_t};

    /// Any reference.
    pub fn any(_: &wasm_ref_t) -> bool {
        true
    }
    /// A function.
    pub fn func(r: &wasm_ref_t) -> bool {
        matches!(r.kind, RefKind::Func(_))
    }
    /// A global.
    pub fn global(r: &wasm_ref_t) -> bool {
        matches!(r.kind, RefKind::Global(_))
    }
    /// A table.
    pub fn table(r: &wasm_ref_t) -> bool {
        matches!(r.kind, RefKind::Table(_))
    }
    /// A memory.
    pub fn memory(r: &wasm_ref_t) -> bool {
        matches!(r.kind, RefKind::Memory(_))
    }
    /// An external (function, global, table or memory).
    pub fn extern_(r: &wasm_ref_t) -> bool {
        matches!(r.kind, RefKind::Func(_) | RefKind::Global(_) | RefKind::Table(_) | RefKind::Memory(_))
    }
    /// An instance.
    pub fn instance(r: &wasm_ref_t) -> bool {
        matches!(r.kind, RefKind::Instance(_))
    }
    /// A module.
    pub fn module(r: &wasm_ref_t) -> bool {
        matches!(r.kind, RefKind::Module(_))
    }
    /// A foreign object.
    pub fn foreign(r: &wasm_ref_t) -> bool {
        matches!(r.kind, RefKind::Foreign(_))
    }
    /// A trap.
    pub fn trap(r: &wasm_ref_t) -> bool {
        matches!(r.kind, RefKind::Trap(_))
    }
}

/// Borrows a reference argument of the kind `test` accepts (`None`, with
/// the last error set, for NULL or another kind).
///
/// # Safety
///
/// `p` is NULL or a live object of this library.
pub unsafe fn arg<'a>(p: *const wasm_ref_t, test: fn(&wasm_ref_t) -> bool, what: &str) -> Option<&'a wasm_ref_t> {
    // SAFETY: NULL or live, per the contract.
    let r = unsafe { ffi::borrow(p, what) }?;
    if !test(r) {
        crate::error::set_last_error(format!("{what} is another kind of object"));
        return None;
    }
    Some(r)
}

/// Declares the functions every reference kind has: `_delete`, `_copy`,
/// `_same` and the three host info functions.
macro_rules! ref_base {
    ($test:path, $delete:ident, $copy:ident, $same:ident, $get_info:ident, $set_info:ident, $set_info_fin:ident) => {
        #[doc = concat!("`", stringify!($delete), "`.")]
        ///
        /// # Safety
        ///
        /// NULL or an object of this library owned by the caller.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $delete(p: *mut $crate::refs::wasm_ref_t) {
            // SAFETY: NULL or ours and owned, per the contract.
            let r = unsafe { $crate::ffi::from_raw(p) };
            $crate::ffi::guard((), || drop(r));
        }

        #[doc = concat!("`", stringify!($copy), "`: a new handle on the same object (NULL for NULL).")]
        ///
        /// # Safety
        ///
        /// NULL or a live object of this library.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $copy(p: *const $crate::refs::wasm_ref_t) -> *mut $crate::refs::wasm_ref_t {
            // SAFETY: NULL or live, per the contract.
            match unsafe { $crate::refs::arg(p, $test, "the reference") } {
                Some(r) => $crate::ffi::into_raw(r.clone()),
                None => std::ptr::null_mut(),
            }
        }

        #[doc = concat!("`", stringify!($same), "`: whether both refer to the same object (false if either is NULL).")]
        ///
        /// # Safety
        ///
        /// Each is NULL or a live object of this library.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $same(a: *const $crate::refs::wasm_ref_t, b: *const $crate::refs::wasm_ref_t) -> bool {
            // SAFETY: NULL or live, per the contract.
            let (a, b) = unsafe { ($crate::ffi::borrow(a, "the reference"), $crate::ffi::borrow(b, "the reference")) };
            matches!((a, b), (Some(a), Some(b)) if a.same(b))
        }

        #[doc = concat!("`", stringify!($get_info), "` (NULL for NULL).")]
        ///
        /// # Safety
        ///
        /// NULL or a live object of this library.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $get_info(p: *const $crate::refs::wasm_ref_t) -> *mut std::ffi::c_void {
            // SAFETY: NULL or live, per the contract.
            unsafe { $crate::ffi::borrow(p, "the reference") }.map_or(std::ptr::null_mut(), |r| r.info.get())
        }

        #[doc = concat!("`", stringify!($set_info), "`: replaces the host info (without a finalizer).")]
        ///
        /// # Safety
        ///
        /// NULL or a live object of this library.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $set_info(p: *mut $crate::refs::wasm_ref_t, info: *mut std::ffi::c_void) {
            // SAFETY: NULL or live, per the contract.
            if let Some(r) = unsafe { $crate::ffi::borrow(p, "the reference") } {
                r.info.set(info, None);
            }
        }

        #[doc = concat!("`", stringify!($set_info_fin), "`: replaces the host info; `finalizer(info)` runs once, when the object's last holder goes.")]
        ///
        /// # Safety
        ///
        /// NULL or a live object of this library; `finalizer` is NULL or a
        /// function that may be called with `info`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $set_info_fin(
            p: *mut $crate::refs::wasm_ref_t,
            info: *mut std::ffi::c_void,
            finalizer: Option<$crate::refs::Finalizer>,
        ) {
            // SAFETY: NULL or live, per the contract.
            if let Some(r) = unsafe { $crate::ffi::borrow(p, "the reference") } {
                r.info.set(info, finalizer);
            }
        }
    };
}

/// Declares the casts between a reference kind and `wasm_ref_t`.
macro_rules! ref_casts {
    ($test:path, $as_ref:ident, $as_ref_const:ident, $from_ref:ident, $from_ref_const:ident) => {
        #[doc = concat!("`", stringify!($as_ref), "`: the same object.")]
        #[unsafe(no_mangle)]
        pub extern "C" fn $as_ref(p: *mut $crate::refs::wasm_ref_t) -> *mut $crate::refs::wasm_ref_t {
            p
        }

        #[doc = concat!("`", stringify!($as_ref_const), "`: the same object.")]
        #[unsafe(no_mangle)]
        pub extern "C" fn $as_ref_const(p: *const $crate::refs::wasm_ref_t) -> *const $crate::refs::wasm_ref_t {
            p
        }

        #[doc = concat!("`", stringify!($from_ref), "`: the same object if of that kind, else NULL.")]
        ///
        /// # Safety
        ///
        /// NULL or a live object of this library.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $from_ref(p: *mut $crate::refs::wasm_ref_t) -> *mut $crate::refs::wasm_ref_t {
            // SAFETY: NULL or live, per the contract.
            match unsafe { $crate::refs::arg(p, $test, "the reference") } {
                Some(_) => p,
                None => std::ptr::null_mut(),
            }
        }

        #[doc = concat!("`", stringify!($from_ref_const), "`: the same object if of that kind, else NULL.")]
        ///
        /// # Safety
        ///
        /// NULL or a live object of this library.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $from_ref_const(
            p: *const $crate::refs::wasm_ref_t,
        ) -> *const $crate::refs::wasm_ref_t {
            // SAFETY: NULL or live, per the contract.
            match unsafe { $crate::refs::arg(p, $test, "the reference") } {
                Some(_) => p,
                None => std::ptr::null(),
            }
        }
    };
}

pub(crate) use ref_casts;

ref_base!(
    is::any,
    wasm_ref_delete,
    wasm_ref_copy,
    wasm_ref_same,
    wasm_ref_get_host_info,
    wasm_ref_set_host_info,
    wasm_ref_set_host_info_with_finalizer
);

macro_rules! ref_kind {
    ($test:path, $delete:ident, $copy:ident, $same:ident, $get_info:ident, $set_info:ident, $set_info_fin:ident,
     $as_ref:ident, $as_ref_const:ident, $from_ref:ident, $from_ref_const:ident) => {
        ref_base!($test, $delete, $copy, $same, $get_info, $set_info, $set_info_fin);
        ref_casts!($test, $as_ref, $as_ref_const, $from_ref, $from_ref_const);
    };
}

ref_kind!(
    is::func,
    wasm_func_delete,
    wasm_func_copy,
    wasm_func_same,
    wasm_func_get_host_info,
    wasm_func_set_host_info,
    wasm_func_set_host_info_with_finalizer,
    wasm_func_as_ref,
    wasm_func_as_ref_const,
    wasm_ref_as_func,
    wasm_ref_as_func_const
);
ref_kind!(
    is::global,
    wasm_global_delete,
    wasm_global_copy,
    wasm_global_same,
    wasm_global_get_host_info,
    wasm_global_set_host_info,
    wasm_global_set_host_info_with_finalizer,
    wasm_global_as_ref,
    wasm_global_as_ref_const,
    wasm_ref_as_global,
    wasm_ref_as_global_const
);
ref_kind!(
    is::table,
    wasm_table_delete,
    wasm_table_copy,
    wasm_table_same,
    wasm_table_get_host_info,
    wasm_table_set_host_info,
    wasm_table_set_host_info_with_finalizer,
    wasm_table_as_ref,
    wasm_table_as_ref_const,
    wasm_ref_as_table,
    wasm_ref_as_table_const
);
ref_kind!(
    is::memory,
    wasm_memory_delete,
    wasm_memory_copy,
    wasm_memory_same,
    wasm_memory_get_host_info,
    wasm_memory_set_host_info,
    wasm_memory_set_host_info_with_finalizer,
    wasm_memory_as_ref,
    wasm_memory_as_ref_const,
    wasm_ref_as_memory,
    wasm_ref_as_memory_const
);
ref_kind!(
    is::extern_,
    wasm_extern_delete,
    wasm_extern_copy,
    wasm_extern_same,
    wasm_extern_get_host_info,
    wasm_extern_set_host_info,
    wasm_extern_set_host_info_with_finalizer,
    wasm_extern_as_ref,
    wasm_extern_as_ref_const,
    wasm_ref_as_extern,
    wasm_ref_as_extern_const
);
ref_kind!(
    is::instance,
    wasm_instance_delete,
    wasm_instance_copy,
    wasm_instance_same,
    wasm_instance_get_host_info,
    wasm_instance_set_host_info,
    wasm_instance_set_host_info_with_finalizer,
    wasm_instance_as_ref,
    wasm_instance_as_ref_const,
    wasm_ref_as_instance,
    wasm_ref_as_instance_const
);
ref_kind!(
    is::module,
    wasm_module_delete,
    wasm_module_copy,
    wasm_module_same,
    wasm_module_get_host_info,
    wasm_module_set_host_info,
    wasm_module_set_host_info_with_finalizer,
    wasm_module_as_ref,
    wasm_module_as_ref_const,
    wasm_ref_as_module,
    wasm_ref_as_module_const
);
ref_kind!(
    is::foreign,
    wasm_foreign_delete,
    wasm_foreign_copy,
    wasm_foreign_same,
    wasm_foreign_get_host_info,
    wasm_foreign_set_host_info,
    wasm_foreign_set_host_info_with_finalizer,
    wasm_foreign_as_ref,
    wasm_foreign_as_ref_const,
    wasm_ref_as_foreign,
    wasm_ref_as_foreign_const
);
ref_kind!(
    is::trap,
    wasm_trap_delete,
    wasm_trap_copy,
    wasm_trap_same,
    wasm_trap_get_host_info,
    wasm_trap_set_host_info,
    wasm_trap_set_host_info_with_finalizer,
    wasm_trap_as_ref,
    wasm_trap_as_ref_const,
    wasm_ref_as_trap,
    wasm_ref_as_trap_const
);

/// `wasm_foreign_new`: a new host object (NULL for a NULL store).
///
/// # Safety
///
/// `store` is NULL or a live store.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_foreign_new(store: *mut crate::store::wasm_store_t) -> *mut wasm_foreign_t {
    // SAFETY: NULL or live, per the contract.
    let Some(store) = (unsafe { crate::store::store_arg(store) }) else {
        return std::ptr::null_mut();
    };
    let info = Arc::new(HostInfo::default());
    let e = ExternRef::new(Foreign { info: info.clone() });
    ffi::into_raw(wasm_ref_t { store: Some(store.clone()), info, kind: RefKind::Foreign(e), func_ty: OnceCell::new() })
}

crate::vec::declare_vec!(
    wasm_extern_vec_t,
    Option<Box<wasm_extern_t>>,
    wasm_extern_vec_new_empty,
    wasm_extern_vec_new_uninitialized,
    wasm_extern_vec_new,
    wasm_extern_vec_copy,
    wasm_extern_vec_delete
);
