//! Executable code: one text blob per module mapped read+execute, and the
//! process-wide registry of code ranges that the trap handler and backtraces
//! consult.

use super::lazy_code::LazyCode;
use super::mmap::{Mmap, round_up_to_page};
use super::send_sync_ptr::SendSyncPtr;
use kiln_environ::{CompiledModuleInfo, FuncIndex, TrapCode};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, RwLock};

/// A module's machine code, mapped executable and registered for trap
/// handling for as long as this value lives.
#[derive(Debug)]
pub struct ModuleCode {
    mmap: Mapping,
    /// Bytes of text readable from the start.
    len: usize,
    /// Bytes registered for pc lookups (more than `len` for lazily
    /// compiled code: its reservation).
    range: usize,
    info: Arc<CompiledModuleInfo>,
    registered: bool,
}

/// Where a module's text lives.
#[derive(Debug)]
enum Mapping {
    /// Anonymous memory the text was copied into.
    Anon(Mmap),
    /// In place inside a mapped artifact file, at this offset.
    File { file: Arc<MappedFile>, offset: usize },
    /// A lazily compiled module's reservation.
    Lazy(Arc<LazyCode>),
}

impl Mapping {
    fn start(&self) -> *mut u8 {
        match self {
            Mapping::Anon(m) => m.as_ptr(),
            Mapping::File { file, offset } => file.ptr.as_ptr().wrapping_add(*offset),
            Mapping::Lazy(lazy) => lazy.base(),
        }
    }
}

/// Registered code ranges: end address -> (start address, code object).
/// The addresses are integers (pcs are looked up by range); the code
/// objects are only dereferenced while the registry lock is held, and every
/// `ModuleCode` removes itself (under the write lock) before it is freed.
struct Registry(BTreeMap<usize, (usize, SendSyncPtr<ModuleCode>)>);

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
        // Every page is about to be written: one system call allocates them
        // all instead of a page fault each (a large text has thousands of
        // pages; bench/DESIGN-NOTES.md has the measurements).
        mmap.populate_write();
        // SAFETY: the mapping is fresh, read-write and at least `text.len()` long.
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), mmap.as_ptr(), text.len()) };
        mmap.make_executable(0, mmap.len())?;
        let mut code = Box::new(ModuleCode { mmap: Mapping::Anon(mmap), len, range: len, info, registered: false });
        if register {
            code.register();
        }
        Ok(code)
    }

    /// The code of a lazily compiled module, registered.
    pub fn new_lazy(lazy: Arc<LazyCode>, info: Arc<CompiledModuleInfo>) -> Box<ModuleCode> {
        let (len, range) = (lazy.text_len().max(1), lazy.reserved_len());
        let mut code = Box::new(ModuleCode { mmap: Mapping::Lazy(lazy), len, range, info, registered: false });
        code.register();
        code
    }

    /// The lazily compiled module's code state, if this is one.
    pub fn lazy(&self) -> Option<&Arc<LazyCode>> {
        match &self.mmap {
            Mapping::Lazy(lazy) => Some(lazy),
            _ => None,
        }
    }

    /// The address calls and function records use for defined function
    /// `func` at `loc`: its code, or its stub while a lazily compiled
    /// module has none.
    pub fn func_entry(&self, func: kiln_environ::DefinedFuncIndex, loc: kiln_environ::FunctionLoc) -> *const u8 {
        match &self.mmap {
            Mapping::Lazy(lazy) if loc.length == 0 => lazy.entry_addr(func),
            _ => self.text_addr(loc.start),
        }
    }

    fn register(&mut self) {
        let start = self.text_start();
        let end = start + self.range;
        let mut reg = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
        reg.0.insert(end, (start, SendSyncPtr::new(std::ptr::NonNull::from(&*self))));
        self.registered = true;
    }

    /// The text bytes.
    pub fn text(&self) -> &[u8] {
        // SAFETY: the text mapping is readable and `len` bytes long for the
        // lifetime of `self`.
        unsafe { std::slice::from_raw_parts(self.mmap.start(), self.len) }
    }

    /// Address of byte `offset` of the text.
    pub fn text_addr(&self, offset: u32) -> *const u8 {
        debug_assert!((offset as usize) < self.len);
        self.mmap.start().wrapping_add(offset as usize)
    }

    /// The text's start address.
    pub fn text_start(&self) -> usize {
        self.mmap.start() as usize
    }

    fn text_offset(&self, pc: usize) -> Option<u32> {
        let start = self.text_start();
        (pc >= start && pc < start + self.range).then(|| (pc - start) as u32)
    }

    /// Whether text offset `off` lies in code installed after the module
    /// was created (looked up in the lazy tables, not the module's).
    fn late(&self, off: u32) -> Option<&LazyCode> {
        match &self.mmap {
            Mapping::Lazy(lazy) if off as usize >= self.len => Some(lazy),
            _ => None,
        }
    }

    /// The function whose code contains text offset `off`, and the offset in it.
    fn func_at(&self, off: u32) -> Option<(FuncIndex, u32)> {
        match self.late(off) {
            Some(lazy) => lazy.func_at(off),
            None => self.info.func_by_text_offset(off),
        }
    }

    fn trap_code(&self, off: u32) -> Option<TrapCode> {
        match self.late(off) {
            Some(lazy) => lazy.trap_code(off),
            None => self.info.traps.lookup(off),
        }
    }

    fn wasm_offset(&self, off: u32) -> Option<u32> {
        match self.late(off) {
            Some(lazy) => lazy.wasm_offset(off),
            None => self.info.wasm_offset(off),
        }
    }

    /// The call site with handlers returning to text offset `ret`.
    fn exn_site(&self, ret: u32) -> Option<kiln_environ::ExnSiteRef<'_>> {
        match self.late(ret.saturating_sub(1)) {
            Some(lazy) => lazy.exn_site(ret),
            None => self.info.exn_table.lookup(ret),
        }
    }

    fn stack_map(&self, ret: u32) -> Option<(u32, &[u32])> {
        match self.late(ret.saturating_sub(1)) {
            Some(lazy) => lazy.stack_map(ret),
            None => self.info.stack_maps.lookup(ret),
        }
    }
}

