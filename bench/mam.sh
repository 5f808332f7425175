#!/usr/bin/env bash
# Benchmarks of the multi-area model (configs/mam.toml). Three parts:
#
#   bench/mam.sh speed            # N = K = 0.006: snn-build + snn-sim against NEST 3.10
#                                 # (tests/reference/mam_nest.py) in the same run, both states
#   bench/mam.sh rank 32 64 128   # full scale: build rank 0 of an R-rank network alone
#                                 # (snn-build --only-ranks 0) under /usr/bin/time -v:
#                                 # wall time, peak RSS, shard bytes per synapse
#   bench/mam.sh table 32 64 128 1024
#                                 # full scale, per-rank sizes from the dry run (the
#                                 # builder's own source draws, nothing stored), area-aware
#                                 # against round-robin placement
#
#   THREADS=2                     # threads for both simulators (default 2)
#   SEEDS="1"                     # speed: seeds (network and simulation), default 1
#   SAMPLE=4                      # table: ranks sampled per rank count (spread evenly)
#   ROUTING_RR=0                  # table: also compute round robin's send tables (costs a
#                                 # count of the whole network per rank count); default off:
#                                 # round robin is symmetric, so sent = received on average
#   IDLE_WAIT=120                 # wait up to this many s for an idle CPU before timing
#
# Prints Markdown tables for bench/RESULTS.md; raw output in bench/out/mam-*.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

THREADS="${THREADS:-2}"
SEEDS="${SEEDS:-1}"
SAMPLE="${SAMPLE:-4}"
ROUTING_RR="${ROUTING_RR:-0}"
IDLE_WAIT="${IDLE_WAIT:-120}"
BIN="${SNN_BIN:-target/release}"
PY=.venv/bin/python
OUT=bench/out
mkdir -p "$OUT"
say() { printf '[mam-bench] %s\n' "$*" >&2; }
IDLE_BUSY="${IDLE_BUSY:-10}"
# load, now, busy_pct, wait_idle
source bench/lib.sh
for b in snn-build snn-sim; do
    [[ -x "$BIN/$b" ]] || { say "error: $BIN/$b missing (cargo build --release)"; exit 1; }
done
SMALL=(--set scale.neurons=0.006 --set scale.indegree=0.006)
GROUND=(--set mam.cc_weights_factor=1.0 --set mam.cc_weights_I_factor=1.0)

speed() {
    [[ -x "$PY" ]] || { say "error: $PY missing (scripts/install.sh)"; exit 1; }
    local rows=()
    for state in ground metastable; do
        local extra=()
        [[ $state == ground ]] && extra=("${GROUND[@]}")
        for seed in $SEEDS; do
            local tag="$OUT/mam-speed-$state-$seed"
            wait_idle "$state seed $seed snn-build"
            local t0 t1
            t0=$(now)
            "$BIN/snn-build" configs/mam.toml -o "$tag-net" --force --threads "$THREADS" --json \
                "${SMALL[@]}" "${extra[@]}" --set "network.seed=$seed" >"$tag-build.json"
            t1=$(now)
            echo "$t0 $t1" >"$tag-build.wall"
            wait_idle "$state seed $seed snn-sim"
            "$BIN/snn-sim" "$tag-net" -o "$tag-run" --force --t-presim 500 --t-sim 2000 \
                --seed "$seed" --threads "$THREADS" --json >"$tag-sim.json"
            wait_idle "$state seed $seed NEST"
            PYNEST_QUIET=1 "$PY" tests/reference/mam_nest.py --states "$state" --seeds "$seed" \
                --threads "$THREADS" --out "$tag-nest.json" >"$tag-nest.out" 2>"$tag-nest.log"
            rows+=("$(python3 - "$tag" "$state" "$seed" <<'PY'
import json, sys
tag, state, seed = sys.argv[1:]
t0, t1 = map(float, open(tag + "-build.wall").read().split())
sim = json.load(open(tag + "-sim.json"))
nest = json.load(open(tag + "-nest.json"))["states"][state]
w = nest["wall_s"][seed]
ours_build, ours_sim = t1 - t0, sim["wall_sim_s"]
print(f"| {state} | {seed} | {ours_build:.2f} | {w['build']:.2f} | {w['build'] / ours_build:.1f} | "
      f"{ours_sim:.2f} | {w['sim']:.2f} | {w['sim'] / ours_sim:.1f} | "
      f"{sim['real_time_factor']:.3f} | {nest['network_rate_hz']['mean']:.2f} |")
PY
)")
        done
    done
    echo "| state | seed | ours build s | NEST build s | NEST/ours | ours sim s (2 s bio) | NEST sim s | NEST/ours | ours s per bio s | NEST rate Hz |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
}

