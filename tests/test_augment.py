"""Augmentations (spec §5): what each preserves and changes, seeding, boundaries; blend; delay line."""
import time

import numpy as np
import pytest
from scipy.stats import norm

from eventprop_lab.data.augment import (Compose, DelayLine, Dilate, IdJitter, RandomShift, blend, blend_group,
                                        concat)
from eventprop_lab.data.events import SpikeDataset
from kernels import make_batch


def random_sample(rng, n=500, channels=(0, 700), times=(0.0, 1000.0), dtype=np.float64):
    t = np.sort(rng.uniform(*times, n)).astype(dtype)
    return t, rng.integers(*channels, n).astype(np.int32)


def check_events(times, channels, n_channels=700, duration=1000.0):
    assert times.ndim == 1 and channels.shape == times.shape
    assert np.issubdtype(channels.dtype, np.integer)
    assert np.all(np.diff(times) >= 0)
    if len(times):
        assert channels.min() >= 0 and channels.max() < n_channels
        assert times.min() >= 0 and times.max() < duration


AUGMENTATIONS = [RandomShift(40), Dilate(0.8, 1.25), IdJitter(5.0), Compose([RandomShift(40), IdJitter(3.0)])]


@pytest.mark.parametrize("aug", AUGMENTATIONS, ids=lambda a: type(a).__name__)
def test_augmentation_is_fixed_by_the_seed_and_stays_in_range(aug):
    sample = random_sample(np.random.default_rng(0))
    a = aug(*sample, np.random.default_rng(5))
    b = aug(*sample, np.random.default_rng(5))
    c = aug(*sample, np.random.default_rng(6))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert len(a[0]) != len(c[0]) or not (np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1]))
    check_events(*a)
    assert len(a[0]) <= len(sample[0])


@pytest.mark.parametrize("aug", AUGMENTATIONS, ids=lambda a: type(a).__name__)
def test_augmentation_handles_an_empty_sample(aug):
    times, channels = aug(np.zeros(0), np.zeros(0, np.int32), np.random.default_rng(0))
    assert len(times) == 0 and len(channels) == 0
    assert np.issubdtype(channels.dtype, np.integer)


@pytest.mark.parametrize("aug", [RandomShift(40, enabled=False), Dilate(0.5, 2.0, enabled=False),
                                 IdJitter(10.0, enabled=False), Compose([RandomShift(40)], enabled=False)],
                         ids=lambda a: type(a).__name__)
def test_disabled_augmentation_passes_events_through_and_draws_nothing(aug):
    sample = random_sample(np.random.default_rng(1))
    rng = np.random.default_rng(2)
    times, channels = aug(*sample, rng)
    np.testing.assert_array_equal(times, sample[0])
    np.testing.assert_array_equal(channels, sample[1])
    assert rng.random() == np.random.default_rng(2).random()


def test_random_shift_moves_every_channel_by_one_constant_that_varies_between_samples():
    rng = np.random.default_rng(3)
    shifts = []
    for _ in range(200):
        times, channels = random_sample(rng, n=50, channels=(100, 600))
        new_times, new_channels = RandomShift(40)(times, channels, rng)
        np.testing.assert_array_equal(new_times, times)
        shift = np.unique(new_channels - channels)
        assert len(shift) == 1
        shifts.append(shift[0])
    shifts = np.array(shifts)
    assert len(np.unique(shifts)) > 30 and np.abs(shifts).max() <= 39


def test_random_shift_truncates_toward_zero_like_the_spec():
    # int(U(-3, 3)) gives -2..2 with 0 twice as likely as any other value
    rng = np.random.default_rng(4)
    shifts = np.array([RandomShift(3)(np.array([1.0]), np.array([350]), rng)[1][0] - 350 for _ in range(6000)])
    values, counts = np.unique(shifts, return_counts=True)
    np.testing.assert_array_equal(values, [-2, -1, 0, 1, 2])
    np.testing.assert_allclose(counts / 6000, [1 / 6, 1 / 6, 1 / 3, 1 / 6, 1 / 6], atol=0.025)


def test_random_shift_drops_exactly_the_events_pushed_off_the_channel_range():
    # one spike per channel at distinct times, so each output spike names its source
    rng = np.random.default_rng(5)
    times, channels = np.sort(rng.uniform(0, 1000, 700)), rng.permutation(700)
    seen = set()
    for _ in range(50):
        new_times, new_channels = RandomShift(40)(times, channels, rng)
        check_events(new_times, new_channels)
        shift = np.unique(new_channels - channels[np.searchsorted(times, new_times)])
        assert len(shift) == 1
        assert len(new_times) == 700 - abs(shift[0])
        seen.add(np.sign(shift[0]))
    assert seen >= {-1, 1}


