//! `Module`: a compiled WebAssembly module, ready to instantiate.

use crate::compile_observer::{CompileObserver, CompilePhase};
use crate::engine::Engine;
use crate::types::{ExportType, ExternType, ImportType};
use crate::vm::module_runtime::ModuleRuntime;
use anyhow::{Context, Result};
use kiln_environ::*;
use std::path::Path;
use std::sync::Arc;

/// A compiled WebAssembly module. Cheap to clone (shared), `Send + Sync`,
/// and instantiable any number of times in stores of the same engine.
#[derive(Clone)]
pub struct Module {
    pub(crate) inner: Arc<ModuleInner>,
}

// 128-byte aligned: its `Arc` counts get cache lines of their own (see
// "Instantiating from many threads" in docs/ARCHITECTURE.md).
#[repr(align(128))]
pub(crate) struct ModuleInner {
    pub(crate) engine: Engine,
    pub(crate) runtime: Arc<ModuleRuntime>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("name", &self.name()).finish_non_exhaustive()
    }
}

/// Refuses a precompiled artifact where WebAssembly is expected.
fn refuse_artifact(bytes: &[u8]) -> Result<()> {
    if Module::is_precompiled(bytes) {
        anyhow::bail!(
            "this is a precompiled Kiln artifact (native code), not WebAssembly; it can only be loaded with the unsafe \
             `Module::deserialize`/`Module::deserialize_file` (on the command line: `kiln run --allow-precompiled`), \
             and only if it comes from a source trusted as much as the program itself"
        );
    }
    Ok(())
}

impl Module {
    /// Compiles a module from its binary encoding or its text format (WAT).
    ///
    /// Only WebAssembly is accepted: a precompiled artifact is machine code
    /// and is loaded only through the `unsafe` [`Module::deserialize`].
    ///
    /// # Errors
    ///
    /// Malformed or invalid input, with the problem and its byte offset (or
    /// line and column for text); use of a feature not enabled in the
    /// engine's [`Config`](crate::Config); code generation failures; a
    /// precompiled artifact instead of WebAssembly.
    pub fn new(engine: &Engine, bytes: impl AsRef<[u8]>) -> Result<Module> {
        Module::new_observed(engine, bytes.as_ref(), None)
    }

    /// Like [`Module::new`], telling `observer` how compilation progresses
    /// and where its time goes (see [`CompileObserver`]).
    ///
    /// # Errors
    ///
    /// As [`Module::new`].
    pub fn new_with_observer(
        engine: &Engine,
        bytes: impl AsRef<[u8]>,
        observer: &dyn CompileObserver,
    ) -> Result<Module> {
        Module::new_observed(engine, bytes.as_ref(), Some(observer))
    }

    fn new_observed(engine: &Engine, bytes: &[u8], observer: Option<&dyn CompileObserver>) -> Result<Module> {
        refuse_artifact(bytes)?;
        let start = observer.map(|_| std::time::Instant::now());
        let wasm = wat::parse_bytes(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        if let (Some(o), Some(start), std::borrow::Cow::Owned(_)) = (observer, start, &wasm) {
            o.phase_done(CompilePhase::Text, start.elapsed());
        }
        Module::from_binary_observed(engine, &wasm, observer)
    }

    /// Compiles a module from its binary encoding only.
    ///
    /// # Errors
    ///
    /// As [`Module::new`].
    pub fn from_binary(engine: &Engine, wasm: &[u8]) -> Result<Module> {
        Module::from_binary_observed(engine, wasm, None)
    }

    /// Like [`Module::from_binary`], telling `observer` how compilation
    /// progresses and where its time goes (see [`CompileObserver`]).
    ///
    /// # Errors
    ///
    /// As [`Module::new`].
    pub fn from_binary_with_observer(engine: &Engine, wasm: &[u8], observer: &dyn CompileObserver) -> Result<Module> {
        Module::from_binary_observed(engine, wasm, Some(observer))
    }

    fn from_binary_observed(engine: &Engine, wasm: &[u8], observer: Option<&dyn CompileObserver>) -> Result<Module> {
        refuse_artifact(wasm)?;
        let runtime = crate::compile::compile_module(engine, wasm, observer)?;
        Ok(Module { inner: Arc::new(ModuleInner { engine: engine.clone(), runtime }) })
    }

    /// Reads and compiles a `.wasm` or `.wat` file.
    ///
    /// # Errors
    ///
    /// The file cannot be read, or as [`Module::new`] (a precompiled
    /// artifact is refused whatever the file is called); the message names
    /// the file.
    pub fn from_file(engine: &Engine, path: impl AsRef<Path>) -> Result<Module> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
        Module::new(engine, &bytes).with_context(|| format!("failed to compile {}", path.display()))
    }

