"""A whole training session as data that one file can carry: its curves (eventprop_lab/history.py),
its epochs, the markers of its changes, undos and branches, and a bounded set of its probes.

An exported page (app/replay.py) holds this as JSON in a
<script type="application/json" id="eventprop-replay"> block, so the page opens anywhere without
Python and `read_replay` reads the session back from it."""
import datetime
import json
import math
import os
import re
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from .history import FIELDS, LongHistory
from .observe import EpochRecord, EventRecord

FORMAT, VERSION = "eventprop-replay", 1
BLOCK_ID = "eventprop-replay"
MAX_PROBES = 50  # probes a file carries: evenly spaced over the run, and the newest
MAX_INPUT_POINTS = 3000  # input spikes kept per probe (every k-th beyond)
MAX_TRACE_POINTS = 500  # time points kept per readout trace
N_TOP = 5  # the most active hidden neurons, drawn in colour
DIGITS = 5  # significant digits of the numbers in a file
_BLOCK = re.compile(r'<script[^>]*\bid="' + BLOCK_ID + r'"[^>]*>(.*?)</script>', re.S | re.I)


class ReplayError(ValueError):
    """A file that is not a replay this version can read; the message says why, for the page."""


# ---- probes ------------------------------------------------------------------------------------
def _band(traces, label):
    """(correct, lo, hi) of (T, K) traces: the correct class, and the range of the others."""
    traces = traces if traces.ndim == 2 else traces[:, None]
    label = min(label, traces.shape[1] - 1)
    rest = np.delete(traces, label, axis=1)
    rest = rest if rest.shape[1] else traces[:, label:label + 1]
    return traces[:, label], rest.min(1), rest.max(1)


