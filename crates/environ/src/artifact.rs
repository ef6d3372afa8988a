//! Linking compiled functions into one text blob, and the metadata that
//! travels with it (the compiled-artifact format).

use crate::compile::RelocKind;
use crate::error::{WasmError, WasmResult};
use crate::function_code::FunctionCode;
use crate::index::{DefinedFuncIndex, FuncIndex, TypeIndex};
use crate::module::ModuleInfo;
use crate::trap::{TrapCode, TrapTable};
use serde::{Deserialize, Serialize};

/// Where a function sits in the text blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionLoc {
    /// Offset of the first byte.
    pub start: u32,
    /// Length in bytes.
    pub length: u32,
}

/// Everything the runtime needs to use a linked text blob.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompiledModuleInfo {
    /// The module.
    pub module: ModuleInfo,
    /// Location of each defined function, by defined index.
    #[serde(with = "packed_locs")]
    pub funcs: Vec<FunctionLoc>,
    /// Array-call entry trampolines: `(module type index, location)`, sorted by type index.
    pub array_to_wasm_trampolines: Vec<(TypeIndex, FunctionLoc)>,
    /// Trapping instructions in the text.
    pub traps: TrapTable,
    /// `(text offset, wasm module offset)` pairs for the whole text, sorted.
    pub address_map: crate::blob::U32PairTable,
    /// Calls made with exception handlers, by text offset.
    pub exn_table: crate::ExnTable,
    /// Where GC references live in frames at calls, by text offset.
    pub stack_maps: crate::StackMapTable,
    /// Whether the text is a lazily compiled module's (`StubLayout`):
    /// then it starts with a stub per defined function, and a function
    /// not compiled yet has a location of length 0. Such an artifact is
    /// only ever loaded from the cache, next to the module's bytes.
    #[serde(default)]
    pub lazy: bool,
}

/// Function locations encoded as one byte string of little-endian
/// `(start, length)` pairs: a warm start decodes tens of thousands of them
/// at memory speed instead of one varint at a time (measurements:
/// bench/DESIGN-NOTES.md).
mod packed_locs {
    use super::FunctionLoc;
    use serde::de::{Error, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(locs: &[FunctionLoc], s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(locs.len() * 8);
        for l in locs {
            bytes.extend_from_slice(&l.start.to_le_bytes());
            bytes.extend_from_slice(&l.length.to_le_bytes());
        }
        s.serialize_bytes(&bytes)
    }

    struct LocsVisitor;

    impl Visitor<'_> for LocsVisitor {
        type Value = Vec<FunctionLoc>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte string of 8-byte function locations")
        }
        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Self::Value, E> {
            if !v.len().is_multiple_of(8) {
                return Err(E::invalid_length(v.len(), &self));
            }
            let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            Ok(v.chunks_exact(8).map(|c| FunctionLoc { start: word(&c[..4]), length: word(&c[4..]) }).collect())
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<FunctionLoc>, D::Error> {
        d.deserialize_bytes(LocsVisitor)
    }
}

impl CompiledModuleInfo {
    /// The defined function (module function index) whose code contains
    /// `text_offset`, if any, with the offset relative to that function.
    pub fn func_by_text_offset(&self, text_offset: u32) -> Option<(FuncIndex, u32)> {
        let i = self.funcs.partition_point(|loc| loc.start <= text_offset);
        let i = i.checked_sub(1)?;
        let loc = self.funcs[i];
        if text_offset < loc.start + loc.length {
            Some((self.module.func_index(DefinedFuncIndex::from_u32(i as u32)), text_offset - loc.start))
        } else {
            None
        }
    }

