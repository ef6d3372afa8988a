//! The MAC that seals cache entries under a cache's secret key, and the
//! module keys of such caches.
//!
//! A tag is keyed BLAKE3 (a pseudorandom function) of the entry's domain
//! label, its binding (the cache key it is stored under), and each part of
//! the entry with its length. Parts of at least [`NH_MIN`] bytes are first
//! compressed with NH (`vm::nh`), an almost-universal hash under a second
//! key that runs at memory speed, to 32 bytes per KiB; BLAKE3 then only
//! sees 1/32 of them. This is the hash-then-PRF construction of UMAC and
//! Adiantum: two different inputs of equal length collide in NH with
//! probability at most 2^-128 (parts of different lengths differ in the
//! length prefix), NH's outputs are never visible, and BLAKE3 turns the
//! result into a MAC. BLAKE3 alone is compute-bound at a few GB/s a core,
//! and a warm start has to check a large module's whole entry and the
//! module bytes (see bench/CACHE.md).
//!
//! The module key of a keyed cache is the same MAC over the module bytes
//! (and the engine salt): collision-resistant for anyone without the key,
//! so an entry bound to it can only load for those exact bytes. A cache
//! without a key uses [`PublicSeal`] and the BLAKE3 `module_key`.

use crate::vm::nh::{NH_BLOCK, NH_KEY_WORDS, NhKey, nh_blocks};
use kiln_environ::{CacheKey, EntryKind, PublicSeal, Sealer, entry_domain};
use rayon::prelude::*;

/// Parts at least this long are compressed with NH first.
pub const NH_MIN: usize = 64 << 10;

/// Bytes one task compresses when a part is split across cores.
const PIECE: usize = 1 << 20;

/// The two keys a cache's secret key is expanded into.
pub(crate) struct MacKeys {
    prf: [u8; 32],
    nh: Box<NhKey>,
}

impl MacKeys {
    /// Expands a cache's secret key (BLAKE3 key derivation, one context
    /// per use, so the keys are independent).
    pub(crate) fn derive(secret: &[u8; 32]) -> MacKeys {
        let prf = blake3::derive_key("kiln 2026-12 cache entry MAC: PRF key", secret);
        let mut nh_bytes = [0u8; NH_KEY_WORDS * 4];
        let mut xof = blake3::Hasher::new_derive_key("kiln 2026-12 cache entry MAC: NH key");
        xof.update(secret);
        xof.finalize_xof().fill(&mut nh_bytes);
        let mut words = [0u32; NH_KEY_WORDS];
        for (w, b) in words.iter_mut().zip(nh_bytes.chunks_exact(4)) {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        MacKeys { prf, nh: Box::new(NhKey::new(&words)) }
    }

    /// The keyed BLAKE3 of `domain`, `binding` and `parts`, large parts
    /// NH-compressed.
    fn mac(&self, domain: &[u8], binding: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.prf);
        h.update(&(domain.len() as u64).to_le_bytes());
        h.update(domain);
        h.update(binding);
        for part in parts {
            h.update(&(part.len() as u64).to_le_bytes());
            if part.len() < NH_MIN {
                h.update(part);
            } else {
                h.update(&self.compress(part));
            }
        }
        *h.finalize().as_bytes()
    }

    /// NH of `part` (zero-padded to whole blocks) as bytes, 32 per block,
    /// large parts on all cores.
    fn compress(&self, part: &[u8]) -> Vec<u8> {
        let sums: Vec<[u64; 4]> = if part.len() >= 2 * PIECE {
            part.par_chunks(PIECE).flat_map_iter(|piece| self.compress_piece(piece)).collect()
        } else {
            self.compress_piece(part)
        };
        let mut out = Vec::with_capacity(sums.len() * 32);
        for s in sums {
            for word in s {
                out.extend_from_slice(&word.to_le_bytes());
            }
        }
        out
    }

    /// NH of `piece` block by block; a partial last block is padded with
    /// zeros (the part's length is hashed too).
    fn compress_piece(&self, piece: &[u8]) -> Vec<[u64; 4]> {
        let whole = piece.len() / NH_BLOCK * NH_BLOCK;
        let mut sums = vec![[0u64; 4]; piece.len().div_ceil(NH_BLOCK)];
        let (full, last) = sums.split_at_mut(whole / NH_BLOCK);
        nh_blocks(&self.nh, &piece[..whole], full);
        if let Some(last) = last.first_mut() {
            let mut block = [0u8; NH_BLOCK];
            block[..piece.len() - whole].copy_from_slice(&piece[whole..]);
            nh_blocks(&self.nh, &block, std::slice::from_mut(last));
        }
        sums
    }
}

