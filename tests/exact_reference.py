"""Exact, event-driven float64 reference of the Eventprop network: ground truth for gradient checks.

Independent of the engine (imports nothing from `kernels` or `eventprop_lab`). Between events every
neuron follows τ_m dV/dt = −V + I, τ_s dI/dt = −I (spec §1) and is advanced with the analytic
solution; hidden threshold crossings are found by root finding on that solution; events are handled
strictly in time order. Readout statistics use closed-form integrals where they exist (sum, sum_exp,
sum_linear) and per-interval Gauss–Legendre quadrature otherwise (sum_sigmoid, avg_xentropy).

Parameters are a dict of float64 arrays: W_in (n_in, n_hid), W_rec (n_hid, n_hid) or None, W_out
(n_hid, n_out), tau_mem, tau_syn (n_hid,), tau_mem_out, tau_syn_out (n_out,). Times in ms.
A sample is (times, channels), time-sorted, times in [0, T).
"""
import math

import numpy as np
from scipy.optimize import brentq

THETA = 1.0
LOSSES = ("sum", "sum_exp", "sum_linear", "sum_sigmoid", "max", "avg_xentropy", "first_spike")
_GL_X, _GL_W = np.polynomial.legendre.leggauss(12)
_MAX_PIECE = 1.0        # ms; quadrature pieces never longer than this
_MAX_SPIKES = 100_000   # guard against runaway recurrent excitation


# ------------------------------------------------------------------ analytic single-neuron solution

class _Tau:
    """Per-neuron rates in the form the stable kernel needs."""

    def __init__(self, tau_mem, tau_syn):
        self.tm = np.asarray(tau_mem, dtype=float)
        self.ts = np.asarray(tau_syn, dtype=float)
        self.rm, self.rs = 1.0 / self.tm, 1.0 / self.ts
        self.rlo = np.minimum(self.rm, self.rs)
        self.d = np.abs(self.rm - self.rs)


def _psi(x):
    """(1 − e^{−x})/x for x ≥ 0, ψ(0) = 1 (expm1 keeps it accurate for tiny x)."""
    x = np.asarray(x, dtype=float)
    return np.divide(-np.expm1(-x), x, out=np.ones_like(x), where=x > 0)


def _log1p_ratio(y):
    """log(1 + y)/y for y > −1, value 1 at y = 0 (nan/−inf for y ≤ −1: callers mask those)."""
    y = np.asarray(y, dtype=float)
    return np.divide(np.log1p(y), y, out=np.ones_like(y), where=y != 0)


def propagate(V0, I0, s, tau):
    """State after a time s ≥ 0 without events.

    V(s) = V0 e^{−s/τm} + I0 κ(s) with κ(s) = τs/(τm−τs)(e^{−s/τm} − e^{−s/τs}). Written as
    κ(s) = (s/τm) e^{−s·min(1/τm,1/τs)} ψ(s·|1/τm − 1/τs|) it has no cancellation when τm ≈ τs,
    reduces to (s/τ)e^{−s/τ} when τm = τs, and never overflows.
    """
    kappa = s * tau.rm * np.exp(-s * tau.rlo) * _psi(s * tau.d)
    return V0 * np.exp(-s * tau.rm) + I0 * kappa, I0 * np.exp(-s * tau.rs)


