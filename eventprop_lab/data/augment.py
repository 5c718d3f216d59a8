"""Augmentations of spike samples (spec §5) and the input delay line.

Each augmentation is a small object called on one sample's events, in the style of tonic's
transforms: ``aug(times_ms, channels, rng) -> (times_ms, channels)``, sorted by time, channels in
[0, n_channels), times in [0, duration); events pushed outside are dropped. The random generator
is passed in at call time and the objects keep no random state of their own, so one
``numpy.random.Generator`` seeded once reproduces a whole epoch, and the same object can be
shared between workers or pickled with a configuration.

Augmentations are for training data only and are drawn afresh every epoch. The delay line is
different: it is part of the network's input structure and is applied to training and test data
alike. ``blend`` works on a whole dataset rather than one sample, because it mixes samples."""
from dataclasses import dataclass, field

import numpy as np

from .events import SpikeDataset


def _as_events(times, channels):
    times = np.asarray(times)
    if not np.issubdtype(times.dtype, np.floating):
        times = times.astype(np.float64)
    return times, np.asarray(channels)


def _in_channels(times, channels, n_channels):
    keep = (channels >= 0) & (channels < n_channels)
    return times[keep], channels[keep].astype(np.int32)


def _before(times, channels, duration_ms):
    if duration_ms is None:
        return times, channels
    keep = times < duration_ms
    return times[keep], channels[keep]


@dataclass
class Augmentation:
    """Base of the per-sample augmentations: ``enabled = False`` passes events through untouched
    (and draws no random numbers), so an augmentation can be switched per epoch or per batch."""

    enabled: bool = field(default=True, kw_only=True)

    def __call__(self, times, channels, rng):
        times, channels = _as_events(times, channels)
        if not self.enabled:
            return times, channels
        return self.apply(times, channels, rng)

    def apply(self, times, channels, rng):
        raise NotImplementedError


@dataclass
class RandomShift(Augmentation):
    """Shift every channel id of a sample by the same integer, int(U(-max_shift, max_shift)).

    The draw truncates toward zero, as in the spec (and [R]): a shift of 0 is twice as likely as
    any other and ±max_shift never occurs. Spec §5 found max_shift = 40 best on SHD."""

    max_shift: int = 40
    n_channels: int = 700

    def __post_init__(self):
        if self.max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {self.max_shift}")

    def apply(self, times, channels, rng):
        shift = int(rng.uniform(-self.max_shift, self.max_shift))
        return _in_channels(times, channels.astype(np.int64) + shift, self.n_channels)


@dataclass
class Dilate(Augmentation):
    """Stretch or compress a sample in time by one factor exp(U(ln low, ln high)).

    Drawing the factor's logarithm uniformly makes stretching by x as likely as compressing by
    1/x. Events stretched to or past duration_ms are dropped (None keeps them all)."""

    low: float = 0.8
    high: float = 1.25
    duration_ms: float | None = 1000.0

    def __post_init__(self):
        if not 0 < self.low <= self.high:
            raise ValueError(f"need 0 < low <= high, got low={self.low}, high={self.high}")

    def apply(self, times, channels, rng):
        factor = float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        # the bound is checked after scaling in the sample's own dtype, so float32 rounding
        # cannot carry a time onto the trial end
        return _before(times * factor, channels.astype(np.int32), self.duration_ms)


@dataclass
class IdJitter(Augmentation):
    """Move each spike to a nearby channel: add round(N(0, sigma)) per spike, drop what leaves
    [0, n_channels). Times are untouched, so the order stays sorted. Neutral in spec §5."""

    sigma: float = 5.0
    n_channels: int = 700

    def __post_init__(self):
        if self.sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")

    def apply(self, times, channels, rng):
        jitter = np.rint(rng.normal(0.0, self.sigma, len(channels))).astype(np.int64)
        return _in_channels(times, channels.astype(np.int64) + jitter, self.n_channels)


class Compose:
    """Apply augmentations in order, sharing one generator. Entries that are None or have
    ``enabled = False`` are skipped, so a pipeline can be built once and switched piecewise."""

    def __init__(self, augmentations, enabled=True):
        self.augmentations = list(augmentations)
        self.enabled = enabled

    def __call__(self, times, channels, rng):
        times, channels = _as_events(times, channels)
        if not self.enabled:
            return times, channels
        for aug in self.augmentations:
            if aug is not None and getattr(aug, "enabled", True):
                times, channels = aug(times, channels, rng)
        return times, channels

    def __repr__(self):
        return f"Compose({self.augmentations!r}, enabled={self.enabled})"


