//! `--trap-unknown-imports` and `--default-values-unknown-imports`:
//! definitions for the imports of a module that nothing else provides.

use anyhow::{Context, Result};
use kiln::{ExternType, Global, Linker, Memory, Module, SharedMemory, Store, Table, Val};
use std::fmt;

/// What to give the imports nothing provides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnknownImports {
    /// Functions that trap when called.
    pub trap: bool,
    /// Functions that return zeros and nulls; globals holding zero or
    /// null; tables and memories of the minimum size (all of them new and
    /// empty). With `trap` too, functions trap and the rest get defaults.
    pub default: bool,
}

/// The error of calling an import defined by `--trap-unknown-imports`;
/// `kiln run` reports it like a trap.
#[derive(Debug)]
pub struct UnknownImportCalled {
    module: String,
    name: String,
}

impl fmt::Display for UnknownImportCalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wasm trap: called the import `{}::{}`, which nothing provides (--trap-unknown-imports)",
            self.module, self.name
        )
    }
}

impl std::error::Error for UnknownImportCalled {}

impl UnknownImports {
    /// Defines, in `linker`, every import of `module` that it does not
    /// define yet, as these options say (nothing if neither is set).
    ///
    /// # Errors
    ///
    /// A default memory or table could not be created (for example, its
    /// minimum size exceeds the store's limits).
    pub fn define<T: 'static>(&self, linker: &mut Linker<T>, store: &mut Store<T>, module: &Module) -> Result<()> {
        if !self.trap && !self.default {
            return Ok(());
        }
        for import in module.imports() {
            let (m, n) = (import.module(), import.name());
            if linker.get(&mut *store, m, n).is_some() {
                continue;
            }
            let what = || format!("default value for the import `{m}::{n}`");
            match import.ty() {
                ExternType::Func(ty) if self.trap => {
                    let (module, name) = (m.to_string(), n.to_string());
                    linker.func_new(m, n, ty, move |_, _, _| {
                        Err(UnknownImportCalled { module: module.clone(), name: name.clone() }.into())
                    })?;
                }
                _ if !self.default => {}
                // `func_new` hands the function zeroed (or null) results.
                ExternType::Func(ty) => {
                    linker.func_new(m, n, ty, |_, _, _| Ok(()))?;
                }
                ExternType::Global(ty) => {
                    let zero = Val::default_for(ty.content());
                    let g = Global::new(&mut *store, ty, zero).with_context(what)?;
                    linker.define(m, n, g)?;
                }
                ExternType::Table(ty) => {
                    let null = Val::default_for(ty.element());
                    let t = Table::new(&mut *store, ty, null).with_context(what)?;
                    linker.define(m, n, t)?;
                }
                ExternType::Memory(ty) if ty.is_shared() => {
                    let mem = SharedMemory::new(store.engine(), ty).with_context(what)?;
                    linker.define(m, n, mem)?;
                }
                ExternType::Memory(ty) => {
                    let mem = Memory::new(&mut *store, ty).with_context(what)?;
                    linker.define(m, n, mem)?;
                }
                // A fresh tag: nothing else can throw or catch it.
                ExternType::Tag(ty) => {
                    let tag = kiln::Tag::new(&mut *store, &ty).with_context(what)?;
                    linker.define(m, n, tag)?;
                }
            }
        }
        Ok(())
    }
}
