#!/usr/bin/env bash
# The image's build and install steps, in one place: the Dockerfile's build stage runs this, and CI runs it on the
# host (deploy/checks/image.sh), because no Docker engine runs there. Builds the release binary and lays out under
# ROOT everything the runtime image holds, nothing more. /opt/switchyard mirrors the repository, so the default
# config serves unchanged (its paths are relative to it); the Dockerfile's ENV moves the listeners and the LLM.
#   ROOT/usr/local/bin/switchyard
#   ROOT/opt/switchyard/lib/libonnxruntime.so.1.31.1         pinned by version and sha256 (deploy/setup/onnxruntime.sh)
#   ROOT/opt/switchyard/classical/models/<entry>/<version>/  the served models, without their test fixtures
#   ROOT/opt/switchyard/deploy/config/                       the default config and policy
#   ROOT/usr/lib/locale/C.utf8                               the locale ONNX Runtime's text operators open
# Usage: deploy/image/stage.sh ROOT
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
stage="${1:?usage: stage.sh ROOT}"
mkdir -p "$stage"
stage="$(cd "$stage" && pwd)"
cd "$repo"

ort="$(deploy/setup/onnxruntime.sh)"
cargo build --release --locked -p switchyard

app="$stage/opt/switchyard"
install -d "$stage/usr/local/bin" "$app/lib" "$app/deploy/config"
install -m 0755 target/release/switchyard "$stage/usr/local/bin/switchyard"
install -m 0644 "$ort" "$app/lib/$(basename "$ort")"
# What the runtime reads (docs/model-operations.md): the graph, its drift profile, the encoder's tokenizer; the
# card and metrics travel with it for whoever inspects the image. Parity and drift fixtures are test data.
for version_dir in classical/models/*/*/; do
  target="$app/$version_dir"
  install -d "$target"
  for file in model.onnx reference_profile.json tokenizer.json MODEL_CARD.md metrics.json; do
    if [ -f "$version_dir/$file" ]; then
      install -m 0644 "$version_dir/$file" "$target/$file"
    fi
  done
done
# ONNX Runtime's StringNormalizer (in the classifier's graph) opens the C.UTF-8 locale: ship glibc's compiled
# locale with the image rather than trust the base to have it (the build stage's glibc is the base's, Debian 12).
install -d "$stage/usr/lib/locale"
cp -R /usr/lib/locale/C.utf8 "$stage/usr/lib/locale/"
install -m 0644 deploy/config/switchyard.toml deploy/config/policy.toml "$app/deploy/config/"
echo "staged into $stage ($(du -sm "$stage" | cut -f1) MB)" >&2
