#!/usr/bin/env bash
# The container image, built and run without a Docker engine. deploy/image/stage.sh (the Dockerfile's build step)
# lays the image's files out over a root holding what the runtime base holds (the Debian 12 packages of
# gcr.io/distroless/cc-debian12: glibc, libgcc, libstdc++, libgomp, libssl, tzdata, netbase, base-files, and a CA
# bundle), and the gateway must serve from that root alone, as the image's user:
#   - size: the whole root stays under the 150 MB target
#   - serving: chrooted into the root as uid 65532 with only the image's environment, the gateway reports
#     SERVING to `switchyard health`, scores a customer, and exits 0 on SIGTERM (a library, locale or file the
#     image lacks fails here, not in production)
#   - the Kubernetes configs (base and prod overlay) validate against the staged models
#   - the LLM image (deploy/image/llama-server.Dockerfile) answers a chat completion from the same base
# Needs root (chroot, and /proc mounted in the root as a container runtime does).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
. deploy/checks/lib.sh
[ "$(id -u)" -eq 0 ] || fail "image.sh needs root (chroot into the staged image)"

work="$(mktemp -d)"
root="$work/root"
cleanup() {
  umount "$root/proc" 2>/dev/null || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

base_packages="libc6 libgcc-s1 libstdc++6 libgomp1 libssl3 tzdata netbase base-files"
mkdir -p "$work/debs" "$root/etc/ssl/certs" "$root/proc"
# shellcheck disable=SC2086 # one word per package
if ! (cd "$work/debs" && apt-get download $base_packages >/dev/null 2>&1); then
  apt-get update -qq
  (cd "$work/debs" && apt-get download $base_packages >/dev/null)
fi
for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$root"
done
# distroless generates its CA bundle from Debian's ca-certificates at build time; the host's is the same bundle.
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"

deploy/image/stage.sh "$root"
binary="$root/usr/local/bin/switchyard"
app="$root/opt/switchyard"
ort="$app/lib/libonnxruntime.so.1.31.1"

image_mb=$(( $(du -sb "$root" | cut -f1) / 1000000 ))
echo "image: ${image_mb} MB (the base's packages with their docs, and the staged files; target < 150 MB)"
[ "$image_mb" -lt 150 ] || fail "the image would be ${image_mb} MB"

# The Kubernetes configs name the image's paths (/opt/switchyard/...) and the mounts (/etc/switchyard/...): check
# both overlays' against the staged tree, with the dev key digests and a throwaway certificate in the mounts' place.
mounts="$work/mounts"
install -d "$mounts/policy" "$mounts/keys" "$mounts/tls"
cp deploy/k8s/base/policy/policy.toml "$mounts/policy/policy.toml"
cp deploy/k8s/overlays/dev/dev-keys.toml "$mounts/keys/keys.toml"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=switchyard \
  -keyout "$mounts/tls/tls.key" -out "$mounts/tls/tls.crt" 2>/dev/null
for config in deploy/k8s/base/config/switchyard.toml deploy/k8s/overlays/prod/switchyard.toml; do
  sed -e "s#/opt/switchyard/#$app/#g" -e "s#/etc/switchyard/#$mounts/#g" "$config" >"$mounts/switchyard.toml"
  ORT_DYLIB_PATH="$ort" SWITCHYARD_API_KEYS_FILE="$mounts/keys/keys.toml" "$binary" validate --config "$mounts/switchyard.toml" >/dev/null \
    || fail "$config does not validate against the staged image"
  echo "image: $config validates against the staged models"
done

grpc_port="$(free_port)" admin_port="$(free_port)"
mount -t proc proc "$root/proc"
# Only the Dockerfile's ENV, read from it, with the listeners moved to free loopback ports (later wins in env).
mapfile -t image_env < <(python3 - deploy/image/Dockerfile <<'PY'
import re, shlex, sys
text = re.sub(r"\\\n", " ", open(sys.argv[1]).read())
for line in text.splitlines():
    if line.startswith("ENV "):
        print("\n".join(shlex.split(line[4:])))
PY
)
env -i "${image_env[@]}" SWITCHYARD_LISTEN="127.0.0.1:$grpc_port" SWITCHYARD_ADMIN_LISTEN="127.0.0.1:$admin_port" \
  "$(command -v chroot)" --userspec=65532:65532 "$root" /usr/local/bin/switchyard serve >"$work/serve.log" 2>&1 &
pid=$!
in_image() { chroot --userspec=65532:65532 "$root" /usr/local/bin/switchyard "$@"; }
trap 'kill "$pid" 2>/dev/null || true; cleanup' EXIT
wait_serving "$pid" 120 "http://127.0.0.1:$grpc_port" in_image \
  || { tail -20 "$work/serve.log" >&2; fail "the gateway did not serve from the staged image"; }
echo "image: the gateway serves from the staged image as uid 65532 (switchyard health: SERVING)"
scored="$(in_image route --addr "http://127.0.0.1:$grpc_port" --features "$TELCO_RECORD")" \
  || fail "the staged gateway did not score"
grep -q '^prediction: churn-scorer' <<<"$scored" || fail "no score: $scored"
http_get "http://127.0.0.1:$admin_port/readyz" >/dev/null || fail "no /readyz"
kill -TERM "$pid"
wait "$pid" || fail "the staged gateway did not exit 0 on SIGTERM"
echo "image: scored, drained, exited 0"

# The LLM image of the compose stack and dev overlay (deploy/image/llama-server.Dockerfile) on the same base: its
# build step, then llama-server chrooted as uid 65532 and one chat completion.
deploy/image/stage-llama-server.sh "$root"
llm_port="$(free_port)"
chroot --userspec=65532:65532 "$root" /usr/local/bin/llama-server -m /models/SmolLM2-135M-Instruct.Q4_1.gguf \
  --host 127.0.0.1 --port "$llm_port" -c 2048 --alias smollm2 -t 2 >"$work/llama.log" 2>&1 &
llama_pid=$!
trap 'kill "$llama_pid" 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 1 300); do
  http_get "http://127.0.0.1:$llm_port/health" >/dev/null 2>&1 && break
  kill -0 "$llama_pid" 2>/dev/null || break
  sleep 0.2
done
answer="$(python3 -c 'import json, sys, urllib.request
body = json.dumps({"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "temperature": 0}).encode()
request = urllib.request.Request(sys.argv[1], body, {"content-type": "application/json"})
print(json.load(urllib.request.urlopen(request, timeout=30))["choices"][0]["message"]["content"])' \
  "http://127.0.0.1:$llm_port/v1/chat/completions")" || { tail -5 "$work/llama.log" >&2; fail "the LLM image did not answer"; }
[ -n "$answer" ] || fail "the LLM image answered nothing"
kill "$llama_pid"
wait "$llama_pid" 2>/dev/null || true
echo "image: the LLM image's llama-server answers from the same base as uid 65532"
