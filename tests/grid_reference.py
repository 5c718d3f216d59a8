"""Independent plain-numpy reference of the engine's FORWARD pass on the dt grid (docs/engine.md).

Written from the contract in docs/engine.md, not from the kernels: float64 throughout, loops over
steps, numpy over neurons. Imports nothing from `kernels` or `eventprop_lab`.

Parameters are plain arrays in the order of `kernels.Params`: W_in (n_in, n_hid), W_rec
(n_hid, n_hid) or None, W_out (n_hid, n_out), tau_mem, tau_syn (n_hid,), tau_mem_out,
tau_syn_out (n_out,), so a test can call `forward_reference(samples, dt, n_steps, *params)`.
A sample is a pair (times_ms, channels).
"""
import math
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

THRESHOLD = 1.0  # ϑ; reset is to 0
GRID_TOL = 1e-9  # in units of steps: a time this close to a grid time lies on it


def step_coefficients(tau_mem, tau_syn, dt):
    """(a, b, c) of one exact step from t_n to t_{n+1} (docs/engine.md, Grid, item 2):

        a = exp(−dt/τ_m),  b = exp(−dt/τ_s),  c = τ_s/(τ_m − τ_s)·(a − b),  c = a·dt/τ_m if τ_m == τ_s.

    a − b is evaluated as b·expm1(dt(τ_m − τ_s)/(τ_m τ_s)), the same number without the
    cancellation of subtracting two nearly equal exponentials (τ_m − τ_s is exact in floating point
    when the two are close), so τ_m = τ_s(1 + 1e-7) is as accurate as any other τ."""
    tm = np.atleast_1d(np.asarray(tau_mem, np.float64))
    ts = np.atleast_1d(np.asarray(tau_syn, np.float64))
    dt = float(dt)
    a = np.exp(-dt / tm)
    b = np.exp(-dt / ts)
    c = np.empty_like(a)
    for j in range(len(tm)):
        if tm[j] == ts[j]:
            c[j] = a[j] * dt / tm[j]
        else:
            x = dt * (tm[j] - ts[j]) / (tm[j] * ts[j])  # = dt/τ_s − dt/τ_m
            a_minus_b = b[j] * math.expm1(x)
            c[j] = ts[j] / (tm[j] - ts[j]) * a_minus_b
    return a, b, c


def crossing(v0, i0, tau_mem, tau_syn, dt):
    """Time u in [0, dt] at which V, starting the step at (v0, i0), reaches the threshold
    (0 if it starts there): brentq on the exact solution with this module's coefficients."""
    from scipy.optimize import brentq

    if v0 >= THRESHOLD:
        return 0.0

    def f(u):
        if u == 0.0:
            return v0 - THRESHOLD
        a, _, c = step_coefficients([tau_mem], [tau_syn], u)
        return a[0] * v0 + c[0] * i0 - THRESHOLD

    return brentq(f, 0.0, dt, xtol=1e-15, rtol=1e-15)


def mean_coefficients(tau_mem, tau_syn, dt):
    """(mv, mi) with mean of V over [t_n, t_{n+1}] = mv·V(t_n) + mi·I(t_n) (docs/engine.md, Grid,
    item 3): mv = τ_m(1 − a)/dt, mi = (1/dt)∫₀^dt c(u) du.

    mi from integrating the ODE over the step instead of c(u): τ_m(V(dt) − V(0)) = ∫(I − V), so
    ∫V = ∫I − τ_m(V(dt) − V(0)) = τ_m(1 − a)V + (τ_s(1 − b) − τ_m c)I. No division by τ_m − τ_s,
    so τ_m ≈ τ_s needs no care beyond that already in c."""
    tm = np.atleast_1d(np.asarray(tau_mem, np.float64))
    ts = np.atleast_1d(np.asarray(tau_syn, np.float64))
    dt = float(dt)
    _, _, c = step_coefficients(tm, ts, dt)
    one_minus_a = -np.expm1(-dt / tm)
    one_minus_b = -np.expm1(-dt / ts)
    mv = tm * one_minus_a / dt
    mi = (ts * one_minus_b - tm * c) / dt
    return mv, mi


