"""Training runs: epochs, checkpoints, metrics, resuming, interruption."""
import json
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
    assert probes and probes[0].lambda_v_out.shape[1] == 4
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


def test_every_epoch_records_its_wall_time_and_the_best_epoch_when_it_came(tmp_path):
    run = make_run(tmp_path)
    run.fit()
    out = tmp_path / "run"
    epochs = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "epoch"]
    wall = [e["wall_s"] for e in epochs]
    assert wall == sorted(wall) and wall[0] > 0
    np.testing.assert_allclose(np.diff(wall), [e["epoch_seconds"] for e in epochs[1:]], rtol=1e-9)
    for e in epochs:
        assert 0 < e["train_seconds"] and 0 < e["validation_seconds"]
        assert e["train_seconds"] + e["validation_seconds"] <= e["epoch_seconds"]
        assert e["train_samples"] == len(run.train_set) and e["skipped_batches"] == 0
    best = max(epochs, key=lambda e: (e["validation_accuracy"], -e["epoch"]))
    assert run.best == {"validation_accuracy": best["validation_accuracy"], "epoch": best["epoch"],
                        "wall_s": best["wall_s"]}
    _, state, _ = load_checkpoint(out / "last.npz")
    assert state["clock"]["wall_s"] == wall[-1] and state["best"] == run.best  # last.npz knows the best
    export_csv(out / "metrics.jsonl", out / "epochs.csv")
    header = (out / "epochs.csv").read_text().splitlines()[0]
    assert {"wall_s", "epoch_seconds", "train_seconds", "validation_seconds"} <= set(header.split(","))


def test_a_resumed_run_continues_the_wall_clock_of_its_checkpoint(tmp_path):
    batches = {"n": 0}

    def count(obs):
        batches["n"] += obs.kind == "batch"

    run = make_run(tmp_path, observers=[count])
    run.fit(should_stop=lambda: batches["n"] >= 6)  # inside epoch 2: its time is lost with it
    _, state, _ = load_checkpoint(tmp_path / "run" / "last.npz")
    resumed = TrainingRun.resume(tmp_path / "run" / "last.npz", data=toy_data())
    assert resumed.wall_s == state["clock"]["wall_s"] > 0
    assert resumed.train_samples == len(run.train_set) and resumed.last_train_accuracy is not None
    resumed.fit()
    epochs = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "epoch"]
    assert epochs[1]["wall_s"] == pytest.approx(state["clock"]["wall_s"] + epochs[1]["epoch_seconds"])
    (event,) = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r.get("what") == "resume"]
    assert event["epoch"] == 1 and event["wall_s"] == state["clock"]["wall_s"]


def test_the_summary_holds_the_best_epoch_its_test_accuracy_and_the_speed(tmp_path):
    run = make_run(tmp_path)
    run.fit()
    summary = run.write_summary()
    out = tmp_path / "run"
    assert json.loads((out / "summary.json").read_text()) == summary
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    best_params, best_state, _ = load_checkpoint(out / "best.npz")
    test = run.evaluate(run.test_set, best_params)
    assert summary["test_accuracy_at_best"] == test["accuracy"] and summary["test_loss_at_best"] == test["loss"]
    assert summary["test_accuracy_last"] == run.evaluate(run.test_set)["accuracy"]
    assert (summary["best_on"], summary["best_epoch"], summary["best_accuracy"], summary["best_wall_s"]) == (
        "validation", best_state["epoch"], run.best["validation_accuracy"], run.best["wall_s"])
    epochs = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "epoch"]
    assert summary["epochs"] == 3 and summary["wall_s"] == epochs[-1]["wall_s"]
    assert summary["final_train_accuracy"] == epochs[-1]["train_accuracy"] and summary["stopped"] is None
    samples = sum(e["train_samples"] for e in epochs)
    assert summary["train_samples_per_s"] == pytest.approx(samples / sum(e["train_seconds"] for e in epochs))


def test_init_rate_hz_scales_the_input_weights_to_the_asked_starting_rate(tmp_path):
    target_hz = float(np.random.default_rng().uniform(20, 60))
    run = RunConfig(dataset="toy", epochs=1, out_dir=str(tmp_path / "run"), probe_every=0)
    net = NetworkConfig(n_hidden=24, w_in_mean=0.4, w_in_std=0.2, w_out_std=0.3, init_rate_hz=target_hz)
    training = TrainingConfig(loss="sum_exp", lr=1e-2, warmup=False, batch_size=32, trial_ms=100.0, seed=5,
                              w_in_lr_scale=0.5)
    plain = TrainingRun(run, NetworkConfig(n_hidden=24, w_in_mean=0.4, w_in_std=0.2, w_out_std=0.3), training,
                        AugmentConfig(), data=toy_data())
    calibrated = TrainingRun(run, net, training, AugmentConfig(), data=toy_data())
    assert calibrated.input_gain is not None and plain.input_gain is None
    np.testing.assert_allclose(calibrated.trainer.params.W_in, plain.trainer.params.W_in * calibrated.input_gain,
                               rtol=1e-5)
    batch = calibrated.trainer.batch(calibrated._inputs(calibrated.train_set.samples()))
    counts = calibrated.trainer.engine.forward(calibrated.trainer.params, batch).counts
    rate = counts.mean() / (training.trial_ms / 1000.0)
    assert 0.7 * target_hz <= rate <= 1.3 * target_hz  # calibrated on 64 of these samples
    assert calibrated.trainer.optimiser.lr_scale == {"W_in": 0.5}


def test_het_lr_norm_gives_each_neuron_its_weight_gain_also_after_resume(tmp_path):
    from eventprop_lab.network import het_gain

    seed = int(np.random.default_rng().integers(1 << 20))
    run_cfg = RunConfig(dataset="toy", epochs=1, out_dir=str(tmp_path / "run"), probe_every=0)
    training = TrainingConfig(loss="sum_exp", lr=1e-2, warmup=False, batch_size=32, trial_ms=100.0, seed=seed,
                              w_in_lr_scale=0.5, het_lr_norm=True)
    net = dict(n_hidden=24, w_in_mean=0.4, w_in_std=0.2, w_out_std=0.3, heterogeneous_tau=True)
    run = TrainingRun(run_cfg, NetworkConfig(**net, het_weight_norm=True), training, AugmentConfig(), data=toy_data())
    p = run.trainer.params
    gain = het_gain(run.net, p.tau_mem, p.tau_syn)
    assert gain.std() > 0.1  # the draws differ, so the rates do
    scale = run.trainer.optimiser.lr_scale
    np.testing.assert_allclose(scale["W_in"], 0.5 * gain, rtol=1e-6)
    np.testing.assert_allclose(scale["W_rec"], gain, rtol=1e-6)
    run.fit()
    resumed = TrainingRun.resume(tmp_path / "run" / "last.npz", data=toy_data())
    np.testing.assert_allclose(resumed.trainer.optimiser.lr_scale["W_rec"], gain, rtol=1e-6)
    # weights not evened: nothing to follow, one rate per matrix
    plain = TrainingRun(run_cfg, NetworkConfig(**net), training, AugmentConfig(), data=toy_data())
    assert plain.trainer.optimiser.lr_scale == {"W_in": 0.5}
