#!/usr/bin/env python3
"""Reference membrane-potential traces and spike times from NEST 3.10.

Generates ``tests/reference/data/<scenario>.json`` for the exactness test
``simulate/tests/nest_exactness.rs``, which replays every scenario through
``snn_simulate::neuron`` and requires every V_m sample within 1e-6 mV of
NEST's and identical spike times.

Run from the repository root with the project's venv (NEST 3.10 from PyPI)::

    .venv/bin/python tests/reference/nest_traces.py

The script is deterministic (no random numbers are drawn; NEST is single
threaded here) and rewrites the same files byte for byte on every run with
the same NEST version.

Each scenario is one neuron (``iaf_psc_exp``, ``iaf_psc_alpha`` or
``iaf_psc_delta``) simulated at resolution 0.1 ms with

* a ``multimeter`` recording ``V_m`` at every step (``interval`` 0.1 ms; the
  sample stamped ``t`` is the state at the end of the update step
  ``round(t/dt) - 1``, i.e. after time has advanced to ``t``);
* a ``spike_recorder`` (a spike stamped ``t`` was emitted in the update of
  step ``round(t/dt) - 1``);
* optionally constant current ``I_e`` (DC) and ``spike_generator`` inputs,
  each generator connected by one or more ``static_synapse`` connections
  (each with its own weight and delay; several identical connections, i.e.
  multapses, make a stronger input whose weights are summed in the ring
  buffer).

For ``iaf_psc_delta`` the connection weights are in mV, not pA: the membrane
potential jumps by the (summed) weight in the update step in which the spike
arrives, before the threshold is checked in that step; spikes arriving while
the neuron is refractory are discarded (NEST defaults ``refractory_input =
False`` and ``V_min = -DBL_MAX`` are kept, neither is set nor recorded).
``iaf_psc_delta`` has no synaptic time constants: ``tau_syn_ex`` and
``tau_syn_in`` in its files are placeholders (2.0 ms, the default of the other
models) that keep the layout the same; they are not passed to NEST.

JSON layout (one object per file)::

    nest_version, resolution_ms, tics_per_ms, min_delay_ms,
    scenario, description, model, t_sim_ms,
    params: {C_m, tau_m, tau_syn_ex, tau_syn_in, t_ref, E_L, V_th,
             V_reset, I_e, V_m}          # as read back from NEST; V_m = initial
                                         # (tau_syn_*: placeholders for iaf_psc_delta)
    inputs: [{spike_times: [ms], connections: [{weight: pA (mV for
              iaf_psc_delta), delay: ms, count: n}]}]
    v_m: {times: [ms], values: [mV]}    # every step in (0, t_sim]
    spike_times: [ms]                   # output spikes in (0, t_sim]

Floats are written with Python's ``repr`` (shortest round-trip), so the Rust
side reads back exactly NEST's doubles.
"""

import json
import os
import sys

import nest

DT = 0.1

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "data")

# NEST defaults of iaf_psc_exp and iaf_psc_alpha (NEST 3.10 model docs).
DEFAULTS = dict(
    C_m=250.0,
    tau_m=10.0,
    tau_syn_ex=2.0,
    tau_syn_in=2.0,
    t_ref=2.0,
    E_L=-70.0,
    V_th=-55.0,
    V_reset=-70.0,
    I_e=0.0,
    V_m=-70.0,
)

# Potjans & Diesmann (2014) microcircuit neuron (iaf_psc_exp).
MICROCIRCUIT = dict(
    C_m=250.0,
    tau_m=10.0,
    tau_syn_ex=0.5,
    tau_syn_in=0.5,
    t_ref=2.0,
    E_L=-65.0,
    V_th=-50.0,
    V_reset=-65.0,
    I_e=0.0,
    V_m=-58.0,
)

# Brunel (2000) balanced network as in NEST's hpc_benchmark (iaf_psc_alpha):
# tau_syn chosen so that the PSP rise time is 1.7 ms.
BALANCED = dict(
    C_m=250.0,
    tau_m=10.0,
    tau_syn_ex=0.32582722403722841,
    tau_syn_in=0.32582722403722841,
    t_ref=0.5,
    E_L=0.0,
    V_th=20.0,
    V_reset=0.0,
    I_e=0.0,
    V_m=5.0,
)