def test_dilate_scales_all_times_by_one_factor_within_bounds():
    rng = np.random.default_rng(6)
    logs = []
    for _ in range(400):
        times, channels = random_sample(rng, n=40, times=(1.0, 700.0))
        new_times, new_channels = Dilate(0.8, 1.25)(times, channels, rng)
        assert len(new_times) == len(times)  # 700 * 1.25 < 1000: nothing falls off
        factor = new_times / times
        np.testing.assert_allclose(factor, factor[0], rtol=1e-12)
        assert 0.8 <= factor[0] <= 1.25
        np.testing.assert_array_equal(new_channels, channels)
        logs.append(np.log(factor[0]))
    # the factor's log is uniform on (ln 0.8, ln 1.25), which is symmetric about 0
    assert abs(np.mean(logs)) < 0.02 and np.std(logs) == pytest.approx(np.log(1.25) / np.sqrt(3), rel=0.1)


def test_dilate_drops_times_stretched_to_the_trial_end_in_the_sample_dtype():
    times = np.array([100.0, 700.0, 799.9, 800.0, 900.0], np.float32)
    new_times, new_channels = Dilate(1.25, 1.25, duration_ms=1000.0)(times, np.arange(5), np.random.default_rng(0))
    assert new_times.dtype == np.float32
    np.testing.assert_allclose(new_times, times[:3] * np.float32(1.25))
    np.testing.assert_array_equal(new_channels, [0, 1, 2])
    assert len(Dilate(2.0, 2.0, duration_ms=None)(times, np.arange(5), np.random.default_rng(0))[0]) == 5


def test_id_jitter_has_the_requested_sigma_and_keeps_times():
    rng = np.random.default_rng(7)
    times, channels = random_sample(rng, n=20000, channels=(300, 400))
    new_times, new_channels = IdJitter(5.0)(times, channels, rng)
    np.testing.assert_array_equal(new_times, times)
    jitter = new_channels - channels
    assert abs(jitter.mean()) < 0.1
    # rounding adds variance 1/12
    assert jitter.std() == pytest.approx(np.sqrt(25 + 1 / 12), rel=0.03)
    same = IdJitter(0.0)(times, channels, rng)
    np.testing.assert_array_equal(same[1], channels)


def test_id_jitter_drops_spikes_jittered_off_the_edges():
    rng = np.random.default_rng(8)
    times = np.sort(rng.uniform(0, 1000, 4000))
    channels = np.where(np.arange(4000) % 2 == 0, 0, 699)
    new_times, new_channels = IdJitter(20.0)(times, channels, rng)
    check_events(new_times, new_channels)
    # an edge spike survives when its rounded jitter points inward or is 0: P = Phi(0.5 / 20)
    assert len(new_times) == pytest.approx(4000 * norm.cdf(0.5 / 20.0), abs=100)


def test_compose_applies_in_order_and_skips_none_and_disabled():
    sample = random_sample(np.random.default_rng(9))
    shift, jitter = RandomShift(40), IdJitter(4.0)
    rng = np.random.default_rng(10)
    expected = jitter(*shift(*sample, rng), rng)
    composed = Compose([shift, None, Dilate(0.5, 2.0, enabled=False), jitter])
    got = composed(*sample, np.random.default_rng(10))
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_invalid_parameters_are_rejected():
    for make in (lambda: RandomShift(-1), lambda: Dilate(1.5, 1.2), lambda: Dilate(0.0, 1.0),
                 lambda: IdJitter(-1.0), lambda: DelayLine(n_delays=0)):
        with pytest.raises(ValueError):
            make()


# ---- blend ---------------------------------------------------------------------------------

def banded_dataset(rng, n_per_class=(40, 40, 40), n_spikes=300, n_channels=700):
    """Class c fires only on channels [200c + 60, 200c + 140) within [250, 750) ms, each sample at its
    own centroid, so blends stay clear of the edges and reveal the class they were drawn from."""
    samples, labels, speakers = [], [], []
    for c, n in enumerate(n_per_class):
        for i in range(n):
            centre_c, centre_t = 200 * c + 100 + rng.integers(-15, 16), 500 + rng.uniform(-80, 80)
            t = np.sort(centre_t + rng.uniform(-150, 150, n_spikes))
            samples.append((t, centre_c + rng.integers(-25, 26, n_spikes)))
            labels.append(c)
            speakers.append(i % 5)
    return SpikeDataset.from_samples(samples, labels, speakers, n_channels=n_channels, duration_ms=1000.0,
                                     name="bands")


