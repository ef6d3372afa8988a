//! Differential execution of GC modules: Kiln against Wasmtime, with
//! collections forced at random.
//!
//! Kiln's collector is precise and moving: every collection copies the
//! live objects and must update every reference to them, on the wasm
//! stack (through stack maps), in globals, tables, other objects,
//! exception payloads and host handles. A reference it misses, or updates
//! wrongly, reads a stale copy or garbage, usually much later. This oracle
//! makes collections happen at as many points as it can and compares
//! everything a program can observe with Wasmtime (48, the crate, built
//! with its copying collector), which is the reference.
//!
//! A case ([`Case`]) is:
//!
//! - a wasm-smith module with the GC proposal on (structs, arrays, i31,
//!   casts, `ref.eq`, the abstract reference types, and by chance
//!   exceptions, tail calls, SIMD, ...), with NaN canonicalization and
//!   wasm-smith's termination fuel so that every call ends. Its only
//!   imports are host functions of [`HOST_IMPORTS`], which wasm-smith may
//!   import and call: each forces a collection in Kiln (from inside wasm,
//!   so every live frame's references are roots) and returns its arguments
//!   unchanged (so references cross the host boundary both ways);
//! - Kiln settings: the usual random ones ([`KilnSettings::arbitrary`]:
//!   opt level, fuel, epochs, bounds checks, pooling, ...), GC zeal (a
//!   collection at every n-th allocation, `n` in 1..=64, or none), and a
//!   maximum GC heap size (small heaps collect often on their own);
//! - a schedule of collections the host forces between calls
//!   ([`Case::gc_after`]) and the bytes call arguments are drawn from.
//!
//! Both engines instantiate the module and call every exported function
//! in export order (one to three rounds), with the same arguments:
//! numbers from the input (often boundary values), and for reference
//! parameters null, or an i31 (`anyref`/`eqref`/`i31ref`), or a host
//! value (`externref`; required for non-nullable ones). Functions with a non-nullable parameter of
//! another reference type are not called. After instantiation and after
//! every call (and the collection that may follow it) the oracle compares:
//!
//! - results, and the payload of an uncaught exception: numbers
//!   bit-for-bit, references by [`Shape`] (null; an i31 and its value; a
//!   struct and its fields; an array, its length and first elements; a
//!   function and its arity; a host value and its number; an
//!   `externref`/`anyref` conversion and what it wraps), objects to a
//!   bounded depth and size. Identities are not compared: the same
//!   program may allocate differently in the two engines, but what it can
//!   read must be the same;
//! - traps, by kind ([`TrapKind`]);
//! - every exported global (by shape), table (size and element shapes) and
//!   memory (bytes).
//!
//! **Inconclusive outcomes** ([`Inconclusive`]). When either engine runs
//! out of stack or fuel, cannot allocate (a GC heap or memory limit, an
//! allocation too large), when Wasmtime refuses the module or panics, or
//! Kiln's pooling allocator has no room, the case stops there: these are
//! limits the engines may legitimately set differently.
//!
//! **A divergence** panics through [`crate::fail`] (libFuzzer records it;
//! `KILN_FUZZ_SAVE` keeps the module). `KILN_FUZZ_GC_TRACE=1` prints every
//! call's results in both engines, and why a case stopped.
//!
//! Only built with the `wasmtime-oracle` feature, which brings in the
//! Wasmtime crate; the main workspace builds without it.

use crate::differential::TrapKind;
use crate::generators::{self, KilnSettings, ModuleLimits, Proposals, Value};
use arbitrary::Unstructured;
use kiln::AsContextMut as _;
use wasmtime::AsContextMut as _;

/// wasm-smith termination fuel: loop iterations plus calls a module may
/// perform over its whole life before trapping with `unreachable`.
pub const TERMINATION_FUEL: u32 = 1000;

/// Most object nodes (structs, arrays, wrapped references) one
/// observation ([`Shape`]) of a value descends into.
const SHAPE_BUDGET: usize = 256;

/// How deep an observation descends into objects.
const SHAPE_DEPTH: u32 = 4;

/// Most array elements observed per array (the length is always).
const ARRAY_ELEMENTS_OBSERVED: u32 = 16;

/// Most table elements observed per table (the size is always).
const TABLE_ELEMENTS_OBSERVED: u64 = 64;

/// The imports a generated module may use (wasm-smith picks a random
/// subset and calls them like any function). Both engines define them;
/// each forces a collection in Kiln and returns its arguments.
pub const HOST_IMPORTS: &str = r#"
(module
  (import "host" "gc" (func))
  (import "host" "gc_i32" (func (param i32) (result i32)))
  (import "host" "gc_anyref" (func (param anyref) (result anyref)))
  (import "host" "gc_externref" (func (param externref) (result externref)))
  (import "host" "gc_anyref_i32" (func (param anyref i32) (result anyref i32)))
)
"#;

/// Largest Wasmtime memory (linear memories and its GC heap), so that
/// runaway allocations fail rather than exhaust the machine.
const WASMTIME_MEMORY_LIMIT: usize = 256 << 20;

/// A host value passed to wasm as a non-null `externref`: its number is
/// what the oracle compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostValue(pub u32);

/// One differential GC test case.
#[derive(Clone, Debug)]
pub struct Case {
    /// The module.
    pub wasm: Vec<u8>,
    /// Kiln's engine settings (GC on, plus the proposals the module may
    /// use).
    pub settings: KilnSettings,
    /// `Config::gc_zeal`: a collection at every n-th GC allocation.
    pub zeal: Option<u32>,
    /// `Config::max_gc_heap_size`, when not the default.
    pub max_gc_heap: Option<u64>,
    /// Bit `i` (mod 64): Kiln's store collects after export call `i`,
    /// twice: before the host reads the results (or the exception
    /// payload) and before it reads the exports (bit 63 also right after
    /// instantiation).
    pub gc_after: u64,
    /// How many times every export is called (1 to 3; later rounds run on
    /// the heap the earlier ones left).
    pub rounds: u8,
    /// The bytes call arguments are drawn from.
    pub args: Vec<u8>,
}

impl Case {
    /// A case for a given module (a hand-written or reduced one): default
    /// Kiln settings with GC on, arguments zero or null.
    pub fn for_module(wasm: Vec<u8>) -> Case {
        let settings = KilnSettings { gc: true, multi_memory: true, ..KilnSettings::default() };
        Case { wasm, settings, zeal: None, max_gc_heap: None, gc_after: 0, rounds: 1, args: Vec::new() }
    }
}

