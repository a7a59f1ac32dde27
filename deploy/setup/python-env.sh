#!/usr/bin/env bash
# A pinned Python environment for tests that drive Switchyard with real Python peers (tritonclient, MLServer).
# Usage: deploy/setup/python-env.sh REQUIREMENTS.txt  -> prints the environment's python on stdout.
# Cached outside the clone, keyed by the requirements file's sha256: a changed pin makes a new environment.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
requirements="$1"
sha="$(sha256sum "$requirements" | cut -c1-16)"
venv="${SWITCHYARD_CACHE:-$HOME/.cache/switchyard}/venvs/$(basename "$requirements" .txt)-$sha"
# shellcheck source=../../classical/training/venv.sh
. "$root/classical/training/venv.sh"
ensure_venv "$venv" "$requirements" "$sha" >&2
echo "$venv/bin/python"
