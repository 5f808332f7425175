"""A point-neuron network built by BMTK's own NetworkBuilder, for
tests/sonata_import.rs.

Usage: bmtk_network.py OUT

Writes into OUT a SONATA circuit as a BMTK user makes one: two node
populations (`cortex`: 80 nest:iaf_psc_exp with V_m and I_e in their
dynamics_params; `inh`: 20 nest:iaf_psc_alpha), three edge populations with
syn_weight and delay in edge_types.csv, and per-edge nsyns (0-2 per pair
from a seeded connection rule), BMTK's files (*_nodes.h5, *_node_types.csv,
*_edges.h5, *_edge_types.csv), and a circuit_config.json naming them. Then
reads the edges back with h5py and the edge types CSVs with pandas and writes
OUT/expected.csv: per edge `source,target,weight_pA,delay_ms` with node ids
global in snn's order (populations sorted by name: cortex 0-79, inh 80-99)
and the weight BMTK's PointNet gives a connection, nsyns * syn_weight.
"""

import json
import os
import sys

import h5py
import numpy as np
import pandas as pd
from bmtk.builder import NetworkBuilder


def main():
    out = sys.argv[1]
    comp = os.path.join(out, "components", "point_neuron_models")
    os.makedirs(comp, exist_ok=True)
    with open(os.path.join(comp, "exc.json"), "w") as f:
        json.dump({"C_m": 250.0, "tau_m": 10.0, "E_L": -65.0, "V_th": -50.0,
                   "V_reset": -65.0, "t_ref": 2.0, "tau_syn_ex": 0.5,
                   "tau_syn_in": 0.5, "I_e": 380.0, "V_m": -60.0}, f)
    with open(os.path.join(comp, "inh.json"), "w") as f:
        json.dump({"C_m": 250.0, "tau_m": 10.0, "E_L": -65.0, "V_th": -50.0,
                   "V_reset": -65.0, "t_ref": 2.0, "I_e": 390.0}, f)
    rng = np.random.default_rng(5)
    cortex = NetworkBuilder("cortex")
    cortex.add_nodes(N=80, model_type="point_neuron", model_template="nest:iaf_psc_exp",
                     dynamics_params="exc.json", ei="e")
    inh = NetworkBuilder("inh")
    inh.add_nodes(N=20, model_type="point_neuron", model_template="nest:iaf_psc_alpha",
                  dynamics_params="inh.json", ei="i")

    def recurrent(s, t):
        return 0 if s.node_id == t.node_id else int(rng.integers(0, 3))

    cortex.add_edges(source=cortex.nodes(), target=cortex.nodes(), connection_rule=recurrent,
                     syn_weight=20.0, delay=1.5, model_template="static_synapse")
    cortex.add_edges(source=cortex.nodes(), target=inh.nodes(),
                     connection_rule=lambda s, t: int(rng.random() < 0.3),
                     syn_weight=30.0, delay=0.8, model_template="static_synapse")
    inh.add_edges(source=inh.nodes(), target=cortex.nodes(),
                  connection_rule=lambda s, t: int(rng.random() < 0.4),
                  syn_weight=-60.0, delay=1.0, model_template="static_synapse")
    net_dir = os.path.join(out, "network")
    for n in (cortex, inh):
        n.build()
        n.save(output_dir=net_dir)

    pairs = [("cortex", "cortex"), ("cortex", "inh"), ("inh", "cortex")]
    config = {
        "manifest": {"$BASE_DIR": ".", "$NETWORK_DIR": "$BASE_DIR/network",
                     "$COMPONENTS_DIR": "$BASE_DIR/components"},
        "components": {"point_neuron_models_dir": "$COMPONENTS_DIR/point_neuron_models"},
        "networks": {
            "nodes": [{"nodes_file": f"$NETWORK_DIR/{p}_nodes.h5",
                       "node_types_file": f"$NETWORK_DIR/{p}_node_types.csv"}
                      for p in ("cortex", "inh")],
            "edges": [{"edges_file": f"$NETWORK_DIR/{s}_{t}_edges.h5",
                       "edge_types_file": f"$NETWORK_DIR/{s}_{t}_edge_types.csv"}
                      for s, t in pairs],
        },
    }
    with open(os.path.join(out, "circuit_config.json"), "w") as f:
        json.dump(config, f, indent=2)

    first = {"cortex": 0, "inh": 80}
    rows = []
    for s, t in pairs:
        types = pd.read_csv(os.path.join(net_dir, f"{s}_{t}_edge_types.csv"), sep=" ")
        types = types.set_index("edge_type_id")
        with h5py.File(os.path.join(net_dir, f"{s}_{t}_edges.h5"), "r") as h:
            g = h["edges"][f"{s}_to_{t}"]
            src = g["source_node_id"][()]
            tgt = g["target_node_id"][()]
            tid = g["edge_type_id"][()]
            nsyns = g["0"]["nsyns"][()] if "nsyns" in g["0"] else np.ones(len(src))
        for e in range(len(src)):
            ty = types.loc[int(tid[e])]
            rows.append((first[s] + int(src[e]), first[t] + int(tgt[e]),
                         float(nsyns[e]) * float(ty["syn_weight"]), float(ty["delay"])))
    with open(os.path.join(out, "expected.csv"), "w") as f:
        f.write("source,target,weight_pA,delay_ms\n")
        for r in rows:
            f.write(f"{r[0]},{r[1]},{r[2]!r},{r[3]!r}\n")
    print(len(rows))


if __name__ == "__main__":
    main()
