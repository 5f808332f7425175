"""Spike files written by BMTK itself, from an snn run, for tests/bmtk_spikes.rs.

Usage: bmtk_spikes.py RUN OUT SILENT_POP

Reads every spike file of the snn run RUN (spikes-rank-*.h5, SONATA layout)
with BMTK's own reader (bmtk.utils.reports.spike_trains.SpikeTrains), merges
them, and writes them back with BMTK's own writer (SpikeTrains.to_sonata, as
BMTK's simulators do: int64 node ids, gzip, a `sorting` attribute) into
OUT/<order>/spikes.h5 for each of BMTK's sort orders (by_id, by_time, none),
with a summary.json beside each that gives the populations' sizes (SONATA
spike files carry none). Prints JSON: the spike count per population as BMTK
read it, and the layout BMTK wrote (dtypes, compression, sorting). OUT/silent
holds the same spikes but none of population SILENT_POP, as BMTK writes a
population without spikes.
"""

import glob
import json
import os
import sys

import h5py
import numpy as np
from bmtk.utils.reports.spike_trains import SpikeTrains, sort_order


def main():
    run, out, silent = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(os.path.join(run, "summary.json")) as f:
        summary = json.load(f)
    files = sorted(glob.glob(os.path.join(run, "spikes-rank-*.h5")))
    if not files:
        sys.exit(f"no spike files in {run}")

    merged = {}
    for path in files:
        st = SpikeTrains.load(path)
        for pop in st.populations:
            df = st.to_dataframe(populations=pop)
            ids, ts = merged.setdefault(pop, ([], []))
            ids.append(df["node_ids"].to_numpy(dtype=np.int64))
            ts.append(df["timestamps"].to_numpy(dtype=np.float64))
    counts = {}
    orders = {"by_id": sort_order.by_id, "by_time": sort_order.by_time, "none": sort_order.none}
    layout = {}
    for name, order in orders.items():
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        writer = SpikeTrains(default_population=None)
        for pop, (ids, ts) in sorted(merged.items()):
            ids, ts = np.concatenate(ids), np.concatenate(ts)
            counts[pop] = int(len(ids))
            writer.add_spikes(node_ids=ids, timestamps=ts, population=pop)
        writer.to_sonata(os.path.join(d, "spikes.h5"), sort_order=order)
        with open(os.path.join(d, "summary.json"), "w") as f:
            json.dump(
                {
                    "populations": [
                        {"name": p["name"], "size": p["size"]} for p in summary["populations"]
                    ],
                    "t_start_ms": summary.get("t_start_ms", 0.0),
                    "t_stop_ms": summary["t_stop_ms"],
                    "spike_files": ["spikes.h5"],
                },
                f,
            )
        with h5py.File(os.path.join(d, "spikes.h5"), "r") as h:
            for pop in h["spikes"]:
                g = h["spikes"][pop]
                sorting = g.attrs.get("sorting")
                if isinstance(sorting, bytes):
                    sorting = sorting.decode()
                layout.setdefault(name, {})[pop] = {
                    "node_ids": str(g["node_ids"].dtype),
                    "timestamps": str(g["timestamps"].dtype),
                    "compression": g["timestamps"].compression,
                    "sorting": sorting,
                }
    # A population without spikes, as BMTK writes it (its node ids float64).
    d = os.path.join(out, "silent")
    os.makedirs(d, exist_ok=True)
    writer = SpikeTrains(default_population=None)
    for pop, (ids, ts) in sorted(merged.items()):
        if pop == silent:
            ids, ts = [np.array([], dtype=np.int64)], [np.array([], dtype=np.float64)]
        writer.add_spikes(node_ids=np.concatenate(ids), timestamps=np.concatenate(ts), population=pop)
    writer.to_sonata(os.path.join(d, "spikes.h5"), sort_order=sort_order.by_time)
    with open(os.path.join(out, "by_time", "summary.json")) as f:
        s = f.read()
    with open(os.path.join(d, "summary.json"), "w") as f:
        f.write(s)
    with h5py.File(os.path.join(d, "spikes.h5"), "r") as h:
        layout["silent"] = {silent: {"node_ids": str(h["spikes"][silent]["node_ids"].dtype)}}
    print(json.dumps({"counts": counts, "layout": layout}))


if __name__ == "__main__":
    main()
