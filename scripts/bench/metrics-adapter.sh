#!/usr/bin/env bash
# Load test of tailor-metrics-adapter's cached object requests over real TLS
# with a front-proxy client certificate, against a real Prometheus.
#
# Builds (release) tailor-load and the adapter, and (dev) the benchmark
# environment (metrics-adapter/examples/bench_env.rs: a Prometheus holding
# $SERIES series of http_requests{namespace, pod}, the adapter config and a
# PKI); starts the adapter with a one-hour cache TTL, waits until the object
# request answers 200, sends it with tailor-load (which reads the adapter's
# CPU time from /proc/PID/stat while measuring), prints the report, and stops
# everything.
#
#   scripts/bench/metrics-adapter.sh [tailor-load flags...]
#
# Defaults: HTTP/1.1, 16 connections, 2 s warm-up, 10 s measured, the load
# generator on one thread, 100,000 series (SERIES=1000 starts faster; the
# cached path does not depend on it). Extra flags are passed to tailor-load
# (later flags win, e.g. `--http 2 -c 32 --json`). ADAPTER=path runs another
# adapter binary (e.g. an older build, for a before/after comparison).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
series="${SERIES:-100000}"
cargo build --release --locked -q -p tailor-load -p tailor-metrics-adapter --bins
cargo build --locked -q -p tailor-metrics-adapter --example bench_env
target="${CARGO_TARGET_DIR:-$root/target}"
adapter="${ADAPTER:-$target/release/tailor-metrics-adapter}"

work="$(mktemp -d)"
pids=()
env_pid=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  # bench_env stops Prometheus and removes its files when its stdin closes;
  # a signal would leave Prometheus running.
  exec 3>&- 2>/dev/null || true
  if [ -n "$env_pid" ]; then wait "$env_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# bench_env keeps Prometheus up until its stdin closes.
mkfifo "$work/hold"
"$target/debug/examples/bench_env" --series "$series" <"$work/hold" >"$work/env.sh" 2>"$work/env.err" &
env_pid=$!
exec 3>"$work/hold"
for _ in $(seq 1 1200); do
  grep -q '^READY=1' "$work/env.sh" 2>/dev/null && break
  sleep 0.5
done
grep -q '^READY=1' "$work/env.sh" || { echo "metrics-adapter.sh: bench_env did not start:" >&2; cat "$work/env.err" >&2; exit 1; }
# shellcheck disable=SC1091
. "$work/env.sh"

port=16443
"$adapter" --config="$CONFIG" --prometheus-url="$PROM_URL" \
  --tls-cert-file="$SERVER_CERT" --tls-private-key-file="$SERVER_KEY" \
  --requestheader-client-ca-file="$CA" --use-kubernetes-api=false --metrics-max-age=3h \
  --secure-port=$port --bind-address=127.0.0.1 --admin-addr=127.0.0.1:19090 \
  --cache-ttl=1h --cache-max-staleness=2h --log-level=warn \
  >"$work/adapter.out" 2>"$work/adapter.err" &
adapter_pid=$!
pids+=("$adapter_pid")

url="https://127.0.0.1:$port/apis/custom.metrics.k8s.io/v1beta2/namespaces/ns-1/pods/pod-1/http_requests_per_second"
load=("$target/release/tailor-load" --cacert "$CA" --cert "$CLIENT_CERT" --key "$CLIENT_KEY")
# The metric is served once the first relist is done.
for _ in $(seq 1 600); do
  "${load[@]}" -c 1 --warmup 0s -n 1 --expect-status 200 "$url" >/dev/null 2>&1 && break
  sleep 0.5
done
"${load[@]}" -c 1 --warmup 0s -n 1 --expect-status 200 "$url" >/dev/null || {
  echo "metrics-adapter.sh: the adapter does not serve $url:" >&2; cat "$work/adapter.err" >&2; exit 1; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"${load[@]}" -c 16 --warmup 2s -d 10s --threads 1 --server-pid "$adapter_pid" --expect-status 200 "$@" "$url"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
