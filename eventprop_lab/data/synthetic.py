"""The embedded default dataset "randman-shd": SHD-shaped spike data generated from a seed.

After the idea of Randman (Zenke & Vogels 2021): each class is a smooth random manifold, a smooth
random function from a low-dimensional latent space to the activity of the input channels, and a
sample is a point drawn on its class's manifold, turned into spikes. Here the latent coordinates
are time within the utterance plus 1-2 intrinsic coordinates, and the function draws a few
formant-like bands whose channel position and strength move smoothly over time, so a sample looks
like a cochleagram rather than uniform noise.

What makes it non-trivial:
- classes come in pairs that play the same manifold with its two halves swapped in time, and all
  classes share the same band positions on average, so per-channel spike counts say little and
  the class lives in the order of activity;
- speakers distort all their samples the same way (channel shift, speaking rate, loudness,
  irregular timing, and their own region of each class manifold, an "accent"); the test set holds
  speakers never seen in training, as in SHD;
- Poisson spiking and a uniform background of noise spikes.
"""
import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np
import param

from .events import SpikeDataset

GENERATOR_VERSION = 1  # part of the cache key: bump it when the same config would give other data
BIN_MS = 4.0  # rates are constant over bins this long; spikes within a bin are uniform in time
CHUNK = 256  # samples generated at once: bounds memory, and fixes where random numbers are drawn


class RandmanConfig(param.Parameterized):
    """Knobs of the randman-shd generator; the defaults give an SHD-shaped set in about 5 s.

    Default size: 5,000 training samples (250 per class; SHD has about 400) from 10 speakers and
    1,000 test samples from 2 more. At about 1 ms per sample (700-256-20, 1000 steps) an epoch
    takes seconds, and 1,000 test samples measure an accuracy near 80% to about +-1.3%."""

    n_channels = param.Integer(700, bounds=(16, 100_000), doc="input channels (SHD: 700)")
    n_classes = param.Integer(20, bounds=(2, 1000), doc="classes (SHD: 20)")
    n_speakers = param.Integer(12, bounds=(2, 1000), doc="speakers in all")
    n_test_speakers = param.Integer(2, bounds=(1, 999),
                                    doc="speakers held out for the test set (the last ones)")
    samples_per_class_per_speaker = param.Integer(25, bounds=(1, 10_000), doc="repetitions of each class by each speaker")
    duration_ms = param.Number(1000.0, bounds=(100.0, 100_000.0), doc="trial length (ms); spikes lie in [0, duration)")
    mean_spikes = param.Number(7000.0, bounds=(10.0, 1e6), doc="mean spikes per sample (SHD: about 9000)")
    n_bands = param.Integer(4, bounds=(1, 16), doc="formant-like bands of activity per class")
    manifold_dim = param.Integer(2, bounds=(0, 4),
                                 doc="intrinsic dimensions of each class manifold besides time (within-class variation)")
    n_fourier = param.Integer(4, bounds=(1, 32), doc="random Fourier components of each smooth function")
    alpha = param.Number(1.5, bounds=(0.0, 5.0),
                         doc="smoothness: the k-th Fourier component has amplitude ~ k^-alpha")
    band_excursion = param.Number(0.09, bounds=(0.0, 0.5),
                                  doc="how far bands move over time (RMS, fraction of the channels)")
    band_width = param.Number(0.017, bounds=(0.001, 0.5), doc="width (std) of a band, fraction of the channels")
    difficulty = param.Number(0.5, bounds=(0.0, 2.0),
                              doc="within-class variation: spread of samples on their class manifold and "
                                  "irregularity of their timing (0: every repetition alike)")
    noise = param.Number(0.15, bounds=(0.0, 1.0), doc="fraction of spikes that are uniform background noise")
    speaker_shift = param.Number(30.0, bounds=(0.0, 1000.0), doc="largest per-speaker channel offset (channels)")
    speaker_rate = param.Range((0.8, 1.25), bounds=(0.1, 10.0), doc="range of per-speaker time scale (speaking rate)")
    speaker_gain = param.Range((0.7, 1.4), bounds=(0.01, 100.0), doc="range of per-speaker spike-rate multiplier")
    speaker_accent = param.Number(0.3, bounds=(0.0, 2.0),
                                  doc="how far apart speakers lie on each class manifold (0: no accent)")
    seed = param.Integer(0, bounds=(0, None), doc="random seed; the same seed gives the same data")


