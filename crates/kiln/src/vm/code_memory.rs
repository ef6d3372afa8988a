//! Executable code: one text blob per module mapped read+execute, and the
//! process-wide registry of code ranges that the trap handler and backtraces
//! consult.

use super::mmap::{Mmap, round_up_to_page};
use kiln_environ::{CompiledModuleInfo, TrapCode};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, RwLock};

/// A module's machine code, mapped executable and registered for trap
/// handling for as long as this value lives.
#[derive(Debug)]
pub struct ModuleCode {
    mmap: Mmap,
    len: usize,
    info: Arc<CompiledModuleInfo>,
    registered: bool,
}

/// Registered code ranges: end address -> (start address, code object).
struct Registry(BTreeMap<usize, (usize, *const ModuleCode)>);

// SAFETY: the raw pointers are only dereferenced while the registry lock is
// held, and every `ModuleCode` removes itself (under the write lock) before
// it is freed.
unsafe impl Send for Registry {}
// SAFETY: as above.
unsafe impl Sync for Registry {}

static REGISTRY: RwLock<Registry> = RwLock::new(Registry(BTreeMap::new()));

impl ModuleCode {
    /// Copies `text` into fresh memory, makes it executable and registers its
    /// range. Returned boxed so the registered address stays stable.
    ///
    /// # Errors
    ///
    /// The OS error if mapping or protecting the memory fails.
    pub fn new(text: &[u8], info: Arc<CompiledModuleInfo>, register: bool) -> io::Result<Box<ModuleCode>> {
        let len = text.len().max(1);
        let mmap = Mmap::accessible(round_up_to_page(len).ok_or_else(|| io::Error::other("code too large"))?)?;
        // SAFETY: the mapping is fresh, read-write and at least `text.len()` long.
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), mmap.as_ptr(), text.len()) };
        mmap.make_executable(0, mmap.len())?;
        let mut code = Box::new(ModuleCode { mmap, len, info, registered: false });
        if register {
            let start = code.mmap.as_ptr() as usize;
            let end = start + code.len;
            let mut reg = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
            reg.0.insert(end, (start, &*code as *const ModuleCode));
            code.registered = true;
        }
        Ok(code)
    }

    /// Address of byte `offset` of the text.
    pub fn text_addr(&self, offset: u32) -> *const u8 {
        debug_assert!((offset as usize) < self.len);
        self.mmap.as_ptr().wrapping_add(offset as usize)
    }

    /// The text's start address.
    pub fn text_start(&self) -> usize {
        self.mmap.as_ptr() as usize
    }

    fn text_offset(&self, pc: usize) -> Option<u32> {
        let start = self.text_start();
        (pc >= start && pc < start + self.len).then(|| (pc - start) as u32)
    }
}

impl Drop for ModuleCode {
    fn drop(&mut self) {
        if self.registered {
            let end = self.text_start() + self.len;
            let mut reg = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
            reg.0.remove(&end);
        }
    }
}

/// Calls `f` with the registered code containing `pc`, if any.
fn with_code<R>(pc: usize, f: impl FnOnce(&ModuleCode, u32) -> R) -> Option<R> {
    let reg = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    let (_, &(start, code)) = reg.0.range(pc + 1..).next()?;
    if pc < start {
        return None;
    }
    // SAFETY: registered code objects stay alive until they remove
    // themselves under the write lock, and we hold the read lock.
    let code = unsafe { &*code };
    let off = code.text_offset(pc)?;
    Some(f(code, off))
}

/// The trap code recorded for the instruction at `pc`, if `pc` is in
/// registered wasm code and that instruction can trap.
pub fn lookup_trap_code(pc: usize) -> Option<TrapCode> {
    with_code(pc, |code, off| code.info.traps.lookup(off)).flatten()
}

/// Whether `pc` lies in registered wasm code.
pub fn is_wasm_pc(pc: usize) -> bool {
    with_code(pc, |_, _| ()).is_some()
}

/// The module, function index and wasm module offset of the instruction at
/// `pc`, if it is in registered wasm code.
pub fn frame_info(pc: usize) -> Option<(Arc<CompiledModuleInfo>, u32, Option<u32>)> {
    with_code(pc, |code, off| {
        let (f, _) = code.info.func_by_text_offset(off)?;
        Some((code.info.clone(), f, code.info.wasm_offset(off)))
    })
    .flatten()
}
