//! The code of a lazily compiled module: one reservation holding the
//! stubs, the code compiled when the module was created, the stubs'
//! slots, and the area where functions compiled later are installed; the
//! compile-once state of every function; and the shared entry that a
//! stub's first call reaches (`lazy_compile_for_call`).
//!
//! ```text
//! base: [ stubs | initial text: functions, trampolines ]  read+execute
//!       [ slots, entry slot ]                             read+write
//!       [ lazy area: functions installed later ... ]      each install: fresh pages,
//!                                                         its start staggered in the first
//!                                                         (made read+write ahead, in
//!                                                         chunks), written, then
//!                                                         read+execute
//! ```
//!
//! It also holds the process's background compiler ([`Background`]).
//!
//! Every offset below is from `base` (a *text offset*: the registry maps a
//! pc to one the same way as for an eager module). Everything lies within
//! one reservation of less than 2 GiB, so the direct calls of code
//! installed later reach every stub and every function.
//!
//! The stub layout and machine code are `kiln_environ::StubLayout`'s.

use super::mmap::{Mmap, page_size, round_up_to_page};
use super::traphandlers::{TrapReason, raise};
use kiln_environ::{
    CompiledModuleInfo, DefinedFuncIndex, ExnSiteRef, ExnTable, FuncIndex, FunctionCode, StackMapTable, StubLayout,
    TrapCode, TrapTable, U32PairTable, link_placed,
};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

/// What compiles one function of a lazily compiled module (the compiler
/// and the module's bodies live outside `vm/`: `kiln/src/lazy.rs`).
pub trait LazyCompiler: Send + Sync {
    /// Compiles defined function `index`; returns it encoded
    /// (`CompiledFunction::encode`) and which tier it is. `tier` is the
    /// one wanted: [`Tier::Baseline`] for a first call (the compiler may
    /// still return optimized code, when it has no baseline tier or its
    /// baseline compiler declines the function), [`Tier::Optimized`]
    /// ahead of calls and to replace baseline code. Baseline code counts
    /// its calls down in the `i32` at address `entry_counter`, and its
    /// running activations in the `i32` after it, which live as long as
    /// the code (see `kiln_baseline::Options`).
    ///
    /// # Errors
    ///
    /// Code generation failed (a validated body can still exceed an
    /// implementation limit).
    fn compile(&self, index: DefinedFuncIndex, tier: Tier, entry_counter: u64) -> anyhow::Result<(Vec<u8>, Tier)>;

    /// Compiles the on-stack-replacement entry of defined function
    /// `index`: a function taking the callee and caller VMContexts, a
    /// baseline frame's frame pointer and the index of the loop at whose
    /// head that activation stopped, that reads the locals from the frame
    /// (`kiln_environ::vmoffsets::baseline_frame`) and runs the rest of
    /// the function from that loop; one entry for every loop where
    /// baseline code checks. Returns it encoded.
    ///
    /// # Errors
    ///
    /// No loop can be entered that way, or code generation failed.
    fn compile_osr(&self, index: DefinedFuncIndex) -> anyhow::Result<Vec<u8>>;

    /// Told that `index` was installed at `addr`, `len` bytes (for the
    /// cache and profilers); `encoded` and `tier` are what
    /// [`LazyCompiler::compile`] returned.
    fn installed(&self, index: DefinedFuncIndex, encoded: Vec<u8>, tier: Tier, addr: usize, len: u32);

    /// Told that `index`'s on-stack-replacement entry was installed at
    /// `addr`, `len` bytes (for profilers; entries are never cached).
    fn osr_installed(&self, index: DefinedFuncIndex, addr: usize, len: u32);

    /// Told that the module is gone (its code is unregistered; functions
    /// still being compiled may be installed, but nothing runs them).
    /// `installed[i]` says whether defined function `i` had code.
    fn retired(&self, installed: &[bool]);

    /// The module's WebAssembly bytes.
    fn wasm(&self) -> &[u8];

    /// The module offset of defined function `index`'s body (known once
    /// it has been compiled).
    fn body_offset(&self, index: DefinedFuncIndex) -> u32;
}

/// Which compiler a function's code comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// The baseline compiler's: ready soon, runs slower; replaced by the
    /// background compiler.
    Baseline,
    /// Cranelift's: final.
    Optimized,
}

/// Bytes of baseline code from which a function that loops long has its
/// baseline activations asked to report at their next loop check once
/// its optimized code is installed, rather than after a whole count (see
/// [`LazyCode::optimize`]). Below it, an entry compiles quickly enough
/// when asked for in the usual way.
const LARGE_BASELINE_CODE: u32 = 32 * 1024;

/// Optimizing a function costs about this much fixed time (µs)...
const OPTIMIZE_FIXED_MICROS: f64 = 100.0;
/// ...plus this much per byte of its baseline code (µs): from the
/// background compiler's times on the cold-start programs.
const OPTIMIZE_MICROS_PER_BASELINE_BYTE: f64 = 0.7;

/// What the background compiler does next for a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Replace this function's baseline code.
    Optimize(u32),
    /// Compile this function, not called yet.
    Compile(u32),
    /// Compile the on-stack-replacement entry of this function.
    Osr(u32),
}

/// An on-stack-replacement entry's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OsrEntry {
    /// Asked for, not compiled yet.
    Requested,
    /// Installed at this address.
    Ready(usize),
    /// Could not be compiled: the loops keep running baseline code.
    Failed,
}

/// On-stack-replacement entries by defined function, and the ones asked
/// for and not compiled yet, in order: those of small functions (compiled
/// before anything else), and those of large ones that looped before they
/// had optimized code (compiled once no hot function waits, see
/// [`LazyCode::optimize`]).
#[derive(Default)]
struct OsrEntries(HashMap<u32, OsrEntry>, VecDeque<u32>, VecDeque<u32>);

/// What an install is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Install {
    /// A function's code of this tier: its slot points at it after.
    Function(Tier),
    /// An on-stack-replacement entry: nothing points at it but the map of
    /// entries.
    Osr,
}

