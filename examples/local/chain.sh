#!/usr/bin/env bash
# Local equivalent of a batch job chain: run snn-sim again and again with
# --resume until the run is finished (the loop a chain of SLURM jobs makes,
# see examples/slurm/chain.sh).
#
#   examples/local/chain.sh NET -o RUN --t-sim 60000 --checkpoint-every 5000 --walltime 00:10:00 [snn-sim options]
#
# Every piece runs `snn-sim NET -o RUN ... --resume`: the first one starts
# the run (RUN must not exist yet, or hold this very run), the next ones
# continue it from its newest complete checkpoint. snn-sim's exit status:
#   0   finished                -> the chain ends (0)
#   75  stopped at a checkpoint before the wall time (resumable, not finished)
#                               -> next piece
#   *   error                   -> the chain stops with that status
#
# Environment: SNN_SIM (the snn-sim binary; default: snn-sim on PATH, else
# target/release/snn-sim of this repository), MAX_PIECES (default 1000).
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
sim="${SNN_SIM:-}"
if [[ -z "$sim" ]]; then
    if command -v snn-sim >/dev/null 2>&1; then
        sim=snn-sim
    else
        sim="$here/target/release/snn-sim"
    fi
fi
max="${MAX_PIECES:-1000}"
RESUMABLE=75

piece=0
while :; do
    piece=$((piece + 1))
    "$sim" "$@" --resume
    rc=$?
    case $rc in
        0)
            echo "chain: finished after $piece piece(s)" >&2
            exit 0
            ;;
        "$RESUMABLE")
            echo "chain: piece $piece stopped at a checkpoint, resuming" >&2
            ;;
        *)
            echo "chain: piece $piece failed (exit status $rc); stopping" >&2
            exit "$rc"
            ;;
    esac
    if ((piece >= max)); then
        echo "chain: MAX_PIECES=$max reached before the end; run again to continue" >&2
        exit "$RESUMABLE"
    fi
done
