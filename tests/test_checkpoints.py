"""Checkpoints in memory within a byte budget: the oldest periodic ones go first, the newest one
taken before a change (what undo needs) last."""
from types import SimpleNamespace

import numpy as np
import pytest

from eventprop_lab import rewind
from eventprop_lab.rewind import Checkpoint, Checkpoints
from eventprop_lab.session import TrainingSession
from test_session import configs, toy_data


def fake(step, why, n):
    """A checkpoint of n float64 weights and Adam moments of the same size (3n * 8 bytes)."""
    params = (np.zeros(n), None)
    return Checkpoint(step, why, params, {"t": np.array(step), "m/w": np.zeros(n), "v/w": np.zeros(n)}, {}, [], {})


def size(n):
    return 3 * n * 8 + np.array(0).nbytes


@pytest.fixture
def fake_take(monkeypatch):
    sizes = {}
    monkeypatch.setattr(rewind, "take", lambda run, why: fake(run.step, why, sizes[run.step]))
    return sizes


def test_the_oldest_periodic_checkpoints_go_first_and_the_newest_change_last(fake_take):
    rng = np.random.default_rng()
    n = int(rng.integers(100, 5000))
    fit = int(rng.integers(3, 7))  # checkpoints that fit
    cps = Checkpoints(changes=10, periodic=10, every=1, max_bytes=fit * size(n) + size(n) // 2)
    change_at = int(rng.integers(1, 4))
    for step in range(1, 13):
        fake_take[step] = n
        if step == change_at:
            cps.before_change(fake(step, "loss → sum", n))
        cps.after_batch(SimpleNamespace(step=step))
        assert cps.nbytes <= cps.max_bytes and len(cps) <= fit
    assert cps.newest_change().step == change_at
    # the periodic ones kept are the newest, with the change's checkpoint beside them
    assert [cp.step for cp in cps.periodic] == list(range(12 - fit + 2, 13))
    assert cps.dropped == 12 + 1 - fit
    # a big one, with room for one more: the older change goes once no periodic one is left
    cps.before_change(fake(13, "lr → 0.01", n))
    cps.before_change(fake(14, "loss → max", (fit - 1) * n))
    assert [cp.step for cp in cps.changes] == [13, 14] and not cps.periodic and cps.nbytes <= cps.max_bytes
    cps.before_change(fake(15, "loss → sum", 2 * fit * n))  # alone over the budget: not kept
    assert len(cps) == 0 and cps.nbytes == 0 and cps.pop_change() is None


def test_weights_two_checkpoints_share_count_once(fake_take):
    n = int(np.random.default_rng().integers(100, 5000))
    cps = Checkpoints(every=1, max_bytes=None)
    cp = fake(4, "loss → sum", n)
    cps.before_change(cp)
    cps.before_change(cp._replace(why="lr → 0.01", adam={"m/w": np.zeros(n)}))
    assert cps.nbytes == size(n) + 8 * n
    with pytest.raises(ValueError, match="max_bytes"):
        Checkpoints(max_bytes=0)


def test_a_session_within_its_checkpoint_budget_still_undoes_the_last_change(tmp_path):
    probe = TrainingSession.from_configs(*configs(tmp_path / "probe"), data=toy_data())
    probe.step(1)
    probe.wait()
    probe.set(lr=2e-2)  # after a step: Adam's moments exist, as they do in every later checkpoint
    probe.step(1)
    probe.wait()
    one = probe.checkpoints.nbytes  # one checkpoint of this network
    probe.stop()
    fit = int(np.random.default_rng().integers(2, 5))
    s = TrainingSession.from_configs(*configs(tmp_path), data=toy_data(), checkpoint_every=1,
                                     checkpoint_bytes=fit * one + one // 2)
    try:
        s.step(4)
        s.wait()
        before = s.params
        s.set(loss="avg_xentropy")
        s.step(6)
        s.wait()
        assert s.checkpoints.nbytes <= fit * one + one // 2 and len(s.checkpoints) <= fit
        assert s.checkpoints.dropped > 0
        s.undo()
        s.wait()
        assert s.params is before and s.settings["loss"] == "sum_exp"
    finally:
        s.stop()
