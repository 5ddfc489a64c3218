#!/usr/bin/env bash
# Roster's raw argon2id against @node-rs/argon2 on one core, alternating (BENCHMARKS.md).
#   benches/argon2.sh [PAIRS] [HASHES] [CORE]
# Installs the npm package into benches/argon2-node on first use (it is not part of the
# product), builds the Rust bench, then runs PAIRS pairs, each pinned to CORE.
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-3}; HASHES=${2:-40}; CORE=${3:-1}
[ -d benches/argon2-node/node_modules/@node-rs/argon2 ] ||
  (cd benches/argon2-node && npm install --no-audit --no-fund --silent)
cargo bench --bench argon2 --no-run 2>/dev/null
BIN=$(ls -t target/release/deps/argon2-* | grep -v '\.d$' | head -1)
for i in $(seq 1 "$PAIRS"); do
  taskset -c "$CORE" "$BIN" --hashes "$HASHES" --rounds 1 | sed "s/round 0/pair $i/"
  (cd benches/argon2-node && taskset -c "$CORE" node bench.mjs "$HASHES" 1) | sed "s/round 0/pair $i/"
done
