#!/usr/bin/env bash
# GPU checks and measurements of issue 6, in ONE call on a lent GPU machine
# (../.library/device; read HOPPER.md and METHOD.md there first). That
# machine has no Rust and no libhdf5: build the binaries here with
# bench/gpu/build_portable.sh and carry bench/gpu/bin with the call:
#
#   bench/gpu/build_portable.sh          # here
#   run(command="bench/gpu/run.sh all", carry=["bench/gpu/bin"])
#
# Stages (arguments pick them; default `all`):
#   identity  CPU-vs-GPU identity on the 10% microcircuit and a scaled
#             balanced network: shards of `--backend cuda` byte-identical to
#             `--backend cpu`; spikes of `--backend cuda` identical to
#             `--backend cpu` (snn-analyze compare: bit for bit), also for
#             runs checkpointed and resumed on the GPU or across backends
#   micro     full-scale microcircuit: GPU construction time (with an
#             empty PTX cache and with a filled one), shard load time,
#             real-time factor, GPU bytes per synapse; the simulation in
#             variants of the launch shape (SNN_CUDA_BLOCK 128/256/512); the
#             launch-bound floor measured on a 77-neuron network
#   balanced  balanced network, 112,500 neurons, 1.27e9 synapses: GPU
#             construction time, time per biological second
#
# Every figure is printed as a Markdown table at the end (the reply carries
# the tail of the output) and written with the raw JSON to $OUT (or
# /tmp/snn-gpu when $OUT is not set). Failures do not stop later stages;
# each says FAIL with its reason.
set -uo pipefail
cd "$(dirname "$0")/../.."

