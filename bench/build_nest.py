#!/usr/bin/env python3
"""Build the Potjans & Diesmann (2014) cortical microcircuit in NEST 3.10 and
time network construction (Create + Connect).

The model follows the numbers and rules in microcircuit_params.json (a copy of
shared/reference/microcircuit_params.json, itself taken from the NEST example
pynest/examples/Potjans_2014); see its "notes" for every rule used here.

Prints exactly one JSON line on stdout, e.g.
  {"simulator": "nest", "scale": 0.1, "threads": 2, "create_s": ..,
   "connect_s": .., "total_s": .., "num_connections": .., "peak_rss_mb": .., ...}
Human-readable checks go to stderr.

With --dc the Poisson background is replaced by a constant current (NEST's
Potjans_2014 example with poisson_input = False): no poisson_generator is
created, and I_e = 0.001 * bg_rate * K_ext * PSC_ext * tau_syn (the mean of
the full-scale background: full-scale K_ext and PSC_ext) plus the K_scaling
compensation of the recurrent input only.

Usage: .venv/bin/python bench/build_nest.py --scale 0.1 --threads 2 [--dc]
"""

import argparse
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_PARAMS = HERE / "microcircuit_params.json"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def peak_rss_mb():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def psc_over_psp(p):
    """PSC amplitude (pA) that gives a 1 mV PSP peak, iaf_psc_exp (notes.PSC_over_PSP_formula)."""
    tau_m, tau_syn, c_m = p["tau_m_ms"], p["tau_syn_ex_ms"], p["C_m_pF"]
    sub = 1.0 / (tau_syn - tau_m)
    pre = tau_m * tau_syn / c_m * sub
    frac = (tau_m / tau_syn) ** sub
    return 1.0 / (pre * (frac**tau_m - frac**tau_syn))


def derive(p, scale):
    """All scaled quantities, exactly as the NEST example derives them."""
    n_scaling = k_scaling = scale
    n_full = np.array(p["N_full"], dtype=float)
    conn_probs = np.array(p["conn_prob_target_by_source"], dtype=float)

    # notes.num_synapses_formula (full-scale populations), then scale.
    prod = np.outer(n_full, n_full)
    k_tot_full = np.log(1.0 - conn_probs) / np.log((prod - 1.0) / prod)
    full_indegrees = k_tot_full / n_full[:, np.newaxis]

    n = np.round(n_full * n_scaling).astype(int)
    num_syn = np.round(k_tot_full * n_scaling * k_scaling).astype(int)
    k_ext = np.round(np.array(p["K_ext_full"], dtype=float) * k_scaling).astype(int)

    ratio = psc_over_psp(p)
    psp = np.array(p["PSP_mean_mV_target_by_source"], dtype=float)
    w_full = psp * ratio
    w_ext_full = p["PSP_exc_mean_mV"] * ratio

    # notes.K_scaling_compensation (poisson input on: DC starts at 0). With
    # poisson_input = False (i_e_dc) the compensation leaves the background out
    # and the full-scale background's mean is added instead
    # (notes.no_poisson_DC_compensation: 0.001*bg_rate*K_ext*PSC_ext*tau_syn,
    # full-scale K_ext and PSC_ext, before the K_scaling adjustment).
    k_ext_full = np.array(p["K_ext_full"], dtype=float)
    i_e = np.zeros(len(n))
    i_e_dc = p["bg_rate_Hz"] * k_ext_full * w_ext_full * p["tau_syn_ex_ms"] * 0.001
    if k_scaling != 1.0:
        rates = np.array(p["full_mean_rates_Hz_reference"], dtype=float)
        syn_input = np.sum(w_full * full_indegrees * rates, axis=1)
        bg_input = w_ext_full * k_ext_full * p["bg_rate_Hz"]
        i_e += 0.001 * p["tau_syn_ex_ms"] * (1.0 - math.sqrt(k_scaling)) * (syn_input + bg_input)
        i_e_dc = 0.001 * p["tau_syn_ex_ms"] * (1.0 - math.sqrt(k_scaling)) * syn_input + i_e_dc

    w = w_full / math.sqrt(k_scaling)
    w_ext = w_ext_full / math.sqrt(k_scaling)

    n_pops = len(n)
    exc_src = np.array([not name.endswith("I") for name in p["populations"]])
    delay_mean = np.where(exc_src, p["delay_exc_mean_ms"], p["delay_inh_mean_ms"])
    return {
        "N": n,
        "num_synapses": num_syn,
        "K_ext": k_ext,
        "rate_ext": p["bg_rate_Hz"] * k_ext,
        "weight": w,
        "weight_ext": w_ext,
        "I_e": i_e,  # K_scaling compensation only (poisson input on)
        "I_e_dc": i_e_dc,  # I_e with --dc (poisson_input = False)
        "delay_mean": np.tile(delay_mean, (n_pops, 1)),  # [target, source]
    }


