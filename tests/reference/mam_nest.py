#!/usr/bin/env python3
"""Reference spike statistics of the multi-area model (MAM) from NEST 3.10.

Generates ``tests/reference/data/mam_nest_stats.json``: per-population firing
statistics of the spiking multi-area model of macaque visual cortex (Schmidt
et al. 2018; 32 areas, 254 populations) downscaled to N_scaling = K_scaling =
0.006 (24,655 neurons, 865,334 recurrent synapses), in its ground state
(chi = chi_I = 1) and its metastable state (chi = 1.9, chi_I = 2), simulated
in NEST for several seeds. The model is built only from the data in
``configs/mam/mam_spec.json`` and ``configs/mam/fullscale_rates.json`` (see
``/work/shared/reference/mam/README.md`` or ``configs/mam/README.md`` for
every field and rule); the created neuron and synapse counts and the
compensating DC are asserted against the spec's ``checks``.

Run from the repository root with the project's venv (NEST 3.10 from PyPI)::

    PYNEST_QUIET=1 .venv/bin/python tests/reference/mam_nest.py      # both states, seeds 1 2 3
    PYNEST_QUIET=1 .venv/bin/python tests/reference/mam_nest.py --states metastable --seeds 1 \\
        --out /tmp/mam.json
    .venv/bin/python tests/reference/mam_nest.py --merge a.json b.json --out c.json   # seeds of both

The committed reference holds seeds 1 to 10 (seeds 1 2 3, then 4 to 10 run
separately and merged): the test compares the mean of three of our seeds
with NEST's mean and seed-to-seed standard deviation, which three seeds alone
would estimate too roughly (a sample sd of three values is below a third of
the true one in about 5 % of populations).

Network (n = k = 0.006), in the spec's ``simulation.construction_order_NEST``
(the order of the original model code, so NEST's random streams are the
same as the MAM's):

* populations ``AREA_POP`` in ``population_index`` order, ``iaf_psc_exp``
  with ``neuron.params``, int(N*n) neurons each, initial V_m ~
  normal(-150, 50) mV per neuron (no clipping), I_e = the compensating DC
  I_e,i = C_m/tau_m*(1-sqrt(k))*(1e-3*tau_m*sum_j J_ij*K_ij*nu_j +
  1e-3*tau_m*J_ext*K_ext,i*10 Hz), J = W_mean*tau_syn_ex/C_m with the
  full-scale K and W_mean of the chosen state and nu from fullscale_rates;
* for every ordered population pair (target i, source j), within each area
  and then between areas (target area outer, source area inner, target
  population outer, source population inner; also for pairs with K = 0,
  which create nothing, as the MAM does): ``fixed_total_number`` with
  N = int((K_ij*N_i)*(k*n)) (N_i the full-scale float size), autapses and
  multapses allowed, ``static_synapse``; weight
  redraw(normal(W_mean_ij/sqrt(k), W_sd_ij)) (the mean evaluated as the MAM
  does, (C_m/tau_s)*((tau_s/C_m*W)/sqrt(k))) within [0, inf) for E sources in
  the same area and for all inter-area pairs, (-inf, 0] for I sources in the
  same area (W_sd is the full-scale absolute sd, not rescaled); delay
  redraw(normal(delay_mean_ij, delay_sd_ij), min = dt = 0.1 ms), rounded to
  the grid by NEST. Metastable state: between areas the ground-state mean
  and sd are multiplied by chi = 1.9, and by chi_I = 2 as well when the
  target population is inhibitory;
* one ``poisson_generator`` per population, rate 10 Hz*(K_ext,i*k),
  ``all_to_all`` (an independent train per neuron), weight W_ext/sqrt(k),
  delay 1.0 ms.

Kernel: resolution 0.1 ms, ``local_num_threads`` = 2, ``rng_seed`` = seed
(each seed redraws the connectivity, the weights and delays, the initial V_m
and the Poisson input).

Simulation: ``nest.Simulate(t_presim = 500)`` (not recorded) then
``nest.Simulate(t_sim = 2000)``; one ``spike_recorder`` for all neurons with
``start = t_presim``, ``stop = t_presim + t_sim``, its events split by
population (node-id ranges). The analysis window is ``[t_presim, t_presim +
t_sim)``.

Statistics per population: exactly those of ``microcircuit_nest.py`` (its
functions are imported from there): rate_hz (mean over ALL neurons, silent
ones included), rate_sd_hz (ddof = 0), cv_isi (mean over neurons with >= 3
spikes in the window of sd/mean of the ISIs, ddof = 0), n_cv, fano (var/mean,
ddof = 0, of the population count in 10 ms bins), corr (mean Pearson r of the
10 ms binned counts of 200 distinct random pairs, numpy default_rng([seed,
population index]), constant vectors left out), n_corr, n_neurons, spikes.

Per state: ``per_seed[seed][pop]``, ``mean_over_seeds`` and
``sd_over_seeds`` (ddof = 1) per population and statistic,
``network_rate_hz`` (total spikes / total neurons / T per seed, with its
mean and sd over seeds), ``wall_s[seed]`` (build = Create + Connect,
presim, sim, in s; meaningful only on an otherwise idle machine), and the
created counts.
"""