// A function's compile state. Without a baseline tier it goes from
// NOT_COMPILED through COMPILING to INSTALLED (or FAILED). With one, a
// first call installs baseline code (BASELINE); the background compiler
// then takes it to OPTIMIZING while it compiles the replacement, and to
// INSTALLED once the replacement's address is in the slot (or to
// BASELINE_KEPT if that compilation failed: the baseline code stays).
const NOT_COMPILED: u8 = 0;
const COMPILING: u8 = 1;
const INSTALLED: u8 = 2;
const FAILED: u8 = 3;
const BASELINE: u8 = 4;
const OPTIMIZING: u8 = 5;
const BASELINE_KEPT: u8 = 6;

/// What a function's baseline code counts, in this order at the address
/// built into it (see `kiln_baseline::Options::entry_counter`).
#[repr(C)]
struct FunctionCounters {
    /// Calls and loop iterations until the next report.
    entry: AtomicI32,
    /// Activations running the baseline code (tiering only).
    running: AtomicI32,
}

/// The part of the lazy area not handed out yet.
struct FreeArea {
    /// The first free offset (page-aligned).
    next: usize,
    /// The end of the pages made writable ahead of use (never executable).
    writable_end: usize,
}

/// How far apart, in bytes, consecutive installs start in their first page
/// (modulo the page size).
///
/// Each install takes pages of its own (an executable page is never
/// written again), so if every function started at a page boundary their
/// first cache lines would all fall in the same few sets of the
/// instruction cache, whose set is picked by the address bits below the
/// page size: with more hot functions than the cache has ways, calls
/// between them evict each other's entries (measured on Lua's small hot
/// functions: bench/LAZY.md, seventh session). Five cache lines, an odd
/// number of them, walks every line of a page before repeating.
const INSTALL_STAGGER: usize = 5 * 64;

/// Bytes of the lazy area made writable at a time.
const WRITABLE_CHUNK: usize = 256 << 10;

/// Functions installed together, with their tables in text offsets.
struct Batch {
    start: u32,
    len: u32,
    /// `(start, length, function)`, by start.
    funcs: Vec<(u32, u32, FuncIndex)>,
    traps: TrapTable,
    address_map: U32PairTable,
    exn_table: ExnTable,
    stack_maps: StackMapTable,
}

/// A lazily compiled module's code. See the module docs.
pub struct LazyCode {
    map: Mmap,
    layout: StubLayout,
    /// Bytes of the initial text (stubs included).
    text_len: usize,
    /// Compile-once state of each defined function.
    states: Box<[AtomicU8]>,
    /// Text offset of each installed function's code (0: none yet).
    code_at: Box<[AtomicU32]>,
    /// Installed batches, in address order; the first `batch_count` are set.
    batches: Box<[OnceLock<Batch>]>,
    batch_count: AtomicUsize,
    /// The first free offset of the lazy area; held while installing.
    next_free: Mutex<FreeArea>,
    /// The message of each failed compilation.
    failures: Mutex<Vec<(u32, String)>>,
    done: (Mutex<()>, Condvar),
    /// Threads waiting on `done` (changed under its lock): a compilation
    /// that ends wakes them only if there are any (a wake is a system call).
    waiters: AtomicU32,
    /// Functions to compile next: callees of what was compiled.
    hot: Mutex<VecDeque<u32>>,
    /// Functions running baseline code, to optimize before anything
    /// else but the hot ones, in the order they were first called.
    to_optimize: Mutex<VecDeque<u32>>,
    /// Functions running baseline code that showed they are hot (their
    /// calls and loop iterations together ran their entry counter down
    /// from `HOT_COUNT`), to optimize first, with when they did (see
    /// [`LazyCode::next_hot`] for the order); `promoted` marks those
    /// queued.
    hot_optimize: Mutex<VecDeque<(u32, Instant)>>,
    promoted: Box<[AtomicBool]>,
    /// Functions whose baseline code is at least
    /// [`LARGE_BASELINE_CODE`] bytes and reported from a loop before they
    /// had optimized code (see [`LazyCode::optimize`]).
    looped: Box<[AtomicBool]>,
    /// Bytes of each function's baseline code (0: none installed).
    baseline_len: Box<[AtomicU32]>,
    /// Each function's counters, which its baseline code updates (at an
    /// address built into that code: the slice never moves).
    counters: Box<[FunctionCounters]>,
    /// On-stack-replacement entries by defined function, and the ones
    /// asked for, in order.
    osr: Mutex<OsrEntries>,
    /// Activations that moved to an on-stack-replacement entry.
    osr_transfers: AtomicU32,
    /// Where the search for anything else not compiled resumes.
    cursor: AtomicU32,
    /// Functions compiled since creation.
    compiled: AtomicU32,
    /// With `KILN_BASELINE_DEBUG`: nanoseconds that calls spent compiling
    /// and installing the functions they called first, and how many.
    first_call_nanos: AtomicU64,
    first_calls: AtomicU32,
    /// When the background compiler starts on this module; `Now` once
    /// it has.
    background: Mutex<Background>,
    /// Set when the module is gone: nothing more to compile ahead.
    retired: std::sync::atomic::AtomicBool,
    info: Arc<CompiledModuleInfo>,
    compiler: Box<dyn LazyCompiler>,
}

