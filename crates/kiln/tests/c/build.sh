#!/usr/bin/env bash
# Rebuilds the C test programs: each .c becomes a .wasm (clang, wasm32-wasi,
# -O2 -msimd128, no libc start files: the tests call the exported functions)
# and a native build whose output is the .expected file the tests compare
# against. Needs Debian's clang lld wasi-libc libclang-rt-14-dev-wasm32.
set -euo pipefail
cd "$(dirname "$0")"
for src in simd_auto.c simd_intrinsics.c; do
  name=$(basename "$src" .c)
  exports=$(grep -oE '^uint64_t [a-z0-9_]+\(void\)' "$src" | sed -E 's/uint64_t ([a-z0-9_]+).*/-Wl,--export=\1/' | tr '\n' ' ')
  clang --target=wasm32-wasi -O2 -msimd128 -nostartfiles -Wl,--no-entry $exports -Wl,--strip-debug "$src" -o "$name.wasm"
  gcc -O2 "$src" -o "/tmp/$name.native"
  "/tmp/$name.native" > "$name.expected"
  echo "$name: $(wc -c < "$name.wasm") bytes, $(wc -l < "$name.expected") checks"
done
