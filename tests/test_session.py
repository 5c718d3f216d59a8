"""The background training session: commands at batch boundaries, hot changes, errors, streaming."""
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from eventprop_lab.config import AugmentConfig, RunConfig
from eventprop_lab.data import SpikeDataset
from eventprop_lab.network import NetworkConfig, init_params
from eventprop_lab.observe import BatchRecord, ProbeRecord, read_metrics
from eventprop_lab.run import TrainingRun
from eventprop_lab.session import ObservationBuffer, TrainingSession
from eventprop_lab.toy import spike_patterns
from eventprop_lab.training import TrainingConfig

SAMPLES, LABELS = spike_patterns(96, n_classes=4, n_channels=40, seed=2)


def toy_data():
    speakers = np.arange(96) % 4
    make = lambda s: SpikeDataset.from_samples([SAMPLES[i] for i in range(s.start, s.stop)], LABELS[s], speakers[s],
                                               n_channels=40, n_classes=4)
    return SimpleNamespace(train=make(slice(0, 80)), validation=None, test=make(slice(80, 96)))


def configs(tmp_path, **aug):
    # 72 training samples (10% held out) in batches of 12: 6 batches an epoch
    return (RunConfig(dataset="toy", out_dir=str(tmp_path / "run"), probe_every=4),
            NetworkConfig(n_hidden=16, w_in_mean=0.4, w_in_std=0.2, w_out_std=0.3),
            TrainingConfig(loss="sum_exp", lr=1e-2, warmup=False, batch_size=12, trial_ms=100.0, seed=5),
            AugmentConfig(**aug))


@pytest.fixture
def session(tmp_path):
    s = TrainingSession.from_configs(*configs(tmp_path), data=toy_data())
    yield s
    s.stop()


def kinds(session, kind):
    return [obs for _, obs in session.buffer.since(0).items if obs.kind == kind]


def batch_record(step):
    return BatchRecord(epoch=1, batch=step, n_batches=10, step=step, lr=1e-3, samples_per_s=1.0, loss_name="sum_exp",
                       loss=1.0, accuracy=0.5, rate_hz=10.0, silent_fraction=0.0, grad_norm=1.0, grad_scale=1.0)


def probe_record(step):
    empty = np.zeros(0)
    return ProbeRecord(input_times=empty, input_channels=empty, hidden_times=empty, hidden_ids=empty,
                       transported=empty, readout_v=empty, lambda_v_out=empty, lambda_i_out=empty, lambda_v=empty,
                       lambda_i=empty, dt=1.0, step=step)


def test_start_pause_resume_step_and_step_epoch(session):
    session.start()
    assert session.wait(until=lambda p: p["step"] >= 3)
    assert session.status == "running" and kinds(session, "batch")
    session.pause()
    assert session.wait() and session.status == "paused"
    n = session.progress["step"]
    time.sleep(0.2)
    assert session.progress["step"] == n and len(kinds(session, "batch")) == n
    session.resume()
    assert session.wait(until=lambda p: p["step"] >= n + 2)
    session.pause()
    session.wait()
    m = session.progress["step"]
    session.step(3)
    assert session.wait() and session.status == "paused"
    assert session.progress["step"] == m + 3 == len(kinds(session, "batch"))
    epochs = session.progress["epoch"]
    session.step_epoch()
    assert session.wait()
    p = session.progress
    assert p["epoch"] == epochs + 1 and p["batch"] == 0 and p["samples_per_s"] > 0
    assert [e.epoch for e in kinds(session, "epoch")] == list(range(1, epochs + 2))
    session.step_epoch()  # from an epoch boundary: one whole epoch
    assert session.wait() and session.progress["epoch"] == epochs + 2
    assert session.progress["step"] == 6 * (epochs + 2)
    session.stop()
    assert session.status == "stopped" and session.wait(timeout=0.1)
    records = read_metrics(session.run.out / "metrics.jsonl")
    assert records[0]["what"] == "start" and sum(r["kind"] == "epoch" for r in records) == epochs + 2
    assert (session.run.out / "last.npz").exists()


