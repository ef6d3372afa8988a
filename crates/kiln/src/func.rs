//! Functions: calling wasm from the host, and host functions callable from
//! wasm.

use crate::externals::Extern;
use crate::store::{AsContext, AsContextMut, StoreContext, StoreContextMut, StoreInner, StoreOpaque, Stored};
use crate::trap;
use crate::types::{FuncType, ValType};
use crate::values::{ExternRef, V128, Val};
use crate::vm;
use crate::vm::host_func::{HostFn, HostTrampoline};
use crate::vm::invoke::{REG_FLOAT, REG_INT, REG_NONE, RegArgs, RegResults};
use crate::vm::store::FuncOwner;
use crate::vm::store_ids::{FuncId, InstanceId};
use crate::vm::vmcontext::ValRaw;
use anyhow::{Result, bail};
use kiln_environ as env;
use std::marker::PhantomData;
use std::sync::Arc;

/// A function: exported by an instance, or defined by the host. A handle
/// into its store; cheap to copy.
///
/// Handles compare equal when they name the same object of the same store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Func(pub(crate) Stored<FuncId>);

impl Func {
    /// Defines a host function of type `ty` whose body receives and
    /// returns dynamically typed values.
    ///
    /// The closure's errors are returned unchanged to whoever called into
    /// wasm; returning results of the wrong number or types is an error.
    ///
    /// # Panics
    ///
    /// Panics if the engine cannot compile the wasm-to-host trampoline for
    /// `ty` (a code generator failure).
    pub fn new<T: 'static>(
        mut store: impl AsContextMut<Data = T>,
        ty: FuncType,
        f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
    ) -> Func {
        let store = store.as_context_mut().0;
        let body = dynamic_host_fn(ty.0.clone(), f);
        new_host(store, ty.0, body).expect("compiling the host-call trampoline failed")
    }

    /// Defines a host function from a Rust closure, deriving its wasm type
    /// from the closure's argument and return types (`i32`, `u32`, `i64`,
    /// `u64`, `f32`, `f64`, [`V128`], `Option<Func>`, `Option<ExternRef>`,
    /// tuples of them, or a `Result` of those). The closure may take a
    /// [`Caller`] first.
    ///
    /// # Panics
    ///
    /// Panics if the engine cannot compile the wasm-to-host trampoline (a
    /// code generator failure).
    pub fn wrap<T: 'static, Params, Results>(
        mut store: impl AsContextMut<Data = T>,
        f: impl IntoFunc<T, Params, Results>,
    ) -> Func {
        let store = store.as_context_mut().0;
        let (ty, body) = f.into_host_fn();
        new_host(store, ty, body).expect("compiling the host-call trampoline failed")
    }

    /// The function's signature.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn ty(&self, store: impl AsContext) -> FuncType {
        let store = store.as_context();
        store.0.opaque.check(&self.0);
        FuncType((**store.0.opaque.vm().func_ty(self.0.index)).clone())
    }

    /// Calls the function with `params`, writing its results into `results`.
    ///
    /// # Errors
    ///
    /// Wrong number or types of arguments or result slots, or a reference
    /// argument the parameter's type does not admit (another store's, null
    /// for a non-null type, a function of another type for a typed
    /// reference); a [`Trap`](crate::Trap) if wasm trapped; a host
    /// function's error unchanged.
    ///
    /// # Panics
    ///
    /// Panics if the function belongs to another store, or resumes a panic
    /// raised by a host function called from wasm.
    pub fn call<T: 'static>(
        &self,
        mut store: impl AsContextMut<Data = T>,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<()> {
        let store = store.as_context_mut().0;
        store.opaque.check(&self.0);
        let ty = store.opaque.vm().func_ty(self.0.index).clone();
        if params.len() != ty.params().len() {
            bail!("expected {} arguments, got {}", ty.params().len(), params.len());
        }
        if results.len() != ty.results().len() {
            bail!("expected {} results, got {}", ty.results().len(), results.len());
        }
        let mut call = |values: &mut [ValRaw]| -> Result<()> {
            for (i, (p, t)) in params.iter().zip(ty.params()).enumerate() {
                let want = ValType::from_env(*t);
                if p.ty() != want {
                    bail!("argument {i}: expected {want}, found {}", p.ty());
                }
                values[i] = p.to_raw(&mut store.opaque)?;
            }
            self.call_raw(store, values)?;
            for (i, (r, t)) in results.iter_mut().zip(ty.results()).enumerate() {
                *r = Val::from_raw(values[i], ValType::from_env(*t), &mut store.opaque);
            }
            Ok(())
        };
        let slots = ty.array_len().max(1);
        if slots <= vm::MAX_STACK_VALUES {
            vm::with_stack_values(slots, call)
        } else {
            call(&mut vec![ValRaw::default(); slots])
        }
    }

    /// Calls with raw values already checked against the signature;
    /// `values` has at least `ty.array_len()` slots.
    pub(crate) fn call_raw<T: 'static>(&self, store: &mut StoreInner<T>, values: &mut [ValRaw]) -> Result<()> {
        match store.opaque.vm().func_owner(self.0.index) {
            FuncOwner::Wasm => {
                store.opaque.expose_contents();
                vm::store::invoke(store, self.0.index, values).map_err(trap::from_record)
            }
            FuncOwner::Host(ctx) => {
                let f = host_fn::<T>(&store.opaque, ctx);
                f(store, None, values)
            }
        }
    }

    /// A typed view of this function, whose calls convert arguments and
    /// results statically and allocate nothing.
    ///
    /// # Errors
    ///
    /// The signature does not match `Params -> Results`.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn typed<Params: WasmParams, Results: WasmResults>(
        &self,
        store: impl AsContext,
    ) -> Result<TypedFunc<Params, Results>> {
        let store = store.as_context();
        store.0.opaque.check(&self.0);
        let ty = store.0.opaque.vm().func_ty(self.0.index);
        Params::typecheck(ty.params()).map_err(|e| anyhow::anyhow!("type mismatch with parameters: {e}"))?;
        Results::typecheck(ty.results()).map_err(|e| anyhow::anyhow!("type mismatch with results: {e}"))?;
        Ok(TypedFunc { func: *self, target: store.0.opaque.vm().call_target(self.0.index), _marker: PhantomData })
    }
}

