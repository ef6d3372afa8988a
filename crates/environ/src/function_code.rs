//! One compiled function as a flat byte string, and a view of one that
//! [`link`](crate::link) reads in place.
//!
//! Function cache entries hold functions in this form (see
//! [`function_pack`](crate::FunctionPack)), so a module whose functions
//! come from the cache is linked straight from the entry's bytes: no
//! per-function decoding into vectors, no allocation, one pass over bytes
//! that are copied into the text anyway. Freshly compiled functions are
//! encoded once, then linked and stored the same way.
//!
//! ```text
//! u32 code length, u32 alignment, u32 relocation count, u32 trap count,
//! u32 address-map count, u32 exception-site count, u32 exception-handler
//! count (all little-endian), then
//! relocations:  count x (u32 offset, u32 target, i64 addend, u32 kind)
//! traps:        count x (u32 offset, u32 trap code)
//! address map:  count x (u32 code offset, u32 body-relative wasm offset)
//! exn sites:    count x (u32 return offset, u32 frame offset,
//!                        u32 vmctx offset, u32 handler count)
//! exn handlers: count x (u32 tag, u32 handler offset), by site
//! code
//! ```

use crate::compile::{CompiledFunction, RelocKind, Relocation};
use crate::exn_table::{ExnHandler, ExnSite};
use crate::index::FuncIndex;
use crate::trap::TrapCode;

const HEADER: usize = 36;
const EXN_SITE: usize = 16;
const STACK_MAP_SITE: usize = 12;
const SLOT: usize = 4;
const RELOCATION: usize = 20;
const PAIR: usize = 8;
/// The largest alignment a function may ask for (Cranelift asks for at
/// most a cache line); more would let one entry blow up the text.
const MAX_ALIGNMENT: u32 = 4096;

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

fn reloc_kind_code(kind: RelocKind) -> u32 {
    match kind {
        RelocKind::X86CallPCRel4 => 0,
        RelocKind::Arm64Call => 1,
    }
}

fn reloc_kind(code: u32) -> Option<RelocKind> {
    match code {
        0 => Some(RelocKind::X86CallPCRel4),
        1 => Some(RelocKind::Arm64Call),
        _ => None,
    }
}