import argparse
import datetime
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import microcircuit_nest as mc  # noqa: E402  (split_trains, population_stats, over_seeds, STAT_KEYS)

DEFAULT_SPEC = ROOT / "configs" / "mam" / "mam_spec.json"
DEFAULT_RATES = ROOT / "configs" / "mam" / "fullscale_rates.json"
DEFAULT_OUT = HERE / "data" / "mam_nest_stats.json"
STATES = ("ground", "metastable")
SCALE = 0.006  # n = k; the spec's checks are for this scaling
CHECK_KEY = "downscaled_N0.006_K0.006"
RATE_EXT_HZ = 10.0
POISSON_DELAY_MS = 1.0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def derive(spec, rates_json, state, n, k):
    """All per-population and per-pair quantities of the downscaled network, in population_index order."""
    areas = spec["areas"]
    pops8 = spec["populations"]
    index = [tuple(x) for x in spec["population_index"]]
    names = [f"{a}_{p}" for a, p in index]
    npop = len(index)
    area_of = np.array([a for a, _ in index])
    same_area = area_of[:, None] == area_of[None, :]
    is_i_target = np.array([p.endswith("I") for _, p in index])
    is_i_source = is_i_target

    n_full = np.array([spec["N"][areas.index(a)][pops8.index(p)] for a, p in index], dtype=float)
    K = np.array(spec["K"], dtype=float)
    K_ext = np.array(spec["K_ext"], dtype=float)
    W_ground = np.array(spec["W_mean_ground"], dtype=float)
    Wsd_ground = np.array(spec["W_sd_ground"], dtype=float)
    assert K.shape == W_ground.shape == (npop, npop)

    # Weights of the chosen state (full scale): between areas x chi, then x chi_I for I targets.
    chi = spec["weights"]["states"][state]["chi"]
    chi_i = spec["weights"]["states"][state]["chi_I"]
    W = W_ground.copy()
    Wsd = Wsd_ground.copy()
    if chi != 1.0 or chi_i != 1.0:
        cc = ~same_area
        W[cc] = W[cc] * chi
        Wsd[cc] = Wsd[cc] * chi
        cci = cc & is_i_target[:, None]
        W[cci] = W[cci] * chi_i
        Wsd[cci] = Wsd[cci] * chi_i
    if f"W_mean_{state}" in spec:
        assert np.array_equal(W, np.array(spec[f"W_mean_{state}"])), "W_mean differs from the spec"
        assert np.array_equal(Wsd, np.array(spec[f"W_sd_{state}"])), "W_sd differs from the spec"

    # Compensating DC (full-scale K and W of the state, full-scale rates).
    prm = spec["neuron"]["params"]
    C_m, tau_m, tau_s = prm["C_m"], prm["tau_m"], prm["tau_syn_ex"]
    nu = np.array([rates_json[a][p] for a, p in index], dtype=float)
    W_ext = spec["W_ext_pA"]
    J = W * tau_s / C_m
    J_ext = W_ext * tau_s / C_m
    x1 = 1e-3 * tau_m * np.dot(J * K, nu)
    x1_ext = 1e-3 * tau_m * J_ext * K_ext * RATE_EXT_HZ
    if n != 1.0 or k != 1.0:
        I_e = C_m / tau_m * ((1.0 - np.sqrt(k)) * (x1 + x1_ext))
    else:
        I_e = np.zeros(npop)

    n_created = np.array([int(x * n) for x in n_full], dtype=np.int64)
    S = K * n_full[:, None]  # full-scale float synapse numbers, target by source
    n_syn = np.array([[int(s * (k * n)) for s in row] for row in S], dtype=np.int64)

    # Weight bounds: [0, inf) for E sources within an area and all inter-area pairs,
    # (-inf, 0] for I sources within an area.
    neg = same_area & is_i_source[None, :]
    w_min = np.where(neg, -math.inf, 0.0)
    w_max = np.where(neg, 0.0, math.inf)

    # Downscaled means: W/sqrt(k), evaluated as the MAM does (via J = W*tau_s/C_m and back), which
    # reproduces the spec's checks bit for bit (plain W/sqrt(k) differs by 1 ulp in half the entries).
    psp = tau_s / C_m

    def scale_w(w):
        return (1.0 / (psp * 1.0)) * ((psp * w) / np.sqrt(k))

    return {
        "names": names,
        "index": index,
        "area_of": area_of,
        "n_created": n_created,
        "n_syn": n_syn,
        "W_scaled": scale_w(W),
        "W_sd": Wsd,
        "w_min": w_min,
        "w_max": w_max,
        "delay_mean": np.array(spec["delay_mean"], dtype=float),
        "delay_sd": np.array(spec["delay_sd"], dtype=float),
        "I_e": I_e,
        "poisson_rate": RATE_EXT_HZ * (K_ext * k),
        "W_ext_scaled": float(scale_w(W_ext)),
    }