def test_blend_group_moves_members_onto_the_group_centroid():
    rng = np.random.default_rng(11)
    a = (np.sort(rng.uniform(100, 300, 200)), rng.integers(100, 200, 200))
    b = (np.sort(rng.uniform(400, 700, 300)), rng.integers(300, 500, 300))
    times, channels = blend_group([a, b], (1.0, 1.0), rng, 700, 1000.0)
    assert len(times) == 500 and np.all(np.diff(times) >= 0)
    mean_t = (a[0].mean() + b[0].mean()) / 2
    mean_c = (a[1].mean() + b[1].mean()) / 2
    assert times.mean() == pytest.approx(mean_t, abs=1e-9)
    assert abs(channels.mean() - mean_c) <= 0.5
    # each member is moved onto the mean by its own offset, not just their union
    expected_t = np.concatenate([a[0] + (mean_t - a[0].mean()), b[0] + (mean_t - b[0].mean())])
    expected_c = np.concatenate([a[1] + np.rint(mean_c - a[1].mean()), b[1] + np.rint(mean_c - b[1].mean())])
    order = np.argsort(expected_t, kind="stable")
    np.testing.assert_allclose(times, expected_t[order], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(channels, expected_c[order])


def test_blend_group_keeps_each_members_spikes_with_its_probability_and_skips_empty_members():
    rng = np.random.default_rng(12)
    a = random_sample(rng, n=20000, channels=(300, 400), times=(300, 700))
    b = random_sample(rng, n=10000, channels=(300, 400), times=(300, 700))
    times, _ = blend_group([a, b, (np.zeros(0), np.zeros(0, int))], (0.2, 0.7, 0.5), rng, 700, 1000.0)
    assert len(times) == pytest.approx(0.2 * 20000 + 0.7 * 10000, rel=0.02)
    empty = blend_group([(np.zeros(0), np.zeros(0, int))] * 2, (0.5, 0.5), rng, 700, 1000.0)
    assert len(empty[0]) == 0


def test_blend_draws_from_the_chosen_class_and_keeps_about_the_expected_spikes():
    rng = np.random.default_rng(13)
    data = banded_dataset(rng)
    for probs in ((0.5, 0.5), (1 / 3, 1 / 3, 1 / 3), (0.8, 0.2)):
        new = blend(data, probs, n_new=300, rng=np.random.default_rng(14))
        assert len(new) == 300 and np.all(new.speakers == -1)
        assert new.n_channels == 700 and new.n_classes == 3 and new.duration_ms == 1000.0
        for i in range(len(new)):
            times, channels = new.sample(i)
            c = new.labels[i]
            assert channels.min() >= 200 * c + 20 and channels.max() < 200 * c + 180
            check_events(times, channels)
        assert new.spikes_per_sample.mean() == pytest.approx(sum(probs) * 300, rel=0.02)


def test_blend_picks_classes_by_frequency_and_distinct_members():
    rng = np.random.default_rng(15)
    data = banded_dataset(rng, n_per_class=(300, 100, 0), n_spikes=20)
    new = blend(data, (1.0, 1.0), n_new=4000, rng=rng)
    assert np.mean(new.labels == 0) == pytest.approx(0.75, abs=0.03)
    # a class with exactly two samples always blends those two, never one with itself
    pair = SpikeDataset.from_samples([(40 + np.arange(10.0), np.full(10, 5)), (30 + np.arange(30.0), np.full(30, 9))],
                                     [0, 0], n_channels=20, duration_ms=100.0)
    assert set(blend(pair, (1.0, 1.0), n_new=50, rng=rng).spikes_per_sample) == {40}


def test_blend_is_fixed_by_the_seed_and_clips_to_the_trial_and_channels():
    rng = np.random.default_rng(16)
    samples = [random_sample(rng, n=rng.integers(0, 400), dtype=np.float32) for _ in range(60)]
    data = SpikeDataset.from_samples(samples, rng.integers(0, 4, 60), n_channels=700, duration_ms=1000.0)
    a = blend(data, rng=np.random.default_rng(1))
    b = blend(data, rng=np.random.default_rng(1))
    c = blend(data, rng=np.random.default_rng(2))
    assert len(a) == len(data)
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.channels, b.channels)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.offsets, c.offsets)
    for i in range(len(a)):
        check_events(*a.sample(i))
    make_batch(a.samples(), 700, 1.0, 1000)


