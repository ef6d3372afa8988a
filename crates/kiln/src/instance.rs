//! Instantiation and instance exports.

use crate::Engine;
use crate::externals::{Extern, Global, Memory, SharedMemory, Table};
use crate::func::{Func, TypedFunc, WasmParams, WasmResults};
use crate::module::Module;
use crate::store::StoreId;
use crate::store::{AsContextMut, StoreInner, StoreOpaque, Stored};
use crate::tag::Tag;
use crate::trap::Trap;
use crate::types::ExternType;
use crate::vm;
use crate::vm::instance::InstantiationError;
use crate::vm::store::Import;
use crate::vm::store_ids::InstanceId;
use anyhow::{Context, Result, anyhow, bail};
use kiln_environ::{self as env, EntityIndex, EntityType};

/// An instantiated module: its functions, memories, tables and globals
/// live in the store it was created in.
///
/// Handles compare equal when they name the same object of the same store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Instance(pub(crate) Stored<InstanceId>);

impl Instance {
    /// Instantiates `module` with `imports` given in the order of
    /// [`Module::imports`], then runs its start function.
    ///
    /// # Errors
    ///
    /// Wrong number or types of imports ("incompatible import type");
    /// failure to create a memory or table; a [`Trap`] from an element or
    /// data segment that does not fit, or from the start function.
    pub fn new<T: 'static>(
        mut store: impl AsContextMut<Data = T>,
        module: &Module,
        imports: &[Extern],
    ) -> Result<Instance> {
        instantiate(store.as_context_mut().0, module, imports, |_| false)
    }

    /// The export `name`, if any.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn get_export(&self, mut store: impl AsContextMut, name: &str) -> Option<Extern> {
        let store = &mut store.as_context_mut().0.opaque;
        store.check(&self.0);
        instance_export(store, self.0.index, name)
    }

    /// The exported function `name`, if any.
    pub fn get_func(&self, store: impl AsContextMut, name: &str) -> Option<Func> {
        self.get_export(store, name)?.into_func()
    }

    /// The exported function `name` with a static signature.
    ///
    /// # Errors
    ///
    /// No such function export, or its signature differs.
    pub fn get_typed_func<Params: WasmParams, Results: WasmResults>(
        &self,
        mut store: impl AsContextMut,
        name: &str,
    ) -> Result<TypedFunc<Params, Results>> {
        let f = self.get_func(&mut store, name).ok_or_else(|| anyhow!("failed to find function export `{name}`"))?;
        f.typed(&store).with_context(|| format!("failed to convert function `{name}` to a typed function"))
    }

    /// The exported memory `name`, if any.
    pub fn get_memory(&self, store: impl AsContextMut, name: &str) -> Option<Memory> {
        self.get_export(store, name)?.into_memory()
    }

    /// The exported table `name`, if any.
    pub fn get_table(&self, store: impl AsContextMut, name: &str) -> Option<Table> {
        self.get_export(store, name)?.into_table()
    }

    /// The exported global `name`, if any.
    pub fn get_global(&self, store: impl AsContextMut, name: &str) -> Option<Global> {
        self.get_export(store, name)?.into_global()
    }

    /// The exported tag `name`, if there is one.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn get_tag(&self, store: impl AsContextMut, name: &str) -> Option<Tag> {
        self.get_export(store, name)?.into_tag()
    }

    /// All exports, as `(name, item)` pairs in declaration order.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn exports(&self, mut store: impl AsContextMut) -> Vec<(String, Extern)> {
        let store = &mut store.as_context_mut().0.opaque;
        store.check(&self.0);
        let module = store.instance_module(self.0.index).clone();
        module
            .info()
            .exports
            .iter()
            .filter_map(|e| Some((e.name.clone(), export_item(store, self.0.index, e.index).ok()?)))
            .collect()
    }

    /// The module this is an instance of.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn module<'a, T: 'a>(&self, store: impl Into<crate::store::StoreContext<'a, T>>) -> &'a Module {
        let store = store.into().0;
        store.opaque.check(&self.0);
        store.opaque.instance_module(self.0.index)
    }
}

pub(crate) fn instance_export(store: &mut StoreOpaque, instance: InstanceId, name: &str) -> Option<Extern> {
    let module = store.instance_module(instance).clone();
    let e = module.info().exports.iter().find(|e| e.name == name)?;
    export_item(store, instance, e.index).ok()
}