def test_a_session_trains_the_same_weights_as_train_epoch(tmp_path):
    run = TrainingRun(*configs(tmp_path / "a", shift=True, max_shift=3), data=toy_data())
    run.out.mkdir(parents=True)
    run.train_epoch(), run.train_epoch()
    s = TrainingSession.from_configs(*configs(tmp_path / "b", shift=True, max_shift=3), data=toy_data())
    s.step(4)  # a pause and a stop mid-epoch do not disturb the epoch
    s.wait()
    s.stop()
    s.step_epoch()
    s.wait()
    s.step_epoch()
    s.wait()
    s.stop()
    for a, b in zip(run.trainer.params, s.params):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_hot_loss_change_applies_at_a_batch_boundary_and_keeps_the_network(session):
    init = init_params(session.run.net, rng=session.run.training.seed)
    w_out = {}
    session.run.observers.append(lambda o: o.kind == "batch" and w_out.setdefault(
        o.step, session.run.trainer.params.W_out.copy()))
    trainer = session.run.trainer
    session.start()
    session.wait(until=lambda p: p["step"] >= 12)  # by now W_out is ~0.1 from its init
    session.set_loss("sum")
    session.wait(until=lambda p: p["loss"] == "sum" and p["step"] >= 16)
    session.stop()
    (event,) = [e for e in kinds(session, "event") if e.what == "loss"]
    assert (event.extra["old"], event.extra["new"], event.label) == ("sum_exp", "sum", "loss → sum")
    s0 = event.step
    assert s0 >= 12 and event in session.history()
    names = {b.step: b.loss_name for b in kinds(session, "batch")}
    assert {names[k] for k in names if k <= s0} == {"sum_exp"} and {names[k] for k in names if k > s0} == {"sum"}
    # the step after the change moved the weights by one Adam step (<= ~lr), not back to their init
    assert np.abs(w_out[s0 + 1] - w_out[s0]).max() < 0.02
    assert np.abs(w_out[s0 + 1] - init.W_out).max() > 0.05
    assert session.run.trainer is trainer and trainer.optimiser.t == session.run.step


def test_other_hot_changes_take_effect_and_are_recorded(session):
    session.step(1)
    session.wait()
    session.set_learning_rate(3e-3)
    session.set_augmentation(shift=True, max_shift=5)
    session.set_regulariser(strength=1e-6, nu=5)
    session.step(1)
    session.wait()
    assert kinds(session, "batch")[-1].lr == 3e-3
    run = session.run
    assert run.augment.shift and run.augment.max_shift == 5 and run.augmentation is not None
    assert (run.training.reg_strength, run.training.reg_nu, run.training.lr) == (1e-6, 5.0, 3e-3)
    events = {e.what: e for e in kinds(session, "event") if e.what != "start"}
    assert events["lr"].extra["old"] == 1e-2 and events["lr"].extra["new"] == 3e-3 and events["lr"].step == 1
    assert events["augment"].extra["old"] == {"shift": False, "max_shift": 40}
    assert events["regulariser"].extra["new"] == {"reg_strength": 1e-6, "reg_nu": 5.0}

    before = (len(session.history()), session.buffer.newest, run.training.loss, run.training.lr)
    bad = [lambda: session.set_loss("nope"), lambda: session.set_learning_rate(0),
           lambda: session.set_learning_rate(2.0), lambda: session.set_learning_rate(float("nan")),
           lambda: session.set_learning_rate("1e-3"), lambda: session.set_augmentation(max_shift=-1),
           lambda: session.set_augmentation(shift="yes"), lambda: session.set_augmentation(bogus=1),
           lambda: session.set_augmentation(), lambda: session.set_regulariser(strength=-1),
           lambda: session.set_regulariser(nu=float("inf")), lambda: session.set_regulariser(),
           lambda: session.step(0)]
    for call in bad:
        with pytest.raises(ValueError):
            call()
    assert session.progress["pending"] == 0 and session.wait()
    assert (len(session.history()), session.buffer.newest, run.training.loss, run.training.lr) == before


