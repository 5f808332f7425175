#!/usr/bin/env bash
# Weak scaling of the balanced network on this machine: 1, 2, 4 MPI ranks
# with NEURONS_PER_RANK neurons each (default 2,250), in-degree 11,250 x
# INDEGREE (default 0.1, with the Poisson rate per input scaled up by
# 1/INDEGREE so that the drive stays that of the full model), p2p and
# collective exchange. Prints time per biological second and bytes of spike
# data sent per rank per step (from run/summary.json).
#
#   bench/weak_scaling.sh            # ranks 1 2 4
#   RANKS="1 2" T_SIM=500 bench/weak_scaling.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PER_RANK=${NEURONS_PER_RANK:-2250}
INDEGREE=${INDEGREE:-0.1}
RANKS=${RANKS:-1 2 4}
T_SIM=${T_SIM:-200}
OUT=bench/out/weak
mkdir -p "$OUT"
[[ -x target/release/snn-sim ]] || cargo build --release >/dev/null
rate=$(python3 -c "print(2.3173374667665403 / $INDEGREE)")
printf "%5s %9s %11s %11s %13s %13s %12s %12s\n" ranks neurons synapses comm s_per_bio_s rtf B/rank/step spikes
for r in $RANKS; do
    scale=$(python3 -c "print($r * $PER_RANK / 11250)")
    net="$OUT/net-$r"
    target/release/snn-build configs/balanced.toml -o "$net" --force --ranks "$r" --threads 2 \
        --set "scale.neurons=$scale" --set "scale.indegree=$INDEGREE" --set "poisson_background.rate_Hz=$rate" >/dev/null
    threads=$(( r >= 2 ? 1 : 2 ))
    for comm in p2p collective; do
        run="$OUT/run-$r-$comm"
        if (( r == 1 )); then
            target/release/snn-sim "$net" -o "$run" --force --t-sim "$T_SIM" --threads "$threads" --comm "$comm" >/dev/null
        else
            mpirun -n "$r" target/release/snn-sim "$net" -o "$run" --force --t-sim "$T_SIM" --threads "$threads" --comm "$comm" >/dev/null
        fi
        python3 - "$r" "$run/summary.json" "$comm" "$net/manifest.json" <<'PY'
import json, sys
r, path, comm, man = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = json.load(open(path)); m = json.load(open(man))
spikes = sum(p["spikes"] for p in s["populations"])
b = s.get("bytes_sent_per_rank_per_step")
print(f'{r:5d} {m["n_neurons"]:9d} {m["total_synapses"]:11d} {comm:>11} {s["wall_sim_s"]/(s["t_stop_ms"]-s["t_start_ms"])*1000:13.3f} '
      f'{s["real_time_factor"]:13.3f} {("%.1f" % b) if b is not None else "n/a":>12} {spikes:12d}')
PY
    done
done
