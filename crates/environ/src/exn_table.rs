//! Exception handlers of call sites: which calls sit inside a `try_table`
//! (or a legacy `try`), and where the code that catches an exception
//! thrown through them starts.
//!
//! Compiled code records one [`ExnSite`] per call made with handlers (a
//! Cranelift `try_call`): the call's return address, where the caller's
//! stack pointer is relative to its frame pointer at the call, where the
//! caller spilled its VMContext, and the handlers in the order they are
//! tried. The runtime's throw walks the frame-pointer chain and looks each
//! return address up in its module's [`ExnTable`].
//!
//! Table layout (all little-endian `u32`), read in place:
//!
//! ```text
//! site count S, handler count H,
//! S x return offset (sorted, strictly increasing),
//! S x (frame offset, VMContext spill offset, first handler),
//! H x (tag, handler offset)
//! ```
//!
//! The handlers of site `i` are `first[i]..first[i + 1]` (`..H` for the
//! last). A handler's tag is [`ExnHandler::CATCH_ALL`] or the encoded
//! location of the tag in the catching frame's VMContext
//! ([`ExnHandler::tag_location`]).

use crate::blob::Blob;
use serde::{Deserialize, Serialize};

/// One handler of a call site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExnHandler {
    /// [`Self::CATCH_ALL`], or where the tag is ([`Self::tag_location`]).
    pub tag: u32,
    /// Offset of the handler's code (from the function's start while the
    /// function is compiled alone, from the text's start once linked).
    pub offset: u32,
}

impl ExnHandler {
    /// The tag of a handler that catches every exception.
    pub const CATCH_ALL: u32 = u32::MAX;

    /// Encodes the location of a tag in a VMContext: the offset of its
    /// definition (`imported == false`) or of the pointer to its
    /// definition (`imported == true`).
    pub fn encode_tag(vmctx_offset: u32, imported: bool) -> u32 {
        (vmctx_offset << 1) | u32::from(imported)
    }

    /// The tag location of a tagged handler: `(VMContext offset,
    /// imported)`; `None` for a catch-all.
    pub fn tag_location(&self) -> Option<(u32, bool)> {
        (self.tag != Self::CATCH_ALL).then_some((self.tag >> 1, self.tag & 1 == 1))
    }
}

/// A call with handlers, in one function.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExnSite {
    /// Offset of the call's return address.
    pub ret: u32,
    /// The caller's stack pointer at the call is its frame pointer minus this.
    pub frame_offset: u32,
    /// The caller's VMContext is spilled at this offset from that stack pointer.
    pub vmctx_offset: u32,
    /// The handlers, in the order they are tried.
    pub handlers: Vec<ExnHandler>,
}

/// The exception handlers of a linked text (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExnTable(Blob);

fn read_u32(bytes: &[u8], word: usize) -> Option<u32> {
    let at = word.checked_mul(4)?;
    let s = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// A call site found in an [`ExnTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExnSiteRef<'a> {
    /// See [`ExnSite::frame_offset`].
    pub frame_offset: u32,
    /// See [`ExnSite::vmctx_offset`].
    pub vmctx_offset: u32,
    handlers: &'a [u8],
}

impl ExnSiteRef<'_> {
    /// The handlers, in the order they are tried, with text offsets.
    pub fn handlers(&self) -> impl Iterator<Item = ExnHandler> + '_ {
        self.handlers.chunks_exact(8).map(|h| ExnHandler {
            tag: u32::from_le_bytes([h[0], h[1], h[2], h[3]]),
            offset: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
        })
    }
}

impl ExnTable {
    /// Builds the table from sites sorted by return offset (offsets of
    /// the text).
    pub fn new(sites: &[ExnSite]) -> ExnTable {
        let handlers: usize = sites.iter().map(|s| s.handlers.len()).sum();
        let mut out = Vec::with_capacity(8 + sites.len() * 16 + handlers * 8);
        let put = |v: u32, out: &mut Vec<u8>| out.extend_from_slice(&v.to_le_bytes());
        put(sites.len() as u32, &mut out);
        put(handlers as u32, &mut out);
        for s in sites {
            put(s.ret, &mut out);
        }
        let mut first = 0u32;
        for s in sites {
            put(s.frame_offset, &mut out);
            put(s.vmctx_offset, &mut out);
            put(first, &mut out);
            first += s.handlers.len() as u32;
        }
        for s in sites {
            for h in &s.handlers {
                put(h.tag, &mut out);
                put(h.offset, &mut out);
            }
        }
        ExnTable(Blob::from_vec(out))
    }

    fn counts(&self) -> (usize, usize) {
        let b = self.0.as_slice();
        (read_u32(b, 0).unwrap_or(0) as usize, read_u32(b, 1).unwrap_or(0) as usize)
    }

