#!/usr/bin/env bash
# Builds snn-build, snn-sim and snn-analyze for a GPU machine that has a
# different OS image, no Rust and no libhdf5 (the device machines of
# ../.library/device): GPU support (feature `cuda`: the driver and NVRTC are
# loaded at run time), HDF5 linked statically, no MPI. The stripped binaries
# go to bench/gpu/bin/ (ignored by git; carry it with the device call).
#
#   bench/gpu/build_portable.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/portable}"
# HDF5's source build needs CMake >= 3.26 (Debian 12 has 3.25): take it from
# PyPI into the project's venv when the system one is older.
cmake_ok() {
    local v
    v=$("$1" --version 2>/dev/null | head -n1 | grep -oE '[0-9]+\.[0-9]+' | head -n1) || return 1
    [[ -n "$v" ]] && awk -v v="$v" 'BEGIN { split(v, a, "."); exit !(a[1] > 3 || (a[1] == 3 && a[2] >= 26)) }'
}
if ! cmake_ok cmake; then
    if ! cmake_ok .venv/bin/cmake; then
        [[ -x .venv/bin/pip ]] || python3 -m venv .venv
        .venv/bin/pip install --quiet 'cmake>=3.26,<4'
    fi
    export CMAKE="$PWD/.venv/bin/cmake"
fi
cargo build --release --no-default-features --features cuda,hdf5-static \
    --bin snn-build --bin snn-sim --bin snn-analyze
mkdir -p bench/gpu/bin
for b in snn-build snn-sim snn-analyze; do
    strip -o "bench/gpu/bin/$b" "$CARGO_TARGET_DIR/release/$b"
done
# The NVRTC library of the project's venv (scripts/install.sh puts the
# nvidia-cuda-nvrtc-cu12 wheel there), for machines whose Python has none.
nvrtc_dir=$(ls -d .venv/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib 2>/dev/null | head -n1 || true)
# xz-compressed (58 MB -> 17 MB: the device tool carries at most 64 MiB);
# bench/gpu/run.sh unpacks them there with Python's lzma.
if [[ -n "$nvrtc_dir" ]]; then
    rm -rf bench/gpu/bin/nvrtc
    mkdir -p bench/gpu/bin/nvrtc
    for f in "$nvrtc_dir"/libnvrtc*.so*; do
        xz -T0 -6 -c "$f" >"bench/gpu/bin/nvrtc/$(basename "$f").xz"
    done
fi
ls -la bench/gpu/bin bench/gpu/bin/nvrtc 2>/dev/null
du -sh bench/gpu/bin
ldd bench/gpu/bin/snn-sim || true