def replay_probe(p):
    """What a replay keeps of one probe (a ProbeRecord): the input and hidden rasters, the readout
    voltages and λ_V − λ_I (correct class, range of the others) over at most MAX_TRACE_POINTS
    times, the most active hidden neurons and the weight histograms."""
    label = int(p.label or 0)
    t_in, ch_in = np.asarray(p.input_times), np.asarray(p.input_channels)
    k_in = -(-len(t_in) // MAX_INPUT_POINTS) or 1  # ceil
    v = np.asarray(p.readout_v, float)
    diff = np.asarray(p.lambda_v_out, float) - np.asarray(p.lambda_i_out, float)
    every = -(-v.shape[0] // MAX_TRACE_POINTS) or 1
    v, diff = v[::every], diff[::every]
    ids = np.asarray(p.hidden_ids, int)
    counts = np.bincount(ids) if len(ids) else np.zeros(0, int)
    top = np.argsort(counts, kind="stable")[::-1][:N_TOP]
    v_correct, v_lo, v_hi = _band(v, label)
    d_correct, d_lo, d_hi = _band(diff, label)
    return {
        "step": p.step, "epoch": p.epoch, "label": label,
        "input_t": t_in[::k_in], "input_ch": ch_in[::k_in], "input_every": k_in, "input_total": len(t_in),
        "hidden_t": np.asarray(p.hidden_times, float), "hidden_id": ids,
        "top": top[counts[top] > 0],
        "trace_t": np.arange(0, len(p.readout_v), every) * float(p.dt),
        "v_correct": v_correct, "v_lo": v_lo, "v_hi": v_hi,
        "diff_correct": d_correct, "diff_lo": d_lo, "diff_hi": d_hi,
        "weights": {name: {"counts": np.asarray(h["counts"]), "edges": np.asarray(h["edges"]),
                           "percentiles": np.asarray(h["percentiles"])}
                    for name, h in (p.weight_histograms or {}).items()},
    }


class ProbeAlbum:
    """At most `capacity` replay probes of a session, evenly spaced over all it recorded, and the
    newest: every `stride`-th probe is kept, and when that is too many, every second one of them
    goes and the stride doubles. Fed from its own reader of the session's observations (update());
    a reset of the session starts it afresh. Thread-safe: every page of a shared run feeds it."""

    def __init__(self, buffer=None, capacity=MAX_PROBES):
        if capacity < 2:
            raise ValueError("an album keeps at least 2 probes")
        from .stream import Reader
        self.capacity = capacity
        self._reader = Reader(buffer) if buffer is not None else None
        self._lock = threading.Lock()
        self.clear()

    def clear(self):
        self._kept, self._newest, self.seen, self.stride = [], None, 0, 1

    def add(self, probe):
        """One replay probe (replay_probe's dict), in the order they were recorded."""
        if self.seen % self.stride == 0:
            self._kept.append((self.seen, probe))
            if len(self._kept) > self.capacity - 1:  # a place stays for the newest
                self.stride *= 2
                self._kept = [(i, q) for i, q in self._kept if i % self.stride == 0]
        self._newest = (self.seen, probe)
        self.seen += 1

    def update(self):
        """Take in what the session recorded since the last update."""
        if self._reader is None:
            return
        with self._lock:
            observations = self._reader.poll(kinds=("probe",))
            if self._reader.cleared:
                self.clear()
            for obs in observations:
                self.add(replay_probe(obs))

    def probes(self):
        """The kept probes, oldest first, the newest last."""
        with self._lock:
            kept = list(self._kept)
            if self._newest is not None and (not kept or kept[-1][0] != self._newest[0]):
                kept.append(self._newest)
        return [p for _, p in kept]


_albums = weakref.WeakKeyDictionary()
_albums_lock = threading.Lock()


def album_for(session):
    """The one ProbeAlbum of a TrainingSession (shared by all the pages that show it)."""
    with _albums_lock:
        album = _albums.get(session)
        if album is None:
            album = _albums[session] = ProbeAlbum(session.buffer)
        return album


# ---- a session as replay data --------------------------------------------------------------------
def _scalars(record):
    return {k: v for k, v in record.to_dict().items()
            if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}


def session_replay(session, album=None, title="Eventprop Lab"):
    """The replay data of a TrainingSession as it is now (JSON-able with to_json)."""
    from .settings import SETTINGS
    album = album or album_for(session)
    album.update()
    probes = album.probes()
    history = session.history()
    settings = session.settings
    return {
        "format": FORMAT, "version": VERSION, "title": title,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "step": session.progress["step"],
        "settings": {k: SETTINGS[k].to_text(v) for k, v in settings.items() if k in SETTINGS},
        "curves": session.long_history.columns(),
        "curves_note": "every batch of the recent past; before it, means over blocks of batches",
        "epochs": [_scalars(o) for o in history if o.kind == "epoch"],
        "markers": [{"step": o.step, "label": o.label, "what": o.what}
                    for o in history if o.kind == "event" and o.label is not None],
        "probes": probes, "probes_seen": album.seen, "probes_stride": album.stride,
        "probes_note": (f"{len(probes)} of the {album.seen} probes recorded since the last reset: every "
                        f"{album.stride}{'st' if album.stride == 1 else 'th'} and the newest "
                        f"(a file keeps at most {album.capacity})"),
    }


def _plain(x):
    """JSON-able, numbers to DIGITS significant digits, NaN and infinities as null."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        x = x.tolist()
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(f"{x:.{DIGITS}g}") if math.isfinite(x) else None
    return x


def to_json(replay):
    """The replay as JSON text that may stand inside a <script> element."""
    return json.dumps(_plain(replay), separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def embed(page, replay):
    """An HTML page with the replay's JSON block added at the end of its body."""
    block = f'<script type="application/json" id="{BLOCK_ID}">{to_json(replay)}</script>\n'
    at = page.lower().rfind("</body>")
    return page[:at] + block + page[at:] if at >= 0 else page + block


# ---- reading a file back ---------------------------------------------------------------------------
@dataclass
class Replay:
    """A session read back from an exported file."""

    data: dict
    name: str = "replay"

    @property
    def probes(self):
        return self.data["probes"]

    def columns(self):
        """{field: array} of the curves, as session.long_history.columns() gave them."""
        curves = self.data["curves"]
        return {f: np.array([np.nan if v is None else v for v in curves.get(f, [])], float) for f in FIELDS}

    def long_history(self):
        """A LongHistory holding the curves (every point one 'batch', so columns() gives them back)."""
        columns = self.columns()
        n = len(columns["step"])
        history = LongHistory(recent=max(n, 1))
        for i in range(n):
            history.add({f: columns[f][i] for f in FIELDS})
        return history

    def observations(self):
        """The epochs and the markers as records, for the views that draw the live stream."""
        epochs = [EpochRecord.from_dict({k: np.nan if v is None else v for k, v in e.items()})
                  for e in self.data["epochs"]]
        markers = [EventRecord.from_dict(m) for m in self.data["markers"]]
        return sorted(epochs + markers, key=lambda o: o.step or 0)


def read_replay(source, name=None):
    """A Replay from an exported page: its bytes, its text, or a path. Raises ReplayError, saying
    what is wrong, for a file that is not such a page or is of another version."""
    if isinstance(source, (bytes, bytearray)):
        try:
            text = bytes(source).decode("utf-8")
        except UnicodeDecodeError:
            raise ReplayError("not an HTML file (not UTF-8 text): choose a replay exported by Eventprop Lab") from None
    elif isinstance(source, os.PathLike) or (isinstance(source, str) and "<" not in source[:1000]):
        with open(source, "rb") as f:
            return read_replay(f.read(), name or str(source))
    else:
        text = str(source)
    if not re.search(r"<html|<!doctype html", text[:4000], re.I):
        raise ReplayError("not an HTML file: choose a replay exported by Eventprop Lab (an .html file)")
    found = _BLOCK.search(text)
    if found is None:
        raise ReplayError(f"an HTML file without a replay in it (no {BLOCK_ID!r} JSON block): "
                          "not a file exported with “Export replay”")
    try:
        data = json.loads(found.group(1))
    except json.JSONDecodeError as exc:
        raise ReplayError(f"the replay in this file is damaged (not valid JSON: {exc.msg} at {exc.pos})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ReplayError(f"the block {BLOCK_ID!r} of this file is not an Eventprop Lab replay")
    if data.get("version") != VERSION:
        raise ReplayError(f"a replay of format version {data.get('version')!r}: this Eventprop Lab reads "
                          f"version {VERSION}")
    missing = [k for k in ("curves", "epochs", "markers", "probes") if not isinstance(data.get(k), (dict, list))]
    if missing:
        raise ReplayError(f"the replay in this file lacks its {', '.join(missing)}")
    return Replay(data, name or data.get("title") or "replay")
