"""Speed and memory of one training step: our numba Eventprop engine vs a PyTorch BPTT baseline.

Run:  python benchmarks/bench_engine.py            (full run, about a minute on a quiet 2-core machine)
      python benchmarks/bench_engine.py --quick    (smoke run, under a minute on a quiet machine)

What is measured
----------------
Problem (the main row): 700 inputs -> 256 recurrent LIF hidden -> 20 leaky-integrator readouts,
1000 steps of dt = 1 ms, batch 32. Input spikes are synthetic but SHD-like (~10,000 per sample,
~14 Hz per channel on average, concentrated in a few syllable-like bursts whose formant bands
sweep over the channels), drawn from a seeded numpy RNG. The mean of the input weights is
calibrated once by bisection on the forward pass so that hidden neurons fire ~10 Hz on average;
recurrent weights N(0, 0.02), readout N(0, 0.03), tau_mem 20 ms, tau_syn 5 ms.

* ms/sample: the wall time of one training step (forward + loss + backward + Adam update) on a
  batch of 32, divided by 32; median over several steps after a warm-up step (the warm-up also
  absorbs numba compilation and the engine's one-off growth of its spike store). Building the
  input batch (our CSR events, or torch's dense binned tensor) is outside the timed steps.
  Every case trains on its own fixed batch; each round starts again from the initial weights
  (untimed copy) so that the activity stays near the calibrated ~10 Hz in every row.
  The speeds of all rows are measured in ONE process, interleaved round-robin (one BPTT step,
  then each of our cases a few times, repeat): this machine is shared, and other processes
  slow it down in bursts, so interleaving makes those bursts fall on every case alike. Each
  round also measures how much CPU other processes took (/proc/stat minus our own CPU time);
  medians use the quiet rounds (< 15 %) when there are at least 3. BPTT suffers most from such
  load: its 2-thread OpenMP ops wait for a descheduled thread thousands of times per step.
  Before each measurement the script waits (up to --wait-quiet s) for a quiet moment.
* peak MiB above baseline: each engine is measured in its own fresh subprocess. The child
  imports, builds its model, runs tiny steps (batch 1, 20 steps) so JIT/kernel set-up memory is
  in the baseline, reads the baseline RSS, resets the peak RSS counter (VmHWM, by writing "5" to
  /proc/self/clear_refs; a sampling thread is the fallback if the kernel refuses), then builds
  its input batch and its optimiser state and runs full-size steps. peak - baseline is
  reported, so the input data in each engine's own format and the optimiser state count for
  both. (These children also time their steps: shown as a cross-check only.)
* BPTT baseline: the same network in torch with autograd, on the plain grid scheme of
  docs/engine.md: per step  I += x_n;  V <- aV + cI;  I <- bI (exact exponential factors);
  readout likewise; spike where V >= 1 with reset to 0 (reset detached); the spikes' recurrent
  and readout weights arrive at the next step (one matmul with [W_rec | W_out]). Fast-sigmoid
  surrogate for the spike derivative. The input current of all steps is one dense matmul
  (T, B, 700) @ W_in. Loss: cross-entropy of the time-averaged readout voltage (the `sum` loss,
  which our engine also uses here; `Bptt(readout=...)` also takes "sum_exp" and "max", the
  maximum over time, for benchmarks/bptt_baseline.py). torch.optim.Adam. torch.set_num_threads(2); our numba
  kernels use the same 2 threads. Its hidden rate at the initial weights is printed next to
  ours as a check that it simulates the same network.
* Scaling rows (our engine only, time only): input spikes x2 (input weight mean recalibrated
  so the hidden rate stays ~10 Hz, so that the row shows the cost of input events alone), dt
  halved (2000 steps of 0.5 ms, the same spikes and weights) and a feed-forward hidden layer.
  They show that our cost follows spikes, not steps.
* Breakdown: forward, loss, backward and Adam timed separately (engine.forward, loss.evaluate,
  engine.backward, Adam.step, the calls eventprop_lab.gradient.loss_and_gradients makes),
  medians; the main row itself is timed through loss_and_gradients.
* Gradient health: the share of hidden spikes whose slope hit the engine's min_slope floor,
  and whether gradients were finite (non-finite entries would be zeroed before Adam, counted
  and reported, so that a numerical problem cannot stop the timing).

The last line is machine-readable:
RESULT ms_per_sample=... speedup_vs_bptt=... memory_ratio_vs_bptt=...
"""
import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

N_IN, N_HID, N_OUT = 700, 256, 20
T_MS = 1000.0
BATCH = 32
TARGET_IN_SPIKES = 10_000
TARGET_HIDDEN_HZ = 10.0
DATA_SEED = 1234
PARAM_SEED = 0
LABEL_SEED = 99
N_THREADS = 2
LOSS_NAME = "sum"
LR = 1e-3


