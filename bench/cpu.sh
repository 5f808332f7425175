#!/usr/bin/env bash
# CPU benchmark: our snn (CPU backend) vs NEST 3.10, side by side in the same run.
#
#   bench/cpu.sh                   # micro-0.1 micro-0.25 balanced dc-0.1 dc-0.25
#   FULL=1 bench/cpu.sh            # the same plus micro-1 and dc-1 (full scale: NEST needs ~15 GB
#                                  # and ~200 s per biological second; NEST_FULL_THREADS threads)
#   bench/cpu.sh micro-0.1 dc-0.1  # chosen networks (see NETWORKS below)
#   bench/cpu.sh floors [ARGS]     # run target/release/examples/floors (if built) and print its output
#   THREADS=2                      # threads for both simulators (default 2)
#   NEST_FULL_THREADS=4            # NEST's threads for the full-scale microcircuit (micro-1, dc-1; default 4)
#   T_PRESIM=200 T_SIM=1000        # presimulation / timed simulation, ms (defaults)
#   REPEAT=3                       # runs per network and simulator; the table shows the fastest (default 1)
#   SKIP_NEST=1 / SKIP_OURS=1      # run only one side
#   SNN_BIN=path/to/release/dir    # where snn-build and snn-sim are (default target/release)
#   IDLE_WAIT=120                  # before each timed run, wait up to this many s for an idle CPU
#                                  # (< IDLE_BUSY % busy over 1 s, default 10); 0: don't wait
#
# NETWORKS
#   micro-S      configs/microcircuit.toml, scale.neurons = scale.indegree = S (NEST: bench/sim_nest.py --scale S)
#   dc-S         the same with the Poisson drive replaced by its mean as a DC
#                (snn: --set poisson_background.poisson_input=false; NEST: bench/sim_nest.py --dc)
#   balanced     configs/balanced.toml at scale 1: 11,250 neurons, in-degree 11,250
#                (NEST: bench/sim_nest_balanced.py); balanced-S: scale.neurons = scale.indegree = S (tests)
#
# For each network (and each of REPEAT runs): snn-build (timed, whole process)
# -> snn-sim --json (real_time_factor, synaptic_events, steps from its
# summary) -> the NEST script (same threads, presim and sim times). Prints one
# Markdown table row per network for bench/RESULTS.md. Needs target/release/
# snn-build and snn-sim and .venv with NEST 3.10 (scripts/install.sh). Raw
# results: bench/out/cpu_results.jsonl; logs in bench/out/cpu-*. Run it on an
# otherwise idle machine: NEST's OpenMP threads spin at barriers and slow down
# many-fold when the cores are shared; the script waits for an idle CPU before
# each timed run and REPEAT>1 keeps the fastest run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

THREADS="${THREADS:-2}"
NEST_FULL_THREADS="${NEST_FULL_THREADS:-4}"
T_PRESIM="${T_PRESIM:-200}"
T_SIM="${T_SIM:-1000}"
REPEAT="${REPEAT:-1}"
IDLE_WAIT="${IDLE_WAIT:-120}"
IDLE_BUSY="${IDLE_BUSY:-10}"
BIN="${SNN_BIN:-target/release}"
PY=.venv/bin/python
OUTDIR=bench/out
RESULTS="$OUTDIR/cpu_results.jsonl"
mkdir -p "$OUTDIR"

say() { printf '[cpu-bench] %s\n' "$*" >&2; }
# load, now, busy_pct, wait_idle, choose_sides
source bench/lib.sh

# ---- bench/cpu.sh floors: the Rust microbenchmark of the per-part floors.
if [[ "${1:-}" == "floors" ]]; then
    shift
    floors="$BIN/examples/floors"
    if [[ -x "$floors" ]]; then
        wait_idle "floors"
        say "$floors $*"
        "$floors" "$@"
    else
        echo "floors: $floors not found (build it: cargo build --release -p snn-simulate --example floors)"
    fi
    exit 0
fi

NETWORKS=("$@")
if ((!${#NETWORKS[@]})); then
    NETWORKS=(micro-0.1 micro-0.25 balanced dc-0.1 dc-0.25)
    [[ "${FULL:-0}" == "1" ]] && NETWORKS=(micro-0.1 micro-0.25 micro-1 balanced dc-0.1 dc-0.25 dc-1)
fi
num_re='^[0-9]*\.?[0-9]+$'
for n in "${NETWORKS[@]}"; do
    case "$n" in
        micro-* | dc-* | balanced-*) [[ "${n#*-}" =~ $num_re ]] || { say "error: bad scale in '$n'"; exit 1; } ;;
        balanced) ;;
        *) say "error: unknown network '$n' (micro-S, dc-S, balanced, balanced-S, or 'floors' alone)"; exit 1 ;;
    esac
done

choose_sides
rows=()