fn host_fn<T: 'static>(store: &StoreOpaque, ctx: usize) -> Arc<HostFn<StoreInner<T>>> {
    store.vm().host_func::<StoreInner<T>>(ctx).expect("host function context of this store's type").clone()
}

/// A host function signature resolved against an engine: its engine-wide
/// type id, the engine's wasm-to-host trampoline for it, and the type.
/// Resolving takes engine-wide locks; a [`Linker`](crate::Linker) does it
/// once per definition so that instantiation takes none.
#[derive(Clone)]
pub(crate) struct HostSig {
    type_id: u32,
    trampoline: HostTrampoline,
    ty: Arc<env::FuncType>,
}

impl HostSig {
    /// Registers `ty` with `engine` and gets (compiling on first use) its
    /// trampoline.
    ///
    /// # Errors
    ///
    /// The trampoline could not be compiled or mapped.
    pub(crate) fn new(engine: &crate::Engine, ty: &env::FuncType) -> Result<HostSig> {
        let type_id = engine.inner.types.register(ty);
        let trampoline = engine.host_trampoline(type_id)?;
        Ok(HostSig { type_id, trampoline, ty: engine.inner.types.func(type_id) })
    }

    /// The engine type id of the function type.
    pub(crate) fn type_id(&self) -> u32 {
        self.type_id
    }

    /// The function type.
    pub(crate) fn ty(&self) -> &env::FuncType {
        &self.ty
    }
}

/// Registers a host function in `store`.
pub(crate) fn new_host<T: 'static>(
    store: &mut StoreInner<T>,
    ty: env::FuncType,
    body: Arc<HostFn<StoreInner<T>>>,
) -> Result<Func> {
    let sig = HostSig::new(store.opaque.engine(), &ty)?;
    Ok(new_host_with_sig(store, &sig, body))
}

