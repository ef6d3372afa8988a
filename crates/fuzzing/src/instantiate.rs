//! Instantiation of valid modules under different instance-allocation
//! settings.
//!
//! A valid wasm-smith module (larger than the differential ones, with
//! wasm-smith's termination instrumentation so start functions end) is
//! compiled once per allocation variant and instantiated with dummy
//! imports. Instantiation must succeed or fail with an error, never crash,
//! and every variant must agree: the same outcome (trap kind), and the same
//! memories, globals and tables afterwards. Within one variant, a second
//! instance in a fresh store and a second instance in the same store must
//! also look exactly like the first (copy-on-write memory images and lazily
//! initialized tables are shared between instances; writes by one
//! instance's start function must not show through in another). Half the
//! modules use exception handling, so throwing and catching (and
//! exceptions escaping the start function) are compared across variants
//! too.
//!
//! Variants ([`variants`]): the defaults (on-demand allocator, lazy funcref
//! tables, copy-on-write memory images); both eager
//! (`table_lazy_init(false)`, `memory_init_cow(false)`); a small memory
//! reservation (explicit bounds checks); the pooling allocator
//! (`InstanceAllocationStrategy::Pooling`) with defaults, and with eager
//! tables and small slots. A pooling variant may refuse a module that does
//! not fit its slots ("pooling limit"); that variant is then skipped.

use crate::differential::{self, KilnSide, Outcome, TrapKind};
use crate::generators::{self, KilnSettings, ModuleLimits, Proposals};
use arbitrary::{Result, Unstructured};

/// An instantiation case.
#[derive(Clone, Debug)]
pub struct Case {
    /// The module.
    pub wasm: Vec<u8>,
    /// The proposals the module may use (only their switches are read).
    pub proposals: KilnSettings,
    /// Largest memory the module can have, in bytes.
    pub max_memory_bytes: u64,
}

/// Generates a case from `u`.
///
/// # Errors
///
/// `u` does not hold enough data.
pub fn generate(u: &mut Unstructured<'_>) -> Result<Case> {
    let mut smith = generators::smith_config(u, ModuleLimits::COMPILE, Proposals::ALL)?;
    // Plenty of segments and a start function are what instantiation is about.
    smith.max_data_segments = smith.max_data_segments.max(u.int_in_range(0..=20)?);
    smith.max_element_segments = smith.max_element_segments.max(u.int_in_range(0..=20)?);
    smith.export_everything = u.ratio(3, 4)?;
    // Start functions that throw, catch and rethrow (exception handling is
    // Kiln's alone here: no second runtime runs these).
    smith.exceptions_enabled = u.ratio(1, 2)?;
    smith.max_tags = if smith.exceptions_enabled { 4 } else { 0 };
    let mut proposals = KilnSettings::default();
    proposals.enable_proposals_of(&smith);
    let max_memory_bytes = smith.max_memory32_bytes;
    let wasm = generators::smith_module(u, smith, Some(differential::TERMINATION_FUEL))?;
    Ok(Case { wasm, proposals, max_memory_bytes })
}

/// The allocation variants every case runs under, with the proposal
/// switches of `proposals`.
pub fn variants(proposals: &KilnSettings, max_memory_bytes: u64) -> Vec<KilnSettings> {
    let base = KilnSettings {
        multi_memory: proposals.multi_memory,
        tail_call: proposals.tail_call,
        relaxed_simd: proposals.relaxed_simd,
        memory64: proposals.memory64,
        threads: proposals.threads,
        wide_arithmetic: proposals.wide_arithmetic,
        custom_page_sizes: proposals.custom_page_sizes,
        gc: proposals.gc,
        ..KilnSettings::default()
    };
    let small = Some(max_memory_bytes.max(1 << 16));
    vec![
        base.clone(),
        KilnSettings { table_lazy_init: false, memory_init_cow: false, ..base.clone() },
        KilnSettings { memory_init_cow: false, memory_reservation: small, memory_guard_size: Some(0), ..base.clone() },
        KilnSettings { pooling: true, ..base.clone() },
        KilnSettings {
            pooling: true,
            table_lazy_init: false,
            memory_reservation: small,
            memory_guard_size: Some(1 << 16),
            ..base
        },
    ]
}

