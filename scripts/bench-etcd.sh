#!/usr/bin/env bash
# The etcd reference of docs/benchmarks.md: installs etcd-server if missing, starts a
# 4-member cluster on free 127.0.0.1 ports in a temporary directory, drives it with
# `civitas bench etcd` (closed-loop puts of 100-byte values through the HTTP gateway),
# and stops it. Arguments go to `civitas bench etcd` (e.g. --concurrency 64 --duration 20).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v etcd >/dev/null; then
  echo "installing: etcd-server"
  run() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  run apt-get install -y --no-install-recommends etcd-server || { run apt-get update; run apt-get install -y --no-install-recommends etcd-server; }
fi
civitas=.build/release/civitas
[ -x "$civitas" ] || swift build -c release --product civitas

members=${ETCD_MEMBERS:-4}
dir=$(mktemp -d /tmp/civitas-etcd.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

# Free ports: bind port 0, read what the kernel gave, release.
ports=($(python3 -c "
import socket
socks=[socket.socket() for _ in range(2*$members)]
for s in socks: s.bind(('127.0.0.1',0))
print(' '.join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()"))
cluster=""
for i in $(seq 0 $((members - 1))); do
  cluster+="${cluster:+,}m$i=http://127.0.0.1:${ports[$((members + i))]}"
done
endpoints=()
for i in $(seq 0 $((members - 1))); do
  client=http://127.0.0.1:${ports[$i]}
  peer=http://127.0.0.1:${ports[$((members + i))]}
  etcd --name "m$i" --data-dir "$dir/m$i" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token civitas-bench \
    --log-level error >"$dir/m$i.log" 2>&1 &
  pids+=($!)
  endpoints+=(--endpoint "$client")
done
# Bounded wait for a leader: the gateway answers puts once the cluster has one.
for attempt in $(seq 1 100); do
  if curl -sf -X POST "http://127.0.0.1:${ports[0]}/v3/kv/put" -d '{"key":"cmVhZHk=","value":"MQ=="}' >/dev/null; then break; fi
  [ "$attempt" -eq 100 ] && { echo "etcd did not become ready; logs in $dir" >&2; cat "$dir"/m0.log >&2; exit 1; }
  sleep 0.2
done
"$civitas" bench etcd "${endpoints[@]}" "$@"