def check_against_spec(spec, d, state):
    """Assert the derived counts and DC against spec['checks'] (n = k = 0.006 only)."""
    c = spec["checks"][CHECK_KEY]
    ref_ie = np.array(c[state]["I_e_pA"], dtype=float)
    rel = np.max(np.abs(d["I_e"] - ref_ie) / np.maximum(np.abs(ref_ie), 1e-300))
    assert rel <= 1e-9, f"I_e differs from the checks by {rel:.3g} (relative)"
    assert int(d["n_created"].sum()) == c[state]["n_neurons_created_total"], "neuron count"
    assert list(d["n_created"]) == list(c["N_created_per_population"]), "neurons per population"
    assert int(d["n_syn"].sum()) == c[state]["n_synapses_created_total"], "synapse count"
    first5 = c[state]["poisson_rate_per_population_Hz_first5"]
    assert list(d["poisson_rate"][:5]) == first5, "poisson rates"
    assert d["W_ext_scaled"] == c[state]["W_ext_pA"], "W_ext"
    assert d["W_scaled"][0, 0] == c[state]["W_mean_pA_V1_23E_from_V1_23E"], "W_mean V1_23E <- V1_23E"
    assert d["W_sd"][0, 0] == c[state]["W_sd_pA_V1_23E_from_V1_23E"]
    return rel