/// Registers a host function whose signature is already resolved.
pub(crate) fn new_host_with_sig<T: 'static>(
    store: &mut StoreInner<T>,
    sig: &HostSig,
    body: Arc<HostFn<StoreInner<T>>>,
) -> Func {
    let index =
        store.opaque.vm_mut().new_host_func::<StoreInner<T>>(body, sig.ty.clone(), sig.type_id, sig.trampoline.clone());
    Func(store.opaque.stored(index))
}

/// A function with a statically known signature `Params -> Results`.
pub struct TypedFunc<Params, Results> {
    func: Func,
    /// The wasm function resolved for calls (`None` for a host function).
    target: Option<vm::store::CallTarget>,
    _marker: PhantomData<fn(Params) -> Results>,
}

impl<P, R> Clone for TypedFunc<P, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P, R> Copy for TypedFunc<P, R> {}

impl<Params: WasmParams, Results: WasmResults> TypedFunc<Params, Results> {
    /// The untyped function.
    pub fn func(&self) -> &Func {
        &self.func
    }

    /// Calls the function.
    ///
    /// # Errors
    ///
    /// A [`Trap`](crate::Trap) if wasm trapped; a host function's error
    /// unchanged; a reference argument the parameter's type does not admit
    /// (another store's, null for a non-null type, a function of another
    /// type for a typed reference).
    ///
    /// # Panics
    ///
    /// Panics if the function belongs to another store.
    pub fn call<T: 'static>(&self, mut store: impl AsContextMut<Data = T>, params: Params) -> Result<Results> {
        let store = store.as_context_mut().0;
        store.opaque.check(&self.func.0);
        // Signatures whose values all fit in registers are called through
        // the direct entry (the shape is a constant of `Params` and
        // `Results`; the function's own, in the target, equals it exactly
        // when the target has one: the types were checked when `self` was
        // made).
        let shape = const { vm::invoke::reg_shape(Params::REG_CLASSES, Results::REG_CLASSES) };
        if let Some(target) = &self.target
            && shape.is_some()
            && target.reg_shape() == shape
        {
            let floats =
                const { vm::invoke::any_float(Params::REG_CLASSES) || vm::invoke::any_float(Results::REG_CLASSES) };
            store.opaque.expose_contents();
            let mut args = RegArgs::default();
            params.to_regs(&mut args);
            let results = if floats {
                vm::store::invoke_regs::<_, true>(store, target, &args)
            } else {
                vm::store::invoke_regs::<_, false>(store, target, &args)
            };
            return Ok(Results::from_regs(&results.map_err(trap::from_record)?));
        }
        let slots = Params::COUNT.max(Results::COUNT).max(1);
        vm::with_stack_values(slots, |values| {
            params.store(&mut store.opaque, values)?;
            match &self.target {
                Some(target) => {
                    store.opaque.expose_contents();
                    vm::store::invoke_target(store, target, values).map_err(trap::from_record)?;
                }
                None => self.func.call_raw(store, values)?,
            }
            Ok(Results::load(&mut store.opaque, values))
        })
    }
}

/// The store and calling instance, as seen by a host function.
pub struct Caller<'a, T> {
    pub(crate) store: &'a mut StoreInner<T>,
    pub(crate) caller: Option<InstanceId>,
}

