//! Differential execution: Kiln against the wasmi interpreter.
//!
//! A case is a wasm-smith module (restricted to Kiln's features, with
//! wasm-smith's termination instrumentation so every call ends), a set of
//! Kiln settings, and arguments for every exported function. Both engines
//! instantiate the module with the same dummy imports ([`crate::dummy`])
//! and call every exported function in export order; after instantiation
//! and after every call the oracle compares:
//!
//! - results: bit-for-bit, except that NaNs compare equal to NaNs when the
//!   module's NaN bits are not deterministic (see below);
//! - traps, by kind ([`TrapKind`]);
//! - every memory, global and table the host can see (exports and the dummy
//!   imports): memory bytes, global values, table sizes and which elements
//!   are null (and the signature of the others).
//!
//! **NaNs.** WebAssembly lets arithmetic produce any NaN bit pattern, so
//! two correct engines can disagree on NaN bits, and those bits can flow
//! into integers (`reinterpret`) and memory. Most cases are generated with
//! wasm-smith's NaN canonicalization (every float operation's result is
//! passed through `x != x ? canonical : x`); there everything is compared
//! exactly (except that Kiln's own NaN canonicalization also covers
//! `f32.demote_f64`/`f64.promote_f32`, which wasm-smith's does not: with it
//! on, modules with those conversions are treated like raw-NaN ones). The
//! other cases keep raw NaNs; for those, if the module contains an
//! operation whose NaN result bits the spec leaves open, a divergence is
//! reported as inconclusive rather than as a bug.
//!
//! **Inconclusive outcomes.** Engines may legitimately differ in how deep
//! they can recurse and in fuel accounting: when either engine runs out of
//! stack or fuel (or wasmi refuses a module, or runs out of memory), the
//! case stops there and counts as inconclusive, not as a divergence.

use crate::generators::{self, KilnSettings, ModuleLimits, Proposals, Value};
use arbitrary::{Result, Unstructured};
use kiln::ValType;

/// wasm-smith termination fuel: loop iterations plus calls a module may
/// perform over its whole life before trapping with `unreachable`.
pub const TERMINATION_FUEL: u32 = 1000;

/// Fuel given to wasmi when it meters fuel (far more than any case uses).
const WASMI_FUEL: u64 = 1 << 40;

/// Elements of each table compared (tables are small in generated cases).
const MAX_TABLE_ELEMENTS_COMPARED: u64 = 4096;

/// The kinds of trap both engines report, mapped to one enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrapKind {
    /// `unreachable`.
    Unreachable,
    /// Memory access out of bounds.
    MemoryOutOfBounds,
    /// Table access out of bounds.
    TableOutOfBounds,
    /// `call_indirect` through a null element.
    IndirectCallToNull,
    /// `call_indirect` signature mismatch.
    BadSignature,
    /// Integer overflow (division, float-to-int).
    IntegerOverflow,
    /// Division or remainder by zero.
    IntegerDivisionByZero,
    /// Float-to-int conversion of NaN.
    BadConversionToInteger,
    /// Null reference dereferenced.
    NullReference,
    /// Misaligned atomic access.
    HeapMisaligned,
    /// `ref.cast` of a value of another type (GC).
    CastFailure,
    /// Array access out of bounds (GC).
    ArrayOutOfBounds,
    /// Stack exhausted (engine-specific: inconclusive).
    StackOverflow,
    /// Fuel exhausted (engine-specific: inconclusive).
    OutOfFuel,
    /// Epoch interruption (never expected here).
    Interrupt,
    /// The host could not provide memory (engine-specific: inconclusive).
    ResourceExhausted,
}

impl TrapKind {
    /// Maps a Kiln trap code.
    pub fn from_kiln(code: kiln::TrapCode) -> TrapKind {
        use kiln::TrapCode as C;
        match code {
            C::StackOverflow => TrapKind::StackOverflow,
            C::MemoryOutOfBounds => TrapKind::MemoryOutOfBounds,
            C::HeapMisaligned => TrapKind::HeapMisaligned,
            C::TableOutOfBounds => TrapKind::TableOutOfBounds,
            C::IndirectCallToNull => TrapKind::IndirectCallToNull,
            C::BadSignature => TrapKind::BadSignature,
            C::IntegerOverflow => TrapKind::IntegerOverflow,
            C::IntegerDivisionByZero => TrapKind::IntegerDivisionByZero,
            C::BadConversionToInteger => TrapKind::BadConversionToInteger,
            C::UnreachableCodeReached => TrapKind::Unreachable,
            C::Interrupt => TrapKind::Interrupt,
            C::OutOfFuel => TrapKind::OutOfFuel,
            C::NullReference
            | C::NullFunctionReference
            | C::NullI31Reference
            | C::NullStructReference
            | C::NullArrayReference => TrapKind::NullReference,
            C::AllocationFailed => TrapKind::ResourceExhausted,
            C::ArrayOutOfBounds => TrapKind::ArrayOutOfBounds,
            C::CastFailure => TrapKind::CastFailure,
            C::AtomicWaitNonSharedMemory => TrapKind::HeapMisaligned,
        }
    }