def stationary_time(V0, I0, tau):
    """The unique s > 0 with V̇(s) = 0 (a sum of two exponentials has at most one), else inf.

    From V̇ ∝ I − V: e^{sD} = 1/(1 + Dx) with D = 1/τs − 1/τm, x = (V0 − I0)τs/I0, so
    s* = −x·log1p(Dx)/(Dx), which tends to the τm = τs value s* = −x smoothly.
    """
    V0, I0 = np.asarray(V0, dtype=float), np.asarray(I0, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x = (V0 - I0) * tau.ts / I0
        y = (tau.rs - tau.rm) * x
        s = -x * _log1p_ratio(y)
    return np.where((y > -1) & (s > 0) & (s < np.inf), s, np.inf)     # nan (I0 = 0) → inf


def _crossing_candidates(V0, I0, tau, L):
    """Mask of neurons whose V reaches ϑ within [0, L], and the end of the rising bracket.

    V can only rise through ϑ while I > ϑ (I decays, and V̇ > 0 at V = ϑ needs I > ϑ), and it rises
    monotonically from s = 0 up to its maximum s* (if any); beyond s* V only falls. So the FIRST
    crossing, if there is one, lies in [0, min(s*, L)] where V − ϑ changes sign exactly once.
    """
    s_end = np.minimum(stationary_time(V0, I0, tau), L)
    V_end, _ = propagate(V0, I0, s_end, tau)
    hit = (V0 >= THETA) | ((I0 > THETA) & (V_end >= THETA))
    return hit, s_end


def _root(V0, I0, tm, ts, s_end):
    """First s in [0, s_end] with V(s) = ϑ (scalars; V(0) < ϑ ≤ V(s_end), V monotone there)."""
    if V0 >= THETA:
        return 0.0
    rm, rs = 1.0 / tm, 1.0 / ts
    rlo, d = min(rm, rs), abs(rm - rs)

    def f(s):
        x = s * d
        psi = 1.0 - x / 2 + x * x / 6 if x < 1e-5 else -math.expm1(-x) / x
        return V0 * math.exp(-s * rm) + I0 * s * rm * math.exp(-s * rlo) * psi - THETA

    if f(s_end) < 0:    # rounding at a grazing peak
        return s_end
    return brentq(f, 0.0, s_end, xtol=1e-15, rtol=1e-15, maxiter=200)


# ------------------------------------------------------------------------------------ simulation

class Result:
    """Outcome of one trial.

    in_t: the input event times; recurrent: whether W_rec was given.
    hid_t, hid_j, hid_slope: hidden spikes in time order (time, neuron, I − ϑ = τ_m V̇⁻ at the spike).
    spike_times: list of per-neuron spike-time arrays; counts: spikes per hidden neuron.
    out_t, out_V, out_I: readout event times (0, then every hidden spike) and readout state right
        after each event, shape (E, n_out); between events V follows analytically (readout_V).
    ev_t, ev_V, ev_I: the same for the hidden layer over all events (inputs and spikes).
    out_first_spike: (n_out,) first spike time of spiking readouts (inf if none; only when
        simulate(..., spiking_readout=True), else None).
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def interval_ids(self):
        """Identity of each readout interval as (neuron, its spike number) of the opening spike."""
        ids, seen = [(-1, 0)], {}
        for j in self.hid_j:
            seen[j] = seen.get(j, -1) + 1
            ids.append((int(j), seen[j]))
        return ids

    def readout_V(self, t):
        """Readout voltages at times t (array-like) → shape t.shape + (n_out,)."""
        return _evaluate(self.out_t, self.out_V, self.out_I, self.tau_out, t)

    def hidden_V(self, t):
        """Hidden voltages at times t (just after any event at exactly t) → t.shape + (n_hid,)."""
        return _evaluate(self.ev_t, self.ev_V, self.ev_I, self.tau_hid, t)


def _evaluate(ev_t, ev_V, ev_I, tau, t):
    t = np.asarray(t, dtype=float)
    idx = np.clip(np.searchsorted(ev_t, t, side="right") - 1, 0, None)
    s = (t - ev_t[idx])[..., None]
    return propagate(ev_V[idx], ev_I[idx], s, tau)[0]


def simulate(params, times, channels, T, spiking_readout=False):
    """Simulate one trial on [0, T] from rest; returns a Result."""
    times = np.asarray(times, dtype=float)
    channels = np.asarray(channels, dtype=int)
    assert np.all(np.diff(times) >= 0) and np.all(times >= 0), "inputs: sorted times ≥ 0"
    times, channels = times[times < T], channels[times < T]
    W_in, W_rec, W_out = params["W_in"], params.get("W_rec"), params["W_out"]
    tau_h = _Tau(params["tau_mem"], params["tau_syn"])
    tau_o = _Tau(params["tau_mem_out"], params["tau_syn_out"])
    n_hid, n_out = W_out.shape
    V, I = np.zeros(n_hid), np.zeros(n_hid)
    Vo, Io = np.zeros(n_out), np.zeros(n_out)
    t, ptr, n_ev = 0.0, 0, len(times)
    spikes = []                                    # (t, j, slope)
    out_t, out_V, out_I = [0.0], [Vo.copy()], [Io.copy()]
    ev_t, ev_V, ev_I = [0.0], [V.copy()], [I.copy()]

    t_out = 0.0                                    # readouts are brought up to date lazily
    while True:
        t_next = times[ptr] if ptr < n_ev else T
        L = max(t_next - t, 0.0)
        # earliest hidden threshold crossing within [t, t_next]; only I > ϑ (or V ≥ ϑ) can cross
        s_c, j_c = np.inf, -1
        if ((I > THETA) | (V >= THETA)).any():
            hit, s_end = _crossing_candidates(V, I, tau_h, L)
            for j in np.flatnonzero(hit):
                s_e = s_end[j]
                s = _root(V[j], I[j], tau_h.tm[j], tau_h.ts[j], s_e)
                if s < s_c:
                    s_c, j_c = s, j
        if j_c >= 0:
            V, I = propagate(V, I, s_c, tau_h)
            t += s_c
            Vo, Io = propagate(Vo, Io, t - t_out, tau_o)
            t_out = t
            spikes.append((t, j_c, I[j_c] - THETA))
            if len(spikes) > _MAX_SPIKES:
                raise RuntimeError("runaway spiking")
            V[j_c] = 0.0                           # reset; V of other neurons is continuous
            if W_rec is not None:
                I += W_rec[j_c]                    # diagonal included
            Io += W_out[j_c]
            out_t.append(t); out_V.append(Vo.copy()); out_I.append(Io.copy())
            ev_t.append(t); ev_V.append(V.copy()); ev_I.append(I.copy())
            continue
        V, I = propagate(V, I, L, tau_h)
        t = t_next
        if ptr >= n_ev:
            break
        while ptr < n_ev and times[ptr] == t_next:
            I += W_in[channels[ptr]]
            ptr += 1
        ev_t.append(t); ev_V.append(V.copy()); ev_I.append(I.copy())

    sp = np.array(spikes, dtype=float).reshape(-1, 3)
    hid_j = sp[:, 1].astype(int)
    res = Result(
        T=float(T), tau_hid=tau_h, tau_out=tau_o, in_t=times, recurrent=W_rec is not None,
        hid_t=sp[:, 0], hid_j=hid_j, hid_slope=sp[:, 2],
        spike_times=[sp[hid_j == j, 0] for j in range(n_hid)],
        counts=np.bincount(hid_j, minlength=n_hid),
        out_t=np.array(out_t), out_V=np.array(out_V), out_I=np.array(out_I),
        ev_t=np.array(ev_t), ev_V=np.array(ev_V), ev_I=np.array(ev_I),
        out_first_spike=None, out_first_interval=None)
    if spiking_readout:
        res.out_first_spike, res.out_first_interval = _readout_first_spikes(res)
    return res


def _intervals(res):
    """Readout intervals: start times, lengths, start states (E,), (E,), (E, n_out) ×2."""
    ends = np.append(res.out_t[1:], res.T)
    return res.out_t, np.maximum(ends - res.out_t, 0.0), res.out_V, res.out_I


def _readout_first_spikes(res):
    """First threshold crossing of each readout treated as LIF (ϑ = 1); readouts feed nothing,
    so it is found after the fact, interval by interval."""
    t0, L, V0, I0 = _intervals(res)
    tau = res.tau_out
    hit, s_end = _crossing_candidates(V0, I0, tau, L[:, None])
    n_out = V0.shape[1]
    first, where = np.full(n_out, np.inf), [None] * n_out
    for k in range(n_out):
        rows = np.flatnonzero(hit[:, k])
        if len(rows):
            e = rows[0]
            s = _root(V0[e, k], I0[e, k], tau.tm[k], tau.ts[k], s_end[e, k])
            first[k], where[k] = t0[e] + s, e
    return first, where


# ----------------------------------------------------------------------------- readout statistics

def _integral_sum(res):
    """∫₀ᵀ V_k dt, closed form: V = I − τm V̇ gives ∫V = ∫I − τm[V] on each interval."""
    _, L, V0, I0 = _intervals(res)
    tau, L = res.tau_out, L[:, None]
    V1, _ = propagate(V0, I0, L, tau)
    per = I0 * tau.ts * -np.expm1(-L * tau.rs) - tau.tm * (V1 - V0)
    return per.sum(axis=0)


def _integral_sum_exp(res):
    """∫₀ᵀ e^{−t/T} V_k dt: with w = e^{−t/T}, ∫wV·(1 + τm/T) = ∫wI − τm[wV] on each interval."""
    t0, L, V0, I0 = _intervals(res)
    tau, T = res.tau_out, res.T
    w0, L = np.exp(-t0 / T)[:, None], L[:, None]
    V1, _ = propagate(V0, I0, L, tau)
    r = 1.0 / T + tau.rs
    int_wI = w0 * I0 * -np.expm1(-L * r) / r
    per = (int_wI - tau.tm * (w0 * np.exp(-L / T) * V1 - w0 * V0)) / (1.0 + tau.tm / T)
    return per.sum(axis=0)


def _integral_sum_linear(res):
    """∫₀ᵀ (1 − t/T) V_k dt: ∫wV = ∫wI − τm[wV] + τm∫w'V with w' = −1/T."""
    t0, L, V0, I0 = _intervals(res)
    tau, T = res.tau_out, res.T
    w0, L = (1.0 - t0 / T)[:, None], L[:, None]
    V1, _ = propagate(V0, I0, L, tau)
    x = L * tau.rs
    int_I = I0 * tau.ts * -np.expm1(-x)
    int_sI = I0 * tau.ts ** 2 * (-np.expm1(-x) - x * np.exp(-x))     # ∫₀ᴸ s I(s) ds
    int_V = int_I - tau.tm * (V1 - V0)
    per = (w0 * int_I - int_sI / T) - tau.tm * ((w0 - L / T) * V1 - w0 * V0) - tau.tm / T * int_V
    return per.sum(axis=0)


def quadrature(res, integrand, max_piece=_MAX_PIECE):
    """∫₀ᵀ integrand(t, V(t)) dt by 12-node Gauss–Legendre on pieces ≤ max_piece of every readout
    interval (V is analytic inside an interval, so this converges spectrally).
    integrand maps t (P, G) and V (P, G, n_out) to an array of shape (P, G) or (P, G, n_out)."""
    t0, L, V0, I0 = _intervals(res)
    n_p = np.maximum(1, np.ceil(L / max_piece)).astype(int)
    e = np.repeat(np.arange(len(t0)), n_p)
    k = np.arange(len(e)) - np.repeat(np.cumsum(n_p) - n_p, n_p)
    h = (L / n_p)[e]
    s = (k * h)[:, None] + 0.5 * h[:, None] * (_GL_X + 1.0)          # (P, G)
    V, _ = propagate(V0[e][:, None, :], I0[e][:, None, :], s[..., None], res.tau_out)
    vals = integrand(t0[e][:, None] + s, V)
    w = 0.5 * h[:, None] * _GL_W
    return np.tensordot(w, vals, axes=([0, 1], [0, 1]))


def _sigmoid_weight(t, T):
    return 1.0 / (1.0 + np.exp((t / T - 0.5) / 0.2))


def readout_max(res):
    """Exact max_t V_k on [0, T] and where it is: per readout (interval index, 'start' | 'inside' |
    'end'). In an interval the max is at an end or at the closed-form stationary point."""
    t0, L, V0, I0 = _intervals(res)
    tau = res.tau_out
    s_st = stationary_time(V0, I0, tau)
    inside = s_st < L[:, None]
    V_st = np.where(inside, propagate(V0, I0, np.where(inside, s_st, 0.0), tau)[0], -np.inf)
    V_T, _ = propagate(V0[-1], I0[-1], L[-1], tau)
    cand = np.concatenate([V0, V_st, V_T[None]])                     # (2E + 1, n_out)
    arg = np.argmax(cand, axis=0)
    E = len(t0)
    where = [(a, "start") if a < E else (a - E, "inside") if a < 2 * E else (E - 1, "end")
             for a in arg]
    return cand[arg, np.arange(cand.shape[1])], where


def readout_statistic(name, res):
    """The per-readout statistic fed to the softmax for the statistic losses."""
    T = res.T
    if name == "sum":
        return _integral_sum(res) / T
    if name == "sum_exp":
        return _integral_sum_exp(res) / T
    if name == "sum_linear":
        return _integral_sum_linear(res) / T
    if name == "sum_sigmoid":
        return quadrature(res, lambda t, V: _sigmoid_weight(t, T)[..., None] * V) / T
    if name == "max":
        return readout_max(res)[0]
    raise ValueError(f"no readout statistic for loss {name!r}")


def _logsumexp(a, axis=-1):
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def loss_from_result(name, res, label, tau0=1.0, tau1=100.0, alpha=5e-5):
    """Per-sample loss (spec §3) from a simulated trial."""
    if name == "avg_xentropy":
        return float(quadrature(res, lambda t, V: _logsumexp(V) - V[..., label]) / res.T)
    if name == "first_spike":
        t_k = res.out_first_spike
        if t_k is None:
            raise ValueError("first_spike needs simulate(..., spiking_readout=True)")
        if not np.isfinite(t_k[label]):
            return np.inf
        return float(t_k[label] / tau0 + _logsumexp(-t_k / tau0)
                     + alpha * np.expm1(t_k[label] / tau1))
    stat = readout_statistic(name, res)
    return float(_logsumexp(stat) - stat[label])


def loss(name, params, times, channels, label, T, **kw):
    """Loss of one sample; kw: tau0, tau1, alpha (first_spike only)."""
    res = simulate(params, times, channels, T, spiking_readout=(name == "first_spike"))
    return loss_from_result(name, res, label, **kw)


def batch_loss(name, params, samples, labels, T, **kw):
    """Mean loss over samples [(times, channels), ...]."""
    return float(np.mean([loss(name, params, tm, ch, lab, T, **kw)
                          for (tm, ch), lab in zip(samples, labels)]))


# ------------------------------------------------------------------------ smoothness signatures

def signature_from_result(res, loss_name=None):
    """Hashable signature that changes wherever the loss can stop being smooth in the parameters.

    A spike creation/deletion is a jump. A hidden spike passing an event that changes its neuron's
    I (any input: W_in is dense; any hidden spike if recurrent) is a kink: V̇ at the crossing jumps,
    so dt_spike/dθ = −∂_θV/V̇ does too. Hence: (spike counts, per neuron and spike the number of
    input events [and, if recurrent, hidden spikes] before it). For loss_name='first_spike' also
    the interval of each readout's first spike; for 'max' where each readout's maximum sits
    (intervals named by their opening spike, so harmless order changes do not count)."""
    before_in = np.searchsorted(res.in_t, res.hid_t, side="left")
    order = []
    for j in range(len(res.counts)):
        mine = np.flatnonzero(res.hid_j == j)
        order.append(tuple((int(before_in[q]), int(q)) if res.recurrent else int(before_in[q])
                           for q in mine))
    sig = [tuple(int(c) for c in res.counts), tuple(order)]
    ids = res.interval_ids()
    if loss_name == "first_spike":
        sig.append(tuple(None if e is None else ids[e] for e in res.out_first_interval))
    if loss_name == "max":
        sig.append(tuple((ids[e], kind) for e, kind in readout_max(res)[1]))
    return tuple(sig)


def spike_counts(params, times, channels, T, loss_name=None):
    """signature_from_result of one simulated sample; its first element is the hidden counts."""
    res = simulate(params, times, channels, T, spiking_readout=(loss_name == "first_spike"))
    return signature_from_result(res, loss_name)


def batch_spike_counts(params, samples, T, loss_name=None):
    return tuple(spike_counts(params, tm, ch, T, loss_name) for tm, ch in samples)


def batch_loss_and_counts(name, params, samples, labels, T, **kw):
    """(batch_loss, batch_spike_counts) from one simulation per sample: the f for
    fd.fd_derivative / fd.fd_gradient with counts=None."""
    values, sigs = [], []
    for (tm, ch), lab in zip(samples, labels):
        res = simulate(params, tm, ch, T, spiking_readout=(name == "first_spike"))
        values.append(loss_from_result(name, res, lab, **kw))
        sigs.append(signature_from_result(res, name))
    return float(np.mean(values)), tuple(sigs)


# ------------------------------------------------------------------------------ test networks

def random_network(rng, n_in=20, n_hid=8, n_out=3, recurrent=True, heterogeneous=True, T=100.0,
                   n_samples=4, input_grid=0.5):
    """Small random network and input samples in which hidden neurons fire a few spikes each.

    Returns (params, samples). Input spike times are multiples of input_grid ms in [0, T), at most
    one per channel and time (input_grid=None: uniform in [0, T), off every grid). Heterogeneous τ: τ_m ∈ [10, 30], τ_s ∈ [3, 8] ms, and hidden neuron 0
    and readout 0 have τ_m == τ_s exactly; otherwise τ_m = 20, τ_s = 5 ms everywhere.
    """
    def taus(n):
        if not heterogeneous:
            return np.full(n, 20.0), np.full(n, 5.0)
        tm, ts = rng.uniform(10.0, 30.0, n), rng.uniform(3.0, 8.0, n)
        tm[0] = ts[0] = rng.uniform(6.0, 10.0)
        return tm, ts

    tau_mem, tau_syn = taus(n_hid)
    tau_mem_out, tau_syn_out = taus(n_out)
    # input drive per neuron ≈ rate·w·τ_s; scale W_in by 1/τ_s so every neuron sits near threshold
    W_in = rng.normal(0.4, 0.2, (n_in, n_hid)) * (5.0 / tau_syn)
    params = dict(
        W_in=W_in,
        W_rec=rng.normal(0.0, 0.15, (n_hid, n_hid)) if recurrent else None,
        W_out=rng.normal(0.0, 0.5, (n_hid, n_out)),
        tau_mem=tau_mem, tau_syn=tau_syn, tau_mem_out=tau_mem_out, tau_syn_out=tau_syn_out)
    grid = np.arange(0.0, T, input_grid) if input_grid else None
    samples = []
    for _ in range(n_samples):
        t_all, c_all = [], []
        for ch in range(n_in):
            k = 1 + rng.poisson(2.0)
            if grid is None:
                t_all.append(rng.uniform(0.0, T, k))
            else:
                k = min(k, len(grid))
                t_all.append(rng.choice(grid, size=k, replace=False))
            c_all.append(np.full(k, ch))
        t_all, c_all = np.concatenate(t_all), np.concatenate(c_all)
        order = np.argsort(t_all, kind="stable")
        samples.append((t_all[order], c_all[order]))
    return params, samples
