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
            (at >= base && at + v.len() <= base + src.bytes().len())
                .then(|| Blob { src: src.clone(), start: at - base, len: v.len() })
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

/// A sorted table of `(u32 key, u32 value)` pairs stored as little-endian
/// bytes in a blob.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct U32PairTable(Blob);

impl U32PairTable {
    /// Encodes `pairs` (which must be sorted by key).
    pub fn new(pairs: &[(u32, u32)]) -> Self {
        U32PairTable(Blob::from_vec(pairs.iter().flat_map(|(a, b)| a.to_le_bytes().into_iter().chain(b.to_le_bytes())).collect()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len() / 8
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pair `i`.
    pub fn get(&self, i: usize) -> (u32, u32) {
        (self.0.u32_at(2 * i), self.0.u32_at(2 * i + 1))
    }

    /// The value of the last pair whose key is `<= key`.
    pub fn floor(&self, key: u32) -> Option<u32> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.get(mid).0 <= key { lo = mid + 1 } else { hi = mid }
        }
        lo.checked_sub(1).map(|i| self.get(i).1)
    }

    /// The value of the pair whose key is exactly `key`.
    pub fn exact(&self, key: u32) -> Option<u32> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (k, v) = self.get(mid);
            if k == key {
                return Some(v);
            }
            if k < key { lo = mid + 1 } else { hi = mid }
        }
        None
    }

    /// Whether the byte length is a whole number of pairs. (Sortedness is
    /// not rechecked on load: artifacts are checksummed, and lookups in an
    /// unsorted table would only miss, never misbehave.)
    pub fn is_well_formed(&self) -> bool {
        self.0.len().is_multiple_of(8)
    }
}