def burst(t0, n, isi):
    """n spike times starting at t0 with inter-spike interval isi (on the grid)."""
    return [round(t0 + k * isi, 10) for k in range(n)]


def spike_inputs(w_ex, w_in, burst_count):
    """The standard spike-input pattern of the brief.

    * single excitatory spikes at 10.0, 10.5, 30.0, 30.1, 50.0 ms, each
      through two connections with delays 1.5 ms and 0.1 ms (so some arrive
      in the same step as others);
    * single inhibitory spikes at 20.0, 40.0, 45.3 and 64.0 ms (the last one
      during the burst), delay 0.8 ms;
    * an excitatory burst (60.0 .. 69.8 ms every 0.2 ms) through
      ``burst_count`` parallel connections of weight ``w_ex`` and delay
      1.0 ms: strong enough to make the neuron fire repeatedly, so reset,
      refractoriness and input during refractoriness are exercised.
    """
    return [
        dict(
            spike_times=[10.0, 10.5, 30.0, 30.1, 50.0],
            connections=[dict(weight=w_ex, delay=1.5, count=1), dict(weight=w_ex, delay=0.1, count=1)],
        ),
        dict(spike_times=[20.0, 40.0, 45.3, 64.0], connections=[dict(weight=w_in, delay=0.8, count=1)]),
        dict(spike_times=burst(60.0, 50, 0.2), connections=[dict(weight=w_ex, delay=1.0, count=burst_count)]),
    ]


SCENARIOS = [
    dict(
        scenario="exp_default_dc",
        description="(a) iaf_psc_exp, NEST defaults, I_e = 376 pA (just above rheobase 375 pA): regular firing",
        model="iaf_psc_exp",
        params=dict(DEFAULTS, I_e=376.0),
        t_sim=200.0,
        inputs=[],
    ),
    dict(
        scenario="exp_microcircuit_spikes",
        description="(b) iaf_psc_exp, microcircuit params, I_e = 0, spike_generator input 87.8 / -351.2 pA",
        model="iaf_psc_exp",
        params=dict(MICROCIRCUIT),
        t_sim=100.0,
        inputs=spike_inputs(87.8, -351.2, 10),
    ),
    dict(
        scenario="exp_default_spikes",
        description="iaf_psc_exp, NEST defaults, spike_generator input 87.8 / -351.2 pA",
        model="iaf_psc_exp",
        params=dict(DEFAULTS),
        t_sim=100.0,
        inputs=spike_inputs(87.8, -351.2, 3),
    ),
    dict(
        scenario="alpha_default_dc",
        description="(c) iaf_psc_alpha, NEST defaults, I_e = 376 pA: regular firing",
        model="iaf_psc_alpha",
        params=dict(DEFAULTS, I_e=376.0),
        t_sim=200.0,
        inputs=[],
    ),
    dict(
        scenario="alpha_balanced_spikes",
        description="(c) iaf_psc_alpha, balanced-network params, spike_generator input 45.6 / -228.0 pA",
        model="iaf_psc_alpha",
        params=dict(BALANCED),
        t_sim=100.0,
        inputs=spike_inputs(45.6, -228.0, 10),
    ),
    dict(
        scenario="alpha_default_spikes",
        description="(c) iaf_psc_alpha, NEST defaults, spike_generator input 45.6 / -228.0 pA",
        model="iaf_psc_alpha",
        params=dict(DEFAULTS),
        t_sim=100.0,
        inputs=spike_inputs(45.6, -228.0, 4),
    ),
    dict(
        scenario="exp_degenerate_tau",
        description=(
            "(d) iaf_psc_exp with tau_syn_ex == tau_m = 10 ms (singular propagator), "
            "DC I_e = 300 pA plus spike input 87.8 / -351.2 pA"
        ),
        model="iaf_psc_exp",
        params=dict(DEFAULTS, tau_syn_ex=10.0, I_e=300.0),
        t_sim=100.0,
        inputs=spike_inputs(87.8, -351.2, 2),
    ),
    dict(
        scenario="alpha_degenerate_tau",
        description=(
            "iaf_psc_alpha with tau_syn_ex == tau_m = 10 ms (singular P31, P32) and "
            "tau_syn_in = tau_m + 1e-9 ms (regular P32, singular P31), DC I_e = 300 pA plus spike input"
        ),
        model="iaf_psc_alpha",
        params=dict(DEFAULTS, tau_syn_ex=10.0, tau_syn_in=10.000000001, I_e=300.0),
        t_sim=100.0,
        inputs=spike_inputs(45.6, -228.0, 2),
    ),
]

