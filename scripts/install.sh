#!/usr/bin/env bash
# Install what the project needs on a fresh Debian 12 machine. Idempotent.
#
#   scripts/install.sh                 # system packages, cargo-nextest, Python venv (.venv) with NEST 3.10, NVRTC,
#                                      # Elephant; .venv-sonata with libsonata and bluepysnap (CI runs this)
#   SNN_SKIP_PYTHON=1 scripts/install.sh   # skip NEST & co.; NVRTC, Elephant and the SONATA readers are still installed
#
# Environment:
#   SNN_SKIP_PYTHON=1   do not install NEST and the analysis packages (NEST: bench/ and the identity
#                       test tests/nest_identity.rs, which is skipped without it outside CI)
#   SNN_NVRTC=0         do not install NVRTC (default 1: the pip wheel nvidia-cuda-nvrtc-cu12 into
#                       .venv, for the kernels' compile test; no GPU or CUDA toolkit needed)
#   SNN_ELEPHANT=0      do not install Elephant (default 1: elephant 1.1.1 and h5py into .venv,
#                       for the statistics cross-check tests/elephant.rs; also in CI)
#   SNN_SONATA=0        do not install the SONATA readers (default 1: libsonata and bluepysnap into
#                       .venv-sonata, for the export test tests/sonata_export.rs; also in CI)
#   SNN_PYTHON=...      interpreter used to create .venv (default: python3 on PATH)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

step() { printf '[install] %s\n' "$*"; }

# Must run as root or with sudo for apt.
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        step "warning: not root and no sudo; apt step will fail if packages are missing"
    fi
fi

# ---- 1. Debian packages -------------------------------------------------------
# build-essential/pkg-config/cmake: C/C++ for -sys crates; libhdf5-dev: spike files
# (hdf5 crate); libclang-dev/clang: bindgen; mpich/libmpich-dev: MPI (rsmpi);
# time: /usr/bin/time -v for bench/build.sh; fonts-dejavu-core: plot labels.
APT_PACKAGES=(build-essential pkg-config cmake libhdf5-dev libclang-dev clang mpich libmpich-dev time fonts-dejavu-core)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]} == 0)); then
    step "apt: all ${#APT_PACKAGES[@]} packages already installed, skipping apt-get"
else
    step "apt: missing ${missing[*]}: apt-get update"
    $SUDO apt-get update -qq
    step "apt: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    step "apt: done"
fi

# ---- 2. Rust tools --------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
    step "error: cargo not found; install a Rust toolchain (rustup) first" >&2
    exit 1
fi
step "rust: $(cargo --version)"
if cargo nextest --version >/dev/null 2>&1; then
    step "rust: $(cargo nextest --version 2>/dev/null | head -n1) already installed"
else
    step "rust: installing cargo-nextest (cargo install cargo-nextest --locked)"
    cargo install cargo-nextest --locked
fi

# ---- 3. Python venv with NEST 3.10 (benchmarks, tests/nest_identity.rs) ---------
VENV="$ROOT/.venv"
ensure_venv() {
    local PY="${SNN_PYTHON:-python3}"
    if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        step "python: venv $VENV exists ($("$VENV/bin/python" --version))"
    else
        if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
            # Debian's own python3 needs python3-venv for ensurepip.
            step "python: $PY lacks venv/ensurepip: installing python3-venv"
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        fi
        step "python: creating venv $VENV with $("$PY" --version 2>&1)"
        rm -rf "$VENV"
        "$PY" -m venv "$VENV"
    fi
}

if [[ "${SNN_SKIP_PYTHON:-0}" == "1" ]]; then
    step "python: NEST & co. skipped (SNN_SKIP_PYTHON=1)"
else
    ensure_venv
    PIP_PACKAGES=(nest-simulator==3.10.0 numpy h5py matplotlib scipy)
    if PYNEST_QUIET=1 "$VENV/bin/python" - <<'PYEOF' >/dev/null 2>&1
import importlib.metadata as md, sys
import nest, numpy, h5py, matplotlib, scipy
sys.exit(0 if md.version("nest-simulator") == "3.10.0" else 1)
PYEOF
    then
        step "python: ${PIP_PACKAGES[*]} already installed"
    else
        step "python: pip install ${PIP_PACKAGES[*]}"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PIP_PACKAGES[@]}"
    fi
    ver=$(PYNEST_QUIET=1 "$VENV/bin/python" -c 'import nest; print(nest.__version__)' 2>/dev/null | tail -n1)
    if [[ "$ver" != 3.10* ]]; then
        step "error: 'import nest' in $VENV gave version '$ver', expected 3.10" >&2
        exit 1
    fi
    step "python: import nest OK (NEST $ver)"
fi

