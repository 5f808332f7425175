# Helpers shared by the benchmark scripts (sourced, not run). The caller
# defines `say` (its log prefix), and sets IDLE_WAIT (s) and IDLE_BUSY (%) if it
# calls wait_idle.

load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?"; }
now() { date +%s.%N; }

# CPU busy percentage (all cores) over the next second, from /proc/stat.
busy_pct() {
    local a b
    a=($(head -n1 /proc/stat)) || return 1
    sleep 1
    b=($(head -n1 /proc/stat)) || return 1
    local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
    ((total > 0)) || { echo 0; return; }
    echo $(( 100 * (total - idle) / total ))
}

# Wait (up to IDLE_WAIT s) until the CPU is idle; says what it saw.
wait_idle() {
    local what="$1" waited=0 b
    if ((IDLE_WAIT <= 0)); then
        say "$what: not waiting for an idle CPU (IDLE_WAIT=0; load avg $(load))"
        return
    fi
    b=$(busy_pct 2>/dev/null || echo "?")
    while [[ "$b" != "?" ]] && ((b >= IDLE_BUSY && waited < IDLE_WAIT)); do
        b=$(busy_pct 2>/dev/null || echo "?")
        waited=$((waited + 1))
    done
    if [[ "$b" != "?" ]] && ((b >= IDLE_BUSY)); then
        say "$what: warning: CPU still ${b}% busy after ${waited} s (load avg $(load)); timing may be inflated"
    else
        say "$what: CPU ${b}% busy before start (waited ${waited} s; load avg $(load))"
    fi
}

# run_ours, run_nest from SKIP_OURS / SKIP_NEST (=1 skips that side).
sides_requested() {
    run_ours=1
    run_nest=1
    [[ "${SKIP_OURS:-0}" == "1" ]] && run_ours=0
    [[ "${SKIP_NEST:-0}" == "1" ]] && run_nest=0
    return 0
}

# Drop the NEST side (with a warning) when $PY has no NEST.
check_nest() {
    if ((run_nest)); then
        if [[ ! -x "$PY" ]] || ! PYNEST_QUIET=1 "$PY" -c 'import nest' >/dev/null 2>&1; then
            say "warning: $PY with NEST 3.10 not found: run scripts/install.sh (without SNN_SKIP_PYTHON); measuring ours only"
            run_nest=0
        fi
    fi
}

# Exit when neither side is left to measure.
require_a_side() {
    if ((!run_ours && !run_nest)); then
        say "error: nothing to run"
        exit 1
    fi
}

# PARSE (a python for the JSON parsers: python3, else the venv's), stamp
# and host_cpu for the result rows.
result_stamps() {
    PARSE=python3
    command -v python3 >/dev/null 2>&1 || PARSE="$PY"
    stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    host_cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || echo unknown)
}

# Which sides to measure (run_ours, run_nest: SKIP_OURS/SKIP_NEST=1 skips one;
# a side whose binaries in $BIN or NEST in $PY are missing is dropped with a
# warning; exits if none is left), plus PARSE, stamp, host_cpu and
# nest_version for the result rows.
choose_sides() {
    local b
    sides_requested
    if ((run_ours)); then
        for b in snn-build snn-sim; do
            if [[ ! -x "$BIN/$b" ]]; then
                say "warning: $BIN/$b not found (cargo build --release); measuring NEST only"
                run_ours=0
            fi
        done
    fi
    check_nest
    require_a_side
    result_stamps
    nest_version=""
    if ((run_nest)); then
        nest_version=$(PYNEST_QUIET=1 "$PY" -c 'import nest; print(nest.__version__)' 2>/dev/null | tail -n1)
    fi
}
