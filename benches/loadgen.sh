#!/usr/bin/env bash
# Runs every `roster loadgen` scenario against a running server and keeps the JSON
# reports, as recorded in BENCHMARKS.md. Usage:
#   ROSTER_ADMIN_KEY=... benches/loadgen.sh http://127.0.0.1:8080 <server pid> <out dir>
# loadgen sends the operator key (the per-address limit of anonymous endpoints does not
# apply to it). Populations are kept in <out dir> and reused by later runs. The server's
# pid lets ws-hold read its memory (same machine only).
set -euo pipefail
URL=${1:-http://127.0.0.1:8080}
PID=${2:-}
OUT=${3:-loadgen-reports}
mkdir -p "$OUT"
R=${ROSTER_BIN:-target/release/roster}
run() { local name=$1; shift; echo "== $name"; "$R" loadgen "$@" --url "$URL" --quiet --json "$OUT/$name.json"; }
POP=(--users 1000 --tiers vip --population "$OUT/pop-1k-vip.json")
run validate-closed validate "${POP[@]}" --sessions 1000 --concurrency 64 --duration 10s
run validate-open validate "${POP[@]}" --sessions 1000 --rate 12000 --duration 10s
run mixed mixed "${POP[@]}" --sessions 1000 --rate 5000 --duration 10s
run login-cheap login "${POP[@]}" --concurrency 32 --duration 10s
run login-default login --users 1000 --tiers vip --hash default --population "$OUT/pop-1k-vip-default.json" --concurrency 32 --duration 10s
run signup signup --concurrency 32 --duration 10s
run ws-hold ws-hold "${POP[@]}" --sockets 15000 --rate 2000 --duration 20s ${PID:+--server-pid "$PID"}
run ws-fanout ws-fanout "${POP[@]}" --sessions 500 --sockets 2000 --rate 1000 --duration 10s
TIERS=(--users 2000 --sessions 2000 --population "$OUT/pop-2k-free-vip.json" --rate 1000 --duration 10s)
run tier-isolation-saturated tier-isolation "${TIERS[@]}" --flood-concurrency 64
run tier-isolation-3000 tier-isolation "${TIERS[@]}" --flood-rate 3000
run tier-isolation-6000 tier-isolation "${TIERS[@]}" --flood-rate 6000