/// The seal of one cache entry: keyed with the cache's secret, or public
/// for a cache without one.
pub(crate) enum EntrySeal<'a> {
    /// A MAC under the cache's keys.
    Keyed { keys: &'a MacKeys, domain: &'static [u8], binding: CacheKey },
    /// A checksum: the cache has no key.
    Public(PublicSeal),
}

impl<'a> EntrySeal<'a> {
    /// The seal of an entry of `kind` filed under `cache_key`.
    pub(crate) fn new(keys: Option<&'a MacKeys>, kind: EntryKind, cache_key: &CacheKey) -> EntrySeal<'a> {
        match keys {
            Some(keys) => EntrySeal::Keyed { keys, domain: entry_domain(kind), binding: *cache_key },
            None => EntrySeal::Public(PublicSeal::cache_entry(kind, cache_key)),
        }
    }
}

impl Sealer for EntrySeal<'_> {
    fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        match self {
            EntrySeal::Keyed { keys, domain, binding } => keys.mac(domain, binding, parts),
            EntrySeal::Public(p) => p.tag(parts),
        }
    }
}

/// The key a module's entry is filed under: with the cache's keys, their
/// MAC of the salt and the module bytes; without, `kiln_environ::module_key`.
pub(crate) fn module_key(keys: Option<&MacKeys>, salt: &CacheKey, wasm: &[u8]) -> CacheKey {
    match keys {
        Some(keys) => keys.mac(b"kiln module key", salt, &[wasm]),
        None => kiln_environ::module_key(salt, wasm),
    }
}

/// Re-seals an artifact or function entry in place as a cache with secret
/// key `secret` (or none) would seal an entry of `kind` filed under
/// `cache_key`; for tests that play an attacker (see
/// `kiln_environ::reseal`). Returns whether `bytes` was an artifact or
/// entry.
pub fn reseal_entry(bytes: &mut [u8], secret: Option<&[u8; 32]>, kind: EntryKind, cache_key: &CacheKey) -> bool {
    let keys = secret.map(MacKeys::derive);
    kiln_environ::reseal(bytes, &EntrySeal::new(keys.as_ref(), kind, cache_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_and_length_counts() {
        let keys = MacKeys::derive(&[3; 32]);
        let tag = |parts: &[&[u8]]| keys.mac(b"d", &[0; 32], parts);
        for len in [0, 1, NH_MIN - 1, NH_MIN, NH_MIN + 1, NH_MIN + 1000, 3 * PIECE + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let base = tag(&[&data]);
            assert_eq!(base, tag(&[&data]), "deterministic");
            for at in [0, len / 3, len.saturating_sub(1)] {
                if at < len {
                    let mut d = data.clone();
                    d[at] ^= 0x10;
                    assert_ne!(base, tag(&[&d]), "len {len}, flipped byte {at}");
                }
            }
            // A zero byte appended (what padding adds) changes the tag.
            let mut longer = data.clone();
            longer.push(0);
            assert_ne!(base, tag(&[&longer]), "len {len}");
            // Moving the boundary between parts changes the tag.
            if len > 1 {
                assert_ne!(tag(&[&data[..1], &data[1..]]), tag(&[&data[..len - 1], &data[len - 1..]]), "len {len}");
            }
        }
        // Another key, domain or binding: another tag.
        let data = vec![5u8; NH_MIN * 2];
        let other = MacKeys::derive(&[4; 32]);
        assert_ne!(keys.mac(b"d", &[0; 32], &[&data]), other.mac(b"d", &[0; 32], &[&data]));
        assert_ne!(keys.mac(b"d", &[0; 32], &[&data]), keys.mac(b"e", &[0; 32], &[&data]));
        assert_ne!(keys.mac(b"d", &[0; 32], &[&data]), keys.mac(b"d", &[1; 32], &[&data]));
    }

    #[test]
    fn parallel_and_serial_compression_agree() {
        let keys = MacKeys::derive(&[9; 32]);
        let data: Vec<u8> = (0..5 * PIECE + 100).map(|i| (i * 31 + i / 977) as u8).collect();
        let serial = keys.compress_piece(&data);
        let mut bytes = Vec::new();
        for s in serial {
            for w in s {
                bytes.extend_from_slice(&w.to_le_bytes());
            }
        }
        assert_eq!(keys.compress(&data), bytes);
    }
}
