//! The format of function cache entries: a *pack* of compiled functions,
//! each filed under its function key, sealed with one tag.
//!
//! A cache keeps the packs of each module environment (see
//! [`FunctionKeys::pack_keys`](crate::FunctionKeys::pack_keys)): checking,
//! finding and reading the unchanged functions of an edited module then
//! costs one lookup and one pass of the MAC over each pack's bytes, and a
//! key comparison per function, instead of a file and a MAC per function.
//! Beside each function's code the pack keeps its *source*, what it was
//! compiled from besides the environment (opaque bytes here: see
//! [`FunctionKeys::source`](crate::FunctionKeys::source)).
//!
//! Functions are stored in the order they were added, which is the order
//! of the module that wrote the pack, so the module's next version finds
//! its function `i` at entry `i` (a lookup with that *hint* compares one
//! key and reads the pack front to back); any other key is found by a
//! binary search of a permutation of the entries sorted by key.
//!
//! ```text
//! offset 0   magic "KFNP"
//!        4   tag (32 bytes) of every byte from offset 36 on (see [`Sealer`])
//!       36   format version (u32 LE)
//!       40   generation (u64 LE): how many times the pack was rewritten
//!       48   function count n (u32 LE)
//!       52   entries: n of them in the order added, each
//!              key (32 bytes), data offset (u32 LE), source length (u32 LE),
//!              code length (u32 LE), compile time in ns (u64 LE),
//!              generation last used (u64 LE)
//!            by key: n entry numbers (u32 LE), ordered by the entries' keys
//!            data: for each function, its source, then its code encoded as
//!              by `CompiledFunction::encode`
//! ```

use crate::cache_key::CacheKey;
use crate::function_code::FunctionCode;
use crate::serialize::{Sealer, verify};
use std::ops::Range;
use std::time::Duration;

/// First bytes of every function pack.
pub const FUNCTION_PACK_MAGIC: [u8; 4] = *b"KFNP";
/// Version of the layout above.
const FORMAT: u32 = 1;
/// Where the tag sits; it covers everything after it.
pub(crate) const PACK_TAG: Range<usize> = 4..36;
const FIXED: usize = 52;
const ENTRY: usize = 60;

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

/// A function pack whose tag verified, read in place.
#[derive(Clone, Copy, Debug)]
pub struct FunctionPack<'a> {
    generation: u64,
    index: &'a [u8],
    by_key: &'a [u8],
    data: &'a [u8],
}

/// One function of a pack.
#[derive(Clone, Copy, Debug)]
pub struct PackedFunction<'a> {
    /// Its position in the pack's index.
    pub index: usize,
    /// Its function key.
    pub key: CacheKey,
    /// How long compiling it took.
    pub compile_time: Duration,
    /// The pack generation that last used it.
    pub generation: u64,
    /// Its source, as stored.
    pub source: &'a [u8],
    /// The function, encoded (see [`FunctionCode`]).
    pub bytes: &'a [u8],
}

impl<'a> PackedFunction<'a> {
    /// The function, checked (see [`FunctionCode::parse`]).
    pub fn code(&self) -> Option<FunctionCode<'a>> {
        FunctionCode::parse(self.bytes)
    }
}

