"""NaN or infinite losses, gradients and updates: the batch is skipped and the learning rate halved,
and when that keeps happening the run stops cleanly with its checkpoints whole."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import eventprop_lab.training as training
from eventprop_lab.cli import main
from eventprop_lab.observe import read_metrics
from eventprop_lab.optim import Adam, LearningRateSchedule
from eventprop_lab.run import NonFiniteRule, TrainingDiverged, TrainingRun, load_checkpoint
from test_cli import _train_args, h5_data  # noqa: F401 (a fixture)
from test_run import make_run

ROOT = Path(__file__).resolve().parent.parent


def poison(monkeypatch, steps, what="gradient"):
    """Training steps numbered in `steps` (1, 2, ... over the whole run) get a NaN gradient of W_in
    (or a NaN loss); evaluation is untouched."""
    real, calls = training.loss_and_gradients, {"n": 0}

    def patched(*args, **kwargs):
        res = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] not in steps:
            return res
        if what == "loss":
            return res._replace(loss=res.loss._replace(value=float("nan")))
        W_in = res.gradients.W_in.copy()
        W_in[0, 0] = np.nan
        return res._replace(gradients=res.gradients._replace(W_in=W_in))

    monkeypatch.setattr(training, "loss_and_gradients", patched)
    return calls


class Snapshots:
    """An observer keeping the weights and Adam state after every batch and at every event."""

    def __init__(self):
        self.run, self.seen = None, []

    def __call__(self, obs):
        if obs.kind in ("batch", "event"):
            t = self.run.trainer
            adam = {k: np.array(v, copy=True) for k, v in t.optimiser.state_dict().items()}
            self.seen.append((obs, t.params, adam, t.schedule.lr, t.schedule.base))


def test_a_nan_gradient_skips_the_batch_halves_the_rate_and_training_goes_on(tmp_path, monkeypatch):
    poison(monkeypatch, {3})  # epoch 1, batch 3 (4 batches an epoch)
    snaps = Snapshots()
    run = make_run(tmp_path, observers=[snaps])
    snaps.run = run
    run.fit()
    assert run.epoch == 3 and run.step == 3 * 4 - 1 and run.trainer.optimiser.t == run.step
    kinds = [obs.kind if obs.kind != "event" else obs.what for obs, *_ in snaps.seen]
    i = kinds.index("non_finite")
    assert kinds[i - 2:i + 2] == ["batch", "batch", "non_finite", "batch"]
    (_, before, adam_before, _, _), (event, at, adam_at, lr, base) = snaps.seen[i - 1], snaps.seen[i]
    assert at is before  # the trainer kept the very same weights: the batch changed nothing
    assert adam_at.keys() == adam_before.keys() and all(np.array_equal(adam_at[k], adam_before[k]) for k in adam_at)
    assert (lr, base) == (5e-3, 5e-3)
    assert event.message == "non-finite gradient (W_in) at epoch 1 batch 3: batch skipped, lr 1e-2 → 5e-3"
    assert (event.epoch, event.batch, event.step, event.extra["quantity"]) == (1, 3, 2, "gradient")
    assert (event.extra["lr_old"], event.extra["lr_new"]) == (1e-2, 5e-3)
    assert event.label  # the dashboard draws a marker for events with a label

    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    (recorded,) = [r for r in records if r.get("what") == "non_finite"]
    assert recorded["message"] == event.message
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [e["skipped_batches"] for e in epochs] == [1, 0, 0]
    assert [e["lr"] for e in epochs] == [5e-3] * 3  # halved once, and it stays halved
    assert all(np.isfinite(e["train_loss"]) for e in epochs)
    _, state, _ = load_checkpoint(tmp_path / "run" / "last.npz")
    assert (state["lr"], state["lr_base"]) == (5e-3, 5e-3)


def test_a_nan_loss_during_warm_up_halves_both_the_rate_and_its_target():
    s = LearningRateSchedule(1e-3, warmup=True)
    s.after_batch()
    s.epochs_since_change = 7
    s.halve()
    assert s.base == 5e-4 and s.lr == pytest.approx(1.05e-6 / 2) and s.epochs_since_change == 0
    while s.lr < s.base:
        s.after_batch()
    assert s.lr == 5e-4  # the warm-up ends at the halved base


def test_an_update_that_overflows_is_rolled_back(tmp_path):
    snaps = Snapshots()
    run = make_run(tmp_path, observers=[snaps])
    snaps.run = run
    real_step, calls = run.trainer.optimiser.step, {"n": 0}

    def overflowing(params, grads, lr=None):
        calls["n"] += 1
        return real_step(params, grads, lr=1e39 if calls["n"] == 2 else lr)  # float32 weights become inf

    run.trainer.optimiser.step = overflowing
    run.fit(epochs=1)
    (i,) = [i for i, (obs, *_) in enumerate(snaps.seen) if obs.kind == "event" and obs.what == "non_finite"]
    (_, before, adam_before, _, _), (event, at, adam_at, _, _) = snaps.seen[i - 1], snaps.seen[i]
    assert at is before and all(np.array_equal(adam_at[k], adam_before[k]) for k in adam_at)
    assert int(adam_at["t"]) == 1
    assert event.message.startswith("non-finite weights after the update (W_in")
    assert event.message.endswith("at epoch 1 batch 2: update rolled back, lr 1e-2 → 5e-3")
    assert all(np.all(np.isfinite(p)) for p in run.trainer.params if p is not None)
    assert run.step == 3 and run.trainer.optimiser.t == 3


def test_adam_changes_nothing_when_its_update_would_overflow():
    x = {"w": np.array([3e38, 1.0], np.float32)}
    opt = Adam(lr=0.1)
    assert opt.step(x, {"w": np.array([1.0, 1.0], np.float32)}) == []
    w, state = x["w"], {k: v.copy() for k, v in opt.state_dict().items()}
    assert opt.step(x, {"w": np.array([-1.0, 1.0], np.float32)}, lr=1e38) == ["w"]
    assert x["w"] is w and all(np.array_equal(opt.state_dict()[k], state[k]) for k in state)


def test_more_than_five_nan_batches_in_an_epoch_stop_the_run_before_the_sixth(tmp_path, monkeypatch):
    poison(monkeypatch, range(5, 100), what="loss")  # the whole of epoch 2 onwards
    run = make_run(tmp_path)
    run.nonfinite = NonFiniteRule(max_per_epoch=2)
    with pytest.raises(TrainingDiverged) as info:
        run.fit()
    assert str(info.value) == ("training stopped at epoch 2 batch 3: NaN or infinite values in 3 batches of this "
                               "epoch (the last in the loss), more than the 2 allowed, though the learning rate was "
                               "halved after each (now 2.5e-3)")
    assert (info.value.epoch, info.value.batch, run.epoch, run.step) == (2, 3, 1, 4)
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["what"] for r in records if r["kind"] == "event"] == ["start", "non_finite", "non_finite", "stopped"]
    assert records[-1]["message"] == str(info.value)


def test_the_learning_rate_floor_stops_the_run(tmp_path, monkeypatch):
    poison(monkeypatch, {2, 3})
    run = make_run(tmp_path)
    run.nonfinite = NonFiniteRule(min_lr=4e-3)
    with pytest.raises(TrainingDiverged, match=r"at epoch 1 batch 3: NaN or infinite values in the gradient of W_in, "
                                               r"and halving the learning rate \(5e-3\) once more would take it "
                                               r"below the floor of 4e-3$"):
        run.fit()


def test_non_finite_weights_stop_at_once(tmp_path):
    run = make_run(tmp_path)
    W_out = run.trainer.params.W_out.copy()
    W_out[3, 1] = np.inf
    run.trainer.params = run.trainer.params._replace(W_out=W_out)
    with pytest.raises(TrainingDiverged, match=r"^training stopped at epoch 1 batch 1: the weights themselves are NaN "
                                               r"or infinite \(W_out\); skipping batches cannot repair them$"):
        run.fit()
    assert run.step == 0


def test_repeated_nans_end_the_cli_cleanly_and_the_suggested_resume_works(h5_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    args = _train_args(h5_data, out, 3) + ["--batch-size", "8"]  # 11 batches an epoch
    poison(monkeypatch, range(12, 1000), what="loss")  # all of epoch 2 onwards
    assert main(args) == 3
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()[-3:]
    assert lines[0] == ("stopped: training stopped at epoch 2 batch 6: NaN or infinite values in 6 batches of this "
                        "epoch (the last in the loss), more than the 5 allowed, though the learning rate was halved "
                        "after each (now 3.125e-4).")
    assert re.fullmatch(rf"kept: {re.escape(str(out / 'last.npz'))} holds epoch 1, the last whole one \(the stopped "
                        rf"epoch is trained again on resume\); {re.escape(str(out / 'best.npz'))} holds epoch 1, the "
                        r"best so far \(validation accuracy \d\.\d{3}\)\.", lines[1])
    assert lines[2] == f"to continue with half its learning rate: eventprop-lab train --resume {out} --lr 5e-3"
    for i in range(1, 6):
        assert f"non-finite loss at epoch 2 batch {i}: batch skipped" in captured.out
    for name in ("last.npz", "best.npz"):
        params, state, _ = load_checkpoint(out / name)
        assert state["epoch"] == 1 and all(np.all(np.isfinite(p)) for p in params if p is not None)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["stopped"].startswith("training stopped at epoch 2 batch 6")

    monkeypatch.undo()  # the cure: finite losses again
    command = lines[2].split(": ", 1)[1].split()
    assert main(command[1:]) == 0
    text = capsys.readouterr().out
    assert "resuming" in text and "learning rate 5e-3" in text
    records = read_metrics(out / "metrics.jsonl")
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2, 3]
    resumed = [r for r in records if r.get("what") == "resume"]
    assert len(resumed) == 1 and resumed[0]["lr"] == 5e-3
    assert [r["what"] for r in records if r["kind"] == "event"][-2] == "stopped"  # the history is kept


def test_a_stop_in_the_first_epoch_says_how_to_start_again(h5_data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    poison(monkeypatch, range(1, 1000))
    assert main(_train_args(h5_data, out, 2) + ["--batch-size", "8", "--seed", "3"]) == 3
    lines = capsys.readouterr().err.strip().splitlines()[-3:]
    assert lines[1] == "kept: no checkpoint; the run stopped in its first epoch."
    assert lines[2].startswith("to start again with half the learning rate: eventprop-lab train --dataset ")
    assert lines[2].endswith(" --lr 5e-3") and "--no-warmup" in lines[2] and "--seed 3" in lines[2]
    assert not (out / "last.npz").exists() and not (out / "summary.json").exists()


def test_a_diverged_cli_run_in_a_subprocess_exits_3_without_a_traceback(h5_data, tmp_path):
    # a real process: what a user sees, exit status and stderr, with the loss poisoned from step 2
    out = tmp_path / "run"
    driver = ("import sys, numpy as np, eventprop_lab.training as t\n"
              "real = t.loss_and_gradients\n"
              "calls = []\n"
              "def nan(*a, **k):\n"
              "    calls.append(1); r = real(*a, **k)\n"
              "    return r if len(calls) < 2 else r._replace(loss=r.loss._replace(value=float('inf')))\n"
              "t.loss_and_gradients = nan\n"
              "from eventprop_lab.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", driver, *_train_args(h5_data, out, 2), "--batch-size", "8"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert "\nstopped: training stopped at epoch 1 batch 7: NaN or infinite values in 6 batches" in done.stderr
    assert "non-finite loss at epoch 1 batch 2: batch skipped, lr 1e-2 → 5e-3" in done.stdout


def test_resume_takes_a_new_learning_rate_and_refuses_options_it_would_ignore(h5_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_train_args(h5_data, out, 1)) == 0
    with pytest.raises(SystemExit) as info:
        main(["train", "--resume", str(out), "--loss", "sum", "--n-hidden", "8"])
    assert info.value.code == 2
    assert "with --resume only --epochs, --lr and --grad-clip may be given" in capsys.readouterr().err
    run = TrainingRun.resume(out / "last.npz", **{"training.lr": 2e-4})
    s = run.trainer.schedule
    assert (s.lr, s.base, run.trainer.optimiser.lr, run.training.lr) == (2e-4, 2e-4, 2e-4, 2e-4)
    assert TrainingRun.resume(out / "last.npz").trainer.schedule.lr == 1e-2


def test_the_dashboard_session_skips_a_nan_batch_with_a_marker_and_trains_on(tmp_path, monkeypatch):
    from eventprop_lab.session import TrainingSession
    from test_session import configs
    from test_session import toy_data as session_data

    poison(monkeypatch, {2})
    session = TrainingSession.from_configs(*configs(tmp_path), data=session_data())  # 6 batches an epoch
    try:
        session.step_epoch()
        assert session.wait() and session.status == "paused" and session.last_error is None
    finally:
        session.stop()
    (event,) = [o for o in session.history() if o.kind == "event" and o.what == "non_finite"]
    assert event.label == "non-finite gradient: lr → 5e-3" and event.step == 1
    assert session.progress["epoch"] == 1 and session.progress["step"] == 5
    assert session.run.trainer.schedule.lr == 5e-3