/// Why a case stopped without a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Inconclusive {
    /// An engine ran out of stack.
    StackOverflow,
    /// An engine ran out of fuel (Kiln's metering, never expected).
    OutOfFuel,
    /// An engine could not allocate: a GC heap or memory limit, or an
    /// allocation too large.
    Allocation,
    /// Wasmtime refused the module (or its configuration).
    WasmtimeRefused,
    /// Wasmtime panicked (a Wasmtime bug, not Kiln's).
    WasmtimePanicked,
    /// Kiln's pooling allocator had no room (a configured limit).
    PoolingLimit,
    /// Something else engine-specific (an epoch interruption).
    Other,
}

impl Inconclusive {
    /// A short name, for statistics.
    pub fn name(self) -> &'static str {
        match self {
            Inconclusive::StackOverflow => "stack overflow",
            Inconclusive::OutOfFuel => "out of fuel",
            Inconclusive::Allocation => "allocation failure",
            Inconclusive::WasmtimeRefused => "wasmtime refused the module",
            Inconclusive::WasmtimePanicked => "wasmtime panicked",
            Inconclusive::PoolingLimit => "pooling limit",
            Inconclusive::Other => "other",
        }
    }

    fn of_trap(kind: TrapKind) -> Option<Inconclusive> {
        match kind {
            TrapKind::StackOverflow => Some(Inconclusive::StackOverflow),
            TrapKind::OutOfFuel => Some(Inconclusive::OutOfFuel),
            TrapKind::ResourceExhausted => Some(Inconclusive::Allocation),
            TrapKind::Interrupt => Some(Inconclusive::Other),
            _ => None,
        }
    }
}

/// The verdict on a case that found no divergence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Both engines agreed on everything.
    Completed(Stats),
    /// The comparison stopped early for a legitimate reason.
    Inconclusive {
        /// Why.
        reason: Inconclusive,
        /// What happened.
        detail: String,
    },
}

/// What a completed case compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Export calls compared.
    pub calls: usize,
    /// Of those, calls that returned.
    pub returned: usize,
    /// Calls that trapped (the same way in both engines).
    pub trapped: usize,
    /// Calls that threw an exception nothing caught.
    pub threw: usize,
    /// Exports not called: a non-nullable parameter the oracle cannot
    /// make a value for.
    pub skipped: usize,
    /// Objects (structs, arrays, exceptions, wrapped references) compared,
    /// in results and exports.
    pub objects: usize,
    /// Collections the host forced in Kiln between calls ([`Case::gc_after`]).
    pub host_collections: usize,
    /// Calls wasm made to the host imports (each forced a collection in
    /// Kiln with wasm frames live).
    pub import_calls: usize,
    /// Collections Kiln made in all (forced, zeal, full heap).
    pub kiln_collections: u64,
}

impl Stats {
    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &Stats) {
        self.calls += other.calls;
        self.returned += other.returned;
        self.trapped += other.trapped;
        self.threw += other.threw;
        self.skipped += other.skipped;
        self.objects += other.objects;
        self.host_collections += other.host_collections;
        self.import_calls += other.import_calls;
        self.kiln_collections += other.kiln_collections;
    }
}

/// A value as the host observes it, comparable across engines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `i32`.
    I32(i32),
    /// `i64`.
    I64(i64),
    /// `f32` bits.
    F32(u32),
    /// `f64` bits.
    F64(u64),
    /// `v128` bits.
    V128(u128),
    /// A null reference (of any hierarchy).
    Null,
    /// A function, by its number of parameters and results.
    Func {
        /// Parameters.
        params: usize,
        /// Results.
        results: usize,
    },
    /// An i31 and its value (low 31 bits).
    I31(u32),
    /// A struct and its fields.
    Struct(Vec<Shape>),
    /// An array: its length and its first elements.
    Array {
        /// Its length.
        len: u32,
        /// Its first elements, at most [`ARRAY_ELEMENTS_OBSERVED`].
        elems: Vec<Shape>,
    },
    /// A host value ([`HostValue`]) as an `externref`.
    Host(u32),
    /// An `externref` wrapping a GC reference (`extern.convert_any`).
    Extern(Box<Shape>),
    /// An `anyref` wrapping a host value (`any.convert_extern`).
    Boxed(Box<Shape>),
    /// An exception object's payload.
    Exn(Vec<Shape>),
    /// Not observed: beyond the depth or size budget.
    Elided,
    /// The host API failed to read the value (equal to any other failure:
    /// the message is engine-specific).
    Unreadable(Note),
}

impl Shape {
    /// The number of objects (structs, arrays, exceptions, wrapped
    /// references) this shape describes.
    pub fn objects(&self) -> usize {
        match self {
            Shape::Struct(v) | Shape::Exn(v) => 1 + v.iter().map(Shape::objects).sum::<usize>(),
            Shape::Array { elems, .. } => 1 + elems.iter().map(Shape::objects).sum::<usize>(),
            Shape::Extern(b) | Shape::Boxed(b) => 1 + b.objects(),
            _ => 0,
        }
    }
}

/// A message that compares equal to every other message.
#[derive(Clone, Debug)]
pub struct Note(pub String);

impl PartialEq for Note {
    fn eq(&self, _: &Note) -> bool {
        true
    }
}

impl Eq for Note {}

/// How a call (or an instantiation) ended, in terms both engines share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallResult {
    /// Returned these values.
    Values(Vec<Shape>),
    /// Trapped.
    Trap(TrapKind),
    /// Threw an exception nothing caught, with this payload.
    Exception(Vec<Shape>),
    /// Failed otherwise (the message is engine-specific).
    Error(Note),
}

impl CallResult {
    fn inconclusive(&self) -> Option<Inconclusive> {
        match self {
            CallResult::Trap(k) => Inconclusive::of_trap(*k),
            CallResult::Error(Note(m)) if generators::is_pooling_limit(m) => Some(Inconclusive::PoolingLimit),
            CallResult::Error(Note(m)) if is_allocation_message(m) => Some(Inconclusive::Allocation),
            _ => None,
        }
    }
}

/// Whether an error message is about an allocation that failed (a limit,
/// not a semantic difference).
fn is_allocation_message(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    m.contains("out of memory")
        || m.contains("allocation")
        || m.contains("gc heap")
        || m.contains("resource limit")
        || m.contains("cannot allocate")
        || m.contains("failed to grow")
}

/// What the host sees of an instance's exports, by name in export order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// `(name, value)` of every exported global.
    pub globals: Vec<(String, Shape)>,
    /// `(name, size, first elements)` of every exported table.
    pub tables: Vec<(String, u64, Vec<Shape>)>,
    /// `(name, bytes)` of every exported memory.
    pub memories: Vec<(String, Vec<u8>)>,
}

