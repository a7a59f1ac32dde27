#!/usr/bin/env bash
# The container image, built and run without a Docker engine: deploy/image/stage.sh (the Dockerfile's build step)
# lays the image's files out under a staging root; this checks that the layout fits the runtime base and serves.
#   - size: the staged files plus the distroless base stay under the 150 MB target
#   - libraries: everything the binary and the ONNX Runtime library link against is in distroless/cc-debian12
#     (glibc 2.36, libgcc, libstdc++), and no symbol needs a newer glibc
#   - serving: the staged binary, with only the staged library, models and config, reports SERVING to
#     `switchyard health`, scores a customer, and exits 0 on SIGTERM
#   - the Kubernetes configs (base and prod overlay) validate against the staged models
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
. deploy/checks/lib.sh

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/root"
deploy/image/stage.sh "$stage"
binary="$stage/usr/local/bin/switchyard"
app="$stage/opt/switchyard"
ort="$app/lib/libonnxruntime.so.1.31.1"

# gcr.io/distroless/cc-debian12 (glibc, libgcc, libgomp, libstdc++, libssl, CA certificates, tzdata) is about
# 23 MB unpacked; counted as 25. No engine here can pull it to measure.
base_mb=25
staged_mb=$(( $(du -sb "$stage" | cut -f1) / 1000000 ))
total_mb=$(( staged_mb + base_mb ))
echo "image: staged ${staged_mb} MB + base ${base_mb} MB = ${total_mb} MB (target < 150 MB)"
[ "$total_mb" -lt 150 ] || fail "the image would be ${total_mb} MB"

# The shared libraries distroless/cc-debian12 ships.
provided="ld-linux-x86-64.so.2 libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libgcc_s.so.1
libstdc++.so.6 libgomp.so.1 libssl.so.3 libcrypto.so.3"
for object in "$binary" "$ort"; do
  for needed in $(readelf -d "$object" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    grep -qw -- "$needed" <<<"$provided" || fail "$(basename "$object") needs $needed, which the runtime base lacks"
  done
  newest="$(objdump -T "$object" | grep -o 'GLIBC_[0-9.]*' | sort -t. -k1,1 -k2,2n -V | tail -1)"
  [ "$(printf '%s\nGLIBC_2.36\n' "$newest" | sort -V | tail -1)" = "GLIBC_2.36" ] \
    || fail "$(basename "$object") needs $newest; distroless/cc-debian12 has glibc 2.36"
  echo "image: $(basename "$object") links only what the base provides (newest symbol $newest)"
done

# The Kubernetes configs name the image's paths (/opt/switchyard/...) and the mounts (/etc/switchyard/...): check
# both overlays' against the staged tree, with the dev key digests and a throwaway certificate in the mounts' place.
mounts="$work/etc"
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
# Only what the image sets (its ENV): the config and the library, both inside the staged tree.
env -i PATH=/usr/bin:/bin SWITCHYARD_CONFIG="$app/config/switchyard.toml" ORT_DYLIB_PATH="$ort" \
  SWITCHYARD_LISTEN="127.0.0.1:$grpc_port" SWITCHYARD_ADMIN_LISTEN="127.0.0.1:$admin_port" \
  "$binary" serve >"$work/serve.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
wait_serving "$binary" "http://127.0.0.1:$grpc_port" 120 || { tail -20 "$work/serve.log" >&2; fail "the staged gateway did not serve"; }
echo "image: the staged gateway reports SERVING"
scored="$("$binary" route --addr "http://127.0.0.1:$grpc_port" --features "$TELCO_RECORD")" \
  || fail "the staged gateway did not score"
grep -q '^prediction: churn-scorer' <<<"$scored" || fail "no score: $scored"
[ "$(http_get "http://127.0.0.1:$admin_port/readyz" | head -c 5)" != "" ] || fail "no /readyz"
kill -TERM "$pid"
wait "$pid" || fail "the staged gateway did not exit 0 on SIGTERM"
echo "image: scored, drained, exited 0"
