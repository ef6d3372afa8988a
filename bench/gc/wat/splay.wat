;; A splay tree under churn, in the manner of Octane's splay benchmark, on
;; WebAssembly GC objects.
;;
;; run(n): builds a tree of 8,000 nodes with keys from a linear
;; congruential generator, then makes n modifications. A modification
;; inserts a node with a new random key and then removes the node with the
;; greatest key below it (or the new node itself when there is none), so the
;; tree keeps its size while old nodes and their payloads die. Every node
;; carries a payload: a complete binary tree of depth 5 whose leaves hold
;; arrays of ten small integers, typed as `anyref` the way a compiler of a
;; dynamic language would type them, and read back through casts.
;;
;; Returns a checksum of the keys and payloads of the removed nodes and of
;; the keys of the final tree in order.
(module
  (type $node (struct
    (field $key i32)
    (field $value anyref)
    (field $left (mut (ref null $node)))
    (field $right (mut (ref null $node)))))
  ;; Payload: an inner pair, or a leaf holding ten i31 values.
  (type $pair (struct (field $l anyref) (field $r anyref)))
  (type $values (array (mut anyref)))
  (type $leaf (struct (field $tag i32) (field $vals (ref $values))))

  (global $tree_size i32 (i32.const 8000))
  (global $payload_depth i32 (i32.const 5))

  (global $root (mut (ref null $node)) (ref.null $node))
  (global $seed (mut i64) (i64.const 0))

  ;; A pseudo-random key in [0, 2^31).
  (func $random (result i32)
    (global.set $seed
      (i64.add (i64.mul (global.get $seed) (i64.const 6364136223846793005))
               (i64.const 1442695040888963407)))
    (i32.wrap_i64 (i64.shr_u (global.get $seed) (i64.const 33))))

  (func $payload (param $depth i32) (param $tag i32) (result anyref)
    (local $v i32)
    (if (result anyref) (i32.eqz (local.get $depth))
      (then
        (local.set $v (i32.and (local.get $tag) (i32.const 0xffff)))
        (struct.new $leaf (local.get $tag)
          (array.new_fixed $values 10
            (ref.i31 (local.get $v))
            (ref.i31 (i32.add (local.get $v) (i32.const 1)))
            (ref.i31 (i32.add (local.get $v) (i32.const 2)))
            (ref.i31 (i32.add (local.get $v) (i32.const 3)))
            (ref.i31 (i32.add (local.get $v) (i32.const 4)))
            (ref.i31 (i32.add (local.get $v) (i32.const 5)))
            (ref.i31 (i32.add (local.get $v) (i32.const 6)))
            (ref.i31 (i32.add (local.get $v) (i32.const 7)))
            (ref.i31 (i32.add (local.get $v) (i32.const 8)))
            (ref.i31 (i32.add (local.get $v) (i32.const 9))))))
      (else
        (local.set $depth (i32.sub (local.get $depth) (i32.const 1)))
        (struct.new $pair
          (call $payload (local.get $depth) (local.get $tag))
          (call $payload (local.get $depth) (i32.add (local.get $tag) (i32.const 1)))))))

  ;; Sums a payload: the tag and values of every leaf. The kind of each
  ;; object is found by casting, as dynamically typed code must.
  (func $payload_sum (param $p anyref) (result i64)
    (local $pair (ref $pair))
    (local $leaf (ref $leaf))
    (local $vals (ref $values))
    (local $i i32)
    (local $sum i64)
    (block $not_pair (result anyref)
      (local.set $pair (br_on_cast_fail $not_pair anyref (ref $pair) (local.get $p)))
      (return (i64.add
        (call $payload_sum (struct.get $pair $l (local.get $pair)))
        (call $payload_sum (struct.get $pair $r (local.get $pair))))))
    (local.set $leaf (ref.cast (ref $leaf)))
    (local.set $vals (struct.get $leaf $vals (local.get $leaf)))
    (local.set $sum (i64.extend_i32_u (struct.get $leaf $tag (local.get $leaf))))
    (loop $each
      (local.set $sum (i64.add (local.get $sum)
        (i64.extend_i32_s (i31.get_s (ref.cast (ref i31) (array.get $values (local.get $vals) (local.get $i)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $each (i32.lt_u (local.get $i) (array.len (local.get $vals)))))
    (local.get $sum))

  ;; Top-down splay: brings the node with $key, or the last node on its
  ;; search path, to the root. The tree must not be empty.
  (func $splay (param $key i32)
    (local $header (ref $node))
    (local $left (ref $node))
    (local $right (ref $node))
    (local $cur (ref $node))
    (local $next (ref null $node))
    (local $tmp (ref $node))
    ;; $header's right collects the tree of smaller keys, its left the
    ;; tree of larger ones.
    (local.set $header (struct.new $node (i32.const 0) (ref.null any) (ref.null $node) (ref.null $node)))
    (local.set $left (local.get $header))
    (local.set $right (local.get $header))
    (local.set $cur (ref.as_non_null (global.get $root)))
    (block $done
      (loop $descend
        (if (i32.lt_s (local.get $key) (struct.get $node $key (local.get $cur)))
          (then
            (local.set $tmp (br_on_null $done (struct.get $node $left (local.get $cur))))
            (if (i32.lt_s (local.get $key) (struct.get $node $key (local.get $tmp)))
              (then
                ;; Rotate right.
                (struct.set $node $left (local.get $cur) (struct.get $node $right (local.get $tmp)))
                (struct.set $node $right (local.get $tmp) (local.get $cur))
                (local.set $cur (local.get $tmp))
                (br_if $done (ref.is_null (struct.get $node $left (local.get $cur))))))
            ;; Link right.
            (struct.set $node $left (local.get $right) (local.get $cur))
            (local.set $right (local.get $cur))
            (local.set $cur (ref.as_non_null (struct.get $node $left (local.get $cur))))
            (br $descend)))
        (if (i32.gt_s (local.get $key) (struct.get $node $key (local.get $cur)))
          (then
            (local.set $tmp (br_on_null $done (struct.get $node $right (local.get $cur))))
            (if (i32.gt_s (local.get $key) (struct.get $node $key (local.get $tmp)))
              (then
                ;; Rotate left.
                (struct.set $node $right (local.get $cur) (struct.get $node $left (local.get $tmp)))
                (struct.set $node $left (local.get $tmp) (local.get $cur))
                (local.set $cur (local.get $tmp))
                (br_if $done (ref.is_null (struct.get $node $right (local.get $cur))))))
            ;; Link left.
            (struct.set $node $right (local.get $left) (local.get $cur))
            (local.set $left (local.get $cur))
            (local.set $cur (ref.as_non_null (struct.get $node $right (local.get $cur))))
            (br $descend)))))
    ;; Reassemble.
    (struct.set $node $right (local.get $left) (struct.get $node $left (local.get $cur)))
    (struct.set $node $left (local.get $right) (struct.get $node $right (local.get $cur)))
    (struct.set $node $left (local.get $cur) (struct.get $node $right (local.get $header)))
    (struct.set $node $right (local.get $cur) (struct.get $node $left (local.get $header)))
    (global.set $root (local.get $cur)))

  ;; Whether $key is in the tree (splaying it, or its neighbour, to the root).
  (func $contains (param $key i32) (result i32)
    (if (ref.is_null (global.get $root)) (then (return (i32.const 0))))
    (call $splay (local.get $key))
    (i32.eq (struct.get $node $key (global.get $root)) (local.get $key)))

  ;; Inserts $key, which must not be in the tree, with $value.
  (func $insert (param $key i32) (param $value anyref)
    (local $root (ref $node))
    (if (ref.is_null (global.get $root))
      (then
        (global.set $root (struct.new $node (local.get $key) (local.get $value) (ref.null $node) (ref.null $node)))
        (return)))
    (call $splay (local.get $key))
    (local.set $root (ref.as_non_null (global.get $root)))
    (if (i32.gt_s (local.get $key) (struct.get $node $key (local.get $root)))
      (then
        (global.set $root (struct.new $node (local.get $key) (local.get $value)
          (local.get $root) (struct.get $node $right (local.get $root))))
        (struct.set $node $right (local.get $root) (ref.null $node)))
      (else
        (global.set $root (struct.new $node (local.get $key) (local.get $value)
          (struct.get $node $left (local.get $root)) (local.get $root)))
        (struct.set $node $left (local.get $root) (ref.null $node)))))

  ;; Removes the node with $key, which must be in the tree, and returns it.
  (func $remove (param $key i32) (result (ref $node))
    (local $removed (ref $node))
    (local $right (ref null $node))
    (call $splay (local.get $key))
    (local.set $removed (ref.as_non_null (global.get $root)))
    (if (ref.is_null (struct.get $node $left (local.get $removed)))
      (then (global.set $root (struct.get $node $right (local.get $removed))))
      (else
        (local.set $right (struct.get $node $right (local.get $removed)))
        (global.set $root (struct.get $node $left (local.get $removed)))
        (call $splay (local.get $key))
        (struct.set $node $right (ref.as_non_null (global.get $root)) (local.get $right))))
    (local.get $removed))

  ;; The node with the greatest key below $key, or null. The tree must not
  ;; be empty.
  (func $greatest_below (param $key i32) (result (ref null $node))
    (local $cur (ref $node))
    (call $splay (local.get $key))
    (local.set $cur (ref.as_non_null (global.get $root)))
    (if (i32.lt_s (struct.get $node $key (local.get $cur)) (local.get $key))
      (then (return (local.get $cur))))
    (block $none
      (local.set $cur (br_on_null $none (struct.get $node $left (local.get $cur))))
      (loop $walk
        (block $rightmost
          (local.set $cur (br_on_null $rightmost (struct.get $node $right (local.get $cur))))
          (br $walk)))
      (return (local.get $cur)))
    (ref.null $node))

  ;; Inserts a node with a key not yet in the tree and returns the key.
  (func $insert_new (result i32)
    (local $key i32)
    (loop $fresh
      (local.set $key (call $random))
      (br_if $fresh (call $contains (local.get $key))))
    (call $insert (local.get $key) (call $payload (global.get $payload_depth) (local.get $key)))
    (local.get $key))

  ;; Folds the keys of $t in order into $acc.
  (func $fold_keys (param $t (ref null $node)) (param $acc i64) (result i64)
    (local $n (ref $node))
    (if (ref.is_null (local.get $t)) (then (return (local.get $acc))))
    (local.set $n (ref.as_non_null (local.get $t)))
    (local.set $acc (call $fold_keys (struct.get $node $left (local.get $n)) (local.get $acc)))
    (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 31))
      (i64.extend_i32_u (struct.get $node $key (local.get $n)))))
    (call $fold_keys (struct.get $node $right (local.get $n)) (local.get $acc)))

  (func (export "run") (param $n i32) (result i64)
    (local $i i32)
    (local $key i32)
    (local $below (ref null $node))
    (local $removed (ref $node))
    (local $acc i64)
    (global.set $root (ref.null $node))
    (global.set $seed (i64.const 49734321))
    (loop $fill
      (drop (call $insert_new))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (global.get $tree_size))))
    (local.set $i (i32.const 0))
    (block $end
      (br_if $end (i32.le_s (local.get $n) (i32.const 0)))
      (loop $modify
        (local.set $key (call $insert_new))
        (local.set $below (call $greatest_below (local.get $key)))
        (local.set $removed (call $remove
          (if (result i32) (ref.is_null (local.get $below))
            (then (local.get $key))
            (else (struct.get $node $key (ref.as_non_null (local.get $below)))))))
        (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 31))
          (i64.add (i64.extend_i32_u (struct.get $node $key (local.get $removed)))
                   (call $payload_sum (struct.get $node $value (local.get $removed))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $modify (i32.lt_u (local.get $i) (local.get $n)))))
    (local.set $acc (call $fold_keys (global.get $root) (local.get $acc)))
    (global.set $root (ref.null $node))
    (local.get $acc)))