impl<T> Caller<'_, T> {
    /// The store's host data.
    pub fn data(&self) -> &T {
        &self.store.data
    }

    /// The store's host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.store.data
    }

    /// The engine.
    pub fn engine(&self) -> &crate::Engine {
        self.store.opaque.engine()
    }

    /// The fuel left, as [`Store::get_fuel`](crate::Store::get_fuel): what
    /// the calling wasm has run so far is already deducted.
    ///
    /// # Errors
    ///
    /// Fails when the engine does not consume fuel ([`Config::consume_fuel`](crate::Config::consume_fuel)).
    pub fn get_fuel(&self) -> Result<u64> {
        self.store.opaque.get_fuel()
    }

    /// Sets the fuel left, as [`Store::set_fuel`](crate::Store::set_fuel); the
    /// calling wasm continues with this amount (a host function can charge
    /// for its own work this way).
    ///
    /// # Errors
    ///
    /// Fails when the engine does not consume fuel ([`Config::consume_fuel`](crate::Config::consume_fuel)).
    pub fn set_fuel(&mut self, fuel: u64) -> Result<()> {
        self.store.opaque.set_fuel(fuel)
    }

    /// Looks up an export of the calling instance (commonly its memory).
    /// `None` when called from the host directly or when there is no such export.
    pub fn get_export(&mut self, name: &str) -> Option<Extern> {
        let inst = self.caller?;
        crate::instance::instance_export(&mut self.store.opaque, inst, name)
    }
}

impl<T> AsContext for Caller<'_, T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(self.store)
    }
}

impl<T> AsContextMut for Caller<'_, T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut(self.store)
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type that corresponds to a wasm value type.
pub trait WasmTy: sealed::Sealed + Sized + Send + 'static {
    #[doc(hidden)]
    fn valtype() -> ValType;
    #[doc(hidden)]
    fn into_raw(self, store: &mut StoreOpaque) -> Result<ValRaw>;
    #[doc(hidden)]
    fn from_raw(raw: ValRaw, store: &mut StoreOpaque) -> Self;
    /// The register class of values of this type (`vm::invoke::REG_*`):
    /// whether a typed call can pass them in registers.
    #[doc(hidden)]
    const REG_CLASS: u8 = REG_NONE;
    /// The value as the bits of its register (a 32-bit value in the low
    /// half); only for types with a register class.
    #[doc(hidden)]
    fn to_reg(self) -> u64 {
        unreachable!("{} is not passed in registers", Self::valtype())
    }
    /// The value from the bits of its register; only for types with a
    /// register class.
    #[doc(hidden)]
    fn from_reg(_bits: u64) -> Self {
        unreachable!("{} is not passed in registers", Self::valtype())
    }
}

macro_rules! wasm_ty_num {
    ($($t:ty => $vt:ident, $class:ident, $into:expr, $from:expr;)*) => {$(
        impl sealed::Sealed for $t {}
        impl WasmTy for $t {
            fn valtype() -> ValType { ValType::$vt }
            fn into_raw(self, _: &mut StoreOpaque) -> Result<ValRaw> { Ok(($into)(self)) }
            fn from_raw(raw: ValRaw, _: &mut StoreOpaque) -> Self { ($from)(raw) }
            const REG_CLASS: u8 = $class;
            fn to_reg(self) -> u64 { ($into)(self).get_f64() }
            fn from_reg(bits: u64) -> Self { ($from)(ValRaw::f64(bits)) }
        }
    )*};
}

wasm_ty_num! {
    i32 => I32, REG_INT, ValRaw::i32, |r: ValRaw| r.get_i32();
    u32 => I32, REG_INT, |v: u32| ValRaw::i32(v as i32), |r: ValRaw| r.get_i32() as u32;
    i64 => I64, REG_INT, ValRaw::i64, |r: ValRaw| r.get_i64();
    u64 => I64, REG_INT, |v: u64| ValRaw::i64(v as i64), |r: ValRaw| r.get_i64() as u64;
    f32 => F32, REG_FLOAT, |v: f32| ValRaw::f32(v.to_bits()), |r: ValRaw| f32::from_bits(r.get_f32());
    f64 => F64, REG_FLOAT, |v: f64| ValRaw::f64(v.to_bits()), |r: ValRaw| f64::from_bits(r.get_f64());
    V128 => V128, REG_NONE, |v: V128| ValRaw::u128(v.as_u128()), |r: ValRaw| V128::from(r.get_u128());
}