impl CompiledFunction {
    /// The function as a byte string (see the module docs), appended to
    /// `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        let handlers: usize = self.exn_sites.iter().map(|s| s.handlers.len()).sum();
        let slots: usize = self.stack_maps.iter().map(|s| s.slots.len()).sum();
        for n in [
            self.code.len(),
            self.alignment as usize,
            self.relocations.len(),
            self.traps.len(),
            self.address_map.len(),
            self.exn_sites.len(),
            handlers,
            self.stack_maps.len(),
            slots,
        ] {
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        for r in &self.relocations {
            out.extend_from_slice(&r.offset.to_le_bytes());
            out.extend_from_slice(&r.target.as_u32().to_le_bytes());
            out.extend_from_slice(&r.addend.to_le_bytes());
            out.extend_from_slice(&reloc_kind_code(r.kind).to_le_bytes());
        }
        for (offset, code) in &self.traps {
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&(*code as u32).to_le_bytes());
        }
        for (code, wasm) in &self.address_map {
            out.extend_from_slice(&code.to_le_bytes());
            out.extend_from_slice(&wasm.to_le_bytes());
        }
        for site in &self.exn_sites {
            for n in [site.ret, site.frame_offset, site.vmctx_offset, site.handlers.len() as u32] {
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        for h in self.exn_sites.iter().flat_map(|s| &s.handlers) {
            out.extend_from_slice(&h.tag.to_le_bytes());
            out.extend_from_slice(&h.offset.to_le_bytes());
        }
        for site in &self.stack_maps {
            for n in [site.ret, site.frame_offset, site.slots.len() as u32] {
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        for slot in self.stack_maps.iter().flat_map(|s| &s.slots) {
            out.extend_from_slice(&slot.to_le_bytes());
        }
        out.extend_from_slice(&self.code);
    }

    /// The function as a byte string (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encoded_len(&self) -> usize {
        HEADER
            + self.relocations.len() * RELOCATION
            + (self.traps.len() + self.address_map.len()) * PAIR
            + self.exn_sites.len() * EXN_SITE
            + self.exn_sites.iter().map(|s| s.handlers.len() * PAIR).sum::<usize>()
            + self.stack_maps.len() * STACK_MAP_SITE
            + self.stack_maps.iter().map(|s| s.slots.len() * SLOT).sum::<usize>()
            + self.code.len()
    }
}

/// A compiled function encoded by [`CompiledFunction::encode`], checked
/// and read in place.
#[derive(Clone, Copy, Debug)]
pub struct FunctionCode<'a> {
    code: &'a [u8],
    alignment: u32,
    relocations: &'a [u8],
    traps: &'a [u8],
    address_map: &'a [u8],
    exn_sites: &'a [u8],
    exn_handlers: &'a [u8],
    stack_map_sites: &'a [u8],
    stack_map_slots: &'a [u8],
}

impl<'a> FunctionCode<'a> {
    /// Reads an encoded function, checking that it is exactly one whole
    /// function and consistent: every relocation and trap site inside the
    /// code, known relocation kinds and trap codes, address map sorted by
    /// code offset, exception sites sorted by return offset with their
    /// return addresses and handlers inside the code and handler counts
    /// adding up, a power-of-two alignment of at most 4 KiB. `None`
    /// otherwise.
    pub fn parse(bytes: &'a [u8]) -> Option<FunctionCode<'a>> {
        let header = bytes.get(..HEADER)?;
        let [code_len, alignment, relocs, traps, pairs, sites, handlers, map_sites, map_slots] =
            [0, 4, 8, 12, 16, 20, 24, 28, 32].map(|at| u32_at(header, at) as usize);
        let relocs_end = HEADER.checked_add(relocs.checked_mul(RELOCATION)?)?;
        let traps_end = relocs_end.checked_add(traps.checked_mul(PAIR)?)?;
        let pairs_end = traps_end.checked_add(pairs.checked_mul(PAIR)?)?;
        let sites_end = pairs_end.checked_add(sites.checked_mul(EXN_SITE)?)?;
        let handlers_end = sites_end.checked_add(handlers.checked_mul(PAIR)?)?;
        let map_sites_end = handlers_end.checked_add(map_sites.checked_mul(STACK_MAP_SITE)?)?;
        let map_slots_end = map_sites_end.checked_add(map_slots.checked_mul(SLOT)?)?;
        if map_slots_end.checked_add(code_len)? != bytes.len() {
            return None;
        }
        let f = FunctionCode {
            code: &bytes[map_slots_end..],
            alignment: alignment as u32,
            relocations: &bytes[HEADER..relocs_end],
            traps: &bytes[relocs_end..traps_end],
            address_map: &bytes[traps_end..pairs_end],
            exn_sites: &bytes[pairs_end..sites_end],
            exn_handlers: &bytes[sites_end..handlers_end],
            stack_map_sites: &bytes[handlers_end..map_sites_end],
            stack_map_slots: &bytes[map_sites_end..map_slots_end],
        };
        let code_len = u32::try_from(code_len).ok()?;
        let relocs_ok = f.relocations.chunks_exact(RELOCATION).all(|r| {
            u32_at(r, 0).checked_add(4).is_some_and(|end| end <= code_len) && reloc_kind(u32_at(r, 16)).is_some()
        });
        let traps_ok = f
            .traps
            .chunks_exact(PAIR)
            .all(|t| u32_at(t, 0) < code_len && u8::try_from(u32_at(t, 4)).ok().and_then(TrapCode::from_u8).is_some());
        let map_ok = f
            .address_map
            .chunks_exact(PAIR)
            .map(|p| u32_at(p, 0))
            .try_fold(0u32, |last, o| (o >= last).then_some(o))
            .is_some();
        let alignment_ok = f.alignment.is_power_of_two() && f.alignment <= MAX_ALIGNMENT;
        let sites_ok = f
            .exn_sites
            .chunks_exact(EXN_SITE)
            .try_fold((None, 0usize), |(last, count), s| {
                let ret = u32_at(s, 0);
                let ok = ret <= code_len && last.is_none_or(|l| ret > l);
                ok.then_some((Some(ret), count.checked_add(u32_at(s, 12) as usize)?))
            })
            .is_some_and(|(_, count)| count == handlers);
        let handlers_ok = f.exn_handlers.chunks_exact(PAIR).all(|h| u32_at(h, 4) < code_len);
        let stack_maps_ok = f
            .stack_map_sites
            .chunks_exact(STACK_MAP_SITE)
            .try_fold((None, 0usize), |(last, count), s| {
                let ret = u32_at(s, 0);
                let ok = ret <= code_len && last.is_none_or(|l| ret > l);
                ok.then_some((Some(ret), count.checked_add(u32_at(s, 8) as usize)?))
            })
            .is_some_and(|(_, count)| count == map_slots);
        (relocs_ok && traps_ok && map_ok && alignment_ok && sites_ok && handlers_ok && stack_maps_ok).then_some(f)
    }

    /// The machine code.
    pub fn code(&self) -> &'a [u8] {
        self.code
    }

