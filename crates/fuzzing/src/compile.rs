//! Compilation of hostile input.
//!
//! Kiln must never panic on any bytes given to `Module::new`, and must
//! agree with wasmparser (configured with Kiln's feature set) on what is a
//! valid module: a module wasmparser validates compiles, and one it rejects
//! is refused. `Module::validate` must agree too.
//!
//! Inputs come in four shapes, chosen by the first byte: the raw bytes
//! themselves; a wasm-smith module whose function bodies may be arbitrary
//! bytes; a valid wasm-smith module with a few bytes changed; and a
//! wasm-smith module that may use every proposal wasm-smith knows
//! (exceptions and GC among them). The engine enables each optional
//! proposal (multi-memory, tail calls, relaxed SIMD, memory64, threads,
//! wide arithmetic, custom page sizes, GC) by chance, so feature gating is
//! checked too.

use crate::generators::{self, KilnSettings, ModuleLimits, Proposals};
use arbitrary::{Result, Unstructured};

/// A compile case: the bytes, and whether the engine enables multi-memory.
#[derive(Clone, Debug)]
pub struct Case {
    /// The input.
    pub bytes: Vec<u8>,
    /// The engine's proposal switches (only those are read).
    pub features: KilnSettings,
}

/// Generates a case from `u`.
///
/// # Errors
///
/// `u` does not hold enough data.
pub fn generate(u: &mut Unstructured<'_>) -> Result<Case> {
    let shape: u8 = u.arbitrary()?;
    // Each proposal on or off in the engine, independently of the module.
    let features = KilnSettings {
        multi_memory: u.arbitrary()?,
        tail_call: u.arbitrary()?,
        relaxed_simd: u.arbitrary()?,
        memory64: u.arbitrary()?,
        threads: u.arbitrary()?,
        wide_arithmetic: u.arbitrary()?,
        custom_page_sizes: u.arbitrary()?,
        gc: u.arbitrary()?,
        ..KilnSettings::default()
    };
    let bytes = match shape % 4 {
        0 => u.bytes(u.len())?.to_vec(),
        1 => {
            let mut c = generators::smith_config(u, ModuleLimits::COMPILE, Proposals::ALL)?;
            c.allow_invalid_funcs = true;
            generators::smith_module(u, c, None)?
        }
        2 => {
            let c = generators::smith_config(u, ModuleLimits::COMPILE, Proposals::ALL)?;
            let mut bytes = generators::smith_module(u, c, None)?;
            mutate(u, &mut bytes)?;
            bytes
        }
        _ => {
            // Swarm configuration with every proposal wasm-smith knows (sizes still bounded).
            let mut c: wasm_smith::Config = u.arbitrary()?;
            let (exceptions, gc) = (c.exceptions_enabled, c.gc_enabled);
            generators::restrict_to_kiln(&mut c, ModuleLimits::COMPILE, Proposals::ALL);
            (c.exceptions_enabled, c.gc_enabled) = (exceptions, gc && c.reference_types_enabled);
            c.max_tags = if c.exceptions_enabled { 5 } else { 0 };
            generators::smith_module(u, c, None)?
        }
    };
    Ok(Case { bytes, features })
}

/// Changes a few bytes of `bytes`: overwrites, insertions, deletions.
fn mutate(u: &mut Unstructured<'_>, bytes: &mut Vec<u8>) -> Result<()> {
    let n = u.int_in_range(1..=4)?;
    for _ in 0..n {
        if bytes.is_empty() {
            break;
        }
        let at = u.choose_index(bytes.len())?;
        match u.int_in_range(0..=3)? {
            0 => bytes[at] = u.arbitrary()?,
            1 => bytes[at] ^= 1 << u.int_in_range(0..=7)?,
            2 => bytes.insert(at, u.arbitrary()?),
            _ => {
                bytes.remove(at);
            }
        }
    }
    Ok(())
}

/// The fuzz-target entry point.
///
/// # Errors
///
/// `u` does not hold enough data.
pub fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let case = generate(u)?;
    if let Err(msg) = case.check() {
        crate::fail("compile", &case.bytes, &msg);
    }
    Ok(())
}

impl Case {
    /// Compiles the input.
    ///
    /// # Errors
    ///
    /// Kiln and wasmparser disagree on the input's validity.
    pub fn check(&self) -> std::result::Result<(), String> {
        let config = self.features.config();
        let engine = kiln::Engine::new(&config).map_err(|e| format!("engine: {e:#}"))?;
        // Text or binary: whatever happens, no panic.
        let as_text_or_binary = kiln::Module::new(&engine, &self.bytes);
        if !self.bytes.starts_with(b"\0asm") {
            // Not a binary module: only `Module::new` (the text parser) applies.
            return Ok(());
        }
        let valid = generators::validates(&self.bytes, &self.features);
        let validated = kiln::Module::validate(&engine, &self.bytes);
        match (valid, &as_text_or_binary, &validated) {
            (true, Err(e), _) => Err(format!("wasmparser validates the module but Kiln refuses it: {e:#}")),
            (false, Ok(_), _) => Err("Kiln compiles a module wasmparser rejects".to_string()),
            (true, _, Err(e)) => Err(format!("wasmparser validates the module but Module::validate refuses it: {e:#}")),
            (false, _, Ok(())) => Err("Module::validate accepts a module wasmparser rejects".to_string()),
            _ => Ok(()),
        }
    }
}