/// The instruction kinds wasm-smith's swarm configuration may switch off.
const INSTRUCTION_KINDS: &[wasm_smith::InstructionKind] = {
    use wasm_smith::InstructionKind as K;
    &[
        K::NumericInt,
        K::Numeric,
        K::VectorInt,
        K::Vector,
        K::Reference,
        K::Parametric,
        K::Variable,
        K::Table,
        K::MemoryInt,
        K::Memory,
        K::Control,
        K::Aggregate,
    ]
};

/// Generates a case from `u`.
///
/// # Errors
///
/// `u` does not hold enough data for a module.
pub fn generate(u: &mut Unstructured<'_>) -> arbitrary::Result<Case> {
    // Proposals both engines implement deterministically.
    let allowed = Proposals { relaxed_simd: false, threads: false, ..Proposals::ALL };
    let mut smith = generators::smith_config(u, ModuleLimits::EXECUTE, allowed)?;
    smith.gc_enabled = true;
    smith.reference_types_enabled = true;
    smith.exceptions_enabled = u.ratio(1, 2)?;
    smith.max_tags = if smith.exceptions_enabled { u.int_in_range(0..=4)? } else { 0 };
    smith.canonicalize_nans = true;
    smith.export_everything = u.ratio(3, 4)?;
    smith.max_tables = smith.max_tables.max(1);
    // Swarm testing may switch instruction kinds off; the GC ones (and
    // what moves references around) stay on.
    {
        use wasm_smith::InstructionKind as K;
        let mut kinds: Vec<K> =
            INSTRUCTION_KINDS.iter().copied().filter(|k| smith.allowed_instructions.contains(*k)).collect();
        kinds.extend([K::Aggregate, K::Reference, K::Control, K::Variable, K::Parametric]);
        smith.allowed_instructions = wasm_smith::InstructionKinds::new(&kinds);
    }
    // Only the host functions both engines define; calls to them collect.
    smith.available_imports = match wat::parse_str(HOST_IMPORTS) {
        Ok(w) => Some(w),
        Err(_) => return Err(arbitrary::Error::IncorrectFormat),
    };
    smith.max_imports = smith.max_imports.min(5);
    // Something to call, and types to build objects of.
    smith.max_types = smith.max_types.max(4);
    smith.max_funcs = smith.max_funcs.max(1);
    smith.min_types = smith.max_types.min(u.int_in_range(1..=6)?);
    smith.min_funcs = smith.max_funcs.min(u.int_in_range(1..=4)?);
    smith.max_exports = smith.max_exports.max(smith.min_funcs);
    smith.min_exports = smith.max_exports.min(smith.min_funcs);

    let mut settings = KilnSettings::arbitrary(u, generators::max_memory_bytes(&smith))?;
    settings.enable_proposals_of(&smith);
    settings.gc = true;
    let zeal = if u.ratio(2, 3)? { Some(u.int_in_range(1..=64)?) } else { None };
    let max_gc_heap = match u.int_in_range(0u8..=3)? {
        0 => Some(256 << 10),
        1 => Some(4 << 20),
        _ => Some(64 << 20),
    };
    let gc_after = u.arbitrary()?;
    let rounds = u.int_in_range(1..=3)?;
    let wasm = generators::smith_module(u, smith, Some(TERMINATION_FUEL))?;
    let args_len = u.len().min(1024);
    let args = u.bytes(args_len)?.to_vec();
    Ok(Case { wasm, settings, zeal, max_gc_heap, gc_after, rounds, args })
}

/// Runs `case`; panics (through [`crate::fail`]) on a divergence.
pub fn run(case: &Case) -> Outcome {
    match case.check() {
        Ok(o) => o,
        Err(msg) => crate::fail(
            "differential_gc",
            &case.wasm,
            &format!(
                "{msg}\nKiln settings: {:?}, zeal {:?}, max GC heap {:?}, host collections after calls {:#018x}",
                case.settings, case.zeal, case.max_gc_heap, case.gc_after
            ),
        ),
    }
}

/// The fuzz-target entry point: [`generate`], then [`run`].
///
/// # Errors
///
/// `u` does not hold enough data for a module.
pub fn fuzz(u: &mut Unstructured<'_>) -> arbitrary::Result<Outcome> {
    let case = generate(u)?;
    Ok(run(&case))
}

/// An argument for one parameter, engine-independent.
#[derive(Clone, Copy, Debug)]
enum Arg {
    /// A number.
    Num(Value),
    /// A null reference.
    Null,
    /// An i31.
    I31(i32),
    /// A host value as an `externref`.
    Host(u32),
}

/// Draws an argument for a parameter of type `ty` (Wasmtime's precise
/// type); `None` if the oracle cannot make one (a non-nullable reference
/// to a function or a concrete type).
fn arbitrary_arg(u: &mut Unstructured<'_>, ty: &wasmtime::ValType) -> Option<Arg> {
    use wasmtime::HeapType as H;
    let num = |u: &mut Unstructured<'_>, t| Some(Arg::Num(Value::arbitrary(u, t)));
    match ty {
        wasmtime::ValType::I32 => num(u, kiln::ValType::I32),
        wasmtime::ValType::I64 => num(u, kiln::ValType::I64),
        wasmtime::ValType::F32 => num(u, kiln::ValType::F32),
        wasmtime::ValType::F64 => num(u, kiln::ValType::F64),
        wasmtime::ValType::V128 => num(u, kiln::ValType::V128),
        wasmtime::ValType::Ref(r) => {
            let nullable = r.is_nullable();
            let pick_value = !nullable || u.ratio(1, 2).unwrap_or(false);
            match r.heap_type() {
                H::Any | H::Eq | H::I31 if pick_value => Some(Arg::I31(u.arbitrary().unwrap_or(0))),
                H::Extern if pick_value => Some(Arg::Host(u.int_in_range(0..=15).unwrap_or(0))),
                _ if nullable => Some(Arg::Null),
                _ => None,
            }
        }
    }
}

