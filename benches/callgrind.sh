#!/usr/bin/env bash
# Instructions per request of a `roster serve` under callgrind: repeatable for one binary,
# whatever else the machine is doing (BENCHMARKS.md). Run from the repository root:
#   benches/callgrind.sh BIN [PORT] [SECONDS] [URL]
# The server runs with instrumentation off; a VIP user is created and logged in, wrk warms
# up for 3 s, then instrumentation is on for SECONDS of `wrk -t1 -c8` only. Prints the
# requests served and the instructions per request (the server's userland only).
set -euo pipefail
BIN=$1; PORT=${2:-18480}; SECS=${3:-15}; URL=${4:-/api/v1/users/me}
OUT=$(mktemp -d)
KEY=adminkey-0123456789abcdef
printf '[log]\nfilter = "warn"\n' > "$OUT/bench.toml"
ROSTER_ADMIN_KEY=$KEY ROSTER_TIERS__VIP__ZERO_TRUST=false \
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/cg.out" \
  "$BIN" serve --config "$OUT/bench.toml" --data-dir "$OUT/data" --listen 127.0.0.1:"$PORT" \
  >/dev/null 2>&1 &
VPID=$!
until curl -s -o /dev/null http://127.0.0.1:"$PORT"/healthz; do sleep 1; done
API=http://127.0.0.1:$PORT/api/v1
curl -s -o /dev/null -X POST "$API/users" -H "Authorization: Bearer $KEY" \
  -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.com","password":"correct horse battery staple","tier":"vip","profile_data":{"security_settings":{"require_mfa":false}}}'
T=$(curl -s -X POST "$API/auth/login" -H 'Content-Type: application/json' \
  -d '{"email":"bench@example.com","password":"correct horse battery staple"}' |
  sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[ -n "$T" ] || { echo "login failed" >&2; kill $VPID; exit 1; }
wrk -t1 -c8 -d3s "http://127.0.0.1:$PORT$URL" -H "Authorization: Bearer $T" >/dev/null
callgrind_control -i on $VPID >/dev/null 2>&1
N=$(wrk -t1 -c8 -d"${SECS}"s "http://127.0.0.1:$PORT$URL" -H "Authorization: Bearer $T" |
  awk '/requests in/{print $1}')
callgrind_control -i off $VPID >/dev/null 2>&1
callgrind_control -d $VPID >/dev/null 2>&1
sleep 1
kill $VPID
wait $VPID || true
IR=$(cat "$OUT"/cg.out* | awk '/^(summary|totals):/{print $2}' | sort -n | tail -1)
echo "requests $N  instructions per request $((IR / N))"
rm -rf "$OUT"