def event_step(t, dt):
    """Grid step of an input event at time t: floor(t/dt), except that a time on a grid time
    (within GRID_TOL steps, e.g. 0.3 ms with dt = 0.1) goes to that grid time's own step."""
    q = float(t) / float(dt)
    r = round(q)
    if abs(q - r) <= GRID_TOL:
        return int(r)
    return int(math.floor(q))


def bin_events(times, channels, dt, n_steps):
    """Per-step lists of the channels of the events of one sample; events at or after the trial
    end T = n_steps·dt are dropped. Order within a step is the order of the input."""
    per_step = [[] for _ in range(n_steps)]
    for t, ch in zip(np.asarray(times, np.float64).tolist(), np.asarray(channels).tolist()):
        n = event_step(t, dt)
        if n < n_steps:
            per_step[n].append(int(ch))
    return per_step


@dataclass
class SampleResult:
    """Reference forward record of one sample (all float64 / int64)."""

    spike_step: np.ndarray  # (S,) hidden spike at t = step·dt; by step, then crossing time (plain: neuron id)
    spike_id: np.ndarray  # (S,)
    spike_slope: np.ndarray  # (S,) I − ϑ at the interpolated crossing, NOT floored
    spike_lag: np.ndarray  # (S,) time from the crossing to the step where the spike is stored
    spike_kicked: np.ndarray  # (S,) bool: the neuron started the step at or above threshold
    counts: np.ndarray  # (n_hid,)
    mean_v: np.ndarray  # (n_steps, n_out): V_out averaged over [t_n, t_{n+1}]
    trace_v: np.ndarray  # (n_steps, n_out): V_out(t_1 .. t_T), before any readout reset
    trace_i: np.ndarray  # (n_steps, n_out): I_out at t_{n+1} before hidden spikes of step n+1 arrive
    first_step: Optional[np.ndarray]  # (n_out,) step of the first readout spike, −1 if none
    first_slope: Optional[np.ndarray]  # (n_out,) I_out − ϑ at that spike, NOT floored (NaN if none)
    first_lag: Optional[np.ndarray]  # (n_out,) time from the crossing to the stored step (NaN if none)
    state_v: np.ndarray  # (n_steps, n_hid): hidden V at t_n after the inputs of step n
    state_i: np.ndarray  # (n_steps, n_hid): hidden I at t_n after the inputs of step n

    @property
    def n_spikes(self):
        return len(self.spike_step)


def exact_in_step(t, v0, i0, kicks, tau_mem, tau_syn):
    """V and I of one neuron at time t into a step, exactly, from its state at the step's start and
    the PSPs (u, w) of the step's earlier spikes."""
    a, b, c = step_coefficients([tau_mem], [tau_syn], t) if t > 0 else ([1.0], [1.0], [0.0])
    v, i = a[0] * v0 + c[0] * i0, b[0] * i0
    for u, w in kicks:
        if u <= t:
            a, b, c = step_coefficients([tau_mem], [tau_syn], t - u) if t > u else ([1.0], [1.0], [0.0])
            v, i = v + c[0] * w, i + b[0] * w
    return v, i


