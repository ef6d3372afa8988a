//! Dummy definitions for a module's imports.
//!
//! Functions return, for each result, the first argument of the same type
//! (zero or null if there is none), so values cross the host boundary in
//! both directions and the behaviour is the same in every engine. Globals
//! hold zero (or null); memories and tables have the import's minimum size
//! and maximum.

use anyhow::Result;
use kiln::{Extern, ExternType, Func, FuncType, Global, Memory, SharedMemory, Store, Table, Val, ValType};

/// The value a dummy function returns for result `ty`, given its `params`.
pub fn echo<'a, V: Clone + 'a>(
    params: impl IntoIterator<Item = (&'a V, ValType)>,
    ty: ValType,
    zero: impl FnOnce(ValType) -> V,
) -> V {
    params.into_iter().find(|(_, t)| *t == ty).map(|(v, _)| v.clone()).unwrap_or_else(|| zero(ty))
}

/// A dummy Kiln function of type `ty`.
pub fn func<T: 'static>(store: &mut Store<T>, ty: FuncType) -> Func {
    let param_tys: Vec<ValType> = ty.params().collect();
    let result_tys: Vec<ValType> = ty.results().collect();
    Func::new(store, ty, move |_caller, params, results| {
        for (r, t) in results.iter_mut().zip(&result_tys) {
            *r = echo(params.iter().zip(param_tys.iter().copied()), *t, Val::default_for);
        }
        Ok(())
    })
}

/// A dummy definition of type `ty`.
///
/// # Errors
///
/// Kiln refuses to create the memory or table (for example a size beyond
/// its limits).
pub fn definition<T: 'static>(store: &mut Store<T>, ty: &ExternType) -> Result<Extern> {
    Ok(match ty {
        ExternType::Func(f) => Extern::Func(func(store, f.clone())),
        ExternType::Global(g) => Extern::Global(Global::new(&mut *store, *g, Val::default_for(g.content()))?),
        ExternType::Memory(m) if m.is_shared() => Extern::SharedMemory(SharedMemory::new(store.engine(), *m)?),
        ExternType::Memory(m) => Extern::Memory(Memory::new(&mut *store, *m)?),
        ExternType::Table(t) => Extern::Table(Table::new(&mut *store, *t, Val::default_for(t.element()))?),
        ExternType::Tag(t) => Extern::Tag(kiln::Tag::new(&mut *store, t)?),
    })
}

/// Dummy definitions for every import of `module`, in order.
///
/// # Errors
///
/// As [`definition`].
pub fn imports<T: 'static>(store: &mut Store<T>, module: &kiln::Module) -> Result<Vec<Extern>> {
    module.imports().map(|i| definition(store, &i.ty())).collect()
}
