"""SHD-layout HDF5 files: writing, reading, validation, and SHD/SSC through tonic without network."""
import os
import zipfile

import h5py
import numpy as np
import pytest

from eventprop_lab.data import sources
from eventprop_lab.data.events import SpikeDataset
from eventprop_lab.data.hdf5 import read_shd_h5, write_shd_h5
from eventprop_lab.data.sources import Splits, load_dataset

F16 = h5py.vlen_dtype(np.float16)
U16 = h5py.vlen_dtype(np.uint16)


def random_samples(n, rng, n_channels=700, max_spikes=60):
    samples = []
    for i in range(n):
        k = 0 if i == 1 else int(rng.integers(1, max_spikes))  # sample 1 is empty: still a sample
        samples.append((np.sort(rng.uniform(0, 1000, k)), rng.integers(0, n_channels, k)))
    return samples


def write_raw(path, times_s, units, labels, speakers=None, keys=None, times_dtype=F16, units_dtype=U16,
              labels_dtype=np.uint16, leave_out=()):
    """An SHD-layout file made with h5py directly, so the reader is not only checked against our writer."""
    with h5py.File(path, "w") as f:
        data = {"spikes/times": (times_s, times_dtype), "spikes/units": (units, units_dtype),
                "labels": (labels, labels_dtype), "extra/speaker": (speakers, np.uint16),
                "extra/keys": (keys, None)}
        for key, (values, dtype) in data.items():
            if key in leave_out or values is None:
                continue
            base = h5py.check_vlen_dtype(np.dtype(dtype)) if dtype is not None else None
            if base is not None:
                arr = np.empty(len(values), object)
                arr[:] = [np.asarray(v, base) for v in values]
                f.create_dataset(key, data=arr, dtype=dtype)
            else:
                f.create_dataset(key, data=np.asarray(values, dtype))


def good_raw(path, **changes):
    """Three samples, the second one unsorted, in the official layout; changes override fields."""
    fields = dict(times_s=[[0.001, 0.002, 0.5], [0.3, 0.1, 0.2], []], units=[[5, 6, 7], [1, 2, 3], []],
                  labels=[0, 2, 1], speakers=[4, 4, 9], keys=[b"zero", b"one", b"two"])
    fields.update(changes)
    write_raw(path, **fields)
    return path


def test_writer_uses_the_exact_shd_layout_and_dtypes(tmp_path):
    path = tmp_path / "mine.h5"
    write_shd_h5(path, random_samples(4, np.random.default_rng(0)), [0, 1, 2, 1], [3, 3, 5, 5],
                 keys=["a", "b", "c"])
    with h5py.File(path, "r") as f:
        assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float16
        assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.uint16
        assert f["labels"].dtype == np.uint16 and f["extra/speaker"].dtype == np.uint16
        assert list(f["extra/keys"][()]) == [b"a", b"b", b"c"]
        assert f["spikes/times"][0].max() <= 1.0  # seconds
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_round_trip_keeps_samples_labels_speakers_and_empty_samples(tmp_path):
    samples = random_samples(6, np.random.default_rng(1))
    labels, speakers = [0, 3, 1, 2, 3, 0], [1, 1, 2, 2, 7, 7]
    write_shd_h5(tmp_path / "x.h5", samples, labels, speakers)
    data = read_shd_h5(tmp_path / "x.h5")
    assert len(data) == 6 and data.n_classes == 4 and data.n_channels == 700
    np.testing.assert_array_equal(data.labels, labels)
    np.testing.assert_array_equal(data.speakers, speakers)
    assert data.spikes_per_sample[1] == 0
    for i, (t, c) in enumerate(samples):
        got_t, got_c = data.sample(i)
        np.testing.assert_array_equal(got_c, c)
        # float16 seconds keep about 11 bits: within 0.5 ms near 1 s
        np.testing.assert_allclose(got_t, t, atol=0.5)
        assert np.all(np.diff(got_t) >= 0)


def test_class_names_come_from_extra_keys_and_stay_through_subset_save_and_load(tmp_path):
    write_shd_h5(tmp_path / "x.h5", random_samples(4, np.random.default_rng(2)), [0, 1, 2, 1], [0, 0, 1, 1],
                 keys=["zero", "one", "two"])
    data = read_shd_h5(tmp_path / "x.h5")
    assert data.class_names == ("zero", "one", "two")
    part = data.subset([1, 3])
    assert part.class_names == ("zero", "one", "two") and part.n_classes == 3
    part.save(tmp_path / "part.npz")
    assert SpikeDataset.load(tmp_path / "part.npz").class_names == ("zero", "one", "two")
    unnamed = SpikeDataset.from_samples(random_samples(2, np.random.default_rng(3)), [0, 1])
    unnamed.save(tmp_path / "unnamed.npz")
    assert unnamed.class_names is None and SpikeDataset.load(tmp_path / "unnamed.npz").class_names is None
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        SpikeDataset.from_samples(random_samples(2, np.random.default_rng(3)), [0, 2], class_names=["a", "b"])


