#!/bin/bash
# Builds the cold-start corpus: WASI preview 1 programs (wasm32-wasi) from the
# C sources shipped inside crates.io packages, each with a small driver from
# drivers/. Output: .work/wasm/*.wasm (not committed).
#
# Needs Debian's clang, lld, wasi-libc and libclang-rt-14-dev-wasm32:
#   apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32
# and cargo (only to fetch the crates' sources into ~/.cargo/registry).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=$here/.work
out=$work/wasm
mkdir -p "$out" "$work/fetch/src"

CC=${CC:-clang}
CFLAGS=(--target=wasm32-wasi --sysroot=/usr -O2 -w)
# A 1 MiB stack instead of wasm-ld's 64 KiB (SQLite's parser and Lua recurse);
# --strip-debug drops the DWARF that Debian's libc.a brings in, so the sizes
# are those of code and data.
LDFLAGS=(-Wl,-z,stack-size=1048576 -Wl,--strip-debug)

# 1. Fetch the pinned crates (sources only; nothing is compiled by cargo).
cat > "$work/fetch/Cargo.toml" <<'TOML'
[package]
name = "cold-start-sources"
version = "0.0.0"
edition = "2021"
publish = false
[workspace]
[dependencies]
libsqlite3-sys = "=0.40.0"
zstd-sys = "=2.2.0"
pcre2-sys = "=0.2.10"
lua-src = "=551.1.0"
rquickjs-sys = "=0.14.0"
TOML
echo 'fn main() {}' > "$work/fetch/src/main.rs"
(cd "$work/fetch" && cargo fetch -q)
src_of() { # crate name -> directory of its unpacked source
    (cd "$work/fetch" && cargo metadata -q --format-version 1) | python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == sys.argv[1]:
        print(os.path.dirname(p["manifest_path"])); break' "$1"
}
sqlite=$(src_of libsqlite3-sys)
zstd=$(src_of zstd-sys)
pcre2=$(src_of pcre2-sys)
lua=$(src_of lua-src)/lua-5.4.9
qjs=$(src_of rquickjs-sys)/quickjs

build() { # name, then compiler arguments
    local name=$1; shift
    echo "building $name.wasm" >&2
    "$CC" "${CFLAGS[@]}" "$@" "${LDFLAGS[@]}" -o "$out/$name.wasm"
}

# SQLite amalgamation (libsqlite3-sys 0.40.0) with the crate's own wasm32-wasi
# VFS (a POSIX-file VFS without locks or mmap); the driver uses :memory:.
build sqlite "$here/drivers/sqlite_bench.c" "$sqlite/sqlite3/sqlite3.c" "$sqlite/sqlite3/wasm32-wasi-vfs.c" \
    -I"$sqlite/sqlite3" -DSQLITE_OS_OTHER=1 -DSQLITE_THREADSAFE=0 -DSQLITE_OMIT_LOAD_EXTENSION \
    -DSQLITE_ENABLE_FTS5 -DSQLITE_ENABLE_RTREE -DSQLITE_ENABLE_MATH_FUNCTIONS -DLONGDOUBLE_TYPE=double \
    -D_WASI_EMULATED_PROCESS_CLOCKS -lwasi-emulated-process-clocks

# zstd (zstd-sys 2.2.0): the whole library, compressor, decompressor and
# dictionary builder, single-threaded.
build zstd "$here/drivers/zstd_bench.c" \
    "$zstd"/zstd/lib/common/*.c "$zstd"/zstd/lib/compress/*.c "$zstd"/zstd/lib/decompress/*.c \
    "$zstd"/zstd/lib/dictBuilder/*.c -I"$zstd/zstd/lib" -DZSTD_DISABLE_ASM \
    -DZSTD_LEGACY_SUPPORT=0

# PCRE2 (pcre2-sys 0.2.10), 8-bit, Unicode, interpreter (no JIT on wasm).
pcre2_src=()
for f in "$pcre2"/upstream/src/*.c; do
    case $(basename "$f") in
        pcre2_jit_match.c|pcre2_jit_misc.c|pcre2_ucptables.c) ;; # #included by others
        *) pcre2_src+=("$f") ;;
    esac
done
build pcre2 "$here/drivers/pcre2_bench.c" "${pcre2_src[@]}" \
    -I"$pcre2/upstream/src" -I"$pcre2/upstream/include" \
    -DPCRE2_CODE_UNIT_WIDTH=8 -DHAVE_STDLIB_H=1 -DHAVE_MEMMOVE=1 -DHAVE_CONFIG_H=1 \
    -DPCRE2_STATIC=1 -DSTDC_HEADERS=1 -DSUPPORT_PCRE2_8=1 -DSUPPORT_UNICODE=1

# Lua 5.4.9 (lua-src 551.1.0), the whole library without lua.c/luac.c.
# wasi-libc has no setjmp: an empty setjmp.h plus drivers/lua_wasi_nojmp.h.
mkdir -p "$work/lua-shim"
: > "$work/lua-shim/setjmp.h"
lua_src=()
for f in "$lua"/*.c; do
    case $(basename "$f") in lua.c|luac.c|onelua.c) ;; *) lua_src+=("$f") ;; esac
done
build lua "$here/drivers/lua_bench.c" "${lua_src[@]}" -I"$work/lua-shim" -I"$lua" \
    -include "$here/drivers/lua_wasi_nojmp.h" -DLUA_COMPAT_5_3 \
    -D_WASI_EMULATED_PROCESS_CLOCKS -D_WASI_EMULATED_SIGNAL \
    -lwasi-emulated-process-clocks -lwasi-emulated-signal

# QuickJS-ng 0.16.2 (rquickjs-sys 0.14.0): the engine without quickjs-libc,
# with the defines the crate's build.rs uses for wasi.
build quickjs "$here/drivers/quickjs_bench.c" "$qjs"/libregexp.c "$qjs"/libunicode.c "$qjs"/quickjs.c \
    "$qjs"/dtoa.c -I"$qjs" -D_GNU_SOURCE -DNDEBUG -DEMSCRIPTEN=1 -DFE_DOWNWARD=0 -DFE_UPWARD=0 \
    -D_WASI_EMULATED_PROCESS_CLOCKS -lwasi-emulated-process-clocks

ls -l "$out"/*.wasm >&2