# ---------------------------------------------------------------------------------- input data
def shd_like_sample(rng, rate_scale=1.0, n_target=TARGET_IN_SPIKES, n_ch=N_IN, t_ms=T_MS):
    """One sample of SHD-like input spikes: (sorted times in ms, channels).

    An utterance of 2-4 syllables; each syllable is a burst with a smooth envelope carrying 3-5
    formant-like bands (Gaussian profiles over channels) whose centres sweep linearly over the
    syllable; plus weak uniform background. The rate map (1 ms x channel) is scaled to
    n_target * rate_scale expected spikes (+-15 % per sample); spikes are Poisson per cell with
    uniform jitter inside the millisecond."""
    n_t = int(t_ms)
    t = np.arange(n_t) + 0.5
    ch = np.arange(n_ch, dtype=np.float64)
    lam = np.zeros((n_t, n_ch))
    onset = rng.uniform(30, 150)
    dur = rng.uniform(450, min(800, t_ms - onset - 20))
    n_syll = int(rng.integers(2, 5))
    cuts = np.sort(rng.uniform(0, 1, n_syll - 1))
    edges = onset + dur * np.concatenate([[0.0], cuts, [1.0]])
    for s in range(n_syll):
        t0, t1 = edges[s], edges[s + 1]
        gap = min(20.0, 0.15 * (t1 - t0))
        t0, t1 = t0 + gap / 2, t1 - gap / 2
        inside = (t >= t0) & (t < t1)
        env = np.zeros(n_t)
        env[inside] = np.sin(np.pi * (t[inside] - t0) / (t1 - t0)) ** 0.7
        amp = rng.uniform(0.6, 1.4)
        for _ in range(int(rng.integers(3, 6))):
            c0 = rng.uniform(40, n_ch - 40)
            sweep = rng.normal(0, 120)
            width = rng.uniform(8, 30)
            gain = rng.uniform(0.3, 1.0)
            centre = c0 + sweep * np.clip((t - t0) / (t1 - t0), 0, 1)
            lam += (amp * gain * env)[:, None] * np.exp(-0.5 * ((ch[None, :] - centre[:, None]) / width) ** 2)
    lam += 0.03 * lam.mean()  # background
    lam *= n_target * rate_scale * rng.uniform(0.85, 1.15) / lam.sum()
    counts = rng.poisson(lam)
    ti, ci = np.nonzero(counts)
    reps = counts[ti, ci]
    ti = np.repeat(ti, reps)
    ci = np.repeat(ci, reps)
    times = ti + rng.random(len(ti))
    order = np.argsort(times, kind="stable")
    return times[order], ci[order].astype(np.int64)


def make_samples(n, rate_scale=1.0, seed=DATA_SEED):
    rng = np.random.default_rng(seed)
    return [shd_like_sample(rng, rate_scale) for _ in range(n)]


def save_samples(path, **sets):
    """Store lists of (times, channels) samples in one .npz (children load instead of redrawing)."""
    arrays = {}
    for name, samples in sets.items():
        arrays[f"{name}/ptr"] = np.cumsum([0] + [len(t) for t, _ in samples])
        arrays[f"{name}/t"] = np.concatenate([t for t, _ in samples])
        arrays[f"{name}/c"] = np.concatenate([c for _, c in samples])
    np.savez(path, **arrays)


def load_samples(path, name):
    with np.load(path) as z:
        ptr, t, c = z[f"{name}/ptr"], z[f"{name}/t"], z[f"{name}/c"]
    return [(t[a:b], c[a:b]) for a, b in zip(ptr[:-1], ptr[1:])]


def make_labels(n):
    return np.random.default_rng(LABEL_SEED).integers(0, N_OUT, n)


# ---------------------------------------------------------------------------------- our engine
MIN_SLOPE = None  # None: the engine's default; --min-slope sets it (children get it via cfg)


def our_engine():
    from kernels import get_engine

    return get_engine("numba", **({} if MIN_SLOPE is None else {"min_slope": MIN_SLOPE}))


def our_params(w_in_mean, recurrent=True):
    from eventprop_lab.network import NetworkConfig, init_params

    cfg = NetworkConfig(n_in=N_IN, n_hidden=N_HID, n_out=N_OUT, recurrent=recurrent, w_in_mean=w_in_mean)
    return init_params(cfg, rng=PARAM_SEED, dtype=np.float32)


def hidden_rate_hz(counts, t_ms):
    return float(np.mean(counts)) / (t_ms / 1000.0)


def calibrate_w_in_mean(samples, recurrent=True, dt=1.0, target=TARGET_HIDDEN_HZ, iters=14):
    """Bisection on the input weight mean (std stays 0.01) for the target mean hidden rate,
    forward pass only. Stops early within 2 % of the target."""
    from kernels import make_batch

    engine = our_engine()
    batch = make_batch(samples, N_IN, dt, int(round(T_MS / dt)))
    rate = lambda m: hidden_rate_hz(engine.forward(our_params(m, recurrent), batch).counts, T_MS)  # noqa: E731
    lo, hi = 0.0, 0.04
    while rate(hi) < target:
        lo, hi = hi, 2 * hi
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        r = rate(mid)
        if abs(r - target) < 0.02 * target:
            return mid, r
        lo, hi = (mid, hi) if r < target else (lo, mid)
    m = 0.5 * (lo + hi)
    return m, rate(m)


