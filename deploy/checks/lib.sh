# shellcheck shell=bash
# Shared by the deploy checks (sourced, not run).

# A real customer of the Telco test set's shape (router/tests/support's `telco_record`): a new, month-to-month,
# fiber-optic customer the scorer rates high.
# shellcheck disable=SC2034 # used by the scripts that source this file
TELCO_RECORD='{"gender":"Female","seniorcitizen":0,"partner":"No","dependents":"No","tenure":2,"phoneservice":"Yes",
"multiplelines":"No","internetservice":"Fiber optic","onlinesecurity":"No","onlinebackup":"No",
"deviceprotection":"No","techsupport":"No","streamingtv":"Yes","streamingmovies":"Yes",
"contract":"Month-to-month","paperlessbilling":"Yes","paymentmethod":"Electronic check","monthlycharges":95.5,
"totalcharges":190.1}'

# A TCP port nothing listens on now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until `CMD... health --addr ADDR` says SERVING, for up to SECONDS, while process PID lives; fails
# otherwise. Usage: wait_serving PID SECONDS ADDR CMD...
wait_serving() {
  local pid="$1" seconds="$2" addr="$3"
  shift 3
  for _ in $(seq 1 $((seconds * 5))); do
    if "$@" health --addr "$addr" --timeout 1s >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "not SERVING at $addr:" >&2
  "$@" health --addr "$addr" --timeout 1s >&2 || true
  return 1
}

# GET $1 over HTTP; prints the body, fails on a non-200 answer.
http_get() {
  python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