impl<'a> FunctionPack<'a> {
    /// Reads a pack made by [`FunctionPackBuilder::finish`] with the same
    /// seal. `None` if it is not a pack of this format, is damaged, or was
    /// sealed otherwise (the tag is checked before anything else is read).
    pub fn parse(bytes: &'a [u8], seal: &dyn Sealer) -> Option<FunctionPack<'a>> {
        if bytes.len() < FIXED || bytes[..4] != FUNCTION_PACK_MAGIC {
            return None;
        }
        if !verify(seal, &bytes[PACK_TAG], &[&bytes[PACK_TAG.end..]]) {
            return None;
        }
        if u32_at(bytes, 36) != FORMAT {
            return None;
        }
        let count = u32_at(bytes, 48) as usize;
        let index_end = count.checked_mul(ENTRY)?.checked_add(FIXED)?;
        let by_key_end = count.checked_mul(4)?.checked_add(index_end)?;
        Some(FunctionPack {
            generation: u64_at(bytes, 40),
            index: bytes.get(FIXED..index_end)?,
            by_key: bytes.get(index_end..by_key_end)?,
            data: bytes.get(by_key_end..)?,
        })
    }

    /// How many times the pack had been rewritten when it was made.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of functions.
    pub fn len(&self) -> usize {
        self.index.len() / ENTRY
    }

    /// Bytes of function data (sources and code).
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Whether the pack holds no function.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn key_at(&self, i: usize) -> &'a [u8] {
        &self.index[i * ENTRY..i * ENTRY + 32]
    }

    /// Entry `i` (in the order added), if there is one and its data lies
    /// inside the pack.
    pub fn functions_at(&self, i: usize) -> Option<PackedFunction<'a>> {
        self.entry(i)
    }

    /// Entry `i` of the index; `None` if its data lies outside the pack.
    fn entry(&self, i: usize) -> Option<PackedFunction<'a>> {
        let e = self.index.get(i * ENTRY..(i + 1) * ENTRY)?;
        let start = u32_at(e, 32) as usize;
        let middle = start.checked_add(u32_at(e, 36) as usize)?;
        let end = middle.checked_add(u32_at(e, 40) as usize)?;
        Some(PackedFunction {
            index: i,
            key: e[..32].try_into().ok()?,
            compile_time: Duration::from_nanos(u64_at(e, 44)),
            generation: u64_at(e, 52),
            source: self.data.get(start..middle)?,
            bytes: self.data.get(middle..end)?,
        })
    }

    /// The function filed under `key`, if the pack has it: entry `hint`
    /// if that is the one (see the module docs), else a binary search of
    /// the entries by key (comparing their first 8 bytes first).
    pub fn get(&self, key: &CacheKey, hint: usize) -> Option<PackedFunction<'a>> {
        if hint < self.len() && self.key_at(hint) == key {
            return self.entry(hint);
        }
        let prefix = |k: &[u8]| u64::from_be_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]]);
        let wanted = prefix(key);
        // An entry number out of range (only in a pack sealed by someone
        // else than a Kiln) compares as past every key.
        let key_of = |m: usize| {
            Some(u32_at(self.by_key, m * 4) as usize).filter(|&i| i < self.len()).map(|i| (i, self.key_at(i)))
        };
        let m = partition_point(self.len(), |m| {
            key_of(m).is_some_and(|(_, k)| match prefix(k).cmp(&wanted) {
                std::cmp::Ordering::Equal => k < &key[..],
                o => o.is_lt(),
            })
        });
        match key_of(m) {
            Some((i, k)) if k == key => self.entry(i),
            _ => None,
        }
    }

    /// Every function, in the order added (entries whose data lies outside
    /// the pack are left out).
    pub fn functions(&self) -> impl Iterator<Item = PackedFunction<'a>> + '_ {
        (0..self.len()).filter_map(|i| self.entry(i))
    }
}

/// The first `i` in `0..n` for which `before(i)` is false (`before` must
/// be true then false along the range).
fn partition_point(n: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// One function of a pack being built: its parts are copied once, when
/// the pack is finished.
#[derive(Debug)]
struct Pending<'a> {
    key: CacheKey,
    nanos: u64,
    generation: u64,
    source: &'a [u8],
    code: &'a [u8],
}

/// Collects functions into a new pack, borrowing their bytes until
/// [`FunctionPackBuilder::finish`] copies them into it.
#[derive(Debug, Default)]
pub struct FunctionPackBuilder<'a> {
    entries: Vec<Pending<'a>>,
    data_len: usize,
}