impl sealed::Sealed for Option<Func> {}
impl WasmTy for Option<Func> {
    fn valtype() -> ValType {
        ValType::FuncRef
    }
    fn into_raw(self, store: &mut StoreOpaque) -> Result<ValRaw> {
        Val::FuncRef(self).to_raw(store)
    }
    fn from_raw(raw: ValRaw, store: &mut StoreOpaque) -> Self {
        store.func_from_raw(raw.get_ptr())
    }
}

impl sealed::Sealed for Option<ExternRef> {}
impl WasmTy for Option<ExternRef> {
    fn valtype() -> ValType {
        ValType::ExternRef
    }
    fn into_raw(self, store: &mut StoreOpaque) -> Result<ValRaw> {
        Val::ExternRef(self).to_raw(store)
    }
    fn from_raw(raw: ValRaw, store: &mut StoreOpaque) -> Self {
        match Val::from_raw(raw, ValType::ExternRef, store) {
            Val::ExternRef(r) => r,
            _ => None,
        }
    }
}

impl sealed::Sealed for Option<crate::ExnRef> {}
impl WasmTy for Option<crate::ExnRef> {
    fn valtype() -> ValType {
        ValType::ExnRef
    }
    fn into_raw(self, store: &mut StoreOpaque) -> Result<ValRaw> {
        Val::ExnRef(self).to_raw(store)
    }
    fn from_raw(raw: ValRaw, store: &mut StoreOpaque) -> Self {
        crate::ExnRef::from_raw(store, raw.get_ptr())
    }
}

/// A list of wasm values as Rust types: a single [`WasmTy`], `()`, or a
/// tuple of up to 16.
pub trait WasmTyList: Send + Sized {
    #[doc(hidden)]
    fn valtypes() -> Vec<ValType>;
    #[doc(hidden)]
    fn typecheck(tys: &[env::WasmValType]) -> std::result::Result<(), String> {
        let want = Self::valtypes();
        if want.len() != tys.len() {
            return Err(format!("expected {} values, the function has {}", want.len(), tys.len()));
        }
        for (i, (w, t)) in want.iter().zip(tys).enumerate() {
            // `Option<Func>` stands for every function reference type; a
            // typed or non-null one is checked value by value on each call
            // (and its results are always functions).
            let func_ref = |t: &env::WasmValType| matches!(t, env::WasmValType::Ref(r) if r.is_func());
            // Likewise `Option<ExnRef>` for every exception reference type.
            let exn_ref = |t: &env::WasmValType| matches!(t, env::WasmValType::Ref(r) if r.is_exn());
            if w.to_env() != *t && !(func_ref(&w.to_env()) && func_ref(t)) && !(exn_ref(&w.to_env()) && exn_ref(t)) {
                return Err(format!("value {i}: expected {}, the function has {t}", w));
            }
        }
        Ok(())
    }
    #[doc(hidden)]
    const COUNT: usize;
    #[doc(hidden)]
    fn store(self, store: &mut StoreOpaque, out: &mut [ValRaw]) -> Result<()>;
    #[doc(hidden)]
    fn load(store: &mut StoreOpaque, values: &[ValRaw]) -> Self;
    /// The register classes of the values, in order.
    #[doc(hidden)]
    const REG_CLASSES: &'static [u8];
    /// Places the values in their registers, each class in order (only
    /// for lists with a register shape).
    #[doc(hidden)]
    fn to_regs(self, regs: &mut RegArgs);
    /// The values from their registers, as [`WasmTyList::to_regs`] places
    /// them.
    #[doc(hidden)]
    fn from_regs(regs: &RegResults) -> Self;
}

/// Parameters of a [`TypedFunc`].
pub trait WasmParams: WasmTyList {}
impl<L: WasmTyList> WasmParams for L {}
/// Results of a [`TypedFunc`].
pub trait WasmResults: WasmTyList {}
impl<L: WasmTyList> WasmResults for L {}

