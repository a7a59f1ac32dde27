#!/usr/bin/env bash
# Everything deploy/ ships that a tool can check without a cluster or a Docker engine:
#   - Kubernetes: both overlays render (kubectl kustomize) and validate against the Kubernetes 1.37 schemas,
#     strictly (kubernetes-validate), and agree with the config they mount (k8s_wiring.py: ports, mounted
#     paths); the PrometheusRule is current with alerts.yml; the cluster's policy is the repository's default
#   - alert rules: promtool check rules and promtool test rules
#   - Dockerfiles: hadolint; compose: the Compose Specification's schema and the files it mounts; workflows:
#     actionlint (with shellcheck) and the GitHub workflow schema; shell scripts under deploy/: shellcheck
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
. deploy/checks/lib.sh

python="$(deploy/setup/python-env.sh deploy/setup/requirements-deploy-checks.txt)"
tools="$(dirname "$python")"
promtool="$(deploy/setup/prometheus.sh | sed -n 2p)"
command -v kubectl >/dev/null || fail "kubectl is not on PATH (it ships with the machine image)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for overlay in dev prod; do
  kubectl kustomize "deploy/k8s/overlays/$overlay" >"$work/$overlay.yaml"
  # CRDs (ServiceMonitor, PrometheusRule, Certificate, InferenceService) have no schema here: warned, not failed.
  "$tools/kubernetes-validate" --strict --quiet --kubernetes-version 1.37.0 "$work/$overlay.yaml" \
    || fail "the $overlay overlay does not validate"
  "$python" deploy/checks/k8s_wiring.py "$work/$overlay.yaml"
  echo "manifests: overlay $overlay renders, validates and agrees with its config ($(grep -c '^kind:' "$work/$overlay.yaml") resources)"
done
"$python" deploy/observability/prometheusrule.py --check
cmp -s deploy/config/policy.toml deploy/k8s/base/policy/policy.toml \
  || fail "deploy/k8s/base/policy/policy.toml differs from deploy/config/policy.toml (the evals gate the latter)"
echo "manifests: the PrometheusRule and the cluster's policy are current"

(cd deploy/observability && "$promtool" check rules alerts.yml && "$promtool" test rules alerts.test.yml)

"$tools/hadolint" deploy/image/Dockerfile deploy/image/llama-server.Dockerfile
"$tools/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml
# Every file compose mounts or builds from exists (the schema cannot know).
"$python" - deploy/compose.yaml <<'PY'
import pathlib, sys, yaml
compose = pathlib.Path(sys.argv[1])
missing = []
for name, service in yaml.safe_load(compose.read_text())["services"].items():
    build = service.get("build")
    if build:
        context = compose.parent / build["context"]
        missing += [f"{name}: {p}" for p in (context, context / build["dockerfile"]) if not p.exists()]
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            missing += [f"{name}: {source}"] if not (compose.parent / source).exists() else []
if missing:
    sys.exit("compose.yaml names files that do not exist: " + ", ".join(missing))
PY
PATH="$tools:$PATH" "$tools/actionlint" -no-color
"$tools/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
"$tools/shellcheck" -x -P SCRIPTDIR deploy/*.sh deploy/checks/*.sh deploy/setup/*.sh deploy/image/*.sh
echo "manifests: Dockerfiles, compose, workflows and scripts lint clean"
