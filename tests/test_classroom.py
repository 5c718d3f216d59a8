"""The classroom demos (spec §3): the physics they show, checked with the engine, not the pixels."""
import sys
from pathlib import Path

import numpy as np
import pytest

from eventprop_lab import classroom as C
from kernels import get_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for `app`

ENGINE = get_engine("numba")


# ---- 1. the cliff ----------------------------------------------------------------------------
def test_the_psp_formula_is_the_engines_voltage_below_threshold():
    n = C.OneNeuron(dt=0.1)
    trace = C.voltage_trace(0.5 * C.critical_weight(), n, engine=ENGINE)
    assert len(trace.spike_times) == 0
    expected = 0.5 * C.critical_weight() * C.psp(trace.t - n.t_input)
    assert np.max(np.abs(trace.v - expected)) < 1e-12
    t_peak, height = C.psp_peak()
    fine = np.linspace(0, 60, 600_001)
    assert abs(fine[np.argmax(C.psp(fine))] - t_peak) < 2e-4 and 0 <= height - C.psp(fine).max() < 1e-10


@pytest.mark.parametrize("dt", [0.5, 0.1, 0.02])
def test_critical_weight_found_with_the_engine_matches_the_analytic_one(dt):
    n = C.OneNeuron(dt=dt)
    numeric = C.critical_weight_numeric(n, engine=ENGINE)
    analytic = C.critical_weight(n.tau_mem, n.tau_syn)
    assert abs(analytic - 1.0 / C.psp_peak()[1]) < 1e-12 and 6.3 < analytic < 6.4  # tau_m 20, tau_s 5 ms
    # the grid only sees V at step ends, so it may need a little more weight, never less
    rel = (numeric - analytic) / analytic
    assert -1e-9 <= rel <= 1.05 * C.grid_tolerance(dt) + 1e-9
    assert C.cliff_sweep([numeric * (1 + 1e-9)], n, engine=ENGINE).n_spikes[0] == 1
    assert C.cliff_sweep([numeric * (1 - 1e-9)], n, engine=ENGINE).n_spikes[0] == 0


def test_spike_time_gradient_matches_finite_differences_and_grows_toward_the_cliff():
    n = C.OneNeuron(dt=0.05)
    wc = C.critical_weight_numeric(n, engine=ENGINE)
    deltas = np.array([1e-1, 1e-2, 1e-3, 1e-4])
    w = wc * (1 + deltas)
    h = w * deltas * 1e-3  # far smaller than the distance to the cliff
    sweep = C.cliff_sweep(np.concatenate([w - h, w, w + h]), n, engine=ENGINE)
    t_lo, _, t_hi = np.split(sweep.spike_time, 3)
    grad = np.split(sweep.dt_dw, 3)[1]
    fd = (t_hi - t_lo) / (2 * h)
    assert np.all(np.isfinite(grad)) and np.all(grad < 0)
    np.testing.assert_allclose(grad, fd, rtol=1e-3)
    # implicit function theorem at the crossing: dt*/dw = -(dV/dw)/V' = -tau_m / (w (I* - threshold))
    t_star = np.split(sweep.spike_time, 3)[1]
    i_star = w * np.exp(-(t_star - n.t_input) / n.tau_syn)
    np.testing.assert_allclose(grad, -n.tau_mem / (w * (i_star - 1.0)), rtol=1e-3)
    assert np.all(np.diff(np.abs(grad)) > 0)  # steeper and steeper toward the cliff...
    assert np.abs(grad[-1]) > 10 * np.abs(grad[1])  # ... about as 1/sqrt(w - w_c)
    below = C.cliff_sweep([wc * (1 - 1e-6)], n, engine=ENGINE)  # ... and then nothing at all
    assert np.isnan(below.spike_time[0]) and np.isnan(below.dt_dw[0])


def test_bad_settings_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="dt"):
        C.OneNeuron(dt=-0.1)
    with pytest.raises(ValueError, match="PSP peaks"):
        C.OneNeuron(t_input=55.0)
    with pytest.raises(ValueError, match="n_spikes"):
        C.critical_weight_numeric(n_spikes=0)
    with pytest.raises(ValueError, match="weights"):
        C.cliff_sweep([np.nan])
    with pytest.raises(ValueError, match="scenario"):
        C.Gedankenexperiment("vanish")
    with pytest.raises(ValueError, match="loss"):
        C.Gedankenexperiment(loss="max")
    with pytest.raises(ValueError):
        C.SignalConfig(loss="first_spike")
    with pytest.raises(ValueError, match="input_ms"):
        C.signal_data(C.SignalConfig(trial_ms=100.0, input_ms=300.0))


