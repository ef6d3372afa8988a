;; wasi-threads: the main thread spawns 8 threads and, once all exist, lets
;; them go at once; each adds 1 to a shared counter 200000 times with
;; i32.atomic.rmw.add (plain loads and stores lose updates here), records
;; its thread id,
;; prints "thread done" through WASI (fd 1 of the shared context, its
;; iovec in the shared memory), and then counts itself finished and wakes
;; the main thread, which joins them all with memory.atomic.wait32, checks
;; the ids (positive, distinct, the ones thread-spawn returned) and the
;; counter, and prints "counter=1600000". Any failed check traps.
;;
;; Memory layout (all in the imported shared memory):
;;   0      counter
;;   4      threads finished
;;   8      go: set to 1 by the main thread once every thread is spawned
;;   16     thread id each thread saw, by start_arg (8 x i32)
;;   48     thread id thread-spawn returned, by start_arg (8 x i32)
;;   128    "thread done\n" (copied from a passive segment by the main
;;          thread only: threads instantiate the module again, and an
;;          active segment would be written again by each of them)
;;   256    per-thread iovec + nwritten, 16 bytes each
;;   512    the main thread's output buffer
(module
  (import "wasi" "thread-spawn" (func $thread_spawn (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") (import "env" "memory") 1 1 shared)

  (data $done "thread done\n")

  (global $threads i32 (i32.const 8))
  (global $iterations i32 (i32.const 200000))

  (func $check (param i32)
    (if (i32.eqz (local.get 0)) (then unreachable)))

  ;; Writes `len` bytes at `ptr` to stdout, using the iovec slot at `slot`.
  (func $print (param $ptr i32) (param $len i32) (param $slot i32)
    (i32.store (local.get $slot) (local.get $ptr))
    (i32.store offset=4 (local.get $slot) (local.get $len))
    (call $check
      (i32.eqz (call $fd_write (i32.const 1) (local.get $slot) (i32.const 1) (i32.add (local.get $slot) (i32.const 8)))))
    (call $check (i32.eq (i32.load offset=8 (local.get $slot)) (local.get $len))))

  (func (export "wasi_thread_start") (param $tid i32) (param $arg i32)
    (local $i i32)
    (i32.atomic.store offset=16 (i32.shl (local.get $arg) (i32.const 2)) (local.get $tid))
    ;; wait for the go
    (block $go
      (loop $wait
        (br_if $go (i32.atomic.load (i32.const 8)))
        (call $check (i32.ne
          (memory.atomic.wait32 (i32.const 8) (i32.const 0) (i64.const 10_000_000_000))
          (i32.const 2)))
        (br $wait)))
    (loop $add
      (drop (i32.atomic.rmw.add (i32.const 0) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $add (i32.lt_u (local.get $i) (global.get $iterations))))
    (call $print (i32.const 128) (i32.const 12) (i32.add (i32.const 256) (i32.shl (local.get $arg) (i32.const 4))))
    (drop (i32.atomic.rmw.add (i32.const 4) (i32.const 1)))
    (drop (memory.atomic.notify (i32.const 4) (i32.const 1))))

  (func (export "_start")
    (local $i i32) (local $j i32) (local $tid i32) (local $seen i32) (local $n i32) (local $p i32)
    (memory.init $done (i32.const 128) (i32.const 0) (i32.const 12))
    (data.drop $done)
    ;; spawn
    (loop $spawn
      (local.set $tid (call $thread_spawn (local.get $i)))
      (call $check (i32.gt_s (local.get $tid) (i32.const 0)))
      (call $check (i32.lt_s (local.get $tid) (i32.const 0x1FFFFFFF)))
      (i32.store offset=48 (i32.shl (local.get $i) (i32.const 2)) (local.get $tid))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $spawn (i32.lt_u (local.get $i) (global.get $threads))))
    (i32.atomic.store (i32.const 8) (i32.const 1))
    (drop (memory.atomic.notify (i32.const 8) (i32.const -1)))
    ;; join: wait until every thread has counted itself finished
    (block $joined
      (loop $wait
        (local.set $seen (i32.atomic.load (i32.const 4)))
        (br_if $joined (i32.eq (local.get $seen) (global.get $threads)))
        ;; 0 = woken, 1 = the count moved on already, 2 = timed out (10 s)
        (call $check (i32.ne
          (memory.atomic.wait32 (i32.const 4) (local.get $seen) (i64.const 10_000_000_000))
          (i32.const 2)))
        (br $wait)))
    ;; ids: each thread saw the id thread-spawn returned; all distinct
    (local.set $i (i32.const 0))
    (loop $ids
      (local.set $tid (i32.load offset=48 (i32.shl (local.get $i) (i32.const 2))))
      (call $check (i32.eq (i32.atomic.load offset=16 (i32.shl (local.get $i) (i32.const 2))) (local.get $tid)))
      (local.set $j (i32.add (local.get $i) (i32.const 1)))
      (block $done_j
        (loop $others
          (br_if $done_j (i32.ge_u (local.get $j) (global.get $threads)))
          (call $check (i32.ne (i32.load offset=48 (i32.shl (local.get $j) (i32.const 2))) (local.get $tid)))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $others)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $ids (i32.lt_u (local.get $i) (global.get $threads))))
    (call $check (i32.eq (i32.atomic.load (i32.const 0)) (i32.mul (global.get $threads) (global.get $iterations))))
    ;; print "counter=N\n": digits backwards from 600, then the prefix
    (local.set $n (i32.atomic.load (i32.const 0)))
    (local.set $p (i32.const 600))
    (i32.store8 (local.get $p) (i32.const 10))
    (loop $digits
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digits (local.get $n)))
    (local.set $p (i32.sub (local.get $p) (i32.const 8)))
    (i64.store (local.get $p) (i64.const 0x3d7265746e756f63)) ;; "counter=" little-endian
    (call $print (local.get $p) (i32.sub (i32.const 601) (local.get $p)) (i32.const 384)))
)