for name in "${NETWORKS[@]}"; do
    # What to build and run on each side.
    nest_threads="$THREADS"
    case "$name" in
        micro-* | dc-*)
            s="${name#*-}"
            config=configs/microcircuit.toml
            sets=(--set "scale.neurons=$s" --set "scale.indegree=$s")
            nest_cmd=("$PY" bench/sim_nest.py --scale "$s")
            if [[ "$name" == dc-* ]]; then
                sets+=(--set poisson_background.poisson_input=false)
                nest_cmd+=(--dc)
            fi
            if "$PARSE" -c "import sys; sys.exit(0 if float(sys.argv[1]) == 1.0 else 1)" "$s"; then
                nest_threads="$NEST_FULL_THREADS"
                if ((run_nest)); then
                    avail_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)
                    ((avail_kb >= 16 * 1024 * 1024)) ||
                        say "$name: warning: NEST needs ~15 GB at full scale, $((avail_kb / 1024)) MB available"
                fi
            fi
            ;;
        balanced*)
            s=1
            [[ "$name" == balanced-* ]] && s="${name#*-}"
            config=configs/balanced.toml
            sets=(--set "scale.neurons=$s" --set "scale.indegree=$s")
            nest_cmd=("$PY" bench/sim_nest_balanced.py --scale-neurons "$s" --scale-indegree "$s")
            ;;
    esac
    nest_cmd+=(--threads "$nest_threads" --t-presim "$T_PRESIM" --t-sim "$T_SIM")
    net="$OUTDIR/cpu-net-$name"
    run="$OUTDIR/cpu-run-$name"
    rm -f "$OUTDIR"/cpu-{build,ours,nest}-"$name"-*.{json,stderr,wall}

    for ((r = 1; r <= REPEAT; r++)); do
        tag="$name-$r"
        build_json="$OUTDIR/cpu-build-$tag.json"
        build_err="$OUTDIR/cpu-build-$tag.stderr"
        build_wall="$OUTDIR/cpu-build-$tag.wall"
        ours_json="$OUTDIR/cpu-ours-$tag.json"
        ours_err="$OUTDIR/cpu-ours-$tag.stderr"
        nest_json="$OUTDIR/cpu-nest-$tag.json"
        nest_err="$OUTDIR/cpu-nest-$tag.stderr"

        if ((run_ours)); then
            wait_idle "$name run $r snn-build"
            say "$name run $r: ours: $BIN/snn-build $config -o $net --threads $THREADS ${sets[*]}"
            t0=$(now)
            if "$BIN/snn-build" "$config" -o "$net" --force --threads "$THREADS" --json "${sets[@]}" \
                >"$build_json" 2>"$build_err"; then
                t1=$(now)
                echo "$t0 $t1" >"$build_wall"
                wait_idle "$name run $r snn-sim"
                say "$name run $r: ours: $BIN/snn-sim $net -o $run --t-presim $T_PRESIM --t-sim $T_SIM --threads $THREADS"
                if ! "$BIN/snn-sim" "$net" -o "$run" --force --t-presim "$T_PRESIM" --t-sim "$T_SIM" \
                    --threads "$THREADS" --json >"$ours_json" 2>"$ours_err"; then
                    say "$name run $r: snn-sim FAILED; last lines of $ours_err:"
                    tail -n 5 "$ours_err" >&2 || true
                fi
            else
                say "$name run $r: snn-build FAILED; last lines of $build_err:"
                tail -n 5 "$build_err" >&2 || true
            fi
        fi
        if ((run_nest)); then
            wait_idle "$name run $r nest"
            say "$name run $r: nest: ${nest_cmd[*]}"
            if ! "${nest_cmd[@]}" >"$nest_json" 2>"$nest_err"; then
                say "$name run $r: nest run failed or a check failed; last lines of $nest_err:"
                tail -n 5 "$nest_err" >&2 || true
            fi
        fi
    done

    row=$("$PARSE" - "$name" "$OUTDIR" "$REPEAT" "$RESULTS" "$stamp" "$THREADS" "$nest_threads" "$host_cpu" \
        "$T_PRESIM" "$T_SIM" "$s" <<'PYEOF'
import json, sys
name, outdir, repeat, results, stamp, threads, nest_threads, cpu, t_presim, t_sim, scale = sys.argv[1:]

sys.path.insert(0, "bench")
from result_files import read_json, wall, error_line

kind = "balanced" if name.startswith("balanced") else ("microcircuit-dc" if name.startswith("dc-") else "microcircuit")
common = {"date": stamp, "bench": "cpu", "network": name, "model": kind, "scale_neurons": float(scale),
          "scale_indegree": float(scale), "threads": int(threads), "nest_threads": int(nest_threads),
          "t_presim_ms": float(t_presim), "t_sim_ms": float(t_sim), "cpu": cpu}
builds, ours_runs, nest_runs, notes = [], [], [], []
build_report = None
with open(results, "a") as f:
    for r in range(1, int(repeat) + 1):
        tag = f"{outdir}/cpu-%s-{name}-{r}"
        build = read_json(tag % "build" + ".json")
        build_s = wall(tag % "build" + ".wall")
        ours = read_json(tag % "ours" + ".json")
        nest = read_json(tag % "nest" + ".json")
        if build is not None or ours is not None:
            f.write(json.dumps({**common, "run": r, "simulator": "snn", "build_wall_s": build_s,
                                "build_report": build, "sim_summary": ours}) + "\n")
        if nest is not None:
            f.write(json.dumps({**common, "run": r, **nest}) + "\n")
        if build is not None and build_s is not None:
            builds.append(build_s)
            build_report = build
        elif build is None and wall(tag % "build" + ".wall") is None:
            e = error_line(tag % "build" + ".stderr")
            if e:
                notes.append("snn-build failed: " + e)
        if ours and ours.get("real_time_factor") is not None:
            ours_runs.append(ours)
        elif build is not None:
            e = error_line(tag % "ours" + ".stderr")
            if e:
                notes.append("snn-sim failed: " + e)
        if nest and nest.get("sim_s_per_bio_s") is not None:
            nest_runs.append(nest)
            if nest.get("connections_ok") is False or nest.get("derived_matches_json") is False:
                notes.append("NEST check failed (see cpu-nest-%s-%d.stderr)" % (name, r))
        else:
            e = error_line(tag % "nest" + ".stderr")
            if e:
                notes.append("NEST failed: " + e)

ours = min(ours_runs, key=lambda o: o["real_time_factor"]) if ours_runs else None
nest = min(nest_runs, key=lambda o: o["sim_s_per_bio_s"]) if nest_runs else None
ours_rate = ours["real_time_factor"] if ours else None
nest_rate = nest["sim_s_per_bio_s"] if nest else None
ratio = nest_rate / ours_rate if (nest_rate and ours_rate) else None
neurons = events = timed_steps = ns_step = ns_event = ours_spikes = None
if ours:
    neurons = sum(p.get("size", 0) for p in ours.get("populations", []))
    events = ours.get("synaptic_events")
    # snn-sim's "steps" counts presimulation too; the timed part is t_start..t_stop.
    timed_steps = round((ours["t_stop_ms"] - ours["t_start_ms"]) / ours["dt_ms"])
    core_s = ours["wall_sim_s"] * (ours.get("threads") or int(threads))
    if neurons and timed_steps:
        ns_step = 1e9 * core_s / (neurons * timed_steps)
    if events:
        ns_event = 1e9 * core_s / events
    ours_spikes = sum(p.get("spikes", 0) for p in ours.get("populations", []) if p.get("recorded", True))
if neurons is None and build_report:
    neurons = build_report.get("n_neurons")
if neurons is None and nest:
    neurons = nest.get("n_neurons")
synapses = build_report.get("total_synapses") if build_report else None
if synapses is None and nest:
    synapses = nest.get("recurrent_synapses", nest.get("recurrent_synapses_expected"))

f = lambda v, fmt: "n/a" if v is None else fmt % v
g = lambda v: "n/a" if v is None else f"{v:,}"
print(" | ".join([
    name, g(neurons), g(synapses),
    f(min(builds) if builds else None, "%.2f"),
    f(nest["build_s"] if nest else None, "%.2f"),
    f(ours_rate, "%.3f"), f(nest_rate, "%.3f"), f(ratio, "%.1f"),
    "%s / %s" % (threads, nest_threads),
    g(timed_steps), g(events), f(ns_step, "%.1f"), f(ns_event, "%.1f"),
    "%s / %s" % (g(ours_spikes), g(nest.get("total_spikes") if nest else None)),
    "/".join("%.3f" % o["real_time_factor"] for o in ours_runs) or "-",
    "/".join("%.3f" % o["sim_s_per_bio_s"] for o in nest_runs) or "-",
    "; ".join(dict.fromkeys(notes)) or "",
]))
PYEOF
)
    rows+=("$row")
    say "$name: | $row |"
