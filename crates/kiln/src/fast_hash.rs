//! A fast hasher for the store's internal maps, whose keys are addresses
//! and indices that Kiln itself produces (never attacker-chosen strings),
//! so SipHash's flooding resistance buys nothing there and costs time on
//! every instantiation; also for maps of function keys (BLAKE3 hashes
//! keyed by the engine: nobody can choose them to collide).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiply-rotate hashing of integer keys (the scheme of rustc's FxHash).
#[derive(Clone, Copy, Default)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // A product's low bits depend only on the factors' low bits, and the
        // keys here are often aligned addresses (low bits zero), while the
        // map picks buckets by the low bits: rotate the well-mixed high
        // bits down.
        self.0.rotate_left(26)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.add(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }

    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }
}

/// A `HashMap` with [`FastHasher`].
pub(crate) type FastHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