def _copy_params(params):
    return type(params)(*(None if x is None else np.array(x, copy=True) for x in params))


class OursCase:
    """One problem for our engine, set up for repeated training steps (its own params copy,
    engine and Adam state). step() runs forward + loss + backward + Adam:
    via eventprop_lab.gradient.loss_and_gradients, or (phases=True) through the same calls made
    one by one (engine.forward, loss.evaluate, engine.backward) so each phase can be timed."""

    def __init__(self, params, batch, labels):
        from eventprop_lab.losses import get_loss
        from eventprop_lab.optim import Adam

        self.params = _copy_params(params)  # Adam updates in place; the caller keeps its weights
        self.initial = _copy_params(params)
        self.batch, self.labels = batch, labels
        self.engine = our_engine()
        self.loss = get_loss(LOSS_NAME)
        self.opt = Adam(lr=LR)
        self.times = []
        self.phases = {"forward": [], "loss": [], "backward": [], "adam": []}
        self.nonfinite_steps, self.nonfinite_params, self.steps = 0, set(), 0
        self.record = None
        self.first_hidden_hz = None  # at the initial weights (the first step)
        self.hidden_spikes = []  # mean hidden spikes per sample, per timed step
        self.grad_absmax = {}  # per parameter, max |gradient| of every step (timed or not)

    def reset(self):
        """Back to the initial weights (Adam state kept), untimed: keeps the activity of every
        case near its calibrated starting point however many steps are timed."""
        self.params = _copy_params(self.initial)

    def _adam(self, grads):
        """Adam on the engine's gradients. Non-finite entries are zeroed first and counted, so
        that a numerically bad gradient cannot stop the timing run (the engine refuses NaN
        parameters); the check costs ~0.1 ms per batch and is inside the timed step."""
        p = self.params._asdict()
        g = {k: v for k, v in grads._asdict().items() if k in p and v is not None}
        bad = [k for k, v in g.items() if not np.isfinite(v).all()]
        for k, v in g.items():
            self.grad_absmax.setdefault(k, []).append(float(np.nanmax(np.abs(v))) if v.size else 0.0)
        if bad:
            self.nonfinite_steps += 1
            self.nonfinite_params.update(bad)
            g = {k: (np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0) if k in bad else v) for k, v in g.items()}
        self.steps += 1
        self.opt.step(p, g)
        self.params = type(self.params)(**p)

    def step(self, phases=False, record=True):
        from eventprop_lab.gradient import loss_and_gradients

        t0 = time.perf_counter()
        if not phases:
            res = loss_and_gradients(self.engine, self.params, self.batch, self.labels, self.loss)
            self._adam(res.gradients)
            self.record = res.record
            t4 = time.perf_counter()
        else:
            rec = self.engine.forward(self.params, self.batch, **self.loss.record_options())
            t1 = time.perf_counter()
            lres = self.loss.evaluate(rec, self.labels, self.params)
            t2 = time.perf_counter()
            grads, _ = self.engine.backward(self.params, self.batch, rec, lres.source)
            t3 = time.perf_counter()
            self._adam(grads)
            t4 = time.perf_counter()
            self.record = rec
            if record:
                for k, a, b in (("forward", t0, t1), ("loss", t1, t2), ("backward", t2, t3), ("adam", t3, t4)):
                    self.phases[k].append(b - a)
        if self.first_hidden_hz is None:
            self.first_hidden_hz = hidden_rate_hz(self.record.counts, self.batch.n_steps * self.batch.dt)
        if record:
            self.times.append(t4 - t0)
            self.hidden_spikes.append(float(self.record.n_spikes.mean()))
        return t4 - t0

    def summary(self, select=None):
        sel = range(len(self.times)) if select is None else select
        pick = lambda x: [x[i] for i in sel]  # noqa: E731
        rec = self.record
        B = self.batch.batch_size
        slopes = np.concatenate([rec.spike_slope[s, :rec.n_spikes[s]] for s in range(B)])
        out = {"step_s": float(np.median(pick(self.times))), "step_s_all": pick(self.times),
               "hidden_hz": self.first_hidden_hz,
               "hidden_hz_last": hidden_rate_hz(rec.counts, self.batch.n_steps * self.batch.dt),
               "hidden_spikes_per_sample": float(np.mean(pick(self.hidden_spikes))),
               "spike_store_cap": int(rec.spike_step.shape[1]),
               "n_in_spikes": float(np.diff(self.batch.ptr).mean()),
               "floored_slope_frac": float(np.mean(slopes <= self.engine.min_slope * (1 + 1e-6))) if len(slopes) else 0.0,
               "nonfinite_steps": self.nonfinite_steps, "nonfinite_params": sorted(self.nonfinite_params),
               "steps": self.steps,
               "grad_absmax": {k: [float(np.median(v)), float(np.max(v))] for k, v in self.grad_absmax.items()}}
        if self.phases["forward"]:
            out["phases_s"] = {k: float(np.median(pick(v))) for k, v in self.phases.items()}
        return out


