//! The function-level cache, checked on a generated module (step 5 of the
//! [`cache`](crate::cache) oracle):
//!
//! - compiled through a cache that only holds functions (so every compile
//!   goes function by function), a module gives exactly the code of a
//!   compilation without any cache (`Module::serialize` is byte-identical);
//! - compiled again, every function is a hit, and the code is the same;
//! - after `nop` is added to one function's body, at most that function
//!   misses (none if its new body repeats another function's), and the code
//!   is that of a fresh compilation of the edited module;
//! - after a type is appended to the type section (the context every
//!   function's code depends on), every function misses.

use crate::generators::KilnSettings;
use kiln::{Cache, CacheEntry, CacheKind, CacheStats, MemoryCache};
use std::sync::Arc;
use std::time::Duration;
use wasm_encoder::Encode;

/// A cache that never finds or keeps whole modules, only functions.
struct FunctionsOnly(MemoryCache);

impl Cache for FunctionsOnly {
    fn mac_key(&self) -> Option<[u8; 32]> {
        self.0.mac_key()
    }
    fn get(&self, kind: CacheKind, key: &[u8; 32]) -> Option<CacheEntry> {
        (kind == CacheKind::Functions).then(|| self.0.get(kind, key)).flatten()
    }
    fn put(&self, kind: CacheKind, key: &[u8; 32], bytes: Vec<u8>) {
        if kind == CacheKind::Functions {
            self.0.put(kind, key, bytes);
        }
    }
    fn remove(&self, kind: CacheKind, key: &[u8; 32]) {
        self.0.remove(kind, key);
    }
    fn stats(&self) -> CacheStats {
        self.0.stats()
    }
    fn record(&self, saved: Duration, rejected: bool) {
        self.0.record(saved, rejected);
    }
    fn record_functions(&self, hits: u64, misses: u64) {
        self.0.record_functions(hits, misses);
    }
}

/// Runs the checks above on `wasm` (valid for `settings`); `pick` chooses
/// the function to edit. Returns what went wrong.
pub fn check(wasm: &[u8], settings: &KilnSettings, pick: usize) -> Result<(), String> {
    let cache = Arc::new(FunctionsOnly(MemoryCache::new(256 << 20)));
    // Eager compilation: this oracle counts the functions compiled by
    // `Module::from_binary`, which a lazily compiled module leaves for
    // later (the lazy path through the same cache is `cache::run`'s).
    let settings = KilnSettings { lazy: None, ..settings.clone() };
    let compile = |wasm: &[u8], cached: bool| -> Result<(Vec<u8>, CacheStats), String> {
        let mut config = settings.config();
        if cached {
            config.cache(cache.clone());
        }
        let engine = kiln::Engine::new(&config).map_err(|e| format!("engine: {e:#}"))?;
        let before = cache.stats();
        let module =
            kiln::Module::from_binary(&engine, wasm).map_err(|e| format!("compile (cached: {cached}): {e:#}"))?;
        let after = cache.stats();
        let delta = CacheStats {
            function_hits: after.function_hits - before.function_hits,
            function_misses: after.function_misses - before.function_misses,
            ..CacheStats::default()
        };
        Ok((module.serialize().map_err(|e| format!("serialize: {e:#}"))?, delta))
    };

    let reference = compile(wasm, false)?.0;
    let (first, _) = compile(wasm, true)?;
    if first != reference {
        return Err("compiled through an empty function cache, the code differs from an uncached compile".into());
    }
    let (again, s) = compile(wasm, true)?;
    if s.function_misses != 0 {
        return Err(format!("recompiling an unchanged module missed {} functions", s.function_misses));
    }
    if again != reference {
        return Err("code reloaded from the function cache differs from an uncached compile".into());
    }

    let bodies = function_bodies(wasm);
    if !bodies.is_empty() {
        let index = pick % bodies.len();
        if let Some((edited, new_body)) = with_nop_in_body(wasm, index) {
            let (code, s) = compile(&edited, true)?;
            let repeats = bodies.iter().enumerate().any(|(i, b)| i != index && *b == new_body);
            if s.function_misses > 1 || (s.function_misses == 0 && !repeats) {
                return Err(format!(
                    "editing function body {index} missed {} functions (expected {})",
                    s.function_misses,
                    u8::from(!repeats)
                ));
            }
            if code != compile(&edited, false)?.0 {
                return Err(format!(
                    "after editing function body {index}, cached code differs from an uncached compile"
                ));
            }
        }
        if let Some(extended) = with_extra_type(wasm) {
            let (code, s) = compile(&extended, true)?;
            if s.function_hits != 0 {
                return Err(format!("after a type was added, {} functions still hit", s.function_hits));
            }
            if code != compile(&extended, false)?.0 {
                return Err("after a type was added, cached code differs from an uncached compile".into());
            }
        }
    }
    Ok(())
}

