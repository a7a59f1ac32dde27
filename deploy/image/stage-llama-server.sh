#!/usr/bin/env bash
# The LLM image's build step (deploy/image/llama-server.Dockerfile runs it; deploy/checks/image.sh runs it on the
# host over the same base and asks the server for an answer): llama-server and the SmolLM2 GGUF from
# deploy/setup/llama-server.sh, laid out under ROOT as the image holds them:
#   ROOT/usr/local/bin/llama-server
#   ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf
# Usage: deploy/image/stage-llama-server.sh ROOT
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
stage="${1:?usage: stage-llama-server.sh ROOT}"
mapfile -t llama < <("$repo/deploy/setup/llama-server.sh")
install -D -m 0755 "${llama[0]}" "$stage/usr/local/bin/llama-server"
install -D -m 0644 "${llama[1]}" "$stage/models/SmolLM2-135M-Instruct.Q4_1.gguf"
