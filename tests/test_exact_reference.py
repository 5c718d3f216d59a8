"""Self-tests of the exact reference simulator (exact_reference.py) and the FD helper (fd.py)."""
import numpy as np
import pytest
from scipy.integrate import quad, simpson
from scipy.optimize import brentq

from exact_reference import (batch_loss_and_counts, loss, loss_from_result, propagate, quadrature,
                             random_network, readout_max, readout_statistic, simulate,
                             spike_counts, _Tau)
from fd import fd_derivative, fd_gradient

T = 100.0


def naive_kernel(s, tm, ts):
    """Textbook PSP kernel κ(s) for a unit current jump (no stabilisation)."""
    if tm == ts:
        return s / tm * np.exp(-s / tm)
    return ts / (tm - ts) * (np.exp(-s / tm) - np.exp(-s / ts))


def one_neuron_params(w, tm, ts):
    return dict(W_in=np.array([[w]]), W_rec=None, W_out=np.array([[1.0]]),
                tau_mem=np.array([tm]), tau_syn=np.array([ts]),
                tau_mem_out=np.array([20.0]), tau_syn_out=np.array([5.0]))


def peak_time(tm, ts):
    return tm if tm == ts else tm * ts / (tm - ts) * np.log(tm / ts)


# ------------------------------------------------------------------------------ single neuron

@pytest.mark.parametrize("tm, ts", [(20.0, 5.0), (8.0, 8.0), (3.0, 8.0)])
def test_single_neuron_crossing_time_matches_brentq_on_closed_form(tm, ts):
    w_c = 1.0 / naive_kernel(peak_time(tm, ts), tm, ts)
    w, t_in = 2.5 * w_c, 2.5
    res = simulate(one_neuron_params(w, tm, ts), [t_in], [0], 60.0)
    s_ref = brentq(lambda s: w * naive_kernel(s, tm, ts) - 1.0, 0.0, peak_time(tm, ts),
                   xtol=1e-15, rtol=1e-15)
    assert abs(res.hid_t[0] - (t_in + s_ref)) < 1e-12
    # the FIRST of the two roots of w·κ(s) = 1, on the rising flank
    assert res.hid_t[0] < t_in + peak_time(tm, ts)
    assert res.hid_slope[0] > 0
    # I is still above ϑ after the reset: the next spike solves w e^{−s1/τs} κ(u) = 1 from V = 0
    assert res.counts[0] >= 2
    w2 = w * np.exp(-s_ref / ts)
    u_ref = brentq(lambda u: w2 * naive_kernel(u, tm, ts) - 1.0, 0.0, peak_time(tm, ts),
                   xtol=1e-15, rtol=1e-15)
    assert abs(res.hid_t[1] - (t_in + s_ref + u_ref)) < 1e-12


@pytest.mark.parametrize("tm, ts", [(20.0, 5.0), (8.0, 8.0)])
def test_no_spike_below_critical_weight_and_grazing_spike_above(tm, ts):
    s_pk = peak_time(tm, ts)
    w_c = 1.0 / naive_kernel(s_pk, tm, ts)
    below = simulate(one_neuron_params(w_c * (1 - 1e-9), tm, ts), [1.0], [0], 60.0)
    above = simulate(one_neuron_params(w_c * (1 + 1e-9), tm, ts), [1.0], [0], 60.0)
    assert below.counts.tolist() == [0]
    assert above.counts.tolist() == [1]
    assert 1.0 + s_pk - 0.05 < above.hid_t[0] <= 1.0 + s_pk


def test_first_of_two_crossings_in_one_interval_is_found_between_distant_inputs():
    # V rises through ϑ and would fall back below it before the next input at 40 ms
    tm, ts = 20.0, 5.0
    w = 2.0 / naive_kernel(peak_time(tm, ts), tm, ts)
    res = simulate(one_neuron_params(w, tm, ts), [0.0, 40.0], [0, 0], 80.0)
    s_ref = brentq(lambda s: w * naive_kernel(s, tm, ts) - 1.0, 0.0, peak_time(tm, ts))
    assert abs(res.spike_times[0][0] - s_ref) < 1e-12


# -------------------------------------------------------------------- kernel and τ_m == τ_s

