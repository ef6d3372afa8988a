//! Modules used by the benchmarks (and by `bench/` scripts).

pub mod many_funcs;

/// A module with `nop()`, `add(i32, i32)`, and `call_host(n)` which calls
/// the imported `host.nop` `n` times.
pub const CALLS_WAT: &str = r#"(module
    (import "host" "nop" (func $host_nop))
    (func (export "nop"))
    (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
    (func (export "call_host") (param $n i32)
        (loop $l
            (if (local.get $n) (then
                call $host_nop
                (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                br $l)))))"#;

/// Recursive Fibonacci, exported as `fib`.
pub const FIB_WAT: &str = r#"(module
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2))))))))"#;

/// The shape of `shared/bench/wat/gen_bigtable.py`: `nfuncs` small
/// functions, a funcref table holding all of them, a mutable global, and a
/// `data_bytes`-byte active data segment.
pub fn bigtable_wat(nfuncs: usize, data_bytes: usize) -> String {
    large_module_wat(nfuncs, nfuncs, data_bytes)
}

/// The instantiation benchmark's large module: `nfuncs` small functions, a
/// `table_elems`-element funcref table filled entirely by active element
/// segments (of at most 1,000 entries each, spread over the functions), a
/// mutable global, an exported `call(idx, x)` that calls through the
/// table, and a `data_bytes`-byte active data segment.
pub fn large_module_wat(nfuncs: usize, table_elems: usize, data_bytes: usize) -> String {
    use std::fmt::Write;
    let pages = data_bytes.div_ceil(65536) + 1;
    let mut w = String::with_capacity(nfuncs * 160 + table_elems * 8 + data_bytes * 3 + 1024);
    let _ = writeln!(w, "(module (type $t (func (param i32) (result i32)))");
    let _ = writeln!(w, "(memory (export \"memory\") {pages})");
    let _ = writeln!(w, "(table $tab (export \"table\") {table_elems} {table_elems} funcref)");
    let _ = writeln!(w, "(global $g (export \"counter\") (mut i32) (i32.const 0))");
    for i in 0..nfuncs {
        let _ = writeln!(
            w,
            "(func $f{i} (type $t) (global.set $g (i32.add (global.get $g) (i32.const 1))) \
             (i32.add (i32.mul (local.get 0) (i32.const {})) (i32.load8_u (i32.const {}))))",
            i * 2 + 1,
            (i * 97) % data_bytes.max(1)
        );
    }
    let stride = (nfuncs / table_elems.max(1)).max(1);
    for start in (0..table_elems).step_by(1000) {
        let _ = write!(w, "(elem (table $tab) (i32.const {start}) func");
        for slot in start..(start + 1000).min(table_elems) {
            let _ = write!(w, " $f{}", (slot * stride) % nfuncs.max(1));
        }
        w.push_str(")\n");
    }
    w.push_str("(func (export \"call\") (param $idx i32) (param $x i32) (result i32)\n");
    w.push_str("  (call_indirect $tab (type $t) (local.get $x) (local.get $idx)))\n");
    w.push_str("(data (i32.const 0) \"");
    let mut x: u32 = 0x1234_5678;
    for _ in 0..data_bytes {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let _ = write!(w, "\\{:02x}", ((x >> 16) & 0xff) | 1);
    }
    w.push_str("\"))\n");
    w
}

pub mod instantiation;