    /// Maps a wasmi trap code.
    pub fn from_wasmi(code: wasmi::TrapCode) -> TrapKind {
        use wasmi::TrapCode as C;
        match code {
            C::UnreachableCodeReached => TrapKind::Unreachable,
            C::MemoryOutOfBounds => TrapKind::MemoryOutOfBounds,
            C::TableOutOfBounds => TrapKind::TableOutOfBounds,
            C::IndirectCallToNull => TrapKind::IndirectCallToNull,
            C::IntegerDivisionByZero => TrapKind::IntegerDivisionByZero,
            C::IntegerOverflow => TrapKind::IntegerOverflow,
            C::BadConversionToInteger => TrapKind::BadConversionToInteger,
            C::StackOverflow => TrapKind::StackOverflow,
            C::BadSignature => TrapKind::BadSignature,
            C::OutOfFuel => TrapKind::OutOfFuel,
            C::GrowthOperationLimited | C::OutOfSystemMemory => TrapKind::ResourceExhausted,
        }
    }

    /// Whether engines may legitimately disagree about this trap
    /// (resource limits rather than semantics).
    pub fn is_engine_specific(self) -> bool {
        matches!(
            self,
            TrapKind::StackOverflow | TrapKind::OutOfFuel | TrapKind::Interrupt | TrapKind::ResourceExhausted
        )
    }
}

/// A value as observed by the host, comparable across engines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
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
    /// A `funcref`: null, or the signature of the function.
    FuncRef(Option<(Vec<ValType>, Vec<ValType>)>),
    /// An `externref`: whether it is non-null.
    ExternRef(bool),
    /// An `exnref`: whether it is non-null.
    ExnRef(bool),
    /// An `anyref`: whether it is non-null.
    AnyRef(bool),
}

fn f32_nan(bits: u32) -> bool {
    f32::from_bits(bits).is_nan()
}

fn f64_nan(bits: u64) -> bool {
    f64::from_bits(bits).is_nan()
}

impl Observed {
    /// Equality, with NaNs of the same width equal to each other when
    /// `nan_aware` (for vectors: every lane equal or NaN in both, read as
    /// f32x4 or as f64x2).
    pub fn matches(&self, other: &Observed, nan_aware: bool) -> bool {
        if self == other {
            return true;
        }
        if !nan_aware {
            return false;
        }
        match (self, other) {
            (Observed::F32(a), Observed::F32(b)) => f32_nan(*a) && f32_nan(*b),
            (Observed::F64(a), Observed::F64(b)) => f64_nan(*a) && f64_nan(*b),
            (Observed::V128(a), Observed::V128(b)) => {
                let lanes32 = (0..4).all(|i| {
                    let (x, y) = ((a >> (32 * i)) as u32, (b >> (32 * i)) as u32);
                    x == y || (f32_nan(x) && f32_nan(y))
                });
                let lanes64 = (0..2).all(|i| {
                    let (x, y) = ((a >> (64 * i)) as u64, (b >> (64 * i)) as u64);
                    x == y || (f64_nan(x) && f64_nan(y))
                });
                lanes32 || lanes64
            }
            _ => false,
        }
    }
}

/// How a call (or an instantiation) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Returned these values.
    Values(Vec<Observed>),
    /// Trapped.
    Trap(TrapKind),
    /// Failed without a trap (link error, resource error, ...).
    Error(String),
}

impl Outcome {
    fn engine_specific(&self) -> bool {
        matches!(self, Outcome::Trap(k) if k.is_engine_specific())
    }
}

/// What the host can see of one engine's instance: memories (bytes),
/// globals, tables (element signatures), by name.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// `(name, bytes)` of every memory.
    pub memories: Vec<(String, Vec<u8>)>,
    /// `(name, value)` of every global.
    pub globals: Vec<(String, Observed)>,
    /// `(name, size, elements)` of every table (elements up to a limit).
    pub tables: Vec<(String, u64, Vec<Observed>)>,
}

/// The verdict on a case that found no bug.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Both engines agreed on everything; `calls` exports were called.
    Agree {
        /// Number of export calls compared.
        calls: usize,
    },
    /// The comparison stopped early for a legitimate reason.
    Inconclusive(String),
}

/// One differential test case.
#[derive(Clone, Debug)]
pub struct Case {
    /// The module.
    pub wasm: Vec<u8>,
    /// Kiln's settings.
    pub settings: KilnSettings,
    /// Whether the module was generated with NaN canonicalization (every
    /// NaN bit pattern is then deterministic).
    pub canonical_nans: bool,
    /// Whether wasmi meters fuel.
    pub wasmi_fuel: bool,
}

/// Generates a case from `u`.
///
/// # Errors
///
/// `u` does not hold enough data for a module.
pub fn generate(u: &mut Unstructured<'_>) -> Result<Case> {
    // Proposals wasmi implements deterministically as well.
    let allowed = Proposals { relaxed_simd: false, threads: false, ..Proposals::ALL };
    let mut smith = generators::smith_config(u, ModuleLimits::EXECUTE, allowed)?;
    let canonical_nans = u.ratio(3, 4)?;
    smith.canonicalize_nans = canonical_nans;
    smith.export_everything = u.ratio(3, 4)?;
    // Something to call: a few functions (wasm-smith's own counts favour
    // tiny modules for unstructured input).
    if smith.max_types > 0 && smith.max_funcs > 0 {
        smith.min_types = 1;
        smith.min_funcs = smith.max_funcs.min(u.int_in_range(0..=4)?);
        smith.min_exports = smith.max_exports.min(smith.min_funcs);
    }
    let mut settings = KilnSettings::arbitrary(u, generators::max_memory_bytes(&smith))?;
    settings.enable_proposals_of(&smith);
    let wasmi_fuel = u.ratio(1, 4)?;
    let wasm = generators::smith_module(u, smith, Some(TERMINATION_FUEL))?;
    Ok(Case { wasm, settings, canonical_nans, wasmi_fuel })
}