def test_propagate_matches_textbook_solution_including_equal_tau():
    s = np.linspace(0.0, 50.0, 101)
    for tm, ts in [(20.0, 5.0), (3.0, 8.0), (7.0, 7.0)]:
        tau = _Tau([tm], [ts])
        V, I = propagate(0.3, 1.7, s[:, None], tau)
        ref = 0.3 * np.exp(-s / tm) + 1.7 * naive_kernel(s, tm, ts)
        np.testing.assert_allclose(V[:, 0], ref, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(I[:, 0], 1.7 * np.exp(-s / ts), rtol=1e-14)
    # (V0 + I0 s/τ) e^{−s/τ} at τ_m = τ_s, continuous as τ_m → τ_s
    near = propagate(0.3, 1.7, s, _Tau([7.0 * (1 + 1e-9)], [7.0]))[0]
    exact = (0.3 + 1.7 * s / 7.0) * np.exp(-s / 7.0)
    np.testing.assert_allclose(near, exact, rtol=1e-8, atol=1e-15)


def test_equal_tau_neurons_agree_with_nearly_equal_tau():
    params, samples = random_network(np.random.default_rng(1))
    assert params["tau_mem"][0] == params["tau_syn"][0]
    assert params["tau_mem_out"][0] == params["tau_syn_out"][0]
    nudged = dict(params, tau_mem=params["tau_mem"].copy(), tau_mem_out=params["tau_mem_out"].copy())
    nudged["tau_mem"][0] *= 1 + 1e-9
    nudged["tau_mem_out"][0] *= 1 + 1e-9
    for times, channels in samples[:2]:
        a = simulate(params, times, channels, T)
        b = simulate(nudged, times, channels, T)
        assert a.counts[0] > 0                      # the equal-τ neuron is exercised
        assert a.counts.tolist() == b.counts.tolist()
        np.testing.assert_allclose(a.hid_t, b.hid_t, atol=1e-6)
        for name in ("sum", "max", "avg_xentropy"):
            la = loss(name, params, times, channels, 0, T)
            lb = loss(name, nudged, times, channels, 0, T)
            assert abs(la - lb) <= 1e-7 * abs(la)


# ---------------------------------------------------------------- brute-force fine stepping

def brute_force(params, times, channels, T, dt=1e-4):
    """Exact-exponential steps of dt (textbook a, b, c coefficients) from each event; threshold
    checked on the grid and the crossing time linearly interpolated; readout ∫V by trapezoid."""
    n_hid, n_out = params["W_out"].shape
    tm = np.concatenate([params["tau_mem"], params["tau_mem_out"]])
    ts = np.concatenate([params["tau_syn"], params["tau_syn_out"]])
    equal = tm == ts
    ts_safe = np.where(equal, ts * 2, ts)

    def step(V, I, s):                              # s: (K, 1) → states (K, n)
        a, b = np.exp(-s / tm), np.exp(-s / ts)
        c = np.where(equal, a * s / tm, ts_safe / (tm - ts_safe) * (a - b))
        return a * V + c * I, b * I

    V, I = np.zeros(n_hid + n_out), np.zeros(n_hid + n_out)
    t, ptr, spikes, integral = 0.0, 0, [], np.zeros(n_out)
    while True:
        t_next = times[ptr] if ptr < len(times) else T
        if t_next > t:
            K = int(np.ceil((t_next - t) / dt))
            s = np.minimum(np.arange(1, K + 1) * dt, t_next - t)[:, None]
            Vs, Is = step(V, I, s)
            above = Vs[:, :n_hid] >= 1.0
            if above.any():
                k = int(np.argmax(above.any(axis=1)))
                prev_V, prev_s = (V, 0.0) if k == 0 else (Vs[k - 1], s[k - 1, 0])
                js = np.flatnonzero(above[k])
                frac = (1.0 - prev_V[js]) / (Vs[k, js] - prev_V[js])
                tc = prev_s + frac * (s[k, 0] - prev_s)
                j, sc = js[np.argmin(tc)], tc.min()
                Vc, Ic = step(V, I, np.array([[sc]]))
                pts = np.concatenate([V[None], Vs[:k], Vc])[:, n_hid:]
                integral += np.trapezoid(pts, np.concatenate([[0.0], s[:k, 0], [sc]]), axis=0)
                V, I = Vc[0], Ic[0]
                V[j] = 0.0
                if params["W_rec"] is not None:
                    I[:n_hid] += params["W_rec"][j]
                I[n_hid:] += params["W_out"][j]
                t += sc
                spikes.append((t, j))
                continue
            pts = np.concatenate([V[None], Vs])[:, n_hid:]
            integral += np.trapezoid(pts, np.concatenate([[0.0], s[:, 0]]), axis=0)
            V, I = Vs[-1], Is[-1]
            t = t_next
        if ptr >= len(times):
            return spikes, integral / T
        I[:n_hid] += params["W_in"][channels[ptr]]
        ptr += 1


def test_event_driven_simulator_agrees_with_brute_force_fine_steps():
    params, samples = random_network(np.random.default_rng(0), recurrent=True)
    for times, channels in samples[:2]:
        res = simulate(params, times, channels, T)
        spikes, stat_bf = brute_force(params, times, channels, T)
        bf_t = np.array([t for t, _ in spikes])
        bf_j = np.array([j for _, j in spikes])
        assert len(spikes) == len(res.hid_t) > 5
        np.testing.assert_array_equal(bf_j, res.hid_j)
        np.testing.assert_allclose(bf_t, res.hid_t, atol=1e-6)      # observed ~1e-8 ms
        stat = readout_statistic("sum", res)
        np.testing.assert_allclose(stat_bf, stat, rtol=1e-7, atol=1e-12)
        p = np.exp(stat_bf - stat_bf.max())
        loss_bf = -np.log(p[1] / p.sum())
        assert abs(loss_bf - loss_from_result("sum", res, 1)) < 1e-6 * loss_bf


# --------------------------------------------------------------- readout statistics and losses

def dense_integral(res, integrand, n=2001):
    """∫₀ᵀ integrand(t, V(t)) dt by Simpson's rule with n points on every readout interval."""
    edges = np.append(res.out_t, res.T)
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            t = np.linspace(a, b, n)
            t_eval = np.clip(t, a, np.nextafter(b, a))   # stay inside the interval
            total = total + simpson(integrand(t, res.readout_V(t_eval)), x=t, axis=0)
    return total


def test_closed_form_and_quadrature_statistics_match_dense_quadrature():
    params, samples = random_network(np.random.default_rng(2))
    res = simulate(params, *samples[0], T)
    weights = {"sum": lambda t: np.ones_like(t), "sum_exp": lambda t: np.exp(-t / T),
               "sum_linear": lambda t: 1 - t / T,
               "sum_sigmoid": lambda t: 1 / (1 + np.exp((t / T - 0.5) / 0.2))}
    for name, w in weights.items():
        ref = dense_integral(res, lambda t, V: w(t)[:, None] * V) / T
        np.testing.assert_allclose(readout_statistic(name, res), ref, rtol=1e-10, atol=1e-13)

    def xent(t, V):
        m = V.max(axis=1)
        return m + np.log(np.exp(V - m[:, None]).sum(axis=1)) - V[:, 2]
    ref = dense_integral(res, xent) / T
    assert abs(loss_from_result("avg_xentropy", res, 2) - ref) < 1e-11 * ref
    # the generic quadrature helper also reproduces the closed-form sum
    np.testing.assert_allclose(quadrature(res, lambda t, V: V) / T,
                               readout_statistic("sum", res), rtol=1e-12)


def test_max_statistic_is_the_exact_maximum():
    params, samples = random_network(np.random.default_rng(3))
    for times, channels in samples[:2]:
        res = simulate(params, times, channels, T)
        exact, where = readout_max(res)
        t = np.union1d(np.linspace(0.0, T, 200_001), res.out_t)   # event times: kinks included
        dense = res.readout_V(t).max(axis=0)
        assert np.all(dense <= exact + 1e-12)
        np.testing.assert_allclose(dense, exact, atol=1e-8)
        assert len(where) == 3


def test_readout_first_spike_times_and_first_spike_loss():
    params, samples = random_network(np.random.default_rng(4))
    params["W_out"] = np.abs(params["W_out"]) + 1.0
    res = simulate(params, *samples[0], T, spiking_readout=True)
    t_k = res.out_first_spike
    assert np.all(np.isfinite(t_k))
    for k in range(3):                              # V_k < 1 before t_k, = 1 at t_k
        t = np.linspace(0.0, t_k[k], 100_001)[:-1]
        assert res.readout_V(t)[:, k].max() < 1.0
        assert abs(res.readout_V(np.array([t_k[k]]))[0, k] - 1.0) < 1e-12
    tau0, tau1, alpha = 1.0, 100.0, 5e-5
    ref = -np.log(np.exp(-t_k[1] / tau0) / np.exp(-t_k / tau0).sum()) \
        + alpha * (np.exp(t_k[1] / tau1) - 1)
    assert abs(loss_from_result("first_spike", res, 1) - ref) < 1e-12 * ref
    silent = simulate(params, [], [], T, spiking_readout=True)
    assert loss_from_result("first_spike", silent, 0) == np.inf


def test_silent_network_gives_uniform_softmax_loss():
    params, _ = random_network(np.random.default_rng(5))
    for name in ("sum", "sum_exp", "max", "avg_xentropy"):
        assert abs(loss(name, params, [], [], 0, T) - np.log(3)) < 1e-14


def test_signature_sees_a_spike_passing_an_input_event():
    # a hidden spike crossing the time of an input to its neuron is a kink (V̇ at the crossing
    # jumps), so the signature must change although the spike count does not
    tm, ts = 20.0, 5.0
    w_c = 1.0 / naive_kernel(peak_time(tm, ts), tm, ts)
    params = one_neuron_params(0.0, tm, ts)
    t_spike = {}
    for w in (1.30 * w_c, 1.45 * w_c):
        params["W_in"] = np.array([[w], [0.01]])
        res = simulate(params, [0.0, 3.5], [0, 1], 30.0)
        t_spike[w] = res.hid_t[0]
        sig = spike_counts(params, [0.0, 3.5], [0, 1], 30.0)
        assert sig[0] == (1,)
        assert sig[1] == (((2 if t_spike[w] > 3.5 else 1),),)
    assert min(t_spike.values()) < 3.5 < max(t_spike.values())


# --------------------------------------------------------------------- finite differences

def test_fd_derivative_recovers_smooth_analytic_derivative():
    f = lambda x: np.sin(3 * x) * np.exp(x / 2)
    df = lambda x: (3 * np.cos(3 * x) + 0.5 * np.sin(3 * x)) * np.exp(x / 2)
    value, info = fd_derivative(f, lambda x: 0, 0.7, 1e-3)
    assert abs(value - df(0.7)) < 1e-8
    assert info["reason"] == "ok" and info["disagreement"] < 1e-6
    value2, _ = fd_derivative(lambda x: (f(x), 0), None, 0.7, 1e-3)   # combined form
    assert value2 == value


def test_fd_derivative_discards_steps_whose_stencil_changes_counts():
    f = lambda x: x ** 3
    x0, h0 = 0.5, 1e-3
    value, info = fd_derivative(f, lambda x: int(x > x0 + 1e-7), x0, h0)
    assert value is None and info["estimates"] == [None, None, None]
    # a count change only inside the widest stencil: the two finer steps still give the answer
    value, info = fd_derivative(f, lambda x: int(x > x0 + 1.5 * h0), x0, h0)
    assert info["estimates"][0] is None and abs(value - 3 * x0 ** 2) < 1e-10
    # a kink the counts do not see: successive steps disagree, so no estimate
    value, info = fd_derivative(lambda x: abs(x - x0 - 5e-5), lambda x: 0, x0, h0)
    assert value is None and info["reason"] == "successive steps disagree"


def test_sum_loss_W_out_finite_difference_matches_analytic_psp_integral():
    params, samples = random_network(np.random.default_rng(6))
    times, channels = samples[0]
    label = 2
    res = simulate(params, times, channels, T)
    stat = readout_statistic("sum", res)
    p = np.exp(stat - stat.max())
    p /= p.sum()
    tm, ts = params["tau_mem_out"], params["tau_syn_out"]
    indices = [(j, k) for j in range(8) for k in range(3) if res.counts[j] > 0]
    assert len(indices) >= 12
    analytic = {}
    for j, k in indices:
        # readout k is linear in W_out[j, k]: dstat_k/dW = (1/T)∫ PSP of neuron j's spikes
        psp = sum(quad(lambda s: naive_kernel(s, tm[k], ts[k]), 0.0, T - tq,
                       epsabs=1e-14, epsrel=1e-13)[0] for tq in res.spike_times[j])
        analytic[(j, k)] = (p[k] - (k == label)) * psp / T
    fd = fd_gradient(lambda q: batch_loss_and_counts("sum", q, [samples[0]], [label], T),
                     None, params, "W_out", indices)
    for idx in indices:
        assert fd[idx] is not None
        assert abs(fd[idx] - analytic[idx]) <= 1e-8 * abs(analytic[idx]) + 1e-12


def test_fd_gradient_perturbs_copies_and_handles_tau_directions():
    params, samples = random_network(np.random.default_rng(7))
    before = {k: (None if v is None else v.copy()) for k, v in params.items()}
    f = lambda q: batch_loss_and_counts("sum_exp", q, samples[:2], [0, 1], T)
    grads, infos = fd_gradient(f, None, params, "tau_mem", [0, 1, 2], return_info=True)
    for k, v in params.items():
        assert (v is None and before[k] is None) or np.array_equal(v, before[k])
    ok = [i for i in grads if grads[i] is not None]
    assert len(ok) >= 2
    assert all(infos[i]["disagreement"] < 1e-4 for i in ok)
