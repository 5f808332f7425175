#!/usr/bin/env bash
# The main job: build the release binaries, build the 10% cortical microcircuit
# (neurons and in-degrees scaled by 0.1) into $OUT (default out/net), and print
# its summary.
#
#   scripts/main.sh              # -> out/net
#   OUT=/scratch/net scripts/main.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-out/net}"

echo "[main] cargo build --release"
cargo build --release

echo "[main] snn-build configs/microcircuit.toml -o $OUT (scale 0.1)"
target/release/snn-build configs/microcircuit.toml -o "$OUT" --force \
    --set scale.neurons=0.1 --set scale.indegree=0.1

echo "[main] snn-build info $OUT"
target/release/snn-build info "$OUT"
