//! No input bytes may panic or crash `Module::from_binary`, and every
//! error on malformed input says where the input went wrong.
//!
//! The rule: compiling returns `Ok` or `Err`, never panics; and every
//! error names the byte offset at which decoding or validation stopped, as
//! `at offset 0x…`, an offset inside the input or at its end (where a
//! truncated input ran out). That holds for the header too: an empty input
//! or a bad magic number points at offset 0, where the magic number should
//! be, and a missing or unknown version at offset 4, where the version
//! should be. The one error about bytes without an offset is the refusal of
//! a precompiled artifact (`tests/all/api.rs` and kiln-cli's
//! `tests/precompiled.rs` check it): it is about what the whole input is,
//! not about a place in it, and none of the inputs here starts with the
//! artifact magic.

use kiln::*;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A valid module using most sections.
fn valid_module() -> Vec<u8> {
    wat::parse_str(
        r#"(module
        (type (func (param i32) (result i32)))
        (import "a" "b" (func (type 0)))
        (memory 1) (table 2 funcref) (global (mut i32) (i32.const 1))
        (func (export "f") (type 0) local.get 0 call 0 i32.const 2 i32.mul)
        (func $g (param i64 f32) (result f64)
          local.get 1 f64.promote_f32 local.get 0 f64.convert_i64_s f64.add)
        (func $s)
        (start $s)
        (elem (i32.const 0) 1) (data (i32.const 8) "xyz"))"#,
    )
    .expect("valid wat")
}

/// The offset an error message names (`at offset 0x…`), if any.
fn error_offset(message: &str) -> Option<usize> {
    let (_, after) = message.split_once("at offset 0x")?;
    let hex: String = after.chars().take_while(char::is_ascii_hexdigit).collect();
    usize::from_str_radix(&hex, 16).ok()
}

/// Compiles `bytes`; fails the test on a panic, or on an error that does
/// not name an offset within the input (see the module docs).
fn check(engine: &Engine, bytes: &[u8]) -> std::result::Result<(), String> {
    let result = catch_unwind(AssertUnwindSafe(|| Module::from_binary(engine, bytes)));
    let Ok(result) = result else { panic!("compiling panicked; input: {bytes:02x?}") };
    let Err(e) = result else { return Ok(()) };
    let message = format!("{e:#}");
    match error_offset(&message) {
        Some(at) if at <= bytes.len() => Err(message),
        Some(at) => {
            panic!("error names offset {at}, past the input's {} bytes: {message}\ninput: {bytes:02x?}", bytes.len())
        }
        None => panic!("error names no offset: {message}\ninput: {bytes:02x?}"),
    }
}

#[test]
fn header_errors_point_at_the_field_that_is_wrong() {
    let engine = Engine::default();
    let cases: [(&[u8], usize); 7] = [
        (b"", 0),
        (b"\0as", 0),
        (b"\0asn\x01\0\0\0", 0),
        (b"asm\0\x01\0\0\0", 0),
        (b"\0asm", 4),
        (b"\0asm\x01\0", 4),
        (b"\0asm\x02\0\0\0", 4),
    ];
    for (bytes, offset) in cases {
        let message = check(&engine, bytes).expect_err("not a module");
        assert_eq!(error_offset(&message), Some(offset), "{bytes:?}: {message}");
    }
    check(&engine, b"\0asm\x01\0\0\0").expect("the empty module");
}

#[test]
fn every_truncation_is_ok_or_an_error_with_its_offset() {
    let engine = Engine::default();
    let valid = valid_module();
    for len in 0..valid.len() {
        // A cut at a section boundary leaves a valid module.
        let _ = check(&engine, &valid[..len]);
    }
    check(&engine, &valid).expect("the whole module is valid");
}

#[test]
fn mutated_modules_are_ok_or_errors_with_their_offset() {
    let engine = Engine::default();
    let valid = valid_module();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut errors = 0;
    for _ in 0..3000 {
        let mut bytes = valid.clone();
        for _ in 0..rng.below(4) + 1 {
            let i = rng.below(bytes.len());
            match rng.below(4) {
                0 => bytes[i] ^= 1 << rng.below(8),
                1 => bytes.insert(i, rng.next() as u8),
                2 => {
                    bytes.remove(i);
                }
                _ => bytes[i] = rng.next() as u8,
            }
        }
        if rng.below(5) == 0 {
            bytes.truncate(rng.below(bytes.len()));
        }
        errors += usize::from(check(&engine, &bytes).is_err());
    }
    // Most mutations break the module: the errors were checked, not skipped.
    assert!(errors > 2000, "only {errors} of 3000 mutated modules were refused");
}

#[test]
fn random_bytes_are_errors_with_their_offset() {
    let engine = Engine::default();
    let mut rng = Rng(0x2545f4914f6cdd1d);
    for len in 0..200 {
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check(&engine, &bytes).expect_err("random bytes are not a module");
        // The same after a valid header: random sections.
        let mut after_header = b"\0asm\x01\0\0\0".to_vec();
        after_header.extend_from_slice(&bytes);
        let _ = check(&engine, &after_header);
    }
}
