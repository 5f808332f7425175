#!/usr/bin/env python3
"""Time the simulation of the balanced network (configs/balanced.toml) in NEST 3.10.

Builds exactly the model of the config, read with tomllib (nothing hard-coded):
* neurons: [neuron_defaults] (model and parameters, overridden by a
  population's `params`), one population per [[populations]] entry with
  round(size * scale.neurons) neurons (ties to even, as snn-build; `scalable =
  false` keeps the size), initial V_m from its V_m_init (constant, normal with
  optional bounds, or uniform);
* recurrent: each [[projections]] entry with rule fixed_indegree, indegree
  round(indegree * scale.indegree), its allow_autapses / allow_multapses
  (default true), weight and delay (constant or distribution);
* Poisson drive ([poisson_background]): one poisson_generator per population
  with K_ext, rate = rate_Hz * K_ext * scale.indegree (not rounded: a rate, as
  snn-build scales it), connected all_to_all (NEST draws an independent train
  per target) with the config's weight and delay. With
  `poisson_input = false` in the config: no generators, the drive's mean as a
  DC added to I_e instead (rate_Hz * K_ext * weight * tau_syn_ex * 1e-3 pA,
  times e for iaf_psc_alpha), as snn-build does;
* kernel: resolution = network.dt_ms, rng_seed = network.seed (or --seed),
  local_num_threads = --threads.
The in-degree compensation of [scale] (compensate_indegree) is not
implemented: the script stops if the config asks for it with indegree < 1.
With scale.indegree < 1 the weights stay as they are (the config's rule), so a
downscaled network is a test case, not the balanced state.

Records the spikes of the populations in [recording].spikes (default: all;
configs/balanced.toml: E and I, every neuron) with one spike_recorder each
(memory backend, from t_presim on), runs nest.Simulate(t_presim) (includes
NEST's Prepare) and times nest.Simulate(t_sim).

Prints exactly one JSON line on stdout, with the conventions of sim_nest.py:
  {"simulator": "nest", "model": "balanced", "scale_neurons", "scale_indegree",
   "threads", "build_s", "presim_s", "sim_s", "sim_s_per_bio_s",
   "total_spikes", "n_neurons", "recurrent_synapses", ...}
build_s = Create (neurons, parameters, V_m, generators) + Connect (recurrent +
Poisson), recorders excluded; presim_s and sim_s are the wall times of the two
nest.Simulate calls; sim_s_per_bio_s = sim_s / (t_sim / 1000); total_spikes =
spikes recorded during t_sim. NEST's connection count (before the recorders)
is checked against the expected one (recurrent + one Poisson connection per
driven neuron); exit status 2 if it differs. Progress goes to stderr.

Usage: .venv/bin/python bench/sim_nest_balanced.py --threads 2 [--scale-neurons 0.02 --scale-indegree 0.02]
"""

import argparse
import json
import math
import os
import resource
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE.parent / "configs" / "balanced.toml"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def scaled_count(x, factor, rounding):
    """snn-build's scale.rounding: nearest (ties to even; Python's round) or truncate."""
    v = x * factor
    return int(math.trunc(v)) if rounding == "truncate" else int(round(v))


def nest_value(nest, spec, what):
    """A config number or distribution as a NEST value / parameter."""
    if isinstance(spec, (int, float)):
        return float(spec)
    if not isinstance(spec, dict):
        raise SystemExit(f"{what}: unsupported value {spec!r}")
    kind = spec.get("distribution")
    if kind == "normal":
        x = nest.random.normal(mean=float(spec["mean"]), std=float(spec["std"]))
        lo, hi = spec.get("min"), spec.get("max")
        if lo is None and hi is None:
            return x
        lo = -math.inf if lo is None else float(lo)
        hi = math.inf if hi is None else float(hi)
        if spec.get("bounds", "redraw") == "redraw":
            return nest.math.redraw(x, min=lo, max=hi)
        if spec["bounds"] == "clip":
            if lo > -math.inf:
                x = nest.math.max(x, lo)
            if hi < math.inf:
                x = nest.math.min(x, hi)
            return x
        raise SystemExit(f"{what}: unknown bounds {spec['bounds']!r}")
    if kind == "uniform":
        return nest.random.uniform(min=float(spec["min"]), max=float(spec["max"]))
    raise SystemExit(f"{what}: unsupported distribution {kind!r}")