# iaf_psc_delta: NEST defaults (as iaf_psc_exp/alpha, no synaptic time
# constants; tau_syn_ex/in are written to the JSON as placeholders only).
DELTA_DEFAULTS = dict(DEFAULTS)

# iaf_psc_delta with the Potjans & Diesmann (2014) microcircuit neuron
# parameters (tau_syn placeholders 2.0 ms, not the microcircuit's 0.5 ms).
DELTA_MICROCIRCUIT = dict(MICROCIRCUIT, tau_syn_ex=2.0, tau_syn_in=2.0)


def delta_microcircuit_inputs():
    """Many inputs for the microcircuit-like iaf_psc_delta scenario (mV).

    The standard pattern of ``spike_inputs`` (+0.75 / -3.0 mV, burst through
    8 connections) plus
    * a dense excitatory train 75.0 .. 94.8 ms every 0.3 ms through 3
      connections of +1.25 mV, delay 1.0 ms, and 2 connections of +0.5 mV,
      delay 0.2 ms (each spike arrives in one step through the 2 short
      connections and 0.8 ms later in one step through the 3 long ones);
    * an inhibitory train 76.1 .. 92.1 ms every 2.0 ms, -2.5 mV, delay 0.1 ms,
      some of whose spikes (76.2 + 2 j ms for j = 1, 2, 4, 5, 7, 8) arrive in
      the same step as spikes of the dense train.
    All weights have few binary digits, so 23 fraction bits hold them exactly.
    """
    return spike_inputs(0.75, -3.0, 8) + [
        dict(
            spike_times=burst(75.0, 67, 0.3),
            connections=[dict(weight=1.25, delay=1.0, count=3), dict(weight=0.5, delay=0.2, count=2)],
        ),
        dict(spike_times=burst(76.1, 9, 2.0), connections=[dict(weight=-2.5, delay=0.1, count=1)]),
    ]


DELTA_SCENARIOS = [
    dict(
        scenario="delta_default_dc",
        description="iaf_psc_delta, NEST defaults, V_m(0) = -60 mV, I_e = 400 pA (rheobase 375 pA): regular firing",
        model="iaf_psc_delta",
        params=dict(DELTA_DEFAULTS, I_e=400.0, V_m=-60.0),
        t_sim=200.0,
        inputs=[],
    ),
    dict(
        scenario="delta_default_spikes",
        description=(
            "iaf_psc_delta, NEST defaults, I_e = 300 pA (below rheobase), "
            "spike_generator input +1.5 / -2.25 mV (burst through 2 connections)"
        ),
        model="iaf_psc_delta",
        params=dict(DELTA_DEFAULTS, I_e=300.0),
        t_sim=100.0,
        inputs=spike_inputs(1.5, -2.25, 2),
    ),
    dict(
        scenario="delta_microcircuit_spikes",
        description=(
            "iaf_psc_delta, microcircuit params, I_e = 0, many spike_generator inputs "
            "+0.75 / +1.25 / +0.5 / -3.0 / -2.5 mV, several in the same step"
        ),
        model="iaf_psc_delta",
        params=dict(DELTA_MICROCIRCUIT),
        t_sim=100.0,
        inputs=delta_microcircuit_inputs(),
    ),
]

SCENARIOS += DELTA_SCENARIOS

PARAM_KEYS = ["C_m", "tau_m", "tau_syn_ex", "tau_syn_in", "t_ref", "E_L", "V_th", "V_reset", "I_e", "V_m"]

