#!/bin/sh
# Fetches a large real wasm32-wasi program for the instantiation and cache
# benchmarks: YoWASP Yosys (34,004 functions, 30 MB; ISC licence) from npm.
# Usage: benches/fetch-yosys.sh [DIR]   (default: target/bench-data)
set -eu
dir=${1:-target/bench-data}
mkdir -p "$dir"
cd "$dir"
if [ ! -f yosys.core.wasm ]; then
    npm pack @yowasp/yosys@0.55.944 >/dev/null
    tar xzf yowasp-yosys-0.55.944.tgz package/gen/yosys.core.wasm
    mv package/gen/yosys.core.wasm .
    rm -rf package yowasp-yosys-0.55.944.tgz
fi
echo "$dir/yosys.core.wasm"
