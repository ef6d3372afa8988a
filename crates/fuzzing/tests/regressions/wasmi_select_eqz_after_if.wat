;; wasmi 2.0.0 inverts `select` whose condition is a comparison with zero
;; (`i32.eqz`, `i32.eq 0`, `i32.ne 0`) in a function with more than one
;; block: here it returns 0 instead of 1, and `i32.div_u` by that traps.
;; wasm-smith guards every division with exactly this pattern, so the
;; differential oracle rewrites modules for wasmi (see
;; `differential::wasmi_workarounds`). Kiln is right.
(module
  (global (mut i32) (i32.const 1))
  (func (export "select") (result i32)
    (local i32)
    global.get 0
    if
    end
    i32.const 1
    local.get 0
    local.get 0
    i32.eqz
    select)
  (func (export "div") (result i32)
    (local i32)
    global.get 0
    if
    end
    i32.const 0
    i32.const 1
    local.get 0
    local.get 0
    i32.eqz
    select
    i32.div_u))
