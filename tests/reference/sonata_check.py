#!/usr/bin/env python3
"""Read an snn SONATA export with independent readers (libsonata and
bluepysnap) and print what they see as JSON, for tests/sonata_export.rs.

Usage: sonata_check.py CIRCUIT_CONFIG [--edges]

Prints {"nodes": {population: count}, "node_types": {population: [model_type,
model_template]}, "edge_counts": {population: count}, "edges": [[source_pop,
source_id, target_pop, target_id, syn_weight, delay], ...] (with --edges),
"validator": [[level, message], ...]} and checks, for every edge
population, that libsonata's indices agree with the edges themselves: the
afferent edges of every target node and the efferent edges of every source
node are exactly those whose target / source it is (an AssertionError
otherwise). Weights and delays are printed with repr, so the Rust side reads
back the exact doubles.
"""

import json
import sys

import bluepysnap
import libsonata
import numpy as np
from bluepysnap.circuit_validation import validate


def main():
    config = sys.argv[1]
    with_edges = "--edges" in sys.argv[2:]
    circuit = bluepysnap.Circuit(config)
    out = {"nodes": {}, "node_types": {}, "edge_counts": {}, "edges": []}
    for name in circuit.nodes.population_names:
        pop = circuit.nodes[name]
        out["nodes"][name] = int(pop.size)
        props = pop.get(properties=["model_type"])
        out["node_types"][name] = sorted(set(props["model_type"].astype(str)))
    cfg = libsonata.CircuitConfig.from_file(config)
    for name in sorted(cfg.edge_populations):
        pop = cfg.edge_population(name)
        n = pop.size
        out["edge_counts"][name] = int(n)
        sel = libsonata.Selection([(0, n)])
        src = pop.source_nodes(sel)
        tgt = pop.target_nodes(sel)
        w = pop.get_attribute("syn_weight", sel)
        d = pop.get_attribute("delay", sel)
        # The indices against the edges (libsonata reads them).
        for ids, side in ((tgt, "afferent"), (src, "efferent")):
            order = np.argsort(ids, kind="stable")
            nodes, starts = np.unique(ids[order], return_index=True)
            bounds = list(starts) + [len(ids)]
            for k, node in enumerate(nodes):
                want = order[bounds[k]:bounds[k + 1]]
                if side == "afferent":
                    got = pop.afferent_edges([int(node)]).flatten()
                else:
                    got = pop.efferent_edges([int(node)]).flatten()
                assert np.array_equal(np.sort(got), np.sort(want)), (name, side, int(node))
        if with_edges:
            for i in range(n):
                out["edges"].append(
                    [pop.source, int(src[i]), pop.target, int(tgt[i]), repr(float(w[i])), repr(float(d[i]))]
                )
    errors = validate(config, skip_slow=False, print_errors=False)
    out["validator"] = sorted([str(e.level), e.message] for e in errors)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
