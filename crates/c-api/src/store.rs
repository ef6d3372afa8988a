//! Configs, engines and stores.
//!
//! A `wasm_store_t` is a handle on a [`StoreCell`], which every object of
//! the store also holds: deleting the store while some of its objects
//! live keeps it until the last of them is deleted (no dangling store).
//!
//! The cell lends the Kiln store to one operation at a time
//! ([`StoreCell::with`]). While wasm runs a host callback, the store is
//! borrowed by the running call; API calls made by the callback use the
//! callback's [`Caller`] instead (published in the cell for the callback's
//! duration), so there is never a second `&mut` to the store.

use crate::ffi;
use kiln::{AsContextMut, Caller, Config, Engine, Store, StoreContextMut, StoreLimits, StoreLimitsBuilder};
use std::cell::{Cell, UnsafeCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;

/// The data of every Kiln store made through the C API.
pub struct StoreData {
    /// The cell holding this store, for host callbacks that must hand out
    /// objects of it.
    pub(crate) cell: Weak<StoreCell>,
    /// WASI preview 1 state, once `kiln_store_set_wasi` gave one.
    pub(crate) wasi: Option<kiln_wasi::WasiCtx>,
    /// Modules instantiated in this store, to place trap frames (their
    /// function body offsets).
    pub(crate) modules: Vec<Arc<crate::module::ModuleMeta>>,
    /// The store's limits: Kiln's defaults, but instances up to
    /// [`MAX_INSTANCES`] (a store keeps its instances until it goes, and
    /// C programs instantiate in a loop).
    limits: StoreLimits,
}

/// Most instances a store made through the C API may hold.
pub const MAX_INSTANCES: usize = 1_000_000;

/// A store and the borrow state around it.
pub struct StoreCell {
    store: UnsafeCell<Store<StoreData>>,
    /// The caller of the host callback now running, if any.
    active: Cell<*mut Caller<'static, StoreData>>,
    /// Whether an operation holds the store now.
    busy: Cell<bool>,
    /// The store's engine.
    pub(crate) engine: Engine,
}

/// The store as lent to an operation.
pub enum Lent<'a> {
    /// The store itself (no callback running).
    Store(&'a mut Store<StoreData>),
    /// The caller of the running host callback.
    Caller(&'a mut Caller<'static, StoreData>),
}

/// A shared handle on a store.
pub type StoreRef = Rc<StoreCell>;

/// Restores the cell's borrow state when an operation or callback ends,
/// also by unwinding.
struct Restore<'a> {
    cell: &'a StoreCell,
    active: *mut Caller<'static, StoreData>,
    busy: bool,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        self.cell.active.set(self.active);
        self.cell.busy.set(self.busy);
    }
}

impl StoreCell {
    /// A new store of `engine`.
    pub fn new(engine: &Engine) -> StoreRef {
        let data = |cell| StoreData {
            cell,
            wasi: None,
            modules: Vec::new(),
            limits: StoreLimitsBuilder::new().instances(MAX_INSTANCES).build(),
        };
        Rc::new_cyclic(|weak| StoreCell {
            store: UnsafeCell::new({
                let mut store = Store::new(engine, data(weak.clone()));
                store.limiter(|d| &mut d.limits);
                store
            }),
            active: Cell::new(std::ptr::null_mut()),
            busy: Cell::new(false),
            engine: engine.clone(),
        })
    }

