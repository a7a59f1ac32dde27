#!/usr/bin/env bash
# Train both classical models from classical/data into classical/models, in a pinned virtual environment.
# Usage: classical/training/train.sh [--only churn|classifier|profiles]  (profiles: the drift reference profiles only)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${SWITCHYARD_TRAINING_VENV:-$here/.venv}"
# shellcheck source=venv.sh
. "$here/venv.sh"
ensure_venv "$venv" "$here/requirements.txt" "$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
cd "$here"
# One BLAS/OpenMP thread: summation order then never depends on the machine's core count, so reruns match.
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0 exec "$venv/bin/python" train.py "$@"
