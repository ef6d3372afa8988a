//! NH, the almost-universal hash that compresses cache entries before
//! their keyed BLAKE3 MAC (see `crate::seal`), with SIMD kernels.
//!
//! NH as in UMAC and Adiantum (section 6.3 of the Adiantum paper: 32-bit
//! words, 16-byte units, 4 Toeplitz passes whose keys are shifted by one
//! unit): for each unit `u` = `m0 m1 m2 m3` of a 1 KiB block and each pass
//! `p`,
//!
//! ```text
//! sum[p] += (m0 + k[4u+4p]) * (m1 + k[4u+4p+1]) + (m2 + k[4u+4p+2]) * (m3 + k[4u+4p+3])
//! ```
//!
//! with the additions mod 2^32 and the products and sums mod 2^64. The one
//! difference from Adiantum is which words of a unit are multiplied
//! together ((0,1) and (2,3) instead of (0,2) and (1,3)), so a vector
//! kernel needs a shift instead of two shuffles per pass. That is the same
//! function applied to units whose words are permuted (the message's and
//! the key's alike, which a shift by whole units leaves aligned), so its
//! bound is the same: for two different blocks, the four sums collide with
//! probability at most 2^-128 over a uniformly random key. NH is *not* a MAC by itself: its
//! outputs must never be shown to anyone, only fed to a pseudorandom
//! function (here keyed BLAKE3), which is what makes the pair a MAC.
//!
//! It runs at memory speed where BLAKE3 is compute-bound: it is what lets
//! a warm start check a 60 MB cache entry without BLAKE3's cost.

/// Bytes NH compresses at a time.
pub const NH_BLOCK: usize = 1024;
/// 32-bit words of key: one per block word, plus 12 for the passes' shifts.
pub const NH_KEY_WORDS: usize = NH_BLOCK / 4 + 12;

/// An NH key, stored as each pass's shifted copy (`pass[p][j] = k[j + 4p]`)
/// so the kernels load it aligned.
#[derive(Clone)]
#[repr(C, align(64))]
pub struct NhKey {
    pass: [[u32; NH_BLOCK / 4]; 4],
}

impl NhKey {
    /// The key whose words are `k`.
    pub fn new(k: &[u32; NH_KEY_WORDS]) -> NhKey {
        let mut pass = [[0u32; NH_BLOCK / 4]; 4];
        for (p, words) in pass.iter_mut().enumerate() {
            words.copy_from_slice(&k[4 * p..4 * p + NH_BLOCK / 4]);
        }
        NhKey { pass }
    }
}

/// Hashes each 1 KiB block of `data` into the matching element of `out`
/// (`[sum of pass 0, .., sum of pass 3]`).
///
/// # Panics
///
/// If `data.len() != out.len() * NH_BLOCK`.
pub fn nh_blocks(key: &NhKey, data: &[u8], out: &mut [[u64; 4]]) {
    assert_eq!(data.len(), out.len() * NH_BLOCK, "NH input is whole blocks");
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            for (block, o) in data.chunks_exact(NH_BLOCK).zip(out.iter_mut()) {
                // SAFETY: AVX-512F was detected at run time; `block` is
                // exactly one block (`chunks_exact`).
                *o = unsafe { x86::nh_block_avx512(key, block) };
            }
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            for (block, o) in data.chunks_exact(NH_BLOCK).zip(out.iter_mut()) {
                // SAFETY: AVX2 was detected at run time; `block` is exactly
                // one block (`chunks_exact`).
                *o = unsafe { x86::nh_block_avx2(key, block) };
            }
            return;
        }
    }
    for (block, o) in data.chunks_exact(NH_BLOCK).zip(out.iter_mut()) {
        *o = nh_block_portable(key, block);
    }
}

