"""`eventprop-lab encode`: naming, splits, skipped files, refusals, atomic outputs, determinism.

Most tests use a stand-in encoder (fast, and independent of the cochlea); the end-to-end ones use
the real cochlea of eventprop_lab.data.audio on a few generated tones."""
import argparse
import json

import h5py
import numpy as np
import pytest
from scipy.io import wavfile

from eventprop_lab.cli import main
from eventprop_lab.data import load_dataset, read_shd_h5
from eventprop_lab.encode import CochleaEncoder, add_encode_parser, file_seed, natural_key, run_encode

RATE = 16000


class FakeEncoder:
    """A cochlea stand-in: spikes drawn from the file's seed, at a rate set by its loudness.

    Module level, so the spawned encoding processes can unpickle it."""

    def __init__(self, crash_on=None):
        self.crash_on = crash_on

    def settings(self):
        return {"model": "fake"}

    def __call__(self, path, seed):
        if self.crash_on and self.crash_on in str(path):
            raise RuntimeError("stand-in crash")
        if path.stat().st_size == 0:
            raise ValueError("empty file")
        try:
            rate, x = wavfile.read(path)
        except Exception as exc:
            raise ValueError(f"unreadable audio ({exc})") from None
        if len(x) == 0:
            raise ValueError("empty audio")
        if not np.abs(x).max():
            raise ValueError("silent audio")
        seconds = len(x) / rate
        rng = np.random.default_rng(seed)
        n = 5 + int(50 * seconds)
        return np.sort(rng.uniform(0, seconds * 1000, n)), rng.integers(0, 700, n), seconds


def tone(path, seconds=0.1, freq=440.0, amplitude=0.3):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * RATE)) / RATE
    wavfile.write(path, RATE, (amplitude * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16))
    return path


def encode(argv, encoder=FakeEncoder()):
    parser = argparse.ArgumentParser()
    add_encode_parser(parser.add_subparsers(dest="command"))
    return run_encode(parser.parse_args(["encode", *map(str, argv)]), encoder=encoder)


def digits(folder, labels=(0, 1, 2), speakers=("alice", "bob", "carol"), per=2):
    for label in labels:
        for s, speaker in enumerate(speakers):
            for i in range(per):
                tone(folder / f"{label}_{speaker}_{i}.wav", freq=200 + 100 * label + 10 * s + i)
    return folder


def keys_of(path):
    with h5py.File(path, "r") as f:
        return [k.decode() for k in f["extra/keys"][()]]


def manifest(path):
    return json.loads(path.read_text())


def test_default_pattern_reads_label_speaker_and_index(tmp_path, capsys):
    wav = tmp_path / "wav"
    for name in ("10_alice_0.wav", "2_bob_1.wav", "0_alice_1.wav", "2_en_us+m1_12.wav"):
        tone(wav / name)
    (wav / "notes.txt").write_text("not audio, not a problem")
    assert encode([wav, "--out", tmp_path / "d.h5", "--jobs", 1]) == 0
    assert keys_of(tmp_path / "d.h5") == ["0", "2", "10"]  # numbers sort numerically
    data = read_shd_h5(tmp_path / "d.h5")
    m = manifest(tmp_path / "d.json")
    assert m["keys"] == ["0", "2", "10"] and m["speakers"] == ["alice", "bob", "en_us+m1"]
    files = {f["file"]: f for f in m["files"]}
    assert files["2_en_us+m1_12.wav"]["speaker"] == "en_us+m1" and files["2_en_us+m1_12.wav"]["index"] == 12
    assert len(m["files"]) == 4  # notes.txt is not audio, so not a file of the set
    # sample order is the sorted file order; labels and speakers are the ids of the name lists
    assert data.labels.tolist() == [0, 2, 1, 1] and data.speakers.tolist() == [0, 0, 1, 2]
    assert "encoded 4 of 4 files" in capsys.readouterr().out


