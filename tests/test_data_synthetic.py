"""The embedded randman-shd dataset: determinism, SHD-like shape, speakers, caching."""
import time

import numpy as np
import pytest

from eventprop_lab.data import synthetic
from eventprop_lab.data.sources import load_dataset
from eventprop_lab.data.synthetic import RandmanConfig, cache_paths, config_key, generate, load_embedded


def small(**kw):
    """All 20 classes and SHD's channels, but only 4 speakers and one repetition each: fast."""
    settings = dict(n_speakers=4, n_test_speakers=1, samples_per_class_per_speaker=1)
    settings.update(kw)
    return RandmanConfig(**settings)


def same(a, b):
    return all(np.array_equal(getattr(a, k), getattr(b, k))
               for k in ("times", "channels", "offsets", "labels", "speakers"))


def test_same_seed_gives_identical_data_and_another_seed_other_data():
    a, b, c = generate(small(seed=3)), generate(small(seed=3)), generate(small(seed=4))
    assert same(a[0], b[0]) and same(a[1], b[1])
    assert not np.array_equal(a[0].channels[:1000], c[0].channels[:1000])


def test_shape_is_like_shd_with_held_out_test_speakers():
    train, test = generate(small())
    for data in (train, test):
        assert data.n_channels == 700 and data.n_classes == 20 and data.duration_ms == 1000.0
        assert set(np.unique(data.labels)) == set(range(20))
    assert len(train) == 3 * 20 and len(test) == 20
    assert set(np.unique(train.speakers)) == {0, 1, 2}
    assert set(np.unique(test.speakers)) == {3}


def test_times_are_sorted_within_the_trial_and_channels_in_range():
    train, test = generate(small(seed=1))
    for data in (train, test):
        assert data.offsets[0] == 0 and data.offsets[-1] == len(data.times) == len(data.channels)
        assert data.times.dtype == np.float32
        assert data.times.min() >= 0 and data.times.max() < data.duration_ms
        assert data.channels.min() >= 0 and data.channels.max() < data.n_channels
        for i in range(len(data)):
            t, _ = data.sample(i)
            assert np.all(np.diff(t) >= 0), f"sample {i} is not sorted by time"


def test_spikes_per_sample_are_in_the_intended_range():
    cfg = small(samples_per_class_per_speaker=2)
    train, test = generate(cfg)
    counts = np.concatenate([train.spikes_per_sample, test.spikes_per_sample])
    assert 0.8 * cfg.mean_spikes < counts.mean() < 1.2 * cfg.mean_spikes
    assert counts.min() > 1000 and counts.max() < 30_000


def test_activity_lies_in_moving_bands_not_uniform_noise():
    train, _ = generate(small())
    shares = []
    for i in range(0, len(train), 7):
        t, ch = train.sample(i)
        for start in range(0, 600, 50):
            window = ch[(t >= start) & (t < start + 50)]
            if len(window) > 100:
                shares.append(np.sort(np.bincount(window, minlength=700))[::-1][:70].sum() / len(window))
        early, late = ch[t < 150], ch[(t > 300) & (t < 450)]
        busy = lambda c: set(np.argsort(np.bincount(c, minlength=700))[-40:])
        assert len(busy(early) & busy(late)) < 30, "the busiest channels should move over time"
    # at any moment a tenth of the channels carry most spikes; uniform noise would give them ~15%
    assert np.median(shares) > 0.45 and np.min(shares) > 0.3


def test_classes_of_a_pair_differ_in_time_order_not_in_channel_counts():
    cfg = small(speaker_shift=0, speaker_accent=0, difficulty=0, noise=0, samples_per_class_per_speaker=3)
    train, _ = generate(cfg)
    manifolds = synthetic._Manifolds(synthetic._generators(cfg)[0], cfg)
    a, b = np.flatnonzero(manifolds.base == 0)

    def histograms(label):
        rows = np.flatnonzero(train.labels == label)
        counts = np.zeros((2, 70))
        for i in rows:
            t, ch = train.sample(i)
            half = (t > np.median(t)).astype(int)
            np.add.at(counts, (half, ch // 10), 1)
        return counts / counts.sum()

    ha, hb = histograms(a), histograms(b)
    counts_differ = np.abs(ha.sum(0) - hb.sum(0)).sum()
    order_differs = np.abs(ha - hb).sum()
    # same channels over the whole sample (a few % apart), but busy in different halves
    assert counts_differ < 0.15 and order_differs > 5 * counts_differ


def test_small_config_is_fast_and_other_shapes_work():
    start = time.perf_counter()
    generate(small())
    assert time.perf_counter() - start < 5.0
    train, test = generate(small(n_classes=5, manifold_dim=0, n_channels=64, mean_spikes=300))
    assert train.n_classes == 5 and train.channels.max() < 64 and len(test) == 5


def test_config_mistakes_are_refused():
    with pytest.raises(ValueError, match="n_test_speakers"):
        generate(small(n_speakers=3, n_test_speakers=3))
    with pytest.raises(ValueError):
        RandmanConfig(n_channels=0)


def test_cache_key_follows_every_setting():
    assert config_key(small()) == config_key(small())
    assert config_key(small()) != config_key(small(seed=1))
    assert config_key(small()) != config_key(small(noise=0.2))


def test_second_load_reads_the_cache(tmp_path, monkeypatch):
    cfg = small()
    first = load_embedded(cfg, cache_dir=tmp_path)
    assert all(p.exists() for p in cache_paths(cfg, tmp_path))

    def no_generation(*args, **kw):
        raise AssertionError("generated again although a cache exists")

    monkeypatch.setattr(synthetic, "generate", no_generation)
    start = time.perf_counter()
    second = load_embedded(cfg, cache_dir=tmp_path)
    assert time.perf_counter() - start < 1.0
    assert same(first[0], second[0]) and same(first[1], second[1])
    assert second[0].n_classes == 20 and second[1].duration_ms == 1000.0


def test_a_corrupt_cache_is_replaced_with_a_warning(tmp_path):
    cfg = small()
    fresh = load_embedded(cfg, cache_dir=tmp_path)
    train_path, _ = cache_paths(cfg, tmp_path)
    train_path.write_bytes(b"not a zip file at all")
    with pytest.warns(UserWarning, match="randman-shd"):
        again = load_embedded(cfg, cache_dir=tmp_path)
    assert same(fresh[0], again[0])
    assert same(synthetic.SpikeDataset.load(train_path), fresh[0])


def test_progress_reports_while_generating(tmp_path):
    lines = []
    load_embedded(small(), cache_dir=tmp_path, progress=lines.append)
    assert lines and any("generat" in line for line in lines)


def test_load_dataset_names_the_embedded_set(tmp_path, monkeypatch):
    # load_dataset builds the default config; a small one keeps this test fast
    monkeypatch.setattr(synthetic, "RandmanConfig", lambda n_channels: small(n_channels=n_channels, n_speakers=3))
    splits = load_dataset("randman-shd", data_dir=tmp_path)
    assert splits.validation is None and len(splits.train) == 40 and len(splits.test) == 20


def test_default_set_is_shd_sized_and_generated_quickly():
    start = time.perf_counter()
    train, test = generate(RandmanConfig())
    elapsed = time.perf_counter() - start
    assert elapsed < 30.0
    assert 4000 <= len(train) <= 8000 and len(test) >= 500
    assert 5000 <= train.spikes_per_sample.mean() <= 10_000
    assert len(np.unique(train.speakers)) == 10 and len(np.unique(test.speakers)) == 2
