#!/usr/bin/env bash
# The main command's own switches: `deploy/run.sh` with every port it documents moved (SWITCHYARD_LISTEN,
# SWITCHYARD_ADMIN_LISTEN, SWITCHYARD_LLM_PORT) must still answer a hybrid request (a score explained by the local
# LLM), the admin port must answer on its new address, and the LLM calls must go to the moved llama-server.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
. deploy/checks/lib.sh

grpc_port="$(free_port)" admin_port="$(free_port)" llm_port="$(free_port)"
log="$(mktemp)"
SWITCHYARD_LISTEN="127.0.0.1:$grpc_port" SWITCHYARD_ADMIN_LISTEN="127.0.0.1:$admin_port" \
  SWITCHYARD_LLM_PORT="$llm_port" deploy/run.sh >"$log" 2>&1 &
run_pid=$!
cleanup() {
  kill -TERM "$run_pid" 2>/dev/null || true
  wait "$run_pid" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

switchyard=target/release/switchyard
# run.sh builds the binary first (cached by the image check that runs before this one).
for _ in $(seq 1 600); do [ -x "$switchyard" ] && break; sleep 1; done
wait_serving "$run_pid" 300 "http://127.0.0.1:$grpc_port" "$switchyard" || { tail -20 "$log" >&2; fail "run.sh did not serve"; }

answer="$("$switchyard" route --addr "http://127.0.0.1:$grpc_port" --temperature 0 \
  --text "Why might this customer leave?" --features "$TELCO_RECORD")" || fail "the hybrid request failed"
echo "$answer"
grep -q '^prediction: ' <<<"$answer" || fail "no score in the hybrid answer"
grep -q '^generation: local / smollm2' <<<"$answer" || fail "no LLM explanation in the hybrid answer"
grep -q '^explanation: llm' <<<"$answer" || echo "note: the explanation fell back to its template (the model's words failed the check)"

metrics="$(http_get "http://127.0.0.1:$admin_port/metrics")" || fail "no /metrics on the moved admin port"
grep -q "server_port=\"$llm_port\"" <<<"$metrics" || fail "the gateway did not call the LLM on port $llm_port"
http_get "http://127.0.0.1:$llm_port/health" >/dev/null || fail "llama-server is not on the moved port $llm_port"
echo "run.sh with gRPC :$grpc_port, admin :$admin_port, LLM :$llm_port: hybrid answer ok"
