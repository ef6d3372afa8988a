//! Memories, tables, globals, and the `Extern` sum of importable things.

use crate::WasmFeature;
use crate::func::Func;
use crate::store::{AsContext, AsContextMut, StoreOpaque, Stored};
use crate::tag::Tag;
use crate::types::{ExternType, GlobalType, MemoryType, Mutability, TableType, ValType};
use crate::values::Val;
use crate::vm;
use crate::vm::store_ids::{GlobalId, MemoryId, TableId};
use anyhow::{Result, bail};

/// Anything an instance can import or export.
#[derive(Clone, Debug)]
pub enum Extern {
    /// A function.
    Func(Func),
    /// A global.
    Global(Global),
    /// A table.
    Table(Table),
    /// A linear memory.
    Memory(Memory),
    /// A linear memory shared between threads (threads proposal).
    SharedMemory(SharedMemory),
    /// An exception tag (exception handling).
    Tag(Tag),
}

impl Extern {
    /// The function, if this is one.
    pub fn into_func(self) -> Option<Func> {
        if let Extern::Func(f) = self { Some(f) } else { None }
    }

    /// The global, if this is one.
    pub fn into_global(self) -> Option<Global> {
        if let Extern::Global(g) = self { Some(g) } else { None }
    }

    /// The table, if this is one.
    pub fn into_table(self) -> Option<Table> {
        if let Extern::Table(t) = self { Some(t) } else { None }
    }

    /// The memory, if this is one.
    pub fn into_memory(self) -> Option<Memory> {
        if let Extern::Memory(m) = self { Some(m) } else { None }
    }

    /// The tag, if this is one.
    pub fn into_tag(self) -> Option<Tag> {
        if let Extern::Tag(t) = self { Some(t) } else { None }
    }

    /// The shared memory, if this is one.
    pub fn into_shared_memory(self) -> Option<SharedMemory> {
        if let Extern::SharedMemory(m) = self { Some(m) } else { None }
    }

    /// The type of this item.
    pub fn ty(&self, store: impl AsContext) -> ExternType {
        match self {
            Extern::Func(f) => ExternType::Func(f.ty(&store)),
            Extern::Global(g) => ExternType::Global(g.ty(&store)),
            Extern::Table(t) => ExternType::Table(t.ty(&store)),
            Extern::Memory(m) => ExternType::Memory(m.ty(&store)),
            Extern::SharedMemory(m) => ExternType::Memory(m.ty()),
            Extern::Tag(t) => ExternType::Tag(t.ty(&store)),
        }
    }
}

impl From<Tag> for Extern {
    fn from(t: Tag) -> Extern {
        Extern::Tag(t)
    }
}

impl From<Func> for Extern {
    fn from(f: Func) -> Extern {
        Extern::Func(f)
    }
}
impl From<Global> for Extern {
    fn from(g: Global) -> Extern {
        Extern::Global(g)
    }
}
impl From<Table> for Extern {
    fn from(t: Table) -> Extern {
        Extern::Table(t)
    }
}
impl From<Memory> for Extern {
    fn from(m: Memory) -> Extern {
        Extern::Memory(m)
    }
}
impl From<SharedMemory> for Extern {
    fn from(m: SharedMemory) -> Extern {
        Extern::SharedMemory(m)
    }
}

/// A linear memory that several threads (and stores) use at once. Created
/// with a shared [`MemoryType`] (which must have a maximum); imported by
/// modules that declare `(memory ... shared)`. Cloning gives another handle
/// to the same memory. Accesses from the host are byte-wise atomic, since
/// other threads may be writing concurrently.
#[derive(Clone)]
pub struct SharedMemory {
    pub(crate) mem: std::sync::Arc<vm::memory::Memory>,
    pub(crate) engine: crate::Engine,
}

impl std::fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMemory").field("ty", &self.mem.ty()).finish_non_exhaustive()
    }
}

impl SharedMemory {
    /// Creates a shared memory of type `ty` for `engine`.
    ///
    /// # Errors
    ///
    /// `ty` is not shared or has no maximum; the reservation failed.
    pub fn new(engine: &crate::Engine, ty: MemoryType) -> Result<SharedMemory> {
        if !ty.is_shared() {
            bail!("SharedMemory::new needs a shared memory type");
        }
        if ty.maximum().is_none() {
            bail!("shared memories must have a maximum size");
        }
        let mem = vm::memory::Memory::new_host(ty.0, engine.tunables(), None)?;
        Ok(SharedMemory { mem: std::sync::Arc::new(mem), engine: engine.clone() })
    }

    /// The memory's type, with its current size as minimum.
    pub fn ty(&self) -> MemoryType {
        MemoryType(self.mem.ty())
    }

    /// Current size in pages.
    pub fn size(&self) -> u64 {
        self.mem.pages()
    }

