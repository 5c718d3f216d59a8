"""Spike data in the HDF5 layout of the Heidelberg spiking datasets (SHD and SSC, Cramer et al. 2020).

    spikes/times   one variable-length float16 array per sample: spike times in seconds
    spikes/units   one variable-length uint16 array per sample: channel ids
    labels         uint16, one per sample
    extra/speaker  uint16, one per sample
    extra/keys     the class names as byte strings (label i is keys[i])

The reader checks everything a training run would otherwise trip over later, and names the file,
the sample and the problem, so a user's own file can be fixed where it was made."""
import os
import uuid
from pathlib import Path

import h5py
import numpy as np

from .events import SpikeDataset

REQUIRED = ("spikes/times", "spikes/units", "labels")
EXTRA = ("extra/speaker", "extra/keys")


def write_shd_h5(path, samples, labels, speakers, keys=None):
    """Write (times_ms, channels) samples as an SHD-layout file, atomically.

    keys: class names, by default "0", "1", ... up to the largest label."""
    path = Path(path)
    labels = np.asarray(labels)
    speakers = np.asarray(speakers)
    samples = list(samples)
    if not len(samples) == len(labels) == len(speakers):
        raise ValueError(f"{len(samples)} samples, {len(labels)} labels and {len(speakers)} speakers: "
                         "they must be as many")
    if keys is None:
        keys = [str(i) for i in range(int(labels.max()) + 1 if len(labels) else 0)]
    times = np.empty(len(samples), object)
    units = np.empty(len(samples), object)
    for i, (t, c) in enumerate(samples):
        t, c = np.asarray(t, np.float64), np.asarray(c)
        if t.shape != c.shape or t.ndim != 1:
            raise ValueError(f"sample {i}: times and channels must be 1-d arrays of equal length")
        if len(t) and (not np.all(np.isfinite(t)) or t.min() < 0):
            raise ValueError(f"sample {i}: times must be finite and not negative")
        if len(c) and (c.min() < 0 or c.max() > np.iinfo(np.uint16).max):
            raise ValueError(f"sample {i}: channel ids must fit in uint16")
        times[i] = (t / 1000.0).astype(np.float16)
        units[i] = c.astype(np.uint16)
    for name, values in (("labels", labels), ("speakers", speakers)):
        if len(values) and (values.min() < 0 or values.max() > np.iinfo(np.uint16).max):
            raise ValueError(f"{name} must fit in uint16")
    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh name rather than mkstemp, whose 0600 mode would make an exported file private
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("spikes/times", data=times, dtype=h5py.vlen_dtype(np.float16))
            f.create_dataset("spikes/units", data=units, dtype=h5py.vlen_dtype(np.uint16))
            f.create_dataset("labels", data=labels.astype(np.uint16))
            f.create_dataset("extra/speaker", data=speakers.astype(np.uint16))
            f.create_dataset("extra/keys", data=np.array([str(k).encode() for k in keys], dtype=bytes))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_shd_h5(path, n_channels=700, name=None, require_extra=False):
    """A SpikeDataset (times in ms) from any SHD-layout file; raises ValueError if it is unusable.

    extra/keys become the dataset's class_names. extra/speaker and extra/keys may be missing unless
    require_extra (the official SHD and SSC files have both): speakers are then 0 and the classes
    are 0 .. the largest label, without names."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    try:
        with h5py.File(path, "r") as f:
            raw = _read_arrays(f, path, require_extra)
    except OSError as exc:  # not HDF5 at all, truncated, or a damaged block inside
        raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from exc
    return _to_dataset(raw, path, n_channels, name or path.stem)


def _read_arrays(f, path, require_extra):
    missing = [k for k in REQUIRED + (EXTRA if require_extra else ()) if k not in f]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)} (not an SHD-layout file?)")
    raw = {}
    for key in REQUIRED + EXTRA:
        if key not in f:
            continue
        item = f[key]
        if not isinstance(item, h5py.Dataset):
            raise ValueError(f"{path}: {key} is a group, expected a dataset")
        if key.startswith("spikes/"):
            base = h5py.check_vlen_dtype(item.dtype)
            if base is None or item.ndim != 1:
                raise ValueError(f"{path}: {key} must hold one variable-length array per sample, "
                                 f"got dtype {item.dtype} and shape {item.shape}")
            wanted = np.integer if key == "spikes/units" else np.number
            if not np.issubdtype(base, wanted) or np.issubdtype(base, np.complexfloating):
                raise ValueError(f"{path}: {key} holds {base} values; expected "
                                 + ("integer channel ids" if key == "spikes/units" else "real times in seconds"))
        # one read per dataset: 0.35 s for an SHD-sized file, against 3.6 s reading row by row
        raw[key] = item[()]
    return raw


def _to_dataset(raw, path, n_channels, name):
    times, units, labels = raw["spikes/times"], raw["spikes/units"], np.asarray(raw["labels"])
    speakers = np.asarray(raw.get("extra/speaker", np.zeros(len(labels), np.int64)))
    keys = raw.get("extra/keys")
    if keys is not None and np.ndim(keys) != 1:
        raise ValueError(f"{path}: extra/keys must be a 1-d array of class names, got shape {np.shape(keys)}")
    for key, values in (("labels", labels), ("extra/speaker", speakers)):
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"{path}: {key} must be a 1-d array of integers, got {values.dtype} {values.shape}")
    lengths = {"spikes/times": len(times), "spikes/units": len(units), "labels": len(labels),
               "extra/speaker": len(speakers)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{path}: the datasets disagree on the number of samples: "
                         + ", ".join(f"{k} has {n}" for k, n in lengths.items()))
    n_times = np.fromiter(map(len, times), np.int64, len(times))
    n_units = np.fromiter(map(len, units), np.int64, len(units))
    bad = np.flatnonzero(n_times != n_units)
    if len(bad):
        i = bad[0]
        raise ValueError(f"{path}: sample {i} has {n_times[i]} spike times but {n_units[i]} units")
    offsets = np.concatenate([[0], np.cumsum(n_times)])
    # float32 holds float16 exactly, and the file's own integer type keeps SSC-sized sets in memory
    t = np.concatenate([np.asarray(x, np.float32) for x in times]) if len(times) else np.zeros(0, np.float32)
    c = np.concatenate(list(units)) if len(units) else np.zeros(0, np.int64)

    def first_bad(mask, problem):
        if mask.any():
            k = int(np.argmax(mask))
            i = int(np.searchsorted(offsets, k, side="right") - 1)
            raise ValueError(f"{path}: sample {i}, spike {k - offsets[i]}: {problem(k)}")

    first_bad(~np.isfinite(t), lambda k: f"time {t[k]} is not a finite number")
    first_bad(t < 0, lambda k: f"negative time {t[k]} s")
    first_bad((c < 0) | (c >= n_channels), lambda k: f"channel id {c[k]} outside [0, {n_channels})")
    n_classes = len(keys) if keys is not None else (int(labels.max()) + 1 if len(labels) else 0)
    for i in np.flatnonzero((labels < 0) | (labels >= n_classes))[:1]:
        raise ValueError(f"{path}: sample {i}: label {labels[i]} outside [0, {n_classes})"
                         + (f" (extra/keys names {n_classes} classes)" if keys is not None else ""))

    step_back = np.diff(t) < 0
    starts = offsets[1:-1] - 1  # where diff compares the last spike of a sample with the next sample's first
    step_back[starts[(starts >= 0) & (starts < len(step_back))]] = False
    if step_back.any():
        # some writers keep spikes ordered by channel; the engine needs them ordered by time
        order = np.lexsort((t, np.repeat(np.arange(len(labels)), n_times)))
        t, c = t[order], c[order]
    t *= 1000.0
    return SpikeDataset(t, c, offsets, labels.astype(np.int64), speakers.astype(np.int64), n_channels=n_channels,
                        n_classes=n_classes, name=name, class_names=None if keys is None else list(keys))