def test_reader_takes_files_made_without_our_writer_and_sorts_by_time(tmp_path):
    data = read_shd_h5(good_raw(tmp_path / "raw.h5"), name="raw")
    assert data.name == "raw" and data.n_classes == 3 and list(data.speakers) == [4, 4, 9]
    t, c = data.sample(1)
    np.testing.assert_allclose(t, [100, 200, 300], rtol=1e-3)
    np.testing.assert_array_equal(c, [2, 3, 1])
    assert data.spikes_per_sample[2] == 0
    # other integer and float types, and no extra/ group, are fine for a user's own file
    write_raw(tmp_path / "plain.h5", [[0.25], [0.5, 0.75]], [[1], [2, 3]], [1, 0],
              times_dtype=h5py.vlen_dtype(np.float64), units_dtype=h5py.vlen_dtype(np.int32),
              labels_dtype=np.int64, leave_out=("extra/speaker", "extra/keys"))
    plain = read_shd_h5(tmp_path / "plain.h5", n_channels=4)
    assert plain.n_classes == 2 and list(plain.speakers) == [0, 0] and plain.n_channels == 4
    np.testing.assert_allclose(plain.sample(1)[0], [500, 750])


def _cut(path):
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)


BAD_FILES = {
    "not_hdf5": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)), ["not a readable HDF5"]),
    "truncated": (lambda p: (good_raw(p), _cut(p)), ["not a readable HDF5"]),
    "no_units": (lambda p: good_raw(p, units=None), ["missing", "spikes/units"]),
    "no_labels": (lambda p: good_raw(p, labels=None), ["missing", "labels"]),
    "labels_short": (lambda p: good_raw(p, labels=[0, 1]), ["labels has 2", "spikes/times has 3"]),
    "speakers_long": (lambda p: good_raw(p, speakers=[1, 1, 1, 1]), ["extra/speaker has 4"]),
    "units_short": (lambda p: good_raw(p, units=[[5, 6, 7], [1, 2], []]), ["sample 1", "3 spike times but 2 units"]),
    "channel_too_big": (lambda p: good_raw(p, units=[[5, 6, 7], [1, 700, 3], []]), ["sample 1", "channel id 700"]),
    "label_too_big": (lambda p: good_raw(p, labels=[0, 3, 1]), ["sample 1", "label 3", "extra/keys"]),
    "label_negative": (lambda p: good_raw(p, labels=[0, 1, -1], labels_dtype=np.int16), ["sample 2", "label -1"]),
    "nan_time": (lambda p: good_raw(p, times_s=[[0.001, np.nan, 0.5], [0.3, 0.1, 0.2], []]),
                 ["sample 0", "spike 1", "not a finite number"]),
    "inf_time": (lambda p: good_raw(p, times_s=[[0.001, 0.002, 0.5], [0.3, np.inf, 0.2], []]),
                 ["sample 1", "not a finite number"]),
    "negative_time": (lambda p: good_raw(p, times_s=[[0.001, 0.002, 0.5], [0.3, 0.1, -0.2], []]),
                      ["sample 1", "spike 2", "negative time"]),
    "float_units": (lambda p: good_raw(p, units_dtype=h5py.vlen_dtype(np.float32)), ["spikes/units", "integer"]),
    "float_labels": (lambda p: good_raw(p, labels_dtype=np.float32), ["labels", "integers"]),
    "times_not_vlen": (lambda p: write_raw(p, np.zeros((3, 2)), [[1, 2]] * 3, [0, 0, 0], times_dtype=np.float32),
                       ["spikes/times", "variable-length"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_are_refused_naming_file_sample_and_problem(tmp_path, case):
    make, phrases = BAD_FILES[case]
    path = tmp_path / f"{case}.h5"
    make(path)
    with pytest.raises(ValueError) as err:
        read_shd_h5(path)
    message = str(err.value)
    assert str(path) in message
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in {message!r}"


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.h5"):
        read_shd_h5(tmp_path / "nothere.h5")


# ---- SHD and SSC through tonic, from files in data_dir, without network --------------------------

def place(data_dir, kind, split, n, n_classes, seed):
    rng = np.random.default_rng(seed)
    samples = random_samples(n, rng)
    labels = rng.integers(0, n_classes, n)
    speakers = rng.integers(0, 12, n)
    folder = data_dir / kind.upper()
    write_shd_h5(folder / f"{kind}_{split}.h5", samples, labels, speakers,
                 keys=[f"word-{i}" for i in range(n_classes)])
    return samples, labels, speakers


def test_shd_loads_through_tonic_from_the_data_dir(tmp_path, monkeypatch):
    samples, labels, speakers = place(tmp_path, "shd", "train", 12, 20, 0)
    place(tmp_path, "shd", "test", 5, 20, 1)
    splits = load_dataset("shd", data_dir=tmp_path)
    assert isinstance(splits, Splits) and splits.validation is None
    assert len(splits.train) == 12 and len(splits.test) == 5
    assert splits.train.n_classes == 20 and splits.train.name == "shd-train"
    np.testing.assert_array_equal(splits.train.labels, labels)
    np.testing.assert_array_equal(splits.train.speakers, speakers)
    # the same events as tonic's own reader gives for a sample (tonic: integer microseconds)
    source = sources._open_with_tonic("shd", "train", tmp_path)
    events, label = source[3]
    t, c = splits.train.sample(3)
    assert label == labels[3]
    np.testing.assert_array_equal(c, events["x"])
    np.testing.assert_allclose(t, events["t"] / 1000.0, atol=1e-3)
    np.testing.assert_array_equal(source.speaker, speakers)
    # converted once: the next load reads the cache beside the file
    assert len(list((tmp_path / "SHD").glob("shd_train.*.npz"))) == 1
    monkeypatch.setattr(sources, "read_shd_h5", lambda *a, **k: pytest.fail("read the .h5 again"))
    again = load_dataset("shd", data_dir=tmp_path)
    np.testing.assert_array_equal(again.train.times, splits.train.times)
    assert again.train.class_names == splits.train.class_names == tuple(f"word-{i}" for i in range(20))


def test_a_replaced_shd_file_is_read_again(tmp_path):
    place(tmp_path, "shd", "train", 12, 20, 0)
    place(tmp_path, "shd", "test", 5, 20, 1)
    first = load_dataset("shd", data_dir=tmp_path)
    _, labels, _ = place(tmp_path, "shd", "train", 9, 20, 2)
    path = tmp_path / "SHD" / "shd_train.h5"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = load_dataset("shd", data_dir=tmp_path)
    assert len(first.train) == 12 and len(second.train) == 9
    np.testing.assert_array_equal(second.train.labels, labels)
    assert len(list((tmp_path / "SHD").glob("shd_train.*.npz"))) == 1  # the stale cache is gone


def test_ssc_has_a_validation_split(tmp_path):
    for split, n in (("train", 10), ("valid", 4), ("test", 6)):
        place(tmp_path, "ssc", split, n, 35, n)
    splits = load_dataset("ssc", data_dir=tmp_path)
    assert [len(s) for s in splits] == [10, 4, 6]
    assert splits.validation.n_classes == 35 and splits.validation.name == "ssc-valid"


def test_missing_shd_or_ssc_files_say_which_file_goes_where(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("shd", data_dir=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "SHD" / "shd_train.h5") in message and "zenkelab" in message
    place(tmp_path, "ssc", "train", 3, 35, 0)
    place(tmp_path, "ssc", "test", 3, 35, 1)
    with pytest.raises(FileNotFoundError, match="ssc_valid.h5"):
        load_dataset("ssc", data_dir=tmp_path)


def test_a_zipped_file_as_downloaded_is_unpacked_without_network(tmp_path):
    _, labels, _ = place(tmp_path, "shd", "train", 6, 20, 0)
    place(tmp_path, "shd", "test", 4, 20, 1)
    h5 = tmp_path / "SHD" / "shd_train.h5"
    with zipfile.ZipFile(h5.with_name("shd_train.h5.zip"), "w") as z:
        z.write(h5, "shd_train.h5")
    h5.unlink()
    splits = load_dataset("shd", data_dir=tmp_path)
    np.testing.assert_array_equal(splits.train.labels, labels)
    assert h5.is_file()
    (tmp_path / "SHD" / "shd_test.h5").unlink()
    (tmp_path / "SHD" / "shd_test.h5.zip").write_bytes(b"PK broken")
    with pytest.raises(ValueError, match="shd_test.h5.zip"):
        load_dataset("shd", data_dir=tmp_path)


def test_a_bad_official_file_is_a_value_error_naming_it(tmp_path):
    (tmp_path / "SHD").mkdir()
    good_raw(tmp_path / "SHD" / "shd_train.h5", speakers=None)
    with pytest.raises(ValueError, match="shd_train.h5.*extra/speaker"):
        load_dataset("shd", data_dir=tmp_path)
    (tmp_path / "SHD" / "shd_train.h5").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="shd_train.h5.*not a readable HDF5"):
        load_dataset("shd", data_dir=tmp_path)


def test_own_files_by_path_with_train_and_test_siblings(tmp_path):
    rng = np.random.default_rng(3)
    write_shd_h5(tmp_path / "words_train.h5", random_samples(7, rng), [0, 1] * 3 + [0], [0] * 7)
    alone = load_dataset(f"h5:{tmp_path / 'words_train.h5'}", data_dir=tmp_path)
    assert len(alone.train) == 7 and alone.validation is None and alone.test is None
    write_shd_h5(tmp_path / "words_test.h5", random_samples(3, rng), [1, 0, 1], [2, 2, 2])
    both = load_dataset(str(tmp_path / "words_train.h5"))
    assert len(both.train) == 7 and len(both.test) == 3 and both.validation is None


def test_unknown_dataset_names_are_refused():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("mnist")
