"""Outlier gradients are scaled down to a multiple of the recent median norm (docs/results.md,
"Sudden runaways"), in the trainer and across a checkpoint."""
import numpy as np
import pytest

import eventprop_lab.training as training
from eventprop_lab.optim import NormClip
from eventprop_lab.run import TrainingRun
from test_run import make_run, toy_data


def test_norm_clip_scales_outliers_to_the_limit_only_after_enough_history():
    rng = np.random.default_rng()
    clip = NormClip(factor=5.0, window=50, min_history=10)
    norms = rng.uniform(0.5, 1.5, 30)
    assert clip.scale(1e6) == 1.0  # nothing to compare with yet: recorded, not clipped
    for n in norms[:8]:
        assert clip.scale(n) == 1.0
    for n in norms[8:]:
        clip.scale(n)
    limit = 5.0 * np.median(clip.history)
    big = limit * rng.uniform(2.0, 1e4)
    assert clip.scale(big) * big == pytest.approx(limit)
    assert clip.scale(0.9 * limit) == 1.0
    assert len(clip.history) == 33


def test_a_streak_of_outliers_does_not_lift_the_limit_it_is_judged_by():
    """Clipped norms are recorded as clipped: a streak longer than half the window raises the
    limit by about the factor (the way to follow a real change of scale), not to the outliers'
    (recorded whole, they would set it at 50x or more)."""
    rng = np.random.default_rng()
    clip = NormClip(factor=5.0, window=100, min_history=10)
    for n in rng.uniform(0.5, 1.5, 100):
        clip.scale(n)
    limit = 5.0 * np.median(clip.history)
    for big in limit * 10.0 ** rng.uniform(1, 6, 60):
        clip.scale(big)
    assert 5.0 * np.median(clip.history) < 10.0 * limit
    outlier = 100.0 * limit
    assert clip.scale(outlier) < 0.1


def test_norm_clip_off_ignores_non_finite_norms_and_keeps_a_window():
    off = NormClip(factor=0.0, min_history=1)
    for n in (1.0, 1.0, 1e9):
        assert off.scale(n) == 1.0
    clip = NormClip(factor=3.0, window=5, min_history=1)
    for n in (1.0, np.inf, np.nan, 2.0):
        clip.scale(n)
    assert clip.history == [1.0, 2.0]
    for n in range(10):
        clip.scale(1.0)
    assert len(clip.history) == 5


def _outlier_at(monkeypatch, step, factor):
    real, calls = training.loss_and_gradients, {"n": 0}

    def patched(*args, **kwargs):
        res = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] != step:
            return res
        g = res.gradients
        return res._replace(gradients=g._replace(W_in=g.W_in * factor, W_out=g.W_out * factor))

    monkeypatch.setattr(training, "loss_and_gradients", patched)


@pytest.mark.parametrize("clip", [5.0, 0.0])
def test_the_trainer_clips_an_outlier_batch_and_reports_its_raw_norm(tmp_path, monkeypatch, clip):
    seen = []
    run = make_run(tmp_path, observers=[seen.append])
    run.training.batch_size = 4
    run.training.grad_clip = clip
    step = int(np.random.default_rng().integers(12, 20))
    _outlier_at(monkeypatch, step, 1e4)
    run.fit(epochs=1)
    batches = [o for o in seen if o.kind == "batch"]
    assert len(batches) >= 20
    before = [b.grad_norm for b in batches[:step - 1]]
    hit = batches[step - 1]
    assert hit.grad_norm > 1e3 * np.median(before)
    if clip:
        assert hit.grad_scale * hit.grad_norm == pytest.approx(5.0 * np.median(before[-100:]), rel=1e-6)
    else:
        assert hit.grad_scale == 1.0
    assert all(b.grad_scale == 1.0 for b in batches[:10])


def test_the_norm_history_survives_a_checkpoint(tmp_path):
    run = make_run(tmp_path)
    run.fit(epochs=1)
    history = list(run.trainer.clip.history)
    assert len(history) > 0
    again = TrainingRun.from_checkpoint(tmp_path / "run" / "last.npz", data=toy_data())
    assert again.trainer.clip.history == history
