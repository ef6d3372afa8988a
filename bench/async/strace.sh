#!/bin/sh
# Counts the system calls the async calls make: runs `calls` (src/bin/calls.rs)
# under `strace -f -c` with 1 and then N (default 100,000) calls of each kind
# (`async`: call_async of a nop; `pause`: call_async of an export whose async
# host function is pending once; `sync`: the synchronous call), Kiln and
# Wasmtime 48, and prints the memory system calls (mmap, munmap, mprotect,
# madvise, mremap, brk), futex and sched_yield, and the total of all system
# calls of each run. A count that grows with N would be a system call per
# call; the setup (compiling the module on the compiler's threads, the first
# async stack) is the same in both runs, give or take what those threads do
# (Kiln's rayon workers: their mmap/munmap/sched_yield counts vary a little
# from run to run).
#
#     cd bench/async && ./strace.sh [N]
#
# Needs strace (apt-get install -y strace). Builds with CARGO_TARGET_DIR if
# it is set (as for `cargo bench`), else in ./target.
set -eu
cd "$(dirname "$0")"
N="${1:-100000}"
command -v strace >/dev/null || { echo "strace is not installed (apt-get install -y strace)" >&2; exit 1; }
cargo build --release --quiet --bin calls
BIN="${CARGO_TARGET_DIR:-target}/release/calls"
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT

for runtime in kiln wasmtime; do
  for mode in async pause sync; do
    for n in 1 "$N"; do
      # All system calls, counted per name; the program's own line goes to stdout.
      strace -f -c -o "$OUT" "$BIN" "$runtime" "$n" "$mode" >/dev/null
      echo "== $runtime $mode, $n call(s): calls per system call"
      awk '{ n[$NF] = $4 }
           END {
             # The errors column is empty for most rows: calls is field 4.
             # futex and sched_yield: the compiler threads of the setup,
             # whose count varies from run to run.
             split("mmap munmap mprotect madvise mremap brk futex sched_yield total", order, " ")
             for (i = 1; i <= 9; i++) printf "   %-11s %6s\n", order[i], (order[i] in n ? n[order[i]] : 0)
           }' "$OUT"
    done
  done
done