# ---- 4. NVRTC for the kernels' compile test (also in CI) -------------------------
# kernels/tests/nvrtc.rs (scripts/test.sh runs it with --features snn-kernels/cuda)
# compiles every CUDA kernel to PTX with the libnvrtc of this wheel, found at
# .venv/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib (see kernels/README.md).
# The version matches cudarc's pinned bindings (feature cuda-12060).
NVRTC_WHEEL_VERSION="12.6.85"
if [[ "${SNN_NVRTC:-1}" != "1" ]]; then
    step "nvrtc: skipped (SNN_NVRTC=${SNN_NVRTC})"
elif compgen -G "$VENV/lib/python3*/site-packages/nvidia_cuda_nvrtc_cu12-$NVRTC_WHEEL_VERSION.dist-info" >/dev/null \
    && compgen -G "$VENV/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so*" >/dev/null; then
    step "nvrtc: nvidia-cuda-nvrtc-cu12 $NVRTC_WHEEL_VERSION already in $VENV"
else
    ensure_venv
    step "nvrtc: pip install nvidia-cuda-nvrtc-cu12==$NVRTC_WHEEL_VERSION"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "nvidia-cuda-nvrtc-cu12==$NVRTC_WHEEL_VERSION"
    if ! compgen -G "$VENV/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so*" >/dev/null; then
        step "error: libnvrtc not found in $VENV after the install" >&2
        exit 1
    fi
fi

# ---- 5. Elephant for the statistics cross-check (also in CI) ----------------------
# tests/elephant.rs runs tests/reference/elephant_check.py, which recomputes
# every statistic snn-analyze reports with Elephant 1.x (and neo, quantities,
# h5py for the spike files).
ELEPHANT_PACKAGES=(elephant==1.1.1 h5py)
if [[ "${SNN_ELEPHANT:-1}" != "1" ]]; then
    step "elephant: skipped (SNN_ELEPHANT=${SNN_ELEPHANT})"
elif [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" - <<'PYEOF' >/dev/null 2>&1
import importlib.metadata as md, sys
import elephant, neo, quantities, h5py
sys.exit(0 if md.version("elephant") == "1.1.1" else 1)
PYEOF
then
    step "elephant: ${ELEPHANT_PACKAGES[*]} already in $VENV"
else
    ensure_venv
    step "elephant: pip install ${ELEPHANT_PACKAGES[*]}"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${ELEPHANT_PACKAGES[@]}"
    if ! "$VENV/bin/python" -c 'import elephant, neo, quantities, h5py' >/dev/null 2>&1; then
        step "error: 'import elephant' fails in $VENV after the install" >&2
        exit 1
    fi
fi

# ---- 6. SONATA readers and BMTK (also in CI) -------------------------------------
# tests/sonata_export.rs opens `snn-build export`'s circuits with libsonata and
# bluepysnap (tests/reference/sonata_check.py); tests/bmtk_spikes.rs has BMTK
# write spike files for snn-analyze (tests/reference/bmtk_spikes.py). They
# need numpy >= 2 and pandas 3, which Elephant 1.1.1 and NEST's numpy < 2
# exclude, so they live in a venv of their own.
SONATA_VENV="$ROOT/.venv-sonata"
SONATA_PACKAGES=(libsonata==0.2.2 bluepysnap==3.0.8 bmtk==1.2.0 h5py)
if [[ "${SNN_SONATA:-1}" != "1" ]]; then
    step "sonata: skipped (SNN_SONATA=${SNN_SONATA})"
elif [[ -x "$SONATA_VENV/bin/python" ]] && "$SONATA_VENV/bin/python" - <<'PYEOF' >/dev/null 2>&1
import importlib.metadata as md, sys
import libsonata, bluepysnap, h5py
import bmtk.utils.reports.spike_trains
sys.exit(0 if md.version("libsonata") == "0.2.2" and md.version("bluepysnap") == "3.0.8"
         and md.version("bmtk") == "1.2.0" else 1)
PYEOF
then
    step "sonata: ${SONATA_PACKAGES[*]} already in $SONATA_VENV"
else
    PY="${SNN_PYTHON:-python3}"
    if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    fi
    [[ -x "$SONATA_VENV/bin/python" ]] || "$PY" -m venv "$SONATA_VENV"
    step "sonata: pip install ${SONATA_PACKAGES[*]} into $SONATA_VENV"
    "$SONATA_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${SONATA_PACKAGES[@]}"
    if ! "$SONATA_VENV/bin/python" -c 'import libsonata, bluepysnap, h5py, bmtk.utils.reports.spike_trains' >/dev/null 2>&1; then
        step "error: 'import libsonata, bluepysnap, bmtk' fails in $SONATA_VENV after the install" >&2
        exit 1
    fi
fi

step "done"