/// The fuzz-target entry point: generates a case, draws arguments from the
/// rest of `u`, and panics (through [`crate::fail`]) on a divergence.
///
/// # Errors
///
/// `u` does not hold enough data for a module.
pub fn run(u: &mut Unstructured<'_>) -> Result<Verdict> {
    let case = generate(u)?;
    match case.check(u) {
        Ok(v) => Ok(v),
        Err(msg) => crate::fail("differential", &case.wasm, &format!("{msg}\nKiln settings: {:?}", case.settings)),
    }
}

/// Whether `wasm` contains an operation whose NaN result bits the spec
/// leaves open (arithmetic producing a float; sign operations and
/// conversions from integers are exact). With `conversions_only`, only
/// the float-to-float conversions (`f32.demote_f64`, `f64.promote_f32` and
/// their vector forms) count: wasm-smith's NaN canonicalization does not
/// cover them, and Kiln's does.
pub fn has_nondeterministic_nans(wasm: &[u8], conversions_only: bool) -> bool {
    use wasmparser::{Operator as O, Parser, Payload};
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(Payload::CodeSectionEntry(body)) = payload else { continue };
        let Ok(mut ops) = body.get_operators_reader() else { return true };
        while !ops.eof() {
            let Ok(op) = ops.read() else { return true };
            let conversion =
                matches!(op, O::F32DemoteF64 | O::F64PromoteF32 | O::F32x4DemoteF64x2Zero | O::F64x2PromoteLowF32x4);
            let arithmetic = matches!(
                op,
                O::F32Add
                    | O::F32Sub
                    | O::F32Mul
                    | O::F32Div
                    | O::F32Sqrt
                    | O::F32Min
                    | O::F32Max
                    | O::F32Ceil
                    | O::F32Floor
                    | O::F32Trunc
                    | O::F32Nearest
                    | O::F64Add
                    | O::F64Sub
                    | O::F64Mul
                    | O::F64Div
                    | O::F64Sqrt
                    | O::F64Min
                    | O::F64Max
                    | O::F64Ceil
                    | O::F64Floor
                    | O::F64Trunc
                    | O::F64Nearest
                    | O::F32x4Add
                    | O::F32x4Sub
                    | O::F32x4Mul
                    | O::F32x4Div
                    | O::F32x4Sqrt
                    | O::F32x4Min
                    | O::F32x4Max
                    | O::F32x4Ceil
                    | O::F32x4Floor
                    | O::F32x4Trunc
                    | O::F32x4Nearest
                    | O::F64x2Add
                    | O::F64x2Sub
                    | O::F64x2Mul
                    | O::F64x2Div
                    | O::F64x2Sqrt
                    | O::F64x2Min
                    | O::F64x2Max
                    | O::F64x2Ceil
                    | O::F64x2Floor
                    | O::F64x2Trunc
                    | O::F64x2Nearest
            );
            if conversion || (arithmetic && !conversions_only) {
                return true;
            }
        }
    }
    false
}

/// Rewrites `wasm` for wasmi so that no comparison feeds a `select` (or a
/// branch) directly: after every comparison operator, `i32.const 0;
/// i32.xor` (which changes nothing).
///
/// wasmi 2.0.0 fuses a comparison with zero into a following `select` and,
/// in functions with more than one block, inverts it: after `if ... end`,
/// `select(7, 9, i32.eqz(x))` with x = 0 gives 9 (so wasm-smith's
/// division guards `select(1, x, i32.eqz(x))` divide by zero). Kiln runs
/// the original module; wasmi the rewritten one.
///
/// `None` if the module cannot be re-encoded.
pub fn wasmi_workarounds(wasm: &[u8]) -> Option<Vec<u8>> {
    use wasm_encoder::reencode::{Error, Reencode, utils};

    struct Unfuse;
    impl Reencode for Unfuse {
        type Error = std::convert::Infallible;

        fn parse_function_body(
            &mut self,
            code: &mut wasm_encoder::CodeSection,
            func: wasmparser::FunctionBody<'_>,
        ) -> std::result::Result<(), Error<Self::Error>> {
            use wasmparser::Operator as O;
            let mut f = utils::new_function_with_parsed_locals(self, &func)?;
            let mut reader = func.get_operators_reader()?;
            while !reader.eof() {
                let op = reader.read()?;
                let compare = matches!(
                    op,
                    O::I32Eqz
                        | O::I32Eq
                        | O::I32Ne
                        | O::I32LtS
                        | O::I32LtU
                        | O::I32GtS
                        | O::I32GtU
                        | O::I32LeS
                        | O::I32LeU
                        | O::I32GeS
                        | O::I32GeU
                        | O::I64Eqz
                        | O::I64Eq
                        | O::I64Ne
                        | O::I64LtS
                        | O::I64LtU
                        | O::I64GtS
                        | O::I64GtU
                        | O::I64LeS
                        | O::I64LeU
                        | O::I64GeS
                        | O::I64GeU
                        | O::F32Eq
                        | O::F32Ne
                        | O::F32Lt
                        | O::F32Gt
                        | O::F32Le
                        | O::F32Ge
                        | O::F64Eq
                        | O::F64Ne
                        | O::F64Lt
                        | O::F64Gt
                        | O::F64Le
                        | O::F64Ge
                        | O::RefIsNull
                );
                f.instruction(&self.instruction(op)?);
                if compare {
                    f.instruction(&wasm_encoder::Instruction::I32Const(0));
                    f.instruction(&wasm_encoder::Instruction::I32Xor);
                }
            }
            code.function(&f);
            Ok(())
        }
    }

    let mut module = wasm_encoder::Module::new();
    Unfuse.parse_core_module(&mut module, wasmparser::Parser::new(0), wasm).ok()?;
    Some(module.finish())
}