    /// Checks the module's own indices ([`ModuleInfo::check_consistency`]),
    /// that every location lies inside a text of `text_len` bytes and that
    /// the tables are sorted (so lookups cannot misbehave on a damaged
    /// artifact).
    ///
    /// # Errors
    ///
    /// A short description of the first inconsistency.
    pub fn check_consistency(&self, text_len: usize) -> Result<(), &'static str> {
        // First: the counts below (`num_defined_funcs`) assume consistent
        // import counts.
        self.module.check_consistency()?;
        let fits = |l: &FunctionLoc| (l.start as usize).checked_add(l.length as usize).is_some_and(|e| e <= text_len);
        if self.funcs.len() != self.module.num_defined_funcs() as usize {
            return Err("function count");
        }
        if !self.funcs.iter().all(fits) || !self.array_to_wasm_trampolines.iter().all(|(_, l)| fits(l)) {
            return Err("function outside the text");
        }
        let ordered = |w: &[FunctionLoc]| if self.lazy { w[0].start <= w[1].start } else { w[0].start < w[1].start };
        if !self.funcs.windows(2).all(ordered) || (!self.lazy && self.funcs.iter().any(|l| l.length == 0)) {
            return Err("function order");
        }
        let stubs = self.module.num_defined_funcs() as usize * crate::STUB_SIZE as usize;
        if self.lazy && self.funcs.first().is_some_and(|l| (l.start as usize) < stubs) {
            return Err("function inside the stubs");
        }
        if !self.traps.is_well_formed() {
            return Err("trap table");
        }
        if !self.address_map.is_well_formed() {
            return Err("address map");
        }
        if !self.exn_table.is_well_formed(text_len) {
            return Err("exception table");
        }
        if !self.stack_maps.is_well_formed(text_len) {
            return Err("stack maps");
        }
        if !self.array_to_wasm_trampolines.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err("trampoline table");
        }
        if self
            .array_to_wasm_trampolines
            .iter()
            .any(|(t, _)| self.module.types.get(t.index()).is_none_or(|u| u.as_func().is_none()))
        {
            return Err("trampoline type");
        }
        Ok(())
    }

    /// The wasm module offset of the instruction at `text_offset`, if known.
    pub fn wasm_offset(&self, text_offset: u32) -> Option<u32> {
        self.address_map.floor(text_offset)
    }

    /// The entry trampoline for module type `ty`, if one was compiled.
    pub fn array_to_wasm_trampoline(&self, ty: TypeIndex) -> Option<FunctionLoc> {
        self.array_to_wasm_trampolines
            .binary_search_by_key(&ty, |(t, _)| *t)
            .ok()
            .map(|i| self.array_to_wasm_trampolines[i].1)
    }
}

