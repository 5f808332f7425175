#!/usr/bin/env bash
# The main job: build the release binaries, then the 10% cortical
# microcircuit (neurons and in-degrees scaled by 0.1): build the network,
# simulate 500 ms of presimulation + 1000 ms, analyse the recorded second and
# print the per-population statistics.
#
#   scripts/main.sh              # -> out/net, out/run, out/report
#   OUT=/scratch/mc scripts/main.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-out}"
THREADS="${THREADS:-2}"

echo "[main] cargo build --release"
cargo build --release

echo "[main] snn-build configs/microcircuit.toml -o $OUT/net (scale 0.1)"
target/release/snn-build configs/microcircuit.toml -o "$OUT/net" --force --threads "$THREADS" \
    --set scale.neurons=0.1 --set scale.indegree=0.1
target/release/snn-build info "$OUT/net"

echo "[main] snn-sim $OUT/net -o $OUT/run --t-presim 500 --t-sim 1000"
target/release/snn-sim "$OUT/net" -o "$OUT/run" --force --t-presim 500 --t-sim 1000 --seed 1 --threads "$THREADS"

echo "[main] snn-analyze $OUT/run -o $OUT/report --t-start 500"
target/release/snn-analyze "$OUT/run" -o "$OUT/report" --force --t-start 500
