"""Train/validation splits, leave-one-speaker-out folds, minibatches of an epoch."""
import numpy as np
import pytest

from eventprop_lab.data.augment import Compose, DelayLine, RandomShift, blend, concat
from eventprop_lab.data.events import SpikeDataset
from eventprop_lab.data.splits import batches, epoch_batches, leave_one_speaker_out, train_validation_split
from kernels import make_batch


def make_dataset(rng, n=600, n_classes=20, n_speakers=10, n_spikes=(0, 200)):
    labels = rng.integers(0, n_classes, n)
    labels[:n_classes] = np.arange(n_classes)
    samples = []
    for _ in range(n):
        k = rng.integers(*n_spikes)
        samples.append((np.sort(rng.uniform(0, 1000, k)), rng.integers(0, 700, k)))
    return SpikeDataset.from_samples(samples, labels, rng.integers(0, n_speakers, n), n_channels=700,
                                     n_classes=n_classes, duration_ms=1000.0)


def assert_partition(train, validation, n):
    assert len(np.intersect1d(train, validation)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, validation])), np.arange(n))


def test_random_split_is_disjoint_covering_stratified_and_seeded():
    rng = np.random.default_rng(0)
    data = make_dataset(rng, n=2000)
    train, validation = train_validation_split(data, 0.1, rng=np.random.default_rng(1))
    assert_partition(train, validation, len(data))
    assert len(validation) == 200
    for c in range(data.n_classes):
        n_c = np.sum(data.labels == c)
        assert abs(np.sum(data.labels[validation] == c) - 0.1 * n_c) <= 1
    again = train_validation_split(data, 0.1, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(again[1], validation)
    other = train_validation_split(data, 0.1, rng=np.random.default_rng(2))
    assert not np.array_equal(other[1], validation)


def test_random_split_of_small_classes_still_sums_to_the_fraction():
    labels = np.repeat(np.arange(20), 5)
    data = SpikeDataset.from_samples([(np.zeros(0), np.zeros(0, int))] * 100, labels, n_channels=4)
    train, validation = train_validation_split(data, 0.1, 3)
    assert_partition(train, validation, 100)
    assert len(validation) == 10 and np.bincount(data.labels[validation], minlength=20).max() == 1


def test_speaker_split_holds_out_whole_speakers_and_keeps_blends_in_training():
    rng = np.random.default_rng(4)
    data = make_dataset(rng)
    data = concat(data, blend(data, n_new=50, rng=rng))
    train, validation = train_validation_split(data, 0.2, rng=rng, by_speaker=True)
    assert_partition(train, validation, len(data))
    held = np.unique(data.speakers[validation])
    assert len(held) == 2 and -1 not in held
    assert not np.isin(data.speakers[train], held).any()
    with pytest.raises(ValueError):
        train_validation_split(data, 1.0, rng=rng)
    with pytest.raises(ValueError):
        train_validation_split(data, 0.1)


def test_leave_one_speaker_out_gives_one_fold_per_speaker():
    rng = np.random.default_rng(5)
    data = make_dataset(rng, n_speakers=10)
    data = concat(data, blend(data, n_new=30, rng=rng))
    folds = list(leave_one_speaker_out(data))
    assert [speaker for speaker, _, _ in folds] == list(range(10))
    for speaker, train, validation in folds:
        assert_partition(train, validation, len(data))
        assert np.all(data.speakers[validation] == speaker)
        assert speaker not in data.speakers[train]
        assert np.sum(data.speakers[train] == -1) == 30


def test_batches_cover_every_index_once_per_epoch():
    ordered = batches(10, 4)
    assert [list(b) for b in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [len(b) for b in batches(10, 4, drop_last=True)] == [4, 4]
    shuffled = batches(103, 8, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(np.sort(np.concatenate(shuffled)), np.arange(103))
    assert not np.array_equal(np.concatenate(shuffled), np.arange(103))
    again = batches(103, 8, rng=np.random.default_rng(6))
    assert all(np.array_equal(a, b) for a, b in zip(shuffled, again))
    assert batches(0, 8) == []
    with pytest.raises(ValueError):
        batches(10, 0)


def test_epoch_batches_augment_then_delay_and_bin_with_make_batch():
    rng = np.random.default_rng(7)
    data = make_dataset(rng, n=70)
    delay = DelayLine(n_delays=10, delay_ms=30.0, n_channels=700)
    augment = Compose([RandomShift(40)])
    # the generator first shuffles the epoch, then augments each sample in batch order
    replay = np.random.default_rng(8)
    order = replay.permutation(70)
    seen = []
    for samples, labels, indices in epoch_batches(data, 32, np.random.default_rng(8), augment, delay):
        np.testing.assert_array_equal(labels, data.labels[indices])
        done = sum(len(b) for b in seen)
        np.testing.assert_array_equal(indices, order[done:done + len(indices)])
        batch = make_batch(samples, delay.n_inputs, 1.0, 1000)
        assert len(batch.ptr) == len(samples) + 1
        for (times, channels), i in zip(samples, indices):
            expected = delay(*augment(*data.sample(i), replay))
            np.testing.assert_array_equal(times, expected[0])
            np.testing.assert_array_equal(channels, expected[1])
        seen.append(indices)
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(70))
    first = next(epoch_batches(data, 32, np.random.default_rng(8), augment, delay))
    again = next(epoch_batches(data, 32, np.random.default_rng(8), augment, delay))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first[0], again[0]))


def test_epoch_batches_for_evaluation_keep_order_and_events():
    rng = np.random.default_rng(9)
    data = make_dataset(rng, n=20)
    out = list(epoch_batches(data, 8))
    np.testing.assert_array_equal(np.concatenate([i for _, _, i in out]), np.arange(20))
    for samples, _, indices in out:
        for (times, channels), i in zip(samples, indices):
            np.testing.assert_array_equal(times, data.sample(i)[0])
        make_batch(samples, data.n_channels, 2.0, 500)
    with pytest.raises(ValueError):
        next(epoch_batches(data, 8, augment=RandomShift(40)))
