"""Losses (spec §3): each gives the value, the prediction and the adjoint source.

A loss sees the engine's forward record (readout voltage averaged over each step, sampled at
each step, spikes) and the labels, and returns derivatives of the batch-mean loss with respect to
those (and, for spike-time losses, to spike times). Time integrals use the step means, so their
source is spread over the step as in continuous time. Because the engine's backward pass is the exact
transpose of its readout step, these sources make the W_out gradient exact for the grid loss.

Adding a loss: write a class with `evaluate`, then add it to `LOSSES` at the bottom."""
from typing import NamedTuple

import numpy as np

from kernels import ForwardRecord, LossSource, Params
from kernels.grid import psp_coefficients


class LossResult(NamedTuple):
    value: float  # batch mean
    per_sample: np.ndarray  # (B,)
    prediction: np.ndarray  # (B,) int
    source: LossSource


def _softmax(x, axis=-1):
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _check_labels(labels, n_out, batch_size):
    labels = np.asarray(labels)
    if labels.shape != (batch_size,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be {batch_size} integers, got shape {labels.shape} dtype {labels.dtype}")
    if batch_size and (labels.min() < 0 or labels.max() >= n_out):
        raise ValueError(f"labels must lie in [0, {n_out}), got range [{labels.min()}, {labels.max()}]")
    return labels


def _cross_entropy(stat, labels):
    """-log softmax(stat)[label] per sample and its derivative (p - onehot) w.r.t. stat."""
    B = len(labels)
    p = _softmax(stat.astype(np.float64))
    per_sample = -np.log(np.maximum(p[np.arange(B), labels], 1e-300))
    g = p.copy()
    g[np.arange(B), labels] -= 1.0
    return per_sample, g


class Loss:
    name = ""
    description = ""
    spiking_readout = False  # readouts are LIF and the loss reads their spike times
    needs_samples = False  # reads the readout voltage sampled at grid times (trace_v)
    needs_readout_current = False

    def record_options(self):
        """What the engine's forward pass must record for this loss."""
        return {"spiking_readout": self.spiking_readout, "record_readout_samples": self.needs_samples,
                "record_readout_current": self.needs_readout_current}

    def evaluate(self, record: ForwardRecord, labels, params: Params) -> LossResult:
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class WeightedSumLoss(Loss):
    """Cross-entropy of softmax((1/T) sum_n w(t_n/T) V(t_n) dt), the L_sum family."""

    def __init__(self, name, weight, description):
        self.name = name
        self.weight = weight
        self.description = description

    def weights(self, n_steps, dt):
        t = (np.arange(n_steps) + 0.5) * dt  # mid-step: mean_v[n] averages V over [t_n, t_{n+1}]
        return self.weight(t / (n_steps * dt))

    def evaluate(self, record, labels, params):
        B, T, K = record.mean_v.shape
        labels = _check_labels(labels, K, B)
        w = self.weights(T, record.dt)
        dtype = record.mean_v.dtype
        stat = np.einsum("btk,t->bk", record.mean_v, w.astype(dtype)) / T
        per_sample, g = _cross_entropy(stat, labels)
        dl_dmean = g.astype(dtype)[:, None, :] * (w / (T * B)).astype(dtype)[None, :, None]
        return LossResult(per_sample.mean(), per_sample, stat.argmax(1), LossSource(dl_dmean=dl_dmean))

    def __repr__(self):
        return f"WeightedSumLoss({self.name!r})"


class MaxLoss(Loss):
    """Cross-entropy of softmax(max_t V), W&P's MNIST loss, with the kink term of spec §10.

    The maximum is taken over the voltage's own candidates, not over grid samples alone: the grid
    times after the PSPs of the step's hidden spikes, the stationary point inside a step (closed
    form), and the crossing of each hidden spike that turns V from rising to falling (a kink,
    spec §10). Each is a linear function of the readout state sampled before the PSPs at the end of
    its step (trace_v, trace_i), so its source is a point source on that state plus, at a kink,
    dV/dt just before the spike on that spike's time. A candidate at t = 0 (V = 0) stands for a
    readout that never rises. Grid samples alone would make the maximum, and the gradient, first
    order in dt (docs/engine.md, "The max loss")."""

    name = "max"
    description = "cross-entropy of the readouts' peak voltages"
    needs_samples = True
    needs_readout_current = True

    def evaluate(self, record, labels, params):
        B, T, K = record.trace_v.shape
        labels = _check_labels(labels, K, B)
        dt = record.dt
        tm = np.asarray(params.tau_mem_out, np.float64)
        ts = np.asarray(params.tau_syn_out, np.float64)
        W_out = np.asarray(params.W_out, np.float64)
        vp = record.trace_v.astype(np.float64)  # V(t_{n+1}) before the PSPs of step n's spikes
        ip = record.trace_i.astype(np.float64)
        a, b, c = psp_coefficients(dt, tm, ts)  # (K,)
        # the PSPs that hidden spikes of step n add at t_{n+1} (forward step 5)
        pv, pi = np.zeros_like(vp), np.zeros_like(vp)
        first_u = np.full((B, T), np.inf)  # earliest crossing within each step
        spikes = []
        for s in range(B):
            n_sp = int(record.n_spikes[s])
            idx = record.spike_step[s, :n_sp].astype(np.int64) - 1
            lag = record.spike_lag[s, :n_sp].astype(np.float64)
            w = W_out[record.spike_id[s, :n_sp]]  # (S, K)
            np.add.at(pv[s], idx, w * lag[:, None] / tm)
            np.add.at(pi[s], idx, w * (1.0 - lag[:, None] / ts))
            np.minimum.at(first_u[s], idx, dt - lag)
            spikes.append((idx, lag, w))
        vs, is_ = vp + pv, ip + pi  # state at t_{n+1} after the PSPs = start of step n + 1
        cand = [np.zeros((B, 1, K))]  # t = 0
        # grid times t_1 .. t_{T-1} after the PSPs, as functions of the state before the next PSPs
        cand.append(vs[:, :-1])
        cand.append(vp[:, -1:])  # t_T: the trial ends before the last step's PSPs matter
        # stationary points inside the steps, from the state at each step's start
        v0 = np.concatenate([np.zeros((B, 1, K)), vs[:, :-1]], 1)
        i0 = np.concatenate([np.zeros((B, 1, K)), is_[:, :-1]], 1)
        u_st = _stationary_time(v0, i0, tm, ts)
        inside = (u_st > 0) & (u_st < np.minimum(dt, first_u)[:, :, None])
        u_st = np.where(inside, u_st, 0.0)
        a_st, _, c_st = psp_coefficients(u_st, tm, ts)
        v_st = np.where(inside, a_st * v0 + c_st * i0, -np.inf)
        cand.append(v_st)
        # kinks: the crossing of each hidden spike, on the branch before its PSP
        kink_v, kink_src = [], []
        for s, (idx, lag, w) in enumerate(spikes):
            a_l, b_l, c_l = psp_coefficients(lag[:, None], tm, ts)  # (S, K)
            i_q = ip[s, idx] / b_l
            v_q = (vp[s, idx] - c_l * i_q) / a_l
            rate = (i_q - v_q) / tm  # dV/dt just before the spike
            is_kink = (rate > 0) & (rate + w / tm < 0)
            kink_v.append(np.where(is_kink, v_q, -np.inf))
            kink_src.append((idx, 1.0 / a_l, -c_l / (a_l * b_l), rate))
        S = max((len(k) for k in kink_v), default=0)
        kv = np.full((B, S, K), -np.inf)
        for s, v in enumerate(kink_v):
            kv[s, :len(v)] = v
        cand.append(kv)
        allc = np.concatenate(cand, 1)  # (B, 1 + T + T + S, K)
        best = allc.argmax(1)
        stat = np.take_along_axis(allc, best[:, None, :], 1)[:, 0, :]
        per_sample, g = _cross_entropy(stat, labels)
        g /= B
        dl_dv = np.zeros((B, T, K))
        dl_di = np.zeros((B, T, K))
        dl_dspike = np.zeros(record.spike_step.shape, np.float64)
        for s in range(B):
            for k in range(K):
                r, gk = int(best[s, k]), g[s, k]
                if r == 0:
                    continue  # V = 0 at t = 0: no gradient
                r -= 1
                if r < T - 1:  # grid time t_{r+1} after its PSPs: from the state at t_{r+2}
                    dl_dv[s, r + 1, k] += gk / a[k]
                    dl_di[s, r + 1, k] -= gk * c[k] / (a[k] * b[k])
                    continue
                r -= T - 1
                if r == 0:  # t_T
                    dl_dv[s, T - 1, k] += gk
                    continue
                r -= 1
                if r < T:  # stationary point inside step r
                    a_, b_, c_ = a[k], b[k], c[k]
                    dl_dv[s, r, k] += gk * a_st[s, r, k] / a_
                    dl_di[s, r, k] += gk * (c_st[s, r, k] - a_st[s, r, k] * c_ / a_) / b_
                    continue
                q = r - T
                idx, dv, di, rate = kink_src[s]
                dl_dv[s, idx[q], k] += gk * dv[q, k]
                dl_di[s, idx[q], k] += gk * di[q, k]
                dl_dspike[s, q] += gk * rate[q, k]
        dtype = record.trace_v.dtype
        return LossResult(per_sample.mean(), per_sample, stat.argmax(1),
                          LossSource(dl_dtrace=dl_dv.astype(dtype), dl_dtrace_i=dl_di.astype(dtype),
                                     dl_dspike=dl_dspike.astype(dtype)))


def _stationary_time(v0, i0, tau_mem, tau_syn):
    """When V, starting from (v0, i0) while rising, stops rising (dV/dt = 0: I = V); 0 if it does
    not (it falls from the start, or rises for ever). Closed form: e^{uD} = 1/(1 + Dx),
    D = 1/tau_s - 1/tau_m, x = (v0 - i0) tau_s / i0."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x = (v0 - i0) * tau_syn / i0
        y = (1.0 / tau_syn - 1.0 / tau_mem) * x
        ratio = np.where(np.abs(y) > 1e-12, np.log1p(y) / np.where(y == 0, 1.0, y), 1.0 - y / 2)
        u = -x * ratio
    ok = (i0 > v0) & (y > -1) & np.isfinite(u) & (u > 0)
    return np.where(ok, u, 0.0)


class AvgXentropyLoss(Loss):
    """Time-averaged cross-entropy of the instantaneous readout voltages."""

    name = "avg_xentropy"
    description = "cross-entropy at every time step, averaged over the trial"

    def evaluate(self, record, labels, params):
        B, T, K = record.mean_v.shape
        labels = _check_labels(labels, K, B)
        p = _softmax(record.mean_v.astype(np.float64), axis=2)
        pl = p[np.arange(B), :, labels]  # (B, T)
        per_sample = -np.log(np.maximum(pl, 1e-300)).mean(1)
        g = p
        g[np.arange(B), :, labels] -= 1.0
        dl_dmean = (g / (T * B)).astype(record.mean_v.dtype)
        stat = record.mean_v.mean(1)
        return LossResult(per_sample.mean(), per_sample, stat.argmax(1), LossSource(dl_dmean=dl_dmean))


class FirstSpikeLoss(Loss):
    """W&P's time-to-first-spike loss on spiking readouts (spec §3, L_first_spike).

    A readout that never spikes counts as spiking at T in the value. It gets no gradient, except
    the correct readout, which gets the 'phantom spike' push at trial end (a surrogate)."""

    name = "first_spike"
    description = "cross-entropy of first-spike times, plus a push toward early correct spikes"
    spiking_readout = True

    def __init__(self, tau0=1.0, tau1=100.0, alpha=5e-5):
        self.tau0, self.tau1, self.alpha = tau0, tau1, alpha

    def evaluate(self, record, labels, params):
        B, T, K = record.mean_v.shape
        labels = _check_labels(labels, K, B)
        T_ms = T * record.dt
        spiked = record.first_step >= 0
        t = np.where(spiked, record.first_step * record.dt - record.first_lag, T_ms).astype(np.float64)
        ce, g = _cross_entropy(-t / self.tau0, labels)
        tl = t[np.arange(B), labels]
        per_sample = ce + self.alpha * np.expm1(tl / self.tau1)
        dl_dt = -g / self.tau0
        dl_dt[np.arange(B), labels] += self.alpha / self.tau1 * np.exp(tl / self.tau1)
        dl_dt = np.where(spiked, dl_dt, 0.0) / B
        silent = ~spiked[np.arange(B), labels]
        dl_dtrace = None
        if silent.any():
            dl_dtrace = np.zeros_like(record.mean_v)
            dl_dtrace[silent, T - 1, labels[silent]] = -self.alpha / self.tau1 * np.exp(T_ms / self.tau1) / B
        # earliest spike wins; with no spike at all, the highest mean voltage
        pred = np.where(spiked.any(1), t.argmin(1), record.mean_v.max(1).argmax(1))
        return LossResult(per_sample.mean(), per_sample, pred,
                          LossSource(dl_dtrace=dl_dtrace, dl_dfirst=dl_dt.astype(record.mean_v.dtype)))

    def __repr__(self):
        return f"FirstSpikeLoss(tau0={self.tau0}, tau1={self.tau1}, alpha={self.alpha})"


LOSSES = {
    "sum": lambda: WeightedSumLoss("sum", np.ones_like, "cross-entropy of the time-averaged readout voltage"),
    "sum_exp": lambda: WeightedSumLoss(
        "sum_exp", lambda x: np.exp(-x), "as sum, with voltage weighted by exp(-t/T) (the paper's loss shaping)"),
    "sum_linear": lambda: WeightedSumLoss("sum_linear", lambda x: 1.0 - x, "as sum, weighted by 1 - t/T"),
    "sum_sigmoid": lambda: WeightedSumLoss(
        "sum_sigmoid", lambda x: 1.0 / (1.0 + np.exp((x - 0.5) / 0.2)), "as sum, weighted by a falling sigmoid"),
    "max": MaxLoss,
    "first_spike": FirstSpikeLoss,
    "avg_xentropy": AvgXentropyLoss,
}


def get_loss(name, **options) -> Loss:
    """A loss by its registry name."""
    try:
        factory = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None
    return factory(**options)
