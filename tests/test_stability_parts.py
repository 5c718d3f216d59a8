"""The pieces of the stability fix (docs/results.md, "Why training was unstable"): weights
normalised for heterogeneous tau, input-gain calibration, per-parameter Adam learning rates."""
import numpy as np
import pytest

from kernels import get_engine, make_batch
from eventprop_lab.network import NetworkConfig, calibrate_input_gain, init_params
from eventprop_lab.optim import Adam


def test_het_weight_norm_keeps_the_draws_and_evens_the_drive():
    cfg = dict(n_in=200, n_hidden=400, n_out=3, heterogeneous_tau=True)
    raw = init_params(NetworkConfig(**cfg), rng=5, dtype=np.float64)
    norm = init_params(NetworkConfig(**cfg, het_weight_norm=True), rng=5, dtype=np.float64)
    assert np.array_equal(raw.tau_mem, norm.tau_mem) and np.array_equal(raw.tau_syn, norm.tau_syn)
    gain = (5.0 / raw.tau_syn) * np.sqrt(raw.tau_mem / 20.0)
    assert np.allclose(norm.W_in, raw.W_in * gain) and np.allclose(norm.W_rec, raw.W_rec * gain)
    assert np.array_equal(norm.W_out, raw.W_out)
    # without heterogeneous tau the option changes nothing
    plain = NetworkConfig(n_in=20, n_hidden=10, n_out=3)
    assert np.array_equal(init_params(plain, rng=1).W_in,
                          init_params(NetworkConfig(n_in=20, n_hidden=10, n_out=3, het_weight_norm=True), rng=1).W_in)


def test_het_weight_norm_narrows_the_initial_rates():
    rng = np.random.default_rng(0)
    samples = [(np.sort(rng.uniform(0, 300, 3000)), rng.integers(0, 100, 3000)) for _ in range(4)]
    batch = make_batch(samples, 100, 1.0, 300)
    engine = get_engine("numba")
    spread = {}
    for norm in (False, True):
        net = NetworkConfig(n_in=100, n_hidden=300, n_out=2, heterogeneous_tau=True, het_weight_norm=norm,
                            w_in_mean=0.04, w_in_std=0.01)
        counts = engine.forward(init_params(net, rng=3), batch).counts.mean(0)
        spread[norm] = np.percentile(counts, 90) - np.percentile(counts, 10)
    assert spread[True] < 0.5 * spread[False]


def test_calibrate_input_gain_finds_the_factor():
    p = init_params(NetworkConfig(n_in=10, n_hidden=4, n_out=2), rng=0, dtype=np.float64)
    base = p.W_in.mean()
    counts = lambda q: np.full((2, 4), 60.0 * (q.W_in.mean() / base) ** 3)  # noqa: E731
    q, g, reached = calibrate_input_gain(p, counts, 14.0)
    assert reached == pytest.approx(14.0, rel=0.05) and g == pytest.approx((14 / 60) ** (1 / 3), rel=0.02)
    assert np.allclose(q.W_in, p.W_in * g) and np.array_equal(q.W_out, p.W_out)


def test_calibrate_input_gain_on_the_engine():
    rng = np.random.default_rng(1)
    samples = [(np.sort(rng.uniform(0, 200, 2000)), rng.integers(0, 50, 2000)) for _ in range(3)]
    batch = make_batch(samples, 50, 1.0, 200)
    engine = get_engine("numba")
    p = init_params(NetworkConfig(n_in=50, n_hidden=30, n_out=2, w_in_mean=0.1, w_in_std=0.03), rng=2)
    counts = lambda q: engine.forward(q, batch).counts  # noqa: E731
    before = counts(p).mean()
    q, g, reached = calibrate_input_gain(p, counts, 3.0)
    assert before > 6 and g < 1
    assert counts(q).mean() == pytest.approx(3.0, rel=0.05) and reached == pytest.approx(counts(q).mean())


def test_adam_lr_scale_scales_one_parameter_only():
    grads = {"a": np.array([1.0, -2.0]), "b": np.array([0.5])}
    steps = []
    for scale in (None, {"a": 0.1}):
        params = {"a": np.zeros(2), "b": np.zeros(1)}
        Adam(lr=1e-2, lr_scale=scale).step(params, grads)
        steps.append(params)
    assert np.allclose(steps[1]["a"], 0.1 * steps[0]["a"]) and np.allclose(steps[1]["b"], steps[0]["b"])


def test_het_lr_norm_scales_each_neurons_first_step_by_its_weight_gain():
    from eventprop_lab.network import het_gain
    from eventprop_lab.training import Trainer, TrainingConfig

    rng = np.random.default_rng()
    net = NetworkConfig(n_in=6, n_hidden=5, n_out=2, heterogeneous_tau=True, het_weight_norm=True)
    p = init_params(net, rng=int(rng.integers(1 << 30)))
    gain = het_gain(net, p.tau_mem, p.tau_syn)
    cfg = TrainingConfig(lr=1e-3, w_in_lr_scale=0.1)
    trainer = Trainer(p, cfg, neuron_lr_scale=gain)
    grads = {"W_in": rng.normal(size=p.W_in.shape).astype(np.float32),
             "W_rec": rng.normal(size=p.W_rec.shape).astype(np.float32)}
    params = p._asdict()
    trainer.optimiser.step(params, grads)
    # Adam's first step is lr * sign(g) per weight (up to eps): here scaled per column by the gain
    np.testing.assert_allclose(np.abs(params["W_in"] - p.W_in), np.broadcast_to(1e-4 * gain, p.W_in.shape), rtol=1e-3)
    np.testing.assert_allclose(np.abs(params["W_rec"] - p.W_rec), np.broadcast_to(1e-3 * gain, p.W_rec.shape),
                               rtol=1e-3)
    assert Trainer(p, cfg).optimiser.lr_scale == {"W_in": 0.1}