    /// The alignment its first byte needs.
    pub fn alignment(&self) -> u32 {
        self.alignment
    }

    /// The calls to patch.
    pub fn relocations(&self) -> impl ExactSizeIterator<Item = Relocation> + 'a {
        self.relocations.chunks_exact(RELOCATION).map(|r| Relocation {
            offset: u32_at(r, 0),
            target: FuncIndex::from_u32(u32_at(r, 4)),
            addend: u64_at(r, 8) as i64,
            // Checked by `parse`.
            kind: reloc_kind(u32_at(r, 16)).unwrap_or(RelocKind::X86CallPCRel4),
        })
    }

    /// Trapping instructions: (offset from the function's start, code).
    pub fn traps(&self) -> impl ExactSizeIterator<Item = (u32, TrapCode)> + 'a {
        self.traps.chunks_exact(PAIR).map(|t| {
            // Checked by `parse`.
            let code =
                u8::try_from(u32_at(t, 4)).ok().and_then(TrapCode::from_u8).unwrap_or(TrapCode::UnreachableCodeReached);
            (u32_at(t, 0), code)
        })
    }

    /// `(code offset, body-relative wasm offset)` pairs, sorted by code
    /// offset.
    pub fn address_map(&self) -> impl ExactSizeIterator<Item = (u32, u32)> + 'a {
        self.address_map.chunks_exact(PAIR).map(|p| (u32_at(p, 0), u32_at(p, 4)))
    }

    /// Calls made with exception handlers, sorted by return offset, with
    /// offsets from the function's start.
    pub fn exn_sites(&self) -> impl ExactSizeIterator<Item = ExnSite> + 'a {
        let handlers = self.exn_handlers;
        let mut next = 0usize;
        self.exn_sites.chunks_exact(EXN_SITE).map(move |s| {
            let n = u32_at(s, 12) as usize;
            // Counts add up (checked by `parse`).
            let hs = handlers.get(next * PAIR..(next + n) * PAIR).unwrap_or_default();
            next += n;
            ExnSite {
                ret: u32_at(s, 0),
                frame_offset: u32_at(s, 4),
                vmctx_offset: u32_at(s, 8),
                handlers: hs
                    .chunks_exact(PAIR)
                    .map(|h| ExnHandler { tag: u32_at(h, 0), offset: u32_at(h, 4) })
                    .collect(),
            }
        })
    }

    /// Calls with GC references live across them, sorted by return
    /// offset, with offsets from the function's start.
    pub fn stack_maps(&self) -> impl ExactSizeIterator<Item = crate::StackMapSite> + 'a {
        let slots = self.stack_map_slots;
        let mut next = 0usize;
        self.stack_map_sites.chunks_exact(STACK_MAP_SITE).map(move |s| {
            let n = u32_at(s, 8) as usize;
            // Counts add up (checked by `parse`).
            let these = slots.get(next * SLOT..(next + n) * SLOT).unwrap_or_default();
            next += n;
            crate::StackMapSite {
                ret: u32_at(s, 0),
                frame_offset: u32_at(s, 4),
                slots: these.chunks_exact(SLOT).map(|o| u32_at(o, 0)).collect(),
            }
        })
    }

    /// The function decoded into its owned form.
    pub fn to_compiled(&self) -> CompiledFunction {
        CompiledFunction {
            code: self.code.to_vec(),
            alignment: self.alignment,
            relocations: self.relocations().collect(),
            traps: self.traps().collect(),
            address_map: self.address_map().collect(),
            exn_sites: self.exn_sites().collect(),
            stack_maps: self.stack_maps().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CompiledFunction {
        CompiledFunction {
            code: (0..40).collect(),
            alignment: 16,
            relocations: vec![
                Relocation { offset: 3, kind: RelocKind::X86CallPCRel4, target: FuncIndex::from_u32(7), addend: -4 },
                Relocation { offset: 36, kind: RelocKind::Arm64Call, target: FuncIndex::from_u32(1), addend: 1 << 40 },
            ],
            traps: vec![(0, TrapCode::StackOverflow), (39, TrapCode::AtomicWaitNonSharedMemory)],
            address_map: vec![(0, 2), (5, 9), (5, 10), (20, 4)],
            exn_sites: vec![
                ExnSite {
                    ret: 8,
                    frame_offset: 32,
                    vmctx_offset: 8,
                    handlers: vec![ExnHandler { tag: 4, offset: 30 }],
                },
                ExnSite {
                    ret: 12,
                    frame_offset: 32,
                    vmctx_offset: 16,
                    handlers: vec![
                        ExnHandler { tag: 7, offset: 31 },
                        ExnHandler { tag: ExnHandler::CATCH_ALL, offset: 33 },
                    ],
                },
            ],
            stack_maps: vec![
                crate::StackMapSite { ret: 8, frame_offset: 32, slots: vec![0, 24] },
                crate::StackMapSite { ret: 20, frame_offset: 48, slots: vec![16] },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let f = sample();
        let bytes = f.encode();
        assert_eq!(bytes.len(), f.encoded_len());
        let view = FunctionCode::parse(&bytes).expect("parses");
        let back = view.to_compiled();
        assert_eq!((back.code, back.alignment), (f.code, f.alignment));
        assert_eq!(back.relocations, f.relocations);
        assert_eq!(back.traps, f.traps);
        assert_eq!(back.address_map, f.address_map);
        assert_eq!(back.exn_sites, f.exn_sites);
        assert_eq!(back.stack_maps, f.stack_maps);
        let empty = CompiledFunction { alignment: 1, ..CompiledFunction::default() }.encode();
        assert!(FunctionCode::parse(&empty).is_some_and(|f| f.code().is_empty()));
    }

    #[test]
    fn inconsistent_encodings_are_refused() {
        let good = sample().encode();
        for len in 0..good.len() {
            assert!(FunctionCode::parse(&good[..len]).is_none(), "truncated to {len}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(FunctionCode::parse(&longer).is_none(), "trailing byte");
        let with = |change: &dyn Fn(&mut CompiledFunction)| {
            let mut f = sample();
            change(&mut f);
            FunctionCode::parse(&f.encode()).is_some()
        };
        assert!(!with(&|f| f.relocations[0].offset = 37), "relocation past the code");
        assert!(!with(&|f| f.relocations[0].offset = u32::MAX - 1), "relocation offset overflowing");
        assert!(!with(&|f| f.traps[1].0 = 40), "trap past the code");
        assert!(!with(&|f| f.address_map.swap(0, 3)), "unsorted address map");
        assert!(!with(&|f| f.alignment = 24), "alignment not a power of two");
        assert!(!with(&|f| f.alignment = 8192), "alignment too large");
        assert!(!with(&|f| f.exn_sites.swap(0, 1)), "unsorted exception sites");
        assert!(!with(&|f| f.exn_sites[1].ret = 41), "return address past the code");
        assert!(!with(&|f| f.exn_sites[0].handlers[0].offset = 40), "handler past the code");
        assert!(!with(&|f| f.stack_maps.swap(0, 1)), "unsorted stack map sites");
        assert!(!with(&|f| f.stack_maps[1].ret = 41), "stack map past the code");
        // Unknown relocation kinds and trap codes.
        let kind_at = HEADER + 16;
        let mut bad = good.clone();
        bad[kind_at] = 2;
        assert!(FunctionCode::parse(&bad).is_none());
        let trap_code_at = HEADER + 2 * RELOCATION + 4;
        let mut bad = good.clone();
        bad[trap_code_at] = TrapCode::ALL.len() as u8;
        assert!(FunctionCode::parse(&bad).is_none());
        // Counts so large their sizes overflow.
        let mut bad = good;
        bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(FunctionCode::parse(&bad).is_none());
    }
}