/// NH of one block, word by word: the definition, and the kernel for CPUs
/// without AVX2.
pub fn nh_block_portable(key: &NhKey, block: &[u8]) -> [u64; 4] {
    let mut sums = [0u64; 4];
    for (u, unit) in block.chunks_exact(16).enumerate() {
        let w = |i: usize| u32::from_le_bytes([unit[4 * i], unit[4 * i + 1], unit[4 * i + 2], unit[4 * i + 3]]);
        let (m0, m1, m2, m3) = (w(0), w(1), w(2), w(3));
        for (sum, k) in sums.iter_mut().zip(&key.pass) {
            let kk = &k[4 * u..4 * u + 4];
            let a = u64::from(m0.wrapping_add(kk[0])) * u64::from(m1.wrapping_add(kk[1]));
            let b = u64::from(m2.wrapping_add(kk[2])) * u64::from(m3.wrapping_add(kk[3]));
            *sum = sum.wrapping_add(a).wrapping_add(b);
        }
    }
    sums
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The kernels hold several 16-byte units per vector. For each pass,
    //! one 32-bit add of that pass's key, then a 64-bit shift right by 32
    //! puts `m1+k1` and `m3+k3` under `m0+k0` and `m2+k2`, and one unsigned
    //! 32x32->64 multiply (which reads the low half of each 64-bit lane)
    //! forms both products of each unit.

    use super::{NH_BLOCK, NhKey};
    use std::arch::x86_64::*;

    /// How far ahead of the data being hashed the kernels ask for data.
    const PREFETCH_AHEAD: usize = 2048;

    /// NH of one block with AVX2 (two units per vector).
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2; `block` is `NH_BLOCK` bytes.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn nh_block_avx2(key: &NhKey, block: &[u8]) -> [u64; 4] {
        debug_assert_eq!(block.len(), NH_BLOCK);
        let mut acc = [_mm256_setzero_si256(); 4];
        for i in 0..NH_BLOCK / 32 {
            // SAFETY: bytes `32i..32i+32` of the block, which is `NH_BLOCK`
            // bytes long (the caller's contract); unaligned load.
            let m = unsafe { _mm256_loadu_si256(block.as_ptr().add(32 * i).cast()) };
            if i % 2 == 0 {
                // As in the AVX-512 kernel: one hint per cache line.
                _mm_prefetch::<_MM_HINT_T0>(block.as_ptr().wrapping_add(32 * i + PREFETCH_AHEAD).cast());
            }
            for (acc, k) in acc.iter_mut().zip(&key.pass) {
                // SAFETY: words `8i..8i+8` of a pass key of `NH_BLOCK / 4`
                // words (i < NH_BLOCK / 32); 32-byte aligned (the key is
                // 64-byte aligned, each pass key 1 KiB).
                let kv = unsafe { _mm256_load_si256(k.as_ptr().add(8 * i).cast()) };
                let x = _mm256_add_epi32(m, kv);
                let y = _mm256_srli_epi64::<32>(x);
                *acc = _mm256_add_epi64(*acc, _mm256_mul_epu32(x, y));
            }
        }
        let mut out = [0u64; 4];
        for (o, acc) in out.iter_mut().zip(acc) {
            let mut lanes = [0u64; 4];
            // SAFETY: `lanes` is 32 writable bytes; unaligned store.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
            *o = lanes.iter().fold(0u64, |s, l| s.wrapping_add(*l));
        }
        out
    }

    /// NH of one block with AVX-512F (four units per vector).
    ///
    /// # Safety
    ///
    /// The CPU supports AVX-512F; `block` is `NH_BLOCK` bytes.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn nh_block_avx512(key: &NhKey, block: &[u8]) -> [u64; 4] {
        debug_assert_eq!(block.len(), NH_BLOCK);
        let mut acc = [_mm512_setzero_si512(); 4];
        for i in 0..NH_BLOCK / 64 {
            // SAFETY: bytes `64i..64i+64` of the block, which is `NH_BLOCK`
            // bytes long (the caller's contract); unaligned load.
            let m = unsafe { _mm512_loadu_si512(block.as_ptr().add(64 * i).cast()) };
            // The next block's line: a hint only (it never faults), and the
            // address is computed without claiming it is in bounds.
            _mm_prefetch::<_MM_HINT_T0>(block.as_ptr().wrapping_add(64 * i + PREFETCH_AHEAD).cast());
            for (acc, k) in acc.iter_mut().zip(&key.pass) {
                // SAFETY: words `16i..16i+16` of a pass key of `NH_BLOCK / 4`
                // words (i < NH_BLOCK / 64); 64-byte aligned (the key is
                // 64-byte aligned, each pass key 1 KiB).
                let kv = unsafe { _mm512_load_si512(k.as_ptr().add(16 * i).cast()) };
                let x = _mm512_add_epi32(m, kv);
                let y = _mm512_srli_epi64::<32>(x);
                *acc = _mm512_add_epi64(*acc, _mm512_mul_epu32(x, y));
            }
        }
        let mut out = [0u64; 4];
        for (o, a) in out.iter_mut().zip(acc) {
            *o = _mm512_reduce_add_epi64(a) as u64;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u32) -> NhKey {
        let mut k = [0u32; NH_KEY_WORDS];
        let mut x = seed | 1;
        for w in &mut k {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *w = x;
        }
        NhKey::new(&k)
    }

    #[test]
    fn every_kernel_computes_the_definition() {
        let k = key(0x1234_5678);
        let mut data = vec![0u8; 64 * NH_BLOCK];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for b in &mut data {
            x ^= x << 7;
            x ^= x >> 9;
            *b = x as u8;
        }
        // Extremes: all ones and all zeros blocks.
        data[..NH_BLOCK].fill(0xff);
        data[NH_BLOCK..2 * NH_BLOCK].fill(0);
        let expected: Vec<[u64; 4]> = data.chunks_exact(NH_BLOCK).map(|b| nh_block_portable(&k, b)).collect();
        let mut got = vec![[0u64; 4]; 64];
        nh_blocks(&k, &data, &mut got);
        assert_eq!(got, expected);
        #[cfg(target_arch = "x86_64")]
        for (b, e) in data.chunks_exact(NH_BLOCK).zip(&expected) {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 detected; `b` is one block.
                assert_eq!(unsafe { x86::nh_block_avx2(&k, b) }, *e);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: AVX-512F detected; `b` is one block.
                assert_eq!(unsafe { x86::nh_block_avx512(&k, b) }, *e);
            }
        }
    }

    #[test]
    fn the_definition_by_hand() {
        // One unit (the rest zero) with a key of small numbers.
        let mut k = [0u32; NH_KEY_WORDS];
        for (i, w) in k.iter_mut().enumerate() {
            *w = i as u32;
        }
        let mut block = [0u8; NH_BLOCK];
        for (i, w) in [u32::MAX, 2, 3, 4].iter().enumerate() {
            block[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        let sums = nh_block_portable(&NhKey::new(&k), &block);
        // Every unit u past the first adds (4u+4p)(4u+4p+1) + (4u+4p+2)(4u+4p+3).
        let rest = |p: u64| {
            (1..64u64)
                .map(|u| (4 * u + 4 * p) * (4 * u + 4 * p + 1) + (4 * u + 4 * p + 2) * (4 * u + 4 * p + 3))
                .sum::<u64>()
        };
        // Pass 0, unit 0: (MAX+0)(2+1) + (3+2)(4+3).
        assert_eq!(sums[0], u64::from(u32::MAX) * 3 + 5 * 7 + rest(0));
        // Pass 1: key words shifted by 4; MAX + 4 wraps to 3.
        assert_eq!(sums[1], 3 * (2 + 5) + (3 + 6) * (4 + 7) + rest(1));
    }
}