def test_regex_with_folders_and_a_pattern_with_a_slash(tmp_path):
    wav = tmp_path / "wav"
    for speaker in ("ann", "ben"):
        for word in ("yes", "no"):
            tone(wav / speaker / f"{word}-{speaker}-1.wav")
    regex = r"^(?P<speaker>\w+)/(?P<label>[a-z]+)-\w+-(?P<index>\d+)\.wav$"
    assert encode([wav, "--regex", regex, "--out", tmp_path / "r.h5", "--jobs", 1]) == 0
    m = manifest(tmp_path / "r.json")
    assert m["keys"] == ["no", "yes"] and m["speakers"] == ["ann", "ben"]
    assert encode([wav, "--pattern", "{speaker}/{label}-{}-{index}", "--out", tmp_path / "p.h5"]) == 2
    assert encode([wav, "--pattern", "{speaker}/{label}-ann-{index}", "--out", tmp_path / "p.h5", "--jobs", 1]) == 0
    assert manifest(tmp_path / "p.json")["speakers"] == ["ann"]  # ben's files do not match


def test_csv_gives_labels_and_a_file_it_lacks_is_skipped(tmp_path, capsys):
    wav = tmp_path / "wav"
    for name in ("a.wav", "sub/b.wav", "c.wav", "d.wav"):
        tone(wav / name)
    table = tmp_path / "labels.csv"
    table.write_text("file,label,speaker\na.wav,cat,s1\nsub/b.wav,dog,s2\nd.wav,,s1\n")
    assert encode([wav, "--csv", table, "--out", tmp_path / "c.h5", "--jobs", 1]) == 0
    files = {f["file"]: f for f in manifest(tmp_path / "c.json")["files"]}
    assert files["a.wav"]["label"] == "cat" and files["sub/b.wav"]["speaker"] == "s2"
    assert files["c.wav"]["skipped"].startswith("not in") and files["d.wav"]["skipped"] == "label missing in the CSV"
    err = capsys.readouterr().err
    assert "c.wav" in err and "d.wav" in err
    table.write_text("name,label\na.wav,cat\n")
    assert encode([wav, "--csv", table, "--out", tmp_path / "c.h5"]) == 2
    assert "no column file" in capsys.readouterr().err


def test_split_by_speaker_writes_a_pair_that_load_dataset_finds(tmp_path):
    wav = digits(tmp_path / "wav")
    assert encode([wav, "--out", tmp_path / "s.h5", "--split", "test=speaker:carol", "--jobs", 1]) == 0
    assert not (tmp_path / "s.h5").exists()
    splits = load_dataset(tmp_path / "s_train.h5")
    assert len(splits.train) == 12 and len(splits.test) == 6 and splits.validation is None
    m = manifest(tmp_path / "s.json")
    assert set(splits.test.speakers.tolist()) == {m["speakers"].index("carol")}
    assert {f["split"] for f in m["files"] if f["speaker"] == "carol"} == {"test"}


def test_split_by_index_and_valid_from_what_is_left(tmp_path):
    wav = digits(tmp_path / "wav", per=3)
    assert encode([wav, "--out", tmp_path / "i.h5", "--split", "test=index:0", "--split", "valid=index:1,0",
                   "--jobs", 1]) == 0
    splits = load_dataset(tmp_path / "i_train.h5")
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (9, 9, 9)
    by_split = {}
    for f in manifest(tmp_path / "i.json")["files"]:
        by_split.setdefault(f["split"], set()).add(f["index"])
    assert by_split == {"test": {0}, "valid": {1}, "train": {2}}


def test_split_by_fraction_is_stratified_and_seeded(tmp_path):
    wav = digits(tmp_path / "wav", labels=range(4), per=5)  # 15 files per label
    args = [wav, "--split", "test=fraction:0.2", "--jobs", 1]
    assert encode(args + ["--out", tmp_path / "a.h5"]) == 0
    test = read_shd_h5(tmp_path / "a_test.h5")
    assert np.bincount(test.labels).tolist() == [3, 3, 3, 3]
    assert encode(args + ["--out", tmp_path / "b.h5"]) == 0
    held = [[f["file"] for f in manifest(tmp_path / n)["files"] if f["split"] == "test"] for n in ("a.json", "b.json")]
    assert held[0] == held[1]
    assert encode(args + ["--out", tmp_path / "c.h5", "--seed", "5"]) == 0
    assert [f["file"] for f in manifest(tmp_path / "c.json")["files"] if f["split"] == "test"] != held[0]