def test_a_nan_loss_pauses_with_an_error_and_keeps_the_weights(session):
    session.step(2)
    session.wait()
    session.stop()
    good = session.params

    class NaNLoss:  # stands in for a diverged network
        def __init__(self, loss):
            self.loss = loss

        def record_options(self):
            return self.loss.record_options()

        def evaluate(self, *args):
            return self.loss.evaluate(*args)._replace(value=float("nan"))

    session.run.trainer.loss = NaNLoss(session.run.trainer.loss)
    session.start()
    assert session.wait() and session.status == "error"
    assert "NaN" in session.last_error and session.progress["step"] == 2
    (event,) = [e for e in kinds(session, "event") if e.what == "error"]
    assert "NaN" in event.message and event.step == 2
    for a, b in zip(good, session.params):
        assert a is b or np.array_equal(a, b)
    session.set_loss("sum_exp")  # the fix: a fresh loss object
    session.resume()
    assert session.wait(until=lambda p: p["step"] >= 4) and session.last_error is None
    session.pause()
    assert session.wait() and session.status == "paused"
    assert not np.array_equal(good.W_out, session.params.W_out)


def test_a_failed_batch_is_retried_on_resume_with_the_same_data(tmp_path):
    clean = TrainingSession.from_configs(*configs(tmp_path / "a", shift=True, max_shift=3), data=toy_data())
    clean.step_epoch()
    clean.wait()
    clean.stop()
    s = TrainingSession.from_configs(*configs(tmp_path / "b", shift=True, max_shift=3), data=toy_data())
    original, calls = s.run.trainer.train_batch, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return original(*args, **kwargs)

    s.run.trainer.train_batch = flaky
    s.step_epoch()
    assert s.wait() and s.status == "error" and s.last_error == "RuntimeError: boom"
    assert s.progress["step"] == 2 and "Traceback" in s.last_traceback
    s.step_epoch()
    assert s.wait() and s.status == "paused" and s.progress["epoch"] == 1
    s.stop()
    for a, b in zip(clean.params, s.params):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_failing_observer_pauses_the_session_without_losing_the_batch(session):
    def picky(obs):
        if obs.kind == "batch" and obs.step == 6 and "fired" not in session.__dict__:
            session.fired = True
            raise KeyError("the dashboard went away")

    session.run.observers.append(picky)
    session.step_epoch()
    assert session.wait() and session.status == "error" and "went away" in session.last_error
    p = session.progress
    assert (p["step"], p["epoch"]) == (6, 0) and len(kinds(session, "batch")) == 6  # ours ran first
    session.step(1)  # the epoch's batches are all done: only its end is left
    assert session.wait() and session.status == "paused"
    p = session.progress
    assert (p["step"], p["epoch"], p["batch"]) == (6, 1, 0) and len(kinds(session, "epoch")) == 1


def test_readers_keep_their_own_cursors_and_never_slow_training(session):
    r1, r2 = session.reader(), session.reader()
    session.step(2)
    session.wait()
    first = r1.poll()
    assert first and first == r2.poll() and r1.poll() == []
    slow_done = []
    slow = session.reader()

    def slow_reader():
        for _ in slow.poll():
            time.sleep(0.5)  # far slower than a batch
            break
        slow_done.append(time.monotonic())

    session.step_epoch()
    session.wait()
    t = threading.Thread(target=slow_reader)
    t.start()
    session.step_epoch()
    assert session.wait(timeout=10)
    finished = time.monotonic()
    t.join()
    assert finished < slow_done[0]  # training finished while the slow reader was still busy
    rest1, rest2 = r1.poll(), r2.poll()
    assert rest1 == rest2 and r1.missed == r2.missed == 0
    assert len(first) + len(rest1) == session.buffer.newest
    assert [o.kind for o in rest1].count("epoch") == 2


