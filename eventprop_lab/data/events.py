"""Spike data: tonic-style event arrays for single samples, and a compact dataset of many.

A sample's events follow tonic's conventions: a structured array with fields t (microseconds),
x (channel) and p (polarity, always 1 for audio-like spike data). A dataset keeps all samples
in one CSR block (times in ms as float32, channels as int16) so an SHD-sized set fits in memory
and batches are cut quickly."""

import numpy as np

EVENT_DTYPE = np.dtype([("t", "<f8"), ("x", "<i4"), ("p", "<i1")])


def make_events(times_ms, channels):
    """Structured event array (t in µs, tonic's unit) from times in ms and channel ids."""
    times_ms = np.asarray(times_ms, np.float64)
    events = np.empty(len(times_ms), EVENT_DTYPE)
    events["t"] = times_ms * 1000.0
    events["x"] = channels
    events["p"] = 1
    return events


def events_to_ms(events):
    """(times in ms, channels) of a structured event array, sorted by time."""
    order = np.argsort(events["t"], kind="stable")
    return events["t"][order] / 1000.0, events["x"][order].astype(np.int32)


class SpikeDataset:
    """Samples of spike events with labels and speakers (or other groups).

    times[offsets[i]:offsets[i+1]] (ms, sorted) and channels[...] are sample i. class_names, if
    known (an SHD-layout file's extra/keys), name the labels: label k is class_names[k]."""

    def __init__(self, times, channels, offsets, labels, speakers=None, n_channels=700, n_classes=None,
                 name="", duration_ms=None, class_names=None):
        self.times = np.asarray(times, np.float32)
        self.channels = np.asarray(channels, np.int16 if n_channels <= 32767 else np.int32)
        self.offsets = np.asarray(offsets, np.int64)
        self.labels = np.asarray(labels, np.int64)
        self.speakers = np.zeros(len(self.labels), np.int64) if speakers is None else np.asarray(speakers, np.int64)
        self.n_channels = int(n_channels)
        self.n_classes = int(n_classes if n_classes is not None else (self.labels.max() + 1 if len(self.labels) else 0))
        self.name = name
        self.duration_ms = duration_ms
        if len(self.offsets) != len(self.labels) + 1 or len(self.speakers) != len(self.labels):
            raise ValueError("offsets must have one entry more than labels, and speakers as many as labels")
        self.class_names = None if class_names is None else tuple(
            n.decode() if isinstance(n, bytes) else str(n) for n in class_names)
        if self.class_names is not None and len(self.class_names) != self.n_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.n_classes} classes")

    @classmethod
    def from_samples(cls, samples, labels, speakers=None, **kw):
        """From a list of (times_ms, channels) pairs."""
        lengths = [len(t) for t, _ in samples]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        times = np.concatenate([np.asarray(t, np.float32) for t, _ in samples]) if samples else np.zeros(0)
        channels = np.concatenate([np.asarray(c) for _, c in samples]) if samples else np.zeros(0, int)
        return cls(times, channels, offsets, labels, speakers, **kw)

    def __len__(self):
        return len(self.labels)

    def sample(self, i):
        """(times in ms, channels) of sample i."""
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.times[a:b].astype(np.float64), self.channels[a:b].astype(np.int32)

    def __getitem__(self, i):
        """(events, label) of sample i, like a tonic dataset."""
        return make_events(*self.sample(i)), int(self.labels[i])

    def samples(self, indices=None):
        idx = range(len(self)) if indices is None else indices
        return [self.sample(i) for i in idx]

    def subset(self, indices):
        indices = np.asarray(indices, np.int64)
        return SpikeDataset.from_samples(self.samples(indices), self.labels[indices], self.speakers[indices],
                                         n_channels=self.n_channels, n_classes=self.n_classes, name=self.name,
                                         duration_ms=self.duration_ms, class_names=self.class_names)

    @property
    def spikes_per_sample(self):
        return np.diff(self.offsets)

    def save(self, path):
        """Write as .npz, atomically."""
        from ..network import atomic_write

        arrays = dict(times=self.times, channels=self.channels, offsets=self.offsets, labels=self.labels,
                      speakers=self.speakers, n_channels=np.array(self.n_channels),
                      n_classes=np.array(self.n_classes), name=np.array(self.name),
                      duration_ms=np.array(np.nan if self.duration_ms is None else self.duration_ms))
        if self.class_names is not None:
            arrays["class_names"] = np.array(self.class_names, dtype=str)
        atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path):
        from ..network import read_npz

        d = read_npz(path, "dataset file (delete it to regenerate)")
        duration = float(d["duration_ms"])
        names = d.get("class_names")  # absent: saved without names, or before datasets kept them
        return cls(d["times"], d["channels"], d["offsets"], d["labels"], d["speakers"],
                   n_channels=int(d["n_channels"]), n_classes=int(d["n_classes"]), name=str(d["name"]),
                   duration_ms=None if np.isnan(duration) else duration,
                   class_names=None if names is None else names.tolist())

    def __repr__(self):
        return (f"SpikeDataset({self.name!r}, {len(self)} samples, {self.n_classes} classes, "
                f"{self.n_channels} channels, {len(np.unique(self.speakers))} speakers)")