impl std::fmt::Debug for LazyCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyCode")
            .field("base", &self.map.as_ptr())
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl LazyCode {
    /// Copies `text`, a lazily compiled module's text (`info.lazy`: a stub
    /// per defined function at offset 0, whose code this writes, then the
    /// functions compiled already, then trampolines), to the start of a
    /// fresh reservation, makes it executable, and puts the stubs' slots
    /// after it and `area` bytes for functions compiled later. The slots of
    /// functions without code point into their stubs; the others' at
    /// their code.
    ///
    /// # Errors
    ///
    /// The OS error if reserving or protecting memory fails, or `info`
    /// does not describe a lazy text that fits `text`.
    pub fn new(
        text: &[u8],
        area: usize,
        info: Arc<CompiledModuleInfo>,
        compiler: Box<dyn LazyCompiler>,
        background: Background,
    ) -> io::Result<LazyCode> {
        let bad = || io::Error::other("inconsistent lazy code layout");
        let count = u32::try_from(info.funcs.len()).map_err(|_| bad())?;
        let text_pages = round_up_to_page(text.len().max(1)).ok_or_else(bad)?;
        let layout = StubLayout { stubs: 0, slots: u32::try_from(text_pages).map_err(|_| bad())?, count };
        let stubs = layout.x86_64_code();
        let fits = |l: &kiln_environ::FunctionLoc| (l.start as usize + l.length as usize) <= text.len();
        if !info.lazy || stubs.len() > text.len() || !info.funcs.iter().all(fits) {
            return Err(bad());
        }
        let compiled: Vec<Option<u32>> = info.funcs.iter().map(|l| (l.length > 0).then_some(l.start)).collect();
        let slot_pages = round_up_to_page(layout.slots_len() as usize).ok_or_else(bad)?;
        let total = text_pages
            .checked_add(slot_pages)
            .and_then(|n| n.checked_add(area))
            .filter(|n| *n < i32::MAX as usize)
            .ok_or_else(|| io::Error::other("lazily compiled module too large"))?;
        let map = Mmap::reserve(total)?;
        map.make_accessible(0, text_pages + slot_pages)?;
        let base = map.as_ptr();
        // SAFETY: the first `text_pages` bytes were just made read-write;
        // `text` and the stubs (no longer than it, checked) fit in them.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), base, text.len());
            std::ptr::copy_nonoverlapping(stubs.as_ptr(), base, stubs.len());
        }
        for (i, at) in compiled.iter().enumerate() {
            let target = match at {
                Some(at) => *at as usize,
                None => layout.stub(i as u32) as usize + kiln_environ::STUB_CALL_OFFSET as usize,
            };
            // SAFETY: slot `i` lies in the read-write slot pages, 8-aligned
            // (the slots start on a page), and nothing reads them yet.
            unsafe { base.add(layout.slot(i as u32) as usize).cast::<u64>().write(base as u64 + target as u64) };
        }
        let entry = super::arch::kiln_lazy_entry as *const () as u64;
        // SAFETY: as above, for the entry slot after the functions' slots.
        unsafe { base.add(layout.entry_slot() as usize).cast::<u64>().write(entry) };
        map.make_executable(0, text_pages)?;
        let n = layout.count as usize;
        let states: Box<[AtomicU8]> =
            compiled.iter().map(|c| AtomicU8::new(if c.is_some() { INSTALLED } else { NOT_COMPILED })).collect();
        let code_at: Box<[AtomicU32]> = compiled.iter().map(|c| AtomicU32::new(c.unwrap_or(0))).collect();
        Ok(LazyCode {
            map,
            layout,
            text_len: text.len(),
            states,
            code_at,
            // A function is installed at most twice (baseline, optimized),
            // and at most `n` on-stack-replacement entries are.
            batches: (0..3 * n).map(|_| OnceLock::new()).collect(),
            batch_count: AtomicUsize::new(0),
            next_free: Mutex::new(FreeArea { next: text_pages + slot_pages, writable_end: text_pages + slot_pages }),
            failures: Mutex::new(Vec::new()),
            done: (Mutex::new(()), Condvar::new()),
            waiters: AtomicU32::new(0),
            hot: Mutex::new(VecDeque::new()),
            to_optimize: Mutex::new(VecDeque::new()),
            hot_optimize: Mutex::new(VecDeque::new()),
            promoted: (0..n).map(|_| AtomicBool::new(false)).collect(),
            looped: (0..n).map(|_| AtomicBool::new(false)).collect(),
            baseline_len: (0..n).map(|_| AtomicU32::new(0)).collect(),
            counters: (0..n)
                .map(|_| FunctionCounters {
                    entry: AtomicI32::new(kiln_baseline::HOT_COUNT),
                    running: AtomicI32::new(0),
                })
                .collect(),
            osr: Mutex::new(OsrEntries::default()),
            osr_transfers: AtomicU32::new(0),
            cursor: AtomicU32::new(0),
            compiled: AtomicU32::new(0),
            first_call_nanos: AtomicU64::new(0),
            first_calls: AtomicU32::new(0),
            retired: Default::default(),
            background: Mutex::new(background),
            info,
            compiler,
        })
    }

    /// The first byte of the reservation (text offset 0).
    pub fn base(&self) -> *mut u8 {
        self.map.as_ptr()
    }

    /// Bytes of the reservation (every text offset is below this).
    pub fn reserved_len(&self) -> usize {
        self.map.len()
    }

    /// Bytes of the initial text, readable from [`LazyCode::base`].
    pub fn text_len(&self) -> usize {
        self.text_len
    }

    /// How many functions were compiled since the module was created.
    pub fn compiled_count(&self) -> u32 {
        self.compiled.load(Ordering::Relaxed)
    }

    /// How many on-stack-replacement entries are installed, and how many
    /// activations moved to one.
    pub fn osr_counts(&self) -> (usize, u32) {
        let osr = self.osr.lock().unwrap_or_else(|e| e.into_inner());
        let ready = osr.0.values().filter(|e| matches!(e, OsrEntry::Ready(_))).count();
        (ready, self.osr_transfers.load(Ordering::Relaxed))
    }

    /// How many activations of defined function `index` its baseline
    /// code counts as running (see `kiln_baseline::Options::entry_counter`).
    pub fn running_activations(&self, index: u32) -> i32 {
        self.counters.get(index as usize).map_or(0, |c| c.running.load(Ordering::Relaxed))
    }

    /// The defined functions reported hot, in index order (see
    /// [`LazyCode::osr_entry`]).
    pub fn hot_functions(&self) -> Vec<u32> {
        (0..self.promoted.len() as u32).filter(|&i| self.promoted[i as usize].load(Ordering::Relaxed)).collect()
    }

    /// Where each defined function's installed code starts within its
    /// page (`None`: no code installed after the module was created).
    pub fn code_page_offsets(&self) -> Vec<Option<usize>> {
        let initial = self.text_len;
        self.code_at
            .iter()
            .map(|at| at.load(Ordering::Acquire) as usize)
            .map(|at| (at >= initial).then(|| at % page_size()))
            .collect()
    }

    /// How many functions run baseline code, and how many have final
    /// code (compiled with the module or later).
    pub fn tier_counts(&self) -> (u32, u32) {
        let mut counts = (0, 0);
        for s in self.states.iter() {
            match s.load(Ordering::Acquire) {
                BASELINE | OPTIMIZING | BASELINE_KEPT => counts.0 += 1,
                INSTALLED => counts.1 += 1,
                _ => {}
            }
        }
        counts
    }

    /// The address the module's function records and exports use for
    /// defined function `index`: its code if it was compiled with the
    /// module, else its stub (which never changes, so records never need
    /// patching).
    pub fn entry_addr(&self, index: DefinedFuncIndex) -> *const u8 {
        let i = index.index();
        let at = match self.code_at.get(i).map(|c| c.load(Ordering::Relaxed)) {
            Some(at) if at != 0 && (at as usize) < self.text_len => at,
            _ => self.layout.stub(i as u32),
        };
        self.base().wrapping_add(at as usize)
    }

    /// Compiles and installs defined function `index` unless it has code,
    /// once even if several threads ask at the same time (the others wait
    /// for the first). Returns its code's address. A first call (not the
    /// background compiler) asks for baseline code.
    ///
    /// # Errors
    ///
    /// Compiling or installing failed (now or in an earlier attempt).
    pub fn ensure(&self, index: u32) -> Result<usize, String> {
        let state = self.states.get(index as usize).ok_or("internal: no such function")?;
        loop {
            match state.compare_exchange(NOT_COMPILED, COMPILING, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => {
                    let background = is_background_thread();
                    let wanted = if background { Tier::Optimized } else { Tier::Baseline };
                    let started = (debug_summary() && !background).then(Instant::now);
                    let result = self.compile_and_install(index, wanted);
                    if let Some(started) = started {
                        self.first_call_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                        self.first_calls.fetch_add(1, Ordering::Relaxed);
                    }
                    let _guard = self.done.0.lock().unwrap_or_else(|e| e.into_inner());
                    match &result {
                        Ok((_, Tier::Optimized)) => state.store(INSTALLED, Ordering::Release),
                        Ok((_, Tier::Baseline)) => {
                            state.store(BASELINE, Ordering::Release);
                            self.to_optimize.lock().unwrap_or_else(|e| e.into_inner()).push_back(index);
                        }
                        Err(e) => {
                            self.failures.lock().unwrap_or_else(|e| e.into_inner()).push((index, e.clone()));
                            state.store(FAILED, Ordering::Release);
                        }
                    }
                    if self.waiters.load(Ordering::Relaxed) > 0 {
                        self.done.1.notify_all();
                    }
                    return result.map(|(addr, _)| addr);
                }
                Err(INSTALLED | BASELINE | OPTIMIZING | BASELINE_KEPT) => return Ok(self.code_addr(index)),
                Err(FAILED) => {
                    let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
                    let message = failures.iter().find(|(i, _)| *i == index).map(|(_, m)| m.clone());
                    return Err(message.unwrap_or_else(|| "internal: compilation failed".into()));
                }
                Err(_) => {
                    let guard = self.done.0.lock().unwrap_or_else(|e| e.into_inner());
                    if state.load(Ordering::Acquire) == COMPILING {
                        self.waiters.fetch_add(1, Ordering::Relaxed);
                        let guard = self.done.1.wait(guard).unwrap_or_else(|e| e.into_inner());
                        self.waiters.fetch_sub(1, Ordering::Relaxed);
                        drop(guard);
                    }
                }
            }
        }
    }

    /// The on-stack-replacement entry of defined function `func`, for an
    /// activation at the head of its loop `loop_index`, if it is
    /// installed; otherwise 0, and asks the background compiler for it
    /// (before anything else) once the function has optimized code.
    /// (Asking earlier loses: an entry costs a whole compilation of the
    /// function, while the code that replaces it for new calls waits.)
    /// One entry takes activations at any of the function's loops (the
    /// entry is passed the loop's index), so a function whose old
    /// activations sit in many loops costs one compilation. A function
    /// still running baseline code is moved ahead of
    /// the others waiting for optimized code; with `loop_index`
    /// `OSR_HOT_CALLS` (its calls ran its entry counter out) that is all,
    /// and the answer is 0.
    pub fn osr_entry(self: &Arc<Self>, func: u32, loop_index: u32) -> usize {
        // A report of many calls, or a loop of baseline code: either way
        // the function is hot.
        let state = self.states.get(func as usize).map(|s| s.load(Ordering::Acquire));
        let from_loop = loop_index != kiln_environ::OSR_HOT_CALLS;
        if state == Some(BASELINE) {
            self.promote(func);
            let large = self.baseline_len.get(func as usize).map(|l| l.load(Ordering::Relaxed));
            if from_loop && large.is_some_and(|l| l >= LARGE_BASELINE_CODE) {
                self.looped[func as usize].store(true, Ordering::Relaxed);
            }
        }
        if !from_loop || state != Some(INSTALLED) {
            return 0;
        }
        let mut osr = self.osr.lock().unwrap_or_else(|e| e.into_inner());
        match osr.0.get(&func) {
            Some(OsrEntry::Ready(addr)) => {
                self.osr_transfers.fetch_add(1, Ordering::Relaxed);
                if debug_trace() {
                    eprintln!(
                        "kiln tiering: {:.1} ms: an activation of function {func} moves to its entry",
                        debug_clock()
                    );
                }
                *addr
            }
            Some(_) => 0,
            None => {
                // One entry per function at most: the batches have room
                // for three installs per function (baseline code,
                // optimized code, this entry).
                if self.looped.get(func as usize).is_some_and(|l| l.load(Ordering::Relaxed)) {
                    osr.2.push_back(func);
                } else {
                    osr.1.push_back(func);
                }
                osr.0.insert(func, OsrEntry::Requested);
                drop(osr);
                pool().submit(self);
                0
            }
        }
    }

    /// Moves defined function `func`, running baseline code, ahead of the
    /// other functions waiting for optimized code (once). Nothing more:
    /// a module with baseline code to replace is with the background
    /// compiler already, if it has one.
    fn promote(&self, func: u32) {
        let Some(flag) = self.promoted.get(func as usize) else { return };
        if !flag.swap(true, Ordering::Relaxed) {
            if debug_trace() {
                eprintln!("kiln tiering: {:.1} ms: function {func} is hot", debug_clock());
            }
            let now = Instant::now();
            self.hot_optimize.lock().unwrap_or_else(|e| e.into_inner()).push_back((func, now));
        }
    }

    /// Compiles and installs the on-stack-replacement entry asked for.
    fn compile_osr(&self, func: u32) {
        let defined = DefinedFuncIndex::from_u32(func);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.compiler.compile_osr(defined)));
        let entry = match result {
            Ok(Ok(encoded)) => match FunctionCode::parse(&encoded) {
                Some(code) => match self.install(defined, code, Install::Osr) {
                    Ok((addr, len)) => {
                        self.compiler.osr_installed(defined, addr, len);
                        OsrEntry::Ready(addr)
                    }
                    Err(_) => OsrEntry::Failed,
                },
                None => OsrEntry::Failed,
            },
            Ok(Err(e)) => {
                if debug_trace() {
                    eprintln!("kiln tiering: no on-stack-replacement entry for function {func}: {e:#}");
                }
                OsrEntry::Failed
            }
            Err(_) => OsrEntry::Failed,
        };
        self.osr.lock().unwrap_or_else(|e| e.into_inner()).0.insert(func, entry);
    }

    /// Replaces defined function `index`'s baseline code with optimized
    /// code, unless another thread is at it or has done it. Calls keep
    /// running the baseline code until the slot changes; activations of
    /// it already running finish in it, unless a loop check moves them to
    /// an on-stack-replacement entry.
    ///
    /// A large function whose baseline code reported from a loop may still
    /// have an activation looping in that code (an interpreter's main
    /// loop, say), which would ask for its entry only when its loops have
    /// counted down the whole entry counter again, and then wait for the
    /// entry's compilation: so the counter is set to 1 here, and such an
    /// activation asks at its next loop check; the entry is compiled once
    /// no hot function waits (it takes as long as the function, and the
    /// functions turning hot meanwhile are most of the run's time). Where
    /// no activation is left (SQLite's `sqlite3VdbeExec` runs once per
    /// row, so calls reach the optimized code from now on), nothing asks
    /// and no entry is compiled: compiling one anyway, as long as the
    /// function itself, held up the functions turning hot meanwhile. A
    /// loop check that races with this store may undo it; the activation
    /// then asks a count later.
    pub fn optimize(self: &Arc<Self>, index: u32) {
        let Some(state) = self.states.get(index as usize) else { return };
        if state.compare_exchange(BASELINE, OPTIMIZING, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return;
        }
        let next = match self.compile_and_install(index, Tier::Optimized) {
            Ok((_, Tier::Optimized)) => INSTALLED,
            _ => BASELINE_KEPT,
        };
        state.store(next, Ordering::Release);
        let looped = self.looped.get(index as usize).is_some_and(|f| f.load(Ordering::Relaxed));
        if next == INSTALLED
            && looped
            && let Some(counters) = self.counters.get(index as usize)
        {
            counters.entry.store(1, Ordering::Relaxed);
        }
    }
    /// The module's WebAssembly bytes.
    pub fn wasm(&self) -> &[u8] {
        self.compiler.wasm()
    }

    /// Hands the module to the background compiler if it was made with
    /// [`Background::Now`], or with [`Background::AtFirstMiss`] and
    /// `missed` (a call had to compile).
    pub fn start_background(self: &Arc<Self>, missed: bool) {
        let mut background = self.background.lock().unwrap_or_else(|e| e.into_inner());
        let start = match *background {
            Background::Now => true,
            Background::AtFirstMiss => missed,
            Background::Off => false,
        };
        if start {
            *background = Background::Off;
            drop(background);
            pool().submit(self);
        }
    }

    /// Stops compiling ahead and tells the compiler the module is gone.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        if debug_summary() {
            eprintln!(
                "kiln tiering: {:.1} ms: calls spent {:.1} ms compiling the {} functions they called first",
                debug_clock(),
                self.first_call_nanos.load(Ordering::Relaxed) as f64 / 1e6,
                self.first_calls.load(Ordering::Relaxed)
            );
        }
        // Baseline code is never cached: a function that has only that
        // counts as not compiled.
        let installed: Vec<bool> = self.states.iter().map(|s| s.load(Ordering::Acquire) == INSTALLED).collect();
        self.compiler.retired(&installed);
    }

    fn code_addr(&self, index: u32) -> usize {
        self.base() as usize + self.code_at[index as usize].load(Ordering::Acquire) as usize
    }

    /// The next thing worth doing ahead of calls, if anything is left:
    /// an on-stack-replacement entry asked for, else optimizing a hot
    /// function that runs baseline code, else the entry asked for by a
    /// large function (see [`LazyCode::optimize`]), else optimizing
    /// any other function that runs baseline code, else compiling a callee
    /// of something compiled, else the first function not compiled.
    pub fn next_to_compile(&self) -> Option<Work> {
        if self.retired.load(Ordering::Relaxed) {
            return None;
        }
        let state = |i: u32| self.states.get(i as usize).map(|s| s.load(Ordering::Relaxed));
        if let Some(func) = self.next_osr(1) {
            return Some(Work::Osr(func));
        }
        let optimize_next = |queue: &Mutex<VecDeque<u32>>| {
            let mut queue = queue.lock().unwrap_or_else(|e| e.into_inner());
            std::iter::from_fn(|| queue.pop_front()).find(|&i| state(i) == Some(BASELINE)).map(Work::Optimize)
        };
        if let Some(func) = self.next_hot(&state) {
            return Some(Work::Optimize(func));
        }
        if let Some(func) = self.next_osr(2) {
            return Some(Work::Osr(func));
        }
        if let Some(work) = optimize_next(&self.to_optimize) {
            return Some(work);
        }
        let not_started = |i: u32| state(i) == Some(NOT_COMPILED);
        {
            let mut hot = self.hot.lock().unwrap_or_else(|e| e.into_inner());
            while let Some(i) = hot.pop_front() {
                if not_started(i) {
                    return Some(Work::Compile(i));
                }
            }
        }
        let n = self.layout.count;
        let mut i = self.cursor.load(Ordering::Relaxed);
        while i < n && !not_started(i) {
            i += 1;
        }
        self.cursor.store(i, Ordering::Relaxed);
        (i < n).then_some(Work::Compile(i))
    }

    /// Takes the next on-stack-replacement entry asked for from queue
    /// `which` (1: small functions', 2: large ones', see [`OsrEntries`])
    /// whose function still has an activation running baseline code.
    /// The others are dropped, and a report from a later activation
    /// (none starts in baseline code once the function has optimized
    /// code, but recursion may surface one) asks again: an entry costs a
    /// whole compilation of the function, and SQLite's
    /// `sqlite3VdbeExec`'s entry (240 ms) was compiled after the statement
    /// whose activation asked had ended, while the functions turning hot
    /// meanwhile waited behind it (bench/LAZY.md, tenth session).
    fn next_osr(&self, which: u8) -> Option<u32> {
        let mut osr = self.osr.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let func = if which == 1 { osr.1.pop_front() } else { osr.2.pop_front() }?;
            let running = self.counters.get(func as usize).map_or(1, |c| c.running.load(Ordering::Relaxed));
            if running > 0 {
                return Some(func);
            }
            osr.0.remove(&func);
            if debug_trace() {
                eprintln!("kiln tiering: {:.1} ms: no entry for function {func}: no activation left", debug_clock());
            }
        }
    }

    /// Takes the hot function to optimize next, if any waits: the one
    /// whose wait so far is the largest against the compilation it needs
    /// (highest response ratio next: `(wait + cost) / cost`, the cost
    /// estimated from its baseline code's size). Small functions, which
    /// are most of those turning hot, no longer wait behind a large one
    /// that turned hot just before them, and a large one still gets its
    /// turn once it has waited about as long as it takes to compile
    /// (measured against report order: bench/LAZY.md, seventh session).
    fn next_hot(&self, state: &dyn Fn(u32) -> Option<u8>) -> Option<u32> {
        let mut queue = self.hot_optimize.lock().unwrap_or_else(|e| e.into_inner());
        queue.retain(|&(i, _)| state(i) == Some(BASELINE));
        let now = Instant::now();
        let ratio = |&(i, at): &(u32, Instant)| {
            let bytes = self.baseline_len.get(i as usize).map_or(0, |l| l.load(Ordering::Relaxed));
            let cost = OPTIMIZE_FIXED_MICROS + f64::from(bytes) * OPTIMIZE_MICROS_PER_BASELINE_BYTE;
            (now.saturating_duration_since(at).as_secs_f64() * 1e6 + cost) / cost
        };
        let best = (0..queue.len()).max_by(|&a, &b| ratio(&queue[a]).total_cmp(&ratio(&queue[b])))?;
        queue.remove(best).map(|(i, _)| i)
    }

    /// Compiles defined function `index`, asking for tier `wanted`, and
    /// installs the code. Returns its address and its tier.
    fn compile_and_install(&self, index: u32, wanted: Tier) -> Result<(usize, Tier), String> {
        let defined = DefinedFuncIndex::from_u32(index);
        let func = self.info.module.func_index(defined);
        let (encoded, tier) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // Boxed with the code, which the module's `LazyCode` owns too.
            let counter = self.counters.get(index as usize).map_or(0, |c| c.entry.as_ptr() as u64);
            self.compiler.compile(defined, wanted, counter)
        }))
        .map_err(|_| format!("internal: compiling function {} panicked", func.as_u32()))?
        .map_err(|e| format!("failed to compile function {}: {e:#}", func.as_u32()))?;
        let code = FunctionCode::parse(&encoded).ok_or("internal: a compiled function encodes inconsistently")?;
        self.queue_callees(&code);
        let (at, len) = self
            .install(defined, code, Install::Function(tier))
            .map_err(|e| format!("failed to install function {}: {e}", func.as_u32()))?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        if tier == Tier::Baseline {
            self.baseline_len[index as usize].store(len, Ordering::Relaxed);
        }
        self.compiler.installed(defined, encoded, tier, at, len);
        Ok((at, tier))
    }

    /// Queues what `code` calls directly (its relocations' targets, in
    /// the order of its code) to be compiled ahead: what a function calls
    /// is what runs next. The callees of a function called now go first;
    /// those of one compiled ahead, last. Taken from the code just
    /// compiled, not read from the body again: that scan was an eighth of
    /// a first call's compile time (bench/LAZY.md, eleventh session).
    fn queue_callees(&self, code: &FunctionCode<'_>) {
        let mut callees: Vec<u32> = Vec::new();
        for r in code.relocations() {
            if let Some(d) = self.info.module.defined_func_index(r.target)
                && !callees.contains(&d.as_u32())
            {
                callees.push(d.as_u32());
            }
        }
        let mut hot = self.hot.lock().unwrap_or_else(|e| e.into_inner());
        if is_background_thread() {
            hot.extend(callees);
        } else {
            for c in callees.into_iter().rev() {
                hot.push_front(c);
            }
        }
    }

    /// Links `code` (defined function `index`) into fresh pages of the lazy
    /// area, makes them executable, records its tables, and points its slot
    /// at it. Returns its address and length.
    ///
    /// Calls go straight to a callee's code only when it is final: to
    /// one without code, or with baseline code (which it will be
    /// replaced), they go to its stub, whose slot follows it. So does a
    /// baseline function's call to itself, or a recursion that started in
    /// baseline code would stay in it.
    ///
    /// An on-stack-replacement entry is linked like optimized code, its
    /// function's calls to itself going to the function's own code.
    fn install(&self, index: DefinedFuncIndex, code: FunctionCode<'_>, kind: Install) -> Result<(usize, u32), String> {
        let mut free = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
        let next = free.next;
        // Installs so far: one batch each, counted while `next_free` is held.
        let installs = self.batch_count.load(Ordering::Relaxed);
        let stagger = installs.wrapping_mul(INSTALL_STAGGER) % page_size();
        let start = next.checked_add(stagger).and_then(|s| u32::try_from(s).ok()).ok_or("lazy code area full")?;
        let target = |g: DefinedFuncIndex, locs: &[kiln_environ::FunctionLoc]| {
            if g == index && kind == Install::Function(Tier::Optimized) {
                return locs.first().map(|l| l.start);
            }
            if g == index && kind == Install::Osr {
                // Its function's calls to itself go to the function's
                // final code, or through its stub until it has some.
                let final_code = self.states.get(g.index())?.load(Ordering::Acquire) == INSTALLED;
                let at = self.code_at.get(g.index())?.load(Ordering::Acquire);
                return Some(if at != 0 && final_code { at } else { self.layout.stub(g.as_u32()) });
            }
            let final_code = self.states.get(g.index())?.load(Ordering::Acquire) == INSTALLED;
            let at = self.code_at.get(g.index())?.load(Ordering::Acquire);
            Some(if at != 0 && final_code && g != index { at } else { self.layout.stub(g.as_u32()) })
        };
        let body = self.compiler.body_offset(index);
        let linked =
            link_placed(&self.info.module, &[(index, code, body)], &[], start, &target).map_err(|e| e.to_string())?;
        let loc = *linked.funcs.first().ok_or("internal: nothing linked")?;
        let pages = round_up_to_page(stagger + linked.text.len().max(1)).ok_or("code too large")?;
        let end = next.checked_add(pages).filter(|end| *end <= self.map.len()).ok_or("lazy code area full")?;
        if end > free.writable_end {
            // Pages are made writable a chunk at a time ahead of use (one
            // call instead of one per function); they hold no code until
            // written, and each install makes its own pages executable,
            // which takes their write permission away.
            let chunk = (end - free.writable_end).max(WRITABLE_CHUNK).min(self.map.len() - free.writable_end);
            self.map.make_accessible(free.writable_end, chunk).map_err(|e| e.to_string())?;
            free.writable_end += chunk;
        }
        // SAFETY: `[next, end)` lies inside the reservation (checked above),
        // is read-write (below `writable_end`), and no code runs in it: it
        // was never executable, and `next_free` (held) hands it out once.
        // The text goes at `start`, `stagger` bytes into it, and ends
        // within it (`pages` counts the stagger).
        unsafe {
            std::ptr::copy_nonoverlapping(linked.text.as_ptr(), self.base().add(start as usize), linked.text.len())
        };
        self.map.make_executable(next, pages).map_err(|e| e.to_string())?;
        let func = self.info.module.func_index(index);
        let batch = Batch {
            start,
            len: linked.text.len() as u32,
            funcs: vec![(loc.start, loc.length, func)],
            traps: linked.traps,
            address_map: linked.address_map,
            exn_table: linked.exn_table,
            stack_maps: linked.stack_maps,
        };
        self.batches.get(installs).ok_or("internal: more batches than functions")?.set(batch).ok();
        self.batch_count.store(installs + 1, Ordering::Release);
        let addr = self.base() as usize + loc.start as usize;
        if kind == Install::Osr {
            free.next = end;
            return Ok((addr, loc.length));
        }
        self.code_at[index.index()].store(loc.start, Ordering::Release);
        let slot = self.layout.slot(index.as_u32()) as usize;
        // SAFETY: the slot lies in the reservation's read-write slot pages,
        // 8-aligned, for as long as `self`; compiled code reads it
        // concurrently, hence the atomic store.
        unsafe { AtomicU64::from_ptr(self.base().add(slot).cast::<u64>()).store(addr as u64, Ordering::Release) };
        free.next = end;
        debug_assert!(free.next.is_multiple_of(page_size()));
        Ok((addr, loc.length))
    }

    /// The installed batch containing text offset `off`, if any. Lock-free
    /// (the trap handler calls it).
    fn batch(&self, off: u32) -> Option<&Batch> {
        let n = self.batch_count.load(Ordering::Acquire);
        let batches = &self.batches[..n.min(self.batches.len())];
        let i = batches.partition_point(|b| b.get().is_some_and(|b| b.start <= off)).checked_sub(1)?;
        let b = batches[i].get()?;
        (off < b.start + b.len).then_some(b)
    }

    /// The function whose installed code contains text offset `off`, with
    /// `off`'s offset in it.
    pub fn func_at(&self, off: u32) -> Option<(FuncIndex, u32)> {
        let b = self.batch(off)?;
        let i = b.funcs.partition_point(|(s, _, _)| *s <= off).checked_sub(1)?;
        let (start, len, f) = b.funcs[i];
        (off < start + len).then_some((f, off - start))
    }

    /// The trap code of the instruction at text offset `off`.
    pub fn trap_code(&self, off: u32) -> Option<TrapCode> {
        self.batch(off)?.traps.lookup(off)
    }

    /// The wasm module offset of the instruction at text offset `off`.
    pub fn wasm_offset(&self, off: u32) -> Option<u32> {
        self.batch(off)?.address_map.floor(off)
    }

    /// The call site with exception handlers returning to text offset `ret`.
    pub fn exn_site(&self, ret: u32) -> Option<ExnSiteRef<'_>> {
        self.batch(ret.checked_sub(1)?)?.exn_table.lookup(ret)
    }

    /// The stack map of the call returning to text offset `ret`.
    pub fn stack_map(&self, ret: u32) -> Option<(u32, &[u32])> {
        self.batch(ret.checked_sub(1)?)?.stack_maps.lookup(ret)
    }
}

