#!/usr/bin/env python3
"""Every statistic `snn-analyze` reports, recomputed with Elephant.

    elephant_check.py RUN_DIR REPORT_DIR [--rtol 1e-9]

RUN_DIR is an snn run (`summary.json`, `spikes-rank-*.h5`), REPORT_DIR the
report `snn-analyze RUN_DIR -o REPORT_DIR` wrote from it (`stats.json`,
`correlations.csv`). For every population this script takes the spikes of
the analysis window (`t_start_ms <= t < t_stop_ms` of `stats.json`, as
snn-analyze selects them), builds neo SpikeTrains and computes with
Elephant (https://elephant.readthedocs.io, version 1.x):

  rate_mean_hz, rate_sd_hz  elephant.statistics.mean_firing_rate of each
                            neuron (silent ones included), numpy mean and
                            std (ddof = 0) over the neurons
  cv_isi_mean               elephant.statistics.cv(elephant.statistics.isi)
                            of each neuron with >= 3 spikes, mean over them
  cv_isi_neurons            the number of those neurons
  fano_factor               elephant.statistics.fanofactor of the neurons'
                            trains
  fano_population           var / mean (ddof = 0) of the population count
                            per bin, the counts from
                            elephant.statistics.time_histogram
  correlation (every pair)  elephant.spike_train_correlation.
                            correlation_coefficient of the pair's
                            BinnedSpikeTrain (bin_ms of stats.json), on the
                            pairs listed in correlations.csv
  correlation_mean          the mean of those

and requires agreement within --rtol (relative; absolute below 1e-12).
Prints one line per statistic and population; exits 1 on any
disagreement, 2 on bad input.
"""

import argparse
import csv
import glob
import json
import math
import os
import sys
import warnings

import h5py
import numpy as np
import quantities as pq
import neo
import elephant
from elephant import statistics as es
from elephant.conversion import BinnedSpikeTrain
from elephant.spike_train_correlation import correlation_coefficient

# snn-analyze's tolerance (ms) for spike times on window boundaries
# (analyze/src/stats.rs, TIME_EPS_MS).
TIME_EPS_MS = 1e-6


def load_spikes(run_dir):
    """{population: {node id: sorted times (ms)}} of every spike file."""
    out = {}
    files = sorted(glob.glob(os.path.join(run_dir, "spikes-rank-*.h5")))
    if not files:
        sys.exit(f"elephant_check: error: {run_dir}: no spikes-rank-*.h5")
    for f in files:
        with h5py.File(f, "r") as h:
            for pop, g in h["spikes"].items():
                ids = g["node_ids"][()]
                ts = g["timestamps"][()]
                d = out.setdefault(pop, {})
                for i, t in zip(ids.tolist(), ts.tolist()):
                    d.setdefault(i, []).append(t)
    for d in out.values():
        for v in d.values():
            v.sort()
    return out


def close(a, b, rtol):
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(b):
        return False
    return abs(a - b) <= max(rtol * max(abs(a), abs(b)), 1e-12)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("report_dir")
    ap.add_argument("--rtol", type=float, default=1e-9)
    a = ap.parse_args()
    stats = json.load(open(os.path.join(a.report_dir, "stats.json")))
    summary = json.load(open(os.path.join(a.run_dir, "summary.json")))
    sizes = {p["name"]: p["size"] for p in summary["populations"]}
    t0, t1, bin_ms = stats["t_start_ms"], stats["t_stop_ms"], stats["bin_ms"]
    pairs = {}
    with open(os.path.join(a.report_dir, "correlations.csv")) as f:
        for row in csv.DictReader(f):
            pairs.setdefault(row["population"], []).append(
                (int(row["neuron_a"]), int(row["neuron_b"]), float(row["correlation"]))
            )
    spikes = load_spikes(a.run_dir)
    warnings.simplefilter("ignore")
    print(f"elephant {elephant.__version__}, neo {neo.__version__}; window "
          f"[{t0}, {t1}) ms, bins of {bin_ms} ms, rtol {a.rtol}")
    failures = 0
    checked = 0
    worst = {}  # statistic -> largest relative difference seen

    def note(key, got, w):
        if isinstance(got, float) and isinstance(w, float) and w != 0:
            worst[key] = max(worst.get(key, 0.0), abs(got - w) / abs(w))
    for p in stats["populations"]:
        name = p["name"]
        n = sizes[name]
        trains = []
        for i in range(n):
            ts = [t for t in spikes.get(name, {}).get(i, [])
                  if t >= t0 - TIME_EPS_MS and t < t1 - TIME_EPS_MS]
            trains.append(neo.SpikeTrain(np.array(ts) * pq.ms, t_start=t0 * pq.ms,
                                         t_stop=t1 * pq.ms))
        rates = np.array([float(es.mean_firing_rate(st).rescale(pq.Hz).magnitude)
                          for st in trains])
        cvs = [float(es.cv(es.isi(st))) for st in trains if len(st) >= 3]
        ff = es.fanofactor(trains) if any(len(st) for st in trains) else None
        ff = None if ff is None or math.isnan(ff) else float(ff)
        hist = es.time_histogram(trains, bin_size=bin_ms * pq.ms, t_start=t0 * pq.ms,
                                 t_stop=t1 * pq.ms, output="counts")
        counts = np.asarray(hist.magnitude).ravel()
        fano_pop = (float(counts.var() / counts.mean())
                    if len(counts) >= 2 and counts.mean() > 0 else None)
        ours_pairs = pairs.get(name, [])
        rs = []
        for (i, j, r_ours) in ours_pairs:
            b = BinnedSpikeTrain([trains[i], trains[j]], bin_size=bin_ms * pq.ms,
                                 t_start=t0 * pq.ms, t_stop=t1 * pq.ms)
            r = float(correlation_coefficient(b)[0, 1])
            rs.append(r)
            checked += 1
            note("correlation (each pair)", r_ours, r)
            if not close(r_ours, r, a.rtol):
                failures += 1
                print(f"  {name} pair ({i}, {j}): snn {r_ours!r}, Elephant {r!r}")
        want = {
            "rate_mean_hz": float(rates.mean()) if n else None,
            "rate_sd_hz": float(rates.std()) if n else None,
            "cv_isi_mean": float(np.mean(cvs)) if cvs else None,
            "cv_isi_neurons": len(cvs),
            "fano_factor": ff,
            "fano_population": fano_pop,
            "correlation_mean": float(np.mean(rs)) if rs else None,
            "correlation_pairs": len(rs),
        }
        for key, w in want.items():
            got = p[key]
            ok = got == w if isinstance(w, int) else close(got, w, a.rtol)
            checked += 1
            note(key, got, w)
            rel = ("" if not isinstance(w, float) or got is None or w == 0
                   else f"  rel {abs(got - w) / abs(w):.1e}")
            print(f"{'ok ' if ok else 'BAD'} {name:<10} {key:<17} snn {got!r:<24} "
                  f"Elephant {w!r}{rel}")
            failures += not ok
    for key, r in worst.items():
        print(f"largest relative difference, {key}: {r:.1e}")
    print(f"{checked} values checked, {failures} disagree")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