def config_key(config: RandmanConfig) -> str:
    """Short hash of the settings (and the generator version), for cache file names."""
    values = {k: v for k, v in config.param.values().items() if k != "name"}
    text = json.dumps({"version": GENERATOR_VERSION, **values}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _fourier_coefficients(rng, shape, n_fourier, alpha, manifold_dim):
    """Amplitudes, phases and latent couplings of unit-RMS random Fourier series in u.

    f(u, z) = sum_j a_j sin(2 pi (j u + phi_j + q_j . z)): periodic in u, so a phase shift of
    j/2 in component j is the same function with its two halves swapped in time; the intrinsic
    coordinates z move the phases, so f is smooth in z as well."""
    j = np.arange(1, n_fourier + 1)
    amp = rng.normal(size=shape + (n_fourier,)) * j ** -alpha
    amp *= np.sqrt(2.0 / np.maximum((amp**2).sum(-1, keepdims=True), 1e-12))
    phase = rng.uniform(size=shape + (n_fourier,))
    coupling = rng.normal(size=shape + (n_fourier, manifold_dim))
    return amp, phase, coupling


class _Manifolds:
    """The random functions of every class: band centres and band strengths over (u, z)."""

    def __init__(self, rng, cfg):
        n_base = (cfg.n_classes + 1) // 2
        shape = (n_base, cfg.n_bands)
        self.centre = _fourier_coefficients(rng, shape, cfg.n_fourier, cfg.alpha, cfg.manifold_dim)
        self.strength = _fourier_coefficients(rng, shape, cfg.n_fourier, cfg.alpha, cfg.manifold_dim)
        # bands of all classes sit around the same home channels, so the classes share bands
        homes = (0.15 + 0.7 * (np.arange(cfg.n_bands) + 0.5) / cfg.n_bands) * cfg.n_channels
        self.home = homes + rng.normal(0, 0.01 * cfg.n_channels, shape)
        self.weight = rng.uniform(0.5, 1.5, shape)
        self.length = rng.uniform(0.5, 0.68, n_base) * cfg.duration_ms
        # classes 2b and 2b+1 (in a shuffled numbering) play base manifold b forwards and rotated
        order = rng.permutation(cfg.n_classes)
        self.base = np.empty(cfg.n_classes, np.int64)
        self.base[order] = np.arange(cfg.n_classes) // 2
        self.rotation = np.empty(cfg.n_classes)
        self.rotation[order] = 0.5 * (np.arange(cfg.n_classes) % 2)


def _evaluate(coefficients, base, rotation, z, u):
    """f(u, z) for each sample (rows), band and bin: shape (samples, bands, bins)."""
    amp, phase, coupling = (c[base] for c in coefficients)  # (S, K, J), (S, K, J), (S, K, J, D)
    j = np.arange(1, amp.shape[-1] + 1)
    shifted = phase + rotation[:, None, None] * j + np.einsum("skjd,sd->skj", coupling, z)
    out = np.zeros(amp.shape[:2] + u.shape[-1:])
    for k in range(amp.shape[-1]):
        out += amp[..., k, None] * np.sin(2 * np.pi * (j[k] * u[:, None, :] + shifted[..., k, None]))
    return out


def _sample_table(rng, cfg, manifolds):
    """Per-sample labels, speakers, latent points and distortions (all small arrays)."""
    n_rep = cfg.samples_per_class_per_speaker
    speakers = np.repeat(np.arange(cfg.n_speakers), cfg.n_classes * n_rep)
    labels = np.tile(np.repeat(np.arange(cfg.n_classes), n_rep), cfg.n_speakers)
    n = len(labels)
    lo, hi = np.log(cfg.speaker_rate)
    rate = np.exp(rng.uniform(lo, hi, cfg.n_speakers))
    lo, hi = np.log(cfg.speaker_gain)
    gain = np.exp(rng.uniform(lo, hi, cfg.n_speakers))
    # on a cochlea's (roughly logarithmic) frequency axis a different vocal tract is a shift
    shift = rng.uniform(-cfg.speaker_shift, cfg.speaker_shift, cfg.n_speakers)
    accent = rng.uniform(-0.5, 0.5, (cfg.n_speakers, cfg.manifold_dim)) * cfg.speaker_accent
    irregularity = rng.uniform(0.2, 1.0, cfg.n_speakers) * min(cfg.difficulty, 1.5) * 0.5
    width = cfg.band_width * cfg.n_channels * rng.uniform(0.8, 1.25, cfg.n_speakers)

    z = accent[speakers] + rng.uniform(-0.5, 0.5, (n, cfg.manifold_dim)) * 0.6 * cfg.difficulty
    length = manifolds.length[manifolds.base[labels]] * rate[speakers] * np.exp(rng.normal(0, 0.07, n))
    onset = rng.uniform(0.01, 0.05, n) * cfg.duration_ms
    warp = irregularity[speakers] * rng.uniform(-1, 1, n)
    loudness = gain[speakers] * np.exp(rng.normal(0, 0.2, n)) * length
    expected = loudness * cfg.mean_spikes / loudness.mean()
    return dict(labels=labels, speakers=speakers, z=z, length=length, onset=onset, warp=warp,
                expected=expected, shift=shift[speakers], width=width[speakers])


def _spikes(rng, cfg, manifolds, table, rows):
    """Spike times (ms, sorted within each sample), channels and per-sample counts for rows."""
    n_bins = int(np.ceil(cfg.duration_ms / BIN_MS))
    bin_start = np.arange(n_bins) * BIN_MS
    labels = table["labels"][rows]
    base, rotation = manifolds.base[labels], manifolds.rotation[labels]
    z = table["z"][rows]
    u = (bin_start + BIN_MS / 2 - table["onset"][rows, None]) / table["length"][rows, None]
    active = (u >= 0) & (u < 1)
    # a smooth monotone warp of the time axis (|warp| < 1 keeps du'/du > 0): irregular speaking
    u = u + table["warp"][rows, None] * np.sin(2 * np.pi * u) / (2 * np.pi)
    # short onset and offset ramps: a long symmetric envelope would weight the two halves of
    # a rotated pair differently and tell its two classes apart by their spike counts
    envelope = np.clip(np.minimum(u, 1 - u) / 0.02, 0, 1) * active

    centre = manifolds.home[base][..., None] + cfg.band_excursion * cfg.n_channels * _evaluate(
        manifolds.centre, base, rotation, z, u)
    # a band's strength varies by a factor of about e^(+-0.8) over an utterance
    strength = manifolds.weight[base][..., None] * np.exp(0.8 * _evaluate(manifolds.strength, base, rotation, z, u))
    shape = strength * envelope[:, None, :]
    shape *= (1 - cfg.noise) / np.maximum(shape.sum((1, 2), keepdims=True), 1e-12)
    background = np.full((len(rows), 1, n_bins), cfg.noise / n_bins)
    lam = np.concatenate([shape, background], axis=1) * table["expected"][rows, None, None]

    # spikes ordered by (sample, bin, band): only spikes within one bin need sorting afterwards
    counts = rng.poisson(lam.transpose(0, 2, 1)).ravel()
    cell = np.repeat(np.arange(counts.size), counts)
    n_bands = cfg.n_bands + 1
    sample, rest = np.divmod(cell, n_bins * n_bands)
    b, band = np.divmod(rest, n_bands)
    # float32 now, so that rounding cannot carry a time onto duration_ms after the check below
    t = (bin_start[b] + rng.uniform(0, BIN_MS, cell.size)).astype(np.float32)
    centre_flat = np.concatenate([centre, np.zeros((len(rows), 1, n_bins))], axis=1)
    ch = centre_flat[sample, band, b] + table["shift"][rows][sample] + table["width"][rows][sample] * rng.normal(
        size=cell.size)
    noise = band == cfg.n_bands
    ch[noise] = rng.uniform(0, cfg.n_channels, int(noise.sum()))
    ch = np.floor(ch)
    keep = (ch >= 0) & (ch < cfg.n_channels) & (t < cfg.duration_ms)
    sample, t, ch = sample[keep], t[keep], ch[keep]
    order = np.argsort(sample * (2.0 * cfg.duration_ms) + t.astype(np.float64), kind="stable")
    return t[order], ch[order].astype(np.int32), np.bincount(sample, minlength=len(rows))


def _check(cfg):
    if cfg.n_test_speakers >= cfg.n_speakers:
        raise ValueError(f"n_test_speakers ({cfg.n_test_speakers}) must be smaller than n_speakers ({cfg.n_speakers})")
    if cfg.speaker_rate[0] > cfg.speaker_rate[1] or cfg.speaker_gain[0] > cfg.speaker_gain[1]:
        raise ValueError("speaker_rate and speaker_gain must be (low, high) ranges")


def _generators(cfg, n_samples=0):
    """Independent generators from the seed: the first for the classes and the per-sample table,
    then one per chunk of samples (spawned, since seeds like [s, 1] and [s, 1, 0] would coincide)."""
    n_chunks = -(-n_samples // CHUNK)
    children = np.random.SeedSequence([cfg.seed, GENERATOR_VERSION]).spawn(1 + n_chunks)
    return [np.random.default_rng(child) for child in children]


def generate(config: RandmanConfig = None, progress=None):
    """(train, test) SpikeDatasets for a config; test holds the last n_test_speakers speakers."""
    cfg = config or RandmanConfig()
    _check(cfg)
    rng = _generators(cfg)[0]
    manifolds = _Manifolds(rng, cfg)
    table = _sample_table(rng, cfg, manifolds)
    n = len(table["labels"])
    times, channels, counts = [], [], []
    # one generator per chunk: a chunk's spikes do not depend on how many others were drawn before
    for start, chunk_rng in zip(range(0, n, CHUNK), _generators(cfg, n)[1:]):
        rows = np.arange(start, min(start + CHUNK, n))
        t, ch, c = _spikes(chunk_rng, cfg, manifolds, table, rows)
        times.append(t)
        channels.append(ch)
        counts.append(c)
        if progress is not None:
            progress(f"randman-shd: generated {rows[-1] + 1} of {n} samples")
    times, channels, counts = np.concatenate(times), np.concatenate(channels), np.concatenate(counts)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    test_speaker = table["speakers"] >= cfg.n_speakers - cfg.n_test_speakers
    return tuple(_select(cfg, times, channels, offsets, table, np.flatnonzero(pick), split)
                 for pick, split in ((~test_speaker, "train"), (test_speaker, "test")))


def _select(cfg, times, channels, offsets, table, rows, split):
    """The rows of the whole set as a SpikeDataset (rows are contiguous runs of whole speakers)."""
    a, b = offsets[rows[0]], offsets[rows[-1] + 1]
    return SpikeDataset(times[a:b], channels[a:b], offsets[rows[0]:rows[-1] + 2] - a, table["labels"][rows],
                        table["speakers"][rows], n_channels=cfg.n_channels, n_classes=cfg.n_classes,
                        name=f"randman-shd-{split}", duration_ms=cfg.duration_ms)


def cache_paths(config: RandmanConfig, cache_dir="data_cache"):
    """Where load_embedded keeps the (train, test) files of a config."""
    stem = Path(cache_dir) / f"randman-shd-{config_key(config)}"
    return stem.with_name(stem.name + ".train.npz"), stem.with_name(stem.name + ".test.npz")


def _load_cached(path, cfg):
    data = SpikeDataset.load(path)
    if (data.n_channels != cfg.n_channels or data.n_classes != cfg.n_classes
            or len(data.times) != data.offsets[-1] or len(data.channels) != len(data.times)):
        raise ValueError(f"{path} does not hold a randman-shd set of this configuration")
    return data


def load_embedded(config: RandmanConfig = None, cache_dir="data_cache", progress=None):
    """(train, test) of randman-shd, read from the cache in cache_dir or generated and cached.

    A cache file that cannot be read is replaced, with a warning. progress, if given, is called
    with a line of text now and then while generating."""
    cfg = config or RandmanConfig()
    _check(cfg)
    paths = cache_paths(cfg, cache_dir)
    if all(p.exists() for p in paths):
        try:
            return tuple(_load_cached(p, cfg) for p in paths)
        except ValueError as exc:
            warnings.warn(f"unreadable randman-shd cache ({exc}); generating it again", stacklevel=2)
    if progress is not None:
        progress(f"randman-shd: generating the dataset (seed {cfg.seed}); it is cached in {cache_dir}")
    start = time.perf_counter()
    train, test = generate(cfg, progress)
    train.save(paths[0])
    test.save(paths[1])
    if progress is not None:
        progress(f"randman-shd: {len(train)} training and {len(test)} test samples in "
                 f"{time.perf_counter() - start:.1f} s")
    return train, test