/// When a lazily compiled module's functions are compiled ahead of their
/// first call (see [`LazyCode::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Background {
    /// Never: only first calls compile.
    Off,
    /// From the start.
    Now,
    /// From the first call that has to compile something.
    AtFirstMiss,
}

/// The process's background compiler: threads (one fewer than the cores,
/// at least one) that compile, one function at a time, the functions of
/// lazily compiled modules not called yet, taking modules in turn.
struct BackgroundPool {
    /// The modules to compile, and how many threads wait for one.
    queue: Mutex<(VecDeque<Weak<LazyCode>>, usize)>,
    ready: Condvar,
}

fn pool() -> &'static BackgroundPool {
    static POOL: OnceLock<BackgroundPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1)).clamp(1, 4);
        for i in 0..threads {
            // Without threads, functions are still compiled at first call.
            let _ = std::thread::Builder::new().name(format!("kiln-background-{i}")).stack_size(8 << 20).spawn(|| {
                crate::vm::lazy_code::mark_background_thread();
                pool().work()
            });
        }
        BackgroundPool { queue: Mutex::new((VecDeque::new(), 0)), ready: Condvar::new() }
    })
}

impl BackgroundPool {
    fn submit(&self, lazy: &Arc<LazyCode>) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.0.push_back(Arc::downgrade(lazy));
        if queue.1 > 0 {
            self.ready.notify_one();
        }
    }

    fn work(&self) {
        loop {
            let next = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    match queue.0.pop_front() {
                        Some(m) => break m,
                        None => {
                            queue.1 += 1;
                            queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
                            queue.1 -= 1;
                        }
                    }
                }
            };
            let Some(lazy) = next.upgrade() else { continue };
            let Some(work) = lazy.next_to_compile() else { continue };
            // Another thread may take the module meanwhile; `ensure` and
            // `optimize` compile once either way. A failure is reported at
            // the call.
            self.submit(&lazy);
            let started = debug_trace().then(Instant::now);
            match work {
                Work::Optimize(index) => lazy.optimize(index),
                Work::Compile(index) => {
                    let _ = lazy.ensure(index);
                }
                Work::Osr(func) => lazy.compile_osr(func),
            }
            if let Some(started) = started {
                eprintln!("kiln tiering: {:.1} ms: {work:?} took {:?}", debug_clock(), started.elapsed());
            }
        }
    }
}

