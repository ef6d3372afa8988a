//! Functions: host functions made from C callbacks, and calls.

use crate::ffi;
use crate::refs::{Finalizer, RefKind, wasm_func_t, wasm_ref_t, wasm_trap_t};
use crate::store::{StoreData, StoreRef, store_arg, wasm_store_t};
use crate::trap::{HostTrap, TrapData, boxed_message};
use crate::types::{kind, valkind, wasm_externtype_t, wasm_functype_t};
use crate::val::{from_c, to_c, wasm_val_t, wasm_val_vec_t};
use crate::vec::{CVec, Element};
use kiln::{Caller, Func, FuncType, Val, ValType};
use std::ffi::c_void;
use std::rc::Rc;
use std::sync::Arc;

/// `wasm_func_callback_t`.
pub type wasm_func_callback_t = unsafe extern "C" fn(*const wasm_val_vec_t, *mut wasm_val_vec_t) -> *mut wasm_trap_t;

/// `wasm_func_callback_with_env_t`.
pub type wasm_func_callback_with_env_t =
    unsafe extern "C" fn(*mut c_void, *const wasm_val_vec_t, *mut wasm_val_vec_t) -> *mut wasm_trap_t;

/// Values kept on the stack in calls (more go to the heap).
const STACK_VALUES: usize = 8;

/// A callback's environment; its finalizer runs once, when the host
/// function (kept by its store) is dropped with the store.
struct Env {
    env: usize,
    finalizer: Option<Finalizer>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(f) = self.finalizer {
            // SAFETY: C gave `finalizer` to be called with `env` once, when
            // the function goes; this is that once.
            ffi::guard((), || unsafe { f(self.env as *mut c_void) });
        }
    }
}

/// The two kinds of C callback.
#[derive(Clone, Copy)]
enum Callback {
    Plain(wasm_func_callback_t),
    WithEnv(wasm_func_callback_with_env_t),
}

/// The body of every C host function: converts the arguments, calls C with
/// the store published for nested API calls, converts the results back.
/// Few values live in arrays on the stack, more in vectors.
fn call_c(
    cb: Callback,
    env: &Env,
    result_types: &[ValType],
    mut caller: Caller<'_, StoreData>,
    params: &[Val],
    results: &mut [Val],
) -> anyhow::Result<()> {
    let cell = caller.data().cell.upgrade().ok_or_else(|| anyhow::anyhow!("the store is gone"))?;
    let (np, nr) = (params.len(), result_types.len());
    let mut args_buf = [wasm_val_t::empty(); STACK_VALUES];
    let mut res_buf = [wasm_val_t::empty(); STACK_VALUES];
    let mut args_heap = Vec::new();
    let mut res_heap = Vec::new();
    let args: &mut [wasm_val_t] = if np <= STACK_VALUES {
        &mut args_buf[..np]
    } else {
        args_heap.resize(np, wasm_val_t::empty());
        &mut args_heap
    };
    let res: &mut [wasm_val_t] = if nr <= STACK_VALUES {
        &mut res_buf[..nr]
    } else {
        res_heap.resize(nr, wasm_val_t::empty());
        &mut res_heap
    };
    let mut converted = Ok(());
    for (slot, p) in args.iter_mut().zip(params) {
        match to_c(p, &cell) {
            Ok(v) => *slot = v,
            Err(e) => {
                converted = Err(anyhow::Error::msg(e));
                break;
            }
        }
    }
    let r = converted.and_then(|()| {
        for (slot, t) in res.iter_mut().zip(result_types) {
            slot.kind = valkind(*t);
        }
        let args_vec = CVec::view(args);
        let mut res_vec = CVec::view(res);
        let args_ptr: *const wasm_val_vec_t = &*args_vec;
        let res_ptr: *mut wasm_val_vec_t = &mut *res_vec;
        let trap = cell.enter_callback(&mut caller, || match cb {
            // SAFETY: calling the C callback as the standard says: the
            // argument vector is live and read-only for the call, the
            // result vector has a slot per result.
            Callback::Plain(f) => unsafe { f(args_ptr, res_ptr) },
            // SAFETY: as above, with the environment C gave for it.
            Callback::WithEnv(f) => unsafe { f(env.env as *mut c_void, args_ptr, res_ptr) },
        });
        // SAFETY: a non-NULL result is an `own` trap of this library.
        if let Some(trap) = unsafe { ffi::from_raw(trap) } {
            return Err(match &trap.kind {
                RefKind::Trap(t) => anyhow::Error::new(HostTrap(with_frames(t, &mut caller))),
                _ => anyhow::anyhow!("a host callback returned something other than a trap"),
            });
        }
        for ((v, t), out) in res.iter().zip(result_types).zip(results.iter_mut()) {
            // Numbers straight into the slot, as in `call`.
            match (v.kind, *t) {
                // SAFETY: the kind says the value holds an `i32`.
                (kind::I32, ValType::I32) => *out = Val::I32(unsafe { v.of.i32 }),
                // SAFETY: the kind says the value holds an `i64`.
                (kind::I64, ValType::I64) => *out = Val::I64(unsafe { v.of.i64 }),
                // SAFETY: the kind says the value holds an `f32`.
                (kind::F32, ValType::F32) => *out = Val::F32(unsafe { v.of.f32 }.to_bits()),
                // SAFETY: the kind says the value holds an `f64`.
                (kind::F64, ValType::F64) => *out = Val::F64(unsafe { v.of.f64 }.to_bits()),
                _ => *out = from_c(v, *t, &cell).map_err(|e| anyhow::anyhow!("host callback result: {e}"))?,
            }
        }
        Ok(())
    });
    for v in args.iter_mut().chain(res.iter_mut()) {
        v.release();
    }
    r
}