fn export_item(store: &mut StoreOpaque, instance: InstanceId, index: EntityIndex) -> Result<Extern> {
    Ok(match index {
        EntityIndex::Function(f) => Extern::Func(store.instance_func(instance, f)?),
        EntityIndex::Memory(m) => match store.vm().instance_shared_memory(instance, m) {
            Some(mem) => Extern::SharedMemory(SharedMemory { mem, engine: store.engine().clone() }),
            None => {
                store.expose_contents();
                Extern::Memory(Memory(store.stored(store.vm().instance_memory(instance, m))))
            }
        },
        EntityIndex::Table(t) => {
            store.expose_contents();
            Extern::Table(Table(store.stored(store.vm().instance_table(instance, t))))
        }
        EntityIndex::Global(g) => Extern::Global(Global(store.stored(store.vm().instance_global(instance, g)))),
        EntityIndex::Tag(t) => Extern::Tag(Tag(store.stored(store.vm().instance_tag(instance, t)))),
    })
}

fn limits_match(actual_min: u64, actual_max: Option<u64>, want_min: u64, want_max: Option<u64>) -> bool {
    actual_min >= want_min
        && match want_max {
            None => true,
            Some(wm) => actual_max.is_some_and(|am| am <= wm),
        }
}

/// Whether a global of type `have` can be imported where `want` is
/// declared (both in engine form): the same mutability, and the same
/// content type, or for an immutable global a subtype of it.
fn global_matches(have: env::GlobalType, want: env::GlobalType, subtype: &impl Fn(u32, u32) -> bool) -> bool {
    have.mutable == want.mutable
        && match (have.content, want.content) {
            (env::WasmValType::Ref(h), env::WasmValType::Ref(w)) if !want.mutable => h.is_subtype_of(&w, subtype),
            (h, w) => h == w,
        }
}

/// Checks `ext` against the import's expected type. Function and tag types
/// are compared by engine type id (`type_ids`: the module's), which is
/// iso-recursive type equality; value types that name other types are
/// compared in engine form, since the same type has different indices in
/// different modules.
fn check_import(
    store: &StoreOpaque,
    module: &env::ModuleInfo,
    type_ids: &[u32],
    want: &EntityType,
    ext: &Extern,
) -> Result<()> {
    let ok = match (want, ext) {
        (EntityType::Function(t), Extern::Func(f)) => {
            store.engine().inner.types.is_subtype(store.vm().func_type_id(f.0.index), type_ids[t.index()])
        }
        (EntityType::Global(g), Extern::Global(x)) => {
            global_matches(store.vm().global_ty(x.0.index), g.canonical(type_ids), &|a, b| {
                store.engine().inner.types.is_subtype(a, b)
            })
        }
        (EntityType::Table(t), Extern::Table(x)) => {
            let a = store.vm().table(x.0.index).ty();
            a.element == t.element.canonical(type_ids)
                && a.table64 == t.table64
                && limits_match(a.minimum, a.maximum, t.minimum, t.maximum)
        }
        (EntityType::Memory(m), Extern::SharedMemory(x)) => {
            let a = x.mem.ty();
            a.memory64 == m.memory64
                && a.shared == m.shared
                && a.page_size_log2 == m.page_size_log2
                && limits_match(a.minimum, a.maximum, m.minimum, m.maximum)
        }
        (EntityType::Memory(m), Extern::Memory(x)) => {
            let a = store.vm().memory(x.0.index).ty();
            a.memory64 == m.memory64
                && a.shared == m.shared
                && a.page_size_log2 == m.page_size_log2
                && limits_match(a.minimum, a.maximum, m.minimum, m.maximum)
        }
        (EntityType::Tag(t), Extern::Tag(x)) => store.vm().tag_type_id(x.0.index) == type_ids[t.index()],
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let found = match ext {
        Extern::Func(f) => ExternType::Func(crate::types::FuncType((**store.vm().func_ty(f.0.index)).clone())),
        Extern::Global(x) => ExternType::Global(crate::types::GlobalType(store.vm().global_ty(x.0.index))),
        Extern::Table(x) => ExternType::Table(crate::types::TableType(store.vm().table(x.0.index).ty())),
        Extern::Memory(x) => ExternType::Memory(crate::types::MemoryType(store.vm().memory(x.0.index).ty())),
        Extern::SharedMemory(x) => ExternType::Memory(x.ty()),
        Extern::Tag(x) => {
            ExternType::Tag(crate::TagType(crate::types::FuncType((**store.vm().tag_ty(x.0.index)).clone())))
        }
    };
    bail!("incompatible import type: expected {}, found {}", ExternType::from_entity(module, want), found)
}

/// Asks the store's limiter about the new instance and its initial memory
/// and table sizes.
fn check_limits<T: 'static>(store: &mut StoreInner<T>, module: &Module) -> Result<()> {
    let info = module.info();
    let (max_instances, max_tables, max_memories) = store.count_limits();
    if store.opaque.vm().instance_count() >= max_instances {
        bail!("instance limit of {max_instances} per store exceeded");
    }
    if store.opaque.vm().table_count() + info.num_defined_tables() as usize > max_tables {
        bail!("table limit of {max_tables} per store exceeded");
    }
    if store.opaque.vm().memory_count() + info.num_defined_memories() as usize > max_memories {
        bail!("memory limit of {max_memories} per store exceeded");
    }
    for m in info.defined_memories().map(|d| info.memory_index(d)) {
        let ty = &info.memories[m.index()];
        let bytes = |pages: u64| usize::try_from(pages.saturating_mul(ty.page_size())).unwrap_or(usize::MAX);
        store.check_new_memory(
            &describe(info, "memory", EntityIndex::Memory(m)),
            bytes(ty.minimum),
            ty.maximum.map(bytes),
        )?;
    }
    for t in info.defined_tables().map(|d| info.table_index(d)) {
        let ty = &info.tables[t.index()];
        store.check_new_table(&describe(info, "table", EntityIndex::Table(t)), ty.minimum, ty.maximum)?;
    }
    Ok(())
}