impl<A: WasmTy> WasmTyList for A {
    const COUNT: usize = 1;
    fn valtypes() -> Vec<ValType> {
        vec![A::valtype()]
    }
    fn store(self, store: &mut StoreOpaque, out: &mut [ValRaw]) -> Result<()> {
        out[0] = self.into_raw(store)?;
        Ok(())
    }
    fn load(store: &mut StoreOpaque, values: &[ValRaw]) -> Self {
        A::from_raw(values[0], store)
    }
    const REG_CLASSES: &'static [u8] = &[A::REG_CLASS];
    fn to_regs(self, regs: &mut RegArgs) {
        (self,).to_regs(regs)
    }
    fn from_regs(regs: &RegResults) -> Self {
        <(A,)>::from_regs(regs).0
    }
}

/// Invokes `$mac` with every parameter list the typed API supports: the
/// empty one and `A1` up to `A1 .. A16`. The one place the arity limit is
/// written.
macro_rules! for_each_arity {
    ($mac:ident) => {
        $mac! {
            ()
            (A1)
            (A1 A2)
            (A1 A2 A3)
            (A1 A2 A3 A4)
            (A1 A2 A3 A4 A5)
            (A1 A2 A3 A4 A5 A6)
            (A1 A2 A3 A4 A5 A6 A7)
            (A1 A2 A3 A4 A5 A6 A7 A8)
            (A1 A2 A3 A4 A5 A6 A7 A8 A9)
            (A1 A2 A3 A4 A5 A6 A7 A8 A9 A10)
            (A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11)
            (A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12)
            (A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12 A13)
            (A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12 A13 A14)
            (A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12 A13 A14 A15)
            (A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12 A13 A14 A15 A16)
        }
    };
}

macro_rules! tuple_list {
    ($(($($a:ident)*))*) => {$(
        #[allow(non_snake_case, unused_mut, unused_variables, unused_assignments)]
        impl<$($a: WasmTy,)*> WasmTyList for ($($a,)*) {
            fn valtypes() -> Vec<ValType> { vec![$($a::valtype()),*] }
            const COUNT: usize = 0 $(+ { let _ = stringify!($a); 1 })*;
            fn store(self, store: &mut StoreOpaque, out: &mut [ValRaw]) -> Result<()> {
                let ($($a,)*) = self;
                let mut i = 0;
                $( out[i] = $a.into_raw(store)?; i += 1; )*
                Ok(())
            }
            fn load(store: &mut StoreOpaque, values: &[ValRaw]) -> Self {
                let mut i = 0;
                $( let $a = $a::from_raw(values[i], store); i += 1; )*
                #[allow(clippy::unused_unit)]
                ($($a,)*)
            }
            const REG_CLASSES: &'static [u8] = &[$($a::REG_CLASS),*];
            fn to_regs(self, regs: &mut RegArgs) {
                let ($($a,)*) = self;
                let (mut i, mut f) = (0, 0);
                $(
                    let slot = if $a::REG_CLASS == REG_FLOAT {
                        f += 1;
                        regs.floats.get_mut(f - 1)
                    } else {
                        i += 1;
                        regs.ints.get_mut(i - 1)
                    };
                    if let Some(slot) = slot {
                        *slot = $a.to_reg();
                    }
                )*
            }
            fn from_regs(regs: &RegResults) -> Self {
                let (mut i, mut f) = (0, 0);
                $(
                    let bits = if $a::REG_CLASS == REG_FLOAT {
                        f += 1;
                        regs.floats.get(f - 1)
                    } else {
                        i += 1;
                        regs.ints.get(i - 1)
                    };
                    let $a = $a::from_reg(bits.copied().unwrap_or(0));
                )*
                #[allow(clippy::unused_unit)]
                ($($a,)*)
            }
        }
    )*};
}

for_each_arity!(tuple_list);