/// A callback's trap as it leaves through wasm: with the wasm frames that
/// called the callback, unless it has frames already (a trap that came out
/// of a nested call, passed on).
fn with_frames(t: &Arc<TrapData>, caller: &mut Caller<'_, StoreData>) -> Arc<TrapData> {
    if !t.frames.is_empty() {
        return t.clone();
    }
    let bt = kiln::WasmBacktrace::capture(caller);
    let frames = crate::trap::frames_of(&bt, &caller.data().modules);
    Arc::new(TrapData { message: t.message.clone(), frames, code: t.code, exit_status: t.exit_status })
}

/// Makes a host function of `ty` in `store`.
///
/// # Safety
///
/// `store` and `ty` are NULL or live.
unsafe fn new_func(store: *mut wasm_store_t, ty: *const wasm_functype_t, cb: Callback, env: Env) -> *mut wasm_func_t {
    // SAFETY: NULL or live, per the contract.
    let (store, ty) = unsafe { (store_arg(store), ffi::borrow(ty, "the function type")) };
    let (Some(store), Some(ty)) = (store, ty) else {
        return std::ptr::null_mut();
    };
    let ty = match ty.to_func() {
        Ok(t) => t,
        Err(e) => {
            crate::error::set_last_error(e);
            return std::ptr::null_mut();
        }
    };
    ffi::guard(std::ptr::null_mut(), || {
        let result_types: Arc<[ValType]> = ty.results().collect();
        let f = store.with(|ctx| {
            Func::new(ctx, ty, move |caller, params, results| call_c(cb, &env, &result_types, caller, params, results))
        });
        f.map_or(std::ptr::null_mut(), |f| wasm_ref_t::boxed(Some(store.clone()), RefKind::Func(f)))
    })
}

/// `wasm_func_new`: a host function calling `callback`; NULL for NULL
/// arguments or an invalid type.
///
/// # Safety
///
/// `store` and `ty` are NULL or live; `callback` follows the standard's
/// contract for callbacks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_func_new(
    store: *mut wasm_store_t,
    ty: *const wasm_functype_t,
    callback: Option<wasm_func_callback_t>,
) -> *mut wasm_func_t {
    let Some(cb) = callback else {
        crate::error::set_last_error("the callback is NULL".to_string());
        return std::ptr::null_mut();
    };
    // SAFETY: per this function's contract.
    unsafe { new_func(store, ty, Callback::Plain(cb), Env { env: 0, finalizer: None }) }
}