def plan(cfg, sn, si):
    """Everything derived from the config, before NEST is touched."""
    sc = cfg.get("scale", {})
    if sc.get("compensate_indegree", False) and si < 1.0:
        raise SystemExit("scale.compensate_indegree with indegree < 1 is not implemented here")
    rounding = sc.get("rounding", "nearest")
    nd = dict(cfg["neuron_defaults"])
    pb = cfg.get("poisson_background")
    poisson_input = bool(pb.get("poisson_input", True)) if pb else False
    pops = []
    for p in cfg["populations"]:
        params = {**nd, **p.get("params", {})}
        model = params.pop("model")
        size = scaled_count(p["size"], sn, rounding) if p.get("scalable", True) else int(round(p["size"]))
        k_ext = float(p.get("K_ext", 0.0)) * si
        i_dc = 0.0
        if pb and k_ext > 0.0 and not poisson_input:
            # As snn-build: the mean of the full-scale drive (full K_ext).
            integral = params["tau_syn_ex"] * (math.e if model == "iaf_psc_alpha" else 1.0)
            i_dc = pb["rate_Hz"] * float(p.get("K_ext", 0.0)) * pb["weight"] * integral * 0.001
        pops.append({"name": p["name"], "model": model, "params": params, "size": size, "k_ext": k_ext,
                     "rate_ext": pb["rate_Hz"] * k_ext if (pb and poisson_input) else 0.0, "i_dc": i_dc,
                     "v_m_init": p.get("V_m_init")})
    index = {p["name"]: i for i, p in enumerate(pops)}
    projs = []
    for j, pr in enumerate(cfg.get("projections", [])):
        if pr["rule"] != "fixed_indegree":
            raise SystemExit(f"projections[{j}]: rule {pr['rule']!r} not implemented (only fixed_indegree)")
        k = scaled_count(pr["indegree"], si, rounding)
        projs.append({"source": index[pr["source"]], "target": index[pr["target"]], "indegree": k,
                      "allow_autapses": pr.get("allow_autapses", True),
                      "allow_multapses": pr.get("allow_multapses", True),
                      "weight": pr["weight"], "delay": pr["delay"]})
    rec = cfg.get("recording", {}).get("spikes")
    recorded = list(range(len(pops))) if rec is None else [index[n] for n in rec]
    return pops, projs, pb, poisson_input, recorded


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"model config (default {DEFAULT_CONFIG})")
    ap.add_argument("--scale-neurons", type=float, default=None, help="scale.neurons (default: the config's)")
    ap.add_argument("--scale-indegree", type=float, default=None, help="scale.indegree (default: the config's)")
    ap.add_argument("--threads", type=int, default=2, help="NEST local_num_threads (default 2)")
    ap.add_argument("--t-presim", type=float, default=200.0, help="presimulation, ms (default 200)")
    ap.add_argument("--t-sim", type=float, default=1000.0, help="timed simulation, ms (default 1000)")
    ap.add_argument("--seed", type=int, default=None, help="NEST rng_seed (default: the config's network.seed)")
    ap.add_argument("--no-record", action="store_true", help="no spike_recorders (total_spikes is then null)")
    args = ap.parse_args()
    if args.t_sim <= 0.0 or args.t_presim < 0.0:
        ap.error("--t-sim must be > 0 and --t-presim >= 0")

    cfg = tomllib.loads(args.config.read_text())
    sc = cfg.get("scale", {})
    sn = float(sc.get("neurons", 1.0)) if args.scale_neurons is None else args.scale_neurons
    si = float(sc.get("indegree", 1.0)) if args.scale_indegree is None else args.scale_indegree
    if not (sn > 0.0 and si > 0.0):
        ap.error("scales must be > 0")
    net = cfg.get("network", {})
    dt = float(net.get("dt_ms", 0.1))
    seed = int(net.get("seed", 55)) if args.seed is None else args.seed
    pops, projs, pb, poisson_input, recorded = plan(cfg, sn, si)
    n_total = sum(p["size"] for p in pops)
    expected_recurrent = sum(pops[pr["target"]]["size"] * pr["indegree"] for pr in projs)
    driven = [i for i, p in enumerate(pops) if p["rate_ext"] > 0.0]
    expected_poisson = sum(pops[i]["size"] for i in driven)

    os.environ.setdefault("PYNEST_QUIET", "1")
    import nest  # noqa: E402

    try:
        nest.verbosity = nest.VerbosityLevel.WARNING
    except AttributeError:
        nest.set_verbosity("M_WARNING")

    nest.ResetKernel()
    nest.SetKernelStatus({"local_num_threads": args.threads, "resolution": dt, "rng_seed": seed})

    # ---- Create: neurons (parameters, initial V_m) + Poisson generators.
    t0 = time.perf_counter()
    nodes = []
    for i, p in enumerate(pops):
        pop = nest.Create(p["model"], p["size"])
        if p["size"] > 0:
            pop.set({**{k: float(v) for k, v in p["params"].items()},
                     "I_e": float(p["params"].get("I_e", 0.0)) + p["i_dc"]})
            if p["v_m_init"] is not None:
                pop.set(V_m=nest_value(nest, p["v_m_init"], f"populations[{i}].V_m_init"))
        nodes.append(pop)
    generators = {}
    for i in driven:
        generators[i] = nest.Create("poisson_generator", params={"rate": float(pops[i]["rate_ext"])})
    t1 = time.perf_counter()

    # ---- Connect: recurrent (fixed_indegree) + Poisson (all_to_all).
    for j, pr in enumerate(projs):
        if pr["indegree"] <= 0 or pops[pr["target"]]["size"] == 0:
            continue
        nest.Connect(
            nodes[pr["source"]],
            nodes[pr["target"]],
            conn_spec={"rule": "fixed_indegree", "indegree": pr["indegree"],
                       "allow_autapses": pr["allow_autapses"], "allow_multapses": pr["allow_multapses"]},
            syn_spec={"synapse_model": "static_synapse",
                      "weight": nest_value(nest, pr["weight"], f"projections[{j}].weight"),
                      "delay": nest_value(nest, pr["delay"], f"projections[{j}].delay")},
        )
    for i, gen in generators.items():
        nest.Connect(gen, nodes[i], conn_spec={"rule": "all_to_all"},
                     syn_spec={"weight": float(pb["weight"]), "delay": float(pb["delay"])})
    t2 = time.perf_counter()
    create_s, connect_s = t1 - t0, t2 - t1

    num_connections_network = int(nest.GetKernelStatus("num_connections"))
    expected = expected_recurrent + expected_poisson
    connections_ok = num_connections_network == expected
    sizes = ", ".join("%s %d" % (p["name"], p["size"]) for p in pops)
    drive = ("Poisson rates " + ", ".join("%.1f Hz" % pops[i]["rate_ext"] for i in driven)) if poisson_input \
        else "DC drive " + ", ".join("%.2f pA" % p["i_dc"] for p in pops)
    log(f"{net.get('name', 'network')} N x {sn:g}, K x {si:g}: {n_total} neurons ({sizes}), "
        f"{expected_recurrent} recurrent synapses, {drive}; built in {create_s + connect_s:.2f} s")
    log(f"check: {num_connections_network} connections, expected {expected_recurrent} recurrent + "
        f"{expected_poisson} Poisson: {'OK' if connections_ok else 'MISMATCH'}")

    recorders = []
    if not args.no_record:
        for i in recorded:
            rec = nest.Create("spike_recorder", params={"start": args.t_presim})
            nest.Connect(nodes[i], rec)
            recorders.append(rec)

    t3 = time.perf_counter()
    if args.t_presim > 0.0:
        nest.Simulate(args.t_presim)
    t4 = time.perf_counter()
    log(f"presimulation {args.t_presim:g} ms: {t4 - t3:.2f} s")
    nest.Simulate(args.t_sim)
    t5 = time.perf_counter()
    sim_s = t5 - t4
    log(f"simulation {args.t_sim:g} ms: {sim_s:.2f} s")

    total_spikes = sum(int(r.get("n_events")) for r in recorders) if recorders else None
    result = {
        "simulator": "nest",
        "nest_version": getattr(nest, "__version__", "unknown"),
        "model": net.get("name", args.config.stem),
        "config": str(args.config),
        "scale_neurons": sn,
        "scale_indegree": si,
        "threads": args.threads,
        "poisson_input": poisson_input,
        "seed": seed,
        "t_presim_ms": args.t_presim,
        "t_sim_ms": args.t_sim,
        "create_s": round(create_s, 4),
        "connect_s": round(connect_s, 4),
        "build_s": round(create_s + connect_s, 4),
        "presim_s": round(t4 - t3, 4),
        "sim_s": round(sim_s, 4),
        "sim_s_per_bio_s": round(sim_s / (args.t_sim / 1000.0), 4),
        "total_spikes": total_spikes,
        "recorded": not args.no_record,
        "n_neurons": n_total,
        "num_neurons": n_total,
        "populations": {p["name"]: p["size"] for p in pops},
        "recurrent_synapses": expected_recurrent,
        "poisson_rates_hz": {pops[i]["name"]: pops[i]["rate_ext"] for i in driven},
        "num_connections_network": num_connections_network,
        "num_connections": int(nest.GetKernelStatus("num_connections")),
        "connections_ok": connections_ok,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(json.dumps(result), flush=True)
    return 0 if connections_ok else 2


if __name__ == "__main__":
    sys.exit(main())