    /// Lends the store to `f`: the running callback's caller if a
    /// callback is running, else the store itself. `None` (with the last
    /// error set) when the store is already lent to an operation that did
    /// not call back into C (a finalizer using its store while the store
    /// drops a value).
    pub fn lend<R>(&self, f: impl FnOnce(Lent<'_>) -> R) -> Option<R> {
        if self.busy.get() {
            crate::error::set_last_error("the store is in use (called from a finalizer?)".to_string());
            return None;
        }
        let _restore = Restore { cell: self, active: self.active.get(), busy: false };
        self.busy.set(true);
        let active = self.active.get();
        let lent = if active.is_null() {
            // SAFETY: no operation holds the store (`busy` was false and no
            // callback is running), so this is the only reference to it
            // until `busy` is cleared; the cell is not shared across
            // threads (`StoreCell` is not `Sync`).
            Lent::Store(unsafe { &mut *self.store.get() })
        } else {
            // SAFETY: `active` points to the `Caller` of the host callback
            // now running on this thread (set by `enter_callback` for the
            // callback's duration, where the caller is not otherwise used),
            // and `busy` keeps this the only borrow of it.
            Lent::Caller(unsafe { &mut *active })
        };
        Some(f(lent))
    }

    /// Runs `f` with the store's context, as [`lend`](Self::lend).
    pub fn with<R>(&self, f: impl FnOnce(StoreContextMut<'_, StoreData>) -> R) -> Option<R> {
        self.lend(|l| match l {
            Lent::Store(s) => f(s.as_context_mut()),
            Lent::Caller(c) => f(c.as_context_mut()),
        })
    }

    /// Runs the C callback `f` with `caller` published as the store for
    /// API calls it makes.
    pub fn enter_callback<R>(&self, caller: &mut Caller<'_, StoreData>, f: impl FnOnce() -> R) -> R {
        let _restore = Restore { cell: self, active: self.active.get(), busy: self.busy.get() };
        let p: *mut Caller<'_, StoreData> = caller;
        // The lifetime is erased for storage only: the pointer is cleared
        // (by `_restore`) before `caller`'s borrow ends.
        self.active.set(p.cast::<Caller<'static, StoreData>>());
        self.busy.set(false);
        f()
    }
}

/// `wasm_config_t`: settings for an engine.
pub struct wasm_config_t {
    pub(crate) config: Config,
}

/// `wasm_engine_t`.
pub struct wasm_engine_t {
    pub(crate) engine: Engine,
}

/// `wasm_store_t`.
pub struct wasm_store_t {
    pub(crate) cell: StoreRef,
}

/// `wasm_config_new`.
#[unsafe(no_mangle)]
pub extern "C" fn wasm_config_new() -> *mut wasm_config_t {
    ffi::into_raw(wasm_config_t { config: Config::new() })
}

/// `wasm_config_delete`.
///
/// # Safety
///
/// `config` is NULL or an unconsumed config of this library.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_config_delete(config: *mut wasm_config_t) {
    // SAFETY: NULL or ours, owned by the caller, per the contract.
    drop(unsafe { ffi::from_raw(config) });
}

/// `wasm_engine_new`.
#[unsafe(no_mangle)]
pub extern "C" fn wasm_engine_new() -> *mut wasm_engine_t {
    // SAFETY: a config just made, whose ownership passes to the call.
    unsafe { wasm_engine_new_with_config(wasm_config_new()) }
}

/// `wasm_engine_new_with_config`: consumes `config`; NULL if the settings
/// are refused (the reason in `kiln_last_error_message`).
///
/// # Safety
///
/// `config` is NULL or an unconsumed config of this library.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_engine_new_with_config(config: *mut wasm_config_t) -> *mut wasm_engine_t {
    // SAFETY: NULL or ours, ownership passes here, per the contract.
    let Some(config) = (unsafe { ffi::from_raw(config) }) else {
        crate::error::set_last_error("the config is NULL".to_string());
        return std::ptr::null_mut();
    };
    ffi::guard(std::ptr::null_mut(), || match Engine::new(&config.config) {
        Ok(engine) => ffi::into_raw(wasm_engine_t { engine }),
        Err(e) => {
            crate::error::set_last_error(format!("{e:#}"));
            std::ptr::null_mut()
        }
    })
}

/// `wasm_engine_delete`.
///
/// # Safety
///
/// `engine` is NULL or an engine of this library, not yet deleted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_engine_delete(engine: *mut wasm_engine_t) {
    // SAFETY: NULL or ours, owned by the caller, per the contract.
    drop(unsafe { ffi::from_raw(engine) });
}

/// `wasm_store_new`.
///
/// # Safety
///
/// `engine` is NULL or a live engine.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_store_new(engine: *mut wasm_engine_t) -> *mut wasm_store_t {
    // SAFETY: NULL or live, per the contract.
    let Some(engine) = (unsafe { ffi::borrow(engine, "the engine") }) else {
        return std::ptr::null_mut();
    };
    ffi::guard(std::ptr::null_mut(), || ffi::into_raw(wasm_store_t { cell: StoreCell::new(&engine.engine) }))
}

/// `wasm_store_delete`: the store itself goes when its last object does.
///
/// # Safety
///
/// `store` is NULL or a store of this library, not yet deleted.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_store_delete(store: *mut wasm_store_t) {
    // SAFETY: NULL or ours, owned by the caller, per the contract.
    let store = unsafe { ffi::from_raw(store) };
    ffi::guard((), || drop(store));
}

/// Borrows a store argument.
///
/// # Safety
///
/// `store` is NULL or a live store.
pub unsafe fn store_arg<'a>(store: *const wasm_store_t) -> Option<&'a StoreRef> {
    // SAFETY: NULL or live, per the contract.
    unsafe { ffi::borrow(store, "the store") }.map(|s| &s.cell)
}
