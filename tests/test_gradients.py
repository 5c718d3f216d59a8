"""The engine's gradients against finite differences of an exact event-driven simulation.

The engine runs on a grid, the reference in continuous time, so the engine's gradient converges
to the reference's as dt shrinks: checked for every loss and parameter kind at three dt values,
with the error at the smallest at most 1 % (relative, over the checked entries of each kind).
Finite differences skip perturbations that create, delete or reorder spikes (tests/fd.py); the
test asserts that enough entries remain.

Networks are small random ones (20 inputs, 8 hidden, 3 readouts, T = 100 ms, heterogeneous τ,
one neuron with τ_m = τ_s) whose hidden spikes are at least SEPARATION apart: a grid step
cannot resolve a spike that another spike triggers sooner than dt later, so such pairs are
excluded by the choice of seed rather than hidden in a tolerance.
"""
import numpy as np
import pytest

import exact_reference as ref
from eventprop_lab.gradient import loss_and_gradients
from eventprop_lab.losses import LOSSES, get_loss
from fd import fd_gradient
from kernels import Params, get_engine, make_batch

T = 100.0
DTS = (0.04, 0.01, 0.0025)  # ms; input spikes lie on a 0.5 ms grid, so on every one of these
SEPARATION = 0.04  # ms, >= every dt
KINDS = ("W_in", "W_rec", "W_out", "tau_mem", "tau_syn")
N_CHECKED = {"W_in": 12, "W_rec": 10, "W_out": 24, "tau_mem": 8, "tau_syn": 8}


def _min_separation_and_slope(params, samples):
    sep, slope = np.inf, np.inf
    for times, channels in samples:
        res = ref.simulate(params, times, channels, T)
        t = np.sort(res.hid_t)
        if len(t) > 1:
            sep = min(sep, np.diff(t).min())
        if len(t):
            slope = min(slope, res.hid_slope.min())
    return sep, slope


def well_separated_network(loss_name, recurrent=True, heterogeneous=True):
    """The first seed whose network has well separated hidden spikes, crossings that are not
    grazing, and (for first_spike) every label readout spiking."""
    for seed in range(200):
        rng = np.random.default_rng(seed)
        params, samples = ref.random_network(rng, T=T, recurrent=recurrent, heterogeneous=heterogeneous)
        labels = np.arange(len(samples)) % 3
        if loss_name == "first_spike":
            params["W_out"] = np.abs(params["W_out"]) + 1.0
            if not np.isfinite(ref.batch_loss("first_spike", params, samples, labels, T)):
                continue
        sep, slope = _min_separation_and_slope(params, samples)
        if sep >= SEPARATION and slope >= 0.05:
            return seed, params, samples, labels
    raise AssertionError("no well separated random network found")


def reference_gradients(loss_name, params, samples, labels, seed):
    rng = np.random.default_rng(1000 + seed)
    f = lambda q: ref.batch_loss_and_counts(loss_name, q, samples, labels, T)  # noqa: E731
    out = {}
    for kind in KINDS:
        if params[kind] is None:
            continue
        shape = params[kind].shape
        n = min(N_CHECKED[kind], int(np.prod(shape)))
        flat = rng.choice(int(np.prod(shape)), size=n, replace=False)
        idx = [np.unravel_index(i, shape) for i in flat]
        fd = fd_gradient(f, None, params, kind, idx)
        out[kind] = {i: v for i, v in fd.items() if v is not None}
    return out


def relative_errors(loss_name, params, samples, labels, fd):
    """Per dt, per kind: |g_engine - g_fd| / |g_fd| over the checked entries."""
    engine = get_engine("numba")
    loss = get_loss(loss_name)
    p = Params(**params)
    errors = []
    for dt in DTS:
        batch = make_batch(samples, p.n_in, dt, int(round(T / dt)))
        res = loss_and_gradients(engine, p, batch, labels, loss, train_tau=True)
        counts = res.record.counts.sum(1)
        expected = [ref.simulate(params, t, c, T).counts.sum() for t, c in samples]
        assert counts.tolist() == expected, f"dt={dt}: the grid network fires differently"
        g = res.gradients._asdict()
        err = {}
        for kind, entries in fd.items():
            a = np.array([g[kind][i] for i in entries])
            b = np.array(list(entries.values()))
            err[kind] = np.linalg.norm(a - b) / np.linalg.norm(b)
        errors.append(err)
    return errors


def _check_convergence(loss_name, recurrent=True, heterogeneous=True):
    seed, params, samples, labels = well_separated_network(loss_name, recurrent, heterogeneous)
    fd = reference_gradients(loss_name, params, samples, labels, seed)
    for kind, entries in fd.items():
        assert len(entries) >= 0.6 * N_CHECKED[kind] or len(entries) >= 5, (kind, len(entries))
        assert np.linalg.norm(list(entries.values())) > 1e-8, f"{kind}: gradient is zero, nothing checked"
    errors = relative_errors(loss_name, params, samples, labels, fd)
    table = {kind: [f"{e[kind]:.1e}" for e in errors] for kind in fd}
    for kind in fd:
        coarse, mid, fine = (e[kind] for e in errors)
        assert fine <= 0.01, f"{loss_name} {kind}: error {fine:.2e} at dt={DTS[-1]}; by dt {table}"
        assert fine < coarse, f"{loss_name} {kind}: no convergence {table}"
        # halving twice must help unless already at the level of the finite differences
        assert mid < coarse or coarse < 1e-4, f"{loss_name} {kind}: {table}"
    return table


@pytest.mark.parametrize("loss_name", sorted(LOSSES))  # a new loss needs an exact reference here
def test_engine_gradient_converges_to_exact_finite_differences(loss_name):
    _check_convergence(loss_name)


def test_feed_forward_homogeneous_gradient_converges_to_exact_finite_differences():
    _check_convergence("sum_exp", recurrent=False, heterogeneous=False)


@pytest.mark.parametrize("loss_name", ["sum", "sum_exp", "max", "avg_xentropy"])
def test_readout_weight_gradient_equals_derivative_of_the_engines_own_loss(loss_name):
    """For W_out the backward pass is the exact transpose of the forward step, so the gradient is
    the derivative of the grid loss itself (spike times do not depend on W_out)."""
    seed, params, samples, labels = well_separated_network(loss_name)
    p = Params(**params)
    engine = get_engine("numba")
    loss = get_loss(loss_name)
    batch = make_batch(samples, p.n_in, 0.5, int(T / 0.5))
    g = loss_and_gradients(engine, p, batch, labels, loss).gradients.W_out

    def grid_loss(W_out):
        q = p._replace(W_out=W_out)
        rec = engine.forward(q, batch, **loss.record_options())
        return loss.evaluate(rec, labels, q).value

    fd = np.zeros_like(g)
    h = 1e-5
    for idx in np.ndindex(g.shape):
        steps = []
        for s in (-2, -1, 1, 2):
            W = p.W_out.copy()
            W[idx] += s * h
            steps.append(grid_loss(W))
        fd[idx] = (steps[0] - 8 * steps[1] + 8 * steps[2] - steps[3]) / (12 * h)
    assert np.abs(fd).max() > 1e-4
    assert np.linalg.norm(g - fd) / np.linalg.norm(fd) <= 1e-4


if __name__ == "__main__":  # python tests/test_gradients.py: print the convergence tables
    for name in sorted(LOSSES):
        print(name, "relative error at dt =", DTS)
        for kind, errs in _check_convergence(name).items():
            print(f"  {kind:8s} " + "  ".join(errs))