impl Case {
    /// Runs the case.
    ///
    /// # Errors
    ///
    /// A description of the first divergence.
    pub fn check(&self) -> Result<Outcome, String> {
        let trace = std::env::var_os("KILN_FUZZ_GC_TRACE").is_some();
        let stop = |reason: Inconclusive, detail: String| {
            if trace {
                eprintln!("inconclusive ({}): {detail}", reason.name());
            }
            Ok(Outcome::Inconclusive { reason, detail })
        };
        if !generators::validates(&self.wasm, &self.settings) {
            return Err("wasm-smith generated a module Kiln's features reject (generator configuration bug)".into());
        }
        let mut wt = match crate::shielded(|| WasmtimeSide::new(&self.wasm, self.settings.nan_canonicalization)) {
            None => return stop(Inconclusive::WasmtimePanicked, "creating the module".into()),
            Some(Err(e)) => return stop(Inconclusive::WasmtimeRefused, e),
            Some(Ok(w)) => w,
        };
        let mut kn = match KilnSide::new(self) {
            Ok(k) => k,
            Err(e) if generators::is_pooling_limit(&e) => return stop(Inconclusive::PoolingLimit, e),
            Err(e) => return Err(format!("Kiln refused a module Wasmtime accepts: {e}")),
        };

        // Instantiation.
        let k = kn.instantiate();
        let Some(w) = crate::shielded(|| wt.instantiate()) else {
            return stop(Inconclusive::WasmtimePanicked, "instantiation".into());
        };
        if let Some(r) = k.inconclusive().or(w.inconclusive()) {
            return stop(r, format!("instantiation: Kiln {k:?}, Wasmtime {w:?}"));
        }
        // (Errors other than traps and exceptions, such as link errors,
        // compare equal whatever their messages.)
        if k != w {
            return Err(format!("instantiation: Kiln {k:?}, Wasmtime {w:?}"));
        }
        let mut stats = Stats::default();
        if !matches!(k, CallResult::Values(_)) {
            return Ok(Outcome::Completed(stats));
        }
        if self.gc_after & (1 << 63) != 0 {
            kn.store.gc();
            stats.host_collections += 1;
        }
        match self.compare_state(&mut kn, &mut wt, "instantiation")? {
            Some(n) => stats.objects += n,
            None => return stop(Inconclusive::WasmtimePanicked, "reading the exports after instantiation".into()),
        }

        // Every exported function, in export order.
        let mut args = Unstructured::new(&self.args);
        let exports = wt.exported_funcs();
        for (name, ty) in (0..self.rounds).flat_map(|_| exports.iter()) {
            let Some(values) = ty.params().map(|t| arbitrary_arg(&mut args, &t)).collect::<Option<Vec<Arg>>>() else {
                stats.skipped += 1;
                continue;
            };
            let collect = self.gc_after & (1 << (stats.calls % 64)) != 0;
            let k = kn.call(name, &values, collect);
            let Some(w) = crate::shielded(|| wt.call(name, &values)) else {
                return stop(Inconclusive::WasmtimePanicked, format!("call {name}"));
            };
            if trace {
                eprintln!("call {name}({values:?}): Kiln {k:?}, Wasmtime {w:?}");
            }
            if let Some(r) = k.inconclusive().or(w.inconclusive()) {
                return stop(r, format!("call {name}({values:?}): Kiln {k:?}, Wasmtime {w:?}"));
            }
            if k != w {
                return Err(format!("call {name}({values:?}): Kiln {k:?}, Wasmtime {w:?}"));
            }
            match &k {
                CallResult::Values(v) => {
                    stats.returned += 1;
                    stats.objects += v.iter().map(Shape::objects).sum::<usize>();
                }
                CallResult::Exception(v) => {
                    stats.threw += 1;
                    stats.objects += 1 + v.iter().map(Shape::objects).sum::<usize>();
                }
                CallResult::Trap(_) | CallResult::Error(_) => stats.trapped += 1,
            }
            if collect {
                kn.store.gc();
                stats.host_collections += 2;
            }
            stats.calls += 1;
            match self.compare_state(&mut kn, &mut wt, &format!("call {name}({values:?})"))? {
                Some(n) => stats.objects += n,
                None => return stop(Inconclusive::WasmtimePanicked, format!("reading the exports after {name}")),
            }
        }
        stats.import_calls = kn.import_calls.load(std::sync::atomic::Ordering::Relaxed);
        stats.kiln_collections = kn.store.gc_heap_stats().map_or(0, |s| s.collections);
        Ok(Outcome::Completed(stats))
    }

    /// Compares the exports of both instances; returns the number of
    /// objects compared, or `None` if Wasmtime panicked reading them.
    fn compare_state(&self, kn: &mut KilnSide, wt: &mut WasmtimeSide, when: &str) -> Result<Option<usize>, String> {
        let Some(w) = crate::shielded(|| wt.snapshot()) else { return Ok(None) };
        let k = kn.snapshot(&w);
        compare_snapshots(&k, &w).map_err(|e| format!("after {when}: {e}"))?;
        let globals = w.globals.iter().map(|g| g.1.objects()).sum::<usize>();
        let tables = w.tables.iter().flat_map(|t| t.2.iter()).map(Shape::objects).sum::<usize>();
        Ok(Some(globals + tables))
    }
}

/// Compares two snapshots, Kiln's and Wasmtime's.
fn compare_snapshots(k: &Snapshot, w: &Snapshot) -> Result<(), String> {
    for ((name, a), b) in k.globals.iter().zip(w.globals.iter().map(|g| &g.1)) {
        if a != b {
            return Err(format!("global {name}: Kiln {a:?}, Wasmtime {b:?}"));
        }
    }
    if k.globals.len() != w.globals.len() {
        return Err(format!("{} globals in Kiln, {} in Wasmtime", k.globals.len(), w.globals.len()));
    }
    if k.tables.len() != w.tables.len() {
        return Err(format!("{} tables in Kiln, {} in Wasmtime", k.tables.len(), w.tables.len()));
    }
    for ((name, ks, a), (_, ws, b)) in k.tables.iter().zip(&w.tables) {
        if ks != ws {
            return Err(format!("table {name}: size {ks} in Kiln, {ws} in Wasmtime"));
        }
        if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
            return Err(format!("table {name} element {i}: Kiln {:?}, Wasmtime {:?}", a[i], b[i]));
        }
    }
    if k.memories.len() != w.memories.len() {
        return Err(format!("{} memories in Kiln, {} in Wasmtime", k.memories.len(), w.memories.len()));
    }
    for ((name, a), (_, b)) in k.memories.iter().zip(&w.memories) {
        if a.len() != b.len() {
            return Err(format!("memory {name}: {} bytes in Kiln, {} in Wasmtime", a.len(), b.len()));
        }
        if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
            let end = (i + 16).min(a.len());
            return Err(format!(
                "memory {name} differs at {i:#x}: Kiln {:02x?}, Wasmtime {:02x?}",
                &a[i..end],
                &b[i..end]
            ));
        }
    }
    Ok(())
}

