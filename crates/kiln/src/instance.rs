//! Instantiation and instance exports.

use crate::externals::{Extern, Global, Memory, SharedMemory, Table};
use crate::Engine;
use crate::store::StoreId;
use std::ptr::NonNull;
use crate::func::{Func, TypedFunc, WasmParams, WasmResults};
use crate::module::Module;
use crate::store::{AsContextMut, GlobalEntry, InstanceData, MemoryEntry, StoreInner, StoreOpaque, Stored, TableEntry};
use crate::trap::Trap;
use crate::types::ExternType;
use crate::vm;
use crate::vm::global::GlobalStorage;
use crate::vm::instance::{Imports, InstantiationError};
use anyhow::{Context, Result, anyhow, bail};
use kiln_environ::{self as env, EntityIndex, EntityType};

/// An instantiated module: its functions, memories, tables and globals
/// live in the store it was created in.
#[derive(Clone, Copy, Debug)]
pub struct Instance(pub(crate) Stored);

impl Instance {
    /// Instantiates `module` with `imports` given in the order of
    /// [`Module::imports`], then runs its start function.
    ///
    /// # Errors
    ///
    /// Wrong number or types of imports ("incompatible import type");
    /// failure to create a memory or table; a [`Trap`] from an element or
    /// data segment that does not fit, or from the start function.
    pub fn new<T: 'static>(mut store: impl AsContextMut<Data = T>, module: &Module, imports: &[Extern]) -> Result<Instance> {
        instantiate(store.as_context_mut().0, module, imports, |_| false)
    }

    /// The export `name`, if any.
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
        let f = self
            .get_func(&mut store, name)
            .ok_or_else(|| anyhow!("failed to find function export `{name}`"))?;
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

    /// All exports, as `(name, item)` pairs in declaration order.
    pub fn exports(&self, mut store: impl AsContextMut) -> Vec<(String, Extern)> {
        let store = &mut store.as_context_mut().0.opaque;
        store.check(&self.0);
        let module = store.instances[self.0.index].module.clone();
        module
            .info()
            .exports
            .iter()
            .filter_map(|e| Some((e.name.clone(), export_item(store, self.0.index, e.index).ok()?)))
            .collect()
    }

    /// The module this is an instance of.
    pub fn module<'a, T: 'a>(&self, store: impl Into<crate::store::StoreContext<'a, T>>) -> &'a Module {
        let store = store.into().0;
        store.opaque.check(&self.0);
        &store.opaque.instances[self.0.index].module
    }
}

pub(crate) fn instance_export(store: &mut StoreOpaque, instance: usize, name: &str) -> Option<Extern> {
    let module = store.instances[instance].module.clone();
    let e = module.info().exports.iter().find(|e| e.name == name)?;
    export_item(store, instance, e.index).ok()
}

fn export_item(store: &mut StoreOpaque, instance: usize, index: EntityIndex) -> Result<Extern> {
    Ok(match index {
        EntityIndex::Function(f) => Extern::Func(store.instance_func(instance, f)?),
        EntityIndex::Memory(m) => match store.instances[instance].handle.shared_memory(m) {
            Some(mem) => Extern::SharedMemory(SharedMemory { mem, engine: store.engine.clone() }),
            None => {
                store.contents_exposed = true;
                Extern::Memory(Memory(store.stored(store.instances[instance].memories[m as usize])))
            }
        },
        EntityIndex::Table(t) => {
            store.contents_exposed = true;
            Extern::Table(Table(store.stored(store.instances[instance].tables[t as usize])))
        }
        EntityIndex::Global(g) => Extern::Global(Global(store.stored(store.instances[instance].globals[g as usize]))),
    })
}

fn limits_match(actual_min: u64, actual_max: Option<u64>, want_min: u64, want_max: Option<u64>) -> bool {
    actual_min >= want_min
        && match want_max {
            None => true,
            Some(wm) => actual_max.is_some_and(|am| am <= wm),
        }
}

