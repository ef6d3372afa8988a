;; Kiln's NaN canonicalization also canonicalizes `f32.demote_f64` and
;; `f64.promote_f32`, which wasm-smith's canonicalization leaves alone, so a
;; NaN payload survives in wasmi but not in Kiln. Both are allowed by the
;; spec; the oracle must not call it a divergence.
(module
  (global $g (export "g") (mut i32) (i32.const 0))
  (global $h (export "h") (mut i64) (i64.const 0))
  (func (export "demote")
    f64.const nan:0x4000000000001
    f32.demote_f64
    i32.reinterpret_f32
    global.set $g
    f32.const nan:0x200001
    f64.promote_f32
    i64.reinterpret_f64
    global.set $h))
