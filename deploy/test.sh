#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine: fetches what the tests use, then runs them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Training data is committed with its checksums: fail early if a file changed without a retrain.
(cd classical/data && sha256sum --check --quiet SHA256SUMS)

ORT_DYLIB_PATH="$(deploy/setup/onnxruntime.sh)"
export ORT_DYLIB_PATH
# The real local LLM backend the integration tests start (built once, cached).
llama_paths="$(deploy/setup/llama-server.sh)"  # a failure here stops the script (set -e)
mapfile -t llama <<<"$llama_paths"
export SWITCHYARD_LLAMA_SERVER="${llama[0]}" SWITCHYARD_LLAMA_MODEL="${llama[1]}"
# The Open Inference Protocol's standard client (pinned environment, cached) for router/tests/inference.rs.
SWITCHYARD_TRITONCLIENT_PYTHON="$(deploy/setup/python-env.sh deploy/setup/requirements-tritonclient.txt)"
export SWITCHYARD_TRITONCLIENT_PYTHON
# A real Open Inference Protocol server (MLServer with the scikit-learn churn pipeline) for router/tests/remote_scorer.rs.
SWITCHYARD_MLSERVER_PYTHON="$(deploy/setup/python-env.sh deploy/setup/requirements-mlserver.txt)"
export SWITCHYARD_MLSERVER_PYTHON
# The training environment (MLflow included) for the registry test (router/tests/registry.rs).
SWITCHYARD_TRAINING_PYTHON="$(deploy/setup/python-env.sh classical/training/requirements.txt)"
export SWITCHYARD_TRAINING_PYTHON

# A real Prometheus for router/tests/dashboards.rs (scrapes a gateway, runs every dashboard query and alert rule).
SWITCHYARD_PROMETHEUS="$(deploy/setup/prometheus.sh | sed -n 1p)"
export SWITCHYARD_PROMETHEUS

# Supply chain: licences, banned crates, sources (deny.toml). Pinned, installed once into ~/.cargo/bin.
deny_version=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $deny_version" ]; then
  cargo install --locked --quiet cargo-deny --version "$deny_version"
fi
# cargo deny reads every platform's crates (cargo metadata): fetch them all first, a fresh registry cache has only
# what this platform's builds needed.
cargo fetch --locked --quiet
cargo deny --offline check licenses bans sources

# deploy/: overlays rendered and validated, alert rules checked and unit-tested, Dockerfiles, compose, workflows
# and scripts linted (no cluster, no Docker engine needed).
deploy/checks/manifests.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The container image's layout, staged on the host and served (the Dockerfile runs the same stage.sh), then the
# main command with every documented port moved answering a hybrid request.
deploy/checks/image.sh
deploy/checks/run-ports.sh
# The offline eval gates on the committed models (evals/gates.toml): a table, and a failure if any gate fails.
cargo run --locked --quiet -p switchyard-evals -- gate
