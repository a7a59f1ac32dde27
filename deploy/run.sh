#!/usr/bin/env bash
# The main job: the gateway serving with its default config and real models, against a local LLM backend.
# Sets up what is missing (ONNX Runtime, llama-server + SmolLM2 weights), starts llama-server, builds and runs
# `switchyard serve`. Ctrl-C (or SIGTERM) stops both. Extra arguments go to `switchyard serve`.
# Switches (deploy/checks/run-ports.sh moves them all and asks for a hybrid answer):
#   SWITCHYARD_LISTEN=host:port        the gRPC port (default 127.0.0.1:50051)
#   SWITCHYARD_ADMIN_LISTEN=host:port  /metrics, /readyz (default 127.0.0.1:9464)
#   SWITCHYARD_LLM_PORT=port           the local llama-server (default 8081); the gateway's backend `local` follows
#   SWITCHYARD_BACKEND_URLS=name=url   point backends elsewhere instead (then no local port is implied)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
llm_port="${SWITCHYARD_LLM_PORT:-8081}"

ORT_DYLIB_PATH="$(deploy/setup/onnxruntime.sh)"
export ORT_DYLIB_PATH
llama_paths="$(deploy/setup/llama-server.sh)"  # a failure here stops the script (set -e)
mapfile -t llama <<<"$llama_paths"
cargo build --release --locked -p switchyard

"${llama[0]}" -m "${llama[1]}" --host 127.0.0.1 --port "$llm_port" -c 2048 -t 2 --alias smollm2 --log-disable &
llama_pid=$!
trap 'kill "$llama_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
    "http://127.0.0.1:$llm_port/health" 2>/dev/null && break
  sleep 0.1
done

# The default config's backend `local` is this llama-server, wherever its port went.
export SWITCHYARD_BACKEND_URLS="${SWITCHYARD_BACKEND_URLS:-local=http://127.0.0.1:$llm_port/v1}"
target/release/switchyard serve "$@" &
gateway_pid=$!
trap 'kill -TERM "$gateway_pid" 2>/dev/null || true' INT TERM
wait "$gateway_pid"