/// The lazily compiled module whose registered code contains `pc`, and
/// `pc`'s text offset in it.
pub fn lazy_code_at(pc: usize) -> Option<(Arc<LazyCode>, u32)> {
    with_code(pc, |code, off| code.lazy().map(|l| (l.clone(), off))).flatten()
}

impl Drop for ModuleCode {
    fn drop(&mut self) {
        if let Some(lazy) = self.lazy() {
            lazy.retire();
        }
        if self.registered {
            let end = self.text_start() + self.range;
            let mut reg = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
            reg.0.remove(&end);
        }
    }
}

/// Calls `f` with the registered code containing `pc`, if any.
fn with_code<R>(pc: usize, f: impl FnOnce(&ModuleCode, u32) -> R) -> Option<R> {
    find_code(&REGISTRY.read().unwrap_or_else(|e| e.into_inner()), pc, f)
}

/// Calls `f` with the code in `reg` (a held read lock) containing `pc`.
fn find_code<R>(reg: &Registry, pc: usize, f: impl FnOnce(&ModuleCode, u32) -> R) -> Option<R> {
    let (_, &(start, code)) = reg.0.range(pc + 1..).next()?;
    if pc < start {
        return None;
    }
    // SAFETY: registered code objects stay alive until they remove
    // themselves under the write lock, and the caller holds the read lock.
    let code = unsafe { code.as_non_null().as_ref() };
    let off = code.text_offset(pc)?;
    Some(f(code, off))
}

/// The trap code recorded for the instruction at `pc`, if `pc` is in
/// registered wasm code and that instruction can trap.
pub fn lookup_trap_code(pc: usize) -> Option<TrapCode> {
    with_code(pc, |code, off| code.trap_code(off)).flatten()
}