# ---------------------------------------------------------------------------------- BPTT baseline
class Bptt:
    """The same network trained by BPTT with a surrogate gradient, in torch (see the header)."""

    beta = 10.0  # fast-sigmoid steepness, derivative 1 / (beta |V - 1| + 1)^2
    READOUTS = ("mean", "sum_exp", "max")

    def __init__(self, params, samples, labels, n_steps=int(T_MS), dt=1.0, readout="mean", lr=LR):
        import torch

        if readout not in self.READOUTS:
            raise ValueError(f"readout {readout!r}: use one of {', '.join(self.READOUTS)}")
        self.readout = readout

        from kernels import StepCoefficients

        self.torch = torch
        self.spike = _fast_sigmoid_spike(torch, self.beta)

        def coeffs(tm, ts):
            c = StepCoefficients(tm, ts, dt)
            return tuple(torch.tensor(x, dtype=torch.float32) for x in (c.a, c.b, c.c))

        self.a_h, self.b_h, self.c_h = coeffs(params.tau_mem, params.tau_syn)
        self.a_o, self.b_o, self.c_o = coeffs(params.tau_mem_out, params.tau_syn_out)
        leaf = lambda x: torch.tensor(np.asarray(x), dtype=torch.float32, requires_grad=True)  # noqa: E731
        self.W = [leaf(params.W_in), leaf(params.W_rec), leaf(params.W_out)]
        self.W0 = [w.detach().clone() for w in self.W]
        self.x = self.dense_input(samples, n_steps, dt)
        self.labels = torch.as_tensor(np.asarray(labels))
        self.opt = torch.optim.Adam(self.W, lr=lr)
        self.times, self.fwd, self.bwd, self.upd = [], [], [], []
        self.hidden_hz = None

    def reset(self):
        """Back to the initial weights (Adam state kept), untimed."""
        with self.torch.no_grad():
            for w, w0 in zip(self.W, self.W0):
                w.copy_(w0)

    @staticmethod
    def dense_input(samples, n_steps, dt=1.0):
        """Binned input, time-major (T, B, 700) float32 (a bin holds its number of events)."""
        import torch

        x = np.zeros((n_steps, len(samples), N_IN), np.float32)
        for s, (t, c) in enumerate(samples):
            st = np.floor(np.asarray(t) / dt + 1e-9).astype(np.int64)
            keep = st < n_steps
            np.add.at(x, (st[keep], s, np.asarray(c)[keep]), 1.0)
        return torch.from_numpy(x)

    def forward(self, x, count=False):
        """Readout statistics (B, N_OUT) of binned input x (T, B, N_IN), and the hidden spike count."""
        torch = self.torch
        W_in, W_rec, W_out = self.W
        T, B, _ = x.shape
        cur = (x.reshape(T * B, N_IN) @ W_in).reshape(T, B, N_HID)  # input current, one matmul
        # unbind, not cur[n]: the backward of T separate indexings would build T zero tensors of
        # cur's full size; unbind's backward stacks the step gradients once
        cur_steps = cur.unbind(0)
        W_cat = torch.cat([W_rec, W_out], 1)  # one matmul per step delivers both kinds of spikes
        a_h, b_h, c_h, a_o, b_o, c_o = self.a_h, self.b_h, self.c_h, self.a_o, self.b_o, self.c_o
        V = torch.zeros(B, N_HID)
        I = torch.zeros(B, N_HID)
        Vo = torch.zeros(B, N_OUT)
        Io = torch.zeros(B, N_OUT)
        acc = torch.zeros(B, N_OUT) if self.readout != "max" else torch.full((B, N_OUT), -torch.inf)
        if self.readout == "sum_exp":  # Vo at t_{n+1} weighted by e^(-t/T), as the loss of that name
            w_exp = torch.exp(-torch.arange(1, T + 1, dtype=torch.float32) / T)
        n_spk = 0.0
        for n in range(T):
            I = I + cur_steps[n]  # input events of step n arrive at t_n
            V = a_h * V + c_h * I  # exact propagation to t_{n+1}
            I = b_h * I
            Vo = a_o * Vo + c_o * Io
            Io = b_o * Io
            if self.readout == "mean":
                acc = acc + Vo
            elif self.readout == "sum_exp":
                acc = acc + w_exp[n] * Vo
            else:
                acc = torch.maximum(acc, Vo)
            S = self.spike(V - 1.0)
            V = V * (1.0 - S.detach())  # reset to 0, not differentiated
            R = S @ W_cat  # spikes reach their targets at t_{n+1}
            I = I + R[:, :N_HID]
            Io = Io + R[:, N_HID:]
            if count:
                n_spk += S.detach().sum()
        return (acc if self.readout == "max" else acc / T), n_spk

    def step(self, record=True, count=False):
        torch = self.torch
        t0 = time.perf_counter()
        T, B, _ = self.x.shape
        stat, n_spk = self.forward(self.x, count=count)
        loss = torch.nn.functional.cross_entropy(stat, self.labels)
        t1 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        self.opt.step()
        t3 = time.perf_counter()
        if count:
            self.hidden_hz = float(n_spk) / (B * N_HID) / (T / 1000.0)
        if record:
            self.times.append(t3 - t0)
            self.fwd.append(t1 - t0)
            self.bwd.append(t2 - t1)
            self.upd.append(t3 - t2)
        return t3 - t0

    def summary(self, select=None):
        sel = range(len(self.times)) if select is None else select
        pick = lambda x: [x[i] for i in sel]  # noqa: E731
        return {"step_s": float(np.median(pick(self.times))), "step_s_all": pick(self.times),
                "hidden_hz": self.hidden_hz,
                "phases_s": {"forward+loss": float(np.median(pick(self.fwd))),
                             "backward": float(np.median(pick(self.bwd))), "adam": float(np.median(pick(self.upd)))}}