def ordered_step(V_prev, I_prev, W_rec, tau_mem, tau_syn, dt):
    """Hidden spikes of one step in time order (docs/engine.md, "Order in a step"): each reaches
    the other hidden neurons at its crossing. A neuron fires if its voltage at the step's end, with
    the PSPs taken to first order in their lags, is at or over threshold; it fires at its exact
    crossing after the last spike of the step so far (at the step's end if the exact voltage stays
    below). Returns the spikes as (u, neuron, I at the crossing, kicked) in time order."""
    n_hid = len(V_prev)
    tm_all = np.atleast_1d(np.asarray(tau_mem, np.float64))
    ts_all = np.atleast_1d(np.asarray(tau_syn, np.float64))
    a, b, c = step_coefficients(tm_all, ts_all, dt)
    v_end = a * V_prev + c * I_prev
    spikes, fired = [], set()
    u_now = 0.0
    while True:
        best = None
        for j in range(n_hid):
            if j in fired or v_end[j] < THRESHOLD:
                continue
            kicks = [(u, W_rec[f, j]) for u, f, _, _ in spikes] if W_rec is not None else []
            v0, i0 = exact_in_step(u_now, V_prev[j], I_prev[j], kicks, tm_all[j], ts_all[j])
            v1, _ = exact_in_step(dt, V_prev[j], I_prev[j], kicks, tm_all[j], ts_all[j])
            at_end = v1 < THRESHOLD
            u = dt if at_end else u_now + crossing(v0, i0, tm_all[j], ts_all[j], dt - u_now)
            if best is None or u < best[0]:
                best = (u, j, at_end)
        if best is None:
            return spikes
        u, j, at_end = best
        kicks = [(uf, W_rec[f, j]) for uf, f, _, _ in spikes] if W_rec is not None else []
        _, i_cross = exact_in_step(u, V_prev[j], I_prev[j], kicks, tm_all[j], ts_all[j])
        spikes.append((u, j, i_cross, bool(V_prev[j] >= THRESHOLD or at_end)))
        fired.add(j)
        u_now = u
        if W_rec is not None:
            v_end = v_end + W_rec[j] * (dt - u) / tm_all


