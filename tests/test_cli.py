"""The command line: train, resume, evaluate, help, bad values."""
import json
import re

import numpy as np
import pytest

from eventprop_lab.cli import main
from eventprop_lab.data import write_shd_h5
from eventprop_lab.observe import read_metrics
from eventprop_lab.toy import spike_patterns


@pytest.fixture
def h5_data(tmp_path):
    samples, labels = spike_patterns(120, n_classes=4, n_channels=40, seed=4)
    speakers = np.arange(120) % 3
    write_shd_h5(tmp_path / "toy_train.h5", samples[:90], labels[:90], speakers[:90])
    write_shd_h5(tmp_path / "toy_test.h5", samples[90:], labels[90:], speakers[90:])
    return tmp_path / "toy_train.h5"


def _train_args(h5, out, epochs):
    return ["train", "--dataset", str(h5), "--epochs", str(epochs), "--n-hidden", "16", "--trial-ms", "100",
            "--lr", "0.01", "--no-warmup", "--w-in-mean", "0.4", "--w-in-std", "0.2", "--out-dir", str(out),
            "--probe-every", "0"]


def test_train_then_resume_then_evaluate(h5_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_train_args(h5_data, out, 1)) == 0
    assert main(["train", "--resume", str(out), "--epochs", "2"]) == 0
    text = capsys.readouterr().out
    assert "resuming" in text and "learning rate 1e-2" in text
    assert re.search(r"\(\d+\.\d s \+ \d+\.\d s validation; \d+\.\d s in all\)\n", text)  # each epoch's line
    assert re.search(r"\ndone: 2 epochs in \d+\.\d s \(\d+ training samples/s\); per epoch in .*epochs.csv, "
                     r"summary in .*summary.json\n", text)
    assert re.search(r"\nbest validation \d\.\d{3} at epoch [12] \(\d+\.\d s\); test at best validation "
                     r"\d\.\d{3}\ntest \(last weights\): loss \d+\.\d{4}, accuracy \d\.\d{3}\n", text)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["test_samples"] == 30 and summary["best_on"] == "validation"
    epochs = [r["epoch"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "epoch"]
    assert epochs == [1, 2]
    assert (out / "epochs.csv").exists()
    assert main(["evaluate", str(out)]) == 0
    text = capsys.readouterr().out
    assert "validation: loss" in text and "test: loss" in text


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for option in ("--loss", "--shift", "--blend", "--delay-line", "--n-hidden", "--heterogeneous-tau",
                   "--train-tau", "--dt", "--epochs", "--batch-size", "--lr", "--reg-strength", "--seed",
                   "--out-dir", "--resume", "--recurrent"):
        assert option in text
    assert "sum_exp" in text and "default" in text


def test_bad_values_are_refused_with_the_option_named(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--lr", "-1"])
    assert "--lr" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--loss", "nope"])
    assert "invalid choice" in capsys.readouterr().err


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--dataset", "shd", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "r")]) == 2
    assert "shd_train.h5" in capsys.readouterr().err


def test_evaluating_the_best_checkpoint_keeps_every_metrics_record(h5_data, tmp_path):
    out = tmp_path / "run"
    assert main(_train_args(h5_data, out, 3)) == 0
    before = (out / "metrics.jsonl").read_text()
    (out / "best.npz").write_bytes((out / "last.npz").read_bytes())  # stand-in checkpoint ...
    from eventprop_lab.run import TrainingRun

    run = TrainingRun.from_checkpoint(out / "best.npz")
    run.epoch = 1  # ... that is older than the last epoch, as a best checkpoint often is
    run.save_checkpoint(out / "best.npz")
    assert main(["evaluate", str(out / "best.npz")]) == 0
    assert (out / "metrics.jsonl").read_text() == before