def build(nest, spec, d, seed, threads, t_presim, t_sim):
    """Build the network in construction_order_NEST; return (pops, recorder, created synapses, build s)."""
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": spec["simulation"]["dt_ms"], "local_num_threads": threads,
                          "rng_seed": seed})
    dt = nest.resolution
    nest.SetDefaults(spec["neuron"]["model"], spec["neuron"]["params"])
    v0 = spec["neuron"]["V0"]
    t0 = time.perf_counter()
    rec = nest.Create("spike_recorder", params={"start": t_presim, "stop": t_presim + t_sim})

    names, area_of = d["names"], d["area_of"]
    areas = spec["areas"]
    members = {a: [i for i in range(len(names)) if area_of[i] == a] for a in areas}
    pops = [None] * len(names)
    n_syn_created = 0
    n_dev_conns = 0

    def connect_pair(i, j):
        nonlocal n_syn_created
        n = int(d["n_syn"][i, j])
        conn = {"rule": "fixed_total_number", "N": n, "allow_autapses": True, "allow_multapses": True}
        syn = {
            "synapse_model": "static_synapse",
            "weight": nest.math.redraw(nest.random.normal(mean=float(d["W_scaled"][i, j]),
                                                          std=float(d["W_sd"][i, j])),
                                       min=float(d["w_min"][i, j]), max=float(d["w_max"][i, j])),
            "delay": nest.math.redraw(nest.random.normal(mean=float(d["delay_mean"][i, j]),
                                                         std=float(d["delay_sd"][i, j])),
                                      min=dt, max=math.inf),
        }
        nest.Connect(pops[j], pops[i], conn, syn)
        n_syn_created += n

    for a in areas:
        idx = members[a]
        # (a) populations: create, DC, initial V_m
        for i in idx:
            pop = nest.Create(spec["neuron"]["model"], int(d["n_created"][i]))
            pop.set({"I_e": float(d["I_e"][i])})
            pop.V_m = nest.random.normal(v0["mean_mV"], v0["sd_mV"])
            pops[i] = pop
        # (b) recorder
        for i in idx:
            nest.Connect(pops[i], rec)
            n_dev_conns += len(pops[i])
        # (c) external Poisson drive
        for i in idx:
            pg = nest.Create("poisson_generator")
            pg.set({"rate": float(d["poisson_rate"][i])})
            nest.Connect(pg, pops[i], syn_spec={"weight": float(d["W_ext_scaled"]),
                                                "delay": POISSON_DELAY_MS})
            n_dev_conns += len(pops[i])
        # (d) intra-area connections, target outer, source inner
        for i in idx:
            for j in idx:
                connect_pair(i, j)
    # inter-area connections: target area, source area (skipping self), target pop, source pop
    for ta in areas:
        for sa in areas:
            if sa == ta:
                continue
            for i in members[ta]:
                for j in members[sa]:
                    connect_pair(i, j)
    build_s = time.perf_counter() - t0
    total = int(nest.GetKernelStatus("num_connections"))
    if total - n_dev_conns != n_syn_created:
        raise RuntimeError(f"kernel has {total - n_dev_conns} recurrent connections, expected {n_syn_created}")
    return pops, rec, n_syn_created, build_s


def run_seed(nest, spec, d, seed, threads, t_presim, t_sim):
    pops, rec, n_syn, build_s = build(nest, spec, d, seed, threads, t_presim, t_sim)
    t0 = time.perf_counter()
    nest.Simulate(t_presim)
    t1 = time.perf_counter()
    nest.Simulate(t_sim)
    t2 = time.perf_counter()

    ev = rec.get("events")
    senders = np.asarray(ev["senders"], dtype=np.int64)
    times = np.asarray(ev["times"], dtype=float)
    order = np.argsort(senders, kind="stable")
    senders, times = senders[order], times[order]

    stats = {}
    for i, (name, pop) in enumerate(zip(d["names"], pops)):
        first = int(pop[0].global_id)
        n = len(pop)
        if int(pop[-1].global_id) != first + n - 1:
            raise RuntimeError(f"population {name} has non-contiguous node ids")
        lo, hi = np.searchsorted(senders, [first, first + n])
        trains = mc.split_trains(senders[lo:hi], times[lo:hi], first, n)
        rng = np.random.default_rng([seed, i])
        stats[name] = mc.population_stats(trains, t_presim, t_presim + t_sim, rng)
    n_neurons = int(sum(len(p) for p in pops))
    spikes = int(sum(s["spikes"] for s in stats.values()))
    net_rate = spikes / n_neurons / (t_sim / 1000.0)
    wall = {"build": build_s, "presim": t1 - t0, "sim": t2 - t1}
    return stats, wall, net_rate, n_neurons, n_syn


