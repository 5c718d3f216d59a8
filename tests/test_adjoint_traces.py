"""The adjoint's reverse-time picture (spec §3, §10) and the probes that record it."""
import numpy as np
import pytest

from eventprop_lab.gradient import loss_and_gradients
from eventprop_lab.losses import get_loss
from kernels import LossSource, Params, get_engine, make_batch


def _readout_lambda_difference(weight):
    """lambda_V - lambda_I of one readout (tau_m 20, tau_s 5 ms, T 1000 ms, dt 1 ms) under the
    source of a weighted-sum loss with g = 1 and one sample."""
    engine = get_engine("numba")
    p = Params(np.zeros((1, 1)), None, np.zeros((1, 1)), np.full(1, 20.0), np.full(1, 5.0),
               np.full(1, 20.0), np.full(1, 5.0))
    batch = make_batch([(np.zeros(0), np.zeros(0, int))], 1, 1.0, 1000)
    record = engine.forward(p, batch)
    t_mid = np.arange(1000) + 0.5
    # g = delta - p = 1: dL/dstat = -1, stat = (1/T) sum_n w(t_n) mean_v[n]
    source = LossSource(dl_dmean=(-weight(t_mid / 1000.0) / 1000.0)[None, :, None])
    _, probe = engine.backward(p, batch, record, source, probe_samples=[0])
    return probe.lambda_v_out[0, :, 0] - probe.lambda_i_out[0, :, 0]


def test_sum_adjoint_matches_the_spec_reverse_time_picture():
    d = _readout_lambda_difference(np.ones_like)
    at = lambda t: d[t - 1]  # noqa: E731  probe index n-1 is time t_n
    assert at(995) == pytest.approx(1.4e-4, rel=0.05)
    assert at(900) == pytest.approx(2.2e-6, rel=0.05)
    assert abs(at(500)) < 1e-12  # only the last ~100 ms get gradient


def test_sum_exp_adjoint_matches_the_spec_reverse_time_picture():
    d = _readout_lambda_difference(lambda x: np.exp(-x))
    at = lambda t: d[t - 1]  # noqa: E731
    assert at(100) == pytest.approx(4.4e-6, rel=0.03)
    assert at(500) == pytest.approx(3.0e-6, rel=0.03)
    assert at(900) == pytest.approx(2.8e-6, rel=0.03)
    assert np.all(d[:990] > 0)  # one sign over the whole trial: the loss-shaping effect


def _small_problem(seed=3):
    rng = np.random.default_rng(seed)
    n_in, N, K = 20, 12, 3
    p = Params(rng.normal(0.35, 0.2, (n_in, N)), rng.normal(0, 0.15, (N, N)), rng.normal(0, 0.5, (N, K)),
               rng.uniform(10, 30, N), rng.uniform(3, 8, N), np.full(K, 20.0), np.full(K, 5.0))
    samples = []
    for _ in range(4):
        t = np.sort(rng.uniform(0, 100, 120))
        samples.append((t, rng.integers(0, n_in, 120)))
    return p, make_batch(samples, n_in, 0.5, 200), np.array([0, 1, 2, 0])


def test_probes_record_without_changing_gradients():
    p, batch, labels = _small_problem()
    engine = get_engine("numba")
    loss = get_loss("sum_exp")
    plain = loss_and_gradients(engine, p, batch, labels, loss)
    probed = loss_and_gradients(engine, p, batch, labels, loss, probe_samples=[2, 0])
    assert plain.probe is None
    for a, b in zip(plain.gradients, probed.gradients):
        if a is not None:
            np.testing.assert_array_equal(a, b)
    probe = probed.probe
    assert list(probe.samples) == [2, 0]
    n = int(probed.record.n_spikes[2])
    assert n > 10
    assert np.all(np.isfinite(probe.transported[0, :n]))
    assert np.all(np.isnan(probe.transported[0, n:]))
    assert probe.lambda_v.shape == (2, batch.n_steps, 12)
    assert np.any(probe.lambda_v[0] != 0) and np.any(probe.lambda_i_out[1] != 0)


def test_transported_values_are_what_the_jump_receives():
    """The recorded transported value at a hidden spike equals sum_m w (lambda_V - lambda_I)_m of
    its targets just after the spike, recomputed from the probed traces one step later."""
    from kernels import StepCoefficients

    p, batch, labels = _small_problem()
    res = loss_and_gradients(get_engine("numba"), p, batch, labels, get_loss("sum"), probe_samples=[1])
    probe, rec = res.probe, res.record
    steps, ids = rec.spike_step[1, :rec.n_spikes[1]], rec.spike_id[1, :rec.n_spikes[1]]
    ch = StepCoefficients(p.tau_mem, p.tau_syn, batch.dt)
    co = StepCoefficients(p.tau_mem_out, p.tau_syn_out, batch.dt)
    checked = 0
    for q in range(len(steps)):
        n = steps[q]
        if n >= batch.n_steps or (steps == n).sum() != 1:
            continue  # alone at its step, so no other jump at t_n interferes
        lv, li = probe.lambda_v[0, n], probe.lambda_i[0, n]  # index n is time t_{n+1}
        lvo, lio = probe.lambda_v_out[0, n], probe.lambda_i_out[0, n]
        ell = res.loss.source.dl_dmean[1, n]
        lv_b, li_b = ch.a * lv, ch.b * li + ch.d * lv
        lvo_b = co.a * lvo - co.mv * ell / p.tau_mem_out
        lio_b = co.b * lio + co.d * lvo - co.mi * ell / p.tau_syn_out
        # lambda taken back to the crossing, lag before t_n (docs/engine.md, backward 1)
        lag = rec.spike_lag[1, q]
        # (for the readout also the part of step n's loss source that lies after the crossing)
        at_crossing = lambda lv, li, tm, ts, src: (lv - li) - lag * (lv / tm + (lv - li) / ts + src / tm)  # noqa: E731
        src = res.loss.source.dl_dmean[1, n - 1] / batch.dt
        expected = (p.W_rec[ids[q]] @ at_crossing(lv_b, li_b, p.tau_mem, p.tau_syn, 0.0)
                    + p.W_out[ids[q]] @ at_crossing(lvo_b, lio_b, p.tau_mem_out, p.tau_syn_out, src))
        assert probe.transported[0, q] == pytest.approx(expected, rel=1e-9, abs=1e-18)
        checked += 1
    assert checked >= 5