# Keys NEST's iaf_psc_delta does not have: written as placeholders.
DELTA_PLACEHOLDERS = dict(tau_syn_ex=2.0, tau_syn_in=2.0)


def run(sc):
    nest.ResetKernel()
    nest.set(resolution=DT, local_num_threads=1, print_time=False)
    if sc["model"] == "iaf_psc_delta":
        for k, v in DELTA_PLACEHOLDERS.items():
            assert sc["params"][k] == v, (sc["scenario"], k)
        neuron = nest.Create(sc["model"], params={k: v for k, v in sc["params"].items() if k not in DELTA_PLACEHOLDERS})
        # NEST defaults kept: no lower bound, input during refractoriness discarded.
        assert neuron.get("V_min") == -sys.float_info.max, (sc["scenario"], neuron.get("V_min"))
        assert neuron.get("refractory_input") is False, sc["scenario"]
        assert neuron.get("ignore_and_spike") is False, sc["scenario"]
        # Initial state as NEST holds it (before any update).
        params = {k: DELTA_PLACEHOLDERS[k] if k in DELTA_PLACEHOLDERS else float(neuron.get(k)) for k in PARAM_KEYS}
    else:
        neuron = nest.Create(sc["model"], params=sc["params"])
        # Initial state as NEST holds it (before any update).
        params = {k: float(neuron.get(k)) for k in PARAM_KEYS}
    for k in PARAM_KEYS:
        assert params[k] == sc["params"][k], (sc["scenario"], k, params[k], sc["params"][k])

    mm = nest.Create("multimeter", params={"interval": DT, "record_from": ["V_m"]})
    sr = nest.Create("spike_recorder")
    nest.Connect(mm, neuron)
    nest.Connect(neuron, sr)
    for inp in sc["inputs"]:
        gen = nest.Create("spike_generator", params={"spike_times": inp["spike_times"]})
        for c in inp["connections"]:
            for _ in range(c["count"]):
                nest.Connect(gen, neuron, syn_spec={"synapse_model": "static_synapse", "weight": c["weight"], "delay": c["delay"]})

    t_sim = sc["t_sim"]
    # The multimeter hands over the samples of the last min-delay slice only
    # at the next slice: simulate a little longer and cut at t_sim.
    min_delay = nest.GetKernelStatus("min_delay")
    nest.Simulate(t_sim + 2.0 * max(min_delay, 1.0))

    ev = mm.events
    times = [float(t) for t in ev["times"]]
    values = [float(v) for v in ev["V_m"]]
    keep = [i for i, t in enumerate(times) if t <= t_sim + 1e-9]
    times = [times[i] for i in keep]
    values = [values[i] for i in keep]
    n_steps = int(round(t_sim / DT))
    assert len(times) == n_steps, (sc["scenario"], len(times), n_steps)
    for k, t in enumerate(times):
        assert abs(t - (k + 1) * DT) < 1e-9, (sc["scenario"], k, t)
    spikes = sorted(float(t) for t in sr.events["times"] if t <= t_sim + 1e-9)

    return dict(
        nest_version=nest.__version__,
        resolution_ms=float(nest.GetKernelStatus("resolution")),
        tics_per_ms=float(nest.GetKernelStatus("tics_per_ms")),
        min_delay_ms=float(min_delay),
        scenario=sc["scenario"],
        description=sc["description"],
        model=sc["model"],
        t_sim_ms=t_sim,
        params=params,
        inputs=sc["inputs"],
        v_m=dict(times=times, values=values),
        spike_times=spikes,
    )


def main():
    if not nest.__version__.startswith("3.10"):
        print(f"warning: expected NEST 3.10, found {nest.__version__}", file=sys.stderr)
    os.makedirs(OUT_DIR, exist_ok=True)
    for sc in SCENARIOS:
        data = run(sc)
        path = os.path.join(OUT_DIR, sc["scenario"] + ".json")
        with open(path, "w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.write("\n")
        print(f"{sc['scenario']}: {len(data['spike_times'])} spikes {data['spike_times'][:8]} -> {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
