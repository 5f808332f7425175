#!/usr/bin/env bash
# Run a long simulation as a chain of SLURM batch jobs.
#
#   SBATCH_ARGS="--ntasks=4 --gpus-per-task=1 --time=02:00:00 --account=myproj" \
#       examples/slurm/chain.sh NET RUN --t-sim 600000 --checkpoint-every 10000 [snn-sim options]
#
# submits the first job and returns. Every job of the chain
#   1. submits its successor with --dependency=afterany:<this job>, so the
#      chain goes on even if this job is killed at its time limit;
#   2. runs `srun snn-sim NET -o RUN [snn-sim options] --resume --walltime <time
#      left in this job>`: the first job starts the run, later ones continue
#      it from its newest complete checkpoint (snn-sim also honours
#      SLURM_JOB_END_TIME when SLURM sets it);
#   3. looks at snn-sim's exit status:
#        75  checkpointed before the time limit (resumable, not finished):
#            the successor continues;
#        0   finished: the successor is cancelled, the chain ends;
#        *   error: the successor is cancelled, the chain ends (fix the
#            problem, then run this script again: it resumes RUN).
#
# Progress: RUN/run-state.json (status, last checkpoint), the job logs
# (slurm-<jobid>.out), `squeue -u $USER -n snn-chain`. The result is RUN with
# summary.json once the run is finished; its spike files hold the whole run.
#
# Environment (read when submitting; passed on to every job):
#   SBATCH_ARGS   options for sbatch (resources, --time, account, ...)
#   LAUNCH        how to start the MPI ranks (default: srun; e.g. "mpirun -n 4")
#   SNN_SIM       the snn-sim binary (default: snn-sim on PATH, else
#                 target/release/snn-sim of this repository)
#   CHAIN_MAX     most jobs in the chain (default 100)
#   JOB_NAME      job name (default snn-chain)
set -euo pipefail

RESUMABLE=75

if (($# < 2)); then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
fi

if [[ -z "${SNN_CHAIN_IN_JOB:-}" ]]; then
    # On the login node: submit the first job.
    script="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
    if [[ -z "${SNN_SIM:-}" ]]; then
        if command -v snn-sim >/dev/null 2>&1; then
            SNN_SIM="$(command -v snn-sim)"
        else
            SNN_SIM="$(cd "$(dirname "$script")/../.." && pwd)/target/release/snn-sim"
        fi
    fi
    [[ -x "$SNN_SIM" ]] || { echo "chain.sh: snn-sim not found ($SNN_SIM); set SNN_SIM" >&2; exit 1; }
    export SNN_SIM SNN_CHAIN_SCRIPT="$script" SNN_CHAIN_INDEX=1 SNN_CHAIN_IN_JOB=1
    export SBATCH_ARGS="${SBATCH_ARGS:-}" LAUNCH="${LAUNCH:-srun}"
    export CHAIN_MAX="${CHAIN_MAX:-100}" JOB_NAME="${JOB_NAME:-snn-chain}"
    # shellcheck disable=SC2086  # SBATCH_ARGS is a list of options
    id=$(sbatch --parsable --job-name="$JOB_NAME" --export=ALL $SBATCH_ARGS "$script" "$@")
    echo "chain.sh: submitted job ${id%%;*} (run directory $2)"
    exit 0
fi

# Inside a job of the chain.
net="$1"
run="$2"
shift 2
me="${SLURM_JOB_ID:?chain.sh: not inside a SLURM job}"
index="${SNN_CHAIN_INDEX:-1}"

# 1. The successor, waiting for this job to end however it ends.
next=""
if ((index < CHAIN_MAX)); then
    # shellcheck disable=SC2086
    next=$(SNN_CHAIN_INDEX=$((index + 1)) sbatch --parsable --job-name="$JOB_NAME" \
        --dependency="afterany:$me" --export=ALL $SBATCH_ARGS \
        "$SNN_CHAIN_SCRIPT" "$net" "$run" "$@")
    next="${next%%;*}"
fi

# 2. The time left in this job ([D-]HH:MM:SS or MM:SS), if squeue tells.
walltime=()
left=$(squeue -h -j "$me" -o %L 2>/dev/null || true)
if [[ "$left" =~ ^([0-9]+-)?([0-9]+:)?[0-9]+:[0-9]+$ ]]; then
    walltime=(--walltime "$left")
fi

echo "chain.sh: job $me (piece $index of at most $CHAIN_MAX), time left ${left:-unknown}, successor ${next:-none}"
set +e
# shellcheck disable=SC2086  # LAUNCH may hold options
$LAUNCH "$SNN_SIM" "$net" -o "$run" "$@" --resume "${walltime[@]}"
rc=$?
set -e

# 3. Go on only if the run is resumable and not finished.
case $rc in
    "$RESUMABLE")
        if [[ -n "$next" ]]; then
            echo "chain.sh: checkpointed before the time limit; job $next continues"
        else
            echo "chain.sh: CHAIN_MAX=$CHAIN_MAX jobs done, run not finished; run chain.sh again to continue" >&2
        fi
        ;;
    0)
        echo "chain.sh: run finished: $run/summary.json"
        [[ -z "$next" ]] || scancel "$next"
        ;;
    *)
        echo "chain.sh: snn-sim failed (exit status $rc); chain stopped (run chain.sh again to resume)" >&2
        [[ -z "$next" ]] || scancel "$next"
        ;;
esac
exit "$rc"