/// `wasm_func_new_with_env`: as `wasm_func_new`, with `env` passed to the
/// callback; `finalizer(env)` runs once, when the function's store goes
/// (or at once if the function cannot be made).
///
/// # Safety
///
/// As `wasm_func_new`; `finalizer` is NULL or may be called with `env`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_func_new_with_env(
    store: *mut wasm_store_t,
    ty: *const wasm_functype_t,
    callback: Option<wasm_func_callback_with_env_t>,
    env: *mut c_void,
    finalizer: Option<Finalizer>,
) -> *mut wasm_func_t {
    let env = Env { env: env as usize, finalizer };
    let Some(cb) = callback else {
        crate::error::set_last_error("the callback is NULL".to_string());
        return std::ptr::null_mut();
    };
    // SAFETY: per this function's contract.
    unsafe { new_func(store, ty, Callback::WithEnv(cb), env) }
}

/// Borrows a function argument: the handle, its store and the function.
///
/// # Safety
///
/// `f` is NULL or a live object of this library.
pub unsafe fn func_arg<'a>(f: *const wasm_func_t) -> Option<(&'a wasm_ref_t, &'a StoreRef, Func)> {
    // SAFETY: NULL or live, per the contract.
    let r = unsafe { crate::refs::arg(f, crate::refs::is::func, "the function") }?;
    match (&r.store, &r.kind) {
        (Some(s), RefKind::Func(f)) => Some((r, s, *f)),
        _ => None,
    }
}

/// The function's type, computed once per handle.
fn func_type<'a>(r: &'a wasm_ref_t, store: &StoreRef, f: Func) -> Option<&'a FuncType> {
    if let Some(t) = r.func_ty.get() {
        return Some(t);
    }
    let t = Rc::new(store.with(|ctx| f.ty(&ctx))?);
    Some(r.func_ty.get_or_init(|| t))
}

/// `wasm_func_type` (NULL for NULL).
///
/// # Safety
///
/// `f` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_func_type(f: *const wasm_func_t) -> *mut wasm_functype_t {
    // SAFETY: NULL or live, per the contract.
    let Some((r, store, f)) = (unsafe { func_arg(f) }) else {
        return std::ptr::null_mut();
    };
    ffi::guard(std::ptr::null_mut(), || {
        func_type(r, store, f).map_or(std::ptr::null_mut(), |t| ffi::into_raw(wasm_externtype_t::from_func(t)))
    })
}

/// `wasm_func_param_arity` (0 for NULL).
///
/// # Safety
///
/// `f` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_func_param_arity(f: *const wasm_func_t) -> usize {
    // SAFETY: NULL or live, per the contract.
    let Some((r, store, f)) = (unsafe { func_arg(f) }) else { return 0 };
    ffi::guard(0, || func_type(r, store, f).map_or(0, |t| t.params().len()))
}

/// `wasm_func_result_arity` (0 for NULL).
///
/// # Safety
///
/// `f` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_func_result_arity(f: *const wasm_func_t) -> usize {
    // SAFETY: NULL or live, per the contract.
    let Some((r, store, f)) = (unsafe { func_arg(f) }) else { return 0 };
    ffi::guard(0, || func_type(r, store, f).map_or(0, |t| t.results().len()))
}

/// `wasm_func_call`: calls `func`; NULL on success, else an `own` trap
/// (also for misuse: a NULL function, arguments of the wrong number or
/// kinds, references of another store, or a results vector of the wrong
/// size — the last checked after the call, so that a trap of the call
/// itself is what is returned). `args` and `results` may be NULL for
/// empty vectors.
///
/// # Safety
///
/// `func` is NULL or live; `args` is NULL or a live vector; `results` is
/// NULL or a vector whose slots may be written (they are `own` outputs).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wasm_func_call(
    func: *const wasm_func_t,
    args: *const wasm_val_vec_t,
    results: *mut wasm_val_vec_t,
) -> *mut wasm_trap_t {
    // SAFETY: the arguments are as this function's contract says.
    ffi::guard_with(|| boxed_message("wasm_func_call: internal error"), || unsafe { call(func, args, results) })
}

/// Kiln values kept on the stack in `wasm_func_call` (more go to the heap).
const CALL_STACK_VALUES: usize = 4;

