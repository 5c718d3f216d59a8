"""Data passed between the training domain and a kernel backend: parameters, input batches,
forward records, loss sources, gradients and probes."""
from typing import NamedTuple, Optional

import numpy as np


class Params(NamedTuple):
    """Network parameters. Weights are in voltage units (a spike adds w to I)."""

    W_in: np.ndarray  # (n_in, n_hidden)
    W_rec: Optional[np.ndarray]  # (n_hidden, n_hidden), None when feed-forward
    W_out: np.ndarray  # (n_hidden, n_out)
    tau_mem: np.ndarray  # (n_hidden,) ms
    tau_syn: np.ndarray  # (n_hidden,) ms
    tau_mem_out: np.ndarray  # (n_out,) ms
    tau_syn_out: np.ndarray  # (n_out,) ms

    @property
    def n_in(self):
        return self.W_in.shape[0]

    @property
    def n_hidden(self):
        return self.W_in.shape[1]

    @property
    def n_out(self):
        return self.W_out.shape[1]

    @property
    def recurrent(self):
        return self.W_rec is not None

    def astype(self, dtype):
        return Params(*(None if x is None else np.asarray(x, dtype) for x in self))


class SpikeBatch(NamedTuple):
    """Input events of a batch on the dt grid, CSR style: sample s owns events ptr[s]:ptr[s+1],
    sorted by step."""

    ptr: np.ndarray  # (B+1,) int64
    step: np.ndarray  # (E,) int32, in [0, n_steps)
    channel: np.ndarray  # (E,) int32
    n_steps: int
    dt: float
    n_channels: int

    @property
    def batch_size(self):
        return len(self.ptr) - 1


class ForwardRecord(NamedTuple):
    """What the backward pass needs; memory grows with spikes, not with steps x neurons
    (except state_v/state_i, kept only when tau is trained)."""

    spike_step: np.ndarray  # (B, cap) int32: hidden spike at t = step*dt
    spike_id: np.ndarray  # (B, cap) int32
    spike_slope: np.ndarray  # (B, cap): I - threshold at the spike (tau_m * dV/dt)
    spike_lag: np.ndarray  # (B, cap): how long before t = step*dt the threshold was crossed
    n_spikes: np.ndarray  # (B,) int64
    counts: np.ndarray  # (B, n_hidden) int32 spike counts
    mean_v: np.ndarray  # (B, n_steps, n_out): readout V averaged over each step [t_n, t_{n+1}]
    trace_v: Optional[np.ndarray]  # (B, n_steps, n_out): readout V at t_1 .. t_T (if recorded)
    trace_i: Optional[np.ndarray]  # (B, n_steps, n_out): readout I before hidden spikes arrive
    first_step: Optional[np.ndarray]  # (B, n_out) int32, -1 = no spike (spiking readout)
    first_slope: Optional[np.ndarray]  # (B, n_out)
    first_lag: Optional[np.ndarray]  # (B, n_out): the first spike is at first_step*dt - first_lag
    state_v: Optional[np.ndarray]  # (B, n_steps, n_hidden): hidden V at t_n (trainable tau)
    state_i: Optional[np.ndarray]
    dt: float
    n_steps: int

    def hidden_spikes(self, s):
        """(times in ms, neuron ids) of sample s."""
        n = int(self.n_spikes[s])
        return self.spike_step[s, :n] * self.dt, self.spike_id[s, :n]


class LossSource(NamedTuple):
    """A loss's adjoint source for the batch (derivatives of the batch-mean loss)."""

    dl_dmean: Optional[np.ndarray] = None  # (B, n_steps, n_out): dL/d(mean V_out over step n)
    dl_dtrace: Optional[np.ndarray] = None  # (B, n_steps, n_out): dL/dV_out(t_{n+1}), before the PSPs of step n's spikes
    dl_dfirst: Optional[np.ndarray] = None  # (B, n_out): dL/d(first spike time of readout)
    dl_dspike: Optional[np.ndarray] = None  # (B, cap): dL/d(hidden spike time), aligned with record
    dl_dtrace_i: Optional[np.ndarray] = None  # (B, n_steps, n_out): dL/dI_out(t_{n+1}), as dl_dtrace


class Gradients(NamedTuple):
    W_in: np.ndarray
    W_rec: Optional[np.ndarray]
    W_out: np.ndarray
    tau_mem: Optional[np.ndarray]
    tau_syn: Optional[np.ndarray]


class Probe(NamedTuple):
    """Adjoint traces of probed samples (the quantities of the paper's Fig. 3).

    lambda_* are sampled at t_1 .. t_T after all events at that time (reverse-time picture).
    transported[p, q] is sum_m w_jm (lambda_V - lambda_I)_m delivered to stored spike q of
    probe p (NaN where sample p has no such spike)."""

    samples: np.ndarray  # batch indices that were probed
    lambda_v: np.ndarray  # (P, n_steps, n_hidden)
    lambda_i: np.ndarray
    lambda_v_out: np.ndarray  # (P, n_steps, n_out)
    lambda_i_out: np.ndarray
    transported: np.ndarray  # (P, cap)
