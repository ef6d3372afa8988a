//! `ModuleRuntime`: what the runtime keeps of a compiled module (metadata,
//! mapped code, VMContext layout, engine type ids, memory images).

use super::code_memory::ModuleCode;
use kiln_environ::*;
use std::sync::Arc;

/// What the runtime keeps of a compiled module.
// 128-byte aligned: its `Arc` counts get cache lines of their own (see
// "Instantiating from many threads" in docs/ARCHITECTURE.md).
#[repr(align(128))]
#[derive(Debug)]
pub struct ModuleRuntime {
    /// Compiled-module metadata.
    pub info: Arc<CompiledModuleInfo>,
    /// The executable code.
    pub code: Box<ModuleCode>,
    /// VMContext layout.
    pub offsets: VMOffsets,
    /// Engine-wide type ids by module type index.
    pub type_ids: Box<[u32]>,
    /// Code-generation settings the code was compiled with.
    pub tunables: Tunables,
    /// Copy-on-write images of the defined memories, built on first use.
    pub images: std::sync::OnceLock<Vec<Option<Arc<super::memory_image::MemoryImage>>>>,
}

impl ModuleRuntime {
    /// The module.
    pub fn module(&self) -> &ModuleInfo {
        &self.info.module
    }

    /// Code address of defined function `func`.
    ///
    /// # Panics
    ///
    /// `func` is not a function the module defines.
    pub fn func_code(&self, func: DefinedFuncIndex) -> *const u8 {
        self.code.func_entry(func, self.info.funcs[func.index()])
    }

    /// The copy-on-write image of defined memory `defined`, if it has one
    /// (built for all memories on the first call; a failure to build just
    /// means instances copy their data instead).
    pub fn memory_image(&self, defined: DefinedMemoryIndex) -> Option<&Arc<super::memory_image::MemoryImage>> {
        let images = self.images.get_or_init(|| {
            let info = self.module();
            info.defined_memories()
                .map(|d| {
                    super::memory_image::MemoryImage::build(info, info.memory_index(d)).ok().flatten().map(Arc::new)
                })
                .collect()
        });
        images.get(defined.index())?.as_ref()
    }

    /// The array-call entry trampoline for module type `ty`, if the module
    /// has one (every type of a function the host can call).
    pub fn entry_trampoline(&self, ty: TypeIndex) -> Option<super::traphandlers::EntryTrampoline> {
        let loc = self.info.array_to_wasm_trampoline(ty)?;
        let addr = self.code.text_addr(loc.start);
        // SAFETY: `addr` is the start of the array-to-wasm trampoline the
        // compiler made for type `ty`, in code mapped executable for as long
        // as this module lives; it has the `EntryTrampoline` ABI.
        Some(unsafe { std::mem::transmute::<*const u8, super::traphandlers::EntryTrampoline>(addr) })
    }
}