def test_a_reader_that_falls_behind_gets_the_newest_and_a_missed_count():
    buf = ObservationBuffer(capacity=4, probe_capacity=2)
    for i in range(10):
        buf.append(probe_record(i) if i % 3 == 0 else batch_record(i))
    got = buf.since(0)
    # the newest batches (5, 6, 8, 9) and probes (7, 10) are held, merged into one stream
    assert [seq for seq, _ in got.items] == [5, 6, 7, 8, 9, 10]
    assert got.cursor == 10 and got.missed == 4 and not got.cleared
    assert buf.since(8).items == got.items[-2:] and buf.since(8).missed == 0
    buf.clear()
    buf.append(batch_record(0))
    after = buf.since(3)
    assert after.cleared and after.missed == 0 and [s for s, _ in after.items] == [12]
    assert not buf.since(None).cleared and not buf.since(11).cleared and buf.since(11).items == after.items


def test_the_buffer_serves_concurrent_readers_without_losing_order():
    buf, n = ObservationBuffer(capacity=64, probe_capacity=8), 20000
    results = []

    def read():
        cursor, seqs, missed = 0, [], 0
        while cursor < n:
            got = buf.since(cursor)
            cursor, missed = got.cursor, missed + got.missed
            seqs += [s for s, _ in got.items]
        results.append((seqs, missed))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(n):
        buf.append(probe_record(i) if i % 50 == 0 else batch_record(i))
    for t in readers:
        t.join()
    for seqs, missed in results:
        assert seqs == sorted(set(seqs)) and len(seqs) + missed == n


def test_stop_is_prompt_and_start_stop_cycles_leak_no_threads(session):
    session.step(1)
    session.wait()
    session.stop()  # the engine's worker threads, if any, start with the first batch
    before = threading.active_count()
    session.start()
    session.wait(until=lambda p: p["step"] >= 3)
    t0 = time.perf_counter()
    session.stop()
    assert time.perf_counter() - t0 < 2.0 and session.status == "stopped"
    for _ in range(100):  # each cycle trains at least one batch and stops at the next boundary
        step = session.progress["step"]
        session.start()
        assert session.wait(until=lambda p: p["step"] > step)
        session.stop()
    session.stop()
    assert session.status == "stopped" and threading.active_count() == before
    assert not [t for t in threading.enumerate() if t.name == "eventprop-session"]


def test_reset_gives_fresh_weights_an_empty_history_and_no_thread(session):
    init = session.params
    reader = session.reader()
    session.set_loss("sum")
    session.start()
    session.wait(until=lambda p: p["epoch"] >= 1)
    reader.poll()
    session.reset()
    assert session.status == "idle" and session._thread is None
    assert not [t for t in threading.enumerate() if t.name == "eventprop-session"]
    p = session.progress
    assert (p["step"], p["epoch"], p["pending"]) == (0, 0, 0)
    assert session.history() == [] and len(session.buffer) == 0 and reader.poll() == [] and reader.cleared
    for a, b in zip(init, session.params):
        assert (a is None and b is None) or np.array_equal(a, b)
    assert session.run.training.loss == "sum"  # rebuilt from the configs as changed
    assert not (session.run.out / "metrics.jsonl").exists()
    session.reset(seed=9)
    assert not np.array_equal(init.W_out, session.params.W_out)
    session.step(2)
    assert session.wait() and session.progress["step"] == 2
    assert [o.what for o in reader.poll() if o.kind == "event"] == ["start"]