@dataclass
class DelayLine:
    """Copies of every input channel at fixed delays (spec §5): copy k carries channel c as input
    k * n_channels + c, delayed by k * delay_ms; copy 0 is the undelayed original.

    include_undelayed=True (default) puts the undelayed copy on top of n_delays delayed ones,
    [R]'s convention: 11 copies at 0, 30, ..., 300 ms, 7700 inputs for SHD. False makes the
    undelayed copy one of the n_delays, [M]'s convention: 10 copies at 0, ..., 270 ms, 7000
    inputs. The spec leaves open which one the paper used; the default is [R]'s because the
    final configuration and its 1/10 input-weight scaling (spec §6, ``NetworkConfig``) come
    from [R]'s runs.

    This is input structure, not augmentation: apply it to training and test data alike, after
    any augmentation. Copies delayed to or past duration_ms are dropped (None keeps them, and
    ``kernels.make_batch`` crops at the trial end). Output is sorted by time; equal times keep
    copy order. ``rng`` is accepted so a DelayLine can sit at the end of a Compose; it is unused."""

    n_delays: int = 10
    delay_ms: float = 30.0
    n_channels: int = 700
    include_undelayed: bool = True
    duration_ms: float | None = 1000.0

    def __post_init__(self):
        if self.n_delays < 1 or self.delay_ms < 0 or self.n_channels < 1:
            raise ValueError(f"need n_delays >= 1, delay_ms >= 0, n_channels >= 1; got {self}")

    @property
    def n_copies(self):
        return self.n_delays + 1 if self.include_undelayed else self.n_delays

    @property
    def n_inputs(self):
        """Input channels after the delay line: the network's W_in needs this many rows."""
        return self.n_copies * self.n_channels

    @property
    def delays_ms(self):
        return np.arange(self.n_copies) * float(self.delay_ms)

    def __call__(self, times, channels, rng=None):
        times, channels = _as_events(times, channels)
        if len(channels) and (channels.min() < 0 or channels.max() >= self.n_channels):
            raise ValueError(f"channel ids must lie in [0, {self.n_channels}) before the delay line")
        channels = channels.astype(np.int32)
        copies = range(self.n_copies)
        times = np.concatenate([times + k * float(self.delay_ms) for k in copies])
        channels = np.concatenate([channels + k * self.n_channels for k in copies])
        times, channels = _before(times, channels, self.duration_ms)
        # each copy is already sorted, so the stable sort only merges runs
        order = np.argsort(times, kind="stable")
        return times[order], channels[order]


def blend_group(samples, probs, rng, n_channels, duration_ms=None):
    """One blended sample from a group of samples (spec §5, steps 2-4).

    Each sample is moved so its centroid lands on the group's mean centroid (the unweighted mean
    of the members' centroids): channels by the nearest integer, times by the exact difference
    in ms. Spike j of sample i is kept with probability probs[i]; the survivors are merged,
    sorted by time, and cut to [0, duration_ms) and [0, n_channels). Empty members contribute
    nothing and do not count toward the mean."""
    if len(samples) != len(probs):
        raise ValueError(f"need one probability per sample, got {len(probs)} for {len(samples)} samples")
    parts = [_as_events(t, c) for t, c in samples]
    members = [(t, c, p) for (t, c), p in zip(parts, probs) if len(t)]
    dtype = np.result_type(*[t.dtype for t, _ in parts]) if parts else np.float64
    if not members:
        return np.zeros(0, dtype), np.zeros(0, np.int32)
    centre_t = np.array([t.mean(dtype=np.float64) for t, _, _ in members])
    centre_c = np.array([c.mean(dtype=np.float64) for _, c, _ in members])
    mean_t, mean_c = centre_t.mean(), centre_c.mean()
    times, channels = [], []
    for (t, c, p), ct, cc in zip(members, centre_t, centre_c):
        keep = rng.random(len(t)) < p
        # a Python float keeps the sample's dtype (float32 from a dataset), so the range check
        # below sees exactly the values that will be stored
        times.append(t[keep] + float(mean_t - ct))
        channels.append(c[keep].astype(np.int64) + int(np.rint(mean_c - cc)))
    times = np.concatenate(times).astype(dtype, copy=False)
    channels = np.concatenate(channels)
    keep = (times >= 0) & (channels >= 0) & (channels < n_channels)
    if duration_ms is not None:
        keep &= times < duration_ms
    times, channels = times[keep], channels[keep].astype(np.int32)
    order = np.argsort(times, kind="stable")
    return times[order], channels[order]