impl Case {
    /// Runs the case, drawing call arguments from `args` (zeros once it is
    /// exhausted).
    ///
    /// # Errors
    ///
    /// A description of the first divergence.
    pub fn check(&self, args: &mut Unstructured<'_>) -> std::result::Result<Verdict, String> {
        if !generators::validates(&self.wasm, &self.settings) {
            return Err("wasm-smith generated a module wasmparser rejects (generator configuration bug)".into());
        }
        // Whether a divergence may be caused by NaN bits flowing into
        // integers or memory: raw NaNs and arithmetic, or Kiln
        // canonicalizing conversions that wasm-smith leaves alone.
        let nan_sensitive = if self.canonical_nans {
            self.settings.nan_canonicalization && has_nondeterministic_nans(&self.wasm, true)
        } else {
            has_nondeterministic_nans(&self.wasm, false)
        };
        // Whether values may differ in NaN bits only.
        let nan_aware = !self.canonical_nans || nan_sensitive;

        let mut kiln = match KilnSide::new(&self.wasm, &self.settings) {
            Ok(k) => k,
            Err(e) if generators::is_pooling_limit(&format!("{e:#}")) => {
                return Ok(Verdict::Inconclusive(format!("pooling limit: {e:#}")));
            }
            Err(e) => return Err(format!("Kiln refused a valid module: {e:#}")),
        };
        let Some(for_wasmi) = wasmi_workarounds(&self.wasm) else {
            return Ok(Verdict::Inconclusive("the module could not be re-encoded for wasmi".into()));
        };
        const WASMI_PANICKED: &str = "wasmi panicked (a wasmi bug)";
        let mut wasmi = match crate::shielded(|| WasmiSide::new(&for_wasmi, self.wasmi_fuel)) {
            None => return Ok(Verdict::Inconclusive(WASMI_PANICKED.into())),
            Some(None) => return Ok(Verdict::Inconclusive("wasmi refused the module".into())),
            Some(Some(w)) => w,
        };

        let k = kiln.instantiate();
        let Some(w) = crate::shielded(|| wasmi.instantiate()) else {
            return Ok(Verdict::Inconclusive(WASMI_PANICKED.into()));
        };
        let inconclusive =
            |what: &str| -> std::result::Result<Verdict, String> { Ok(Verdict::Inconclusive(what.to_string())) };
        if k.engine_specific()
            || w.engine_specific()
            || matches!(&k, Outcome::Error(e) if generators::is_pooling_limit(e))
        {
            return inconclusive(&format!("instantiation: Kiln {k:?}, wasmi {w:?}"));
        }
        let both_failed =
            matches!(k, Outcome::Trap(_) | Outcome::Error(_)) && matches!(w, Outcome::Trap(_) | Outcome::Error(_));
        let agree = match (&k, &w) {
            (Outcome::Trap(a), Outcome::Trap(b)) => a == b,
            _ => k == w || both_failed,
        };
        if !agree {
            if nan_sensitive {
                return inconclusive("instantiation diverged in a module with nondeterministic NaNs");
            }
            return Err(format!("instantiation: Kiln {k:?}, wasmi {w:?}"));
        }
        let compare_state = |kiln: &mut KilnSide, wasmi: &WasmiSide, when: &str| -> std::result::Result<(), String> {
            let ks = kiln.snapshot();
            let ws = crate::shielded(|| wasmi.snapshot()).ok_or_else(|| WASMI_PANICKED.to_string())?;
            compare_snapshots(&ks, &ws, nan_aware).map_err(|e| format!("after {when}: {e}"))
        };
        if let Err(e) = compare_state(&mut kiln, &wasmi, "instantiation") {
            return if nan_sensitive || e == WASMI_PANICKED { inconclusive(&e) } else { Err(e) };
        }
        if both_failed {
            return Ok(Verdict::Agree { calls: 0 });
        }

        let mut calls = 0;
        for (name, params) in kiln.exported_funcs() {
            let values: Vec<Value> = params.iter().map(|t| Value::arbitrary(args, *t)).collect();
            let k = kiln.call(&name, &values);
            let Some(w) = crate::shielded(|| wasmi.call(&name, &values)) else {
                return Ok(Verdict::Inconclusive(WASMI_PANICKED.into()));
            };
            if k.engine_specific() || w.engine_specific() {
                return inconclusive(&format!("call {name}: Kiln {k:?}, wasmi {w:?}"));
            }
            let same = match (&k, &w) {
                (Outcome::Values(a), Outcome::Values(b)) => {
                    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.matches(y, nan_aware))
                }
                _ => k == w,
            };
            if !same {
                if nan_sensitive {
                    return inconclusive(&format!("call {name} diverged in a module with nondeterministic NaNs"));
                }
                return Err(format!("call {name}({values:?}): Kiln {k:?}, wasmi {w:?}"));
            }
            calls += 1;
            if let Err(e) = compare_state(&mut kiln, &wasmi, &format!("call {name}({values:?})")) {
                return if nan_sensitive || e == WASMI_PANICKED { inconclusive(&e) } else { Err(e) };
            }
        }
        Ok(Verdict::Agree { calls })
    }
}

