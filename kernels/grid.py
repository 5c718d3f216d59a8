"""Backend-independent parts of the grid scheme: input validation and binning, step coefficients."""
import functools

import numpy as np

from .types import Params, SpikeBatch


def make_batch(samples, n_channels, dt, n_steps):
    """Bin a list of (times_ms, channels) event arrays onto the dt grid.

    Events at or after the trial end (n_steps * dt) are cropped; anything malformed raises
    ValueError naming the sample and the problem."""
    if not (isinstance(dt, (int, float, np.integer, np.floating)) and np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of ms, got {dt!r}")
    if not (isinstance(n_steps, (int, float, np.integer, np.floating)) and np.isfinite(n_steps)
            and n_steps >= 1 and int(n_steps) == n_steps):
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    n_steps = int(n_steps)
    ptr = np.zeros(len(samples) + 1, np.int64)
    steps, chans = [], []
    for s, sample in enumerate(samples):
        try:
            times, channels = sample
        except (TypeError, ValueError):
            raise ValueError(f"sample {s}: expected a pair (times, channels), got {type(sample).__name__}")
        times = np.asarray(times)
        channels = np.asarray(channels)
        if times.ndim != 1 or channels.ndim != 1 or len(times) != len(channels):
            raise ValueError(
                f"sample {s}: times and channels must be 1-d arrays of equal length, "
                f"got shapes {times.shape} and {channels.shape}")
        if len(times) and not (np.issubdtype(times.dtype, np.integer) or np.issubdtype(times.dtype, np.floating)):
            raise ValueError(f"sample {s}: times must be real numbers (ms), got dtype {times.dtype}")
        if len(channels) and not np.issubdtype(channels.dtype, np.integer):
            raise ValueError(f"sample {s}: channel ids must be integers, got dtype {channels.dtype}")
        times = times.astype(np.float64)
        if not np.all(np.isfinite(times)):
            raise ValueError(f"sample {s}: times contain NaN or infinity")
        if len(times) and times.min() < 0:
            raise ValueError(f"sample {s}: negative time {times.min()} ms; times start at 0")
        if len(channels) and (channels.min() < 0 or channels.max() >= n_channels):
            bad = channels[(channels < 0) | (channels >= n_channels)][0]
            raise ValueError(f"sample {s}: channel id {bad} out of range [0, {n_channels})")
        if np.any(np.diff(times) < 0):
            raise ValueError(f"sample {s}: events are not sorted by time")
        # the small tolerance keeps times that lie on the grid on their own step
        step = np.floor(times / dt + 1e-9)
        keep = step < n_steps  # crop before the integer cast, so huge times cannot wrap around
        steps.append(step[keep].astype(np.int32))
        chans.append(channels[keep].astype(np.int32))
        ptr[s + 1] = ptr[s] + int(keep.sum())
    step = np.concatenate(steps) if steps else np.zeros(0, np.int32)
    channel = np.concatenate(chans) if chans else np.zeros(0, np.int32)
    return SpikeBatch(ptr, step, channel, n_steps, float(dt), int(n_channels))


def check_params(params: Params):
    """Raise ValueError if shapes disagree or any value is NaN, infinite or out of range."""
    if np.ndim(params.W_in) != 2:
        raise ValueError(f"W_in must be a 2-d array (n_in, n_hidden), got shape {np.shape(params.W_in)}")
    n_in, n_hid = np.shape(params.W_in)
    if params.W_out.ndim != 2 or params.W_out.shape[0] != n_hid:
        raise ValueError(f"W_out must have shape ({n_hid}, n_out), got {params.W_out.shape}")
    n_out = params.W_out.shape[1]
    if params.W_rec is not None and params.W_rec.shape != (n_hid, n_hid):
        raise ValueError(f"W_rec must have shape ({n_hid}, {n_hid}), got {params.W_rec.shape}")
    for name, size in (("tau_mem", n_hid), ("tau_syn", n_hid), ("tau_mem_out", n_out), ("tau_syn_out", n_out)):
        x = getattr(params, name)
        if np.shape(x) != (size,):
            raise ValueError(f"{name} must have shape ({size},), got {np.shape(x)}")
        if not np.all(np.asarray(x) > 0):
            raise ValueError(f"{name} must be positive and finite (ms), got min {np.min(x)}")
    for name, x in params._asdict().items():
        if x is not None and not np.all(np.isfinite(x)):
            raise ValueError(f"parameter {name} contains NaN or infinity; the network has diverged "
                             "(lower the learning rate or restore a checkpoint)")


def check_batch(batch: SpikeBatch, params: Params):
    if batch.n_channels != params.n_in:
        raise ValueError(f"the batch has {batch.n_channels} input channels but W_in expects {params.n_in}")


def _phi(x):
    """expm1(x)/x and its derivative, accurate near 0."""
    x = np.asarray(x, np.float64)
    small = np.abs(x) < 1e-4
    xs = np.where(small, 1.0, x)
    phi = np.where(small, 1 + x / 2 + x * x / 6, np.expm1(xs) / xs)
    dphi = np.where(small, 0.5 + x / 3 + x * x / 8, (xs * np.exp(xs) - np.expm1(xs)) / (xs * xs))
    return phi, dphi


_GAUSS_LEGENDRE_16 = np.polynomial.legendre.leggauss(16)


class StepCoefficients:
    """Per-neuron coefficients of one exact step (spec §1) and their tau derivatives.

    V <- a V + c I,  I <- b I;  backward lambda_I <- b lambda_I + d lambda_V with d = c tau_m/tau_s.
    The mean of V over the step is mv V + mi I.
    c = b (dt/tau_m) expm1(x)/x with x = dt/tau_s - dt/tau_m is the usual
    tau_s/(tau_m - tau_s)(a - b), written so that tau_m == tau_s needs no special case."""

    def __init__(self, tau_mem, tau_syn, dt):
        tm = np.asarray(tau_mem, np.float64)
        ts = np.asarray(tau_syn, np.float64)
        self.a = np.exp(-dt / tm)
        self.b = np.exp(-dt / ts)
        x = dt / ts - dt / tm
        phi, dphi = _phi(x)
        self.c = self.b * (dt / tm) * phi
        self.d = self.c * tm / ts
        # mean of V over a step starting from (V, I): mv V + mi I (the readout's loss statistic);
        # mi integrates c(u) over the step by Gauss-Legendre, exact to rounding for this smooth c
        self.mv = -np.expm1(-dt / tm) * tm / dt
        u, wq = _GAUSS_LEGENDRE_16
        u = (u[:, None] + 1.0) * (dt / 2.0)
        phi_u, _ = _phi(u * (1 / ts - 1 / tm))
        c_u = np.exp(-u / ts) * (u / tm) * phi_u
        self.mi = (wq[:, None] * c_u).sum(0) / 2.0
        # derivatives for trainable tau
        self.da_m = self.a * dt / tm**2
        self.db_s = self.b * dt / ts**2
        self.dc_m = self.b * (-(dt / tm**2) * phi + (dt / tm) * dphi * (dt / tm**2))
        self.dc_s = self.db_s * (dt / tm) * phi + self.b * (dt / tm) * dphi * (-dt / ts**2)


def psp_coefficients(u, tau_mem, tau_syn):
    """(a, b, c) of an exact step of length u (array-like, broadcast against the tau arrays):
    V(u) = a V + c I, I(u) = b I, as StepCoefficients does for u = dt."""
    u = np.asarray(u, np.float64)
    tm = np.asarray(tau_mem, np.float64)
    ts = np.asarray(tau_syn, np.float64)
    b = np.exp(-u / ts)
    phi, _ = _phi(u * (1 / ts - 1 / tm))
    return np.exp(-u / tm), b, b * (u / tm) * phi


def step_coefficients(tau_mem, tau_syn, dt):
    """StepCoefficients, shared between calls with the same time constants: a training step needs
    them four times, and computing them was a tenth of a small network's step. The arrays are
    shared: read them, never write to them (they are not made read-only: numba would compile a
    second variant of each kernel)."""
    tm = np.ascontiguousarray(tau_mem, np.float64)
    ts = np.ascontiguousarray(tau_syn, np.float64)
    return _step_coefficients(tm.tobytes(), ts.tobytes(), float(dt))


@functools.lru_cache(maxsize=8)
def _step_coefficients(tau_mem_bytes, tau_syn_bytes, dt):
    return StepCoefficients(np.frombuffer(tau_mem_bytes), np.frombuffer(tau_syn_bytes), dt)


THRESHOLD = 1.0  # every backend's firing threshold (docs/engine.md)
# floor of I - threshold at a spike that starts its step at or above threshold (kicked over it by
# the previous step's spikes): its crossing lies before the step, where I - threshold is not
# known; at dt = 1 ms, I - threshold at the step's start was near 0 or below for a few such
# spikes, and dividing by the usual floor grew the adjoint a thousandfold per spike
# (docs/engine.md, "Kicked spikes")
KICK_MIN_SLOPE = 0.3


def dtype_of(params):
    """The float dtype a backend computes in: that of W_in (float32 or float64)."""
    dtype = np.asarray(params.W_in).dtype
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"parameters must be float32 or float64, got {dtype}")
    return np.dtype(dtype)