def test_undo_restores_the_weights_optimiser_and_loss_from_before_the_last_change(session):
    session.step(3)
    session.wait()
    opt = session.run.trainer.optimiser
    before, t, m = session.params, opt.t, {k: v.copy() for k, v in opt.m.items()}
    session.set(loss="avg_xentropy")
    session.step(2)
    session.wait()
    assert opt.t == t + 2 and not np.array_equal(session.params.W_out, before.W_out)
    version = session.settings_version
    session.undo()
    session.wait()
    assert session.params is before and opt.t == t and all(np.array_equal(opt.m[k], m[k]) for k in m)
    assert session.settings["loss"] == session.run.training.loss == "sum_exp" and session.settings_version > version
    assert session.progress["step"] == 5  # the count goes on; the curves mark the undo
    undo = [e for e in kinds(session, "event") if e.what == "undo"]
    assert undo[-1].label == "undo → step 3" and undo[-1].extra["why"] == "loss → avg_xentropy"
    published = [e for e in kinds(session, "event") if e.extra.get("source") == "undo"]
    assert published[-1].extra["changes"] == {"loss": "sum_exp"}
    session.step(1)
    session.wait()
    assert kinds(session, "batch")[-1].loss_name == "sum_exp" and opt.t == t + 1
    session.undo()  # nothing left to undo: said, no marker, nothing changes
    session.wait()
    assert "nothing to undo" in kinds(session, "event")[-1].message and kinds(session, "event")[-1].label is None
    assert opt.t == t + 1


def test_rewind_goes_back_to_a_periodic_checkpoint(tmp_path):
    s = TrainingSession.from_configs(*configs(tmp_path), data=toy_data(), checkpoint_every=2)
    try:
        s.step(2)
        s.wait()
        at_2 = s.params
        s.step(3)
        s.wait()
        s.rewind(3)
        s.wait()
        assert s.params is at_2 and s.run.trainer.optimiser.t == 2 and s.progress["step"] == 5
        assert kinds(s, "event")[-1].label == "rewind → step 2"
    finally:
        s.stop()


def test_the_teachers_settings_are_published_checked_and_kept_across_reset(session):
    assert session.settings["students_may_steer"] is False
    version = session.settings_version
    assert session.set(students_may_steer=True) == {"students_may_steer": True}
    assert session.settings["students_may_steer"] and session.settings_version > version
    assert kinds(session, "event")[-1].extra["changes"] == {"students_may_steer": True}
    with pytest.raises(ValueError, match="students_may_steer"):
        session.set(students_may_steer="yes", lr=1e-3)
    session.reset()
    assert session.settings["students_may_steer"] and "students_may_steer" not in session.run.training.param


def test_the_long_history_keeps_the_whole_run_thinned(tmp_path):
    s = TrainingSession.from_configs(*configs(tmp_path), data=toy_data(), history_recent=4, history_capacity=3)
    try:
        s.step(30)
        s.wait()
        c = s.long_history.columns()
        assert list(c["step"][-4:]) == [27, 28, 29, 30] and len(c["step"]) <= 4 + 3 + 1
        assert c["step"][0] < 10 and np.all(np.diff(c["step"]) > 0)  # the start is still there (a block mean)
        assert c["rate_hz"][-1] == kinds(s, "batch")[-1].rate_hz
        s.reset()
        assert len(s.long_history) == 0
    finally:
        s.stop()


def test_a_branch_goes_on_from_the_same_weights_with_other_settings(session):
    session.step(3)
    session.wait()
    weights, t = session.params, session.run.trainer.optimiser.t
    branch = session.branch(loss="sum", lr=5e-3).result(timeout=30)
    try:
        assert branch.params is weights and branch.run.trainer.optimiser.t == t and branch.progress["step"] == 3
        assert branch.settings["loss"] == "sum" and branch.run.trainer.schedule.lr == 5e-3
        assert session.settings["loss"] == "sum_exp" and branch.run.train_set is session.run.train_set
        assert kinds(session, "event")[-1].label == "branch 1: loss → sum, lr → 0.005"
        branch.step(2)
        branch.wait()
        assert branch.progress["step"] == 5 and session.progress["step"] == 3 and session.params is weights
        assert {b.loss_name for b in kinds(branch, "batch")} == {"sum"}
    finally:
        branch.stop()
    with pytest.raises(ValueError, match="n_hidden cannot differ"):
        session.branch(n_hidden=8)
    session.stop()  # no thread: made in the caller's
    assert session.branch(shift=True).result(timeout=30).settings["shift"]