done

echo
echo "snn (CPU backend) vs NEST $nest_version, presim $T_PRESIM ms + timed $T_SIM ms, $stamp, $host_cpu"
echo "sim s / bio s: wall time of the timed $T_SIM ms per biological second (ours: snn-sim real_time_factor;"
echo "NEST: nest.Simulate of the timed part); build: ours = whole snn-build process (shards written),"
echo "NEST = Create + Connect in-process; threads ours / NEST; fastest of $REPEAT run(s) each (all runs listed)."
echo "core ns / neuron-step and core ns / event: ours only, snn-sim wall_sim_s x threads divided by"
echo "(neurons x timed steps), resp. by synaptic_events: core-time averages of the whole timed run (all"
echo "parts together: Poisson drive, updates, delivery, synchronisation), not the costs of the parts."
echo
echo "| network | neurons | synapses | ours build s | NEST build s | ours sim s/bio s | NEST sim s/bio s | NEST/ours | threads ours / NEST | timed steps | synaptic events | core ns / neuron-step | core ns / event | spikes ours / NEST | ours runs | NEST runs | notes |"
echo "|:--------|--------:|---------:|-------------:|-------------:|-----------------:|-----------------:|----------:|:-------------------:|------------:|----------------:|----------------------:|----------------:|-------------------:|:----------|:----------|:------|"
for r in "${rows[@]}"; do echo "| $r |"; done
echo
echo "raw records appended to $RESULTS"
