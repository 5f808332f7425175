#!/usr/bin/env python3
"""Time the simulation of the Potjans & Diesmann (2014) microcircuit in NEST 3.10.

Builds the network with bench/build_nest.py's build_network (the model of
microcircuit_params.json; scale = N_scaling = K_scaling, DC compensation of the
missing indegree), records the spikes of all eight populations from t_presim on
(one spike_recorder per population, memory backend, as snn-sim records every
population of configs/microcircuit.toml), runs nest.Simulate(t_presim) and then
times nest.Simulate(t_sim). With --dc the Poisson background is replaced by
its mean as a constant current (build_nest.py --dc: NEST's example with
poisson_input = False; no poisson_generator, I_e = I_e_dc).

Prints exactly one JSON line on stdout:
  {"simulator": "nest", "scale", "threads", "poisson_input", "build_s",
   "presim_s", "sim_s", "sim_s_per_bio_s", "total_spikes", "n_neurons", ...}
build_s = Create + Connect (recorders excluded); presim_s and sim_s are the wall
times of the two nest.Simulate calls (the first includes NEST's Prepare:
finishing the connection infrastructure); sim_s_per_bio_s = sim_s / (t_sim /
1000); total_spikes = spikes recorded during t_sim (all populations).
Progress goes to stderr.

Usage: .venv/bin/python bench/sim_nest.py --scale 0.1 --threads 2 [--t-sim 1000] [--dc]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import build_nest  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.1, help="N_scaling = K_scaling (default 0.1)")
    ap.add_argument("--threads", type=int, default=2, help="NEST local_num_threads (default 2)")
    ap.add_argument("--t-presim", type=float, default=500.0, help="presimulation, ms (default 500)")
    ap.add_argument("--t-sim", type=float, default=1000.0, help="timed simulation, ms (default 1000)")
    ap.add_argument("--seed", type=int, default=55, help="NEST rng_seed (default 55)")
    ap.add_argument("--params", type=Path, default=build_nest.DEFAULT_PARAMS, help="microcircuit params json")
    ap.add_argument("--dc", action="store_true",
                    help="DC drive instead of Poisson input (NEST example's poisson_input = False)")
    ap.add_argument("--no-record", action="store_true", help="no spike_recorders (total_spikes is then null)")
    args = ap.parse_args()
    if not (0.0 < args.scale <= 1.0):
        ap.error("--scale must be in (0, 1]")
    if args.t_sim <= 0.0 or args.t_presim < 0.0:
        ap.error("--t-sim must be > 0 and --t-presim >= 0")

    p = json.loads(args.params.read_text())
    d = build_nest.derive(p, args.scale)
    derived_ok = build_nest.check_against_json(p, args.scale, d)

    os.environ.setdefault("PYNEST_QUIET", "1")
    import nest  # noqa: E402

    try:
        nest.verbosity = nest.VerbosityLevel.WARNING
    except AttributeError:
        nest.set_verbosity("M_WARNING")

    pops, _poisson, create_s, connect_s = build_nest.build_network(nest, p, d, args.threads, args.seed, dc=args.dc)
    build_nest.log(f"scale {args.scale:g}: built in {create_s + connect_s:.2f} s "
                   f"({int(d['N'].sum())} neurons, {int(d['num_synapses'].sum())} recurrent synapses, "
                   f"{'DC drive' if args.dc else 'Poisson input'})")
    # What NEST holds: I_e of the first neuron of each population, Poisson generators in the kernel.
    i_e_nest = [float(pop[0].get("I_e")) for pop in pops]
    n_generators = len(nest.GetNodes({"model": "poisson_generator"}))
    if args.dc:
        build_nest.log("I_e pA (compensation + DC drive): " + ", ".join(f"{x:.2f}" for x in i_e_nest)
                       + f"; poisson_generators: {n_generators}")
    num_connections_network = int(nest.GetKernelStatus("num_connections"))  # before the recorders
    recorders = []
    if not args.no_record:
        for pop in pops:
            rec = nest.Create("spike_recorder", params={"start": args.t_presim})
            nest.Connect(pop, rec)
            recorders.append(rec)

    t0 = time.perf_counter()
    if args.t_presim > 0.0:
        nest.Simulate(args.t_presim)
    t1 = time.perf_counter()
    build_nest.log(f"presimulation {args.t_presim:g} ms: {t1 - t0:.2f} s")
    nest.Simulate(args.t_sim)
    t2 = time.perf_counter()
    sim_s = t2 - t1
    build_nest.log(f"simulation {args.t_sim:g} ms: {sim_s:.2f} s")

    total_spikes = sum(int(r.get("n_events")) for r in recorders) if recorders else None
    result = {
        "simulator": "nest",
        "nest_version": getattr(nest, "__version__", "unknown"),
        "scale": args.scale,
        "threads": args.threads,
        "poisson_input": not args.dc,
        "poisson_generators": n_generators,
        "I_e_pA": [round(x, 6) for x in i_e_nest],
        "seed": args.seed,
        "t_presim_ms": args.t_presim,
        "t_sim_ms": args.t_sim,
        "build_s": round(create_s + connect_s, 4),
        "presim_s": round(t1 - t0, 4),
        "sim_s": round(sim_s, 4),
        "sim_s_per_bio_s": round(sim_s / (args.t_sim / 1000.0), 4),
        "total_spikes": total_spikes,
        "recorded": not args.no_record,
        "num_neurons": int(d["N"].sum()),
        "n_neurons": int(d["N"].sum()),
        "num_connections": int(nest.GetKernelStatus("num_connections")),
        "num_connections_network": num_connections_network,
        "recurrent_synapses_expected": int(d["num_synapses"].sum()),
        "derived_matches_json": derived_ok,
        "peak_rss_mb": round(build_nest.peak_rss_mb(), 1),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