/// The fuzz-target entry point.
///
/// # Errors
///
/// `u` does not hold enough data.
pub fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let case = generate(u)?;
    if let Err(msg) = case.check() {
        crate::fail("instantiate", &case.wasm, &msg);
    }
    Ok(())
}

impl Case {
    /// Instantiates the module under every variant.
    ///
    /// # Errors
    ///
    /// A description of the first inconsistency.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !generators::validates(&self.wasm, &self.proposals) {
            return Err("wasm-smith generated a module wasmparser rejects (generator configuration bug)".into());
        }
        let mut reference: Option<(KilnSettings, Outcome, differential::Snapshot)> = None;
        for settings in variants(&self.proposals, self.max_memory_bytes) {
            let engine = kiln::Engine::new(&settings.config()).map_err(|e| format!("engine {settings:?}: {e:#}"))?;
            let module = kiln::Module::from_binary(&engine, &self.wasm)
                .map_err(|e| format!("Kiln refused a valid module with {settings:?}: {e:#}"))?;

            // A pooling variant may refuse what does not fit its slots.
            let refused =
                |o: &Outcome| settings.pooling && matches!(o, Outcome::Error(e) if generators::is_pooling_limit(e));
            let refused_err = |e: &String| settings.pooling && generators::is_pooling_limit(e);
            let first = match instantiate(&module, &settings) {
                Err(e) if refused_err(&e) => continue,
                r => r?,
            };
            if refused(&first.0) {
                continue;
            }
            // A second instance, in a fresh store.
            let second = instantiate(&module, &settings)?;
            same(&first, &second, &settings, "a second store")?;
            // A third and a fourth, in one store.
            let mut side =
                KilnSide::from_module(module.clone(), &settings).map_err(|e| format!("dummy imports: {e:#}"))?;
            let o = side.instantiate();
            let again = side.instantiate_again().map_err(|e| format!("dummy imports: {e:#}"))?;
            if refused(&again) {
                continue;
            }
            if o != again {
                return Err(format!("with {settings:?}: instantiating twice in one store: {o:?}, then {again:?}"));
            }
            let snap = side.snapshot();
            same(&first, &(again, snap), &settings, "the same store")?;

            if first.0 == Outcome::Trap(TrapKind::StackOverflow) {
                // How deep a start function gets depends on the host stack.
                continue;
            }
            match &reference {
                None => reference = Some((settings, first.0, first.1)),
                Some((s0, o0, snap0)) => {
                    if *o0 != first.0 {
                        return Err(format!("instantiation: {o0:?} with {s0:?}, {:?} with {settings:?}", first.0));
                    }
                    differential::compare_snapshots(snap0, &first.1, false)
                        .map_err(|e| format!("after instantiation, {s0:?} vs {settings:?}: {e}"))?;
                }
            }
        }
        Ok(())
    }
}

/// Instantiates `module` in a fresh store; the outcome and what the host sees.
fn instantiate(
    module: &kiln::Module,
    settings: &KilnSettings,
) -> std::result::Result<(Outcome, differential::Snapshot), String> {
    let mut side = KilnSide::from_module(module.clone(), settings).map_err(|e| format!("dummy imports: {e:#}"))?;
    let outcome = side.instantiate();
    if let Outcome::Trap(TrapKind::StackOverflow) = outcome {
        // Depends on the host stack; not comparable.
        return Ok((outcome, Default::default()));
    }
    Ok((outcome, side.snapshot()))
}

fn same(
    a: &(Outcome, differential::Snapshot),
    b: &(Outcome, differential::Snapshot),
    settings: &KilnSettings,
    what: &str,
) -> std::result::Result<(), String> {
    if a.0 == Outcome::Trap(TrapKind::StackOverflow) || b.0 == Outcome::Trap(TrapKind::StackOverflow) {
        return Ok(());
    }
    if a.0 != b.0 {
        return Err(format!("with {settings:?}: instantiation {:?}, in {what} {:?}", a.0, b.0));
    }
    differential::compare_snapshots(&a.1, &b.1, false)
        .map_err(|e| format!("with {settings:?}, first instance vs {what}: {e}"))
}