/// Names entity `index` of `module` for errors: `table 3`, or
/// `table 3 (export "name")` if the module exports it.
fn describe(module: &env::ModuleInfo, kind: &str, index: EntityIndex) -> String {
    let n = match index {
        EntityIndex::Function(i) => i.as_u32(),
        EntityIndex::Table(i) => i.as_u32(),
        EntityIndex::Memory(i) => i.as_u32(),
        EntityIndex::Global(i) => i.as_u32(),
        EntityIndex::Tag(i) => i.as_u32(),
    };
    match module.exports.iter().find(|e| e.index == index) {
        Some(e) => format!("{kind} {n} (export {:?})", e.name),
        None => format!("{kind} {n}"),
    }
}

/// The store `ext` belongs to (shared memories belong to none).
fn store_of(ext: &Extern) -> StoreId {
    match ext {
        Extern::Func(f) => f.0.store,
        Extern::Global(g) => g.0.store,
        Extern::Table(t) => t.0.store,
        Extern::Memory(m) => m.0.store,
        Extern::Tag(t) => t.0.store,
        Extern::SharedMemory(_) => StoreId::shared(),
    }
}

/// Instantiates `module` with `imports`. `prechecked(i)` says that import
/// `i` was already type-checked (host functions of an `InstancePre`).
pub(crate) fn instantiate<T: 'static>(
    store: &mut StoreInner<T>,
    module: &Module,
    imports: &[Extern],
    prechecked: impl Fn(usize) -> bool,
) -> Result<Instance> {
    check_limits(store, module)?;
    let opaque = &mut store.opaque;
    if !crate::Engine::same(module.engine(), opaque.engine()) {
        bail!("cross-engine instantiation is not supported");
    }
    let info = module.info();
    if imports.len() != info.imports.len() {
        bail!("expected {} imports, found {}", info.imports.len(), imports.len());
    }
    let mut vm_imports = Vec::with_capacity(imports.len());
    for (i, (imp, ext)) in info.imports.iter().zip(imports).enumerate() {
        if !matches!(ext, Extern::SharedMemory(_)) && store_of(ext) != opaque.id() {
            bail!("import `{}::{}` belongs to another store", imp.module, imp.field);
        }
        if !prechecked(i) {
            check_import(opaque, info, &module.runtime().type_ids, &imp.ty, ext)
                .with_context(|| format!("import `{}::{}`", imp.module, imp.field))?;
        }
        vm_imports.push(match ext {
            Extern::Func(f) => Import::Func(f.0.index),
            Extern::Table(t) => Import::Table(t.0.index),
            Extern::Memory(m) => Import::Memory(m.0.index),
            Extern::Tag(t) => Import::Tag(t.0.index),
            Extern::SharedMemory(m) => {
                if !Engine::same(&m.engine, opaque.engine()) {
                    bail!("import `{}::{}`: shared memory belongs to another engine", imp.module, imp.field);
                }
                Import::SharedMemory(m.mem.clone())
            }
            Extern::Global(g) => Import::Global(g.0.index),
        });
    }
    let engine = opaque.engine().clone();
    let id = opaque
        .vm_mut()
        .instantiate(module.runtime(), &engine.inner.allocator, &vm_imports)
        .map_err(|e| anyhow!("{e}"))?;
    opaque.push_instance_module(id, module.clone());
    let (init, wrote_memories) = opaque.vm_mut().initialize(id);
    if wrote_memories {
        opaque.expose_contents();
    }
    match init {
        Ok(()) => {}
        Err(InstantiationError::Trap(code)) => return Err(Trap::new(code).into()),
        Err(e) => bail!("{e}"),
    }

    if let Some(start) = info.start {
        let f = opaque.instance_func(id, start)?;
        let mut values = [vm::vmcontext::ValRaw::default(); 1];
        f.call_raw(store, &mut values)?;
    }
    Ok(Instance(store.opaque.stored(id)))
}
