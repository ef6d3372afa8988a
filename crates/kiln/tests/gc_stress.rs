//! The GC stress test: wasm builds and drops deep lists, cyclic rings,
//! wide arrays and trees at a fixed GC heap limit, round after round,
//! while a few structures live across rounds and are replaced (so old data
//! dies too): about 14 MB live at a 64 MiB limit, so the heap runs near
//! its limit. The heap must stay within its limit, every checksum must be
//! right after being moved by many collections, and the process's memory
//! must stay flat.
//!
//! Its own test binary, so that the process's resident memory is this
//! test's alone. By default it runs 90 rounds (several seconds); set
//! `KILN_GC_STRESS_SECS` to run longer (e.g. `KILN_GC_STRESS_SECS=300
//! cargo test --release -p kiln --test gc_stress -- --nocapture` for
//! minutes of CPU, printing memory per round).

use kiln::{Config, Engine, Instance, Module, Store, WasmFeature};
use std::time::{Duration, Instant};

const LIMIT: u64 = 64 << 20;

const STRESS: &str = r#"
    (module
      (type $node (struct (field $v (mut i32)) (field $next (mut (ref null $node)))))
      (type $tree (struct (field $l (ref null $tree)) (field $r (ref null $tree)) (field $v i32)))
      (type $nodes (array (mut (ref null $node))))
      (type $bytes (array (mut i8)))
      (global $keep (mut (ref null $nodes)) (ref.null $nodes))
      (table $ring_keep 8 (ref null $node))

      ;; A list of n nodes n..1, head first.
      (func $list (param $n i32) (result (ref null $node))
        (local $l (ref null $node))
        (block $done
          (loop $more
            (br_if $done (i32.eqz (local.get $n)))
            (local.set $l (struct.new $node (local.get $n) (local.get $l)))
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br $more)))
        (local.get $l))

      (func $sum (param $n (ref null $node)) (result i32)
        (local $s i32)
        (block $done
          (loop $next
            (br_if $done (ref.is_null (local.get $n)))
            (local.set $s (i32.add (local.get $s) (struct.get $node $v (local.get $n))))
            (local.set $n (struct.get $node $next (local.get $n)))
            (br $next)))
        (local.get $s))

      ;; A ring of n nodes (the last points back at the first).
      (func $ring (param $n i32) (result (ref $node))
        (local $first (ref null $node))
        (local $l (ref null $node))
        (local.set $first (struct.new $node (local.get $n) (ref.null $node)))
        (local.set $l (local.get $first))
        (block $done
          (loop $more
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br_if $done (i32.eqz (local.get $n)))
            (local.set $l (struct.new $node (local.get $n) (local.get $l)))
            (br $more)))
        (struct.set $node $next (ref.as_non_null (local.get $first)) (local.get $l))
        (ref.as_non_null (local.get $first)))

      ;; The sum of a ring's values, once round.
      (func $ring_sum (param $r (ref $node)) (result i32)
        (local $n (ref null $node))
        (local $s i32)
        (local.set $s (struct.get $node $v (local.get $r)))
        (local.set $n (struct.get $node $next (local.get $r)))
        (block $done
          (loop $next
            (br_if $done (ref.eq (local.get $n) (local.get $r)))
            (local.set $s (i32.add (local.get $s) (struct.get $node $v (local.get $n))))
            (local.set $n (struct.get $node $next (local.get $n)))
            (br $next)))
        (local.get $s))

      (func $tree (param $d i32) (result (ref $tree))
        (if (result (ref $tree)) (i32.eqz (local.get $d))
          (then (struct.new $tree (ref.null $tree) (ref.null $tree) (i32.const 1)))
          (else (struct.new $tree
                  (call $tree (i32.sub (local.get $d) (i32.const 1)))
                  (call $tree (i32.sub (local.get $d) (i32.const 1)))
                  (local.get $d)))))

      (func $count (param $t (ref null $tree)) (result i32)
        (if (result i32) (ref.is_null (local.get $t))
          (then (i32.const 0))
          (else (i32.add (i32.const 1)
                  (i32.add (call $count (struct.get $tree $l (local.get $t)))
                           (call $count (struct.get $tree $r (local.get $t))))))))

      ;; One round; returns a checksum that only a correct heap gives.
      ;; Lives across rounds: `$keep` (an array of lists, one slot replaced
      ;; per round) and `$ring_keep` (rings, one replaced per round).
      (func (export "round") (param $i i32) (result i32)
        (local $check i32)
        (local $deep (ref null $node))
        (local $ring (ref $node))
        (local $t (ref $tree))
        (local $k i32)
        (if (ref.is_null (global.get $keep))
          (then (global.set $keep (array.new_default $nodes (i32.const 16)))))
        ;; A deep list, held across everything else this round.
        (local.set $deep (call $list (i32.const 100000)))
        ;; A long garbage list.
        (drop (call $list (i32.const 200000)))
        ;; Garbage trees, with one kept until the end of the round.
        (local.set $t (call $tree (i32.const 12)))
        (drop (call $tree (i32.const 11)))
        ;; Cyclic rings: one dropped at once, one kept across rounds.
        (drop (call $ring (i32.const 3000)))
        (local.set $ring (call $ring (i32.const 2000)))
        (table.set $ring_keep (i32.and (local.get $i) (i32.const 7)) (local.get $ring))
        ;; Byte arrays (no references), dropped.
        (local.set $k (i32.const 64))
        (block $done
          (loop $more
            (drop (array.new_default $bytes (i32.const 4000)))
            (local.set $k (i32.sub (local.get $k) (i32.const 1)))
            (br_if $more (local.get $k))))
        ;; Replace one long-lived list.
        (array.set $nodes (global.get $keep) (i32.and (local.get $i) (i32.const 15))
          (call $list (i32.const 50000)))
        ;; Checksums over what lived through the round's collections.
        (local.set $check (call $sum (local.get $deep)))
        (local.set $check (i32.add (local.get $check) (call $count (local.get $t))))
        (local.set $check (i32.add (local.get $check)
          (call $ring_sum (ref.as_non_null (table.get $ring_keep (i32.const 0))))))
        (local.set $k (i32.const 0))
        (block $done
          (loop $more
            (local.set $check (i32.add (local.get $check)
              (call $sum (array.get $nodes (global.get $keep) (local.get $k)))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br_if $more (i32.lt_u (local.get $k) (i32.const 16)))))
        (local.get $check)))