# ---- 2. the gedankenexperiment ---------------------------------------------------------------
def _run_to_event(experiment, max_steps=25):
    for _ in range(max_steps):
        experiment.step()
        if experiment.events():
            return experiment.events()[0]
    pytest.fail(f"no spike was deleted or created in {max_steps} steps")


def _exact_derivative(experiment, w, h=1e-5):
    """dL/dw_B of the exact continuous-time network (tests/exact_reference.py), by central
    differences. (Differences of the engine's own grid loss would not do: it carries a tiny
    sawtooth as B's crossing moves from step to step, whose slope is a few % near the cliff.)"""
    pytest.importorskip("scipy")
    import exact_reference as ref

    base = {k: None if v is None else np.array(v, np.float64) for k, v in experiment.params(w)._asdict().items()}
    times, channels = np.array([2.0, 12.0]), np.array([0, 1])
    loss = []
    for x in (w - h, w + h):
        base["W_in"][1, 1] = x
        loss.append(ref.loss(experiment.loss_name, base, times, channels, 0, experiment.trial_ms))
    return (loss[1] - loss[0]) / (2 * h)


def test_descent_deletes_a_useful_spike_and_the_loss_rises():
    ex = C.Gedankenexperiment("deletion", engine=ENGINE)
    k = _run_to_event(ex)
    h = ex.history
    assert k >= 3  # a few ordinary steps first
    for before, after in zip(h[:k], h[1:k + 1]):  # every step was exact gradient descent
        assert after.w_b == pytest.approx(before.w_b - ex.learning_rate * before.grad_w_b, rel=1e-12)
    grads = np.array([s.grad_w_b for s in h[:k]])
    assert np.all(grads > 0)  # the gradient wants B's spike later: lower its weight
    for s in (h[0], h[k - 1]):  # the gradient is the true one, also right before the cliff
        assert s.grad_w_b == pytest.approx(_exact_derivative(ex, s.w_b), rel=2e-3)
    losses = np.array([s.loss for s in h])
    assert np.all(np.diff(losses[:k]) < 0)  # each step lowered the loss ...
    assert np.all(np.diff([s.spikes_b[0] for s in h[:k]]) > 0)  # ... and moved the spike later
    assert len(h[k].spikes_b) == 0 and h[k].w_b < ex.critical < h[k - 1].w_b
    assert losses[k] > losses[k - 1] + 0.01 and losses[k] > losses[0]  # ... until the spike was gone
    assert h[k].grad_w_b == 0.0
    ex.step()
    assert ex.state.w_b == h[k].w_b and ex.state.loss == losses[k]  # stuck: descent cannot undo it
    land = ex.landscape(with_gradient=True)
    jump = np.nonzero(np.diff(land.n_spikes_b))[0][0]
    assert land.loss[jump] - land.loss[jump + 1] > 0.01  # the landscape: a cliff at the critical weight
    assert np.all(land.grad[land.n_spikes_b == 0] == 0) and np.all(np.isfinite(land.grad))


def test_descent_creates_a_harmful_spike_and_the_loss_rises():
    ex = C.Gedankenexperiment("creation", engine=ENGINE)
    k = _run_to_event(ex)
    h = ex.history
    assert k >= 3 and all(len(s.spikes_b) == 1 for s in h[:k]) and len(h[k].spikes_b) == 2
    assert all(s.grad_w_b < 0 for s in h[:k])  # the gradient wants the harmful spike earlier: more weight
    assert h[k - 1].grad_w_b == pytest.approx(_exact_derivative(ex, h[k - 1].w_b), rel=2e-3)
    assert all(b.loss < a.loss for a, b in zip(h[:k - 1], h[1:k]))
    assert h[k].loss > h[k - 1].loss + 0.01 and h[k].loss > h[0].loss
    assert h[k - 1].w_b < ex.event_weight <= h[k].w_b


