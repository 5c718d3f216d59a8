"""TrainingSession.hold(): the training waits at a batch boundary while another thread works (the
Speak tab's cochlea), then goes on with the same batches; holds nest, are released on errors and
lapse after their time limit."""
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from test_session import configs, kinds, toy_data

from eventprop_lab.session import TrainingSession

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for `app`


@pytest.fixture
def session(tmp_path):
    s = TrainingSession.from_configs(*configs(tmp_path), data=toy_data())
    yield s
    s.stop()


def training(session, steps=2):
    session.start()
    assert session.wait(until=lambda p: p["step"] >= steps, timeout=120)


def settled(session, quiet=0.5, timeout=30.0):
    """The step once it has stayed the same for `quiet` seconds (the thread waits somewhere)."""
    deadline = time.monotonic() + timeout
    step, since = session.progress["step"], time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "the training never came to rest"
        time.sleep(0.02)
        now = session.progress["step"]
        if now != step:
            step, since = now, time.monotonic()
    return step


def moves_on(session, step, timeout=30.0):
    return session.wait(until=lambda p: p["step"] > step, timeout=timeout)


def test_a_hold_makes_the_training_wait_at_the_next_batch_boundary_and_release_resumes_it(session):
    training(session)
    with session.hold() as hold:
        before = session.progress["step"]
        step = settled(session)
        assert step <= before + 1  # at most the batch in flight ends
        assert session.status == "running" and session.progress["held"] == 1
    assert session.progress["held"] == 0 and not hold.release()  # released once, by the with
    assert moves_on(session, step)
    assert session.status == "running" and session.last_error is None


def test_holds_delay_the_batches_but_leave_the_weights_and_losses_as_without(tmp_path):
    plain = TrainingSession.from_configs(*configs(tmp_path / "a"), data=toy_data())
    plain.step(14)  # over an epoch's end (6 batches an epoch)
    assert plain.wait(timeout=120)
    plain.stop()
    held = TrainingSession.from_configs(*configs(tmp_path / "b"), data=toy_data())
    held.step(14)
    holds = 0
    try:
        while held.status != "paused":  # hold and release at random moments until the 14 batches are done
            with held.hold():
                holds += 1
                step = held.progress["step"]
                time.sleep(np.random.default_rng(holds).uniform(0.0, 0.05))
            # a batch or so between holds: on a fast machine a fixed gap let all 14 through in 3 holds
            held.wait(until=lambda p, s=step: p["step"] > s or p["state"] != "running", timeout=30)
            assert holds < 5000
        assert held.wait(timeout=120) and held.progress["step"] == 14 and holds > 3
    finally:
        held.stop()  # a failure here must not leave its thread to fail the next tests
    losses = [[b.loss for b in kinds(s, "batch")] for s in (plain, held)]
    assert len(losses[0]) == 14 and losses[0] == losses[1]
    for a, b in zip(plain.params, held.params):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_hold_is_released_when_the_work_under_it_raises(session):
    training(session)
    with pytest.raises(ValueError, match="unreadable"):
        with session.hold():
            step = settled(session)
            raise ValueError("unreadable sound")
    assert session.progress["held"] == 0
    assert moves_on(session, step)


def test_overlapping_holds_nest_and_the_training_waits_for_the_last(session):
    training(session)
    outer = session.hold()
    inner = session.hold()  # a second page speaking meanwhile
    step = settled(session)
    assert session.progress["held"] == 2
    assert outer.release()
    time.sleep(0.4)
    assert session.progress["step"] == step and session.progress["held"] == 1
    assert inner.release() and session.progress["held"] == 0
    assert moves_on(session, step)


def test_a_hold_lapses_after_its_time_limit_so_a_stuck_page_cannot_freeze_the_run(session):
    training(session)
    stuck = session.hold(limit_s=1.0)  # never released in time
    t0 = time.monotonic()
    step = settled(session, quiet=0.3)
    assert moves_on(session, step, timeout=10)
    assert 0.5 < time.monotonic() - t0 < 5.0
    assert session.progress["held"] == 0 and session.status == "running"
    assert not stuck.release()  # it says it had lapsed
    with pytest.raises(ValueError, match="positive"):
        session.hold(limit_s=0)


def test_back_to_back_holds_let_one_batch_through_between_them(session):
    training(session)
    first = session.hold()
    step = settled(session)
    first.release()
    second = session.hold()  # taken before the thread could train: it still trains one batch
    assert moves_on(session, step)
    after = settled(session)
    assert after - step <= 2  # then the second hold keeps it waiting
    second.release()
    assert moves_on(session, after)


def test_commands_stop_and_pause_are_applied_during_a_hold(session):
    training(session)
    with session.hold(limit_s=60):
        settled(session)
        session.set(lr=5e-3)
        assert session.wait(until=lambda p: p["pending"] == 0, timeout=10)
        assert session.run.training.lr == 5e-3  # a hot change reaches the run while held
        session.pause()
        assert session.wait(timeout=10) and session.status == "paused"
        t0 = time.monotonic()
        session.stop()
        assert time.monotonic() - t0 < 2.0 and session.status == "stopped"
    assert not [t for t in threading.enumerate() if t.name == "eventprop-session"]
    step = session.progress["step"]
    session.start()  # no stale wake-up or hold left behind
    assert moves_on(session, step)


def test_the_speak_panel_holds_the_training_while_it_hears_and_releases_on_errors(session, monkeypatch):
    pytest.importorskip("panel", reason="the dashboard needs panel")
    import app.speak as speak_module
    from eventprop_lab.infer import InferenceError

    seen = []

    def hear_in_session(data, suffix, s):  # stands in for the cochlea and the forward pass
        seen.append((s.progress["held"], settled(s)))
        if data == b"bad":
            raise InferenceError("unreadable sound")
        return None

    monkeypatch.setattr(speak_module, "hear_in_session", hear_in_session)
    panel = speak_module.Speak(session=session)
    training(session)
    for data in (b"word", b"bad"):
        heard, problem, _ = panel._work(data, ".wav", time.perf_counter())
        assert (problem is None) == (data == b"word")
        assert session.progress["held"] == 0
        assert moves_on(session, seen[-1][1])  # released: the training goes on
    assert [held for held, _ in seen] == [1, 1]