def check_against_json(p, scale, d):
    """Compare the derivation with the json's precomputed block, when it has one."""
    key = f"derived_N{scale:g}_K{scale:g}"
    ref = p.get(key)
    if ref is None:
        log(f"check: no '{key}' block in params json; derived values not cross-checked")
        return None
    ok = True
    ok &= list(d["N"]) == ref["N"]
    ok &= d["num_synapses"].tolist() == ref["num_synapses_total_target_by_source"]
    ok &= list(d["K_ext"]) == ref["K_ext"]
    ok &= np.allclose(d["weight"], ref["weight_mean_pA_target_by_source"], rtol=1e-12)
    ok &= math.isclose(d["weight_ext"], ref["weight_ext_pA"], rel_tol=1e-12)
    ok &= np.allclose(d["I_e"], ref["I_e_DC_pA"], rtol=1e-9, atol=1e-9)
    log(f"check: derived N, synapse counts, K_ext, weights, I_e vs json '{key}': {'OK' if ok else 'MISMATCH'}")
    return ok


def build_network(nest, p, d, threads, seed, dc=False):
    """ResetKernel, set the kernel (resolution dt_ms, threads, rng_seed) and build
    the microcircuit: Create (neurons with parameters and initial V_m, Poisson
    generators) and Connect (recurrent + Poisson). No recorders.

    dc=True (NEST example's poisson_input = False): no Poisson generators and no
    Poisson connections; I_e = d["I_e_dc"] instead of d["I_e"].

    Returns (pops, poisson, create_s, connect_s): the eight NodeCollections in
    p["populations"] order, the Poisson generators (None with dc) and the two
    wall times. Shared with bench/sim_nest.py and tests/reference/microcircuit_nest.py.
    """
    nest.ResetKernel()
    nest.SetKernelStatus({"local_num_threads": threads, "resolution": p["dt_ms"], "rng_seed": seed})

    # ---- Create: neurons (with parameters and initial V_m) + Poisson generators.
    t0 = time.perf_counter()
    pops = []
    for i, _name in enumerate(p["populations"]):
        pop = nest.Create(p["neuron_model"], int(d["N"][i]))
        pop.set(
            C_m=p["C_m_pF"],
            E_L=p["E_L_mV"],
            V_th=p["V_th_mV"],
            V_reset=p["V_reset_mV"],
            tau_syn_ex=p["tau_syn_ex_ms"],
            tau_syn_in=p["tau_syn_in_ms"],
            tau_m=p["tau_m_ms"],
            t_ref=p["t_ref_ms"],
            I_e=float(d["I_e_dc"][i] if dc else d["I_e"][i]),
        )
        pop.set(V_m=nest.random.normal(p["V0_mean_mV_optimized"][i], p["V0_std_mV_optimized"][i]))
        pops.append(pop)
    poisson = None
    if not dc:
        poisson = nest.Create("poisson_generator", n=len(pops), params={"rate": [float(r) for r in d["rate_ext"]]})
    t1 = time.perf_counter()

    # ---- Connect: recurrent (fixed_total_number) + Poisson (all_to_all).
    dt = p["dt_ms"]
    for i, target in enumerate(pops):
        for j, source in enumerate(pops):
            n_syn = int(d["num_synapses"][i][j])
            if n_syn <= 0:
                continue
            w_mean = float(d["weight"][i][j])
            w_min, w_max = (-np.inf, 0.0) if w_mean < 0 else (0.0, np.inf)
            delay_mean = float(d["delay_mean"][i][j])
            syn = {
                "synapse_model": "static_synapse",
                "weight": nest.math.redraw(
                    nest.random.normal(mean=w_mean, std=abs(w_mean * p["weight_rel_std"])), min=w_min, max=w_max
                ),
                "delay": nest.math.redraw(
                    nest.random.normal(mean=delay_mean, std=delay_mean * p["delay_rel_std"]),
                    min=dt - 0.5 * dt,
                    max=np.inf,
                ),
            }
            nest.Connect(source, target, conn_spec={"rule": "fixed_total_number", "N": n_syn}, syn_spec=syn)
        if dc:
            continue
        nest.Connect(
            poisson[i],
            target,
            conn_spec={"rule": "all_to_all"},
            syn_spec={"weight": float(d["weight_ext"]), "delay": p["poisson_delay_ms"]},
        )
    t2 = time.perf_counter()
    return pops, poisson, t1 - t0, t2 - t1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.1, help="N_scaling = K_scaling (default 0.1)")
    ap.add_argument("--threads", type=int, default=2, help="NEST local_num_threads (default 2)")
    ap.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help=f"params json (default {DEFAULT_PARAMS})")
    ap.add_argument("--seed", type=int, default=55, help="NEST rng_seed (default 55)")
    ap.add_argument("--dc", action="store_true", help="DC drive instead of Poisson input (poisson_input = False)")
    ap.add_argument(
        "--no-prepare",
        action="store_true",
        help="skip the extra nest.Prepare() timing (NEST finishes its connection infrastructure there)",
    )
    args = ap.parse_args()
    if not (0.0 < args.scale <= 1.0):
        ap.error("--scale must be in (0, 1]")

    p = json.loads(args.params.read_text())
    d = derive(p, args.scale)
    derived_ok = check_against_json(p, args.scale, d)
    expected_recurrent = int(d["num_synapses"].sum())
    n_total = int(d["N"].sum())

    os.environ.setdefault("PYNEST_QUIET", "1")
    import nest  # noqa: E402  (import after PYNEST_QUIET is set)

    try:
        nest.verbosity = nest.VerbosityLevel.WARNING
    except AttributeError:  # older PyNEST
        nest.set_verbosity("M_WARNING")

    rss_before = peak_rss_mb()
    pops, _poisson, create_s, connect_s = build_network(nest, p, d, args.threads, args.seed, dc=args.dc)
    rss_after_connect = peak_rss_mb()

    prepare_s = None
    if not args.no_prepare:
        t3 = time.perf_counter()
        nest.Prepare()
        prepare_s = time.perf_counter() - t3
        nest.Cleanup()

    num_connections = int(nest.GetKernelStatus("num_connections"))
    n_poisson = 0 if args.dc else n_total  # each neuron has exactly one Poisson connection (none with --dc)
    recurrent = num_connections - n_poisson
    recurrent_ok = recurrent == expected_recurrent
    log(
        f"check: scale {args.scale:g}: {num_connections} connections = {recurrent} recurrent + {n_poisson} Poisson; "
        f"expected recurrent {expected_recurrent}: {'OK' if recurrent_ok else 'MISMATCH'}"
    )

    result = {
        "simulator": "nest",
        "nest_version": getattr(nest, "__version__", "unknown"),
        "scale": args.scale,
        "threads": args.threads,
        "poisson_input": not args.dc,
        "create_s": round(create_s, 4),
        "connect_s": round(connect_s, 4),
        "total_s": round(create_s + connect_s, 4),
        "prepare_s": None if prepare_s is None else round(prepare_s, 4),
        "num_neurons": n_total,
        "num_connections": num_connections,
        "recurrent_synapses": recurrent,
        "expected_recurrent_synapses": expected_recurrent,
        "recurrent_ok": recurrent_ok,
        "derived_matches_json": derived_ok,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_rss_after_connect_mb": round(rss_after_connect, 1),
        "rss_before_create_mb": round(rss_before, 1),
    }
    print(json.dumps(result), flush=True)
    return 0 if recurrent_ok and derived_ok is not False else 2


if __name__ == "__main__":
    sys.exit(main())