def _pick_groups(labels, n_new, size, rng):
    """Classes in proportion to their frequency, then `size` distinct members of each group's
    class (with repeats only where a class has fewer than `size` samples)."""
    order = np.argsort(labels, kind="stable")
    classes, start, count = np.unique(labels[order], return_index=True, return_counts=True)
    which = rng.choice(len(classes), size=n_new, p=count / count.sum())
    n = count[which][:, None]
    pos = np.floor(rng.random((n_new, size)) * n).astype(np.int64)
    if size > 1:
        # redraw rows that repeat a member; converges fast since most classes are large
        while True:
            s = np.sort(pos, axis=1)
            bad = np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1) & (n[:, 0] >= size))
            if not len(bad):
                break
            pos[bad] = np.floor(rng.random((len(bad), size)) * n[bad]).astype(np.int64)
    return classes[which], order[start[which][:, None] + pos]


def blend(dataset, probs=(0.5, 0.5), n_new=None, *, rng, duration_ms=None):
    """New samples blended from same-class groups of `dataset` (spec §5, "blend probs").

    For each new sample a class is drawn in proportion to its frequency in `dataset`, as [R]
    does, so the blended set keeps the training set's class balance; then len(probs) distinct
    samples of that class are combined by ``blend_group``. n_new defaults to len(dataset), so
    ``concat(dataset, blend(dataset, rng=rng))`` doubles the set as in the paper. Returns only
    the new samples, labelled with their class and with speaker -1: a blend mixes speakers, so
    no single one applies (``leave_one_speaker_out`` never holds out speaker -1). duration_ms
    defaults to dataset.duration_ms; if both are None only negative times are dropped.

    Blend the training part only, after splitting: a blend carries spikes of every member into
    its sample, so blending before a split leaks held-out samples into training."""
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 1 or len(probs) < 1 or np.any(probs < 0) or np.any(probs > 1):
        raise ValueError(f"probs must be a list of probabilities in [0, 1], got {probs.tolist()}")
    n_new = len(dataset) if n_new is None else int(n_new)
    if n_new < 0:
        raise ValueError(f"n_new must be >= 0, got {n_new}")
    if n_new and not len(dataset):
        raise ValueError("cannot blend new samples from an empty dataset")
    duration_ms = dataset.duration_ms if duration_ms is None else duration_ms
    labels, groups = _pick_groups(dataset.labels, n_new, len(probs), rng) if n_new else ([], [])
    off, times, channels = dataset.offsets, dataset.times, dataset.channels
    samples = [blend_group([(times[off[i]:off[i + 1]], channels[off[i]:off[i + 1]]) for i in group],
                           probs, rng, dataset.n_channels, duration_ms)
               for group in groups]
    return SpikeDataset.from_samples(samples, np.asarray(labels, np.int64), np.full(n_new, -1, np.int64),
                                     n_channels=dataset.n_channels, n_classes=dataset.n_classes,
                                     name=f"{dataset.name}+blend" if dataset.name else "blend",
                                     duration_ms=dataset.duration_ms, class_names=dataset.class_names)


def concat(first, second):
    """One dataset holding the samples of `first` followed by those of `second`."""
    if first.n_channels != second.n_channels:
        raise ValueError(f"cannot join datasets with {first.n_channels} and {second.n_channels} channels")
    durations = [d for d in (first.duration_ms, second.duration_ms) if d is not None]
    offsets = np.concatenate([first.offsets, second.offsets[1:] - second.offsets[0] + first.offsets[-1]])
    a, b = first.offsets[[0, -1]], second.offsets[[0, -1]]
    return SpikeDataset(np.concatenate([first.times[a[0]:a[1]], second.times[b[0]:b[1]]]),
                        np.concatenate([first.channels[a[0]:a[1]], second.channels[b[0]:b[1]]]),
                        offsets - offsets[0], np.concatenate([first.labels, second.labels]),
                        np.concatenate([first.speakers, second.speakers]), n_channels=first.n_channels,
                        n_classes=max(first.n_classes, second.n_classes), name=first.name,
                        duration_ms=max(durations) if durations else None,
                        class_names=first.class_names if first.class_names == second.class_names else None)
