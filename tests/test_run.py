"""Training runs: epochs, checkpoints, metrics, resuming, interruption."""
from types import SimpleNamespace

import numpy as np
import pytest

from eventprop_lab.config import AugmentConfig, RunConfig
from eventprop_lab.data import SpikeDataset
from eventprop_lab.network import NetworkConfig
from eventprop_lab.observe import export_csv, read_metrics
from eventprop_lab.run import TrainingRun, load_checkpoint
from eventprop_lab.toy import spike_patterns
from eventprop_lab.training import TrainingConfig


def toy_data():
    samples, labels = spike_patterns(160, n_classes=4, n_channels=40, seed=2)
    speakers = np.arange(160) % 4
    train = SpikeDataset.from_samples(samples[:128], labels[:128], speakers[:128], n_channels=40, n_classes=4)
    test = SpikeDataset.from_samples(samples[128:], labels[128:], speakers[128:], n_channels=40, n_classes=4)
    return SimpleNamespace(train=train, validation=None, test=test)


def make_run(tmp_path, observers=(), **aug):
    run = RunConfig(dataset="toy", epochs=3, out_dir=str(tmp_path / "run"), probe_every=3)
    net = NetworkConfig(n_hidden=24, w_in_mean=0.4, w_in_std=0.2, w_out_std=0.3)
    training = TrainingConfig(loss="sum_exp", lr=1e-2, warmup=False, batch_size=32, trial_ms=100.0, seed=5)
    return TrainingRun(run, net, training, AugmentConfig(**aug), observers=list(observers), data=toy_data())


def test_a_run_trains_and_leaves_checkpoints_and_metrics(tmp_path):
    seen = []
    run = make_run(tmp_path, observers=[seen.append], shift=True, max_shift=3, blend=True)
    best = run.fit()
    out = tmp_path / "run"
    assert (out / "last.npz").exists() and (out / "best.npz").exists()
    records = read_metrics(out / "metrics.jsonl")
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "event" and kinds.count("epoch") == 3
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert {"validation_accuracy", "validation_rate_hz", "validation_silent_fraction"} <= set(epochs[0])
    assert best["epoch"] >= 1
    probes = [o for o in seen if o.kind == "probe"]
    assert probes and probes[0].data["lambda_v_out"].shape[1] == 4
    assert export_csv(out / "metrics.jsonl", out / "epochs.csv") == 3
    assert (out / "epochs.csv").read_text().splitlines()[0].startswith("kind,epoch")
    params, state, _ = load_checkpoint(out / "last.npz")
    assert state["epoch"] == 3 and params.W_in.shape == (40, 24)


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    straight = make_run(tmp_path / "a", shift=True, max_shift=3)
    straight.fit()

    stop_after = {"batches": 0}

    def stopper(obs):
        if obs.kind == "batch":
            stop_after["batches"] += 1

    run = make_run(tmp_path / "b", observers=[stopper], shift=True, max_shift=3)
    run.fit(should_stop=lambda: stop_after["batches"] >= 6)  # stops inside epoch 2
    assert run.epoch == 1
    resumed = TrainingRun.resume(tmp_path / "b" / "run" / "last.npz", data=toy_data())
    assert resumed.epoch == 1
    resumed.fit()
    for a, b in zip(straight.trainer.params, resumed.trainer.params):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    records = read_metrics(tmp_path / "b" / "run" / "metrics.jsonl")
    batch_epochs = [r["epoch"] for r in records if r["kind"] == "batch"]
    assert batch_epochs == sorted(batch_epochs)  # the interrupted epoch's batches were dropped
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2, 3]


def test_ctrl_c_mid_epoch_leaves_the_last_checkpoint_whole(tmp_path):
    count = {"n": 0}

    def interrupt(obs):
        if obs.kind == "batch":
            count["n"] += 1
            if count["n"] == 6:
                raise KeyboardInterrupt

    run = make_run(tmp_path, observers=[interrupt])
    with pytest.raises(KeyboardInterrupt):
        run.fit()
    params, state, _ = load_checkpoint(tmp_path / "run" / "last.npz")
    assert state["epoch"] == 1
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert all("kind" in r for r in records)
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]


def test_a_corrupt_checkpoint_is_refused_by_name(tmp_path):
    bad = tmp_path / "last.npz"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match="last.npz"):
        TrainingRun.resume(bad, data=toy_data())
