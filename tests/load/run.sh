#!/usr/bin/env bash
# Load and fault test of `exitwise serve` on 127.0.0.1 (not part of `make test`: it runs for
# minutes and its figures depend on the machine). Needs `wrk` (Debian: apt-get install wrk) and
# curl. Usage: tests/load/run.sh [SECONDS] [CLIENTS]; prints the figures the README quotes.
# EXITWISE_LOAD_WORKERS=N serves with --workers N, EXITWISE_LOAD_THREADS=N with --threads N.
#   1. N concurrent clients for SECONDS: throughput, p50/p99, answers by status (only 200/429
#      allowed), socket errors (none allowed).
#   2. Clients that disconnect mid-request: 20 requests cut after 50 ms; the server stays
#      healthy and answers the next request.
#   3. SIGTERM during load: every request the server accepted gets its answer (curl never
#      reports an empty reply or a reset), and the server exits 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_OF_LOAD=${1:-60}
CLIENTS=${2:-8}
PORT=${EXITWISE_LOAD_PORT:-18080}
BIN=${EXITWISE_BIN:-target/release/exitwise}
URL="http://127.0.0.1:$PORT"
LOG=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$LOG"' EXIT

start_server() {
  "$BIN" serve --listen "127.0.0.1:$PORT" --queue 8 "$@" 2>"$LOG/server.log" &
  SERVER=$!
  for _ in $(seq 1 300); do
    curl -sf "$URL/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the server did not become ready"; cat "$LOG/server.log"; exit 1
}

echo "== 1. $CLIENTS clients for $SECONDS_OF_LOAD s"
start_server ${EXITWISE_LOAD_THREADS:+--threads "$EXITWISE_LOAD_THREADS"} ${EXITWISE_LOAD_WORKERS:+--workers "$EXITWISE_LOAD_WORKERS"}
wrk -t2 -c"$CLIENTS" -d"${SECONDS_OF_LOAD}s" --latency -s tests/load/statuses.lua "$URL/v1/classify" | tee "$LOG/wrk.txt"
if grep -E '^statuses:' "$LOG/wrk.txt" | tr ' ' '\n' | grep -E '^[0-9]+=' | grep -vE '^(200|429)='; then
  echo "FAIL: answers other than 200 and 429"; exit 1
fi
if ! grep -q 'socket errors: connect 0, read 0, write 0, timeout 0' "$LOG/wrk.txt"; then
  echo "FAIL: socket errors"; exit 1
fi

echo "== 2. clients that disconnect mid-request"
for _ in $(seq 1 20); do
  curl -s -m 0.05 -H 'content-type: application/json' \
    -d '{"text": "The film is long, but the last hour is a joy. The cast is wonderful and the music too."}' \
    "$URL/v1/classify" >/dev/null 2>&1 || true
done
curl -sf -H 'content-type: application/json' -d '{"text": "Great film."}' "$URL/v1/classify" >/dev/null
curl -sf "$URL/metrics" | grep -E '^exitwise_(abandoned_jobs_total|requests_total)'
echo "the server answered after the disconnections"

echo "== 3. SIGTERM during load"
# Each client sends requests one after another until the server refuses the connection (curl
# exit 7), so requests are in flight and queued when SIGTERM arrives and after.
for client in $(seq 1 "$CLIENTS"); do
  (
    while :; do
      code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
        -d '{"text": "An honest, moving drama. The lead is superb."}' "$URL/v1/classify"; echo " $?")
      echo "$code"
      case "$code" in *" 7") break ;; esac
    done
  ) >"$LOG/client-$client.txt" &
done
sleep 3
answered_before=$(cat "$LOG"/client-*.txt | grep -c '^200 0$' || true)
kill -TERM "$SERVER"
set +e
wait "$SERVER"
status=$?
set -e
wait
# curl exit 52: empty reply, 56: connection reset after sending: an accepted request without
# an answer. 7: connection refused (after the server stopped listening) is expected.
cat "$LOG"/client-*.txt | sort | uniq -c | sort -rn
answered=$(cat "$LOG"/client-*.txt | grep -c '^200 0$' || true)
echo "answered before SIGTERM: $answered_before, after: $((answered - answered_before))"
if cat "$LOG"/client-*.txt | grep -qE ' (52|56)$'; then
  echo "FAIL: an accepted request got no answer"; exit 1
fi
echo "server exit status after SIGTERM: $status"
[ "$status" -eq 0 ] || { echo "FAIL: exit status $status"; exit 1; }
echo "PASS"