def _fast_sigmoid_spike(torch, beta):
    class FastSigmoidSpike(torch.autograd.Function):
        """Heaviside forward; derivative 1 / (beta |x| + 1)^2 (SuperSpike's fast sigmoid)."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x >= 0).to(x.dtype)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad / (beta * x.abs() + 1.0) ** 2

    return FastSigmoidSpike.apply


# ---------------------------------------------------------------------------------- machine
QUIET_SHARE = 0.15  # a timing round counts as quiet if other processes took < 15 % of all CPUs


def _busy_cpu_s():
    """CPU seconds all processes have spent (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------- memory
def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakRSS:
    """Peak resident memory from start() on, in MiB above the RSS at start().

    Resets VmHWM through /proc/self/clear_refs when the kernel allows it (checked); otherwise
    samples VmRSS every millisecond in a thread (which can miss short peaks inside a numba
    kernel, because the kernel holds the GIL)."""

    def start(self):
        gc.collect()
        self.base = _status_kib("VmRSS")
        self.method = "VmHWM reset via /proc/self/clear_refs"
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            ok = _status_kib("VmHWM") <= _status_kib("VmRSS") + 1024
        except OSError:
            ok = False
        self._sampled = self.base
        self._stop = threading.Event()
        self._thread = None
        if not ok:
            self.method = "sampled VmRSS (clear_refs unavailable)"
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self._sampled = max(self._sampled, _status_kib("VmRSS"))
            time.sleep(0.001)

    def peak_mib(self):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            peak = max(self._sampled, _status_kib("VmRSS"))
        else:
            peak = _status_kib("VmHWM")
        return (peak - self.base) / 1024.0


# ---------------------------------------------------------------------------------- children
def _set_threads(torch=None):
    import numba

    numba.set_num_threads(N_THREADS)
    if torch is not None:
        torch.set_num_threads(N_THREADS)


def child_mem_ours(cfg):
    """Fresh process: peak memory of our training steps above a warmed-up baseline."""
    _set_threads()
    from kernels import make_batch

    samples, labels = load_samples(cfg["data"], "main"), make_labels(BATCH)
    params = our_params(cfg["w_in_mean"])
    tiny = OursCase(params, make_batch(samples[:1], N_IN, 1.0, 20), labels[:1])  # compiles the kernels
    tiny.step(record=False)
    tiny.step(record=False)
    del tiny

    mem = PeakRSS().start()
    batch = make_batch(samples, N_IN, 1.0, int(T_MS))  # the input data counts
    case = OursCase(params, batch, labels)
    case.step(record=False)  # full-size warm-up: the engine grows its spike store here
    for _ in range(cfg["n_steps"]):
        case.step()
    out = case.summary()
    out["peak_mib"] = mem.peak_mib()
    out["mem_method"] = mem.method
    out["input_mib"] = (batch.ptr.nbytes + batch.step.nbytes + batch.channel.nbytes) / 2**20
    return out


def child_mem_bptt(cfg):
    """Fresh process: peak memory of BPTT training steps above a warmed-up baseline."""
    import torch

    _set_threads(torch)
    samples, labels = load_samples(cfg["data"], "main"), make_labels(BATCH)
    params = our_params(cfg["w_in_mean"])  # the same initial weights as our engine
    tiny = Bptt(params, samples[:1], labels[:1], n_steps=20)  # torch's lazy set-up
    tiny.step(record=False)
    tiny.step(record=False)
    del tiny

    mem = PeakRSS().start()
    model = Bptt(params, samples, labels)  # dense input tensor, leaf weights, Adam
    model.step(record=False, count=True)
    for _ in range(cfg["n_steps"]):
        model.step()
    out = model.summary()
    out["peak_mib"] = mem.peak_mib()
    out["mem_method"] = mem.method
    out["input_mib"] = model.x.numel() * model.x.element_size() / 2**20
    return out


def child_speed(cfg):
    """Timing of all cases, interleaved round-robin in one process, so that slow and fast
    periods of a shared machine fall on every case alike."""
    import torch  # first: torch's OpenMP runtime is then the one numba's omp layer uses too

    _set_threads(torch)
    from kernels import make_batch

    samples, labels = load_samples(cfg["data"], "main"), make_labels(BATCH)
    params = our_params(cfg["w_in_mean"])
    batch = make_batch(samples, N_IN, 1.0, int(T_MS))
    bptt = Bptt(params, samples, labels)
    ours = {"main": OursCase(params, batch, labels), "main_phases": OursCase(params, batch, labels)}
    if cfg["scaling"]:
        ours["x2"] = OursCase(our_params(cfg["w_in_mean_x2"]),
                              make_batch(load_samples(cfg["data"], "x2"), N_IN, 1.0, int(T_MS)), labels)
        ours["dt_half"] = OursCase(params, make_batch(samples, N_IN, 0.5, int(2 * T_MS)), labels)
        ours["ff"] = OursCase(our_params(cfg["w_in_mean_ff"], recurrent=False), batch, labels)
    bptt.step(record=False, count=True)  # warm-ups
    for name, case in ours.items():
        case.step(phases=(name != "main"), record=False)
    # Rounds: all weights back to their initial values (untimed), one BPTT step, then each of
    # our cases a few times. Per round we also measure how
    # much CPU other processes took (/proc/stat busy time minus our own CPU time); medians use
    # the rounds where that stayed below QUIET_SHARE of the machine, if there are enough.
    others, rounds_of = [], {name: [] for name in ["bptt", *ours]}
    t_begin = time.perf_counter()
    for r in range(cfg["rounds"]):
        if r >= 2 and time.perf_counter() - t_begin > cfg["budget_s"]:
            break
        bptt.reset()
        for case in ours.values():
            case.reset()
        w0, b0, c0 = time.perf_counter(), _busy_cpu_s(), time.process_time()
        bptt.step()
        rounds_of["bptt"].append(r)
        for _ in range(cfg["ours_per_round"]):
            for name, case in ours.items():
                case.step(phases=(name != "main"))
                rounds_of[name].append(r)
        w1, b1, c1 = time.perf_counter(), _busy_cpu_s(), time.process_time()
        others.append(max(0.0, (b1 - b0) - (c1 - c0)) / ((w1 - w0) * os.cpu_count()))
    quiet = [r for r, x in enumerate(others) if x < QUIET_SHARE]
    use = set(quiet) if len(quiet) >= min(3, len(others)) else set(range(len(others)))
    out = {"others_share": others, "quiet_rounds": quiet, "used_rounds": sorted(use)}
    for name, obj in [("bptt", bptt), *ours.items()]:
        out[name] = obj.summary([i for i, r in enumerate(rounds_of[name]) if r in use])
        out[name]["step_s_every"] = obj.times
    return out


CHILDREN = {"mem_ours": child_mem_ours, "mem_bptt": child_mem_bptt, "speed": child_speed}


def _own_cpu_s():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def others_share(seconds):
    """Share of all CPUs that other processes used over the next `seconds` (we stay idle)."""
    w0, b0, c0 = time.perf_counter(), _busy_cpu_s(), _own_cpu_s()
    time.sleep(seconds)
    return max(0.0, (_busy_cpu_s() - b0) - (_own_cpu_s() - c0)) / ((time.perf_counter() - w0) * os.cpu_count())


def wait_until_quiet(max_wait_s, probe_s=2.0):
    """Wait (up to max_wait_s) for a moment when other processes leave the CPUs alone."""
    t0 = time.perf_counter()
    share = others_share(probe_s)
    if share >= QUIET_SHARE and max_wait_s > 0:
        print(f"  other processes are using {100 * share:.0f}% of the CPUs; waiting up to {max_wait_s:.0f} s "
              "for a quieter moment ...", flush=True)
        while share >= QUIET_SHARE and time.perf_counter() - t0 < max_wait_s:
            share = others_share(probe_s)
    return share


def run_child(kind, cfg):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--cfg", json.dumps(cfg)]
    w0, b0, c0 = time.perf_counter(), _busy_cpu_s(), _own_cpu_s()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=str(REPO))
    if proc.returncode != 0:
        raise SystemExit(f"child {kind} failed with exit code {proc.returncode}")
    others = max(0.0, (_busy_cpu_s() - b0) - (_own_cpu_s() - c0)) / ((time.perf_counter() - w0) * os.cpu_count())
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
    out = json.loads(last)
    out["others_share_overall"] = others
    return out