/// How much more of an object graph an observation may visit.
struct Budget(usize);

impl Budget {
    /// Takes one object node; `false` when the budget is spent (or too
    /// deep).
    fn take(&mut self, depth: u32) -> bool {
        if depth >= SHAPE_DEPTH || self.0 == 0 {
            return false;
        }
        self.0 -= 1;
        true
    }
}

// ---------------------------------------------------------------- Kiln --

/// Kiln's side of a case.
struct KilnSide {
    store: kiln::Store<()>,
    module: kiln::Module,
    imports: Vec<kiln::Extern>,
    instance: Option<kiln::Instance>,
    /// Calls wasm made to the host imports.
    import_calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

fn kiln_arg(a: &Arg, ty: kiln::ValType) -> kiln::Val {
    match a {
        Arg::Num(v) => v.to_kiln(),
        Arg::Null => kiln::Val::default_for(ty),
        Arg::I31(v) => kiln::Val::AnyRef(Some(kiln::AnyRef::from_i31(kiln::I31::wrapping_i32(*v)))),
        Arg::Host(n) => kiln::Val::ExternRef(Some(kiln::ExternRef::new(HostValue(*n)))),
    }
}

/// Maps a Kiln error (of a call or an instantiation) to a result, taking
/// the pending exception's payload when one was thrown.
fn kiln_error(store: &mut kiln::Store<()>, e: &anyhow::Error) -> CallResult {
    if let Some(t) = e.chain().find_map(|c| c.downcast_ref::<kiln::Trap>()) {
        return CallResult::Trap(TrapKind::from_kiln(t.code()));
    }
    if e.chain().any(|c| c.downcast_ref::<kiln::ThrownException>().is_some()) {
        let Some(exn) = store.take_pending_exception() else {
            return CallResult::Error(Note("ThrownException without a pending exception".into()));
        };
        let mut scope = kiln::RootScope::new(&mut *store);
        let mut budget = Budget(SHAPE_BUDGET);
        return match exn.fields(&mut scope) {
            Ok(fields) => {
                CallResult::Exception(fields.iter().map(|v| kiln_shape(&mut scope, v, &mut budget, 1)).collect())
            }
            Err(e) => CallResult::Error(Note(format!("reading the exception's payload: {e:#}"))),
        };
    }
    CallResult::Error(Note(format!("{e:#}")))
}

/// The shape of a Kiln value.
fn kiln_shape(store: &mut impl kiln::AsContextMut, v: &kiln::Val, budget: &mut Budget, depth: u32) -> Shape {
    match v {
        kiln::Val::I32(x) => Shape::I32(*x),
        kiln::Val::I64(x) => Shape::I64(*x),
        kiln::Val::F32(x) => Shape::F32(*x),
        kiln::Val::F64(x) => Shape::F64(*x),
        kiln::Val::V128(x) => Shape::V128(x.as_u128()),
        kiln::Val::FuncRef(None) | kiln::Val::ExternRef(None) | kiln::Val::AnyRef(None) | kiln::Val::ExnRef(None) => {
            Shape::Null
        }
        kiln::Val::FuncRef(Some(f)) => {
            let ty = f.ty(&*store);
            Shape::Func { params: ty.params().len(), results: ty.results().len() }
        }
        kiln::Val::ExternRef(Some(r)) => {
            if let Some(h) = r.data().downcast_ref::<HostValue>() {
                return Shape::Host(h.0);
            }
            if !budget.take(depth) {
                return Shape::Elided;
            }
            match kiln::AnyRef::convert_extern(&mut *store, r) {
                Ok(any) => Shape::Extern(Box::new(kiln_shape(store, &kiln::Val::AnyRef(Some(any)), budget, depth + 1))),
                Err(e) => Shape::Unreadable(Note(format!("any.convert_extern: {e:#}"))),
            }
        }
        kiln::Val::AnyRef(Some(a)) => {
            if let Some(i) = a.as_i31() {
                return Shape::I31(i.get_u32());
            }
            if !budget.take(depth) {
                return Shape::Elided;
            }
            if let Some(s) = a.as_struct() {
                let mut fields = Vec::new();
                // The host API has no field count: read until it fails.
                for i in 0.. {
                    match s.field(&mut *store, i) {
                        Ok(f) => fields.push(f),
                        Err(_) => break,
                    }
                }
                Shape::Struct(fields.iter().map(|f| kiln_shape(store, f, budget, depth + 1)).collect())
            } else if let Some(arr) = a.as_array() {
                let len = match arr.len(&*store) {
                    Ok(l) => l,
                    Err(e) => return Shape::Unreadable(Note(format!("array length: {e:#}"))),
                };
                let mut elems = Vec::new();
                for i in 0..len.min(ARRAY_ELEMENTS_OBSERVED) {
                    match arr.get(&mut *store, i) {
                        Ok(v) => elems.push(kiln_shape(store, &v, budget, depth + 1)),
                        Err(e) => elems.push(Shape::Unreadable(Note(format!("array element: {e:#}")))),
                    }
                }
                Shape::Array { len, elems }
            } else if a.is_extern_box() {
                match kiln::ExternRef::convert_any(&mut *store, *a) {
                    Ok(e) => {
                        Shape::Boxed(Box::new(kiln_shape(store, &kiln::Val::ExternRef(Some(e)), budget, depth + 1)))
                    }
                    Err(e) => Shape::Unreadable(Note(format!("extern.convert_any: {e:#}"))),
                }
            } else {
                Shape::Unreadable(Note("an anyref that is no i31, struct, array or extern box".into()))
            }
        }
        kiln::Val::ExnRef(Some(x)) => {
            if !budget.take(depth) {
                return Shape::Elided;
            }
            match x.fields(&mut *store) {
                Ok(fields) => Shape::Exn(fields.iter().map(|f| kiln_shape(store, f, budget, depth + 1)).collect()),
                Err(e) => Shape::Unreadable(Note(format!("exception payload: {e:#}"))),
            }
        }
    }
}

impl KilnSide {
    fn new(case: &Case) -> Result<KilnSide, String> {
        let mut config = case.settings.config();
        config.gc_zeal(case.zeal);
        if let Some(m) = case.max_gc_heap {
            config.max_gc_heap_size(m);
        }
        let engine = kiln::Engine::new(&config).map_err(|e| format!("{e:#}"))?;
        let module = kiln::Module::from_binary(&engine, &case.wasm).map_err(|e| format!("{e:#}"))?;
        let mut store = case.settings.store(&engine, ());
        let mut imports = Vec::new();
        let import_calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for import in module.imports() {
            let kiln::ExternType::Func(ty) = import.ty() else {
                return Err(format!("unexpected import {}::{}", import.module(), import.name()));
            };
            let counter = import_calls.clone();
            let f = kiln::Func::new(&mut store, ty, move |mut caller, params, results| {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                caller.as_context_mut().gc();
                for (r, p) in results.iter_mut().zip(params) {
                    *r = p.clone();
                }
                Ok(())
            });
            imports.push(kiln::Extern::Func(f));
        }
        Ok(KilnSide { store, module, imports, instance: None, import_calls })
    }