/// The registry, read-locked for a walk over many frames (a throw): one
/// lock for the whole walk, and the module of the last lookup remembered
/// (consecutive frames are mostly in one module).
pub struct CodeWalk<'a> {
    reg: std::sync::RwLockReadGuard<'a, Registry>,
    /// `(start, end, code)` of the last module found.
    last: Option<(usize, usize, SendSyncPtr<ModuleCode>)>,
}

impl CodeWalk<'_> {
    /// The registered code containing `pc` and `pc`'s offset in its text.
    fn find(&mut self, pc: usize) -> Option<(&ModuleCode, u32)> {
        let code = match self.last {
            Some((start, end, code)) if pc >= start && pc < end => code,
            _ => {
                let (&end, &(start, code)) = self.reg.0.range(pc + 1..).next()?;
                if pc < start {
                    return None;
                }
                self.last = Some((start, end, code));
                code
            }
        };
        // SAFETY: registered code objects stay alive until they remove
        // themselves under the write lock, and this walk holds the read lock.
        let code = unsafe { code.as_non_null().as_ref() };
        let off = code.text_offset(pc)?;
        Some((code, off))
    }

    /// Calls `f` with the call site whose return address is `ret` and the
    /// address of its text, if `ret` is in registered wasm code and returns
    /// from a call made with exception handlers.
    pub fn with_exn_site<R>(
        &mut self,
        ret: usize,
        f: impl FnOnce(kiln_environ::ExnSiteRef<'_>, usize) -> R,
    ) -> Option<R> {
        let (code, off) = self.find(ret.checked_sub(1)?)?;
        let site = code.exn_site(off + 1)?;
        Some(f(site, code.text_start()))
    }

    /// Whether `pc` lies in registered wasm code.
    pub fn is_wasm_pc(&mut self, pc: usize) -> bool {
        self.find(pc).is_some()
    }

    /// Calls `f` with the frame offset and the GC-reference slots of the
    /// call returning to `ret`, if GC references are live across it.
    pub fn with_stack_map<R>(&mut self, ret: usize, f: impl FnOnce(u32, &[u32]) -> R) -> Option<R> {
        let (code, off) = self.find(ret.checked_sub(1)?)?;
        let (frame_offset, slots) = code.stack_map(off + 1)?;
        Some(f(frame_offset, slots))
    }
}