/// Whether `KILN_BASELINE_DEBUG` is set (to anything but `summary`): tiering then reports on
/// standard error, with times since its first report and by defined
/// function index, what the baseline compiler compiles and declines,
/// which functions turn hot, and each piece of background work with how
/// long it took (a developer's aid; see docs/ARCHITECTURE.md).
pub fn debug_trace() -> bool {
    static SET: OnceLock<bool> = OnceLock::new();
    *SET.get_or_init(|| {
        debug_clock();
        std::env::var_os("KILN_BASELINE_DEBUG").is_some_and(|v| v != "summary")
    })
}

/// Whether to print what tiering did when a module is dropped
/// (`KILN_BASELINE_DEBUG` set to anything, `summary` for only that, with
/// no line per function whose printing would slow what it measures).
pub fn debug_summary() -> bool {
    static SET: OnceLock<bool> = OnceLock::new();
    *SET.get_or_init(|| std::env::var_os("KILN_BASELINE_DEBUG").is_some())
}

/// Milliseconds since tiering was first asked whether to trace (the
/// trace's clock).
pub fn debug_clock() -> f64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}

thread_local! {
    static BACKGROUND: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as a background compiler's: what it discovers is
/// queued behind what wasm calls, and it runs at the lowest priority, so
/// that it takes cores nothing else wants instead of slowing the program
/// (Linux: a thread's nice value is its own).
pub fn mark_background_thread() {
    BACKGROUND.with(|b| b.set(true));
    lowest_priority();
}

/// Gives the calling thread the lowest scheduling priority (Linux: nice
/// 19, a thread's own; threads it creates afterwards inherit it). No
/// effect elsewhere, or when not allowed.
pub fn lowest_priority() {
    // SAFETY: plain system call on the calling thread; failure (not
    // allowed, not Linux) leaves the priority as it was, which is fine.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// Whether this thread is a background compiler's.
pub fn is_background_thread() -> bool {
    BACKGROUND.with(|b| b.get())
}

/// Stack bytes a compilation may need; with less left, it runs on a
/// thread of its own.
const COMPILE_STACK: usize = 4 << 20;

/// Where the lazy entry (`arch::kiln_lazy_entry`) goes: compiles the
/// function whose stub's call returns to `stub_ret`, if nobody has, and
/// returns its code's address for the entry to jump to. If compiling
/// fails, the calling wasm traps with the message.
///
/// # Safety
///
/// Called only by `kiln_lazy_entry`, from a stub of registered lazy code,
/// with the callee's VMContext, the frame pointer of the stub's caller
/// and its return address.
pub unsafe extern "C" fn lazy_compile_for_call(
    stub_ret: usize,
    vmctx: *mut super::vmcontext::VMContext,
    caller_fp: usize,
    caller_ret: usize,
) -> usize {
    let result = match super::code_memory::lazy_code_at(stub_ret) {
        Some((lazy, off)) => match lazy.layout.function_of_return(off) {
            Some(index) => ensure_with_stack(&lazy, index),
            None => Err("internal: a lazy entry from outside the stubs".into()),
        },
        None => Err("internal: a lazy entry from unregistered code".into()),
    };
    match result {
        Ok(addr) => addr,
        Err(message) => {
            // SAFETY: `vmctx` is the live VMContext of the called instance
            // (the contract), whose header points to its store's context;
            // recording the caller's frame there is what a builtin stub does
            // before a builtin raises a trap.
            unsafe {
                let store = *vmctx
                    .cast::<u8>()
                    .add(kiln_environ::vmoffsets::vmctx_header::STORE_CONTEXT as usize)
                    .cast::<*mut super::vmcontext::VMStoreContext>();
                (*store).last_wasm_exit_fp = caller_fp;
                (*store).last_wasm_exit_pc = caller_ret;
            }
            raise(TrapReason::Host(anyhow::anyhow!(message)))
        }
    }
}

/// [`LazyCode::ensure`], on a fresh thread if this one's stack is short.
fn ensure_with_stack(lazy: &Arc<LazyCode>, index: u32) -> Result<usize, String> {
    let left = super::arch::stack_pointer().saturating_sub(super::traphandlers::stack_low());
    if left >= COMPILE_STACK {
        let result = lazy.ensure(index);
        lazy.start_background(true);
        return result;
    }
    lazy.start_background(true);
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("kiln-compile".into())
            .stack_size(COMPILE_STACK * 2)
            .spawn_scoped(s, || lazy.ensure(index))
            .map_err(|e| format!("failed to start a compile thread: {e}"))?
            .join()
            .unwrap_or_else(|_| Err("internal: the compile thread panicked".into()))
    })
}