    /// Number of call sites.
    pub fn len(&self) -> usize {
        self.counts().0
    }

    /// Whether no call has handlers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The call site whose return address is at text offset `ret`.
    pub fn lookup(&self, ret: u32) -> Option<ExnSiteRef<'_>> {
        let b = self.0.as_slice();
        let (sites, handlers) = self.counts();
        let (mut lo, mut hi) = (0, sites);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if read_u32(b, 2 + mid)? < ret { lo = mid + 1 } else { hi = mid }
        }
        if lo >= sites || read_u32(b, 2 + lo)? != ret {
            return None;
        }
        let rec = 2 + sites + lo * 3;
        let first = read_u32(b, rec + 2)? as usize;
        let end = if lo + 1 < sites { read_u32(b, rec + 5)? as usize } else { handlers };
        let base = (2 + sites * 4).checked_mul(4)?;
        let hs = b.get(base.checked_add(first.checked_mul(8)?)?..base.checked_add(end.checked_mul(8)?)?)?;
        Some(ExnSiteRef { frame_offset: read_u32(b, rec)?, vmctx_offset: read_u32(b, rec + 1)?, handlers: hs })
    }

    /// Whether the table is whole and consistent, with every handler
    /// inside a text of `text_len` bytes: return offsets increasing,
    /// handler ranges in order and inside the handler list.
    pub fn is_well_formed(&self, text_len: usize) -> bool {
        let b = self.0.as_slice();
        if b.is_empty() {
            return true;
        }
        let (sites, handlers) = self.counts();
        let words = sites.checked_mul(4).and_then(|w| w.checked_add(2)).and_then(|w| w.checked_add(handlers * 2));
        if words.and_then(|w| w.checked_mul(4)) != Some(b.len()) {
            return false;
        }
        let word = |i: usize| read_u32(b, i).unwrap_or(u32::MAX);
        let rets_ok = (1..sites).all(|i| word(2 + i - 1) < word(2 + i));
        let firsts_ok = (0..sites)
            .map(|i| word(2 + sites + i * 3 + 2))
            .try_fold(0u32, |last, f| (f >= last && f as usize <= handlers).then_some(f))
            .is_some();
        let base = 2 + sites * 4;
        let handlers_ok = (0..handlers).all(|i| (word(base + i * 2 + 1) as usize) < text_len);
        rets_ok && firsts_ok && handlers_ok && (sites == 0 || word(2 + sites + 2) == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(ret: u32, handlers: &[(u32, u32)]) -> ExnSite {
        ExnSite {
            ret,
            frame_offset: ret + 1,
            vmctx_offset: ret + 2,
            handlers: handlers.iter().map(|&(tag, offset)| ExnHandler { tag, offset }).collect(),
        }
    }

    #[test]
    fn lookups_find_exactly_the_recorded_sites() {
        let sites = vec![
            site(10, &[(ExnHandler::encode_tag(64, false), 50)]),
            site(20, &[]),
            site(30, &[(ExnHandler::encode_tag(72, true), 60), (ExnHandler::CATCH_ALL, 70)]),
        ];
        let t = ExnTable::new(&sites);
        assert!(t.is_well_formed(100));
        assert!(!t.is_well_formed(70), "a handler past the text");
        for s in &sites {
            let found = t.lookup(s.ret).expect("recorded");
            assert_eq!((found.frame_offset, found.vmctx_offset), (s.frame_offset, s.vmctx_offset));
            assert_eq!(found.handlers().collect::<Vec<_>>(), s.handlers);
        }
        for missing in [0, 9, 11, 29, 31, u32::MAX] {
            assert!(t.lookup(missing).is_none(), "{missing}");
        }
        let h = t.lookup(30).expect("site").handlers().collect::<Vec<_>>();
        assert_eq!(h[0].tag_location(), Some((72, true)));
        assert_eq!(h[1].tag_location(), None);
        let empty = ExnTable::new(&[]);
        assert!(empty.is_well_formed(0) && empty.is_empty() && empty.lookup(0).is_none());
    }

    #[test]
    fn damaged_tables_are_refused_or_miss() {
        let good = ExnTable::new(&[site(10, &[(1, 5)]), site(20, &[(ExnHandler::CATCH_ALL, 6)])]).0.as_slice().to_vec();
        for cut in 0..good.len() {
            let t = ExnTable(Blob::from_vec(good[..cut].to_vec()));
            assert!(cut == 0 || !t.is_well_formed(100), "cut at {cut}");
            let _ = (t.lookup(10), t.lookup(20));
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            let t = ExnTable(Blob::from_vec(bad));
            if let Some(s) = t.lookup(10) {
                let _ = s.handlers().count();
            }
            let _ = t.is_well_formed(100);
        }
    }
}