/// Checks `ext` against the import's expected type.
fn check_import(store: &StoreOpaque, module: &env::ModuleInfo, want: &EntityType, ext: &Extern) -> Result<()> {
    let ok = match (want, ext) {
        (EntityType::Function(t), Extern::Func(f)) => *store.funcs[f.0.index].ty == module.types[*t as usize],
        (EntityType::Global(g), Extern::Global(x)) => store.globals[x.0.index].ty == *g,
        (EntityType::Table(t), Extern::Table(x)) => {
            let a = store.table(x.0.index).ty();
            a.element == t.element && a.table64 == t.table64 && limits_match(a.minimum, a.maximum, t.minimum, t.maximum)
        }
        (EntityType::Memory(m), Extern::SharedMemory(x)) => {
            let a = x.mem.ty();
            a.memory64 == m.memory64
                && a.shared == m.shared
                && a.page_size_log2 == m.page_size_log2
                && limits_match(a.minimum, a.maximum, m.minimum, m.maximum)
        }
        (EntityType::Memory(m), Extern::Memory(x)) => {
            let a = store.memory(x.0.index).ty();
            a.memory64 == m.memory64
                && a.shared == m.shared
                && a.page_size_log2 == m.page_size_log2
                && limits_match(a.minimum, a.maximum, m.minimum, m.maximum)
        }
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let found = match ext {
        Extern::Func(f) => ExternType::Func(crate::types::FuncType((*store.funcs[f.0.index].ty).clone())),
        Extern::Global(x) => ExternType::Global(crate::types::GlobalType(store.globals[x.0.index].ty)),
        Extern::Table(x) => ExternType::Table(crate::types::TableType(store.table(x.0.index).ty())),
        Extern::Memory(x) => ExternType::Memory(crate::types::MemoryType(store.memory(x.0.index).ty())),
        Extern::SharedMemory(x) => ExternType::Memory(x.ty()),
    };
    bail!("incompatible import type: expected {}, found {}", ExternType::from_entity(module, want), found)
}

/// Asks the store's limiter about the new instance and its initial memory
/// and table sizes.
fn check_limits<T: 'static>(store: &mut StoreInner<T>, module: &Module) -> Result<()> {
    let info = module.info();
    let (max_instances, max_tables, max_memories) = store.count_limits();
    if store.opaque.instances.len() >= max_instances {
        bail!("instance limit of {max_instances} per store exceeded");
    }
    if store.opaque.tables.len() + info.num_defined_tables() as usize > max_tables {
        bail!("table limit of {max_tables} per store exceeded");
    }
    if store.opaque.memories.len() + info.num_defined_memories() as usize > max_memories {
        bail!("memory limit of {max_memories} per store exceeded");
    }
    for m in info.num_imported_memories..info.memories.len() as u32 {
        let ty = &info.memories[m as usize];
        let bytes = |pages: u64| usize::try_from(pages.saturating_mul(ty.page_size())).unwrap_or(usize::MAX);
        store.check_new_memory(&describe(info, "memory", EntityIndex::Memory(m)), bytes(ty.minimum), ty.maximum.map(bytes))?;
    }
    for t in info.num_imported_tables..info.tables.len() as u32 {
        let ty = &info.tables[t as usize];
        store.check_new_table(&describe(info, "table", EntityIndex::Table(t)), ty.minimum, ty.maximum)?;
    }
    Ok(())
}

/// Names entity `index` of `module` for errors: `table 3`, or
/// `table 3 (export "name")` if the module exports it.
fn describe(module: &env::ModuleInfo, kind: &str, index: EntityIndex) -> String {
    let n = match index {
        EntityIndex::Function(i) | EntityIndex::Table(i) | EntityIndex::Memory(i) | EntityIndex::Global(i) => i,
    };
    match module.exports.iter().find(|e| e.index == index) {
        Some(e) => format!("{kind} {n} (export {:?})", e.name),
        None => format!("{kind} {n}"),
    }
}