    fn instantiate(&mut self) -> CallResult {
        match kiln::Instance::new(&mut self.store, &self.module, &self.imports) {
            Ok(i) => {
                self.instance = Some(i);
                CallResult::Values(Vec::new())
            }
            Err(e) => kiln_error(&mut self.store, &e),
        }
    }

    /// Calls export `name`; with `collect`, the store collects between
    /// the call's end and reading its results (or exception payload), so
    /// that they are read where the collector moved them.
    fn call(&mut self, name: &str, args: &[Arg], collect: bool) -> CallResult {
        let Some(instance) = self.instance else { return CallResult::Error(Note("no instance".into())) };
        let outcome = {
            let mut scope = kiln::RootScope::new(&mut self.store);
            let Some(f) = instance.get_func(&mut scope, name) else {
                return CallResult::Error(Note(format!("no function export {name}")));
            };
            let ty = f.ty(&scope);
            if ty.params().len() != args.len() {
                return CallResult::Error(Note(format!("{name} has {} parameters in Kiln", ty.params().len())));
            }
            let params: Vec<kiln::Val> = args.iter().zip(ty.params()).map(|(a, t)| kiln_arg(a, t)).collect();
            let mut results: Vec<kiln::Val> = ty.results().map(kiln::Val::default_for).collect();
            let r = f.call(&mut scope, &params, &mut results);
            if collect {
                scope.as_context_mut().gc();
            }
            match r {
                Ok(()) => {
                    let mut budget = Budget(SHAPE_BUDGET);
                    Ok(CallResult::Values(results.iter().map(|r| kiln_shape(&mut scope, r, &mut budget, 0)).collect()))
                }
                Err(e) => Err(e),
            }
        };
        match outcome {
            Ok(r) => r,
            Err(e) => kiln_error(&mut self.store, &e),
        }
    }

