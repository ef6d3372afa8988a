//! No input bytes may panic or crash `Module::new`.

use kiln::*;

/// A small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_and_mutated_bytes_are_errors() {
    let engine = Engine::default();
    let valid = wat::parse_str(r#"(module
        (type (func (param i32) (result i32)))
        (import "a" "b" (func (type 0)))
        (memory 1) (table 2 funcref) (global (mut i32) (i32.const 1))
        (func (export "f") (type 0) local.get 0 call 0 i32.const 2 i32.mul)
        (elem (i32.const 0) 1) (data (i32.const 8) "xyz"))"#)
    .expect("valid wat");
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for _ in 0..3000 {
        let mut bytes = valid.clone();
        for _ in 0..(rng.next() % 4 + 1) {
            let i = (rng.next() as usize) % bytes.len();
            bytes[i] = rng.next() as u8;
        }
        if rng.next().is_multiple_of(5) {
            bytes.truncate((rng.next() as usize) % bytes.len());
        }
        let _ = Module::from_binary(&engine, &bytes);
    }
    for len in 0..200 {
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(Module::from_binary(&engine, &bytes).is_err() || len >= 8);
    }
}
