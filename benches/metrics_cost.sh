#!/usr/bin/env bash
# Server CPU per `GET /users/me` with HTTP metrics on or off (issue 8's metrics cost), as
# recorded in BENCHMARKS.md. Starts `roster serve` on 127.0.0.1:18080 over DATA_DIR,
# warms up, runs `roster loadgen validate` at RATE req/s for 20 s (open model), and
# prints the server's CPU time per request (from /proc/<pid>/stat) and the latency.
# Usage: benches/metrics_cost.sh true|false [RATE] [DATA_DIR]
# Run it several times alternating on and off: this machine drifts between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
metrics=${1:?true or false}; rate=${2:-5000}; dir=${3:-/tmp/roster-metrics-cost}
mkdir -p "$dir"
export ROSTER_ADMIN_KEY=${ROSTER_ADMIN_KEY:-bench-admin-key-0123456789}
R=${ROSTER_BIN:-target/release/roster}
# Load-test users log in with a password alone: VIP's zero trust is off here.
ROSTER_SERVER__HTTP_METRICS=$metrics ROSTER_TIERS__VIP__ZERO_TRUST=false ROSTER_LOG=warn \
  "$R" serve --listen 127.0.0.1:18080 --data-dir "$dir/data" >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
sleep 2
gen() { "$R" loadgen validate --url http://127.0.0.1:18080 --users 1000 --tiers vip \
  --population "$dir/pop.json" --sessions 1000 --rate "$rate" --quiet "$@" >/dev/null; }
gen --duration 5s
ticks() { awk '{print $14+$15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
gen --duration 20s --json "$dir/report.json"
t1=$(ticks)
python3 - "$metrics" "$t0" "$t1" "$hz" "$dir/report.json" <<'PY'
import json, sys
metrics, t0, t1, hz, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
s = json.load(open(path))["summary"]
cpu_us = (t1 - t0) * 1_000_000 / hz
lat = s["latency_us"]
print(f"metrics={metrics} sent={s['sent']} ok={s['ok']} "
      f"cpu_per_request_us={cpu_us / max(1, s['sent']):.1f} p50_us={lat['p50']} p99_us={lat['p99']}")
PY
