#!/usr/bin/env bash
# The benchmark command (apart from the test suite; never a timed assertion): builds release binaries, installs
# the load generator and the peers (pinned, cached under ~/.cache/switchyard/bench), runs every scenario in one
# run and writes evals/bench/results.json and BENCHMARKS.md. Takes ~15 minutes; --quick shortens each run.
# Usage: evals/bench/run.sh [--quick]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
here="$root/evals/bench"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/bench"
mkdir -p "$cache"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v h2load >/dev/null; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null
fi

# A virtual environment per requirements file, keyed by its hash so a changed pin makes a new one.
venv() {
  local requirements="$1" dir
  dir="$cache/$(basename "$requirements" .txt)-$(sha256sum "$requirements" | cut -c1-12)"
  if [ ! -f "$dir/.installed" ]; then
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    touch "$dir/.installed"
  fi
  echo "$dir"
}
SWITCHYARD_BENCH_PEER_VENV="$(venv "$here/peer/requirements.txt")"
SWITCHYARD_BENCH_LITELLM_VENV="$(venv "$here/peer/litellm-requirements.txt")"
export SWITCHYARD_BENCH_PEER_VENV SWITCHYARD_BENCH_LITELLM_VENV

ORT_DYLIB_PATH="$(deploy/setup/onnxruntime.sh)"
export ORT_DYLIB_PATH
cargo build --release --locked -p switchyard -p switchyard-bench
cargo bench --locked -p classical --bench inference -- --warm-up-time 1 --measurement-time 3 >&2

python3 "$here/bench.py" --out "$here/results.json" "$@"
python3 "$here/report.py" "$here/results.json" >"$root/BENCHMARKS.md"
echo "wrote BENCHMARKS.md and evals/bench/results.json" >&2
