;; binary-trees (the benchmarks-game algorithm) on WebAssembly GC structs.
;;
;; run(n): n is the maximum depth (at least 6). Allocates a "stretch" tree of
;; depth n+1 and drops it, keeps a long-lived tree of depth n, and for each
;; depth d = 4, 6, ..., n allocates 2^(n-d+4) short-lived trees of depth d,
;; counting the nodes of each. Returns a checksum folding every count the
;; benchmarks-game program prints, in the order it prints them.
(module
  ;; A node: both children or neither. Immutable, as a compiler of a
  ;; language with immutable records would emit it.
  (type $node (struct (field $left (ref null $node)) (field $right (ref null $node))))

  (global $min_depth i32 (i32.const 4))

  ;; A complete tree of depth $d (a leaf at depth 0).
  (func $make (param $d i32) (result (ref $node))
    (if (result (ref $node)) (i32.eqz (local.get $d))
      (then (struct.new $node (ref.null $node) (ref.null $node)))
      (else
        (local.set $d (i32.sub (local.get $d) (i32.const 1)))
        (struct.new $node (call $make (local.get $d)) (call $make (local.get $d))))))

  ;; The number of nodes in $t.
  (func $check (param $t (ref $node)) (result i32)
    (local $left (ref $node))
    (block $leaf
      (local.set $left (br_on_null $leaf (struct.get $node $left (local.get $t))))
      (return
        (i32.add
          (i32.add (i32.const 1) (call $check (local.get $left)))
          (call $check (ref.as_non_null (struct.get $node $right (local.get $t)))))))
    (i32.const 1))

  ;; acc * 31 + v: the running checksum.
  (func $fold (param $acc i64) (param $v i32) (result i64)
    (i64.add (i64.mul (local.get $acc) (i64.const 31)) (i64.extend_i32_u (local.get $v))))

  (func (export "run") (param $n i32) (result i64)
    (local $max i32)
    (local $acc i64)
    (local $long_lived (ref $node))
    (local $d i32)
    (local $iterations i32)
    (local $i i32)
    (local $sum i32)
    (local.set $max
      (select (local.get $n) (i32.add (global.get $min_depth) (i32.const 2))
        (i32.gt_s (local.get $n) (i32.add (global.get $min_depth) (i32.const 2)))))

    ;; The stretch tree, dropped at once.
    (local.set $acc (call $fold (i64.const 0)
      (call $check (call $make (i32.add (local.get $max) (i32.const 1))))))

    (local.set $long_lived (call $make (local.get $max)))

    (local.set $d (global.get $min_depth))
    (loop $depths
      (local.set $iterations
        (i32.shl (i32.const 1)
          (i32.add (i32.sub (local.get $max) (local.get $d)) (global.get $min_depth))))
      (local.set $sum (i32.const 0))
      (local.set $i (i32.const 0))
      (loop $trees
        (local.set $sum (i32.add (local.get $sum) (call $check (call $make (local.get $d)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $trees (i32.lt_u (local.get $i) (local.get $iterations))))
      (local.set $acc (call $fold (local.get $acc) (local.get $iterations)))
      (local.set $acc (call $fold (local.get $acc) (local.get $d)))
      (local.set $acc (call $fold (local.get $acc) (local.get $sum)))
      (local.set $d (i32.add (local.get $d) (i32.const 2)))
      (br_if $depths (i32.le_s (local.get $d) (local.get $max))))

    (call $fold (local.get $acc) (call $check (local.get $long_lived)))))
