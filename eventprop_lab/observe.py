"""What a training run reports while it runs: observations handed to observers (callbacks).

An observation is one of four typed records: BatchRecord, EpochRecord, ProbeRecord, EventRecord,
each with `kind` ("batch", "epoch", "probe", "event") as a class constant for dispatch, so a metrics
file, a progress bar, a notebook or the dashboard can subscribe without the training loop knowing
about them. Records are frozen and made by keyword: a misspelt field where one is made raises
TypeError, instead of handing on a key that no reader looks for. In the metrics file a record is
one JSON object, {"kind": ..., field: value, ...}, with the fields that are None left out: the
files are as they were when observations were dicts, so old run folders and new ones read alike."""
import functools
import json
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Optional, Union

import numpy as np

from .network import atomic_write

_record = dataclass(frozen=True, slots=True, kw_only=True)


@functools.cache
def _names(cls):
    return tuple(f.name for f in fields(cls))


class _Record:
    __slots__ = ()
    kind: ClassVar[str]

    def to_dict(self):
        """{field: value} of the fields that are not None; the values are shared, not copied."""
        return {name: v for name in _names(type(self)) if (v := getattr(self, name)) is not None}

    @classmethod
    def from_dict(cls, d):
        """The record of a dict as to_dict or a metrics file gives it; fields it lacks are None.
        Other keys are dropped, so that a file of another version of this code still reads."""
        return cls(**{name: d.get(name) for name in _names(cls)})


@_record
class BatchRecord(_Record):
    """One trained batch (the order of the fields is that of the metrics file's keys)."""

    kind: ClassVar[str] = "batch"
    epoch: int  # counted from 1: the epoch this batch belongs to
    batch: int  # counted from 1 within the epoch
    n_batches: int
    step: int  # batches trained in the run so far, this one included
    lr: float
    samples_per_s: float
    loss_name: str
    loss: float
    accuracy: float
    rate_hz: float
    silent_fraction: float
    grad_norm: float  # before clipping
    grad_scale: float
    # {weight name: [5th, 25th, 50th, 75th, 95th percentile]}, on probe steps only: batch records
    # are kept far longer than probes, so a page opened late still draws the weights' history
    weight_percentiles: Optional[dict] = None


@_record
class EpochRecord(_Record):
    """One finished epoch (the fields in the order of the metrics file's keys)."""

    kind: ClassVar[str] = "epoch"
    epoch: int
    step: int
    train_loss: float
    train_accuracy: float
    train_samples: int
    skipped_batches: int  # non-finite ones
    train_rate_hz: float
    train_silent_fraction: float
    lr: float
    validation_loss: Optional[float] = None  # the validation_* fields: None when the run has no validation set
    validation_accuracy: Optional[float] = None
    validation_rate_hz: Optional[float] = None
    validation_silent_fraction: Optional[float] = None
    validation_seconds: Optional[float] = None
    train_seconds: float
    epoch_seconds: float
    wall_s: float


_PROBE_ARRAYS = ("input_times", "input_channels", "hidden_times", "hidden_ids", "transported", "readout_v",
                 "lambda_v_out", "lambda_i_out", "lambda_v", "lambda_i", "w_out")


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ProbeRecord(_Record):
    """The quantities of the paper's Fig. 3 for one sample of a batch (probe_data). Large arrays:
    kept for live views, never in the metrics file. Compared by identity (arrays have no ==)."""

    kind: ClassVar[str] = "probe"
    input_times: Any
    input_channels: Any
    hidden_times: Any
    hidden_ids: Any
    transported: Any  # per hidden spike: what the adjoint moved through it
    readout_v: Any  # (time, readout)
    lambda_v_out: Any
    lambda_i_out: Any
    lambda_v: Any
    lambda_i: Any
    dt: float
    label: Optional[int] = None
    weight_histograms: Optional[dict] = None  # {weight name: {"counts", "edges", "percentiles"}}
    w_out: Any = None  # (hidden, readout): who feeds the correct class
    epoch: Optional[int] = None
    step: Optional[int] = None

    @classmethod
    def from_dict(cls, d):
        """As _Record.from_dict, with the arrays that JSON made lists arrays again."""
        d = {k: np.asarray(v) if k in _PROBE_ARRAYS and v is not None else v for k, v in d.items()}
        if d.get("weight_histograms") is not None:
            d["weight_histograms"] = {name: {k: np.asarray(v) for k, v in h.items()}
                                      for name, h in d["weight_histograms"].items()}
        return _Record.from_dict.__func__(cls, d)  # not super(), as in EventRecord.to_dict


@_record
class EventRecord(_Record):
    """Something that happened to the run: its start or resume, a change of a setting, an undo, a
    branch, a skipped batch, an error. Those with a label are drawn as markers on the curves.

    `extra` holds what one kind of event alone carries: the config of "start", the changes of
    "settings" and "branch", the old and new value of a setting's change (whose `what` is the
    setting's command), the checkpoint of "resume", ... As fields, the seventeen keys that each
    belong to one kind of event would bury the six that readers use; the price is that extra's
    keys, unlike the fields, are not checked. In the metrics file they stand beside the fields."""

    kind: ClassVar[str] = "event"
    what: str
    epoch: Optional[int] = None
    step: Optional[int] = None
    batch: Optional[int] = None
    message: Optional[str] = None  # for a person to read: what happened and why
    label: Optional[str] = None  # the marker's text on the curves
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        shadowed = [k for k in self.extra if k in _names(EventRecord) or k == "kind"]
        if shadowed:  # both would be one key in the metrics file
            raise TypeError(f"EventRecord extra keys {shadowed} are fields: pass them as fields")

    def to_dict(self):
        out = _Record.to_dict(self)  # not super(): a slots dataclass is a new class, which it misses
        del out["extra"]
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, d):
        names = _names(cls)
        return cls(**{name: d.get(name) for name in names if name != "extra"},
                   extra={k: v for k, v in d.items() if k not in names and k != "kind"})


Observation = Union[BatchRecord, EpochRecord, ProbeRecord, EventRecord]
RECORDS = {cls.kind: cls for cls in (BatchRecord, EpochRecord, ProbeRecord, EventRecord)}


def to_json(record):
    """One line of a metrics file: the record as a JSON object with its kind."""
    return json.dumps({"kind": record.kind, **_jsonable(record.to_dict())})


def from_json(d):
    """The record of a metrics file's line (its text, or the dict json.loads made of it)."""
    if isinstance(d, (str, bytes)):
        d = json.loads(d)
    try:
        cls = RECORDS[d["kind"]]
    except KeyError:
        raise ValueError(f"not an observation record (kind {d.get('kind')!r}): {str(d)[:200]}") from None
    return cls.from_dict(d)


def probe_data(result, batch_samples, params, sample=0):
    """The quantities of the paper's Fig. 3 for one probed sample of a step result (a dict with
    the fields of a ProbeRecord but epoch and step)."""
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
    """Appends batch, epoch and event records to a JSON-lines file, one whole line per write."""

    def __init__(self, path):
        self.path = path
        self._f = open(path, "a", encoding="utf-8")

    def __call__(self, obs: Observation):
        if obs.kind == "probe":
            return  # large arrays: kept for live views, not in the metrics file
        self._f.write(to_json(obs) + "\n")
        self._f.flush()

    def close(self):
        self._f.close()


def read_metrics(path):
    """The lines of a metrics file as dicts; a torn last line (a crash mid-write) is ignored."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return out


def read_records(path):
    """The records of a metrics file, as the run emitted them (read_metrics, typed)."""
    return [from_json(d) for d in read_metrics(path)]


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