"#;

/// The sum 1 + ... + n.
fn tri(n: i64) -> i64 {
    n * (n + 1) / 2
}

/// What round `i` returns: the deep list, a tree of depth 12, the ring
/// in table slot 0 (set by round 0, replaced every 8th round) and the
/// long-lived lists filled so far.
fn expected(i: i64) -> i32 {
    let lists = (i + 1).min(16);
    (tri(100_000) + (1 << 13) - 1 + tri(2000) + lists * tri(50_000)) as i32
}

/// The process's resident memory in KiB, from `/proc/self/status`.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn deep_and_cyclic_structures_at_a_fixed_limit_keep_memory_flat() -> kiln::Result<()> {
    let secs: u64 = std::env::var("KILN_GC_STRESS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let verbose = std::env::var_os("KILN_GC_STRESS_SECS").is_some();
    let mut config = Config::new();
    config.wasm_feature_set(WasmFeature::Gc, true).max_gc_heap_size(LIMIT);
    let engine = Engine::new(&config)?;
    let module = Module::new(&engine, STRESS)?;
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[])?;
    let round = instance.get_typed_func::<i32, i32>(&mut store, "round")?;

    // Rounds before WARM_UP fill the long-lived structures and let both
    // spaces reach their working size; resident memory is then measured
    // over [WARM_UP, 2 × WARM_UP) and over every later round.
    const WARM_UP: i32 = 30;
    let start = Instant::now();
    let (mut warm_rss, mut later_rss) = (0, 0);
    let mut i = 0i32;
    while i < 3 * WARM_UP || start.elapsed() < Duration::from_secs(secs) {
        let got = round.call(&mut store, i)?;
        assert_eq!(got, expected(i.into()), "round {i}'s checksum");
        let stats = store.gc_heap_stats().expect("the store has a GC heap");
        assert!(stats.capacity <= LIMIT, "round {i}: capacity {} over the limit", stats.capacity);
        let rss = rss_kib().unwrap_or(0);
        if (WARM_UP..2 * WARM_UP).contains(&i) {
            warm_rss = warm_rss.max(rss);
        } else if i >= 2 * WARM_UP {
            later_rss = later_rss.max(rss);
        }
        if verbose && i % 50 == 0 {
            eprintln!(
                "round {i}: {:.0} s, {} collections, live {} KiB, capacity {} KiB, RSS {rss} KiB",
                start.elapsed().as_secs_f64(),
                stats.collections,
                stats.live_bytes >> 10,
                stats.capacity >> 10
            );
        }
        i += 1;
    }
    let stats = store.gc_heap_stats().expect("the store has a GC heap");
    assert!(stats.collections >= 10, "only {} collections in {i} rounds", stats.collections);
    if warm_rss > 0 {
        // Flat: however long the run, resident memory stays within 8 MiB
        // of what it was just after the warm-up.
        assert!(
            later_rss <= warm_rss + (8 << 10),
            "RSS grew from {warm_rss} KiB (rounds {WARM_UP}..{}) to {later_rss} KiB (later rounds)",
            2 * WARM_UP
        );
        eprintln!(
            "{i} rounds, {} collections; peak RSS {warm_rss} KiB in rounds {WARM_UP}..{}, {later_rss} KiB after",
            stats.collections,
            2 * WARM_UP
        );
    }
    Ok(())
}