    /// The exports Wasmtime's snapshot `like` lists, read in Kiln.
    fn snapshot(&mut self, like: &Snapshot) -> Snapshot {
        let mut s = Snapshot::default();
        let Some(instance) = self.instance else { return s };
        let mut scope = kiln::RootScope::new(&mut self.store);
        for (name, _) in &like.globals {
            let mut budget = Budget(SHAPE_BUDGET);
            let shape = match instance.get_global(&mut scope, name) {
                Some(g) => {
                    let v = g.get(&mut scope);
                    kiln_shape(&mut scope, &v, &mut budget, 0)
                }
                None => Shape::Unreadable(Note(format!("no global export {name}"))),
            };
            s.globals.push((name.clone(), shape));
        }
        for (name, _, _) in &like.tables {
            let Some(t) = instance.get_table(&mut scope, name) else {
                s.tables.push((name.clone(), u64::MAX, Vec::new()));
                continue;
            };
            let size = t.size(&scope);
            let mut budget = Budget(SHAPE_BUDGET);
            let elems = (0..size.min(TABLE_ELEMENTS_OBSERVED))
                .map(|i| match t.get(&mut scope, i) {
                    Some(v) => kiln_shape(&mut scope, &v, &mut budget, 0),
                    None => Shape::Unreadable(Note("out of bounds".into())),
                })
                .collect();
            s.tables.push((name.clone(), size, elems));
        }
        for (name, _) in &like.memories {
            let bytes = match instance.get_memory(&mut scope, name) {
                Some(m) => m.data(kiln::AsContext::as_context(&scope)).to_vec(),
                None => Vec::new(),
            };
            s.memories.push((name.clone(), bytes));
        }
        s
    }
}

// ------------------------------------------------------------ Wasmtime --

type WasmtimeStore = wasmtime::Store<wasmtime::StoreLimits>;

/// Wasmtime's side of a case.
struct WasmtimeSide {
    store: WasmtimeStore,
    module: wasmtime::Module,
    imports: Vec<wasmtime::Extern>,
    instance: Option<wasmtime::Instance>,
}

thread_local! {
    /// Wasmtime engines, by NaN canonicalization (creating one per case
    /// would cost more than most cases).
    static WASMTIME_ENGINES: std::cell::RefCell<[Option<wasmtime::Engine>; 2]> = const { std::cell::RefCell::new([None, None]) };
}

/// The Wasmtime engine: every proposal a generated module may use, the
/// copying collector, NaN canonicalization as Kiln's.
fn wasmtime_engine(nan_canonicalization: bool) -> wasmtime::Result<wasmtime::Engine> {
    WASMTIME_ENGINES.with(|engines| {
        let mut engines = engines.borrow_mut();
        let slot = &mut engines[usize::from(nan_canonicalization)];
        if let Some(e) = slot {
            return Ok(e.clone());
        }
        let mut c = wasmtime::Config::new();
        c.wasm_gc(true)
            .wasm_function_references(true)
            .wasm_reference_types(true)
            .wasm_exceptions(true)
            .wasm_tail_call(true)
            .wasm_multi_memory(true)
            .wasm_memory64(true)
            .wasm_wide_arithmetic(true)
            .wasm_custom_page_sizes(true)
            .wasm_simd(true)
            .wasm_relaxed_simd(false)
            .wasm_extended_const(true)
            .collector(wasmtime::Collector::Copying)
            .cranelift_nan_canonicalization(nan_canonicalization);
        let e = wasmtime::Engine::new(&c)?;
        *slot = Some(e.clone());
        Ok(e)
    })
}

fn wasmtime_arg(store: &mut impl wasmtime::AsContextMut, a: &Arg, ty: &wasmtime::ValType) -> wasmtime::Val {
    match a {
        Arg::Num(Value::I32(v)) => wasmtime::Val::I32(*v),
        Arg::Num(Value::I64(v)) => wasmtime::Val::I64(*v),
        Arg::Num(Value::F32(v)) => wasmtime::Val::F32(*v),
        Arg::Num(Value::F64(v)) => wasmtime::Val::F64(*v),
        Arg::Num(Value::V128(v)) => wasmtime::Val::V128((*v).into()),
        Arg::Num(_) | Arg::Null => match ty {
            wasmtime::ValType::Ref(r) => wasmtime::Val::null_ref(r.heap_type()),
            _ => wasmtime::Val::I32(0),
        },
        Arg::I31(v) => {
            wasmtime::Val::AnyRef(Some(wasmtime::AnyRef::from_i31(&mut *store, wasmtime::I31::wrapping_i32(*v))))
        }
        Arg::Host(n) => match wasmtime::ExternRef::new(&mut *store, HostValue(*n)) {
            Ok(r) => wasmtime::Val::ExternRef(Some(r)),
            Err(_) => wasmtime::Val::ExternRef(None),
        },
    }
}

/// Maps a Wasmtime trap code.
fn wasmtime_trap(t: wasmtime::Trap) -> Option<TrapKind> {
    use wasmtime::Trap as T;
    Some(match t {
        T::StackOverflow => TrapKind::StackOverflow,
        T::MemoryOutOfBounds => TrapKind::MemoryOutOfBounds,
        T::HeapMisaligned | T::AtomicWaitNonSharedMemory => TrapKind::HeapMisaligned,
        T::TableOutOfBounds => TrapKind::TableOutOfBounds,
        T::IndirectCallToNull => TrapKind::IndirectCallToNull,
        T::BadSignature => TrapKind::BadSignature,
        T::IntegerOverflow => TrapKind::IntegerOverflow,
        T::IntegerDivisionByZero => TrapKind::IntegerDivisionByZero,
        T::BadConversionToInteger => TrapKind::BadConversionToInteger,
        T::UnreachableCodeReached => TrapKind::Unreachable,
        T::Interrupt => TrapKind::Interrupt,
        T::OutOfFuel => TrapKind::OutOfFuel,
        T::NullReference => TrapKind::NullReference,
        T::ArrayOutOfBounds => TrapKind::ArrayOutOfBounds,
        T::AllocationTooLarge => TrapKind::ResourceExhausted,
        T::CastFailure => TrapKind::CastFailure,
        _ => return None,
    })
}

/// Maps a Wasmtime error (of a call or an instantiation) to a result.
fn wasmtime_error(store: &mut WasmtimeStore, e: &wasmtime::Error) -> CallResult {
    if let Some(t) = e.downcast_ref::<wasmtime::Trap>() {
        return match wasmtime_trap(*t) {
            Some(k) => CallResult::Trap(k),
            None => CallResult::Error(Note(format!("{e:?}"))),
        };
    }
    if e.is::<wasmtime::ThrownException>() {
        let mut scope = wasmtime::RootScope::new(&mut *store);
        let Some(exn) = scope.as_context_mut().take_pending_exception() else {
            return CallResult::Error(Note("ThrownException without a pending exception".into()));
        };
        let n = match exn.ty(&scope) {
            Ok(t) => t.fields().len(),
            Err(e) => return CallResult::Error(Note(format!("reading the exception's type: {e:?}"))),
        };
        let mut budget = Budget(SHAPE_BUDGET);
        let mut fields = Vec::new();
        for i in 0..n {
            match exn.field(&mut scope, i) {
                Ok(v) => fields.push(wasmtime_shape(&mut scope, &v, &mut budget, 1)),
                Err(e) => fields.push(Shape::Unreadable(Note(format!("{e:?}")))),
            }
        }
        return CallResult::Exception(fields);
    }
    if e.is::<wasmtime::GcHeapOutOfMemory<()>>() {
        return CallResult::Error(Note(format!("allocation failed: {e:?}")));
    }
    CallResult::Error(Note(format!("{e:?}")))
}

/// The shape of a Wasmtime value.
fn wasmtime_shape(
    store: &mut impl wasmtime::AsContextMut,
    v: &wasmtime::Val,
    budget: &mut Budget,
    depth: u32,
) -> Shape {
    match v {
        wasmtime::Val::I32(x) => Shape::I32(*x),
        wasmtime::Val::I64(x) => Shape::I64(*x),
        wasmtime::Val::F32(x) => Shape::F32(*x),
        wasmtime::Val::F64(x) => Shape::F64(*x),
        wasmtime::Val::V128(x) => Shape::V128(x.as_u128()),
        wasmtime::Val::FuncRef(None)
        | wasmtime::Val::ExternRef(None)
        | wasmtime::Val::AnyRef(None)
        | wasmtime::Val::ExnRef(None)
        | wasmtime::Val::ContRef(None) => Shape::Null,
        wasmtime::Val::ContRef(Some(_)) => Shape::Unreadable(Note("a continuation".into())),
        wasmtime::Val::FuncRef(Some(f)) => {
            let ty = f.ty(&*store);
            Shape::Func { params: ty.params().len(), results: ty.results().len() }
        }
        wasmtime::Val::ExternRef(Some(r)) => {
            match r.data(store.as_context()) {
                Ok(Some(d)) => {
                    return match d.downcast_ref::<HostValue>() {
                        Some(h) => Shape::Host(h.0),
                        None => Shape::Unreadable(Note("a foreign host value".into())),
                    };
                }
                Ok(None) => {}
                Err(e) => return Shape::Unreadable(Note(format!("{e:?}"))),
            }
            if !budget.take(depth) {
                return Shape::Elided;
            }
            match wasmtime::AnyRef::convert_extern(&mut *store, *r) {
                Ok(any) => {
                    Shape::Extern(Box::new(wasmtime_shape(store, &wasmtime::Val::AnyRef(Some(any)), budget, depth + 1)))
                }
                Err(e) => Shape::Unreadable(Note(format!("any.convert_extern: {e:?}"))),
            }
        }
        wasmtime::Val::AnyRef(Some(a)) => {
            if let Ok(Some(i)) = a.as_i31(&*store) {
                return Shape::I31(i.get_u32());
            }
            if !budget.take(depth) {
                return Shape::Elided;
            }
            if let Ok(Some(s)) = a.as_struct(&*store) {
                let n = match s.ty(&*store) {
                    Ok(t) => t.fields().len(),
                    Err(e) => return Shape::Unreadable(Note(format!("{e:?}"))),
                };
                let mut fields = Vec::new();
                for i in 0..n {
                    match s.field(&mut *store, i) {
                        Ok(f) => fields.push(f),
                        Err(_) => break,
                    }
                }
                Shape::Struct(fields.iter().map(|f| wasmtime_shape(store, f, budget, depth + 1)).collect())
            } else if let Ok(Some(arr)) = a.as_array(&*store) {
                let len = match arr.len(&*store) {
                    Ok(l) => l,
                    Err(e) => return Shape::Unreadable(Note(format!("array length: {e:?}"))),
                };
                let mut elems = Vec::new();
                for i in 0..len.min(ARRAY_ELEMENTS_OBSERVED) {
                    match arr.get(&mut *store, i) {
                        Ok(v) => elems.push(wasmtime_shape(store, &v, budget, depth + 1)),
                        Err(e) => elems.push(Shape::Unreadable(Note(format!("array element: {e:?}")))),
                    }
                }
                Shape::Array { len, elems }
            } else {
                // Neither an i31 nor an object of a struct or array type:
                // a host value made an anyref.
                match wasmtime::ExternRef::convert_any(&mut *store, *a) {
                    Ok(e) => Shape::Boxed(Box::new(wasmtime_shape(
                        store,
                        &wasmtime::Val::ExternRef(Some(e)),
                        budget,
                        depth + 1,
                    ))),
                    Err(e) => Shape::Unreadable(Note(format!("extern.convert_any: {e:?}"))),
                }
            }
        }
        wasmtime::Val::ExnRef(Some(x)) => {
            if !budget.take(depth) {
                return Shape::Elided;
            }
            let n = match x.ty(&*store) {
                Ok(t) => t.fields().len(),
                Err(e) => return Shape::Unreadable(Note(format!("{e:?}"))),
            };
            let mut fields = Vec::new();
            for i in 0..n {
                match x.field(&mut *store, i) {
                    Ok(f) => fields.push(wasmtime_shape(store, &f, budget, depth + 1)),
                    Err(e) => fields.push(Shape::Unreadable(Note(format!("{e:?}")))),
                }
            }
            Shape::Exn(fields)
        }
    }
}

fn wasmtime_ref_val(r: wasmtime::Ref) -> wasmtime::Val {
    r.into()
}

impl WasmtimeSide {
    fn new(wasm: &[u8], nan_canonicalization: bool) -> Result<WasmtimeSide, String> {
        let engine = wasmtime_engine(nan_canonicalization).map_err(|e| format!("engine: {e:?}"))?;
        let module = wasmtime::Module::new(&engine, wasm).map_err(|e| format!("{e:?}"))?;
        let limits = wasmtime::StoreLimitsBuilder::new().memory_size(WASMTIME_MEMORY_LIMIT).build();
        let mut store = wasmtime::Store::new(&engine, limits);
        store.limiter(|l| l);
        let mut imports = Vec::new();
        for import in module.imports() {
            let wasmtime::ExternType::Func(ty) = import.ty() else {
                return Err(format!("unexpected import {}::{}", import.module(), import.name()));
            };
            let f = wasmtime::Func::new(&mut store, ty, |_caller, params, results| {
                for (r, p) in results.iter_mut().zip(params) {
                    *r = *p;
                }
                Ok(())
            });
            imports.push(wasmtime::Extern::Func(f));
        }
        Ok(WasmtimeSide { store, module, imports, instance: None })
    }