    /// Current size in bytes.
    pub fn data_size(&self) -> usize {
        self.mem.byte_len()
    }

    /// Grows by `delta` pages, returning the previous size in pages.
    ///
    /// # Errors
    ///
    /// The memory would exceed its maximum or the reservation.
    pub fn grow(&self, delta: u64) -> Result<u64> {
        match self.mem.grow(delta)? {
            Some(old) => Ok(old),
            None => bail!("failed to grow shared memory by {delta} pages: limit reached"),
        }
    }

    /// Copies bytes starting at `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// [`MemoryAccessError`] if the range is out of bounds.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), MemoryAccessError> {
        if self.mem.copy_out(offset, buf) { Ok(()) } else { Err(MemoryAccessError) }
    }

    /// Copies `buf` into memory at `offset`.
    ///
    /// # Errors
    ///
    /// [`MemoryAccessError`] if the range is out of bounds.
    pub fn write(&self, offset: usize, buf: &[u8]) -> Result<(), MemoryAccessError> {
        if self.mem.copy_in(offset, buf) { Ok(()) } else { Err(MemoryAccessError) }
    }
}

/// Error for a memory access outside the memory's current size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryAccessError;

impl std::fmt::Display for MemoryAccessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("out of bounds memory access")
    }
}

impl std::error::Error for MemoryAccessError {}

/// A linear memory.
///
/// Handles compare equal when they name the same object of the same store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Memory(pub(crate) Stored<MemoryId>);

impl Memory {
    /// Creates a memory of type `ty` owned by the store.
    ///
    /// # Errors
    ///
    /// The type has 1-byte pages and the engine does not enable
    /// [`WasmFeature::CustomPageSizes`]; the store's limiter refuses the
    /// minimum size (see
    /// [`StoreLimitsBuilder::memory_size`](crate::StoreLimitsBuilder::memory_size)),
    /// the minimum size exceeds the configured reservation, or the OS
    /// refuses the mapping.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn new(mut store: impl AsContextMut, ty: MemoryType) -> Result<Memory> {
        let inner = store.as_context_mut().0;
        if ty.page_size_log2() != 16
            && !inner.opaque.engine().config().wasm_feature_enabled(WasmFeature::CustomPageSizes)
        {
            anyhow::bail!("a memory with {}-byte pages needs the custom-page-sizes feature", ty.page_size());
        }
        let bytes = |pages: u64| usize::try_from(pages.saturating_mul(ty.0.page_size())).unwrap_or(usize::MAX);
        inner.check_new_memory("memory", bytes(ty.0.minimum), ty.0.maximum.map(bytes))?;
        let store = &mut inner.opaque;
        let engine = store.engine().clone();
        let idx = store.vm_mut().new_host_memory(ty.0, engine.tunables(), &engine.inner.allocator)?;
        store.expose_contents();
        Ok(Memory(store.stored(idx)))
    }

    fn get<'a>(&self, store: &'a StoreOpaque) -> &'a vm::memory::Memory {
        store.check(&self.0);
        store.vm().memory(self.0.index)
    }

    /// The memory's type, with its current size as minimum.
    pub fn ty(&self, store: impl AsContext) -> MemoryType {
        MemoryType(self.get(&store.as_context().0.opaque).ty())
    }

    /// Current size in pages.
    pub fn size(&self, store: impl AsContext) -> u64 {
        self.get(&store.as_context().0.opaque).pages()
    }

    /// Current size in bytes.
    pub fn data_size(&self, store: impl AsContext) -> usize {
        self.get(&store.as_context().0.opaque).byte_len()
    }

    /// The contents.
    pub fn data<'a, T: 'a>(&self, store: impl Into<crate::store::StoreContext<'a, T>>) -> &'a [u8] {
        let store = store.into();
        self.get(&store.0.opaque).data()
    }

    /// The contents, mutably.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn data_mut<'a, T: 'a>(&self, store: impl Into<crate::store::StoreContextMut<'a, T>>) -> &'a mut [u8] {
        let store = store.into().0;
        store.opaque.check(&self.0);
        store.opaque.vm_mut().memory_mut(self.0.index).data_mut()
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// [`MemoryAccessError`] if the range is out of bounds.
    pub fn read(&self, store: impl AsContext, offset: usize, buf: &mut [u8]) -> Result<(), MemoryAccessError> {
        let store = store.as_context();
        let data = self.get(&store.0.opaque).data();
        let end = offset.checked_add(buf.len()).filter(|e| *e <= data.len()).ok_or(MemoryAccessError)?;
        buf.copy_from_slice(&data[offset..end]);
        Ok(())
    }

    /// Copies `buf` into memory at `offset`.
    ///
    /// # Errors
    ///
    /// [`MemoryAccessError`] if the range is out of bounds.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn write(&self, mut store: impl AsContextMut, offset: usize, buf: &[u8]) -> Result<(), MemoryAccessError> {
        let store = &mut store.as_context_mut().0.opaque;
        store.check(&self.0);
        let data = store.vm_mut().memory_mut(self.0.index).data_mut();
        let end = offset.checked_add(buf.len()).filter(|e| *e <= data.len()).ok_or(MemoryAccessError)?;
        data[offset..end].copy_from_slice(buf);
        Ok(())
    }

    /// Grows by `delta` pages, returning the previous size in pages.
    ///
    /// # Errors
    ///
    /// The memory would exceed its maximum or the reservation, or the OS
    /// refuses to map more pages.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn grow<T: 'static>(&self, mut store: impl AsContextMut<Data = T>, delta: u64) -> Result<u64> {
        let inner = store.as_context_mut().0;
        inner.opaque.check(&self.0);
        let m = inner.opaque.vm().memory(self.0.index);
        let (current, desired, maximum) = (m.byte_len(), m.size_after_grow(delta), m.declared_max_bytes());
        let Some(desired) = desired else { bail!("failed to grow memory by {delta} pages: size overflows") };
        if delta != 0 && !inner.memory_growing(current, desired, maximum)? {
            bail!("failed to grow memory by {delta} pages: denied by the store's limits");
        }
        let store = &mut inner.opaque;
        match store.vm_mut().memory_mut(self.0.index).grow(delta)? {
            Some(old) => Ok(old),
            None => bail!("failed to grow memory by {delta} pages: limit reached"),
        }
    }
}