rank() {
    ((${#@})) || set -- 32 64 128
    echo "| ranks | rank | synapses | shard GB | bytes/synapse | wall s | of which routing s | peak RSS GB |"
    echo "|---|---|---|---|---|---|---|---|"
    for r in "$@"; do
        local tag="$OUT/mam-rank-$r"
        wait_idle "rank 0 of $r"
        /usr/bin/time -v "$BIN/snn-build" configs/mam.toml -o "$tag" --force --threads "$THREADS" \
            --ranks "$r" --only-ranks 0 --json >"$tag.json" 2>"$tag.time"
        python3 - "$tag" "$r" <<'PY'
import json, re, sys
tag, r = sys.argv[1:]
s = json.load(open(tag + ".json"))
t = open(tag + ".time").read()
rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
m = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", t)
wall = (int(m.group(1) or 0) * 60 + int(m.group(2))) * 60 + float(m.group(3))
print(f"| {r} | 0 | {s['total_synapses']:,} | {s['shard_bytes'] / 1e9:.2f} | {s['bytes_per_synapse']:.3f} | "
      f"{wall:.1f} | {s['routing_seconds']:.1f} | {rss_kb * 1024 / 1e9:.2f} |")
PY
        rm -rf "$tag"
    done
}

table() {
    ((${#@})) || set -- 32 64 128 1024
    echo "| ranks | placement | ranks sampled | synapses/rank (min-max) | shard MB/rank | bytes/synapse | images/rank | p2p partners in | p2p partners out | received B/step | sent B/step | areas/rank |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for r in "$@"; do
        local sample
        sample=$(python3 -c "import sys; r, k = int(sys.argv[1]), int(sys.argv[2]); print(','.join(sorted({str(i * r // k) for i in range(k)}, key=int)))" "$r" "$SAMPLE")
        for scheme in area round_robin; do
            local tag="$OUT/mam-table-$r-$scheme" routing=(--routing) s="$sample"
            if [[ $scheme == round_robin ]]; then
                s=0
                ((ROUTING_RR)) || routing=()
            fi
            say "dry run: $r ranks, $scheme, ranks $s ${routing[*]}"
            "$BIN/snn-build" configs/mam.toml --dry-run --ranks "$r" --threads "$THREADS" \
                --set "placement.scheme=\"$scheme\"" --sample-ranks "$s" "${routing[@]}" >"$tag.json"
            python3 - "$tag" <<'PY'
import json, sys
d = json.load(open(sys.argv[1] + ".json"))
rs = d["ranks"]
def span(key, fmt="{:,.0f}", scale=1.0):
    v = [x[key] for x in rs if x[key] is not None]
    if not v:
        return "-"
    lo, hi = min(v) * scale, max(v) * scale
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"
sent = span("sent_bytes_per_step", "{:,.0f}")
if sent == "-":
    sent = "= received (symmetric)"
print(f"| {d['n_ranks']} | {d['placement']} | {len(rs)} | {span('synapses')} | {span('shard_bytes', '{:,.0f}', 1e-6)} | "
      f"{span('bytes_per_synapse', '{:.3f}')} | {span('n_images')} | {span('source_ranks')} | "
      f"{span('send_partners')} | {span('received_bytes_per_step')} | {sent} | "
      f"{max(len(x['areas']) for x in rs)} |")
PY
        done
    done
}

cmd="${1:-}"
shift || true
case "$cmd" in
    speed) speed ;;
    rank) rank "$@" ;;
    table) table "$@" ;;
    *) say "usage: bench/mam.sh speed | rank R... | table R..."; exit 2 ;;
esac
