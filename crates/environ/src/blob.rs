//! `Blob`: shared, immutable bytes, either owned or a window into a larger
//! buffer such as a mapped artifact file. Large artifact tables (trap
//! tables, address maps, data segments) are blobs, so loading an artifact
//! refers to them in place instead of copying them.
//!
//! Deserializing a blob from a buffer registered with [`with_source`]
//! borrows from that buffer (zero copy); from anything else it copies.

use serde::de::{Error, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

/// Something that owns bytes blobs can point into.
pub trait ByteSource: Send + Sync {
    /// The bytes.
    fn bytes(&self) -> &[u8];
}

impl ByteSource for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// Shared immutable bytes (see the module docs).
#[derive(Clone)]
pub struct Blob {
    src: Arc<dyn ByteSource>,
    start: usize,
    len: usize,
}

impl Default for Blob {
    fn default() -> Self {
        Blob::from_vec(Vec::new())
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.len)
    }
}

impl PartialEq for Blob {
    fn eq(&self, other: &Blob) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Blob {
    /// Owns `v`.
    pub fn from_vec(v: Vec<u8>) -> Blob {
        let len = v.len();
        Blob { src: Arc::new(v), start: 0, len }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.src.bytes()[self.start..self.start + self.len]
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Little-endian `u32` number `i`.
    pub fn u32_at(&self, i: usize) -> u32 {
        let s = &self.as_slice()[i * 4..i * 4 + 4];
        u32::from_le_bytes([s[0], s[1], s[2], s[3]])
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.as_slice())
    }
}

thread_local! {
    static SOURCE: RefCell<Option<Arc<dyn ByteSource>>> = const { RefCell::new(None) };
}

/// Runs `f` (which deserializes from `src`'s bytes) so that blobs borrow
/// from `src` instead of copying.
pub fn with_source<R>(src: Arc<dyn ByteSource>, f: impl FnOnce() -> R) -> R {
    let prev = SOURCE.with(|s| s.replace(Some(src)));
    let r = f();
    SOURCE.with(|s| *s.borrow_mut() = prev);
    r
}

struct BlobVisitor;

impl<'de> Visitor<'de> for BlobVisitor {
    type Value = Blob;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }
    fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Blob, E> {
        Ok(Blob::from_vec(v.to_vec()))
    }
    fn visit_borrowed_bytes<E: Error>(self, v: &'de [u8]) -> Result<Blob, E> {
        let in_source = SOURCE.with(|s| {
            let s = s.borrow();
            let src = s.as_ref()?;
            let base = src.bytes().as_ptr() as usize;
            let at = v.as_ptr() as usize;
            (at >= base && at + v.len() <= base + src.bytes().len()).then(|| Blob {
                src: src.clone(),
                start: at - base,
                len: v.len(),
            })
        });
        Ok(in_source.unwrap_or_else(|| Blob::from_vec(v.to_vec())))
    }
    fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Blob, E> {
        Ok(Blob::from_vec(v))
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Blob, D::Error> {
        d.deserialize_bytes(BlobVisitor)
    }
}

/// A sorted table of `(u32 key, u32 value)` pairs (trap tables, address
/// maps), stored compactly in a blob and searched in place.
///
/// A large module's tables hold millions of pairs, and every warm start
/// checksums the artifact they sit in, so their size is load time. Keys
/// are code offsets a few bytes apart and values change little from one
/// pair to the next, so the pairs are delta-encoded: they are grouped in
/// blocks of 32 pairs (`BLOCK`); a fixed-width index gives each block's first
/// pair and where the rest of it starts in a stream of LEB128 varints
/// (key delta, then zigzag value delta, per pair). About 3 bytes a pair
/// instead of 8. A lookup binary-searches the index, then decodes at most
/// one block.
///
/// ```text
/// u32 pairs, u32 blocks, blocks x (u32 first key, u32 first value, u32 stream offset), stream
/// ```
///
/// All reads are bounds-checked: a malformed table (artifacts are
/// checksummed, so only a bug could make one) makes lookups miss, never
/// misbehave, and loading checks only the fixed-size parts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct U32PairTable(Blob);

/// Pairs per block of a [`U32PairTable`].
const BLOCK: usize = 32;
const HEADER: usize = 8;
const INDEX_ENTRY: usize = 12;

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u32::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let s = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl U32PairTable {
    /// Encodes `pairs` (which must be sorted by key).
    pub fn new(pairs: &[(u32, u32)]) -> Self {
        let blocks = pairs.len().div_ceil(BLOCK);
        let mut index = Vec::with_capacity(HEADER + blocks * INDEX_ENTRY);
        index.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
        index.extend_from_slice(&(blocks as u32).to_le_bytes());
        let mut stream = Vec::with_capacity(pairs.len() * 3);
        for block in pairs.chunks(BLOCK) {
            let (k0, v0) = block[0];
            index.extend_from_slice(&k0.to_le_bytes());
            index.extend_from_slice(&v0.to_le_bytes());
            index.extend_from_slice(&(stream.len() as u32).to_le_bytes());
            let mut prev = (k0, v0);
            for &(k, v) in &block[1..] {
                put_varint(&mut stream, k.wrapping_sub(prev.0));
                let d = v.wrapping_sub(prev.1) as i32;
                put_varint(&mut stream, ((d << 1) ^ (d >> 31)) as u32);
                prev = (k, v);
            }
        }
        index.extend_from_slice(&stream);
        U32PairTable(Blob::from_vec(index))
    }

    fn blocks(&self) -> usize {
        read_u32(self.0.as_slice(), 4).unwrap_or(0) as usize
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        read_u32(self.0.as_slice(), 0).unwrap_or(0) as usize
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pairs of the last block whose first key is `<= key`, up to and
    /// including the last pair whose key is `<= key`.
    fn floor_pair(&self, key: u32) -> Option<(u32, u32)> {
        let bytes = self.0.as_slice();
        let blocks = self.blocks();
        let first_key = |b: usize| read_u32(bytes, HEADER + b * INDEX_ENTRY);
        // The number of blocks whose first key is <= key.
        let (mut lo, mut hi) = (0, blocks);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if first_key(mid)? <= key { lo = mid + 1 } else { hi = mid }
        }
        let b = lo.checked_sub(1)?;
        let entry = HEADER + b * INDEX_ENTRY;
        let mut pair = (read_u32(bytes, entry)?, read_u32(bytes, entry + 4)?);
        let stream = bytes.get(HEADER + blocks * INDEX_ENTRY..)?;
        let mut pos = read_u32(bytes, entry + 8)? as usize;
        let in_block = self.len().checked_sub(b * BLOCK)?.min(BLOCK);
        for _ in 1..in_block {
            let k = pair.0.wrapping_add(get_varint(stream, &mut pos)?);
            if k > key {
                break;
            }
            let z = get_varint(stream, &mut pos)?;
            let d = ((z >> 1) as i32) ^ -((z & 1) as i32);
            pair = (k, pair.1.wrapping_add(d as u32));
        }
        Some(pair)
    }

    /// The value of the last pair whose key is `<= key`.
    pub fn floor(&self, key: u32) -> Option<u32> {
        self.floor_pair(key).map(|(_, v)| v)
    }

    /// The value of the pair whose key is exactly `key`.
    pub fn exact(&self, key: u32) -> Option<u32> {
        self.floor_pair(key).filter(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Whether the header and the block index fit the bytes and agree on
    /// the number of blocks. (The stream is not decoded on load, see the
    /// type's docs.)
    pub fn is_well_formed(&self) -> bool {
        let len = self.0.len();
        if len == 0 {
            return true;
        }
        let (count, blocks) = (self.len(), self.blocks());
        len >= HEADER
            && count.div_ceil(BLOCK) == blocks
            && blocks.checked_mul(INDEX_ENTRY).is_some_and(|i| HEADER + i <= len)
    }
}

#[cfg(test)]
mod tests {
    use super::U32PairTable;

    /// Lookups in the compact encoding agree with a plain sorted list, at,
    /// between and around every key, across block boundaries, with values
    /// going up and down by small and large steps.
    #[test]
    fn compact_table_matches_plain_lookups() {
        let mut pairs = Vec::new();
        let (mut k, mut v) = (3u32, 1000u32);
        for i in 0..1000u32 {
            pairs.push((k, v));
            k += 1 + (i * 7919) % 40 + if i % 97 == 0 { 100_000 } else { 0 };
            v = match i % 5 {
                0 => v + 3,
                1 => v - 2,
                2 => v.wrapping_add(1 << 30),
                3 => u32::MAX - i,
                _ => i,
            };
        }
        let table = U32PairTable::new(&pairs);
        assert!(table.is_well_formed());
        assert_eq!(table.len(), pairs.len());
        assert!(table.0.len() < pairs.len() * 8, "{} bytes", table.0.len());
        // Code offsets a few bytes apart with nearby wasm offsets, as in
        // an address map: about 2.4 bytes a pair.
        let typical: Vec<(u32, u32)> = (0..10_000u32).map(|i| (i * 23, 5000 + i * 3 - (i % 4))).collect();
        assert!(U32PairTable::new(&typical).0.len() < 10_000 * 5 / 2, "{} bytes", U32PairTable::new(&typical).0.len());
        let floor = |key: u32| pairs.iter().rev().find(|(k, _)| *k <= key).map(|(_, v)| *v);
        let exact = |key: u32| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        for &(key, _) in &pairs {
            for q in [key.saturating_sub(1), key, key + 1] {
                assert_eq!(table.floor(q), floor(q), "floor {q}");
                assert_eq!(table.exact(q), exact(q), "exact {q}");
            }
        }
        assert_eq!(table.floor(0), None);
        assert_eq!(table.floor(u32::MAX), floor(u32::MAX));
        let empty = U32PairTable::new(&[]);
        assert!(empty.is_well_formed() && empty.is_empty());
        assert_eq!((empty.floor(5), empty.exact(5)), (None, None));
    }

    /// Damaged bytes make lookups miss or answer wrongly, never panic.
    #[test]
    fn damaged_tables_never_panic() {
        let pairs: Vec<(u32, u32)> = (0..200).map(|i| (i * 5, i)).collect();
        let good = U32PairTable::new(&pairs).0.as_slice().to_vec();
        for cut in 0..good.len() {
            let t = U32PairTable(super::Blob::from_vec(good[..cut].to_vec()));
            let _ = (t.is_well_formed(), t.floor(500), t.exact(35), t.len());
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            let t = U32PairTable(super::Blob::from_vec(bad));
            let _ = (t.is_well_formed(), t.floor(500), t.exact(35), t.floor(u32::MAX));
        }
    }
}