impl<'a, T> From<&'a crate::Store<T>> for crate::store::StoreContext<'a, T> {
    fn from(s: &'a crate::Store<T>) -> Self {
        crate::store::StoreContext(&s.inner)
    }
}
impl<'a, T> From<&'a mut crate::Store<T>> for crate::store::StoreContext<'a, T> {
    fn from(s: &'a mut crate::Store<T>) -> Self {
        crate::store::StoreContext(&s.inner)
    }
}
impl<'a, T> From<&'a mut crate::Store<T>> for crate::store::StoreContextMut<'a, T> {
    fn from(s: &'a mut crate::Store<T>) -> Self {
        crate::store::StoreContextMut(&mut s.inner)
    }
}
impl<'a, T> From<&'a crate::Caller<'_, T>> for crate::store::StoreContext<'a, T> {
    fn from(c: &'a crate::Caller<'_, T>) -> Self {
        crate::store::StoreContext(c.store)
    }
}
impl<'a, T> From<&'a mut crate::Caller<'_, T>> for crate::store::StoreContextMut<'a, T> {
    fn from(c: &'a mut crate::Caller<'_, T>) -> Self {
        crate::store::StoreContextMut(c.store)
    }
}
impl<'a, T> From<&'a mut crate::Caller<'_, T>> for crate::store::StoreContext<'a, T> {
    fn from(c: &'a mut crate::Caller<'_, T>) -> Self {
        crate::store::StoreContext(c.store)
    }
}

/// A table of references.
///
/// Handles compare equal when they name the same object of the same store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Table(pub(crate) Stored<TableId>);

fn check_ref(store: &mut StoreOpaque, elem: ValType, v: &Val) -> Result<usize> {
    if v.ty() != elem {
        bail!("table of {elem} cannot hold a {}", v.ty());
    }
    Ok(v.to_raw(store)?.get_ptr())
}

impl Table {
    /// Creates a table of type `ty` with every element set to `init`.
    /// Elements cost memory only once written (except that a non-null
    /// externref `init` is stored in every element).
    ///
    /// # Errors
    ///
    /// `init` has the wrong type or belongs to another store; the store's
    /// limiter refuses the minimum size (see
    /// [`StoreLimitsBuilder::table_elements`](crate::StoreLimitsBuilder::table_elements));
    /// the size exceeds the implementation limit (10,000,000 elements).
    pub fn new(mut store: impl AsContextMut, ty: TableType, init: Val) -> Result<Table> {
        let inner = store.as_context_mut().0;
        inner.check_new_table("table", ty.0.minimum, ty.0.maximum)?;
        let store = &mut inner.opaque;
        let raw = check_ref(store, ty.element(), &init)?;
        let engine = store.engine().clone();
        let idx = store.vm_mut().new_host_table(ty.0, raw, &engine.inner.allocator).map_err(anyhow::Error::msg)?;
        store.expose_contents();
        Ok(Table(store.stored(idx)))
    }

