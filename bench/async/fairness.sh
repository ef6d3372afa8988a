#!/usr/bin/env bash
# The fairness run (src/bin/fairness.rs) for both runtimes, alternating:
# kiln, wasmtime, kiln, wasmtime, each in its own process (so each peak
# RSS is one runtime's), then a Markdown table of the four runs.
#
#   ./fairness.sh [--guests N] [--seconds S] [--fuel] [--tick-us N] [--rt-ticker]
#                 [--tickers N] [--first-deadline N] [--kiln-polled-epochs]
#   # default 10,000 guests, 10 s, epoch slicing with a 1 ms ticker of normal priority
#
# BIN=path runs that fairness binary instead of building one (with
# `cargo build --release`, in $CARGO_TARGET_DIR). NICE=n (negative: as
# root) is for a shared machine: epoch slices are wall-clock time, so a
# process taking a core from the executor threads makes them unequal in
# CPU time. The script then moves to a session of its own and gives that
# session's autogroup the nice value n (with autogroups, the kernel's
# default, a plain `nice` only ranks processes within their own session),
# and runs the processes under `nice -n n` too. Raw output goes to
# fairness-<mode>.log in $LOG_DIR
# (default: a temporary directory, printed).
set -euo pipefail
if [ -n "${NICE:-}" ] && [ -z "${FAIRNESS_OWN_SESSION:-}" ]; then
  FAIRNESS_OWN_SESSION=1 exec setsid --wait "$0" "$@"
fi
if [ -n "${NICE:-}" ] && ! echo "$NICE" 2>/dev/null >/proc/self/autogroup; then
  echo "note: could not set the autogroup's nice value" >&2
fi
cd "$(dirname "$0")"
if [ -n "${BIN:-}" ]; then
  bin="$BIN"
else
  cargo build --release --bin fairness --bin cpu_speed >&2
  bin="${CARGO_TARGET_DIR:-target}/release/fairness"
fi
# The machine's own share of the unfairness: cpu_speed (beside the
# fairness binary) measures each CPU's speed in slices of the tick
# period, before and after the runs, and prints the max/min of work per
# guest a perfect scheduler would give on those speeds.
speed="$(dirname "$bin")/cpu_speed"
chunk_us=1000 guests=10000 prev=
for a in "$@"; do
  case "$prev" in --tick-us) chunk_us="$a" ;; --guests) guests="$a" ;; esac
  prev="$a"
done
machine() {
  if [ -x "$speed" ]; then
    echo "== machine speed ($1)" >&2
    "${prefix[@]}" "$speed" --seconds 10 --chunk-us "$chunk_us" --guests "$guests" 2>&1 | tee -a "$log" >&2
  fi
}
mode=epoch
for a in "$@"; do [ "$a" = --fuel ] && mode=fuel; done
log_dir="${LOG_DIR:-$(mktemp -d)}"
log="$log_dir/fairness-$mode.log"
: >"$log"
prefix=()
[ -n "${NICE:-}" ] && prefix=(nice -n "$NICE")
machine before
for rt in kiln wasmtime kiln wasmtime; do
  echo "== $rt $* (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  "${prefix[@]}" "$bin" "$rt" "$@" 2>&1 | tee -a "$log" >&2
done
machine after
echo "raw output: $log" >&2
echo
grep 'guests, perfect slices' "$log" | sed 's/^/machine: /'
echo
echo "| run | runtime | mode | min | p1 | median | p99 | max | max/min | last first progress | progressed ≤ 1 s | never | turns min/med/max | epoch ticks | longest gap / gaps > 2× period | first report after turn 1 | µs per tick (mean/max) | CPU ms per guest (min/p1/median/p99/max) | stop | CPU | peak RSS | all guests, iterations/s | load avg |"
echo "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
grep '^RESULT ' "$log" | awk '
  function m(x) { return sprintf("%.2fM", x / 1e6) }
  {
    delete kv
    for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
    load = $0; sub(/.*load="/, "", load); sub(/"$/, "", load)
    printf "| %d | %s | %s | %s | %s | %s | %s | %s | %.2f | %.3f s | %d / %d | %d | %d/%d/%d | %d | %.2f ms / %d | %d | %.1f/%.0f | %.2f/%.2f/%.2f/%.2f/%.2f | %.3f s | %d %% | %.1f MiB | %.2e | %s |\n",
      NR, kv["runtime"], kv["mode"], m(kv["min"]), m(kv["p1"]), m(kv["median"]), m(kv["p99"]), m(kv["max"]),
      kv["ratio"], kv["last_first_s"], kv["within_1s"], kv["guests"], kv["never"], kv["turns_min"], kv["turns_median"], kv["turns_max"], kv["ticks"], kv["gap_max_us"] / 1000, kv["long_gaps"], kv["late_first"], kv["tick_us"], kv["tick_max_us"], kv["cpu_ms_min"], kv["cpu_ms_p1"], kv["cpu_ms_median"], kv["cpu_ms_p99"], kv["cpu_ms_max"], kv["stop_s"], kv["cpu_pct"],
      kv["peak_rss_mib"], kv["total_per_s"], load
  }'
