#!/usr/bin/env bash
# GPU memory of the GPU engine per network, measured without a GPU: the
# engine runs a few steps on a device that only counts the bytes of the
# buffers it allocates (tests/gpu_memory.rs, `device_memory_of_a_network`).
# The figure is what the engine asks the GPU for; the CUDA context and the
# kernels' code (the driver's, a few hundred MB per process, not per
# synapse) come on top.
#
#   bench/gpu/memory.sh                  # full-scale microcircuit
#   bench/gpu/memory.sh micro balanced   # + balanced network, 112,500 neurons (10 GB shard)
set -euo pipefail
cd "$(dirname "$0")/../.."
NETS=("$@")
((${#NETS[@]})) || NETS=(micro)
mkdir -p bench/out
cargo build --release --quiet --bin snn-build
for n in "${NETS[@]}"; do
    case "$n" in
        micro) dir=bench/out/net-micro-1.0; cfg=configs/microcircuit.toml; sets=() ;;
        balanced) dir=bench/out/net-bal-112k; cfg=configs/balanced.toml; sets=(--set scale.neurons=10) ;;
        *) echo "unknown network $n (micro, balanced)" >&2; exit 2 ;;
    esac
    [[ -f "$dir/manifest.json" ]] || target/release/snn-build "$cfg" -o "$dir" --force "${sets[@]}" >/dev/null
    SNN_NET="$dir" cargo nextest run --release --test gpu_memory --run-ignored only \
        --no-capture device_memory_of_a_network 2>/dev/null | grep '^{' | tee -a bench/out/gpu_memory.jsonl
done
