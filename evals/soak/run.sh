#!/usr/bin/env bash
# The chaos soak (a script, not a test: ~12 minutes): the gateway with the default config, authentication on and
# the real local LLM backend, under mixed traffic at ~70 % of the capacity measured first, while the backend is
# killed and restarted, the policy is rewritten (once invalidly) and malformed, oversized and unauthenticated
# requests are mixed in. Writes evals/soak/results.json, evals/soak/REPORT.md and its plots (evals/soak/*.svg).
# Usage: evals/soak/run.sh [--duration SECONDS]   (default 600)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

ORT_DYLIB_PATH="$(deploy/setup/onnxruntime.sh)"
export ORT_DYLIB_PATH
llama_paths="$(deploy/setup/llama-server.sh)"
mapfile -t llama <<<"$llama_paths"
export SWITCHYARD_LLAMA_SERVER="${llama[0]}" SWITCHYARD_LLAMA_MODEL="${llama[1]}"
cargo build --release --locked -p switchyard -p switchyard-bench

python3 evals/soak/soak.py "$@"
python3 evals/soak/report.py evals/soak/results.json evals/soak
echo "wrote evals/soak/REPORT.md and its plots" >&2
