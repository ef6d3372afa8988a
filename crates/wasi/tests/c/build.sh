#!/usr/bin/env bash
# Rebuilds the C test programs of kiln-wasi: each NAME.c becomes NAME.wasm
# (wasm32-wasi, -O2, debug info stripped). The .wasm files are committed,
# so `cargo test` needs no C toolchain; run this after changing a .c file.
# Needs Debian's clang lld wasi-libc libclang-rt-14-dev-wasm32.
set -euo pipefail
cd "$(dirname "$0")"
for src in *.c; do
  name=$(basename "$src" .c)
  clang --target=wasm32-wasi -O2 -Wall -Werror -Wl,--strip-debug "$src" -o "$name.wasm"
  echo "$name.wasm: $(wc -c < "$name.wasm") bytes"
done