# ---------------------------------------------------------------------------------- parent
def _ms(r):
    return 1000.0 * r["step_s"] / BATCH


def _spread(r):
    t = 1000.0 * np.asarray(r["step_s_all"]) / BATCH
    return f"{t.min():.2f}-{t.max():.2f}"


def main():
    global MIN_SLOPE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run (< 60 s)")
    ap.add_argument("--no-scaling", action="store_true", help="skip the scaling rows")
    ap.add_argument("--min-slope", type=float, default=None,
                    help="our engine's min_slope (default: the engine's own default)")
    ap.add_argument("--wait-quiet", type=float, default=None, metavar="S",
                    help="before each measurement wait up to S seconds while other processes keep the CPUs "
                         "busy (default 120, 0 with --quick)")
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--cfg", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        cfg = json.loads(args.cfg)
        MIN_SLOPE = cfg.get("min_slope")
        print(json.dumps(CHILDREN[args.child](cfg)))
        return

    t_start = time.perf_counter()
    MIN_SLOPE = args.min_slope
    quick = args.quick
    print(f"Eventprop engine vs PyTorch BPTT: {N_IN}-{N_HID}(recurrent)-{N_OUT}, {int(T_MS)} steps of 1 ms, "
          f"batch {BATCH}, {N_THREADS} threads, loss '{LOSS_NAME}', Adam lr {LR}"
          + (" [quick]" if quick else ""), flush=True)
    samples = make_samples(BATCH)
    n_in = np.array([len(t) for t, _ in samples])
    print(f"input: {n_in.mean():.0f} spikes/sample (min {n_in.min()}, max {n_in.max()}), "
          f"{n_in.mean() / N_IN / (T_MS / 1000):.1f} Hz per channel on average", flush=True)
    samples_x2 = make_samples(BATCH, rate_scale=2.0)
    tmp = tempfile.mkdtemp(prefix="bench_engine_")
    try:
        data = os.path.join(tmp, "samples.npz")
        save_samples(data, main=samples, x2=samples_x2)
        _measure_and_print(args, samples, samples_x2, data, t_start)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _measure_and_print(args, samples, samples_x2, data, t_start):
    quick = args.quick
    n_in = np.array([len(t) for t, _ in samples])
    m_main, r_main = calibrate_w_in_mean(samples)
    print(f"calibrated W_in mean {m_main:.5f} (std 0.01): hidden rate {r_main:.2f} Hz", flush=True)
    base = {"w_in_mean": m_main, "min_slope": MIN_SLOPE, "data": data}
    speed_cfg = dict(base, scaling=not args.no_scaling, rounds=3 if quick else 12, ours_per_round=2 if quick else 3,
                     budget_s=8 if quick else 240)
    if speed_cfg["scaling"]:
        m_x2, r_x2 = calibrate_w_in_mean(samples_x2)
        print(f"  input x2:     W_in mean {m_x2:.5f}: hidden rate {r_x2:.2f} Hz", flush=True)
        m_ff, r_ff = calibrate_w_in_mean(samples, recurrent=False)
        print(f"  feed-forward: W_in mean {m_ff:.5f}: hidden rate {r_ff:.2f} Hz", flush=True)
        speed_cfg.update(w_in_mean_x2=m_x2, w_in_mean_ff=m_ff)

    el = lambda: f"[{time.perf_counter() - t_start:.0f} s]"  # noqa: E731
    wait = (0.0 if quick else 120.0) if args.wait_quiet is None else args.wait_quiet
    quiet = (lambda: wait_until_quiet(wait)) if wait > 0 else (lambda: None)  # noqa: E731
    print(f"{el()} memory, our engine (fresh process) ...", flush=True)
    quiet()
    mo = run_child("mem_ours", dict(base, n_steps=1 if quick else 4))
    print(f"{el()} memory, BPTT (fresh process) ...", flush=True)
    quiet()
    mb = run_child("mem_bptt", dict(base, n_steps=1 if quick else 4))
    print(f"{el()} speed, all cases interleaved (one process) ...", flush=True)
    quiet()
    sp = run_child("speed", speed_cfg)

    om, bm = sp["main"], sp["bptt"]
    speedup = _ms(bm) / _ms(om)
    mem_ratio = mb["peak_mib"] / mo["peak_mib"]
    rows = [("ours: main (dt 1 ms, 1000 steps)", om, mo["peak_mib"],
             f"{speedup:.1f}x faster, {mem_ratio:.1f}x less memory"),
            ("BPTT: torch autograd, same network", bm, mb["peak_mib"], "1 (reference)")]
    for key, name in (("x2", "ours: input spikes x2"), ("dt_half", "ours: dt 0.5 ms (2000 steps)"),
                      ("ff", "ours: feed-forward hidden")):
        if key in sp:
            rows.append((name, sp[key], None, f"{_ms(bm) / _ms(sp[key]):.1f}x faster; {_ms(sp[key]) / _ms(om):.2f}x our main"))
    print()
    hdr = (f"{'case':35s} | {'in-spk/smp':>10s} | {'hid Hz':>6s} | {'ms/sample':>9s} | {'(min-max)':>11s} | "
           f"{'peak MiB>base':>13s} | ratio vs BPTT")
    print(hdr)
    print("-" * (len(hdr) + 24))
    for name, r, mem, ratio in rows:
        mem_s = f"{mem:13.1f}" if mem is not None else f"{'-':>13s}"
        print(f"{name:35s} | {r.get('n_in_spikes', n_in.mean()):10.0f} | {r['hidden_hz']:6.2f} | {_ms(r):9.2f} | "
              f"{_spread(r):>11s} | {mem_s} | {ratio}")
    print()
    sh = sp["others_share"]
    print("ms/sample: medians of interleaved steps in one process; peak MiB: fresh processes (above).")
    print(f"  other processes' share of the {os.cpu_count()} CPUs per timing round: "
          + " ".join(f"{100 * x:.0f}%" for x in sh)
          + (f"; medians over the {len(sp['used_rounds'])} rounds below {100 * QUIET_SHARE:.0f}%"
             if len(sp["used_rounds"]) < len(sh) else "")
          + ("" if len(sp["quiet_rounds"]) >= min(3, len(sh)) else
             " -- WARNING: the machine was busy; numbers are disturbed (BPTT's 2-thread OpenMP suffers most)"))
    print("  hid Hz of the BPTT row: its own first forward pass at the same initial weights (a check that it "
          "simulates the same network; the plain grid scheme, so a small gap to ours is expected).")
    print("  scaling rows' 'x faster' compare with BPTT at 1000 steps and 10k input spikes; BPTT's cost "
          "does not depend on input spikes and grows with the number of steps.")
    print(f"memory inputs: ours CSR events {mo['input_mib']:.1f} MiB, BPTT dense (T,B,700) float32 "
          f"{mb['input_mib']:.1f} MiB; method: {mo['mem_method']}" +
          ("" if mo["mem_method"] == mb["mem_method"] else f" / {mb['mem_method']}"))
    best = min(bm["step_s_all"]) / min(om["step_s_all"])
    print(f"speedup from the fastest step of each (least disturbed by other load): {best:.1f}x")
    print(f"fresh-process timing (cross-check, not interleaved): ours {_ms(mo):.2f} ms/sample "
          f"({len(mo['step_s_all'])} steps), BPTT {_ms(mb):.2f} ({len(mb['step_s_all'])} steps): "
          f"speedup {_ms(mb) / _ms(mo):.1f}x; other processes took {100 * mo['others_share_overall']:.0f}% / "
          f"{100 * mb['others_share_overall']:.0f}% of the CPUs during these runs")
    print("time per batch of 32, medians:")
    for key, name in (("main_phases", "ours main"), ("x2", "ours input x2"), ("dt_half", "ours dt 0.5 ms"),
                      ("ff", "ours feed-fwd")):
        if key in sp:
            ph = sp[key]["phases_s"]
            tot = sum(ph.values())
            print(f"  {name:15s}: " + ", ".join(f"{k} {1000 * v:.1f} ms ({100 * v / tot:.0f}%)" for k, v in ph.items())
                  + f"; {sp[key]['hidden_spikes_per_sample']:.0f} hidden spikes/sample")
    ph = bm["phases_s"]
    tot = sum(ph.values())
    print(f"  {'BPTT':15s}: " + ", ".join(f"{k} {1000 * v:.0f} ms ({100 * v / tot:.0f}%)" for k, v in ph.items()))
    print("our gradients (engine min_slope " + ("default" if MIN_SLOPE is None else f"{MIN_SLOPE:g}") + "):")
    for key, name in (("main", "main"), ("x2", "input x2"), ("dt_half", "dt 0.5 ms"), ("ff", "feed-forward")):
        if key in sp:
            r = sp[key]
            print(f"  {name:12s}: {100 * r['floored_slope_frac']:.2f}% of hidden spikes at the slope floor; "
                  + (f"NON-FINITE gradients ({', '.join(r['nonfinite_params'])}) in {r['nonfinite_steps']}/"
                     f"{r['steps']} steps, zeroed before Adam" if r["nonfinite_steps"]
                     else f"gradients finite in all {r['steps']} steps"))
            print("      max |grad| per step, median / largest: " + ", ".join(
                f"{k} {a:.1e} / {b:.1e}" for k, (a, b) in r["grad_absmax"].items()))
    print(f"steps timed: ours main {len(om['step_s_all'])}, BPTT {len(bm['step_s_all'])}; "
          f"wall time of this run {time.perf_counter() - t_start:.0f} s")
    print(f"RESULT ms_per_sample={_ms(om):.3g} speedup_vs_bptt={speedup:.3g} memory_ratio_vs_bptt={mem_ratio:.3g}")


if __name__ == "__main__":
    main()