def test_with_sum_exp_the_useful_spike_is_pulled_earlier_and_survives():
    ex = C.Gedankenexperiment("deletion", loss="sum_exp", engine=ENGINE)
    for _ in range(8):
        ex.step()
    assert not ex.events() and ex.state.spikes_b[0] < ex.history[0].spikes_b[0]
    assert ex.state.loss < ex.history[0].loss


# ---- 3. where the signal goes ----------------------------------------------------------------
@pytest.fixture(scope="module")
def signal():
    return {loss: C.where_the_signal_goes(loss=loss, engine=ENGINE) for loss in ("avg_xentropy", "sum_exp", "sum")}


def test_avg_xentropy_sends_negative_values_to_late_spikes_and_silences_helpers(signal):
    r = signal["avg_xentropy"]
    assert r.late_sum < 0 < r.early_sum  # late spikes are pushed later, early ones earlier
    assert r.weight_rate_correlation < -0.2  # neurons that help the correct readout lose their spikes
    rate = r.history["rate_hz"]
    assert np.all(np.diff(rate) < 0)
    times = r.probe["hidden_times"]
    assert r.late_from > times.min() and np.sum(times >= r.late_from) >= 10


def test_sum_exp_sends_positive_values_everywhere(signal):
    r = signal["sum_exp"]
    assert r.late_sum > 0 and r.early_sum > 0 and np.all(r.top_sums > 0)
    assert r.weight_rate_correlation > 0.5
    assert np.all(np.diff(r.history["rate_hz"]) > 0)
    p = r.probe
    diff = p["lambda_v_out"][:, r.label] - p["lambda_i_out"][:, r.label]
    assert np.all(diff[: int(0.99 * len(diff))] > 0)  # one sign over the whole trial (spec §3)


def test_sum_sends_almost_nothing_to_spikes_far_from_the_trial_end(signal):
    moved = np.abs(signal["sum"].probe["transported"])
    assert moved.max() < 1e-9 * np.abs(signal["sum_exp"].probe["transported"]).max()
    assert np.all(np.diff(signal["sum"].history["rate_hz"]) == 0)  # the hidden layer does not learn


def test_the_signal_result_is_consistent_with_its_probe(signal):
    r = signal["avg_xentropy"]
    p = r.probe
    moved, ids = p["transported"], p["hidden_ids"]
    assert np.isclose(r.late_sum + r.early_sum, moved.sum())
    counts = np.bincount(ids, minlength=len(r.rates_hz))
    assert counts[r.top[0]] == counts.max() and list(r.top_sums) == pytest.approx(
        [moved[ids == j].sum() for j in r.top])
    assert np.all(np.isfinite(moved)) and len(r.history["epoch"]) == C.SignalConfig().epochs + 1


# ---- the app page ----------------------------------------------------------------------------
def test_the_classroom_page_builds_renders_and_its_buttons_update_the_plots():
    pn = pytest.importorskip("panel", reason="the app needs panel")
    from app.classroom import Classroom

    page = Classroom(engine=ENGINE)
    root = pn.panel(page).get_root()
    assert root is not None and len(root.children) >= 3
    cliff = page.cliff
    assert cliff.numeric == pytest.approx(cliff.analytic, rel=1e-4)
    assert len(cliff.spike.data["t"]) == 1
    cliff.w = 0.95 * cliff.numeric
    assert len(cliff.spike.data["t"]) == 0 and "no spike" in cliff.info.object

    g = page.gedanken
    assert len(g.losses.data["step"]) == 1
    for _ in range(12):
        g.step_button.clicks += 1
    assert len(g.losses.data["step"]) == 13 and "deleted a spike" in g.info.object
    g.reset_button.clicks += 1
    assert len(g.losses.data["step"]) == 1
    g.scenario = "creation"
    assert g.experiment.scenario == "creation" and len(g.path.data["w"]) == 1

    s = page.signal
    assert len(s.sources["hidden"].data["t"]) == 0
    s.config.epochs = 1
    s.train_button.clicks += 1  # no server: Panel runs the async handler to completion
    assert not s.busy and s.result is not None and s.result.loss == "avg_xentropy"
    assert len(s.sources["hidden"].data["t"]) > 0 and len(s.sources["diff"].data["diff"]) == 1000
    assert len(s.sources["rates"].data["rate"]) == s.config.n_hidden and "1 epoch:" in s.status.object