    /// Whether `bytes` look like a precompiled artifact (of any Kiln
    /// version): what [`Module::serialize`] and `kiln compile` produce, as
    /// opposed to WebAssembly.
    pub fn is_precompiled(bytes: &[u8]) -> bool {
        bytes.starts_with(&ARTIFACT_MAGIC)
    }

    /// Checks, without loading any code, that `bytes` are an intact
    /// artifact that [`Module::deserialize`] would accept in `engine`:
    /// format, checksum, compatibility with the engine's settings, and the
    /// consistency of its tables. Passing says nothing about who produced
    /// the machine code in it (anyone can compute the checksum).
    ///
    /// # Errors
    ///
    /// What [`Module::deserialize`] would report.
    pub fn check_precompiled(engine: &Engine, bytes: &[u8]) -> Result<()> {
        parse_artifact(bytes, &engine.artifact_header(std::time::Duration::ZERO), &PublicSeal::artifact())?;
        Ok(())
    }

    /// Encodes the compiled module as an artifact (the `.cwasm` format)
    /// that [`Module::deserialize`] loads without compiling. An artifact is
    /// always complete: a lazily compiled module
    /// ([`CompileStrategy::Lazy`](crate::CompileStrategy)) is compiled whole
    /// for it.
    ///
    /// # Errors
    ///
    /// Compiling the rest of a lazily compiled module failed.
    pub fn serialize(&self) -> Result<Vec<u8>> {
        let header = self.engine().artifact_header(std::time::Duration::ZERO);
        let (info, text) = crate::compile::complete_text(self.engine(), &self.inner.runtime)?;
        Ok(serialize_artifact(&header, &info, &text, &PublicSeal::artifact()))
    }

    /// Loads an artifact produced by [`Module::serialize`] (or `kiln
    /// compile`), copying its code into executable memory.
    ///
    /// Kiln checks the artifact's checksum, its format and that it was
    /// produced for this engine's settings, and bounds-checks its tables,
    /// so a damaged or truncated artifact is refused. What it cannot check
    /// is where the machine code came from: the checksum is public, and
    /// anyone can make an artifact that passes it.
    ///
    /// # Safety
    ///
    /// `bytes` must be the output of [`Module::serialize`] (or `kiln
    /// compile`) of a Kiln compatible with this one, from a source you
    /// trust as much as this process's own code: the machine code in it
    /// runs as is. Bytes from anyone else (a network, a user, a shared
    /// directory) can make this process do anything. To cache compiled
    /// code without that trust, use [`Config::cache`](crate::Config::cache)
    /// with a [`DirectoryCache`](crate::DirectoryCache), whose entries are
    /// authenticated.
    ///
    /// # Errors
    ///
    /// The bytes are not an artifact, are damaged, or were produced by
    /// another Kiln version, for another target, or with different settings
    /// (the message says which).
    #[allow(unsafe_code, reason = "loading native code is unsafe by nature: the caller vouches for it")]
    pub unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<Module> {
        let (runtime, _) = crate::compile::from_artifact_bytes(engine, bytes, &PublicSeal::artifact())?;
        Ok(Module { inner: Arc::new(ModuleInner { engine: engine.clone(), runtime }) })
    }

    /// Like [`Module::deserialize`], but maps the file's code in place
    /// instead of reading and copying it.
    ///
    /// # Safety
    ///
    /// As for [`Module::deserialize`]; and the file must not change while
    /// the module or anything made from it is alive (code is executed
    /// straight from its pages: rewriting the file in place can crash the
    /// process or run other code; replacing it by renaming another file
    /// over it, as `kiln compile` does, is safe).
    ///
    /// # Errors
    ///
    /// As [`Module::deserialize`], or the file cannot be opened or mapped.
    #[allow(unsafe_code, reason = "as for `deserialize`")]
    pub unsafe fn deserialize_file(engine: &Engine, path: impl AsRef<Path>) -> Result<Module> {
        let path = path.as_ref();
        let load = || -> Result<_> {
            let file = std::fs::File::open(path)?;
            Ok(crate::compile::from_artifact_file(engine, &file, &PublicSeal::artifact())?.0)
        };
        let runtime = load().with_context(|| format!("failed to load compiled module {}", path.display()))?;
        Ok(Module { inner: Arc::new(ModuleInner { engine: engine.clone(), runtime }) })
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

    /// Whether every function of the module has its final code: always
    /// for a module compiled eagerly or loaded whole; for one compiled
    /// lazily, once each function has been compiled by Cranelift (a
    /// function never called and not compiled ahead yet, or still running
    /// baseline code under tiering, has not).
    pub fn has_final_code(&self) -> bool {
        match self.runtime().code.lazy() {
            None => true,
            Some(lazy) => lazy.tier_counts().1 as usize == self.runtime().info.funcs.len(),
        }
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
