#!/usr/bin/env python3
"""Reference spike statistics of the cortical microcircuit from NEST 3.10.

Generates ``tests/reference/data/microcircuit_nest_stats.json``: per-population
firing statistics of the Potjans & Diesmann (2014) microcircuit at scale 0.1
(N_scaling = K_scaling = 0.1, DC compensation of the missing indegree as in
``bench/microcircuit_params.json``'s notes), simulated in NEST for several
seeds. Our simulator's microcircuit test compares against these numbers
(issue 3, point 5: mean rates within 15 % or 0.15 Hz, mean CV ISI within 0.07).

Run from the repository root with the project's venv (NEST 3.10 from PyPI)::

    .venv/bin/python tests/reference/microcircuit_nest.py            # seeds 1 2 3
    .venv/bin/python tests/reference/microcircuit_nest.py --seeds 1 2 3 4 5

Network: built by ``bench/build_nest.py`` (``build_network``), which follows
``bench/microcircuit_params.json`` exactly: ``iaf_psc_exp``, initial V_m ~
normal(V0_mean_optimized[pop], V0_std_optimized[pop]) per neuron, recurrent
``fixed_total_number`` with normal weights and delays (redrawn), one
``poisson_generator`` per population (``all_to_all``, independent trains per
target). Kernel: resolution 0.1 ms, ``local_num_threads`` = 2,
``rng_seed`` = seed (so each seed redraws the connectivity, the delays and
weights, the initial V_m and the Poisson input).

Simulation: ``nest.Simulate(t_presim = 500)`` then ``nest.Simulate(t_sim =
1000)``; one ``spike_recorder`` per population with ``start = t_presim`` and
``stop = t_presim + t_sim`` (NEST records spikes stamped ``start < t <=
stop``), and the analysis window is ``[t_presim, t_presim + t_sim)`` (the
spike stamped exactly ``t_presim + t_sim`` is dropped; NEST never records one
stamped exactly ``t_presim``).

Statistics per population, from the spikes in the window (the conventions of
``analyze/src/stats.rs``, i.e. of elephant with numpy defaults)::

    rate_hz     mean over ALL neurons (silent ones included) of spikes / T
    rate_sd_hz  their standard deviation over neurons (ddof = 0)
    cv_isi      mean over neurons with >= 2 ISIs (>= 3 spikes in the window)
                of sd/mean (ddof = 0) of the neuron's ISIs in the window
    n_cv        number of such neurons
    fano        var/mean (ddof = 0) of the population spike count (all
                neurons together) in floor(T / 10 ms) bins of 10 ms
    corr        mean Pearson correlation of the 10 ms-binned spike counts of
                200 random unordered pairs of distinct neurons (distinct
                pairs; numpy default_rng([seed, population index])); a pair
                where either count vector is constant (e.g. a silent neuron)
                has no correlation and is left out of the mean
    n_corr      number of sampled pairs with a defined correlation
    n_neurons, spikes   population size and spikes in the window

``mean_over_seeds`` / ``sd_over_seeds``: mean and sample standard deviation
(ddof = 1) of each per-seed value over the seeds. ``wall_s[seed]``: wall time
of the build (Create + Connect), the presimulation and the simulation.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import build_nest  # noqa: E402  (bench/build_nest.py: derive, build_network)

DEFAULT_OUT = HERE / "data" / "microcircuit_nest_stats.json"
STAT_KEYS = ["rate_hz", "rate_sd_hz", "cv_isi", "n_cv", "fano", "corr", "n_corr", "n_neurons", "spikes"]
BIN_MS = 10.0
N_PAIRS = 200
# Spike times are multiples of dt with rounding error: a time within this
# much below a window or bin boundary counts as on it (as analyze/src/stats.rs).
TIME_EPS_MS = 1e-6


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def split_trains(senders, times, first_id, n):
    """Sorted spike train (ms) of each of the n neurons with ids first_id .. first_id+n-1."""
    idx = senders.astype(np.int64) - first_id
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise RuntimeError("spike from a neuron outside the population")
    order = np.lexsort((times, idx))
    idx, times = idx[order], times[order]
    bounds = np.searchsorted(idx, np.arange(n + 1))
    return [times[bounds[k] : bounds[k + 1]] for k in range(n)]


def bin_counts(train, t_start, n_bins):
    k = np.floor((train - t_start) / BIN_MS + TIME_EPS_MS / BIN_MS).astype(np.int64)
    k = k[(k >= 0) & (k < n_bins)]
    return np.bincount(k, minlength=n_bins)


def pearson(a, b):
    a = a - a.mean()
    b = b - b.mean()
    saa, sbb = float(a @ a), float(b @ b)
    if saa == 0.0 or sbb == 0.0:
        return None
    return float(np.clip((a @ b) / np.sqrt(saa * sbb), -1.0, 1.0))


def sample_pairs(n, k, rng):
    """k distinct unordered pairs (i, j), i != j, uniformly from n neurons (fewer if n is small)."""
    k = min(k, n * (n - 1) // 2)
    pairs = set()
    while len(pairs) < k:
        i, j = rng.integers(0, n, size=2)
        if i != j:
            pairs.add((min(i, j), max(i, j)))
    return sorted(pairs)


def population_stats(trains, t_start, t_stop, rng):
    duration_s = (t_stop - t_start) / 1000.0
    n_bins = int(np.floor((t_stop - t_start) / BIN_MS + 1e-9))
    windowed = [tr[(tr >= t_start - TIME_EPS_MS) & (tr < t_stop - TIME_EPS_MS)] for tr in trains]

    counts = np.array([tr.size for tr in windowed], dtype=float)
    rates = counts / duration_s
    cvs = []
    for tr in windowed:
        if tr.size >= 3:
            isi = np.diff(tr)
            if isi.mean() > 0:
                cvs.append(isi.std() / isi.mean())

    pop_counts = np.zeros(n_bins, dtype=np.int64)
    for tr in windowed:
        pop_counts += bin_counts(tr, t_start, n_bins)
    fano = float(pop_counts.var() / pop_counts.mean()) if n_bins >= 2 and pop_counts.mean() > 0 else None

    cache = {}

    def binned(k):
        if k not in cache:
            cache[k] = bin_counts(windowed[k], t_start, n_bins).astype(float)
        return cache[k]

    corrs = []
    for i, j in sample_pairs(len(trains), N_PAIRS, rng):
        c = pearson(binned(i), binned(j))
        if c is not None:
            corrs.append(c)

    return {
        "rate_hz": float(rates.mean()),
        "rate_sd_hz": float(rates.std()),
        "cv_isi": float(np.mean(cvs)) if cvs else None,
        "n_cv": len(cvs),
        "fano": fano,
        "corr": float(np.mean(corrs)) if corrs else None,
        "n_corr": len(corrs),
        "n_neurons": len(trains),
        "spikes": int(counts.sum()),
    }


def run_seed(nest, p, d, seed, threads, t_presim, t_sim):
    pops, _poisson, create_s, connect_s = build_nest.build_network(nest, p, d, threads, seed)
    recorders = []
    for pop in pops:
        rec = nest.Create("spike_recorder", params={"start": t_presim, "stop": t_presim + t_sim})
        nest.Connect(pop, rec)
        recorders.append(rec)
    t0 = time.perf_counter()
    nest.Simulate(t_presim)
    t1 = time.perf_counter()
    nest.Simulate(t_sim)
    t2 = time.perf_counter()

    stats = {}
    for i, (name, pop, rec) in enumerate(zip(p["populations"], pops, recorders)):
        ev = rec.get("events")
        first = int(pop[0].global_id)
        n = len(pop)
        if int(pop[-1].global_id) != first + n - 1:
            raise RuntimeError(f"population {name} has non-contiguous node ids")
        trains = split_trains(np.asarray(ev["senders"]), np.asarray(ev["times"], dtype=float), first, n)
        rng = np.random.default_rng([seed, i])
        stats[name] = population_stats(trains, t_presim, t_presim + t_sim, rng)
    wall = {"build": create_s + connect_s, "presim": t1 - t0, "sim": t2 - t1}
    return stats, wall


def over_seeds(per_seed, pops, reducer):
    out = {}
    for name in pops:
        out[name] = {}
        for key in STAT_KEYS:
            vals = [per_seed[s][name][key] for s in per_seed]
            vals = [v for v in vals if v is not None]
            out[name][key] = reducer(np.array(vals, dtype=float)) if vals else None
    return out


def fmt(v, spec):
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="NEST rng_seeds (default 1 2 3)")
    ap.add_argument("--scale", type=float, default=0.1, help="N_scaling = K_scaling (default 0.1)")
    ap.add_argument("--threads", type=int, default=2, help="NEST local_num_threads (default 2)")
    ap.add_argument("--t-presim", type=float, default=500.0, help="presimulation, ms (default 500)")
    ap.add_argument("--t-sim", type=float, default=1000.0, help="recorded simulation, ms (default 1000)")
    ap.add_argument("--params", type=Path, default=build_nest.DEFAULT_PARAMS, help="microcircuit params json")
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help=f"output json (default {DEFAULT_OUT})")
    args = ap.parse_args()

    p = json.loads(args.params.read_text())
    if abs(p["dt_ms"] - 0.1) > 1e-12:
        log(f"warning: params dt_ms = {p['dt_ms']}, not 0.1")
    d = build_nest.derive(p, args.scale)
    if build_nest.check_against_json(p, args.scale, d) is False:
        log("error: derived network parameters do not match the params json")
        return 2

    os.environ.setdefault("PYNEST_QUIET", "1")
    import nest  # noqa: E402

    try:
        nest.verbosity = nest.VerbosityLevel.WARNING
    except AttributeError:
        nest.set_verbosity("M_WARNING")

    pops = p["populations"]
    per_seed, wall = {}, {}
    for seed in args.seeds:
        log(f"seed {seed}: building scale {args.scale:g} with {args.threads} threads, "
            f"simulating {args.t_presim:g} + {args.t_sim:g} ms")
        stats, w = run_seed(nest, p, d, seed, args.threads, args.t_presim, args.t_sim)
        per_seed[str(seed)] = stats
        wall[str(seed)] = {k: round(v, 3) for k, v in w.items()}
        log(f"seed {seed}: build {w['build']:.2f} s, presim {w['presim']:.2f} s, sim {w['sim']:.2f} s; "
            + ", ".join(f"{n} {stats[n]['rate_hz']:.2f} Hz" for n in pops))

    mean = over_seeds(per_seed, pops, lambda a: float(a.mean()))
    sd = over_seeds(per_seed, pops, lambda a: float(a.std(ddof=1)) if a.size > 1 else None)

    result = {
        "nest_version": getattr(nest, "__version__", "unknown"),
        "scale": args.scale,
        "threads": args.threads,
        "resolution_ms": p["dt_ms"],
        "t_presim_ms": args.t_presim,
        "t_sim_ms": args.t_sim,
        "window_ms": [args.t_presim, args.t_presim + args.t_sim],
        "bin_ms": BIN_MS,
        "corr_pairs": N_PAIRS,
        "seeds": args.seeds,
        "populations": pops,
        "definitions": (
            "window [t_presim, t_presim+t_sim); rate: mean over all neurons (Hz), rate_sd ddof=0; "
            "cv_isi: mean over neurons with >=2 ISIs of sd/mean (ddof=0); fano: var/mean (ddof=0) of "
            "population count in 10 ms bins; corr: mean Pearson r of 10 ms binned counts over 200 "
            "distinct random pairs (constant vectors left out); sd_over_seeds ddof=1"
        ),
        "per_seed": per_seed,
        "mean_over_seeds": mean,
        "sd_over_seeds": sd,
        "wall_s": wall,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    log(f"wrote {args.out}")

    print(f"NEST {result['nest_version']} microcircuit, scale {args.scale:g}, {args.threads} threads, "
          f"window [{args.t_presim:g}, {args.t_presim + args.t_sim:g}) ms, seeds {args.seeds}: "
          "mean over seeds ± sd")
    print(f"{'pop':5} {'rate Hz':>15} {'rate sd Hz':>15} {'CV ISI':>15} {'n_cv':>7} {'Fano':>15} {'corr':>17}")
    for n in pops:
        m, s = mean[n], sd[n]
        cell = lambda k, spec: f"{fmt(m[k], spec)} ± {fmt(s[k], spec)}"
        print(f"{n:5} {cell('rate_hz', '.3f'):>15} {cell('rate_sd_hz', '.3f'):>15} {cell('cv_isi', '.3f'):>15} "
              f"{fmt(m['n_cv'], '.0f'):>7} {cell('fano', '.2f'):>15} {cell('corr', '.4f'):>17}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
