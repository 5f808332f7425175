#!/usr/bin/env python3
"""Simulate an snn SONATA export in NEST 3.10 and print what NEST records,
for tests/nest_identity.rs.

Usage: nest_identity.py CIRCUIT_DIR INITIAL_STATE T_SIM_MS VM_NEURONS [NEST_RUN_DIR]

CIRCUIT_DIR is what `snn-build export` wrote, INITIAL_STATE the report of
`snn-sim --initial-state` (the initial V_m of every neuron for the run's
seed), VM_NEURONS a JSON list of [population, node id] whose V_m is
recorded at every step. NEST's PyPI build has no HDF5 support, so the
circuit is read with h5py and built with Create / Connect from its arrays:
one NEST population per node population (model and parameters from
node_types.csv and the parameter files), V_m set from INITIAL_STATE, one
one_to_one Connect of arrays per edge population (weights and delays as
stored). No random numbers are drawn: the network must be driven by DC
only (I_e).

With NEST_RUN_DIR, the spike recorders' events are also saved there as
`snn-analyze` reads NEST output: `events.npz` (numpy.savez of senders and
times) and `summary.json` (the populations' names, sizes and first node
ids, and the window).

Prints JSON: {"spikes": {population: [[node id, time ms], ...]},
"vm": [[population, node id, [values (repr)]], ...]}, both up to T_SIM_MS.
"""

import csv
import json
import os
import sys

import h5py
import nest
import numpy as np


def main():
    circuit, initial, t_sim, vm_neurons = sys.argv[1], sys.argv[2], float(sys.argv[3]), json.loads(sys.argv[4])
    with open(os.path.join(circuit, "circuit_config.json")) as f:
        cfg = json.load(f)
    dt = cfg["snn"]["dt_ms"]
    net = os.path.join(circuit, "network")
    models = os.path.join(circuit, "components", "point_neuron_models")
    nest.ResetKernel()
    nest.set(resolution=dt, local_num_threads=1, print_time=False)
    with open(os.path.join(net, "node_types.csv")) as f:
        types = {row["pop_name"]: row for row in csv.DictReader(f, delimiter=" ")}
    pops = {}
    with h5py.File(os.path.join(net, "nodes.h5"), "r") as f, h5py.File(initial, "r") as init:
        for name in f["nodes"]:
            n = len(f["nodes"][name]["node_type_id"])
            t = types[name]
            if t["model_type"] != "point_neuron":
                raise SystemExit(f"{name}: {t['model_type']} nodes are not supported here")
            model = t["model_template"].split(":", 1)[1]
            with open(os.path.join(models, t["dynamics_params"])) as p:
                params = json.load(p)
            nodes = nest.Create(model, n, params=params)
            v0 = init["report"][name]["data"][0, :]
            ids = init["report"][name]["mapping"]["node_ids"][:]
            assert np.array_equal(ids, np.arange(n)), name
            nodes.V_m = v0.tolist()
            pops[name] = nodes
    with h5py.File(os.path.join(net, "edges.h5"), "r") as f:
        for name in f["edges"]:
            g = f["edges"][name]
            src_pop = g["source_node_id"].attrs["node_population"]
            tgt_pop = g["target_node_id"].attrs["node_population"]
            src = g["source_node_id"][:].astype(np.int64) + pops[src_pop][0].global_id
            tgt = g["target_node_id"][:].astype(np.int64) + pops[tgt_pop][0].global_id
            nest.Connect(
                src,
                tgt,
                conn_spec="one_to_one",
                syn_spec={
                    "synapse_model": "static_synapse",
                    "weight": g["0"]["syn_weight"][:],
                    "delay": g["0"]["delay"][:],
                },
            )
    rec = {}
    for name, nodes in pops.items():
        r = nest.Create("spike_recorder")
        nest.Connect(nodes, r)
        rec[name] = r
    meters = []
    for name, i in vm_neurons:
        m = nest.Create("multimeter", params={"record_from": ["V_m"], "interval": dt})
        nest.Connect(m, pops[name][i])
        meters.append((name, i, m))
    # One step more, so that the multimeter takes the sample stamped t_sim
    # (the state after the last step of the run); what comes after t_sim is
    # dropped.
    nest.Simulate(t_sim + dt)
    end = t_sim + 0.5 * dt
    out = {"spikes": {}, "vm": []}
    for name, r in rec.items():
        ev = r.events
        first = pops[name][0].global_id
        out["spikes"][name] = [
            [int(s) - first, repr(float(t))] for s, t in zip(ev["senders"], ev["times"]) if t < end
        ]
    if len(sys.argv) > 5:
        run_dir = sys.argv[5]
        os.makedirs(run_dir, exist_ok=True)
        senders, times = [], []
        for name, r in rec.items():
            ev = r.events
            keep = ev["times"] < end
            senders.append(ev["senders"][keep])
            times.append(ev["times"][keep])
        np.savez(os.path.join(run_dir, "events.npz"), senders=np.concatenate(senders), times=np.concatenate(times))
        with open(os.path.join(run_dir, "summary.json"), "w") as f:
            json.dump(
                {
                    "populations": [
                        {"name": name, "size": len(nodes), "first_id": nodes[0].global_id}
                        for name, nodes in pops.items()
                    ],
                    "t_start_ms": 0.0,
                    "t_stop_ms": t_sim,
                },
                f,
            )
    for name, i, m in meters:
        ev = m.events
        out["vm"].append([name, i, [repr(float(v)) for v, t in zip(ev["V_m"], ev["times"]) if t < end]])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