impl<'a> FunctionPackBuilder<'a> {
    /// An empty builder.
    pub fn new() -> FunctionPackBuilder<'a> {
        FunctionPackBuilder::default()
    }

    /// Adds a function under `key`: its `source` (stored as it is)
    /// and `code` (encoded by `CompiledFunction::encode`); it took
    /// `compile_time` to compile and was last used by pack generation
    /// `generation`. A key added twice keeps its first function (at its
    /// place).
    pub fn push(&mut self, key: &CacheKey, compile_time: Duration, generation: u64, source: &'a [u8], code: &'a [u8]) {
        let nanos = compile_time.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.data_len += source.len() + code.len();
        self.entries.push(Pending { key: *key, nanos, generation, source, code });
    }

    /// Bytes of function data added so far.
    pub fn data_len(&self) -> usize {
        self.data_len
    }

    /// The pack, generation `generation`, sealed with `seal`; `None` if
    /// its data would pass 4 GiB (offsets are 32-bit).
    pub fn finish(mut self, generation: u64, seal: &dyn Sealer) -> Option<Vec<u8>> {
        let by_key_of = |entries: &[Pending<'_>]| {
            let mut order: Vec<u32> = (0..entries.len() as u32).collect();
            // Of equal keys, the first added comes first.
            order.sort_unstable_by(|&a, &b| entries[a as usize].key.cmp(&entries[b as usize].key).then(a.cmp(&b)));
            order
        };
        let mut by_key = by_key_of(&self.entries);
        if by_key.windows(2).any(|w| self.entries[w[0] as usize].key == self.entries[w[1] as usize].key) {
            let mut keep = vec![true; self.entries.len()];
            for w in by_key.windows(2) {
                if self.entries[w[0] as usize].key == self.entries[w[1] as usize].key {
                    keep[w[1] as usize] = false;
                }
            }
            let mut flags = keep.iter();
            self.entries.retain(|_| flags.next().copied().unwrap_or(false));
            by_key = by_key_of(&self.entries);
        }
        let data_len: usize = self.entries.iter().map(|e| e.source.len() + e.code.len()).sum();
        u32::try_from(data_len).ok()?;
        let mut out = Vec::with_capacity(FIXED + self.entries.len() * (ENTRY + 4) + data_len);
        out.extend_from_slice(&FUNCTION_PACK_MAGIC);
        out.extend_from_slice(&[0; 32]);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&generation.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        let mut offset = 0usize;
        for e in &self.entries {
            out.extend_from_slice(&e.key);
            for n in [offset, e.source.len(), e.code.len()] {
                out.extend_from_slice(&(n as u32).to_le_bytes());
            }
            out.extend_from_slice(&e.nanos.to_le_bytes());
            out.extend_from_slice(&e.generation.to_le_bytes());
            offset += e.source.len() + e.code.len();
        }
        for i in by_key {
            out.extend_from_slice(&i.to_le_bytes());
        }
        for e in &self.entries {
            out.extend_from_slice(e.source);
            out.extend_from_slice(e.code);
        }
        let tag = seal.tag(&[&out[PACK_TAG.end..]]);
        out[PACK_TAG].copy_from_slice(&tag);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::CompiledFunction;
    use crate::serialize::{EntryKind, PublicSeal};

    fn function(n: u8) -> Vec<u8> {
        CompiledFunction { code: vec![n; usize::from(n) + 1], alignment: 16, ..CompiledFunction::default() }.encode()
    }

    fn key(n: u8) -> CacheKey {
        [n.wrapping_mul(37); 32]
    }

    fn source(n: u8) -> Vec<u8> {
        vec![n; usize::from(n % 4) * 3]
    }

    fn pack(seal: &PublicSeal) -> Vec<u8> {
        let functions: Vec<(u8, Vec<u8>, Vec<u8>)> =
            [5u8, 1, 9, 3, 7, 5].iter().map(|&n| (n, source(n), function(n))).collect();
        let mut b = FunctionPackBuilder::new();
        for (n, source, code) in &functions {
            b.push(&key(*n), Duration::from_nanos(u64::from(*n) * 1000), u64::from(n % 3), source, code);
        }
        b.finish(42, seal).expect("small")
    }

    #[test]
    fn finds_every_function_and_nothing_else() {
        let seal = PublicSeal::cache_entry(EntryKind::Functions, &[1; 32]);
        let bytes = pack(&seal);
        let p = FunctionPack::parse(&bytes, &seal).expect("verifies");
        assert_eq!((p.generation(), p.len()), (42, 5), "the repeated key is stored once");
        let order = [5u8, 1, 9, 3, 7];
        for n in [1u8, 3, 5, 7, 9] {
            let at = order.iter().position(|&m| m == n).expect("added");
            // Found with the right hint, a wrong one, and one out of range.
            for hint in [at, (at + 1) % 5, 99] {
                assert_eq!(p.get(&key(n), hint).map(|f| f.index), Some(at), "{n} with hint {hint}");
            }
            let f = p.get(&key(n), 0).expect("found");
            assert_eq!((f.compile_time, f.generation), (Duration::from_nanos(u64::from(n) * 1000), u64::from(n % 3)));
            assert_eq!(f.source, &source(n)[..]);
            assert_eq!(f.code().expect("consistent").code(), &vec![n; usize::from(n) + 1][..]);
        }
        for n in [0u8, 2, 4, 6, 8, 10, 255] {
            for hint in 0..6 {
                assert!(p.get(&key(n), hint).is_none());
            }
        }
        let keys: Vec<CacheKey> = p.functions().map(|f| f.key).collect();
        assert_eq!(keys, order.map(key).to_vec(), "the order added, the repeat dropped");
        assert!(p.functions().enumerate().all(|(i, f)| f.index == i));
        let empty = FunctionPackBuilder::new().finish(0, &seal).expect("empty");
        let e = FunctionPack::parse(&empty, &seal).expect("verifies");
        assert!(e.is_empty() && e.get(&key(1), 0).is_none());
    }

    #[test]
    fn damaged_moved_or_foreign_packs_are_refused() {
        let seal = PublicSeal::cache_entry(EntryKind::Functions, &[1; 32]);
        let bytes = pack(&seal);
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x04;
            assert!(FunctionPack::parse(&bad, &seal).is_none(), "flipped byte {at}");
        }
        for len in 0..bytes.len() {
            assert!(FunctionPack::parse(&bytes[..len], &seal).is_none(), "truncated to {len}");
        }
        // Filed under another key, or as another kind of entry.
        assert!(FunctionPack::parse(&bytes, &PublicSeal::cache_entry(EntryKind::Functions, &[2; 32])).is_none());
        assert!(FunctionPack::parse(&bytes, &PublicSeal::cache_entry(EntryKind::Module, &[1; 32])).is_none());
    }

    #[test]
    fn resealed_nonsense_is_read_without_panics() {
        // Someone who can seal (a cache without a key) writes index entries
        // pointing anywhere: lookups find nothing or refuse, never panic.
        let seal = PublicSeal::cache_entry(EntryKind::Functions, &[1; 32]);
        let good = pack(&seal);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut bad = good.clone();
            let at = PACK_TAG.end + (x as usize) % (bad.len() - PACK_TAG.end);
            bad[at] = (x >> 56) as u8;
            crate::serialize::reseal(&mut bad, &seal);
            if let Some(p) = FunctionPack::parse(&bad, &seal) {
                for n in 0..=10u8 {
                    let _ = p.get(&key(n), usize::from(n)).map(|f| f.code());
                }
                for f in p.functions() {
                    let _ = f.code().map(|c| c.relocations().count() + c.traps().count() + c.address_map().count());
                }
            }
        }
    }
}
