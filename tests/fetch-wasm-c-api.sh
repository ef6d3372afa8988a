#!/usr/bin/env bash
# Fetches the WebAssembly C API's example programs (wasm-c-api's example/:
# hello.c, callback.c, ... with their .wasm modules) for the C API's
# upstream-examples test (crates/c-api/tests/c_api.rs) into
# $KILN_WASM_C_API_DIR (default: target/wasm-c-api), for machines that
# cannot clone the upstream repository into ../shared/wasm-c-api.
#
# The source is crates.io, which vendors a copy of the upstream repository
# in the wasmer-c-api crate (tests/wasm-c-api/). Version 4.4.0's copy of
# the examples is upstream's own apart from a comment typo in threads.c,
# one added null check in trap.c and the pre-final text syntax of
# hostref.wat (its hostref.wasm is upstream's, byte for byte); its wasm.h
# is Wasmer's edited older header, so only the examples are taken. The
# crate's SHA-256 (from the crates.io index) is checked. Does nothing when
# the directory is already complete.
set -euo pipefail
cd "$(dirname "$0")/.."
crate=wasmer-c-api
version=4.4.0
sha256=3cadbc31d72ed1229723a836d2a06246b9af976cd6185881112915108723f675
dest="${KILN_WASM_C_API_DIR:-target/wasm-c-api}"
if [ -f "$dest/example/hello.c" ] && [ -f "$dest/SOURCE" ]; then
  exit 0
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
curl -sSfL --retry 3 -o "$scratch/c.crate" \
  "https://static.crates.io/crates/$crate/$crate-$version.crate"
echo "$sha256  $scratch/c.crate" | sha256sum --check --quiet
tar -xzf "$scratch/c.crate" -C "$scratch" "$crate-$version/tests/wasm-c-api/example"
rm -rf "$dest"
mkdir -p "$dest"
mv "$scratch/$crate-$version/tests/wasm-c-api/example" "$dest/example"
echo "crates.io $crate $version tests/wasm-c-api/example (sha256 $sha256)" > "$dest/SOURCE"
