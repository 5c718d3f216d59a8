"""The default CPU backend: numba kernels, parallel over the samples of a batch."""
import numpy as np

from . import _numba_kernels as nk
from .grid import KICK_MIN_SLOPE, THRESHOLD, check_batch, check_params, step_coefficients
from .grid import dtype_of as _dtype_of
from .types import ForwardRecord, Gradients, LossSource, Params, Probe, SpikeBatch

_EMPTY_I = np.zeros((0, 0), np.int32)


def _empty(dtype, ndim):
    return np.zeros((0,) * ndim, dtype)


class NumbaEngine:
    """Forward and adjoint passes of input -> LIF hidden (recurrent or not) -> readout.

    min_slope floors I - threshold at a hidden spike; only grazing crossings meet it.
    in_step_order: the hidden spikes of a step reach each other at their crossings, in time order
    (a spike can cause, advance or delay another within the step); False is the plain grid scheme,
    where they meet only at the step's end, as the GeNN backend computes (docs/engine.md)."""

    name = "numba"
    supported_losses = None  # all

    def __init__(self, min_slope=1e-3, kick_min_slope=KICK_MIN_SLOPE, initial_capacity=1024, in_step_order=True):
        self.min_slope = float(min_slope)
        self.in_step_order = bool(in_step_order)
        self.kick_min_slope = float(kick_min_slope)
        self._capacity = int(initial_capacity)

    # ---- forward -------------------------------------------------------------------------
    def forward(self, params: Params, batch: SpikeBatch, *, spiking_readout=False,
                record_readout_samples=True, record_readout_current=False,
                record_state=False) -> ForwardRecord:
        check_params(params)
        check_batch(batch, params)
        dtype = _dtype_of(params)
        p = params.astype(dtype)
        B, T, N, K = batch.batch_size, batch.n_steps, p.n_hidden, p.n_out
        ch = step_coefficients(p.tau_mem, p.tau_syn, batch.dt)
        co = step_coefficients(p.tau_mem_out, p.tau_syn_out, batch.dt)
        W_rec = p.W_rec if p.recurrent else np.zeros((0, 0), dtype)
        mean_v = np.empty((B, T, K), dtype)
        trace_v = np.empty((B, T, K), dtype) if record_readout_samples else _empty(dtype, 3)
        trace_i = np.empty((B, T, K), dtype) if record_readout_current else _empty(dtype, 3)
        first_step = np.empty((B, K), np.int32) if spiking_readout else _EMPTY_I
        first_slope = np.zeros((B, K), dtype) if spiking_readout else _empty(dtype, 2)
        first_lag = np.zeros((B, K), dtype) if spiking_readout else _empty(dtype, 2)
        state_v = np.empty((B, T, N), dtype) if record_state else _empty(dtype, 3)
        state_i = np.empty((B, T, N), dtype) if record_state else _empty(dtype, 3)
        n_spikes = np.zeros(B, np.int64)
        counts = np.zeros((B, N), np.int32)
        while True:
            cap = self._capacity
            spike_step = np.empty((B, cap), np.int32)
            spike_id = np.empty((B, cap), np.int32)
            spike_slope = np.empty((B, cap), dtype)
            spike_lag = np.empty((B, cap), dtype)
            nk.forward_kernel(
                nk.n_chunks_for(B), batch.ptr, batch.step, batch.channel, T,
                p.W_in, W_rec, p.W_out,
                ch.a.astype(dtype), ch.c.astype(dtype), ch.b.astype(dtype),
                co.a.astype(dtype), co.c.astype(dtype), co.b.astype(dtype),
                co.mv.astype(dtype), co.mi.astype(dtype),
                (1 / p.tau_mem).astype(dtype), (1 / p.tau_syn).astype(dtype),
                (1 / p.tau_mem_out).astype(dtype), (1 / p.tau_syn_out).astype(dtype), dtype.type(batch.dt),
                dtype.type(THRESHOLD), dtype.type(self.min_slope), dtype.type(self.kick_min_slope), _crossing_tol(dtype),
                p.recurrent, spiking_readout, self.in_step_order,
                spike_step, spike_id, spike_slope, spike_lag, n_spikes, counts,
                mean_v, trace_v, trace_i, first_step, first_slope, first_lag, state_v, state_i,
            )
            most = int(n_spikes.max()) if B else 0
            if most <= cap:
                break
            # the spike store is sized by what batches need; grow it and run again
            self._capacity = int(2 ** np.ceil(np.log2(most * 1.25)))
        return ForwardRecord(
            spike_step, spike_id, spike_slope, spike_lag, n_spikes, counts, mean_v,
            trace_v if record_readout_samples else None,
            trace_i if record_readout_current else None,
            first_step if spiking_readout else None,
            first_slope if spiking_readout else None,
            first_lag if spiking_readout else None,
            state_v if record_state else None, state_i if record_state else None,
            batch.dt, T,
        )

    # ---- backward ------------------------------------------------------------------------
    def backward(self, params: Params, batch: SpikeBatch, record: ForwardRecord, source: LossSource,
                 *, reg_jump=None, train_tau=False, probe_samples=()):
        """Gradients of the loss whose source is given, plus probes of the chosen samples.

        reg_jump: per hidden neuron, the amount subtracted from lambda_V at each of its spikes
        (the spike-count regulariser, spec §4)."""
        dtype = _dtype_of(params)
        p = params.astype(dtype)
        B, T, N, K = batch.batch_size, batch.n_steps, p.n_hidden, p.n_out
        if train_tau and record.state_v is None:
            raise ValueError("train_tau needs a forward record made with record_state=True")
        for name in ("dl_dmean", "dl_dtrace", "dl_dtrace_i"):
            x = getattr(source, name)
            if x is not None and x.shape != (B, T, K):
                raise ValueError(f"{name} must have shape {(B, T, K)}, got {x.shape}")
        ch = step_coefficients(p.tau_mem, p.tau_syn, batch.dt)
        co = step_coefficients(p.tau_mem_out, p.tau_syn_out, batch.dt)
        cast = lambda x: np.ascontiguousarray(x, dtype)  # noqa: E731
        cap = record.spike_step.shape[1]
        n_chunks = nk.n_chunks_for(B)
        g_in = np.zeros((n_chunks, p.n_in, N), dtype)
        g_rec = np.zeros((n_chunks, N, N) if p.recurrent else (n_chunks, 0, 0), dtype)
        g_out = np.zeros((n_chunks, N, K), dtype)
        g_tau_m = np.zeros((n_chunks, N), dtype)
        g_tau_s = np.zeros((n_chunks, N), dtype)
        probe_samples = np.asarray(probe_samples, np.int64).reshape(-1)
        if np.any((probe_samples < 0) | (probe_samples >= B)):
            raise ValueError(f"probe samples {probe_samples.tolist()} outside the batch of {B}")
        P = len(probe_samples)
        slot = np.full(B, -1, np.int32)
        slot[probe_samples] = np.arange(P, dtype=np.int32)
        probe_lv = np.zeros((P, T, N), dtype)
        probe_li = np.zeros((P, T, N), dtype)
        probe_lvo = np.zeros((P, T, K), dtype)
        probe_lio = np.zeros((P, T, K), dtype)
        probe_tr = np.full((P, cap), np.nan, dtype)
        has_first = record.first_step is not None and source.dl_dfirst is not None
        nk.backward_kernel(
            n_chunks, batch.ptr, batch.step, batch.channel, T,
            p.W_rec if p.recurrent else np.zeros((0, 0), dtype), p.W_out,
            cast(ch.a), cast(ch.b), cast(ch.d), cast(co.a), cast(co.b), cast(co.d),
            cast(co.mv), cast(co.mi), p.tau_mem, p.tau_syn, p.tau_mem_out, p.tau_syn_out,
            dtype.type(batch.dt), dtype.type(THRESHOLD), p.recurrent, self.in_step_order,
            record.spike_step, record.spike_id, record.spike_slope, record.spike_lag, record.n_spikes,
            cast(source.dl_dmean) if source.dl_dmean is not None else _empty(dtype, 3),
            cast(source.dl_dtrace) if source.dl_dtrace is not None else _empty(dtype, 3),
            cast(source.dl_dtrace_i) if source.dl_dtrace_i is not None else _empty(dtype, 3),
            record.first_step if has_first else _EMPTY_I,
            record.first_slope if has_first else _empty(dtype, 2),
            record.first_lag if has_first else _empty(dtype, 2),
            cast(source.dl_dfirst) if has_first else _empty(dtype, 2),
            cast(source.dl_dspike) if source.dl_dspike is not None else _empty(dtype, 2),
            cast(np.zeros(N) if reg_jump is None else reg_jump),
            record.state_v if train_tau else _empty(dtype, 3),
            record.state_i if train_tau else _empty(dtype, 3),
            cast(ch.da_m), cast(ch.dc_m), cast(ch.dc_s), cast(ch.db_s),
            slot, probe_lv, probe_li, probe_lvo, probe_lio, probe_tr,
            g_in, g_rec, g_out, g_tau_m, g_tau_s,
        )
        # dL/dw = -tau_syn(post) * sum of lambda_I(post) at presynaptic spikes (spec §2)
        grads = Gradients(
            W_in=-g_in.sum(0) * p.tau_syn,
            W_rec=-g_rec.sum(0) * p.tau_syn if p.recurrent else None,
            W_out=-g_out.sum(0) * p.tau_syn_out,
            tau_mem=g_tau_m.sum(0) if train_tau else None,
            tau_syn=g_tau_s.sum(0) if train_tau else None,
        )
        probe = Probe(probe_samples, probe_lv, probe_li, probe_lvo, probe_lio, probe_tr) if P else None
        return grads, probe


def _crossing_tol(dtype):
    """Voltage tolerance of the crossing search: a few ulps of the threshold."""
    return dtype.type(8 * np.finfo(dtype).eps * THRESHOLD)