@pytest.mark.parametrize("spec, message", [
    ("test=speaker:dave", "speakers are alice, bob, carol"),
    ("test=fraction:1.5", "between 0 and 1"),
    ("train=speaker:alice", "write --split test="),
    ("test=index:x", "whole numbers"),
    ("test=index:7", "selects no file"),
])
def test_bad_split_specs_are_refused_before_encoding(tmp_path, capsys, spec, message):
    wav = digits(tmp_path / "wav", per=1)
    assert encode([wav, "--out", tmp_path / "x.h5", "--split", spec, "--jobs", 1], encoder=None) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("x*"))


def _bad_files(wav):
    tone(wav / "1_zed_0.wav", amplitude=0.0)  # silent
    (wav / "1_zed_1.wav").write_bytes(b"")  # empty
    (wav / "2_zed_0.wav").write_bytes(b"RIFF not really")  # unreadable
    tone(wav / "hello.wav")  # name does not match the pattern


def test_bad_files_are_named_skipped_and_counted(tmp_path, capsys):
    wav = digits(tmp_path / "wav", per=1)
    _bad_files(wav)
    assert encode([wav, "--out", tmp_path / "b.h5", "--jobs", 1]) == 0
    out, err = capsys.readouterr()
    for name in ("1_zed_0.wav", "1_zed_1.wav", "2_zed_0.wav", "hello.wav"):
        assert name in err
    assert "silent" in err and "empty" in err and "unreadable" in err and "does not match --pattern" in err
    assert "encoded 9 of 13 files" in out and "skipped 4" in out
    assert len(read_shd_h5(tmp_path / "b.h5")) == 9
    skipped = {f["file"]: f["skipped"] for f in manifest(tmp_path / "b.json")["files"] if "skipped" in f}
    assert set(skipped) == {"1_zed_0.wav", "1_zed_1.wav", "2_zed_0.wav", "hello.wav"}


def test_strict_refuses_and_writes_nothing(tmp_path, capsys):
    wav = digits(tmp_path / "wav", per=1)
    tone(wav / "1_bob_9.wav", amplitude=0.0)
    assert encode([wav, "--out", tmp_path / "s.h5", "--strict", "--jobs", 1]) == 2
    err = capsys.readouterr().err
    assert "--strict" in err and "1_bob_9.wav: silent" in err
    tone(wav / "oops.wav")  # a naming problem is refused before any encoding
    assert encode([wav, "--out", tmp_path / "s.h5", "--strict", "--split", "test=speaker:bob"], encoder=None) == 2
    assert "oops.wav" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wav"]


def test_a_failed_run_leaves_the_earlier_outputs_whole(tmp_path, monkeypatch):
    wav = digits(tmp_path / "wav", per=1)
    args = [wav, "--out", tmp_path / "o.h5", "--split", "test=speaker:carol", "--jobs", 1]
    assert encode(args) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert set(before) == {"o_train.h5", "o_test.h5", "o.json"}
    tone(wav / "2_dave_0.wav")
    with pytest.raises(RuntimeError, match="2_dave_0.wav"):  # the cochlea fails on a file half-way
        encode(args, encoder=FakeEncoder(crash_on="2_dave_0"))

    import eventprop_lab.data.hdf5 as hdf5

    real, calls = hdf5.write_shd_h5, []

    def fail_second(path, *a, **kw):  # the disk fills while the second output is written
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(path, *a, **kw)

    monkeypatch.setattr(hdf5, "write_shd_h5", fail_second)
    with pytest.raises(OSError):
        encode(args)
    assert len(calls) == 2
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before  # unchanged, and no temporary file left behind


def test_trial_ms_drops_later_spikes_and_warns(tmp_path, capsys):
    wav = tmp_path / "wav"
    tone(wav / "0_a_0.wav", seconds=0.3)
    tone(wav / "1_a_0.wav", seconds=0.1)
    assert encode([wav, "--out", tmp_path / "t.h5", "--trial-ms", "200", "--jobs", 1]) == 0
    assert "1 files were longer than --trial-ms 200" in capsys.readouterr().out
    data = read_shd_h5(tmp_path / "t.h5")
    assert data.times.max() < 200.5  # float16 seconds in the file


def test_output_and_seeds_do_not_depend_on_the_job_count(tmp_path):
    wav = digits(tmp_path / "wav", per=2)
    outs = []
    for jobs in (1, 2):
        out = tmp_path / f"j{jobs}.h5"
        assert encode([wav, "--out", out, "--jobs", jobs, "--seed", 3]) == 0
        d = read_shd_h5(out)
        outs.append((d.times, d.channels, d.offsets, d.labels, d.speakers))
    for a, b in zip(*outs):
        assert np.array_equal(a, b)
    assert file_seed(3, "0_alice_0.wav") == file_seed(3, "0_alice_0.wav") != file_seed(4, "0_alice_0.wav")


