#!/usr/bin/env bash
# Measures `roster provision-users --server` as recorded in BENCHMARKS.md: N generated
# JSONL rows, each with an argon2id PHC hash (one hash for all rows: the server checks a
# hash's form, never verifies it at provisioning), into a fresh server, while a probe
# Premium user (5,000 requests an hour) asks GET /api/v1/users/me once a second. Usage:
#   benches/provision.sh [rows] [batch] [work dir]
# ROSTER_BENCH_IN_FLIGHT sets the calls sent at once (default 3).
# Prints the command's summary, its peak memory, the server's flush counters, and the
# probe's latencies.
set -euo pipefail
ROWS=${1:-200000}
BATCH=${2:-1000}
WORK=${3:-/tmp/roster-provision-bench}
R=${ROSTER_BIN:-target/release/roster}
rm -rf "$WORK" && mkdir -p "$WORK"
export ROSTER_ADMIN_KEY=bench-admin-key-0123456789abcdef
HASH='$argon2id$v=19$m=19456,t=2,p=1$2WICqAgHq/d5NGU7lSepwg$ByoAz35kNcOlGEJYQGLRmdFRGMP3algTkfCd0RFiKf0'
# ROSTER_BENCH_PASSWORDS=clear: each row carries a clear-text password instead, which
# the server checks against the policy and hashes with the configured argon2id cost.
if [ "${ROSTER_BENCH_PASSWORDS:-hash}" = clear ]; then
  SECRET='"password":"Quiet-harbour-%d-lantern"'
else
  SECRET='"password_hash":"'"$HASH"'"'
fi
awk -v n="$ROWS" -v secret="$SECRET" 'BEGIN { split("free premium enterprise vip", t, " ");
  for (i = 0; i < n; i++) printf "{\"email\":\"bench%d@example.com\",\"tier\":\"%s\",\"display_name\":\"Bench %d\",\"external_id\":\"b-%07d\"," secret "}\n", i, t[i % 4 + 1], i, i, i }' \
  > "$WORK/rows.jsonl"
"$R" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  ADDR=$(grep -o 'listening on [0-9.:]*' "$WORK/server.log" | head -1 | awk '{print $3}') || true
  [ -n "${ADDR:-}" ] && break
  sleep 0.1
done
URL="http://$ADDR"
curl -sf -X POST "$URL/api/v1/users" -H 'content-type: application/json' \
  -H "authorization: Bearer $ROSTER_ADMIN_KEY" \
  -d '{"email":"probe@example.com","password":"probe-password-long-enough","tier":"premium"}' > /dev/null
TOKEN=$(curl -sf -X POST "$URL/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"probe@example.com","password":"probe-password-long-enough"}' |
  sed 's/.*"token":"\([^"]*\)".*/\1/')
(
  while true; do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$URL/api/v1/users/me" \
      -H "authorization: Bearer $TOKEN" >> "$WORK/probe.txt"
    sleep 1
  done
) &
PROBE=$!
/usr/bin/time -v "$R" provision-users --server "$URL" --batch "$BATCH" \
  --in-flight "${ROSTER_BENCH_IN_FLIGHT:-3}" --quiet \
  --json "$WORK/summary.json" "$WORK/rows.jsonl" 2> "$WORK/time.txt"
kill $PROBE
curl -sf "$URL/metrics" -H "authorization: Bearer $ROSTER_ADMIN_KEY" |
  grep -E '^roster_store_(flushes|commits|flush_seconds)' || true
cat "$WORK/summary.json"; echo
grep -E 'Elapsed|Maximum resident' "$WORK/time.txt"
sort -k2 -n "$WORK/probe.txt" | awk '{ s[NR] = $2; if ($1 != 200) bad++ }
  END { printf "probe: %d requests, %d not 200, median %.1f ms, p99 %.1f ms, max %.1f ms\n",
        NR, bad, s[int(NR * 0.5) + 1] * 1000, s[int(NR * 0.99) + 1] * 1000, s[NR] * 1000 }'