/// The body of `wasm_func_call`.
///
/// # Safety
///
/// As `wasm_func_call`.
unsafe fn call(
    func: *const wasm_func_t,
    args: *const wasm_val_vec_t,
    results: *mut wasm_val_vec_t,
) -> *mut wasm_trap_t {
    // SAFETY: NULL or live, per the contract.
    let Some((r, store, f)) = (unsafe { func_arg(func) }) else {
        return boxed_message("wasm_func_call: the function is NULL or not a function");
    };
    // SAFETY: NULL or live, per the contract.
    let args = match unsafe { ffi::optional(args) } {
        None => Some(&[][..]),
        Some(a) => a.as_slice(),
    };
    // SAFETY: NULL or live and writable, per the contract.
    let results = match unsafe { ffi::optional_mut(results) } {
        None => Some(&mut [][..]),
        Some(v) => v.as_mut_slice(),
    };
    let (Some(args), Some(results)) = (args, results) else {
        return boxed_message("wasm_func_call: a vector has NULL data");
    };
    let Some(ty) = func_type(r, store, f) else {
        return boxed_message("wasm_func_call: the store is in use");
    };
    let (np, nr) = (ty.params().len(), ty.results().len());
    if args.len() != np {
        return boxed_message(format!("wasm_func_call: expected {np} arguments, got {}", args.len()));
    }
    const ZERO: Val = Val::I32(0);
    let mut params_buf = [ZERO; CALL_STACK_VALUES];
    let mut vals_buf = [ZERO; CALL_STACK_VALUES];
    let mut params_heap = Vec::new();
    let mut vals_heap = Vec::new();
    let params: &mut [Val] = if np <= CALL_STACK_VALUES {
        &mut params_buf[..np]
    } else {
        params_heap.resize(np, ZERO);
        &mut params_heap
    };
    let vals: &mut [Val] = if nr <= CALL_STACK_VALUES {
        &mut vals_buf[..nr]
    } else {
        vals_heap.resize(nr, ZERO);
        &mut vals_heap
    };
    for (i, ((slot, a), t)) in params.iter_mut().zip(args).zip(ty.params()).enumerate() {
        // Numbers are written straight into the slot (not through a
        // `Result` on the stack, which would be copied back in wider moves
        // than it was written with: a store-forwarding stall per value).
        match (a.kind, t) {
            // SAFETY: the kind says the value holds an `i32`.
            (kind::I32, ValType::I32) => *slot = Val::I32(unsafe { a.of.i32 }),
            // SAFETY: the kind says the value holds an `i64`.
            (kind::I64, ValType::I64) => *slot = Val::I64(unsafe { a.of.i64 }),
            // SAFETY: the kind says the value holds an `f32`.
            (kind::F32, ValType::F32) => *slot = Val::F32(unsafe { a.of.f32 }.to_bits()),
            // SAFETY: the kind says the value holds an `f64`.
            (kind::F64, ValType::F64) => *slot = Val::F64(unsafe { a.of.f64 }.to_bits()),
            _ => match from_c(a, t, store) {
                Ok(v) => *slot = v,
                Err(e) => return boxed_message(format!("wasm_func_call: argument {i}: {e}")),
            },
        }
    }
    let outcome = store.with(|mut ctx| match f.call(&mut ctx, params, vals) {
        Ok(()) => None,
        Err(e) => Some(crate::trap::from_error(&e, &ctx.data().modules)),
    });
    match outcome {
        None => boxed_message("wasm_func_call: the store is in use"),
        Some(Some(trap)) => {
            crate::error::set_last_error(trap.message.clone());
            crate::trap::boxed(trap)
        }
        Some(None) if results.len() != nr => {
            boxed_message(format!("wasm_func_call: expected a results vector of {nr}, got {}", results.len()))
        }
        Some(None) => {
            for (slot, v) in results.iter_mut().zip(vals.iter()) {
                match to_c(v, store) {
                    Ok(c) => *slot = c,
                    Err(e) => return boxed_message(format!("wasm_func_call: {e}")),
                }
            }
            std::ptr::null_mut()
        }
    }
}