/// The bytes of every function body (locals and code), in order.
fn function_bodies(wasm: &[u8]) -> Vec<Vec<u8>> {
    wasmparser::Parser::new(0)
        .parse_all(wasm)
        .filter_map(|p| match p {
            Ok(wasmparser::Payload::CodeSectionEntry(body)) => {
                Some(wasm[body.range().start as usize..body.range().end as usize].to_vec())
            }
            _ => None,
        })
        .collect()
}

/// The module's sections: `(id, contents)`, after the 8-byte header.
fn sections(wasm: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut reader = wasmparser::BinaryReader::new(wasm.get(8..)?, 8);
    let mut out = Vec::new();
    while !reader.eof() {
        let id = reader.read_u8().ok()?;
        let size = reader.read_var_u32().ok()? as usize;
        let start = reader.original_position() as usize;
        out.push((id, wasm.get(start..start.checked_add(size)?)?));
        reader.read_bytes(size).ok()?;
    }
    Some(out)
}

/// The module with the contents of its section `id` replaced by
/// `replace(contents)`; `None` if it has no such section or `replace`
/// fails.
fn with_section_replaced(wasm: &[u8], id: u8, mut replace: impl FnMut(&[u8]) -> Option<Vec<u8>>) -> Option<Vec<u8>> {
    let mut out = wasm.get(..8)?.to_vec();
    let mut found = false;
    for (section, contents) in sections(wasm)? {
        let new;
        let contents = if section == id {
            found = true;
            new = replace(contents)?;
            &new[..]
        } else {
            contents
        };
        out.push(section);
        contents.len().encode(&mut out);
        out.extend_from_slice(contents);
    }
    found.then_some(out)
}

/// The module with `nop` at the start of body `index`'s code, and that
/// new body.
fn with_nop_in_body(wasm: &[u8], index: usize) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut new_body = None;
    let edited = with_section_replaced(wasm, 10, |contents| {
        let mut reader = wasmparser::BinaryReader::new(contents, 0);
        let count = reader.read_var_u32().ok()?;
        let mut code = Vec::new();
        count.encode(&mut code);
        for i in 0..count as usize {
            let size = reader.read_var_u32().ok()? as usize;
            let start = reader.original_position() as usize;
            let body = contents.get(start..start.checked_add(size)?)?;
            reader.read_bytes(size).ok()?;
            let body = if i == index {
                let ops_at = wasmparser::FunctionBody::new(wasmparser::BinaryReader::new(body, 0))
                    .get_operators_reader()
                    .ok()?
                    .original_position() as usize;
                let mut b = body.get(..ops_at)?.to_vec();
                b.push(0x01);
                b.extend_from_slice(&body[ops_at..]);
                new_body = Some(b.clone());
                b
            } else {
                body.to_vec()
            };
            body.len().encode(&mut code);
            code.extend_from_slice(&body);
        }
        Some(code)
    })?;
    Some((edited, new_body?))
}

/// The module with a type `(func)` appended to its type section (if it has
/// one).
fn with_extra_type(wasm: &[u8]) -> Option<Vec<u8>> {
    with_section_replaced(wasm, 1, |contents| {
        let mut reader = wasmparser::BinaryReader::new(contents, 0);
        let count = reader.read_var_u32().ok()?;
        let mut types = Vec::new();
        (count.checked_add(1)?).encode(&mut types);
        types.extend_from_slice(contents.get(reader.original_position() as usize..)?);
        types.extend_from_slice(&[0x60, 0x00, 0x00]);
        Some(types)
    })
}