def test_blend_is_fast_on_a_large_dataset():
    rng = np.random.default_rng(17)
    n, per = 2000, 5000
    times = np.sort(rng.uniform(0, 1000, (n, per)).astype(np.float32), axis=1).ravel()
    data = SpikeDataset(times, rng.integers(0, 700, n * per), np.arange(n + 1) * per, rng.integers(0, 20, n),
                        n_channels=700, duration_ms=1000.0)
    start = time.perf_counter()
    new = blend(data, rng=rng)
    assert time.perf_counter() - start < 5.0
    assert len(new) == n and new.spikes_per_sample.mean() == pytest.approx(per, rel=0.05)


def test_concat_joins_samples_labels_and_speakers():
    rng = np.random.default_rng(18)
    data = banded_dataset(rng, n_per_class=(5, 5), n_spikes=30)
    new = blend(data, n_new=4, rng=rng)
    both = concat(data, new)
    assert len(both) == 14 and both.n_channels == 700 and both.duration_ms == 1000.0
    np.testing.assert_array_equal(both.labels, np.concatenate([data.labels, new.labels]))
    np.testing.assert_array_equal(both.speakers[10:], -1)
    for i in range(14):
        expected = data.sample(i) if i < 10 else new.sample(i - 10)
        np.testing.assert_array_equal(both.sample(i)[0], expected[0])
        np.testing.assert_array_equal(both.sample(i)[1], expected[1])
    with pytest.raises(ValueError):
        concat(data, SpikeDataset.from_samples([], [], n_channels=10))


# ---- delay line ----------------------------------------------------------------------------

def test_delay_line_maps_copy_k_to_channel_block_k_and_delay_k():
    one = (np.array([5.0]), np.array([3]))
    r = DelayLine(n_delays=10, delay_ms=30.0, n_channels=700)
    assert r.n_copies == 11 and r.n_inputs == 7700
    times, channels = r(*one)
    np.testing.assert_allclose(times, 5.0 + 30.0 * np.arange(11))
    np.testing.assert_array_equal(channels, 3 + 700 * np.arange(11))
    m = DelayLine(n_delays=10, delay_ms=30.0, n_channels=700, include_undelayed=False)
    assert m.n_copies == 10 and m.n_inputs == 7000
    times, channels = m(*one)
    np.testing.assert_allclose(times, 5.0 + 30.0 * np.arange(10))
    np.testing.assert_array_equal(channels, 3 + 700 * np.arange(10))
    np.testing.assert_allclose(m.delays_ms, np.arange(0, 271, 30))


def test_delay_line_drops_copies_past_the_trial_end_and_sorts_by_time():
    dl = DelayLine(n_delays=3, delay_ms=10.0, n_channels=4, duration_ms=100.0)
    times, channels = dl(np.array([0.0, 10.0, 75.0], np.float32), np.array([1, 2, 3]))
    assert times.dtype == np.float32
    np.testing.assert_allclose(times, [0, 10, 10, 20, 20, 30, 30, 40, 75, 85, 95])
    # equal times keep copy order: copy 0 of channel 2 before copy 1 of channel 1
    np.testing.assert_array_equal(channels, [1, 2, 5, 6, 9, 10, 13, 14, 3, 7, 11])
    assert len(DelayLine(n_delays=3, delay_ms=10.0, n_channels=4, duration_ms=None)(
        np.array([95.0]), np.array([0]))[0]) == 4
    empty = dl(np.zeros(0), np.zeros(0, int))
    assert len(empty[0]) == 0 and len(empty[1]) == 0
    with pytest.raises(ValueError):
        dl(np.array([1.0]), np.array([4]))


def test_delayed_samples_bin_onto_the_expanded_inputs():
    rng = np.random.default_rng(19)
    dl = DelayLine()
    samples = [dl(*random_sample(rng, n=300)) for _ in range(4)]
    batch = make_batch(samples, dl.n_inputs, 1.0, 1000)
    assert batch.channel.max() < 7700 and batch.channel.max() >= 7000
