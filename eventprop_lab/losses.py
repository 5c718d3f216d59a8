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
    """Cross-entropy of softmax(max_t V), W&P's MNIST loss, with the kink term of spec §10."""

    name = "max"
    description = "cross-entropy of the readouts' peak voltages"
    needs_samples = True
    needs_readout_current = True

    def evaluate(self, record, labels, params):
        B, T, K = record.trace_v.shape
        labels = _check_labels(labels, K, B)
        tv = record.trace_v
        m = tv.argmax(1)  # (B, K) step index of the maximum
        stat = np.take_along_axis(tv, m[:, None, :], 1)[:, 0, :]
        per_sample, g = _cross_entropy(stat, labels)
        g /= B
        dl_dtrace = np.zeros_like(tv)
        bi, ki = np.meshgrid(np.arange(B), np.arange(K), indexing="ij")
        dl_dtrace[bi, m, ki] = g
        dl_dspike = self._kink_term(record, params, m, g)
        return LossResult(per_sample.mean(), per_sample, stat.argmax(1),
                          LossSource(dl_dtrace=dl_dtrace, dl_dspike=dl_dspike))

    @staticmethod
    def _kink_term(record, params, m, g):
        """A maximum that falls where hidden spikes with negative weight stop V rising is set by
        those spikes' time: d max/d t = dV/dt just before them (spec §10). Coincident spikes on
        the grid share it in proportion to their weights."""
        dl_dspike = np.zeros(record.spike_step.shape, np.float64)
        W_out = np.asarray(params.W_out, np.float64)
        tau_out = np.asarray(params.tau_mem_out, np.float64)
        B, T, K = record.trace_v.shape
        for s in range(B):
            n = int(record.n_spikes[s])
            steps = record.spike_step[s, :n]
            ids = record.spike_id[s, :n]
            for k in range(K):
                step = m[s, k] + 1  # trace[m] is at t_{m+1}, where spikes of step m+1 arrive
                q = np.nonzero(steps == step)[0]
                if len(q) == 0:
                    continue
                v = record.trace_v[s, m[s, k], k]
                i_before = record.trace_i[s, m[s, k], k]
                w = W_out[ids[q], k]
                slope_before = (i_before - v) / tau_out[k]
                if slope_before <= 0 or i_before + w.sum() - v > 0:
                    continue  # a smooth maximum, or V still rising: no kink here
                neg = w < 0
                dl_dspike[s, q[neg]] += g[s, k] * slope_before * w[neg] / w[neg].sum()
        return dl_dspike.astype(record.trace_v.dtype)


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