def test_natural_key_sorts_numbers_numerically():
    assert sorted(["10", "b", "2", "a", "0"], key=natural_key) == ["0", "2", "10", "a", "b"]


# ---- with the real cochlea ----------------------------------------------------------------------

@pytest.fixture
def cochlea():
    return pytest.importorskip("eventprop_lab.data.audio", reason="the cochlea (eventprop_lab/data/audio.py) is not here")


def test_real_cochlea_end_to_end_encode_then_train(cochlea, tmp_path, capsys):
    wav = tmp_path / "wav"
    for label in range(2):
        for s, speaker in enumerate(("low", "mid", "high")):
            for i in range(2):
                f0 = (300, 1200)[label] * (1 + 0.1 * s) * (1 + 0.03 * i)
                tone(wav / f"{label}_{speaker}_{i}.wav", seconds=0.15 + 0.05 * i, freq=f0)
    stem = tmp_path / "tones"
    assert main(["encode", str(wav), "--out", f"{stem}.h5", "--split", "test=speaker:high", "--jobs", "2",
                 "--trial-ms", "300"]) == 0
    splits = load_dataset(f"{stem}_train.h5")
    # encoding processes give what one call in this process gives with the file's own seed
    record = next(f for f in manifest(tmp_path / "tones.json")["files"] if f["file"] == "1_mid_1.wav")
    times, channels, _ = CochleaEncoder()(wav / "1_mid_1.wav", file_seed(0, "1_mid_1.wav"))
    data = splits.train if record["split"] == "train" else splits.test
    got = slice(data.offsets[record["sample"]], data.offsets[record["sample"] + 1])
    assert np.array_equal(data.channels[got], channels)
    assert np.allclose(data.times[got], times, atol=0.5)  # float16 seconds in the file
    assert (len(splits.train), len(splits.test)) == (8, 4) and splits.train.n_classes == 2
    counts = np.diff(splits.train.offsets)
    assert counts.min() > 0 and splits.train.times.max() < 300.5
    assert splits.train.channels.max() < 700
    capsys.readouterr()
    assert main(["train", "--dataset", f"{stem}_train.h5", "--epochs", "1", "--n-hidden", "16", "--trial-ms", "300",
                 "--batch-size", "4", "--no-warmup", "--out-dir", str(tmp_path / "run"), "--probe-every", "0"]) == 0
    assert "4 test samples" in capsys.readouterr().out  # the held-out speaker came along
    assert (tmp_path / "run" / "metrics.jsonl").exists()


def test_tts_digit_speakers_include_the_held_out_ones_of_the_makefile():
    import importlib.util
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("make_tts_digits", root / "scripts" / "make_tts_digits.py")
    tts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tts)
    names = tts.speakers(20)
    assert len(set(names)) == 20 and len(list(tts.clips(names))) == 3000
    held = re.search(r"--split test=speaker:(\S+)", (root / "Makefile").read_text()).group(1).split(",")
    assert len(held) == 2 and set(held) <= set(names)
    # each held-out speaker's accent and variant are still heard in training, from other speakers
    rest = [n.split("+") for n in names if n not in held]
    for voice, variant in (h.split("+") for h in held):
        assert voice in {v for v, _ in rest} and variant in {m for _, m in rest}
    # the words set (make tts-words): 16 speakers x 20 classes x 16 clips, labels 0-19 named by KEYS
    words = tts.word_speakers()
    clips = list(tts.word_clips(words))
    assert len(set(words)) == 16 and len(clips) == 5120 and {c[2] for c in clips} == set(range(20))
    assert tts.KEYS[0] == "english_zero" and tts.KEYS[19] == "german_neun"
    held = re.search(r"tts_words\.h5 \\\n\s*--split test=speaker:(\S+)", (root / "Makefile").read_text()).group(1)
    held = held.split(",")
    assert len(held) == 3 and set(held) <= set(words)
    # each held-out speaker's English accent is still heard in training, from another speaker
    assert {tts.english_voice(h) for h in held} <= {tts.english_voice(w) for w in words if w not in held}
