#!/usr/bin/env bash
# Load test of tailor-admission-webhook's POST /mutate over real TLS.
#
# Builds (release) tailor-load and the webhook's bench server
# (scripts/bench/src/bin/webhook-bench-server.rs), starts the
# server on 127.0.0.1 with a self-issued certificate and the index built from
# admission-webhook/tests/fixtures/cluster.yaml, sends the AdmissionReview of a
# Deployment's pod matched by a VPA with a recommendation
# (pod-create-deployment.json, answered with a patch), prints the report and
# the server's request counts by outcome, and stops the server.
#
#   scripts/bench/webhook.sh [tailor-load flags...]
#
# Defaults: HTTP/2, 16 connections, 2 s warm-up, 20 s measured, the load
# generator on one thread. Extra flags are passed to tailor-load (later
# flags win, e.g. `--http 1.1 -c 4 --json`).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cargo build --release --locked -q -p tailor-load --features webhook
bin="${CARGO_TARGET_DIR:-$root/target}/release"

work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/webhook-bench-server" admission-webhook/tests/fixtures/cluster.yaml "$work" 127.0.0.1:0 >"$work/server.out" 2>"$work/server.err" &
server=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$work/server.out" 2>/dev/null && break
  sleep 0.1
done
addr="$(sed -n 's/^listening on //p' "$work/server.out")"
if [ -z "$addr" ]; then
  echo "webhook.sh: the bench server did not start:" >&2
  cat "$work/server.err" >&2
  exit 1
fi
port="${addr##*:}"

"$bin/tailor-load" \
  --cacert "$work/ca.crt" \
  --body admission-webhook/tests/fixtures/pod-create-deployment.json \
  -H 'Content-Type: application/json' \
  --http 2 -c 16 --warmup 2s -d 20s --threads 1 \
  --server-pid "$server" --expect-status 200 \
  "$@" "https://localhost:$port/mutate"

kill -TERM "$server"
wait "$server" || true
server=""
echo "server outcomes (warm-up included):"
cat "$work/server.err"