/// Lays out `funcs` (defined functions, in order) followed by `trampolines`
/// in one text blob, patches the calls between functions, and collects trap
/// records and address maps. The functions are read in place (from a
/// function cache entry, or freshly compiled and encoded).
/// `body_offsets[i]` is the module offset of function `i`'s body, added to
/// its (body-relative) address map.
///
/// # Errors
///
/// A relocation that does not fit its field (a text blob too large for the
/// target's call range) or names a function that is not defined.
pub fn link(
    module: &ModuleInfo,
    funcs: &[FunctionCode<'_>],
    body_offsets: &[u32],
    trampolines: &[FunctionCode<'_>],
) -> WasmResult<LinkedText> {
    let funcs: Vec<(DefinedFuncIndex, FunctionCode<'_>, u32)> = funcs
        .iter()
        .enumerate()
        .map(|(i, f)| (DefinedFuncIndex::from_u32(i as u32), *f, body_offsets.get(i).copied().unwrap_or(0)))
        .collect();
    link_placed(module, &funcs, trampolines, 0, &|defined, locs| locs.get(defined.index()).map(|l| l.start))
}

/// Where a call to a defined function goes, for [`link_placed`]: the text
/// offset of its code (or of whatever stands in for it), given the
/// locations of the functions being linked, in input order; `None` if it
/// has none.
pub type CallTarget<'a> = dyn Fn(DefinedFuncIndex, &[FunctionLoc]) -> Option<u32> + 'a;

/// The general form of [`link`]: lays out `funcs` (defined functions, in
/// any order: `(index, code, module offset of its body)`) and
/// `trampolines` as a blob that will sit at text offset
/// `start`, and patches each call to defined function `g` to go to
/// `target(g, locations)`. Every offset in the result, locations included,
/// is a text offset (`start` plus the offset inside the blob); the blob's
/// own bytes begin at `start`.
///
/// # Errors
///
/// As [`link`]; also a call whose target has no location.
pub fn link_placed(
    module: &ModuleInfo,
    funcs: &[(DefinedFuncIndex, FunctionCode<'_>, u32)],
    trampolines: &[FunctionCode<'_>],
    start: u32,
    target: &CallTarget<'_>,
) -> WasmResult<LinkedText> {
    let all = || funcs.iter().map(|(_, f, _)| f).chain(trampolines);
    let mut text = Vec::with_capacity(all().map(|f| f.code().len() + f.alignment().max(16) as usize).sum());
    let mut traps: Vec<(u32, TrapCode)> = Vec::with_capacity(all().map(|f| f.traps().len()).sum());
    let mut address_map: Vec<(u32, u32)> =
        Vec::with_capacity(funcs.iter().map(|(_, f, _)| f.address_map().len()).sum());
    let mut exn_sites: Vec<crate::ExnSite> = Vec::new();
    let mut stack_maps: Vec<crate::StackMapSite> = Vec::new();
    let base = start as usize;
    let mut place = |f: &FunctionCode<'_>, body_offset: u32, text: &mut Vec<u8>| {
        // Alignment is of the text offset: `start` is at least 16-aligned
        // (page-aligned for lazily compiled code).
        let align = f.alignment().max(16) as usize;
        let at = (base + text.len()).div_ceil(align) * align;
        text.resize(at - base, 0xcc_u8);
        text.extend_from_slice(f.code());
        let at = at as u32;
        traps.extend(f.traps().map(|(off, code)| (at + off, code)));
        address_map.extend(f.address_map().map(|(c, w)| (at + c, body_offset.wrapping_add(w))));
        exn_sites.extend(f.exn_sites().map(|mut site| {
            site.ret += at;
            for h in &mut site.handlers {
                h.offset += at;
            }
            site
        }));
        stack_maps.extend(f.stack_maps().map(|mut site| {
            site.ret += at;
            site
        }));
        FunctionLoc { start: at, length: f.code().len() as u32 }
    };
    let func_locs: Vec<FunctionLoc> = funcs.iter().map(|(_, f, body)| place(f, *body, &mut text)).collect();
    let tramp_locs: Vec<FunctionLoc> = trampolines.iter().map(|f| place(f, 0, &mut text)).collect();
    if base + text.len() > i32::MAX as usize {
        return Err(WasmError::Limit("compiled code larger than 2 GiB".into()));
    }

    let codes = funcs.iter().map(|(_, f, _)| f).zip(&func_locs).chain(trampolines.iter().zip(&tramp_locs));
    for (f, loc) in codes {
        for r in f.relocations() {
            let defined = module
                .defined_func_index(r.target)
                .ok_or_else(|| WasmError::Codegen(format!("relocation against imported function {}", r.target)))?;
            let to = target(defined, &func_locs)
                .ok_or_else(|| WasmError::Codegen(format!("relocation against unknown function {}", r.target)))?;
            let at = i64::from(loc.start + r.offset);
            let value = i64::from(to) + r.addend - at;
            let at = at as usize - base;
            match r.kind {
                RelocKind::X86CallPCRel4 => {
                    let v =
                        i32::try_from(value).map_err(|_| WasmError::Limit("call displacement out of range".into()))?;
                    text[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
                RelocKind::Arm64Call => {
                    if value % 4 != 0 || !(-(1 << 27)..(1 << 27)).contains(&value) {
                        return Err(WasmError::Limit("call displacement out of range".into()));
                    }
                    let mut insn = u32::from_le_bytes([text[at], text[at + 1], text[at + 2], text[at + 3]]);
                    insn = (insn & 0xfc00_0000) | (((value >> 2) as u32) & 0x03ff_ffff);
                    text[at..at + 4].copy_from_slice(&insn.to_le_bytes());
                }
            }
        }
    }
    traps.sort_by_key(|(o, _)| *o);
    Ok(LinkedText {
        text,
        funcs: func_locs,
        trampolines: tramp_locs,
        traps: TrapTable::new(&traps),
        address_map: crate::blob::U32PairTable::new(&address_map),
        exn_table: crate::ExnTable::new(&exn_sites),
        stack_maps: crate::StackMapTable::new(&stack_maps),
    })
}

/// The output of [`link`].
#[derive(Debug)]
pub struct LinkedText {
    /// The machine code.
    pub text: Vec<u8>,
    /// Location of each function, in input order.
    pub funcs: Vec<FunctionLoc>,
    /// Location of each trampoline, in input order.
    pub trampolines: Vec<FunctionLoc>,
    /// Trapping instructions.
    pub traps: TrapTable,
    /// `(text offset, wasm offset)` pairs.
    pub address_map: crate::blob::U32PairTable,
    /// Calls made with exception handlers.
    pub exn_table: crate::ExnTable,
    /// Where GC references live at calls.
    pub stack_maps: crate::StackMapTable,
}
