#!/usr/bin/env bash
# Per-rank memory and communication volume of the balanced network under
# weak scaling, predicted for 1 to 16,384 ranks by the builder's own first
# pass (`snn-build --dry-run`: the same source draws and image/routing code
# as a real build, without storing synapses). NEURONS_PER_RANK neurons per
# rank (default 11,250; the seed paper's figures use 112,500), full
# in-degree 11,250.
#
#   bench/scaling_model.sh [ranks...]     # default: 1 2 4 16 128 1024 16384
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PER_RANK=${NEURONS_PER_RANK:-11250}
RANKS=${*:-1 2 4 16 128 1024 16384}
BIN=target/release/snn-build
[[ -x $BIN ]] || cargo build --release --bin snn-build >/dev/null
printf "%7s %12s %14s %12s %10s %14s %10s %12s %12s\n" ranks neurons syn/rank images/rank partners shard_MB/rank B/syn p2p_B/step coll_B/step
for r in $RANKS; do
    scale=$(python3 -c "print($r * $PER_RANK / 11250)")
    json=$($BIN configs/balanced.toml --dry-run --ranks "$r" --sample-ranks 0 --set "scale.neurons=$scale")
    python3 - "$r" "$json" <<'PY'
import json, sys
r = int(sys.argv[1]); e = json.loads(sys.argv[2])["ranks"][0]
n_total = r * e["n_local"]
rate_hz, dt_s = 8.0, 1e-4   # a typical rate of this network; 0.1 ms steps
# p2p: a rank receives one 8-byte entry per spike of each neuron it has an
# image of (and sends about as many); collective: every rank receives the
# needed spikes of all ranks.
p2p = e["n_images"] * rate_hz * dt_s * 8
coll = (n_total - e["n_local"]) * rate_hz * dt_s * 8 if r > 1 else 0.0
print(f'{r:7d} {n_total:12d} {e["synapses"]:14d} {e["n_images"]:12d} {e["source_ranks"]:10d} '
      f'{e["shard_bytes"]/2**20:14.1f} {e["bytes_per_synapse"]:10.3f} {p2p:12.1f} {coll:12.1f}')
PY
done