def summarise_state(st, names):
    """Recompute a state's means and sds over its per-seed results (after a merge)."""
    per_seed = st["per_seed"]
    seeds = sorted(per_seed, key=int)
    st["per_seed"] = {s: per_seed[s] for s in seeds}
    st["mean_over_seeds"] = mc.over_seeds(st["per_seed"], names, lambda a: float(a.mean()))
    st["sd_over_seeds"] = mc.over_seeds(st["per_seed"], names,
                                        lambda a: float(a.std(ddof=1)) if a.size > 1 else None)
    net = st["network_rate_hz"]["per_seed"]
    vals = np.array([net[s] for s in seeds])
    st["network_rate_hz"] = {
        "per_seed": {s: net[s] for s in seeds},
        "mean": float(vals.mean()),
        "sd": float(vals.std(ddof=1)) if vals.size > 1 else None,
    }
    st["wall_s"] = {s: st["wall_s"][s] for s in seeds}


def merge(files, out):
    """Merge result files of the same model and times but different seeds into one."""
    results = [json.loads(Path(f).read_text()) for f in files]
    base = results[0]
    same = ("N_scaling", "K_scaling", "threads", "resolution_ms", "t_presim_ms", "t_sim_ms", "populations")
    for r, f in zip(results[1:], files[1:]):
        for key in same:
            if r[key] != base[key]:
                raise SystemExit(f"{f}: {key} differs from {files[0]}")
        for state, st in r["states"].items():
            if state not in base["states"]:
                base["states"][state] = st
                continue
            b = base["states"][state]
            for key in ("per_seed", "wall_s"):
                b[key].update(st[key])
            b["network_rate_hz"]["per_seed"].update(st["network_rate_hz"]["per_seed"])
    for st in base["states"].values():
        summarise_state(st, base["populations"])
    base["seeds"] = sorted({int(s) for st in base["states"].values() for s in st["per_seed"]})
    base["merged_from"] = [Path(f).name for f in files]
    out.write_text(json.dumps(base, indent=1) + "\n")
    log(f"wrote {out}: seeds {base['seeds']}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--merge", type=Path, nargs="+", metavar="FILE",
                    help="merge these result files (other seeds of the same runs) into --out; runs nothing")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="NEST rng_seeds (default 1 2 3)")
    ap.add_argument("--states", nargs="+", default=list(STATES), choices=STATES,
                    help="model states (default ground metastable)")
    ap.add_argument("--threads", type=int, default=2, help="NEST local_num_threads (default 2)")
    ap.add_argument("--t-presim", type=float, default=500.0, help="presimulation, ms (default 500)")
    ap.add_argument("--t-sim", type=float, default=2000.0, help="recorded simulation, ms (default 2000)")
    ap.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="mam_spec.json")
    ap.add_argument("--rates", type=Path, default=DEFAULT_RATES, help="fullscale_rates.json")
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT, help=f"output json (default {DEFAULT_OUT})")
    args = ap.parse_args()
    if args.merge:
        return merge(args.merge, args.out)

    spec = json.loads(args.spec.read_text())
    rates_json = json.loads(args.rates.read_text())
    n = k = SCALE
    derived = {}
    for state in args.states:
        derived[state] = derive(spec, rates_json, state, n, k)
        rel = check_against_spec(spec, derived[state], state)
        log(f"{state}: checks passed (I_e max rel. diff {rel:.2e}, {int(derived[state]['n_created'].sum())} "
            f"neurons, {int(derived[state]['n_syn'].sum())} synapses)")

    os.environ.setdefault("PYNEST_QUIET", "1")
    import nest  # noqa: E402

    try:
        nest.verbosity = nest.VerbosityLevel.WARNING
    except AttributeError:
        nest.set_verbosity("M_WARNING")

    result = {
        "nest_version": getattr(nest, "__version__", "unknown"),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": "multi-area model (Schmidt et al. 2018), configs/mam/mam_spec.json",
        "N_scaling": n,
        "K_scaling": k,
        "threads": args.threads,
        "resolution_ms": spec["simulation"]["dt_ms"],
        "t_presim_ms": args.t_presim,
        "t_sim_ms": args.t_sim,
        "window_ms": [args.t_presim, args.t_presim + args.t_sim],
        "bin_ms": mc.BIN_MS,
        "corr_pairs": mc.N_PAIRS,
        "seeds": args.seeds,
        "populations": derived[args.states[0]]["names"],
        "definitions": (
            "window [t_presim, t_presim+t_sim); rate: mean over all neurons (Hz), rate_sd ddof=0; "
            "cv_isi: mean over neurons with >=2 ISIs of sd/mean (ddof=0); fano: var/mean (ddof=0) of "
            "population count in 10 ms bins; corr: mean Pearson r of 10 ms binned counts over 200 "
            "distinct random pairs (default_rng([seed, population index]), constant vectors left out); "
            "sd_over_seeds ddof=1; network_rate_hz: total spikes / total neurons / t_sim"
        ),
        "states": {},
    }

    for state in args.states:
        d = derived[state]
        names = d["names"]
        per_seed, wall, net = {}, {}, {}
        counts = None
        for seed in args.seeds:
            log(f"{state} seed {seed}: building n = k = {n:g} with {args.threads} threads, "
                f"simulating {args.t_presim:g} + {args.t_sim:g} ms")
            stats, w, net_rate, n_neurons, n_syn = run_seed(nest, spec, d, seed, args.threads,
                                                            args.t_presim, args.t_sim)
            counts = {"neurons": n_neurons, "synapses": n_syn}
            per_seed[str(seed)] = stats
            wall[str(seed)] = {key: round(v, 3) for key, v in w.items()}
            net[str(seed)] = net_rate
            silent = sum(1 for s in stats.values() if s["spikes"] == 0)
            log(f"{state} seed {seed}: build {w['build']:.2f} s, presim {w['presim']:.2f} s, "
                f"sim {w['sim']:.2f} s; network rate {net_rate:.3f} Hz, {silent} silent populations")
        mean = mc.over_seeds(per_seed, names, lambda a: float(a.mean()))
        sd = mc.over_seeds(per_seed, names, lambda a: float(a.std(ddof=1)) if a.size > 1 else None)
        net_vals = np.array([net[str(s)] for s in args.seeds])
        result["states"][state] = {
            "chi": spec["weights"]["states"][state]["chi"],
            "chi_I": spec["weights"]["states"][state]["chi_I"],
            "created": counts,
            "I_e_pA": [float(x) for x in d["I_e"]],
            "network_rate_hz": {
                "per_seed": net,
                "mean": float(net_vals.mean()),
                "sd": float(net_vals.std(ddof=1)) if net_vals.size > 1 else None,
            },
            "per_seed": per_seed,
            "mean_over_seeds": mean,
            "sd_over_seeds": sd,
            "wall_s": wall,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")  # after each state, in case of a crash
        log(f"wrote {args.out} ({state})")

        print(f"NEST {result['nest_version']} MAM {state}, n = k = {n:g}, {args.threads} threads, window "
              f"[{args.t_presim:g}, {args.t_presim + args.t_sim:g}) ms, seeds {args.seeds}: network rate "
              f"{net_vals.mean():.3f} Hz; population rates (mean over seeds +- sd), CV ISI:")
        for name in names:
            m, s = mean[name], sd[name]
            print(f"  {name:10} {mc.fmt(m['rate_hz'], '.3f'):>8} +- {mc.fmt(s['rate_hz'], '.3f'):<7} "
                  f"CV {mc.fmt(m['cv_isi'], '.3f')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
