#!/usr/bin/env bash
# Simulation benchmark: our snn-sim vs NEST 3.10, cortical microcircuit.
#
#   bench/sim.sh                   # scales 0.1 0.25
#   bench/sim.sh 0.1 0.25 0.5      # any scales in (0, 1] (N_scaling = K_scaling = scale)
#   THREADS=2 bench/sim.sh         # threads for both simulators (default 2)
#   T_PRESIM=500 T_SIM=1000        # presimulation / timed simulation, ms (defaults)
#   SKIP_NEST=1 / SKIP_OURS=1      # run only one side
#   SNN_BIN=path/to/release/dir    # where snn-build and snn-sim are (default target/release)
#   REPEAT=3                       # runs per scale and simulator; the table shows the fastest (default 1)
#   IDLE_WAIT=120                  # before each timed run, wait up to this many s for an idle CPU
#                                  # (< IDLE_BUSY % busy over 1 s, default 10); 0: don't wait
#
# For each scale: snn-build (timed, whole process) -> snn-sim --json (load,
# presim, sim wall times from its summary) -> bench/sim_nest.py (same scale,
# threads, presim and sim times). Prints a Markdown table. Needs
# target/release/snn-build and snn-sim (cargo build --release) and .venv with
# NEST 3.10 (scripts/install.sh). Raw results: bench/out/sim_results.jsonl; logs
# in bench/out/. Run it on an otherwise idle machine: NEST's OpenMP threads
# spin at barriers and slow down many-fold (10-30x measured) when the cores are
# shared with other work; the script waits for an idle CPU before each timed
# run, prints the CPU use it saw, and REPEAT>1 keeps the fastest run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

