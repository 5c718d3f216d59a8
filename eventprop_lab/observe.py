"""What a training run reports while it runs: observations handed to observers (callbacks).

An observation is a kind ("batch", "probe", "epoch", "event") and a dict of plain values, so a
metrics file, a progress bar, a notebook or the dashboard can subscribe without the training
loop knowing about them."""
import json
from typing import NamedTuple

import numpy as np

from .network import atomic_write


class Observation(NamedTuple):
    kind: str  # "batch" | "probe" | "epoch" | "event"
    data: dict


def probe_data(result, batch_samples, params, sample=0):
    """The quantities of the paper's Fig. 3 for one probed sample of a step result."""
    rec, probe = result.record, result.probe
    slot = int(np.nonzero(probe.samples == sample)[0][0])
    n = int(rec.n_spikes[sample])
    times, channels = batch_samples[sample]
    return {
        "input_times": np.asarray(times), "input_channels": np.asarray(channels),
        "hidden_times": rec.spike_step[sample, :n] * rec.dt - rec.spike_lag[sample, :n],
        "hidden_ids": rec.spike_id[sample, :n].copy(),
        "transported": probe.transported[slot, :n].copy(),
        "readout_v": rec.mean_v[sample].copy(),
        "lambda_v_out": probe.lambda_v_out[slot].copy(), "lambda_i_out": probe.lambda_i_out[slot].copy(),
        "lambda_v": probe.lambda_v[slot].copy(), "lambda_i": probe.lambda_i[slot].copy(),
        "dt": rec.dt, "label": None, "weight_histograms": weight_histograms(params),
        "w_out": np.array(params.W_out, copy=True),  # (hidden, readout): who feeds the correct class
    }


def weight_histograms(params, bins=41):
    out = {}
    for name in ("W_in", "W_rec", "W_out"):
        w = getattr(params, name)
        if w is not None:
            counts, edges = np.histogram(w, bins=bins)
            out[name] = {"counts": counts, "edges": edges,
                         "percentiles": np.percentile(w, [5, 25, 50, 75, 95])}
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


class MetricsWriter:
    """Appends batch, epoch and event observations to a JSON-lines file, one whole line per write."""

    def __init__(self, path):
        self.path = path
        self._f = open(path, "a", encoding="utf-8")

    def __call__(self, obs: Observation):
        if obs.kind == "probe":
            return  # large arrays: kept for live views, not in the metrics file
        line = json.dumps({"kind": obs.kind, **_jsonable(obs.data)})
        self._f.write(line + "\n")
        self._f.flush()

    def close(self):
        self._f.close()


def read_metrics(path):
    """Records of a metrics file; a torn last line (a crash mid-write) is ignored."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return out


def truncate_metrics(path, last_epoch):
    """Keep only records up to the end of `last_epoch` (used on resume), rewritten atomically.
    Events stay: why a run stopped belongs in its history even though its epoch is trained again."""
    keep = [r for r in read_metrics(path) if r.get("kind") == "event" or r.get("epoch", 0) <= last_epoch]
    text = "".join(json.dumps(r) + "\n" for r in keep)
    atomic_write(path, lambda f: f.write(text.encode()))


def export_csv(metrics_path, csv_path, kind="epoch"):
    """Write the records of one kind as CSV (columns: the union of their keys), atomically."""
    import csv
    import io

    rows = [r for r in read_metrics(metrics_path) if r.get("kind") == kind]
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys and not isinstance(r[k], (dict, list))]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write(csv_path, lambda f: f.write(buf.getvalue().encode()))
    return len(rows)
