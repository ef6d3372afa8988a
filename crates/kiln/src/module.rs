//! `Module`: a compiled WebAssembly module, ready to instantiate.

use crate::engine::Engine;
use crate::types::{ExportType, ExternType, ImportType};
use crate::vm::code_memory::ModuleCode;
use crate::vm::instance::ModuleRuntime;
use anyhow::{Context, Result, bail};
use kiln_environ::*;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// A compiled WebAssembly module. Cheap to clone (shared), `Send + Sync`,
/// and instantiable any number of times in stores of the same engine.
#[derive(Clone)]
pub struct Module {
    pub(crate) inner: Arc<ModuleInner>,
}

pub(crate) struct ModuleInner {
    pub(crate) engine: Engine,
    pub(crate) runtime: Arc<ModuleRuntime>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("name", &self.name()).finish_non_exhaustive()
    }
}

impl Module {
    /// Compiles a module from its binary encoding or its text format (WAT).
    ///
    /// # Errors
    ///
    /// Malformed or invalid input, with the problem and its byte offset (or
    /// line and column for text); use of a feature not enabled in the
    /// engine's [`Config`](crate::Config); code generation failures.
    pub fn new(engine: &Engine, bytes: impl AsRef<[u8]>) -> Result<Module> {
        let bytes = bytes.as_ref();
        let wasm = wat::parse_bytes(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        Module::from_binary(engine, &wasm)
    }

    /// Compiles a module from its binary encoding only.
    ///
    /// # Errors
    ///
    /// As [`Module::new`].
    pub fn from_binary(engine: &Engine, wasm: &[u8]) -> Result<Module> {
        let runtime = compile(engine, wasm)?;
        Ok(Module { inner: Arc::new(ModuleInner { engine: engine.clone(), runtime }) })
    }

    /// Reads and compiles a `.wasm` or `.wat` file.
    ///
    /// # Errors
    ///
    /// The file cannot be read, or as [`Module::new`]; the message names the file.
    pub fn from_file(engine: &Engine, path: impl AsRef<Path>) -> Result<Module> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
        Module::new(engine, &bytes).with_context(|| format!("failed to compile {}", path.display()))
    }

    /// Checks that `bytes` (binary) is a valid module for `engine` without
    /// compiling it.
    ///
    /// # Errors
    ///
    /// The first validation error, with its byte offset.
    pub fn validate(engine: &Engine, bytes: &[u8]) -> Result<()> {
        let t = translate_module(bytes, engine.config().features)?;
        validate_function_bodies(t.bodies)?;
        Ok(())
    }

    /// The engine the module was compiled for.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The module's name from its name section, if any.
    pub fn name(&self) -> Option<&str> {
        self.info().name.as_deref()
    }

    pub(crate) fn info(&self) -> &ModuleInfo {
        self.inner.runtime.module()
    }

    pub(crate) fn runtime(&self) -> &Arc<ModuleRuntime> {
        &self.inner.runtime
    }

    /// The imports, in order.
    pub fn imports(&self) -> impl ExactSizeIterator<Item = ImportType<'_>> + '_ {
        let info = self.info();
        info.imports.iter().map(move |i| ImportType {
            module: &i.module,
            name: &i.field,
            ty: ExternType::from_entity(info, &i.ty),
        })
    }

    /// The exports, in order.
    pub fn exports(&self) -> impl ExactSizeIterator<Item = ExportType<'_>> + '_ {
        let info = self.info();
        info.exports
            .iter()
            .map(move |e| ExportType { name: &e.name, ty: ExternType::from_entity(info, &info.entity_type(e.index)) })
    }

    /// The type of export `name`, if there is one.
    pub fn get_export(&self, name: &str) -> Option<ExternType> {
        self.exports().find(|e| e.name() == name).map(|e| e.ty())
    }
}

/// Translates, compiles and links `wasm`, then maps the code.
fn compile(engine: &Engine, wasm: &[u8]) -> Result<Arc<ModuleRuntime>> {
    let translation = translate_module(wasm, engine.config().features)?;
    let info = translation.info;
    let offsets = VMOffsets::new(&info);
    let compiler = &engine.inner.compiler;
    let first = info.num_imported_funcs;
    let compile_one = |(i, body): (usize, FunctionBodyInput<'_>)| compiler.compile_function(&info, &offsets, first + i as u32, body);
    let funcs: Vec<CompiledFunction> = if engine.config().parallel_compilation {
        translation.bodies.into_par_iter().enumerate().map(compile_one).collect::<Result<_, _>>()?
    } else {
        translation.bodies.into_iter().enumerate().map(compile_one).collect::<Result<_, _>>()?
    };

    // Entry trampolines for every signature of a function the host can call.
    let mut needed: Vec<u32> = info
        .escaping_funcs
        .iter()
        .chain(info.start.iter())
        .filter(|f| !info.is_imported_func(**f))
        .map(|f| info.functions[*f as usize])
        .collect();
    needed.sort_unstable();
    needed.dedup();
    let mut unique: Vec<&FuncType> = Vec::new();
    let mut slot_of: HashMap<&FuncType, usize> = HashMap::new();
    let mut type_slots = Vec::new();
    for t in &needed {
        let ft = &info.types[*t as usize];
        let slot = *slot_of.entry(ft).or_insert_with(|| {
            unique.push(ft);
            unique.len() - 1
        });
        type_slots.push((*t, slot));
    }
    let trampolines = unique
        .par_iter()
        .map(|ft| compiler.compile_array_to_wasm_trampoline(ft))
        .collect::<Result<Vec<_>, _>>()?;

    let linked = link(first, &funcs, &trampolines)?;
    drop(funcs);
    let array_to_wasm_trampolines = type_slots.into_iter().map(|(t, s)| (t, linked.trampolines[s])).collect();
    let type_ids: Box<[u32]> = info.types.iter().map(|t| engine.inner.types.register(t)).collect();
    let info = Arc::new(CompiledModuleInfo {
        module: info,
        funcs: linked.funcs,
        array_to_wasm_trampolines,
        traps: linked.traps,
        address_map: linked.address_map,
    });
    let code = ModuleCode::new(&linked.text, info.clone(), true).context("failed to map compiled code")?;
    if info.module.functions.len() > u32::MAX as usize / 2 {
        bail!("too many functions");
    }
    Ok(Arc::new(ModuleRuntime { info, code, offsets, type_ids, tunables: engine.tunables().clone() }))
}