/// Names for imports that do not depend on the order an engine lists them
/// in (wasmi groups them by kind): kind, module, name, and a counter for
/// repeated imports of the same kind and name.
fn import_names(imports: impl Iterator<Item = (String, String, &'static str)>) -> Vec<String> {
    let mut seen = std::collections::HashMap::new();
    imports
        .map(|(module, name, kind)| {
            let n = seen.entry((module.clone(), name.clone(), kind)).or_insert(0u32);
            *n += 1;
            format!("import {kind} {module:?} {name:?} #{n}")
        })
        .collect()
}

/// Compares two snapshots taken from the two engines.
pub(crate) fn compare_snapshots(k: &Snapshot, w: &Snapshot, nan_aware: bool) -> std::result::Result<(), String> {
    if k.memories.len() != w.memories.len() {
        return Err(format!("{} memories in Kiln, {} in wasmi", k.memories.len(), w.memories.len()));
    }
    for ((name, a), (_, b)) in k.memories.iter().zip(&w.memories) {
        if a.len() != b.len() {
            return Err(format!("memory {name}: {} bytes in Kiln, {} in wasmi", a.len(), b.len()));
        }
        if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
            let end = (i + 16).min(a.len());
            return Err(format!(
                "memory {name} differs at {i:#x}: Kiln {:02x?}, wasmi {:02x?}",
                &a[i..end],
                &b[i..end]
            ));
        }
    }
    let names = |g: &[(String, Observed)]| g.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    if names(&k.globals) != names(&w.globals) {
        return Err(format!("globals {:?} in Kiln, {:?} in wasmi", names(&k.globals), names(&w.globals)));
    }
    for ((name, a), (_, b)) in k.globals.iter().zip(&w.globals) {
        if !a.matches(b, nan_aware) {
            return Err(format!("global {name}: Kiln {a:?}, wasmi {b:?}"));
        }
    }
    if k.tables.len() != w.tables.len() {
        return Err(format!("{} tables in Kiln, {} in wasmi", k.tables.len(), w.tables.len()));
    }
    for ((name, ks, a), (_, ws, b)) in k.tables.iter().zip(&w.tables) {
        if ks != ws {
            return Err(format!("table {name}: size {ks} in Kiln, {ws} in wasmi"));
        }
        if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
            return Err(format!("table {name} element {i}: Kiln {:?}, wasmi {:?}", a[i], b[i]));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- Kiln --

/// One Kiln instance of a case, with its store and dummy imports; also
/// used by the other oracles to compare Kiln with itself.
pub(crate) struct KilnSide {
    pub(crate) store: kiln::Store<()>,
    pub(crate) module: kiln::Module,
    pub(crate) imports: Vec<kiln::Extern>,
    pub(crate) instance: Option<kiln::Instance>,
    pub(crate) settings: KilnSettings,
}

fn kiln_observe(store: &mut kiln::Store<()>, v: &kiln::Val) -> Observed {
    match v {
        kiln::Val::I32(x) => Observed::I32(*x),
        kiln::Val::I64(x) => Observed::I64(*x),
        kiln::Val::F32(x) => Observed::F32(*x),
        kiln::Val::F64(x) => Observed::F64(*x),
        kiln::Val::V128(x) => Observed::V128(x.as_u128()),
        kiln::Val::FuncRef(f) => Observed::FuncRef(f.map(|f| {
            let ty = f.ty(&*store);
            (ty.params().collect(), ty.results().collect())
        })),
        kiln::Val::ExternRef(r) => Observed::ExternRef(r.is_some()),
        kiln::Val::ExnRef(r) => Observed::ExnRef(r.is_some()),
        kiln::Val::AnyRef(r) => Observed::AnyRef(r.is_some()),
    }
}

/// Maps a Kiln error to an outcome, looking through error context.
pub fn kiln_error_outcome(e: &anyhow::Error) -> Outcome {
    match e.chain().find_map(|c| c.downcast_ref::<kiln::Trap>()) {
        Some(t) => Outcome::Trap(TrapKind::from_kiln(t.code())),
        None => Outcome::Error(format!("{e:#}")),
    }
}

impl KilnSide {
    fn new(wasm: &[u8], settings: &KilnSettings) -> anyhow::Result<KilnSide> {
        let engine = kiln::Engine::new(&settings.config())?;
        let module = kiln::Module::from_binary(&engine, wasm)?;
        KilnSide::from_module(module, settings)
    }

    /// A fresh store (with fuel and deadline per `settings`) and dummy
    /// imports for `module`.
    pub(crate) fn from_module(module: kiln::Module, settings: &KilnSettings) -> anyhow::Result<KilnSide> {
        let mut store = settings.store(module.engine(), ());
        let imports = crate::dummy::imports(&mut store, &module)?;
        Ok(KilnSide { store, module, imports, instance: None, settings: settings.clone() })
    }

    pub(crate) fn instantiate(&mut self) -> Outcome {
        match kiln::Instance::new(&mut self.store, &self.module, &self.imports) {
            Ok(i) => {
                self.instance = Some(i);
                Outcome::Values(Vec::new())
            }
            Err(e) => kiln_error_outcome(&e),
        }
    }

    /// Replaces the imports with fresh dummies and instantiates again in
    /// the same store.
    pub(crate) fn instantiate_again(&mut self) -> anyhow::Result<Outcome> {
        self.imports = crate::dummy::imports(&mut self.store, &self.module)?;
        self.instance = None;
        Ok(self.instantiate())
    }

    /// Fuel consumed so far (0 without fuel metering).
    pub(crate) fn fuel_consumed(&self) -> u64 {
        self.store.get_fuel().map(|f| KilnSettings::FUEL.saturating_sub(f)).unwrap_or(0)
    }

    pub(crate) fn exported_funcs(&self) -> Vec<(String, Vec<ValType>)> {
        self.module
            .exports()
            .filter_map(|e| match e.ty() {
                kiln::ExternType::Func(f) => Some((e.name().to_string(), f.params().collect())),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn call(&mut self, name: &str, args: &[Value]) -> Outcome {
        let Some(instance) = self.instance else { return Outcome::Error("no instance".into()) };
        let Some(f) = instance.get_func(&mut self.store, name) else {
            return Outcome::Error(format!("no function export {name}"));
        };
        let ty = f.ty(&self.store);
        let params: Vec<kiln::Val> = args.iter().map(|a| a.to_kiln()).collect();
        let mut results: Vec<kiln::Val> = ty.results().map(kiln::Val::default_for).collect();
        match f.call(&mut self.store, &params, &mut results) {
            Ok(()) => {
                if let Some((i, t)) = results
                    .iter()
                    .map(kiln::Val::ty)
                    .zip(ty.results())
                    .position(|(a, b)| a != b)
                    .map(|i| (i, results[i].ty()))
                {
                    return Outcome::Error(format!("result {i} has type {t}"));
                }
                Outcome::Values(results.iter().map(|r| kiln_observe(&mut self.store, r)).collect())
            }
            Err(e) => kiln_error_outcome(&e),
        }
    }

    /// Memories, globals and tables: the imports (see [`import_names`]) and
    /// the exports, sorted by name.
    pub(crate) fn snapshot(&mut self) -> Snapshot {
        let mut items: Vec<(String, kiln::Extern)> =
            import_names(self.module.imports().map(|i| (i.module().to_string(), i.name().to_string(), i.ty().kind())))
                .into_iter()
                .zip(self.imports.iter().cloned())
                .collect();
        if let Some(instance) = self.instance {
            let names: Vec<String> = self.module.exports().map(|e| e.name().to_string()).collect();
            for name in names {
                if let Some(x) = instance.get_export(&mut self.store, &name) {
                    items.push((name, x));
                }
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let mut s = Snapshot::default();
        for (name, item) in items {
            match item {
                kiln::Extern::Memory(m) => s.memories.push((name, m.data(&self.store).to_vec())),
                kiln::Extern::SharedMemory(m) => {
                    let mut bytes = vec![0; m.data_size()];
                    let _ = m.read(0, &mut bytes);
                    s.memories.push((name, bytes));
                }
                kiln::Extern::Global(g) => {
                    let v = g.get(&mut self.store);
                    let o = kiln_observe(&mut self.store, &v);
                    s.globals.push((name, o));
                }
                kiln::Extern::Table(t) => {
                    let size = t.size(&self.store);
                    let mut elems = Vec::new();
                    for i in 0..size.min(MAX_TABLE_ELEMENTS_COMPARED) {
                        let o = match t.get(&mut self.store, i) {
                            Some(v) => kiln_observe(&mut self.store, &v),
                            None => Observed::I32(-1),
                        };
                        elems.push(o);
                    }
                    s.tables.push((name, size, elems));
                }
                kiln::Extern::Func(_) | kiln::Extern::Tag(_) => {}
            }
        }
        s
    }
}

/// Runs two Kiln modules compiled from the same wasm side by side
/// (instantiation, then every export with arguments from `args`) and
/// requires identical behaviour: outcomes, memories, globals, tables, and
/// fuel consumed when both meter fuel. Used to check that a deserialized
/// or cached module behaves like a freshly compiled one.
///
/// # Errors
///
/// A description of the first difference.
pub fn compare_kiln(
    a: (kiln::Module, &KilnSettings),
    b: (kiln::Module, &KilnSettings),
    args: &mut Unstructured<'_>,
) -> std::result::Result<(), String> {
    let mut x = KilnSide::from_module(a.0, a.1).map_err(|e| format!("dummy imports: {e:#}"))?;
    let mut y = KilnSide::from_module(b.0, b.1).map_err(|e| format!("dummy imports: {e:#}"))?;
    let same_fuel = x.settings.consume_fuel && y.settings.consume_fuel;
    let check = |x: &mut KilnSide, y: &mut KilnSide, when: &str| -> std::result::Result<(), String> {
        let (sx, sy) = (x.snapshot(), y.snapshot());
        compare_snapshots(&sx, &sy, false).map_err(|e| format!("after {when}: {e}"))?;
        if same_fuel && x.fuel_consumed() != y.fuel_consumed() {
            return Err(format!("after {when}: fuel consumed {} vs {}", x.fuel_consumed(), y.fuel_consumed()));
        }
        Ok(())
    };
    let (ox, oy) = (x.instantiate(), y.instantiate());
    if ox != oy {
        return Err(format!("instantiation: {ox:?} vs {oy:?}"));
    }
    check(&mut x, &mut y, "instantiation")?;
    if x.instance.is_none() {
        return Ok(());
    }
    for (name, params) in x.exported_funcs() {
        let values: Vec<Value> = params.iter().map(|t| Value::arbitrary(args, *t)).collect();
        let (ox, oy) = (x.call(&name, &values), y.call(&name, &values));
        if ox == Outcome::Trap(TrapKind::StackOverflow) || oy == Outcome::Trap(TrapKind::StackOverflow) {
            // How deep the host stack is at entry may differ by a frame.
            return Ok(());
        }
        if ox != oy {
            return Err(format!("call {name}({values:?}): {ox:?} vs {oy:?}"));
        }
        check(&mut x, &mut y, &format!("call {name}"))?;
    }
    Ok(())
}

// --------------------------------------------------------------- wasmi --

/// wasmi's side of a case.
struct WasmiSide {
    store: wasmi::Store<()>,
    module: wasmi::Module,
    imports: Vec<wasmi::Extern>,
    instance: Option<wasmi::Instance>,
}

fn wasmi_type(t: wasmi::ValType) -> ValType {
    match t {
        wasmi::ValType::I32 => ValType::I32,
        wasmi::ValType::I64 => ValType::I64,
        wasmi::ValType::F32 => ValType::F32,
        wasmi::ValType::F64 => ValType::F64,
        wasmi::ValType::V128 => ValType::V128,
        wasmi::ValType::FuncRef => ValType::FuncRef,
        wasmi::ValType::ExternRef => ValType::ExternRef,
    }
}

fn to_wasmi(v: Value) -> wasmi::Val {
    match v {
        Value::I32(x) => wasmi::Val::I32(x),
        Value::I64(x) => wasmi::Val::I64(x),
        Value::F32(x) => wasmi::Val::F32(wasmi::F32::from_bits(x)),
        Value::F64(x) => wasmi::Val::F64(wasmi::F64::from_bits(x)),
        Value::V128(x) => wasmi::Val::V128(wasmi::V128::from(x)),
        Value::NullFuncRef => wasmi::Val::FuncRef(wasmi::Nullable::Null),
        Value::NullExternRef => wasmi::Val::ExternRef(wasmi::Nullable::Null),
        // wasmi has no exception handling and no GC; the differential
        // generators never produce them (`restrict_to_kiln`), so this
        // cannot be reached with a module wasmi accepted.
        Value::NullExnRef | Value::NullAnyRef => wasmi::Val::ExternRef(wasmi::Nullable::Null),
    }
}

fn wasmi_func_sig(store: &wasmi::Store<()>, f: &wasmi::Func) -> (Vec<ValType>, Vec<ValType>) {
    let ty = f.ty(store);
    (ty.params().iter().map(|t| wasmi_type(*t)).collect(), ty.results().iter().map(|t| wasmi_type(*t)).collect())
}

fn wasmi_observe(store: &wasmi::Store<()>, v: &wasmi::Val) -> Observed {
    match v {
        wasmi::Val::I32(x) => Observed::I32(*x),
        wasmi::Val::I64(x) => Observed::I64(*x),
        wasmi::Val::F32(x) => Observed::F32(x.to_bits()),
        wasmi::Val::F64(x) => Observed::F64(x.to_bits()),
        wasmi::Val::V128(x) => Observed::V128(x.as_u128()),
        wasmi::Val::FuncRef(f) => Observed::FuncRef(f.val().map(|f| wasmi_func_sig(store, f))),
        wasmi::Val::ExternRef(r) => Observed::ExternRef(!r.is_null()),
    }
}

fn wasmi_ref_observe(store: &wasmi::Store<()>, r: &wasmi::Ref) -> Observed {
    match r {
        wasmi::Ref::Func(f) => Observed::FuncRef(f.val().map(|f| wasmi_func_sig(store, f))),
        wasmi::Ref::Extern(e) => Observed::ExternRef(!e.is_null()),
    }
}

fn wasmi_error_outcome(e: &wasmi::Error) -> Outcome {
    match e.as_trap_code() {
        Some(code) => Outcome::Trap(TrapKind::from_wasmi(code)),
        None => Outcome::Error(e.to_string()),
    }
}

impl WasmiSide {
    /// `None` if wasmi refuses the module or a dummy import.
    fn new(wasm: &[u8], fuel: bool) -> Option<WasmiSide> {
        let mut config = wasmi::Config::default();
        config.wasm_wide_arithmetic(true).wasm_custom_page_sizes(true);
        // Deeper than the termination fuel lets any case recurse (wasmi's
        // default, 1000 frames, is just short of it).
        config.consume_fuel(fuel).set_max_recursion_depth(16 * 1024).set_max_stack_height(16 << 20);
        let engine = wasmi::Engine::new(&config);
        let module = wasmi::Module::new(&engine, wasm).ok()?;
        let mut store = wasmi::Store::new(&engine, ());
        if fuel {
            store.set_fuel(WASMI_FUEL).ok()?;
        }
        let mut imports = Vec::new();
        for import in module.imports() {
            let e = match import.ty() {
                wasmi::ExternType::Func(ty) => {
                    let param_tys: Vec<ValType> = ty.params().iter().map(|t| wasmi_type(*t)).collect();
                    let result_tys: Vec<ValType> = ty.results().iter().map(|t| wasmi_type(*t)).collect();
                    let f = wasmi::Func::new(&mut store, ty.clone(), move |_caller, params, results| {
                        for (r, t) in results.iter_mut().zip(&result_tys) {
                            *r = crate::dummy::echo(params.iter().zip(param_tys.iter().copied()), *t, |t| {
                                to_wasmi(Value::zero(t))
                            });
                        }
                        Ok(())
                    });
                    wasmi::Extern::Func(f)
                }
                wasmi::ExternType::Global(g) => {
                    let v = to_wasmi(Value::zero(wasmi_type(g.content())));
                    wasmi::Extern::Global(wasmi::Global::new(&mut store, v, g.mutability()))
                }
                wasmi::ExternType::Memory(m) => wasmi::Extern::Memory(wasmi::Memory::new(&mut store, *m).ok()?),
                wasmi::ExternType::Table(t) => {
                    let init = wasmi::Ref::null(t.element());
                    wasmi::Extern::Table(wasmi::Table::new(&mut store, *t, init).ok()?)
                }
            };
            imports.push(e);
        }
        Some(WasmiSide { store, module, imports, instance: None })
    }

    fn instantiate(&mut self) -> Outcome {
        match wasmi::Instance::new(&mut self.store, &self.module, &self.imports) {
            Ok(i) => {
                self.instance = Some(i);
                Outcome::Values(Vec::new())
            }
            Err(e) => wasmi_error_outcome(&e),
        }
    }

    fn call(&mut self, name: &str, args: &[Value]) -> Outcome {
        let Some(instance) = self.instance else { return Outcome::Error("no instance".into()) };
        let Some(f) = instance.get_func(&self.store, name) else {
            return Outcome::Error(format!("no function export {name}"));
        };
        let ty = f.ty(&self.store);
        let params: Vec<wasmi::Val> = args.iter().map(|a| to_wasmi(*a)).collect();
        let mut results: Vec<wasmi::Val> = ty.results().iter().map(|t| wasmi::Val::default_for_ty(*t)).collect();
        match f.call(&mut self.store, &params, &mut results) {
            Ok(()) => Outcome::Values(results.iter().map(|r| wasmi_observe(&self.store, r)).collect()),
            Err(e) => wasmi_error_outcome(&e),
        }
    }

    /// As `KilnSide::snapshot`: the same names, sorted.
    fn snapshot(&self) -> Snapshot {
        let mut items: Vec<(String, wasmi::Extern)> = import_names(self.module.imports().map(|i| {
            let kind = match i.ty() {
                wasmi::ExternType::Func(_) => "function",
                wasmi::ExternType::Global(_) => "global",
                wasmi::ExternType::Table(_) => "table",
                wasmi::ExternType::Memory(_) => "memory",
            };
            (i.module().to_string(), i.name().to_string(), kind)
        }))
        .into_iter()
        .zip(self.imports.iter().cloned())
        .collect();
        if let Some(instance) = self.instance {
            for e in self.module.exports() {
                if let Some(x) = instance.get_export(&self.store, e.name()) {
                    items.push((e.name().to_string(), x));
                }
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let mut s = Snapshot::default();
        for (name, item) in items {
            match item {
                wasmi::Extern::Memory(m) => s.memories.push((name, m.data(&self.store).to_vec())),
                wasmi::Extern::Global(g) => s.globals.push((name, wasmi_observe(&self.store, &g.get(&self.store)))),
                wasmi::Extern::Table(t) => {
                    let size = t.size(&self.store);
                    let elems = (0..size.min(MAX_TABLE_ELEMENTS_COMPARED))
                        .map(|i| match t.get(&self.store, i) {
                            Some(r) => wasmi_ref_observe(&self.store, &r),
                            None => Observed::I32(-1),
                        })
                        .collect();
                    s.tables.push((name, size, elems));
                }
                wasmi::Extern::Func(_) => {}
            }
        }
        s
    }
}
