# Helpers shared by the benchmark scripts (sourced, not run). The caller
# defines `say` (its log prefix) and sets IDLE_WAIT (s) and IDLE_BUSY (%).

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
