//! How GC references (the `any` hierarchy) are encoded as values, in
//! compiled code, in `ValRaw`, tables and globals: 0 is null, an odd value
//! is an unboxed `i31` (`(x << 1) | 1` in the low 32 bits, zero-extended),
//! and an even non-zero value is an object's offset in its store's GC
//! heap. `ref.eq` is equality of the encodings. An externref word is a
//! host pointer (even) or an externalized GC reference ([`externalize`]).

/// The encoding of `ref.i31 x`: the low 31 bits of `x`, shifted left and
/// tagged. It fits in 32 bits, so it is the same as a 32-bit cage ref.
pub fn i31_ref(x: i32) -> u64 {
    u64::from(((x as u32) << 1) | 1)
}

/// The externref word of non-null GC reference `r` (`extern.convert_any`
/// of anything but an extern box): `r` in the upper half, tagged with bit
/// 0, which a host externref (an aligned pointer) never has.
pub fn externalize(r: u64) -> u64 {
    (r << 32) | 1
}

/// Whether externref word `e` is an externalized GC reference.
pub fn is_externalized(e: u64) -> bool {
    e & 1 == 1
}

/// The GC reference an externalized externref word holds.
pub fn internalize(e: u64) -> u64 {
    e >> 32
}

/// Whether encoding `r` is an `i31` value.
pub fn is_i31(r: u64) -> bool {
    r & 1 == 1
}

/// `i31.get_s` of the i31 value encoded as `r` (sign-extending bit 30).
pub fn i31_get_s(r: u64) -> i32 {
    (r as u32 as i32) >> 1
}

/// `i31.get_u` of the i31 value encoded as `r` (zero-extending).
pub fn i31_get_u(r: u64) -> u32 {
    (r as u32) >> 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i31_round_trips_the_low_31_bits() {
        for x in [0, 1, -1, 100, 0x3fff_ffff, 0x4000_0000, 0x7fff_ffff, i32::MIN, 0xaaaa_aaaau32 as i32] {
            let r = i31_ref(x);
            assert!(is_i31(r) && r <= u64::from(u32::MAX));
            assert_eq!(i31_get_u(r), (x as u32) & 0x7fff_ffff);
            assert_eq!(i31_get_s(r), (x << 1) >> 1);
        }
    }
}
