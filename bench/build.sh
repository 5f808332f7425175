#!/usr/bin/env bash
# Network-construction benchmark: our snn-build vs NEST 3.10, cortical microcircuit.
#
#   bench/build.sh                 # scales 0.1 0.25
#   bench/build.sh 0.1 0.25 0.5    # any scales in (0, 1] (N_scaling = K_scaling = scale)
#   THREADS=2 bench/build.sh       # threads for both simulators (default 2)
#   SKIP_NEST=1 / SKIP_OURS=1      # run only one side
#   SNN_BUILD=path/to/snn-build    # another build of ours (default target/release/snn-build)
#
# Needs: target/release/snn-build (cargo build --release), .venv with NEST 3.10
# (scripts/install.sh), /usr/bin/time (Debian package `time`).
# Raw results: bench/out/results.jsonl (one JSON object per run); logs in bench/out/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

THREADS="${THREADS:-2}"
SCALES=("$@")
((${#SCALES[@]})) || SCALES=(0.1 0.25)
OURS="${SNN_BUILD:-target/release/snn-build}"
PY=.venv/bin/python
OUTDIR=bench/out
RESULTS="$OUTDIR/results.jsonl"
mkdir -p "$OUTDIR"

say() { printf '[bench] %s\n' "$*" >&2; }
source bench/lib.sh

# ---- what can run -----------------------------------------------------------------
sides_requested

if ((run_ours)); then
    if [[ ! -x /usr/bin/time ]]; then
        say "error: /usr/bin/time not found: apt-get install time (scripts/install.sh does)"
        exit 1
    fi
    if [[ ! -x "$OURS" ]]; then
        say "$OURS not found: building it (cargo build --release --bin snn-build)"
        cargo build --release --bin snn-build >&2 || true
    fi
    if [[ ! -x "$OURS" ]]; then
        say "warning: $OURS does not exist and could not be built; measuring NEST only"
        run_ours=0
    fi
fi
check_nest
require_a_side
result_stamps
rows=()

for s in "${SCALES[@]}"; do
    ours_json="$OUTDIR/ours-$s.json"
    ours_time="$OUTDIR/ours-$s.time"
    ours_err="$OUTDIR/ours-$s.stderr"
    nest_json="$OUTDIR/nest-$s.json"
    nest_err="$OUTDIR/nest-$s.stderr"
    rm -f "$ours_json" "$ours_time" "$ours_err" "$nest_json" "$nest_err"

    if ((run_ours)); then
        say "scale $s: ours: $OURS configs/microcircuit.toml -o $OUTDIR/net-$s --threads $THREADS"
        if ! /usr/bin/time -v -o "$ours_time" "$OURS" configs/microcircuit.toml -o "$OUTDIR/net-$s" --force \
            --threads "$THREADS" --json --set "scale.neurons=$s" --set "scale.indegree=$s" \
            >"$ours_json" 2>"$ours_err"; then
            say "scale $s: ours FAILED; last lines of $ours_err:"
            tail -n 5 "$ours_err" >&2 || true
        elif ! grep -q '^{' "$ours_json"; then
            say "scale $s: ours printed no JSON object on stdout (is --json implemented yet?)"
        fi
    fi
    if ((run_nest)); then
        say "scale $s: nest: $PY bench/build_nest.py --scale $s --threads $THREADS"
        if ! "$PY" bench/build_nest.py --scale "$s" --threads "$THREADS" >"$nest_json" 2>"$nest_err"; then
            say "scale $s: nest run failed or its checks failed; see $nest_err:"
            tail -n 5 "$nest_err" >&2 || true
        fi
        grep '^check:' "$nest_err" | sed 's/^/[bench]   nest /' >&2 || true
    fi

    # One row: scale synapses ours_s nest_s ratio ours_rss nest_rss (+ raw records to results.jsonl)
    row=$("$PARSE" - "$s" "$ours_json" "$ours_time" "$nest_json" "$RESULTS" "$stamp" "$THREADS" "$host_cpu" <<'PYEOF'
import json, re, sys
scale, ours_json, ours_time, nest_json, results, stamp, threads, cpu = sys.argv[1:]

def last_json(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        pass
    try:
        lines = [l for l in open(path).read().splitlines() if l.strip().startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None

def time_v(path):
    try:
        text = open(path).read()
    except OSError:
        return None, None
    wall = rss = None
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    if m:
        secs = 0.0
        for part in m.group(1).split(":"):
            secs = secs * 60 + float(part)
        wall = secs
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        rss = int(m.group(1)) / 1024.0
    return wall, rss

ours = last_json(ours_json)
wall, rss = time_v(ours_time)
nest = last_json(nest_json)
common = {"date": stamp, "scale": float(scale), "threads": int(threads), "cpu": cpu}
with open(results, "a") as f:
    if ours is not None or wall is not None:
        f.write(json.dumps({**common, "simulator": "snn", "wall_s": wall, "max_rss_mb": rss, "report": ours}) + "\n")
    if nest is not None:
        f.write(json.dumps({**common, **nest}) + "\n")

ours_s = wall if (ours is not None and wall is not None) else None
syn = (ours or {}).get("total_synapses")
nest_syn = (nest or {}).get("recurrent_synapses")
if syn is None:
    syn = nest_syn
mark = ""
if ours and nest and ours.get("total_synapses") != nest_syn:
    mark = " (nest %s!)" % nest_syn
nest_s = (nest or {}).get("total_s")
ratio = nest_s / ours_s if (nest_s and ours_s) else None
ours_rss = rss if ours is not None else None
if ours and ours_rss is None and ours.get("peak_rss_bytes"):
    ours_rss = ours["peak_rss_bytes"] / 2**20
nest_rss = (nest or {}).get("peak_rss_mb")

f = lambda v, fmt: "n/a" if v is None else fmt % v
print(" | ".join([scale, (f(syn, "%d") + mark), f(ours_s, "%.2f"), f(nest_s, "%.2f"),
                  f(ratio, "%.2f"), f(ours_rss, "%.0f"), f(nest_rss, "%.0f")]))
PYEOF
)
    rows+=("$row")
done

echo
echo "Cortical microcircuit construction, $THREADS threads, $stamp, $host_cpu"
echo "ours_s: snn-build wall time (whole process, shards written); nest_s: Create + Connect in NEST $( ((run_nest)) && PYNEST_QUIET=1 "$PY" -c 'import nest; print(nest.__version__)' 2>/dev/null | tail -n1)"
echo
echo "| scale | synapses | ours_s | nest_s | nest/ours | ours peak RSS MB | nest peak RSS MB |"
echo "|------:|---------:|-------:|-------:|----------:|-----------------:|-----------------:|"
for r in "${rows[@]}"; do echo "| $r |"; done
echo
echo "raw records appended to $RESULTS"
