//! `Linker<T>`: resolves a module's imports by name.

use crate::Engine;
use crate::externals::Extern;
use crate::func::{Caller, Func, HostSig, IntoFunc, dynamic_host_fn, new_host_with_sig};
use crate::instance::Instance;
use crate::module::Module;
use crate::store::{AsContextMut, StoreInner};
use crate::types::FuncType;
use crate::values::Val;
use crate::vm::host_func::HostFn;
use anyhow::{Result, bail};
use kiln_environ as env;
use std::collections::HashMap;
use std::sync::Arc;

enum Definition<T> {
    Extern(Extern),
    HostFunc(Arc<HostFuncDef<T>>),
}

impl<T> Clone for Definition<T> {
    fn clone(&self) -> Self {
        match self {
            Definition::Extern(e) => Definition::Extern(e.clone()),
            Definition::HostFunc(f) => Definition::HostFunc(f.clone()),
        }
    }
}

struct HostFuncDef<T> {
    sig: HostSig,
    body: Arc<HostFn<StoreInner<T>>>,
    /// Defined as async (`func_wrap_async`, `func_new_async`): calls may
    /// wait, so a store that has it runs async calls on a fiber.
    waits: bool,
}

/// Names importable items (`module::name`) and instantiates modules
/// against them. Host functions defined here are store-independent: they
/// are created in a store the first time a module using them is
/// instantiated there.
pub struct Linker<T> {
    engine: Engine,
    defs: HashMap<(String, String), Definition<T>>,
    allow_shadowing: bool,
}

impl<T: 'static> Linker<T> {
    /// An empty linker for `engine`.
    pub fn new(engine: &Engine) -> Linker<T> {
        Linker { engine: engine.clone(), defs: HashMap::new(), allow_shadowing: false }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether a later definition may replace an earlier one of the same
    /// name (default: no, it is an error).
    pub fn allow_shadowing(&mut self, allow: bool) -> &mut Self {
        self.allow_shadowing = allow;
        self
    }

    fn insert(&mut self, module: &str, name: &str, def: Definition<T>) -> Result<()> {
        let key = (module.to_string(), name.to_string());
        if !self.allow_shadowing && self.defs.contains_key(&key) {
            bail!("import of `{module}::{name}` defined twice");
        }
        self.defs.insert(key, def);
        Ok(())
    }

    /// Defines `module::name` as `item`.
    ///
    /// # Errors
    ///
    /// The name is already defined and shadowing is off.
    pub fn define(&mut self, module: &str, name: &str, item: impl Into<Extern>) -> Result<&mut Self> {
        self.insert(module, name, Definition::Extern(item.into()))?;
        Ok(self)
    }

    /// Defines `module::name` as a host function from a Rust closure (see
    /// [`Func::wrap`]).
    ///
    /// # Errors
    ///
    /// The name is already defined and shadowing is off.
    pub fn func_wrap<Params, Results>(
        &mut self,
        module: &str,
        name: &str,
        f: impl IntoFunc<T, Params, Results>,
    ) -> Result<&mut Self> {
        let (ty, body) = f.into_host_fn();
        let sig = HostSig::new(&self.engine, &ty)?;
        self.insert(module, name, Definition::HostFunc(Arc::new(HostFuncDef { sig, body, waits: false })))?;
        Ok(self)
    }

    /// Defines `module::name` as the host function `body` of type `ty`,
    /// which may wait on the running async call if `waits`.
    ///
    /// # Errors
    ///
    /// The name is already defined and shadowing is off, or the
    /// signature's trampoline could not be made.
    pub(crate) fn define_host_func(
        &mut self,
        module: &str,
        name: &str,
        ty: env::FuncType,
        body: Arc<HostFn<StoreInner<T>>>,
        waits: bool,
    ) -> Result<&mut Self> {
        let sig = HostSig::new(&self.engine, &ty)?;
        self.insert(module, name, Definition::HostFunc(Arc::new(HostFuncDef { sig, body, waits })))?;
        Ok(self)
    }

    /// Defines `module::name` as a dynamically typed host function (see
    /// [`Func::new`]).
    ///
    /// # Errors
    ///
    /// The name is already defined and shadowing is off.
    pub fn func_new(
        &mut self,
        module: &str,
        name: &str,
        ty: FuncType,
        f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
    ) -> Result<&mut Self> {
        let body = dynamic_host_fn(ty.0.clone(), f);
        let sig = HostSig::new(&self.engine, &ty.0)?;
        self.insert(module, name, Definition::HostFunc(Arc::new(HostFuncDef { sig, body, waits: false })))?;
        Ok(self)
    }

    /// Defines every export of `instance` under module name `module`.
    ///
    /// # Errors
    ///
    /// A name is already defined and shadowing is off.
    pub fn instance(
        &mut self,
        mut store: impl AsContextMut<Data = T>,
        module: &str,
        instance: Instance,
    ) -> Result<&mut Self> {
        for (name, item) in instance.exports(&mut store) {
            self.insert(module, &name, Definition::Extern(item))?;
        }
        Ok(self)
    }

    /// Looks up `module::name`, creating host functions in `store` as needed.
    pub fn get(&self, mut store: impl AsContextMut<Data = T>, module: &str, name: &str) -> Option<Extern> {
        let def = self.defs.get(&(module.to_string(), name.to_string()))?.clone();
        self.materialize(store.as_context_mut().0, def).ok()
    }

    fn materialize(&self, store: &mut StoreInner<T>, def: Definition<T>) -> Result<Extern> {
        materialize(store, &def)
    }

    fn resolve(&self, module: &Module) -> Result<Vec<Definition<T>>> {
        module
            .info()
            .imports
            .iter()
            .map(|imp| match self.defs.get(&(imp.module.clone(), imp.field.clone())) {
                Some(def) => Ok(def.clone()),
                None => bail!("unknown import: `{}::{}` has not been defined", imp.module, imp.field),
            })
            .collect()
    }

    /// Resolves and type-checks `module`'s imports once, returning an
    /// [`InstancePre`] that instantiates it repeatedly (in any store of
    /// this engine) without resolving names again.
    ///
    /// # Errors
    ///
    /// An import is not defined, or a host function has the wrong type.
    pub fn instantiate_pre(&self, module: &Module) -> Result<InstancePre<T>> {
        let defs = self.resolve(module)?;
        let info = module.info();
        for (imp, def) in info.imports.iter().zip(&defs) {
            if let (Definition::HostFunc(f), env::EntityType::Function(t)) = (def, &imp.ty)
                && !self.engine().inner.types.is_subtype(f.sig.type_id(), module.runtime().type_ids[t.index()])
            {
                bail!(
                    "import `{}::{}`: incompatible import type: expected {}, found {}",
                    imp.module,
                    imp.field,
                    info.func_type_at(*t),
                    f.sig.ty()
                );
            }
        }
        Ok(InstancePre { module: module.clone(), defs })
    }

    /// Instantiates `module`, resolving each import by name.
    ///
    /// # Errors
    ///
    /// An import is not defined ("unknown import"), or as [`Instance::new`].
    pub fn instantiate(&self, mut store: impl AsContextMut<Data = T>, module: &Module) -> Result<Instance> {
        let store = store.as_context_mut().0;
        let defs = self.resolve(module)?;
        let imports = defs.into_iter().map(|d| self.materialize(store, d)).collect::<Result<Vec<_>>>()?;
        crate::instance::instantiate(store, module, &imports, |_| false)
    }

    /// Instantiates `module` and defines its exports under `name`.
    ///
    /// # Errors
    ///
    /// As [`Linker::instantiate`] and [`Linker::instance`].
    pub fn module(&mut self, mut store: impl AsContextMut<Data = T>, name: &str, module: &Module) -> Result<&mut Self> {
        let instance = self.instantiate(&mut store, module)?;
        self.instance(store, name, instance)
    }
}

