#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library that `ort` loads (load-dynamic), pinned by version and sha256.
# Source: the PyPI wheel onnxruntime==1.31.1 (manylinux_2_28_x86_64), which ships libonnxruntime.so.1.31.1.
# Cached outside the clone; prints the library's path on stdout (for ORT_DYLIB_PATH).
set -euo pipefail
version=1.31.1
wheel=onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl
wheel_sha256=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
member=onnxruntime/capi/libonnxruntime.so.1.31.1
lib_sha256=fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3

cache="${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}/onnxruntime/$version"
lib="$cache/libonnxruntime.so.$version"
if [ -f "$lib" ] && echo "$lib_sha256  $lib" | sha256sum --check --status; then
  echo "$lib"
  exit 0
fi
mkdir -p "$cache"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "onnxruntime: downloading $wheel from PyPI" >&2
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp \
  "onnxruntime==$version" -d "$tmp" >&2
echo "$wheel_sha256  $tmp/$wheel" | sha256sum --check --quiet >&2
python3 - "$tmp/$wheel" "$member" "$tmp/lib" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
echo "$lib_sha256  $tmp/lib" | sha256sum --check --quiet >&2
mv "$tmp/lib" "$lib"
echo "$lib"