fn stored_of(ext: &Extern) -> Stored {
    match ext {
        Extern::Func(f) => f.0,
        Extern::Global(g) => g.0,
        Extern::Table(t) => t.0,
        Extern::Memory(m) => m.0,
        // Shared memories belong to no store.
        Extern::SharedMemory(_) => Stored { store: StoreId::shared(), index: 0 },
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
    if !crate::Engine::same(module.engine(), &opaque.engine) {
        bail!("cross-engine instantiation is not supported");
    }
    let info = module.info();
    if imports.len() != info.imports.len() {
        bail!("expected {} imports, found {}", info.imports.len(), imports.len());
    }
    let mut vm_imports = Imports::default();
    let mut func_ids = crate::fast_hash::FastHashMap::default();
    func_ids.reserve(info.num_imported_funcs as usize);
    let (mut mem_ids, mut table_ids, mut global_ids) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (imp, ext)) in info.imports.iter().zip(imports).enumerate() {
        if !matches!(ext, Extern::SharedMemory(_)) && stored_of(ext).store != opaque.id {
            bail!("import `{}::{}` belongs to another store", imp.module, imp.field);
        }
        if !prechecked(i) {
            check_import(opaque, info, &imp.ty, ext).with_context(|| format!("import `{}::{}`", imp.module, imp.field))?;
        }
        match ext {
            Extern::Func(f) => {
                func_ids.insert(vm_imports.funcs.len() as u32, f.0.index);
                vm_imports.funcs.push(opaque.funcs[f.0.index].func_ref as *const _);
            }
            Extern::Table(t) => {
                vm_imports.tables.push(opaque.table_ptr(t.0.index));
                table_ids.push(t.0.index);
            }
            Extern::Memory(m) => {
                vm_imports.memories.push(opaque.memory_ptr(m.0.index));
                mem_ids.push(m.0.index);
            }
            Extern::SharedMemory(m) => {
                if !Engine::same(&m.engine, &opaque.engine) {
                    bail!("import `{}::{}`: shared memory belongs to another engine", imp.module, imp.field);
                }
                vm_imports.memories.push(NonNull::from(&*m.mem));
                vm_imports.shared.push(m.mem.clone());
                mem_ids.push(opaque.push_memory(MemoryEntry::Shared(m.mem.clone())));
            }
            Extern::Global(g) => {
                vm_imports.globals.push(opaque.globals[g.0.index].storage.as_ptr());
                global_ids.push(g.0.index);
            }
        }
    }

    let id = opaque.instances.len();
    let epoch = opaque.engine.inner.epoch.counter() as *const _;
    let store_ctx = opaque.vm_ptr();
    let handle = vm::instance::Instance::new(id, module.runtime(), &opaque.engine.inner.allocator, store_ctx, epoch, &vm_imports)
        .map_err(|e| anyhow!("{e}"))?;

    // The defined memories' entries are pushed once the instance is in the
    // store (`push_memory` looks the memory up through it).
    let first_defined_memory = opaque.memories.len();
    mem_ids.extend((0..info.num_defined_memories() as usize).map(|d| first_defined_memory + d));
    for d in 0..info.num_defined_tables() {
        table_ids.push(opaque.tables.len());
        opaque.tables.push(TableEntry::Instance { instance: id, index: info.num_imported_tables + d });
    }
    for d in 0..info.num_defined_globals() {
        let g = info.num_imported_globals + d;
        global_ids.push(opaque.globals.len());
        opaque.globals.push(GlobalEntry { ty: info.globals[g as usize], storage: GlobalStorage::of_instance(handle.global_ptr(g)) });
    }
    opaque.instances.push(InstanceData {
        handle,
        module: module.clone(),
        funcs: func_ids,
        memories: mem_ids,
        tables: table_ids,
        globals: global_ids,
    });
    for d in 0..info.num_defined_memories() {
        opaque.push_memory(MemoryEntry::Instance { instance: id, index: info.num_imported_memories + d });
    }

    let init = opaque.instances[id].handle.initialize();
    opaque.contents_exposed |= opaque.instances[id].handle.wrote_memories();
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
