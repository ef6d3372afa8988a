//! Where GC references live in wasm frames at calls (the compile side of
//! precise GC roots): for each call during which a GC reference is live,
//! the offsets from the caller's stack pointer of the stack slots holding
//! them. Cranelift records them (its user stack maps) for the values the
//! translator declares as GC references; the collector will walk wasm
//! frames by their return addresses and find each frame's references here.

use serde::{Deserialize, Serialize};

/// The GC references of one frame at one call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackMapSite {
    /// Offset of the call's return address (in a function, then in the
    /// linked text).
    pub ret: u32,
    /// The caller's stack pointer at the call is its frame pointer minus
    /// this.
    pub frame_offset: u32,
    /// Offsets from that stack pointer of the 8-byte slots that hold GC
    /// references, increasing.
    pub slots: Vec<u32>,
}

/// The stack maps of a linked text, sorted by return address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackMapTable {
    /// Return addresses, increasing.
    rets: Vec<u32>,
    /// Per site: the frame offset and the index of its first slot.
    records: Vec<(u32, u32)>,
    /// Every site's slots, in site order.
    slots: Vec<u32>,
}

impl StackMapTable {
    /// Builds the table from sites sorted by return address.
    pub fn new(sites: &[StackMapSite]) -> StackMapTable {
        let mut t = StackMapTable::default();
        for s in sites {
            t.rets.push(s.ret);
            t.records.push((s.frame_offset, t.slots.len() as u32));
            t.slots.extend_from_slice(&s.slots);
        }
        t
    }

    /// Number of sites.
    pub fn len(&self) -> usize {
        self.rets.len()
    }

    /// Whether no call has GC references live across it.
    pub fn is_empty(&self) -> bool {
        self.rets.is_empty()
    }

    /// The frame offset and the slots of the call whose return address is
    /// at text offset `ret`, if one has GC references live across it.
    pub fn lookup(&self, ret: u32) -> Option<(u32, &[u32])> {
        let i = self.rets.binary_search(&ret).ok()?;
        let (frame_offset, first) = *self.records.get(i)?;
        let end = self.records.get(i + 1).map_or(self.slots.len(), |r| r.1 as usize);
        Some((frame_offset, self.slots.get(first as usize..end)?))
    }

    /// Whether the table is consistent, with every return address inside a
    /// text of `text_len` bytes: return addresses increasing, one record
    /// per site, slot ranges in order and inside the slot list, slots
    /// 8-aligned and increasing within a site.
    pub fn is_well_formed(&self, text_len: usize) -> bool {
        let n = self.rets.len();
        let rets_ok =
            self.rets.windows(2).all(|w| w[0] < w[1]) && self.rets.last().is_none_or(|r| (*r as usize) <= text_len);
        let firsts_ok = self.records.len() == n
            && self.records.first().is_none_or(|r| r.1 == 0)
            && self.records.windows(2).all(|w| w[0].1 <= w[1].1)
            && self.records.last().is_none_or(|r| r.1 as usize <= self.slots.len());
        rets_ok
            && firsts_ok
            && (0..n).all(|i| {
                self.lookup(self.rets[i])
                    .is_some_and(|(_, s)| s.iter().all(|o| o % 8 == 0) && s.windows(2).all(|w| w[0] < w[1]))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_exactly_the_recorded_sites() {
        let sites = vec![
            StackMapSite { ret: 10, frame_offset: 48, slots: vec![0, 16] },
            StackMapSite { ret: 20, frame_offset: 32, slots: vec![] },
            StackMapSite { ret: 30, frame_offset: 64, slots: vec![8] },
        ];
        let t = StackMapTable::new(&sites);
        assert!(t.is_well_formed(30) && !t.is_well_formed(29));
        for s in &sites {
            assert_eq!(t.lookup(s.ret), Some((s.frame_offset, s.slots.as_slice())));
        }
        for missing in [0, 11, 29, 31] {
            assert_eq!(t.lookup(missing), None);
        }
        let mut bad = t.clone();
        bad.records[1].1 = 9;
        assert!(!bad.is_well_formed(100));
        let mut unaligned = t.clone();
        unaligned.slots[0] = 4;
        assert!(!unaligned.is_well_formed(100));
        assert!(StackMapTable::default().is_well_formed(0));
    }
}