    /// The table's type, with its current size as minimum.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn ty(&self, store: impl AsContext) -> TableType {
        let store = &store.as_context().0.opaque;
        store.check(&self.0);
        TableType(store.vm().table(self.0.index).ty())
    }

    /// Current number of elements.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn size(&self, store: impl AsContext) -> u64 {
        let store = &store.as_context().0.opaque;
        store.check(&self.0);
        store.vm().table(self.0.index).size()
    }

    /// Element `index`, or `None` if out of bounds.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn get(&self, mut store: impl AsContextMut, index: u64) -> Option<Val> {
        let store = &mut store.as_context_mut().0.opaque;
        store.check(&self.0);
        let elem = ValType::from_env(kiln_environ::WasmValType::Ref(store.vm().table(self.0.index).ty().element));
        let raw = store.vm_mut().table_get(self.0.index, index)?;
        Some(Val::from_raw(vm::vmcontext::ValRaw::ptr(raw), elem, store))
    }

    /// Sets element `index`.
    ///
    /// # Errors
    ///
    /// Out of bounds, wrong value type, or a value from another store.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn set(&self, mut store: impl AsContextMut, index: u64, val: Val) -> Result<()> {
        let store = &mut store.as_context_mut().0.opaque;
        store.check(&self.0);
        let elem = ValType::from_env(kiln_environ::WasmValType::Ref(store.vm().table(self.0.index).ty().element));
        let raw = check_ref(store, elem, &val)?;
        if !store.vm_mut().table_set(self.0.index, index, raw).map_err(anyhow::Error::msg)? {
            bail!("table index {index} out of bounds");
        }
        Ok(())
    }

    /// Grows by `delta` elements set to `init`; returns the old size.
    ///
    /// # Errors
    ///
    /// The table would exceed its maximum, or `init` has the wrong type.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn grow<T: 'static>(&self, mut store: impl AsContextMut<Data = T>, delta: u64, init: Val) -> Result<u64> {
        let inner = store.as_context_mut().0;
        inner.opaque.check(&self.0);
        let t = inner.opaque.vm().table(self.0.index);
        let (current, maximum) = (t.size(), t.ty().maximum);
        if delta != 0 && !inner.table_growing(current, current.saturating_add(delta), maximum)? {
            bail!("failed to grow table by {delta}: denied by the store's limits");
        }
        let store = &mut inner.opaque;
        let elem = ValType::from_env(kiln_environ::WasmValType::Ref(store.vm().table(self.0.index).ty().element));
        let raw = check_ref(store, elem, &init)?;
        match store.vm_mut().table_grow(self.0.index, delta, raw).map_err(anyhow::Error::msg)? {
            Some(old) => Ok(old),
            None => bail!("failed to grow table by {delta}: limit reached"),
        }
    }
}

/// A global variable.
///
/// Handles compare equal when they name the same object of the same store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Global(pub(crate) Stored<GlobalId>);

impl Global {
    /// Creates a global of type `ty` holding `val`.
    ///
    /// # Errors
    ///
    /// `val` does not have the global's value type, or belongs to another store.
    pub fn new(mut store: impl AsContextMut, ty: GlobalType, val: Val) -> Result<Global> {
        let store = &mut store.as_context_mut().0.opaque;
        if val.ty() != ty.content() {
            bail!("global of type {} cannot hold a {}", ty.content(), val.ty());
        }
        let raw = val.to_raw(store)?;
        let idx = store.vm_mut().new_host_global(ty.0, raw).map_err(anyhow::Error::msg)?;
        Ok(Global(store.stored(idx)))
    }

    /// The global's type.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn ty(&self, store: impl AsContext) -> GlobalType {
        let store = &store.as_context().0.opaque;
        store.check(&self.0);
        GlobalType(store.vm().global_ty(self.0.index))
    }

    /// The current value.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn get(&self, mut store: impl AsContextMut) -> Val {
        let store = &mut store.as_context_mut().0.opaque;
        store.check(&self.0);
        let (raw, ty) =
            (store.vm().global_get(self.0.index), ValType::from_env(store.vm().global_ty(self.0.index).content));
        Val::from_raw(raw, ty, store)
    }

    /// Sets the value.
    ///
    /// # Errors
    ///
    /// The global is immutable, `val` has the wrong type, or belongs to
    /// another store.
    ///
    /// # Panics
    ///
    /// `store` is not the store this object belongs to.
    pub fn set(&self, mut store: impl AsContextMut, val: Val) -> Result<()> {
        let store = &mut store.as_context_mut().0.opaque;
        store.check(&self.0);
        let ty = GlobalType(store.vm().global_ty(self.0.index));
        if ty.mutability() == Mutability::Const {
            bail!("cannot set an immutable global");
        }
        if val.ty() != ty.content() {
            bail!("global of type {} cannot hold a {}", ty.content(), val.ty());
        }
        let raw = val.to_raw(store)?;
        store.vm_mut().global_set(self.0.index, raw).map_err(anyhow::Error::msg)
    }
}
