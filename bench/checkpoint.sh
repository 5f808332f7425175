#!/usr/bin/env bash
# Checkpoint benchmark: cost of checkpointing the cortical microcircuit.
#
#   bench/checkpoint.sh                 # scale 0.1
#   bench/checkpoint.sh 0.1 1.0         # scales (N_scaling = K_scaling = scale)
#   THREADS=2 T_PRESIM=100 T_SIM=1000 CKPT_EVERY=250 bench/checkpoint.sh
#   SNN_BIN=path/to/release/dir         # snn-build and snn-sim (default target/release)
#
# For each scale:
#   1. snn-build (once; kept in bench/out/ckpt-net-<scale>);
#   2. snn-sim without checkpoints: the simulation speed (real-time factor
#      rtf = wall_sim_s / biological s);
#   3. the same run with --checkpoint-every CKPT_EVERY: the checkpoint write
#      time (summary wall_checkpoint_s / checkpoints written, including the
#      final one; each write flushes and fsyncs the spike files, writes and
#      fsyncs every rank file, the manifest and run-state.json), the size of
#      one checkpoint on disk (zstd) and uncompressed; checks that the spike
#      counts are those of step 2;
#   4. snn-sim --resume-from the last periodic checkpoint for one interval:
#      the restore time (summary wall_restore_s: reading, verifying and
#      decompressing the rank files and restoring the state) and the whole
#      load time of a resumed piece (wall_load_s, network included);
#   5. the cost of checkpointing every 10 s of biological time as a share of
#      the simulation time: write_s / (10 s * rtf).
# Prints a Markdown table; raw records in bench/out/checkpoint_results.jsonl.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

THREADS="${THREADS:-2}"
T_PRESIM="${T_PRESIM:-100}"
T_SIM="${T_SIM:-1000}"
CKPT_EVERY="${CKPT_EVERY:-250}"
SCALES=("$@")
((${#SCALES[@]})) || SCALES=(0.1)
BIN="${SNN_BIN:-target/release}"
OUTDIR=bench/out
RESULTS="$OUTDIR/checkpoint_results.jsonl"
mkdir -p "$OUTDIR"
for b in snn-build snn-sim; do
    [[ -x "$BIN/$b" ]] || { echo "missing $BIN/$b (cargo build --release)" >&2; exit 1; }
done

say() { printf '[ckpt-bench] %s\n' "$*" >&2; }
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$@"; }

rows=()
for s in "${SCALES[@]}"; do
    net="$OUTDIR/ckpt-net-$s"
    if [[ ! -f "$net/manifest.json" ]]; then
        say "scale $s: building $net"
        "$BIN/snn-build" configs/microcircuit.toml -o "$net" --force --threads "$THREADS" \
            --set "scale.neurons=$s" --set "scale.indegree=$s" >/dev/null
    fi
    plain="$OUTDIR/ckpt-plain-$s" ck="$OUTDIR/ckpt-run-$s" br="$OUTDIR/ckpt-branch-$s"
    say "scale $s: $T_PRESIM + $T_SIM ms without checkpoints"
    "$BIN/snn-sim" "$net" -o "$plain" --force --threads "$THREADS" \
        --t-presim "$T_PRESIM" --t-sim "$T_SIM" --json >"$OUTDIR/ckpt-plain-$s.json"
    say "scale $s: the same with --checkpoint-every $CKPT_EVERY"
    rm -rf "$ck"
    "$BIN/snn-sim" "$net" -o "$ck" --threads "$THREADS" \
        --t-presim "$T_PRESIM" --t-sim "$T_SIM" --checkpoint-every "$CKPT_EVERY" --json \
        >"$OUTDIR/ckpt-run-$s.json"
    # Same run: the same spike counts (tests/checkpoint.rs checks bit identity).
    same=$(python3 -c 'import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:]); print([p["spikes"] for p in a["populations"]]==[p["spikes"] for p in b["populations"]])' \
        "$OUTDIR/ckpt-plain-$s.json" "$OUTDIR/ckpt-run-$s.json")
    [[ "$same" == True ]] || { echo "scale $s: spike counts differ with checkpoints" >&2; exit 1; }
    cps=("$ck"/checkpoints/t-*ms)
    ((${#cps[@]} >= 2)) || { echo "scale $s: expected at least 2 checkpoints" >&2; exit 1; }
    last_periodic="${cps[-2]}"
    bytes=$(du -sb --apparent-size "$last_periodic" | cut -f1)
    payload=$(json "$last_periodic/manifest.json" "sum(r['payload_bytes'] for r in d['ranks'])")
    step=$(json "$last_periodic/manifest.json" "d['step']")
    say "scale $s: --resume-from $(basename "$last_periodic")"
    rm -rf "$br"
    "$BIN/snn-sim" "$net" -o "$br" --threads "$THREADS" --resume-from "$last_periodic" \
        --t-sim 1 --json >"$OUTDIR/ckpt-branch-$s.json"
    rec=$(python3 - "$s" "$OUTDIR/ckpt-plain-$s.json" "$OUTDIR/ckpt-run-$s.json" \
        "$OUTDIR/ckpt-branch-$s.json" "$bytes" "$payload" "$step" "$THREADS" <<'EOF'
import json, sys, datetime, platform
s, plain, ck, br, nbytes, payload, step, threads = sys.argv[1:9]
p, c, b = (json.load(open(f)) for f in (plain, ck, br))
t_sim_s = (p["t_stop_ms"] - p["t_start_ms"]) * 1e-3
rtf = p["wall_sim_s"] / t_sim_s
n = c["checkpoints_written"]
write_s = c["wall_checkpoint_s"] / n
cpu = "?"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
rec = {
    "date": datetime.date.today().isoformat(), "cpu": cpu, "threads": int(threads),
    "scale": float(s), "neurons": sum(x["size"] for x in p["populations"]),
    "t_sim_ms": t_sim_s * 1e3, "rtf": rtf, "checkpoints": n,
    "write_s": write_s, "bytes": int(nbytes), "payload_bytes": int(payload),
    "restore_s": b["wall_restore_s"], "resume_load_s": b["wall_load_s"],
    "fresh_load_s": p["wall_load_s"], "checkpoint_step": int(step),
    "cost_pct_10s": 100.0 * write_s / (10.0 * rtf),
    "overhead_pct_measured": 100.0 * (c["wall_sim_s"] + c["wall_presim_s"] + c["wall_checkpoint_s"]
        - p["wall_sim_s"] - p["wall_presim_s"]) / (p["wall_sim_s"] + p["wall_presim_s"]),
}
print(json.dumps(rec))
EOF
)
    echo "$rec" >>"$RESULTS"
    rows+=("$rec")
done

echo
echo "| scale | neurons | threads | rtf | checkpoint size (zstd / raw) | write s | restore s | resumed load s (fresh) | cost at 10 s interval |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
    python3 - "$r" <<'EOF'
import json, sys
d = json.loads(sys.argv[1])
mb = lambda b: f"{b / 1e6:.1f} MB"
print(f"| {d['scale']} | {d['neurons']} | {d['threads']} | {d['rtf']:.2f} | {mb(d['bytes'])} / {mb(d['payload_bytes'])} "
      f"| {d['write_s']:.3f} | {d['restore_s']:.3f} | {d['resume_load_s']:.2f} ({d['fresh_load_s']:.2f}) | {d['cost_pct_10s']:.3f} % |")
EOF
done