/// Runs `f` with the registry read-locked for a walk ([`CodeWalk`]).
pub fn walk_code<R>(f: impl FnOnce(&mut CodeWalk<'_>) -> R) -> R {
    let mut walk = CodeWalk { reg: REGISTRY.read().unwrap_or_else(|e| e.into_inner()), last: None };
    f(&mut walk)
}

/// Whether `pc` lies in registered wasm code.
pub fn is_wasm_pc(pc: usize) -> bool {
    with_code(pc, |_, _| ()).is_some()
}

/// Whether `pc` lies in the body of a compiled wasm function (not a
/// trampoline), for the epoch signal handler. Never blocks: `None` when
/// the registry is locked (this thread may be the one holding it).
#[cfg(target_arch = "x86_64")]
pub fn is_wasm_function_pc_nonblocking(pc: usize) -> Option<bool> {
    let reg = REGISTRY.try_read().ok()?;
    Some(find_code(&reg, pc, |code, off| code.func_at(off).is_some()).unwrap_or(false))
}

/// The module, function index and wasm module offset of the instruction at
/// `pc`, if it is in registered wasm code.
pub fn frame_info(pc: usize) -> Option<(Arc<CompiledModuleInfo>, FuncIndex, Option<u32>)> {
    with_code(pc, |code, off| {
        let (f, _) = code.func_at(off)?;
        Some((code.info.clone(), f, code.wasm_offset(off)))
    })
    .flatten()
}

/// A read-only mapping of a whole file.
#[derive(Debug)]
pub struct MappedFile {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is private and read-only from our side; sharing
// `&[u8]` views of it across threads is sound.
unsafe impl Send for MappedFile {}
// SAFETY: `&MappedFile` only gives `&[u8]` views of a mapping nobody in
// this process writes.
unsafe impl Sync for MappedFile {}

impl MappedFile {
    /// Maps `file` read-only.
    ///
    /// # Errors
    ///
    /// The OS error if the file cannot be mapped; empty files are an error.
    pub fn new(file: &std::fs::File) -> io::Result<MappedFile> {
        let len = usize::try_from(file.metadata()?.len()).map_err(|_| io::Error::other("file too large"))?;
        if len == 0 {
            return Err(io::Error::other("empty file"));
        }
        // SAFETY: a fresh private read-only mapping of a file we hold open;
        // it aliases no Rust memory. Later changes to the file by other
        // processes may show through (MAP_PRIVATE pages not yet copied),
        // which is why artifacts are checksummed after mapping.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::PRIVATE,
                file,
                0,
            )
        }
        .map_err(io::Error::from)?;
        // Pages of the file not yet in the page cache are then read in as
        // huge folios, which this and every later mapping of the file fault
        // in a folio at a time, which makes a warm start from disk markedly
        // faster (bench/DESIGN-NOTES.md). Advice only: kernels without transparent huge
        // pages refuse it, and nothing changes.
        // SAFETY: the range is the mapping just created; the advice changes
        // no contents.
        let _ = unsafe { rustix::mm::madvise(ptr, len, rustix::mm::Advice::LinuxHugepage) };
        Ok(MappedFile { ptr: std::ptr::NonNull::new(ptr.cast()).expect("mmap returned null"), len })
    }

    /// Maps every page of the file now, in one system call, instead of a
    /// page fault at a time as they are first read (Linux
    /// `MADV_POPULATE_READ`; advice only: older kernels refuse it, and
    /// nothing changes). For files that are about to be read whole.
    pub fn populate(&self) {
        // SAFETY: the range is exactly this mapping; populating changes no
        // contents.
        let _ =
            unsafe { rustix::mm::madvise(self.ptr.as_ptr().cast(), self.len, rustix::mm::Advice::LinuxPopulateRead) };
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes, readable, and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl kiln_environ::ByteSource for MappedFile {
    fn bytes(&self) -> &[u8] {
        MappedFile::bytes(self)
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `new`.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

impl ModuleCode {
    /// Uses the text at `text` (page-aligned start) inside an already
    /// mapped and verified artifact file directly, making it executable in
    /// place; falls back to copying if the file system forbids executing
    /// mapped files.
    ///
    /// # Errors
    ///
    /// The OS error if neither mapping nor copying works.
    pub fn from_mapped_file(
        file: Arc<MappedFile>,
        text: std::ops::Range<usize>,
        info: Arc<CompiledModuleInfo>,
    ) -> io::Result<Box<ModuleCode>> {
        let page = super::mmap::page_size();
        let in_bounds = text.start <= text.end && text.end <= file.len && text.start.is_multiple_of(page);
        if !in_bounds {
            return Err(io::Error::other("text range outside the mapped file"));
        }
        let len = round_up_to_page(text.len().max(1)).ok_or_else(|| io::Error::other("code too large"))?;
        // SAFETY: the range starts page-aligned inside our private mapping;
        // pages past the end of the file within the mapping's last page are
        // zero-filled by the kernel. Only this code object uses these pages.
        let ok = unsafe {
            rustix::mm::mprotect(
                file.ptr.as_ptr().add(text.start).cast(),
                len.min(round_up_to_page(file.len - text.start).unwrap_or(len)),
                rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::EXEC,
            )
        }
        .is_ok();
        if !ok {
            return ModuleCode::new(&file.bytes()[text], info, true);
        }
        let mut code = Box::new(ModuleCode {
            mmap: Mapping::File { file, offset: text.start },
            len: text.len().max(1),
            range: text.len().max(1),
            info,
            registered: false,
        });
        code.register();
        Ok(code)
    }
}
