"""A tiny separable spike-pattern problem for smoke tests and the quick demo.

Each class is a fixed random template of (time, channel) spikes; a sample is its class template
with jittered times, some spikes dropped and some noise spikes added."""
import numpy as np


def spike_patterns(n_samples, n_classes=4, n_channels=40, duration_ms=100.0, spikes_per_template=60,
                   jitter_ms=2.0, p_drop=0.1, noise_spikes=10, seed=0):
    """Returns (samples, labels): samples is a list of time-sorted (times_ms, channels)."""
    rng = np.random.default_rng(seed)
    templates = [(rng.uniform(0, duration_ms * 0.8, spikes_per_template),
                  rng.integers(0, n_channels, spikes_per_template)) for _ in range(n_classes)]
    labels = rng.integers(0, n_classes, n_samples)
    samples = []
    for label in labels:
        t, c = templates[label]
        keep = rng.random(len(t)) > p_drop
        t = t[keep] + rng.normal(0, jitter_ms, keep.sum())
        c = c[keep]
        t = np.concatenate([t, rng.uniform(0, duration_ms, noise_spikes)])
        c = np.concatenate([c, rng.integers(0, n_channels, noise_spikes)])
        ok = (t >= 0) & (t < duration_ms)
        order = np.argsort(t[ok], kind="stable")
        samples.append((t[ok][order], c[ok][order].astype(np.int32)))
    return samples, labels.astype(np.int64)