BIN="${SNN_BIN:-bench/gpu/bin}"
OUTDIR="${OUT:-/tmp/snn-gpu}"
WORK="${WORK:-/tmp/snn-gpu-work}"
THREADS="${THREADS:-$(nproc)}"
T_SIM_MS="${T_SIM_MS:-10000}"
STAGES=("$@")
((${#STAGES[@]})) || STAGES=(all)
mkdir -p "$OUTDIR" "$WORK"
# NVRTC: the copy carried with the binaries (xz-compressed by
# build_portable.sh), unless one is named.
if [[ -z "${SNN_NVRTC_LIB:-}" && -d "$BIN/nvrtc" ]]; then
    mkdir -p "$WORK/nvrtc"
    for f in "$BIN"/nvrtc/*.xz; do
        [[ -e "$f" ]] || continue
        python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
            "$f" "$WORK/nvrtc/$(basename "$f" .xz)"
    done
    export SNN_NVRTC_LIB="$WORK/nvrtc"
    # libnvrtc loads its builtins library by name.
    export LD_LIBRARY_PATH="$WORK/nvrtc${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# The PTX disk cache of this bench (the micro stage times a cold one too).
export SNN_KERNEL_CACHE="${SNN_KERNEL_CACHE:-$WORK/kernel-cache}"
ROWS=()
row() { ROWS+=("$*"); printf '%s\n' "$*" >>"$OUTDIR/table.md"; }
say() { printf '[gpu-bench %s] %s\n' "$(date +%T)" "$*" >&2; }
want() { local s; for s in "${STAGES[@]}"; do [[ "$s" == all || "$s" == "$1" ]] && return 0; done; return 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$@"; }

say "machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n1 || echo 'no nvidia-smi'); $(nproc) cores"
"$BIN/snn-sim" --version >&2 || { say "FAIL: $BIN/snn-sim does not run here"; exit 1; }
: >"$OUTDIR/table.md"
row "| date | $(date -u +%F) | device | $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n1) |"
row "|---|---|---|---|"

# build NAME CONFIG DEVICE SETS...: builds into $WORK/NAME, prints seconds.
build() {
    local name="$1" config="$2" device="$3"
    shift 3
    local sets=() s
    for s in "$@"; do sets+=(--set "$s"); done
    local t0 t1
    t0=$(now)
    if ! "$BIN/snn-build" "$config" -o "$WORK/$name" --force --json --threads "$THREADS" \
        --backend "$device" "${sets[@]}" >"$OUTDIR/build-$name.json" 2>"$OUTDIR/build-$name.log"; then
        say "FAIL: build $name ($device): $(tail -n1 "$OUTDIR/build-$name.log")"
        return 1
    fi
    t1=$(now)
    secs "$t0" "$t1"
}

# sim NAME NET BACKEND PRESIM_MS SIM_MS: runs into $WORK/NAME.
sim() {
    local name="$1" net="$2" backend="$3" presim="$4" tsim="$5"
    if ! "$BIN/snn-sim" "$WORK/$net" -o "$WORK/$name" --force --json --threads "$THREADS" \
        --backend "$backend" --t-presim "$presim" --t-sim "$tsim" \
        >"$OUTDIR/sim-$name.json" 2>"$OUTDIR/sim-$name.log"; then
        say "FAIL: sim $name ($backend): $(tail -n1 "$OUTDIR/sim-$name.log")"
        return 1
    fi
    cp "$WORK/$name/summary.json" "$OUTDIR/summary-$name.json" 2>/dev/null
}

same_shards() {
    local a="$WORK/$1" b="$WORK/$2" f ok=yes
    for f in "$a"/*.shard "$a"/shards/* ; do
        [[ -e "$f" ]] || continue
        local rel="${f#"$a"/}"
        cmp -s "$f" "$b/$rel" || { ok="no ($rel differs)"; break; }
    done
    echo "$ok"
}

if want identity; then
    say "identity: microcircuit 0.1 and balanced (scale 0.2)"
    for spec in "micro01 configs/microcircuit.toml scale.neurons=0.1 scale.indegree=0.1" \
                "bal02 configs/balanced.toml scale.neurons=0.2 scale.indegree=0.2"; do
        read -r name config s1 s2 <<<"$spec"
        tc=$(build "$name-cpu" "$config" cpu "$s1" "$s2") || continue
        if tg=$(build "$name-gpu" "$config" cuda "$s1" "$s2"); then
            row "| $name shards cuda == cpu | $(same_shards "$name-cpu" "$name-gpu") | build s cpu / cuda | $tc / $tg |"
        else
            row "| $name shards cuda == cpu | FAIL: GPU build failed | build s cpu | $tc |"
        fi
        sim "$name-run-cpu" "$name-cpu" cpu 100 1000 || continue
        sim "$name-run-gpu" "$name-cpu" cuda 100 1000 || continue
        "$BIN/snn-analyze" compare "$WORK/$name-run-cpu" "$WORK/$name-run-gpu" --json \
            >"$OUTDIR/compare-$name.json" 2>&1
        row "| $name spikes cuda == cpu (1 s) | $(json "$OUTDIR/compare-$name.json" "d['identical']") | first difference | $(json "$OUTDIR/compare-$name.json" "d['first_difference']") |"
        # Checkpoints: 400 ms with checkpoints every 100 ms, then the run
        # extended to 1 s with --resume, on the GPU throughout and switching
        # backend at the resume; both must equal the CPU's one-go run.
        for pair in cuda:cuda cpu:cuda cuda:cpu; do
            b1="${pair%%:*}" b2="${pair##*:}" r="$WORK/$name-resume-${b1}-${b2}"
            rm -rf "$r"
            if "$BIN/snn-sim" "$WORK/$name-cpu" -o "$r" --threads "$THREADS" --backend "$b1" \
                    --t-presim 100 --t-sim 400 --checkpoint-every 100 >/dev/null 2>"$OUTDIR/resume-$name-$b1-$b2.log" \
                && "$BIN/snn-sim" "$WORK/$name-cpu" -o "$r" --threads "$THREADS" --backend "$b2" \
                    --resume --t-sim 1000 >/dev/null 2>>"$OUTDIR/resume-$name-$b1-$b2.log"; then
                "$BIN/snn-analyze" compare "$WORK/$name-run-cpu" "$r" --json >"$OUTDIR/compare-$name-resume-$b1-$b2.json" 2>&1
                row "| $name checkpointed on $b1, resumed on $b2 == cpu one go | $(json "$OUTDIR/compare-$name-resume-$b1-$b2.json" "d['identical']") | first difference | $(json "$OUTDIR/compare-$name-resume-$b1-$b2.json" "d['first_difference']") |"
            else
                row "| $name checkpointed on $b1, resumed on $b2 | FAIL: $(tail -n1 "$OUTDIR/resume-$name-$b1-$b2.log") | | |"
            fi
        done
    done
fi

if want micro; then
    say "microcircuit, full scale"
    # Construction with NVRTC compiling the builder's kernels (an empty PTX
    # cache), then the same with the cache that run filled.
    cold_cache="$WORK/kernel-cache-cold"
    rm -rf "$cold_cache"
    if tc=$(SNN_KERNEL_CACHE="$cold_cache" build micro-gpu-cold configs/microcircuit.toml cuda); then
        row "| microcircuit full: construction on GPU, empty PTX cache (NVRTC compiles; whole process) | $tc s | | |"
    fi
    rm -rf "$WORK/micro-gpu-cold"
    if tg=$(SNN_KERNEL_CACHE="$cold_cache" build micro-gpu configs/microcircuit.toml cuda); then
        syn=$(json "$OUTDIR/build-micro-gpu.json" "d['total_synapses']")
        row "| microcircuit full: construction on GPU, PTX from the cache (whole process) | $tg s | synapses | $syn |"
        row "| microcircuit full: build_seconds (snn-build --json) | $(json "$OUTDIR/build-micro-gpu.json" "round(d['build_seconds'], 3)") s, of which writing $(json "$OUTDIR/build-micro-gpu.json" "round(d['write_seconds'], 3)") s | bytes/synapse on disk | $(json "$OUTDIR/build-micro-gpu.json" "round(d['bytes_per_synapse'], 3)") |"
        # Run 1: the first load (shard perhaps not yet in the page cache).
        # Then the variants of the launch shape (SNN_CUDA_BLOCK threads per
        # block; the grid is 8 blocks per multiprocessor), shard cached.
        for v in first:256 b128:128 b256:256 b512:512; do
            k="${v%%:*}"
            export SNN_CUDA_BLOCK="${v##*:}"
            sim "micro-run-$k" micro-gpu cuda 100 "$T_SIM_MS" || break
            s="$OUTDIR/summary-micro-run-$k.json"
            row "| microcircuit full, $k (block $SNN_CUDA_BLOCK): load to GPU | $(json "$s" "round(d['wall_load_s'], 3)") s | real-time factor | $(json "$s" "round(d['real_time_factor'], 4)") |"
            row "| microcircuit full, $k: GPU bytes/synapse (engine buffers) | $(json "$s" "d['device_bytes_per_synapse'] and round(d['device_bytes_per_synapse'], 3)") | synaptic events/s | $(json "$s" "round(d['synaptic_events'] / d['wall_sim_s'] / 1e9, 3)") G |"
        done
        unset SNN_CUDA_BLOCK
    fi
    # The launch-bound floor, measured: the same steps for a network of 77
    # neurons (0.1 % of the microcircuit), whose kernels do almost no work,
    # so its time per step is the cost of the launches and the gaps between
    # them. The full run's time per step less this is the part that grows
    # with the work (the memory-bound part, to set against its floor in
    # bench/README.md).
    if build micro-tiny configs/microcircuit.toml cpu scale.neurons=0.001 scale.indegree=0.01 >/dev/null \
        && sim micro-tiny-run micro-tiny cuda 100 "$T_SIM_MS"; then
        s="$OUTDIR/summary-micro-tiny-run.json"
        full="$OUTDIR/summary-micro-run-b256.json"
        row "| launch-bound floor (77 neurons, same steps): µs per step | $(json "$s" "round(d['real_time_factor'] * d['dt_ms'] * 1000, 2)") | real-time factor | $(json "$s" "round(d['real_time_factor'], 4)") |"
        if [[ -e "$full" ]]; then
            row "| full microcircuit (block 256) less the launch-bound floor | $(python3 -c "import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); print(round(a['real_time_factor'] - b['real_time_factor'], 4))" "$full" "$s") | (real-time factor: the work-bound part) | |"
        fi
    fi
fi

if want balanced; then
    say "balanced, 112,500 neurons, 1.27e9 synapses"
    if tg=$(build bal-gpu configs/balanced.toml cuda scale.neurons=10 scale.indegree=1); then
        row "| balanced 112.5k: construction on GPU | $tg s | synapses | $(json "$OUTDIR/build-bal-gpu.json" "d['total_synapses']") |"
        if sim bal-run bal-gpu cuda 100 1000; then
            s="$OUTDIR/summary-bal-run.json"
            row "| balanced 112.5k: s per biological s | $(json "$s" "round(d['real_time_factor'], 3)") | load s | $(json "$s" "round(d['wall_load_s'], 3)") |"
        fi
    fi
fi

printf '\n' >&2
printf '%s\n' "${ROWS[@]}"