def forward_sample(times, channels, dt, n_steps, W_in, W_rec, W_out, tau_mem, tau_syn,
                   tau_mem_out, tau_syn_out, spiking_readout=False, ordered=True) -> SampleResult:
    """The time-stepped scheme of docs/engine.md for one sample; ordered=False: the plain scheme,
    where the hidden spikes of a step meet only at its end."""
    f64 = lambda x: np.asarray(x, np.float64)  # noqa: E731
    W_in, W_out = f64(W_in), f64(W_out)
    W_rec = None if W_rec is None else f64(W_rec)
    n_hid, n_out = W_in.shape[1], W_out.shape[1]
    a_h, b_h, c_h = step_coefficients(tau_mem, tau_syn, dt)
    a_o, b_o, c_o = step_coefficients(tau_mem_out, tau_syn_out, dt)
    mv_o, mi_o = mean_coefficients(tau_mem_out, tau_syn_out, dt)
    events = bin_events(times, channels, dt, n_steps)

    V = np.zeros(n_hid)
    I = np.zeros(n_hid)
    Vo = np.zeros(n_out)
    Io = np.zeros(n_out)
    sp_step, sp_id, sp_slope, sp_lag, sp_kicked = [], [], [], [], []
    counts = np.zeros(n_hid, np.int64)
    mean_v = np.zeros((n_steps, n_out))
    trace_v = np.zeros((n_steps, n_out))
    trace_i = np.zeros((n_steps, n_out))
    state_v = np.zeros((n_steps, n_hid))
    state_i = np.zeros((n_steps, n_hid))
    first_step = np.full(n_out, -1, np.int64)
    first_slope = np.full(n_out, np.nan)
    first_lag = np.full(n_out, np.nan)

    for n in range(n_steps):
        # 1. input events of step n arrive at t_n
        for ch in events[n]:
            I = I + W_in[ch]
        state_v[n] = V
        state_i[n] = I
        # 3 (first half). mean readout voltage over [t_n, t_{n+1}]: a function of the state at t_n
        mean_v[n] = mv_o * Vo + mi_o * Io
        # 2. exact propagation of every neuron from t_n to t_{n+1}
        V_prev, I_prev, Vo_prev, Io_prev = V, I, Vo, Io
        V = a_h * V + c_h * I
        I = b_h * I
        Vo = a_o * Vo + c_o * Io
        Io = b_o * Io
        # 3. readout voltage (and current, before hidden spikes arrive) at t_{n+1}
        trace_v[n] = Vo
        trace_i[n] = Io
        # 4. hidden neurons at or above threshold spike at t_{n+1} and reset
        if ordered:
            step_spikes = ordered_step(V_prev, I_prev, W_rec, tau_mem, tau_syn, dt)
        else:
            step_spikes = []
            for j in np.flatnonzero(V >= THRESHOLD):  # ascending neuron id
                tm, ts = np.atleast_1d(tau_mem)[j], np.atleast_1d(tau_syn)[j]
                u = crossing(V_prev[j], I_prev[j], tm, ts, dt)
                step_spikes.append((u, int(j), I_prev[j] * math.exp(-u / ts), bool(V_prev[j] >= THRESHOLD)))
        fired = np.array([j for _, j, _, _ in step_spikes], np.int64)
        lags = []
        for x, (u, j, i_cross, kicked) in enumerate(step_spikes):
            sp_step.append(n + 1)
            sp_id.append(int(j))
            tm, ts = np.atleast_1d(tau_mem)[j], np.atleast_1d(tau_syn)[j]
            lag = dt - u
            sp_slope.append(i_cross - THRESHOLD)
            sp_lag.append(lag)
            sp_kicked.append(kicked)
            lags.append(lag)
            # reset at the crossing, then the exact voltage for the rest of the step
            V[j] = step_coefficients([tm], [ts], lag)[2][0] * i_cross if lag > 0 else 0.0
            if ordered and W_rec is not None:
                # its own PSP and those of the step's later spikes reach it after its reset
                for u2, f, _, _ in step_spikes[x:]:
                    V[j] += W_rec[f, j] * (dt - u2) / tm
        counts[fired] += 1
        if spiking_readout:
            for k in np.flatnonzero(Vo >= THRESHOLD):
                if first_step[k] < 0:
                    first_step[k] = n + 1
                    tm, ts = np.atleast_1d(tau_mem_out)[k], np.atleast_1d(tau_syn_out)[k]
                    u = crossing(Vo_prev[k], Io_prev[k], tm, ts, dt)
                    first_slope[k] = Io_prev[k] * math.exp(-u / ts) - THRESHOLD
                    first_lag[k] = dt - u
                Vo[k] = 0.0
        # 5. hidden spikes add their rows to the currents of their targets, arriving at t_{n+1}
        # (the PSP started at the crossing, advanced by the lag to first order)
        fired_set = set(fired.tolist())
        for j, lag in zip(fired, lags):
            if W_rec is not None:
                I = I + W_rec[j] * (1.0 - lag / np.asarray(tau_syn, np.float64))
                dv = W_rec[j] * lag / np.asarray(tau_mem, np.float64)
                if ordered:  # a neuron that fired in the step had these in its crossing, or above
                    dv = np.where([m in fired_set for m in range(len(V))], 0.0, dv)
                V = V + dv
            Io = Io + W_out[j] * (1.0 - lag / np.asarray(tau_syn_out, np.float64))
            Vo = Vo + W_out[j] * lag / np.asarray(tau_mem_out, np.float64)

    return SampleResult(
        spike_step=np.asarray(sp_step, np.int64),
        spike_id=np.asarray(sp_id, np.int64),
        spike_slope=np.asarray(sp_slope, np.float64),
        spike_lag=np.asarray(sp_lag, np.float64),
        spike_kicked=np.asarray(sp_kicked, bool),
        counts=counts,
        mean_v=mean_v,
        trace_v=trace_v,
        trace_i=trace_i,
        first_step=first_step if spiking_readout else None,
        first_slope=first_slope if spiking_readout else None,
        first_lag=first_lag if spiking_readout else None,
        state_v=state_v,
        state_i=state_i,
    )


def forward_reference(samples, dt, n_steps, W_in, W_rec, W_out, tau_mem, tau_syn, tau_mem_out,
                      tau_syn_out, spiking_readout=False, ordered=True) -> List[SampleResult]:
    """forward_sample for each (times_ms, channels) pair of a batch."""
    return [forward_sample(times, channels, dt, n_steps, W_in, W_rec, W_out, tau_mem, tau_syn,
                           tau_mem_out, tau_syn_out, spiking_readout=spiking_readout, ordered=ordered)
            for times, channels in samples]