/// The store's `Func` for a definition (host functions are created in the
/// store the first time, then reused).
fn materialize<T: 'static>(store: &mut StoreInner<T>, def: &Definition<T>) -> Result<Extern> {
    Ok(match def {
        Definition::Extern(e) => e.clone(),
        Definition::HostFunc(f) => {
            let key = Arc::as_ptr(f).cast::<()>() as usize;
            if let Some(idx) = store.opaque.linker_func(key) {
                return Ok(Extern::Func(Func(store.opaque.stored(idx))));
            }
            let func = new_host_with_sig(store, &f.sig, f.body.clone());
            if f.waits {
                store.opaque.note_may_wait();
            }
            // The store keys its cache by the definition's address and keeps
            // the definition alive, so the address is never reused.
            store.opaque.set_linker_func(f.clone(), func.0.index);
            Extern::Func(func)
        }
    })
}

/// A module whose imports a [`Linker`] has already resolved and checked:
/// [`InstancePre::instantiate`] only builds the instance.
pub struct InstancePre<T> {
    module: Module,
    defs: Vec<Definition<T>>,
}

impl<T> Clone for InstancePre<T> {
    fn clone(&self) -> Self {
        InstancePre { module: self.module.clone(), defs: self.defs.clone() }
    }
}

impl<T: 'static> InstancePre<T> {
    /// The module.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Instantiates the module in `store`.
    ///
    /// # Errors
    ///
    /// As [`Instance::new`] (limits, traps in initializers or the start
    /// function); imports that are store objects (memories, globals,
    /// instance exports) must belong to `store`.
    pub fn instantiate(&self, mut store: impl AsContextMut<Data = T>) -> Result<Instance> {
        let store = store.as_context_mut().0;
        // Room for this module's host functions up front (at most one per
        // import), so the store's tables grow once rather than doubling.
        let host = self.defs.len();
        let s = &mut store.opaque;
        s.vm_mut().reserve_host_funcs(host);
        s.reserve_linker_funcs(host);
        let imports = self.defs.iter().map(|d| materialize(store, d)).collect::<Result<Vec<_>>>()?;
        // Host functions' types were checked when this was made.
        let is_host = |i: usize| matches!(self.defs[i], Definition::HostFunc(_));
        crate::instance::instantiate(store, &self.module, &imports, is_host)
    }
}