    fn instantiate(&mut self) -> CallResult {
        match wasmtime::Instance::new(&mut self.store, &self.module, &self.imports) {
            Ok(i) => {
                self.instance = Some(i);
                CallResult::Values(Vec::new())
            }
            Err(e) => wasmtime_error(&mut self.store, &e),
        }
    }

    fn exported_funcs(&self) -> Vec<(String, wasmtime::FuncType)> {
        self.module
            .exports()
            .filter_map(|e| match e.ty() {
                wasmtime::ExternType::Func(f) => Some((e.name().to_string(), f)),
                _ => None,
            })
            .collect()
    }

    fn call(&mut self, name: &str, args: &[Arg]) -> CallResult {
        let Some(instance) = self.instance else { return CallResult::Error(Note("no instance".into())) };
        let outcome = {
            let mut scope = wasmtime::RootScope::new(&mut self.store);
            let Some(f) = instance.get_func(&mut scope, name) else {
                return CallResult::Error(Note(format!("no function export {name}")));
            };
            let ty = f.ty(&scope);
            let params: Vec<wasmtime::Val> =
                args.iter().zip(ty.params()).map(|(a, t)| wasmtime_arg(&mut scope, a, &t)).collect();
            let mut results: Vec<wasmtime::Val> = ty.results().map(|_| wasmtime::Val::I32(0)).collect();
            match f.call(&mut scope, &params, &mut results) {
                Ok(()) => {
                    let mut budget = Budget(SHAPE_BUDGET);
                    Ok(CallResult::Values(
                        results.iter().map(|r| wasmtime_shape(&mut scope, r, &mut budget, 0)).collect(),
                    ))
                }
                Err(e) => Err(e),
            }
        };
        match outcome {
            Ok(r) => r,
            Err(e) => wasmtime_error(&mut self.store, &e),
        }
    }

    fn snapshot(&mut self) -> Snapshot {
        let mut s = Snapshot::default();
        let Some(instance) = self.instance else { return s };
        let names: Vec<(String, wasmtime::ExternType)> =
            self.module.exports().map(|e| (e.name().to_string(), e.ty())).collect();
        let mut scope = wasmtime::RootScope::new(&mut self.store);
        for (name, ty) in names {
            match ty {
                wasmtime::ExternType::Global(_) => {
                    let mut budget = Budget(SHAPE_BUDGET);
                    let shape = match instance.get_global(&mut scope, &name) {
                        Some(g) => {
                            let v = g.get(&mut scope);
                            wasmtime_shape(&mut scope, &v, &mut budget, 0)
                        }
                        None => Shape::Unreadable(Note(format!("no global export {name}"))),
                    };
                    s.globals.push((name, shape));
                }
                wasmtime::ExternType::Table(_) => {
                    let Some(t) = instance.get_table(&mut scope, &name) else { continue };
                    let size = t.size(&scope);
                    let mut budget = Budget(SHAPE_BUDGET);
                    let elems = (0..size.min(TABLE_ELEMENTS_OBSERVED))
                        .map(|i| match t.get(&mut scope, i) {
                            Some(r) => {
                                let v = wasmtime_ref_val(r);
                                wasmtime_shape(&mut scope, &v, &mut budget, 0)
                            }
                            None => Shape::Unreadable(Note("out of bounds".into())),
                        })
                        .collect();
                    s.tables.push((name, size, elems));
                }
                wasmtime::ExternType::Memory(_) => {
                    let bytes = match instance.get_memory(&mut scope, &name) {
                        Some(m) => m.data(&scope).to_vec(),
                        None => Vec::new(),
                    };
                    s.memories.push((name, bytes));
                }
                _ => {}
            }
        }
        s
    }
}