THREADS="${THREADS:-2}"
T_PRESIM="${T_PRESIM:-500}"
T_SIM="${T_SIM:-1000}"
REPEAT="${REPEAT:-1}"
IDLE_WAIT="${IDLE_WAIT:-120}"
IDLE_BUSY="${IDLE_BUSY:-10}"
SCALES=("$@")
((${#SCALES[@]})) || SCALES=(0.1 0.25)
BIN="${SNN_BIN:-target/release}"
PY=.venv/bin/python
OUTDIR=bench/out
RESULTS="$OUTDIR/sim_results.jsonl"
mkdir -p "$OUTDIR"

say() { printf '[sim-bench] %s\n' "$*" >&2; }
# load, now, busy_pct, wait_idle, choose_sides
source bench/lib.sh

choose_sides
rows=()

for s in "${SCALES[@]}"; do
    net="$OUTDIR/net-$s"
    run="$OUTDIR/run-$s"
    rm -f "$OUTDIR"/sim-{build,ours,nest}-"$s"-*.{json,stderr,wall}
    for ((r = 1; r <= REPEAT; r++)); do
        tag="$s-$r"
        build_json="$OUTDIR/sim-build-$tag.json"
        build_err="$OUTDIR/sim-build-$tag.stderr"
        build_wall="$OUTDIR/sim-build-$tag.wall"
        ours_json="$OUTDIR/sim-ours-$tag.json"
        ours_err="$OUTDIR/sim-ours-$tag.stderr"
        nest_json="$OUTDIR/sim-nest-$tag.json"
        nest_err="$OUTDIR/sim-nest-$tag.stderr"

        if ((run_ours)); then
            wait_idle "scale $s run $r snn-build"
            say "scale $s run $r: ours: $BIN/snn-build configs/microcircuit.toml -o $net --threads $THREADS"
            t0=$(now)
            if "$BIN/snn-build" configs/microcircuit.toml -o "$net" --force --threads "$THREADS" --json \
                --set "scale.neurons=$s" --set "scale.indegree=$s" >"$build_json" 2>"$build_err"; then
                t1=$(now)
                echo "$t0 $t1" >"$build_wall"
                wait_idle "scale $s run $r snn-sim"
                say "scale $s run $r: ours: $BIN/snn-sim $net -o $run --t-presim $T_PRESIM --t-sim $T_SIM --threads $THREADS"
                if ! "$BIN/snn-sim" "$net" -o "$run" --force --t-presim "$T_PRESIM" --t-sim "$T_SIM" \
                    --threads "$THREADS" --json >"$ours_json" 2>"$ours_err"; then
                    say "scale $s run $r: snn-sim FAILED; last lines of $ours_err:"
                    tail -n 5 "$ours_err" >&2 || true
                fi
            else
                say "scale $s run $r: snn-build FAILED; last lines of $build_err:"
                tail -n 5 "$build_err" >&2 || true
            fi
        fi
        if ((run_nest)); then
            wait_idle "scale $s run $r nest"
            say "scale $s run $r: nest: $PY bench/sim_nest.py --scale $s --threads $THREADS"
            if ! "$PY" bench/sim_nest.py --scale "$s" --threads "$THREADS" --t-presim "$T_PRESIM" --t-sim "$T_SIM" \
                >"$nest_json" 2>"$nest_err"; then
                say "scale $s run $r: nest run failed; last lines of $nest_err:"
                tail -n 5 "$nest_err" >&2 || true
            fi
        fi
    done

    row=$("$PARSE" - "$s" "$OUTDIR" "$REPEAT" "$RESULTS" "$stamp" "$THREADS" "$host_cpu" <<'PYEOF'
import json, sys
scale, outdir, repeat, results, stamp, threads, cpu = sys.argv[1:]

sys.path.insert(0, "bench")
from result_files import read_json, wall

common = {"date": stamp, "scale": float(scale), "threads": int(threads), "cpu": cpu}
builds, loads, ours_rates, ours_spikes, nest_rates, nest_spikes = [], [], [], [], [], []
with open(results, "a") as f:
    for r in range(1, int(repeat) + 1):
        tag = f"{outdir}/sim-%s-{scale}-{r}"
        build = read_json(tag % "build" + ".json")
        build_s = wall(tag % "build" + ".wall")
        ours = read_json(tag % "ours" + ".json")
        nest = read_json(tag % "nest" + ".json")
        if build is not None or ours is not None:
            f.write(json.dumps({**common, "run": r, "simulator": "snn", "build_wall_s": build_s,
                                "build_report": build, "sim_summary": ours}) + "\n")
        if nest is not None:
            f.write(json.dumps({**common, "run": r, **nest}) + "\n")
        if build_s is not None and build is not None:
            builds.append(build_s)
        if ours:
            rate = ours.get("real_time_factor")
            if rate is None and ours.get("wall_sim_s") is not None:
                rate = ours["wall_sim_s"] / ((ours["t_stop_ms"] - ours["t_start_ms"]) / 1000.0)
            if rate is not None:
                ours_rates.append(rate)
            if ours.get("wall_load_s") is not None:
                loads.append(ours["wall_load_s"])
            ours_spikes.append(sum(p.get("spikes", 0) for p in ours.get("populations", [])))
        if nest and nest.get("sim_s_per_bio_s") is not None:
            nest_rates.append(nest["sim_s_per_bio_s"])
            nest_spikes.append(nest.get("total_spikes"))

lo = lambda xs: min(xs) if xs else None
ours_rate, nest_rate, ours_load, build_s = lo(ours_rates), lo(nest_rates), lo(loads), lo(builds)
ratio = nest_rate / ours_rate if (nest_rate and ours_rate) else None
load_pct = 100.0 * ours_load / build_s if (ours_load is not None and build_s) else None
f = lambda v, fmt: "n/a" if v is None else fmt % v
print(" | ".join([scale, f(ours_rate, "%.3f"), f(nest_rate, "%.3f"), f(ratio, "%.1f"),
                  f(ours_load, "%.3f"), f(build_s, "%.2f"), f(load_pct, "%.1f %%"),
                  f(ours_spikes[0] if ours_spikes else None, "%d"),
                  f(nest_spikes[0] if nest_spikes else None, "%d"),
                  "/".join("%.3f" % x for x in ours_rates) or "-",
                  "/".join("%.3f" % x for x in nest_rates) or "-"]))
PYEOF
)
    rows+=("$row")
done

echo
echo "Cortical microcircuit simulation, $THREADS threads, presim $T_PRESIM ms + timed $T_SIM ms, $stamp, $host_cpu"
echo "sim s / bio s: wall time of the timed $T_SIM ms per biological second (ours: snn-sim wall_sim_s;"
echo "nest: nest.Simulate, NEST $nest_version); load: snn-sim wall_load_s; build: snn-build wall time (whole process);"
echo "fastest of $REPEAT run(s) each (all runs in the last two columns); spikes: recorded in the timed window"
echo
echo "| scale | ours sim s/bio s | nest sim s/bio s | nest/ours | ours load s | ours build s | load/build | ours spikes | nest spikes | ours runs | nest runs |"
echo "|------:|-----------------:|-----------------:|----------:|------------:|-------------:|-----------:|------------:|------------:|:----------|:----------|"
for r in "${rows[@]}"; do echo "| $r |"; done
echo
echo "raw records appended to $RESULTS"
