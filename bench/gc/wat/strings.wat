;; Strings and arrays on WebAssembly GC: byte strings as (array (mut i8)),
;; UTF-16 copies as (array (mut i16)), and arrays of string references.
;;
;; run(n): n batches. Each batch builds 10,000 strings such as
;; "kappa-48213omega" by concatenation (a word from a passive data segment
;; taken with array.new_data, a dash, a decimal number, another word; every
;; step a new array filled with array.copy), merge-sorts the array of
;; string references (array.copy moves whole runs), joins the sorted
;; strings with commas in a growing string builder, and hashes the joined
;; string and an upper-cased UTF-16 copy of every string. A batch's objects
;; die when the next begins. Returns a checksum of the hashes, the joined
;; length and the number of adjacent duplicates.
(module
  (type $str (array (mut i8)))
  (type $str16 (array (mut i16)))
  (type $strs (array (mut (ref null $str))))
  (type $offsets (array i32))

  (data $words "alphabetagammadeltaepsilonzetaetathetaiotakappalambdamunuxiomicronpirhosigmatauupsilonphichipsiomega")
  ;; Where each of the 24 words starts in $words; the last entry is the end.
  (global $word_starts (ref $offsets)
    (array.new_fixed $offsets 25
      (i32.const 0) (i32.const 5) (i32.const 9) (i32.const 14) (i32.const 19)
      (i32.const 26) (i32.const 30) (i32.const 33) (i32.const 38) (i32.const 42)
      (i32.const 47) (i32.const 53) (i32.const 55) (i32.const 57) (i32.const 59)
      (i32.const 66) (i32.const 68) (i32.const 71) (i32.const 76) (i32.const 79)
      (i32.const 86) (i32.const 89) (i32.const 92) (i32.const 95) (i32.const 100)))
  (global $dash (ref $str) (array.new_fixed $str 1 (i32.const 0x2d)))

  (global $batch_size i32 (i32.const 10000))

  ;; The string builder: $buf's first $buf_len bytes.
  (global $buf (mut (ref $str)) (array.new_default $str (i32.const 64)))
  (global $buf_len (mut i32) (i32.const 0))

  (global $seed (mut i64) (i64.const 0))

  ;; A pseudo-random number in [0, 2^31).
  (func $random (result i32)
    (global.set $seed
      (i64.add (i64.mul (global.get $seed) (i64.const 6364136223846793005))
               (i64.const 1442695040888963407)))
    (i32.wrap_i64 (i64.shr_u (global.get $seed) (i64.const 33))))

  ;; A new string holding word $i (0 to 23).
  (func $word (param $i i32) (result (ref $str))
    (local $start i32)
    (local.set $start (array.get $offsets (global.get $word_starts) (local.get $i)))
    (array.new_data $str $words
      (local.get $start)
      (i32.sub (array.get $offsets (global.get $word_starts) (i32.add (local.get $i) (i32.const 1)))
               (local.get $start))))

  ;; The decimal digits of $v (not negative).
  (func $itoa (param $v i32) (result (ref $str))
    (local $digits i32)
    (local $t i32)
    (local $s (ref $str))
    (local.set $digits (i32.const 1))
    (local.set $t (local.get $v))
    (block $counted
      (loop $count
        (br_if $counted (i32.lt_u (local.get $t) (i32.const 10)))
        (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
        (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
        (br $count)))
    (local.set $s (array.new_default $str (local.get $digits)))
    (loop $fill
      (local.set $digits (i32.sub (local.get $digits) (i32.const 1)))
      (array.set $str (local.get $s) (local.get $digits)
        (i32.add (i32.const 0x30) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $fill (local.get $digits)))
    (local.get $s))

  ;; A new string: $a then $b.
  (func $concat (param $a (ref $str)) (param $b (ref $str)) (result (ref $str))
    (local $s (ref $str))
    (local.set $s (array.new_default $str
      (i32.add (array.len (local.get $a)) (array.len (local.get $b)))))
    (array.copy $str $str (local.get $s) (i32.const 0) (local.get $a) (i32.const 0) (array.len (local.get $a)))
    (array.copy $str $str (local.get $s) (array.len (local.get $a)) (local.get $b) (i32.const 0) (array.len (local.get $b)))
    (local.get $s))

  ;; Makes room in the builder for $extra more bytes, doubling it if needed.
  (func $reserve (param $extra i32)
    (local $need i32)
    (local $cap i32)
    (local $bigger (ref $str))
    (local.set $need (i32.add (global.get $buf_len) (local.get $extra)))
    (local.set $cap (array.len (global.get $buf)))
    (if (i32.gt_u (local.get $need) (local.get $cap))
      (then
        (local.set $cap (i32.shl (local.get $cap) (i32.const 1)))
        (local.set $bigger (array.new_default $str
          (select (local.get $need) (local.get $cap) (i32.gt_u (local.get $need) (local.get $cap)))))
        (array.copy $str $str (local.get $bigger) (i32.const 0) (global.get $buf) (i32.const 0) (global.get $buf_len))
        (global.set $buf (local.get $bigger)))))

  (func $append (param $s (ref $str))
    (call $reserve (array.len (local.get $s)))
    (array.copy $str $str (global.get $buf) (global.get $buf_len) (local.get $s) (i32.const 0) (array.len (local.get $s)))
    (global.set $buf_len (i32.add (global.get $buf_len) (array.len (local.get $s)))))

  (func $append_byte (param $c i32)
    (call $reserve (i32.const 1))
    (array.set $str (global.get $buf) (global.get $buf_len) (local.get $c))
    (global.set $buf_len (i32.add (global.get $buf_len) (i32.const 1))))

  ;; The builder's contents as a new string of their exact length.
  (func $take (result (ref $str))
    (local $s (ref $str))
    (local.set $s (array.new_default $str (global.get $buf_len)))
    (array.copy $str $str (local.get $s) (i32.const 0) (global.get $buf) (i32.const 0) (global.get $buf_len))
    (local.get $s))

  ;; Byte-wise comparison: negative, zero or positive.
  (func $compare (param $a (ref null $str)) (param $b (ref null $str)) (result i32)
    (local $len i32)
    (local $i i32)
    (local $ca i32)
    (local $cb i32)
    (local.set $len (array.len (local.get $a)))
    (if (i32.lt_u (array.len (local.get $b)) (local.get $len))
      (then (local.set $len (array.len (local.get $b)))))
    (block $prefix
      (loop $bytes
        (br_if $prefix (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $ca (array.get_u $str (local.get $a) (local.get $i)))
        (local.set $cb (array.get_u $str (local.get $b) (local.get $i)))
        (if (i32.ne (local.get $ca) (local.get $cb))
          (then (return (i32.sub (local.get $ca) (local.get $cb)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $bytes)))
    (i32.sub (array.len (local.get $a)) (array.len (local.get $b))))

  ;; Merges the sorted runs $src[$lo..$mid] and $src[$mid..$hi] into $dst[$lo..$hi].
  (func $merge (param $src (ref $strs)) (param $dst (ref $strs)) (param $lo i32) (param $mid i32) (param $hi i32)
    (local $i i32)
    (local $j i32)
    (local $k i32)
    (local.set $i (local.get $lo))
    (local.set $j (local.get $mid))
    (local.set $k (local.get $lo))
    (block $one_done
      (loop $both
        (br_if $one_done (i32.ge_u (local.get $i) (local.get $mid)))
        (br_if $one_done (i32.ge_u (local.get $j) (local.get $hi)))
        (if (i32.lt_s
              (call $compare (array.get $strs (local.get $src) (local.get $j))
                             (array.get $strs (local.get $src) (local.get $i)))
              (i32.const 0))
          (then
            (array.set $strs (local.get $dst) (local.get $k) (array.get $strs (local.get $src) (local.get $j)))
            (local.set $j (i32.add (local.get $j) (i32.const 1))))
          (else
            (array.set $strs (local.get $dst) (local.get $k) (array.get $strs (local.get $src) (local.get $i)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $both)))
    (array.copy $strs $strs (local.get $dst) (local.get $k)
      (local.get $src) (local.get $i) (i32.sub (local.get $mid) (local.get $i)))
    (array.copy $strs $strs (local.get $dst) (i32.add (local.get $k) (i32.sub (local.get $mid) (local.get $i)))
      (local.get $src) (local.get $j) (i32.sub (local.get $hi) (local.get $j))))

  ;; Sorts $a (stable bottom-up merge sort through a scratch array).
  (func $sort (param $a (ref $strs))
    (local $n i32)
    (local $src (ref $strs))
    (local $dst (ref $strs))
    (local $swap (ref $strs))
    (local $width i32)
    (local $lo i32)
    (local $mid i32)
    (local $hi i32)
    (local.set $n (array.len (local.get $a)))
    (local.set $src (local.get $a))
    (local.set $dst (array.new_default $strs (local.get $n)))
    (local.set $width (i32.const 1))
    (block $sorted
      (loop $pass
        (br_if $sorted (i32.ge_u (local.get $width) (local.get $n)))
        (local.set $lo (i32.const 0))
        (loop $runs
          (local.set $mid (i32.add (local.get $lo) (local.get $width)))
          (if (i32.gt_u (local.get $mid) (local.get $n)) (then (local.set $mid (local.get $n))))
          (local.set $hi (i32.add (local.get $mid) (local.get $width)))
          (if (i32.gt_u (local.get $hi) (local.get $n)) (then (local.set $hi (local.get $n))))
          (call $merge (local.get $src) (local.get $dst) (local.get $lo) (local.get $mid) (local.get $hi))
          (local.set $lo (local.get $hi))
          (br_if $runs (i32.lt_u (local.get $lo) (local.get $n))))
        (local.set $swap (local.get $src))
        (local.set $src (local.get $dst))
        (local.set $dst (local.get $swap))
        (local.set $width (i32.shl (local.get $width) (i32.const 1)))
        (br $pass)))
    (if (i32.eqz (ref.eq (local.get $src) (local.get $a)))
      (then (array.copy $strs $strs (local.get $a) (i32.const 0) (local.get $src) (i32.const 0) (local.get $n)))))

  ;; FNV-1a of a byte string.
  (func $hash (param $s (ref $str)) (result i32)
    (local $h i32)
    (local $i i32)
    (local $len i32)
    (local.set $h (i32.const 0x811c9dc5))
    (local.set $len (array.len (local.get $s)))
    (block $done
      (loop $bytes
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $h (i32.mul
          (i32.xor (local.get $h) (array.get_u $str (local.get $s) (local.get $i)))
          (i32.const 0x01000193)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $bytes)))
    (local.get $h))

  ;; An upper-cased UTF-16 copy of an ASCII string.
  (func $upper16 (param $s (ref $str)) (result (ref $str16))
    (local $u (ref $str16))
    (local $i i32)
    (local $c i32)
    (local.set $u (array.new_default $str16 (array.len (local.get $s))))
    (block $done
      (loop $chars
        (br_if $done (i32.ge_u (local.get $i) (array.len (local.get $s))))
        (local.set $c (array.get_u $str (local.get $s) (local.get $i)))
        (if (i32.lt_u (i32.sub (local.get $c) (i32.const 0x61)) (i32.const 26))
          (then (local.set $c (i32.sub (local.get $c) (i32.const 0x20)))))
        (array.set $str16 (local.get $u) (local.get $i) (local.get $c))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $chars)))
    (local.get $u))

  ;; FNV-1a over the 16-bit units of a UTF-16 string.
  (func $hash16 (param $s (ref $str16)) (result i32)
    (local $h i32)
    (local $i i32)
    (local.set $h (i32.const 0x811c9dc5))
    (block $done
      (loop $units
        (br_if $done (i32.ge_u (local.get $i) (array.len (local.get $s))))
        (local.set $h (i32.mul
          (i32.xor (local.get $h) (array.get_u $str16 (local.get $s) (local.get $i)))
          (i32.const 0x01000193)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $units)))
    (local.get $h))

  ;; acc * 31 + v: the running checksum.
  (func $fold (param $acc i64) (param $v i32) (result i64)
    (i64.add (i64.mul (local.get $acc) (i64.const 31)) (i64.extend_i32_u (local.get $v))))

  (func (export "run") (param $n i32) (result i64)
    (local $batch i32)
    (local $i i32)
    (local $r i32)
    (local $strs (ref $strs))
    (local $s (ref $str))
    (local $joined (ref $str))
    (local $dups i32)
    (local $acc i64)
    (global.set $seed (i64.const 20261206))
    (block $end
      (br_if $end (i32.le_s (local.get $n) (i32.const 0)))
      (loop $batches
        ;; Build.
        (local.set $strs (array.new_default $strs (global.get $batch_size)))
        (local.set $i (i32.const 0))
        (loop $build
          (local.set $r (call $random))
          (array.set $strs (local.get $strs) (local.get $i)
            (call $concat
              (call $concat
                (call $concat
                  (call $word (i32.rem_u (local.get $r) (i32.const 24)))
                  (global.get $dash))
                (call $itoa (i32.rem_u (i32.shr_u (local.get $r) (i32.const 5)) (i32.const 100000))))
              (call $word (i32.rem_u (i32.shr_u (local.get $r) (i32.const 22)) (i32.const 24)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $build (i32.lt_u (local.get $i) (global.get $batch_size))))
        ;; Sort.
        (call $sort (local.get $strs))
        ;; Join, hashing each string's upper-case UTF-16 copy on the way.
        (global.set $buf (array.new_default $str (i32.const 64)))
        (global.set $buf_len (i32.const 0))
        (local.set $dups (i32.const 0))
        (local.set $i (i32.const 0))
        (loop $join
          (local.set $s (ref.as_non_null (array.get $strs (local.get $strs) (local.get $i))))
          (if (local.get $i)
            (then
              (call $append_byte (i32.const 0x2c))
              (if (i32.eqz (call $compare
                    (array.get $strs (local.get $strs) (i32.sub (local.get $i) (i32.const 1)))
                    (local.get $s)))
                (then (local.set $dups (i32.add (local.get $dups) (i32.const 1)))))))
          (call $append (local.get $s))
          (local.set $acc (call $fold (local.get $acc) (call $hash16 (call $upper16 (local.get $s)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $join (i32.lt_u (local.get $i) (global.get $batch_size))))
        (local.set $joined (call $take))
        (local.set $acc (call $fold (local.get $acc) (call $hash (local.get $joined))))
        (local.set $acc (call $fold (local.get $acc) (array.len (local.get $joined))))
        (local.set $acc (call $fold (local.get $acc) (local.get $dups)))
        (local.set $batch (i32.add (local.get $batch) (i32.const 1)))
        (br_if $batches (i32.lt_u (local.get $batch) (local.get $n)))))
    (local.get $acc)))