/// The body of a dynamically typed host function (`Func::new`,
/// `Linker::func_new`): converts the raw arguments to [`Val`]s, calls `f`,
/// and checks that each result has the type `ty` declares before storing
/// it back.
pub(crate) fn dynamic_host_fn<T: 'static>(
    ty: env::FuncType,
    f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
) -> Arc<HostFn<StoreInner<T>>> {
    Arc::new(move |store: &mut StoreInner<T>, caller: Option<InstanceId>, values: &mut [ValRaw]| -> Result<()> {
        let params: Vec<Val> = ty
            .params()
            .iter()
            .zip(values.iter())
            .map(|(t, v)| Val::from_raw(*v, ValType::from_env(*t), &mut store.opaque))
            .collect();
        let mut results: Vec<Val> = ty.results().iter().map(|t| Val::default_for(ValType::from_env(*t))).collect();
        f(Caller { store: &mut *store, caller }, &params, &mut results)?;
        for (i, (r, t)) in results.iter().zip(ty.results()).enumerate() {
            if r.ty() != ValType::from_env(*t) {
                bail!("host function returned a {} for result {i}, expected {t}", r.ty());
            }
            values[i] = r.to_raw(&mut store.opaque)?;
        }
        Ok(())
    })
}

/// What a host closure may return: values, or a `Result` of values.
pub trait WasmRet {
    #[doc(hidden)]
    fn valtypes() -> Vec<ValType>;
    #[doc(hidden)]
    fn store_results(self, store: &mut StoreOpaque, out: &mut [ValRaw]) -> Result<()>;
}

impl<L: WasmTyList> WasmRet for L {
    fn valtypes() -> Vec<ValType> {
        L::valtypes()
    }
    fn store_results(self, store: &mut StoreOpaque, out: &mut [ValRaw]) -> Result<()> {
        self.store(store, out)
    }
}

impl<L: WasmTyList> WasmRet for Result<L> {
    fn valtypes() -> Vec<ValType> {
        L::valtypes()
    }
    fn store_results(self, store: &mut StoreOpaque, out: &mut [ValRaw]) -> Result<()> {
        self?.store(store, out)
    }
}

/// Marker for host closures that take a [`Caller`] first.
pub struct WithCaller<T>(PhantomData<T>);

/// A Rust closure that can become a host function (see [`Func::wrap`]).
pub trait IntoFunc<T, Params, Results>: Send + Sync + 'static {
    #[doc(hidden)]
    fn into_host_fn(self) -> (env::FuncType, Arc<HostFn<StoreInner<T>>>);
}

macro_rules! into_func {
    ($(($($a:ident)*))*) => {$(
        #[allow(non_snake_case, unused_mut, unused_variables, unused_assignments)]
        impl<T: 'static, F, $($a: WasmTy,)* R: WasmRet> IntoFunc<T, ($($a,)*), R> for F
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
        {
            fn into_host_fn(self) -> (env::FuncType, Arc<HostFn<StoreInner<T>>>) {
                let ty = FuncType::new(vec![$($a::valtype()),*], R::valtypes()).0;
                let body = move |store: &mut StoreInner<T>, _caller: Option<InstanceId>, values: &mut [ValRaw]| -> Result<()> {
                    let mut i = 0;
                    $( let $a = $a::from_raw(values[i], &mut store.opaque); i += 1; )*
                    let r = (self)($($a),*);
                    r.store_results(&mut store.opaque, values)
                };
                (ty, Arc::new(body))
            }
        }

        #[allow(non_snake_case, unused_mut, unused_variables, unused_assignments)]
        impl<T: 'static, F, $($a: WasmTy,)* R: WasmRet> IntoFunc<T, (WithCaller<T>, $($a,)*), R> for F
        where
            F: Fn(Caller<'_, T>, $($a),*) -> R + Send + Sync + 'static,
        {
            fn into_host_fn(self) -> (env::FuncType, Arc<HostFn<StoreInner<T>>>) {
                let ty = FuncType::new(vec![$($a::valtype()),*], R::valtypes()).0;
                let body = move |store: &mut StoreInner<T>, caller: Option<InstanceId>, values: &mut [ValRaw]| -> Result<()> {
                    let mut i = 0;
                    $( let $a = $a::from_raw(values[i], &mut store.opaque); i += 1; )*
                    let r = (self)(Caller { store: &mut *store, caller }, $($a),*);
                    r.store_results(&mut store.opaque, values)
                };
                (ty, Arc::new(body))
            }
        }
    )*};
}

for_each_arity!(into_func);
