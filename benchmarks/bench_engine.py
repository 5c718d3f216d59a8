"""Speed and memory of one training step: our numba Eventprop engine vs a PyTorch BPTT baseline.

Run:  python benchmarks/bench_engine.py            (full run, a few minutes on 2 cores)
      python benchmarks/bench_engine.py --quick    (smoke run, under a minute)

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
  input batch (our CSR events, or torch's dense binned tensor) is outside the timed loop.
* peak MiB above baseline: each engine is measured in its own fresh subprocess. The child
  imports, builds its model, runs one tiny step (batch 1, 20 steps) so JIT/kernel set-up memory is
  in the baseline, reads the baseline RSS, resets the peak RSS counter (VmHWM, by writing "5" to
  /proc/self/clear_refs; a sampling thread is the fallback if the kernel refuses), then builds
  its input batch, its optimiser state and runs the full-size steps. peak - baseline is reported,
  so the input data in each engine's own format and the optimiser state are counted for both.
* BPTT baseline: the same network in torch with autograd, with the same exact-exponential
  scheme as our engine (docs/engine.md): per step  I += x_n;  V <- aV + cI;  I <- bI;  readout
  likewise; spike where V >= 1 with reset to 0 (reset detached); the spikes' recurrent and
  readout weights arrive at the next step. Fast-sigmoid surrogate for the spike derivative. The
  input current of all steps is one dense matmul (T, B, 700) @ W_in. Loss: cross-entropy of
  the time-averaged readout voltage (the `sum` loss, which our engine also uses here). Adam.
  torch.set_num_threads(2); our numba kernels use the same 2 threads.
* Scaling rows (our engine only, time only, all in the same process as the main row): input
  spikes x2 (input weight mean recalibrated so the hidden rate stays ~10 Hz, so that the row
  shows the cost of input events alone), dt halved (2000 steps of 0.5 ms, the same spikes and
  weights) and a feed-forward hidden layer. They show that our cost follows spikes, not steps.
* Breakdown: forward, loss, backward and Adam timed separately (engine.forward, loss.evaluate,
  engine.backward, Adam.step), medians.

The last line is machine-readable:
RESULT ms_per_sample=... speedup_vs_bptt=... memory_ratio_vs_bptt=...
"""
import argparse
import gc
import json
import os
import subprocess
import sys
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


def make_labels(n):
    return np.random.default_rng(LABEL_SEED).integers(0, N_OUT, n)


# ---------------------------------------------------------------------------------- our engine
def our_params(w_in_mean, recurrent=True):
    from eventprop_lab.network import NetworkConfig, init_params

    cfg = NetworkConfig(n_in=N_IN, n_hidden=N_HID, n_out=N_OUT, recurrent=recurrent, w_in_mean=w_in_mean)
    return init_params(cfg, rng=PARAM_SEED, dtype=np.float32)


def hidden_rate_hz(counts, t_ms):
    return float(np.mean(counts)) / (t_ms / 1000.0)


def calibrate_w_in_mean(samples, recurrent=True, dt=1.0, target=TARGET_HIDDEN_HZ, iters=14):
    """Bisection on the input weight mean for the target mean hidden rate (forward pass only)."""
    from kernels import get_engine, make_batch

    engine = get_engine("numba")
    batch = make_batch(samples, N_IN, dt, int(round(T_MS / dt)))
    lo, hi = 0.0, 0.1
    rate = lambda m: hidden_rate_hz(engine.forward(our_params(m, recurrent), batch).counts, T_MS)  # noqa: E731
    while rate(hi) < target:
        hi *= 2
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if rate(mid) < target:
            lo = mid
        else:
            hi = mid
    m = 0.5 * (lo + hi)
    return m, rate(m)


def _adam_step(opt, params, grads):
    p = params._asdict()
    opt.step(p, {k: v for k, v in grads._asdict().items() if k in p and v is not None})
    return type(params)(**p)


def time_ours(params, batch, labels, n_timed, engine=None, breakdown_reps=0):
    """Median wall time of full training steps; optional per-phase breakdown."""
    from kernels import get_engine
    from eventprop_lab.gradient import loss_and_gradients
    from eventprop_lab.losses import get_loss
    from eventprop_lab.optim import Adam

    engine = engine or get_engine("numba")
    loss = get_loss(LOSS_NAME)
    opt = Adam(lr=LR)
    rates, times = [], []
    for i in range(n_timed + 1):  # step 0 is the warm-up
        t0 = time.perf_counter()
        res = loss_and_gradients(engine, params, batch, labels, loss)
        params = _adam_step(opt, params, res.gradients)
        dt_s = time.perf_counter() - t0
        rates.append(hidden_rate_hz(res.record.counts, batch.n_steps * batch.dt))
        if i > 0:
            times.append(dt_s)
    out = {"step_s": float(np.median(times)) if times else None, "step_s_all": times,
           "hidden_hz": rates[0], "n_in_spikes": float(np.diff(batch.ptr).mean())}
    if breakdown_reps:
        ph = {"forward": [], "loss": [], "backward": [], "adam": []}
        for _ in range(breakdown_reps):
            t0 = time.perf_counter()
            rec = engine.forward(params, batch, spiking_readout=loss.spiking_readout,
                                 record_readout_current=loss.needs_readout_current)
            t1 = time.perf_counter()
            lr = loss.evaluate(rec, labels, params)
            t2 = time.perf_counter()
            grads, _ = engine.backward(params, batch, rec, lr.source)
            t3 = time.perf_counter()
            params = _adam_step(opt, params, grads)
            t4 = time.perf_counter()
            for k, a, b in (("forward", t0, t1), ("loss", t1, t2), ("backward", t2, t3), ("adam", t3, t4)):
                ph[k].append(b - a)
        out["phases_s"] = {k: float(np.median(v)) for k, v in ph.items()}
        out["hidden_spikes_per_sample"] = float(rec.n_spikes.mean())
        out["spike_store_cap"] = int(rec.spike_step.shape[1])
    return out


# ---------------------------------------------------------------------------------- memory
def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakRSS:
    """Peak resident memory from here on, in MiB above the RSS at start().

    Resets VmHWM through /proc/self/clear_refs when the kernel allows it (checked); otherwise
    samples VmRSS every millisecond in a thread (which can miss short peaks inside a numba
    kernel, because the kernel holds the GIL)."""

    def start(self):
        gc.collect()
        self.base = _status_kib("VmRSS")
        self.method = "VmHWM reset via clear_refs"
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
def child_ours(cfg):
    import numba

    numba.set_num_threads(N_THREADS)
    from kernels import get_engine, make_batch

    n_timed = cfg["n_timed"]
    samples = make_samples(BATCH)
    labels = make_labels(BATCH)
    params = our_params(cfg["w_in_mean"])
    engine = get_engine("numba")
    # tiny step so compiled kernels and their set-up memory are in the baseline
    time_ours(params, make_batch(samples[:1], N_IN, 1.0, 20), labels[:1], n_timed=1, engine=get_engine("numba"))

    mem = PeakRSS().start()
    batch = make_batch(samples, N_IN, 1.0, int(T_MS))
    main = time_ours(params, batch, labels, n_timed, engine=engine)
    main["peak_mib"] = mem.peak_mib()
    main["mem_method"] = mem.method
    main["input_mib"] = (batch.ptr.nbytes + batch.step.nbytes + batch.channel.nbytes) / 2**20
    del batch
    gc.collect()

    out = {"main": main}
    # per-phase breakdown on the main problem (after the memory measurement)
    batch = make_batch(samples, N_IN, 1.0, int(T_MS))
    out["breakdown"] = time_ours(params, batch, labels, 0, engine=engine, breakdown_reps=cfg["breakdown_reps"])
    del batch
    if cfg.get("scaling", True):
        # input spikes x2, hidden rate kept ~10 Hz by the recalibrated input weight mean
        s2 = make_samples(BATCH, rate_scale=2.0)
        b2 = make_batch(s2, N_IN, 1.0, int(T_MS))
        out["x2"] = time_ours(our_params(cfg["w_in_mean_x2"]), b2, labels, n_timed, breakdown_reps=cfg["breakdown_reps"])
        del s2, b2
        # dt halved: the same spikes and weights on 2000 steps of 0.5 ms
        bh = make_batch(samples, N_IN, 0.5, int(2 * T_MS))
        out["dt_half"] = time_ours(params, bh, labels, n_timed, breakdown_reps=cfg["breakdown_reps"])
        del bh
        # feed-forward hidden layer (its own calibrated input weight mean)
        batch = make_batch(samples, N_IN, 1.0, int(T_MS))
        out["ff"] = time_ours(our_params(cfg["w_in_mean_ff"], recurrent=False), batch, labels, n_timed,
                              breakdown_reps=cfg["breakdown_reps"])
    return out


def child_bptt(cfg):
    import torch

    torch.set_num_threads(N_THREADS)
    from kernels import StepCoefficients

    class FastSigmoidSpike(torch.autograd.Function):
        """Heaviside forward; derivative 1 / (beta |x| + 1)^2 (SuperSpike's fast sigmoid)."""

        beta = 10.0

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x >= 0).to(x.dtype)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad / (FastSigmoidSpike.beta * x.abs() + 1.0) ** 2

    spike = FastSigmoidSpike.apply
    n_timed = cfg["n_timed"]
    samples = make_samples(BATCH)
    labels_np = make_labels(BATCH)
    p0 = our_params(cfg["w_in_mean"])  # the same initial weights as our engine

    def coeffs(tm, ts, dt):
        c = StepCoefficients(tm, ts, dt)
        return tuple(torch.tensor(x, dtype=torch.float32) for x in (c.a, c.b, c.c))

    a_h, b_h, c_h = coeffs(p0.tau_mem, p0.tau_syn, 1.0)
    a_o, b_o, c_o = coeffs(p0.tau_mem_out, p0.tau_syn_out, 1.0)

    def leaf(x):
        return torch.tensor(np.asarray(x), dtype=torch.float32, requires_grad=True)

    def dense_input(smp, n_steps, dt=1.0):
        """Binned input, time-major (T, B, 700), float32; a bin counts its events."""
        x = np.zeros((n_steps, len(smp), N_IN), np.float32)
        for s, (t, c) in enumerate(smp):
            st = np.floor(t / dt + 1e-9).astype(np.int64)
            keep = st < n_steps
            np.add.at(x, (st[keep], s, c[keep]), 1.0)
        return torch.from_numpy(x)

    def train_step(W, opt, x, labels):
        W_in, W_rec, W_out = W
        T, B, _ = x.shape
        cur = (x.reshape(T * B, N_IN) @ W_in).reshape(T, B, N_HID)  # input current, one matmul
        W_cat = torch.cat([W_rec, W_out], 1)
        V = torch.zeros(B, N_HID)
        I = torch.zeros(B, N_HID)
        Vo = torch.zeros(B, N_OUT)
        Io = torch.zeros(B, N_OUT)
        acc = torch.zeros(B, N_OUT)
        n_spk = 0.0
        for n in range(T):
            I = I + cur[n]
            V = a_h * V + c_h * I
            I = b_h * I
            Vo = a_o * Vo + c_o * Io
            Io = b_o * Io
            acc = acc + Vo
            S = spike(V - 1.0)
            V = V * (1.0 - S.detach())
            R = S @ W_cat
            I = I + R[:, :N_HID]
            Io = Io + R[:, N_HID:]
            n_spk += S.detach().sum()
        loss = torch.nn.functional.cross_entropy(acc / T, labels)
        t_fwd = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t_bwd = time.perf_counter()
        opt.step()
        return float(loss), float(n_spk) / (B * N_HID) / (T / 1000.0), t_fwd, t_bwd

    def run(W, x, labels, n):
        opt = torch.optim.Adam(W, lr=LR)
        times, fwd, bwd, rates = [], [], [], []
        for i in range(n + 1):
            t0 = time.perf_counter()
            loss, rate, t1, t2 = train_step(W, opt, x, labels)
            t3 = time.perf_counter()
            rates.append(rate)
            if i > 0:
                times.append(t3 - t0)
                fwd.append(t1 - t0)
                bwd.append(t2 - t1)
        return {"step_s": float(np.median(times)), "step_s_all": times, "hidden_hz": rates[0],
                "phases_s": {"forward": float(np.median(fwd)), "backward": float(np.median(bwd))}}

    W = [leaf(p0.W_in), leaf(p0.W_rec), leaf(p0.W_out)]
    # tiny step (throwaway copies) so torch's lazy initialisation is in the baseline
    Wt = [w.detach().clone().requires_grad_(True) for w in W]
    run(Wt, dense_input(samples[:1], 20), torch.as_tensor(labels_np[:1]), 1)
    del Wt

    mem = PeakRSS().start()
    x = dense_input(samples, int(T_MS))
    labels = torch.as_tensor(labels_np)
    main = run(W, x, labels, n_timed)
    main["peak_mib"] = mem.peak_mib()
    main["mem_method"] = mem.method
    main["input_mib"] = x.numel() * x.element_size() / 2**20
    return {"main": main}


def run_child(kind, cfg):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--cfg", json.dumps(cfg)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=str(REPO))
    if proc.returncode != 0:
        raise SystemExit(f"child {kind} failed with exit code {proc.returncode}")
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
    return json.loads(last)


# ---------------------------------------------------------------------------------- parent
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run (< 60 s)")
    ap.add_argument("--no-scaling", action="store_true", help="skip the scaling rows")
    ap.add_argument("--child", choices=("ours", "bptt"), help=argparse.SUPPRESS)
    ap.add_argument("--cfg", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        out = (child_ours if args.child == "ours" else child_bptt)(json.loads(args.cfg))
        print(json.dumps(out))
        return

    t_start = time.perf_counter()
    quick = args.quick
    n_timed_ours = 3 if quick else 9
    n_timed_bptt = 2 if quick else 5
    reps = 3 if quick else 7
    print(f"Eventprop engine vs PyTorch BPTT: {N_IN}-{N_HID}(rec)-{N_OUT}, {int(T_MS)} steps of 1 ms, "
          f"batch {BATCH}, {N_THREADS} threads, loss '{LOSS_NAME}', Adam lr {LR}"
          + (" [quick]" if quick else ""), flush=True)

    samples = make_samples(BATCH)
    n_in = np.array([len(t) for t, _ in samples])
    per_ch = n_in.mean() / N_IN / (T_MS / 1000)
    print(f"input: {n_in.mean():.0f} spikes/sample (min {n_in.min()}, max {n_in.max()}), "
          f"{per_ch:.1f} Hz per channel on average", flush=True)
    iters = 10 if quick else 14
    m_main, r_main = calibrate_w_in_mean(samples, iters=iters)
    print(f"calibrated W_in mean {m_main:.5f} (std 0.01): hidden rate {r_main:.2f} Hz", flush=True)
    cfg = {"w_in_mean": m_main, "n_timed": n_timed_ours, "breakdown_reps": reps,
           "scaling": not (args.no_scaling)}
    if cfg["scaling"]:
        m_x2, r_x2 = calibrate_w_in_mean(make_samples(BATCH, rate_scale=2.0), iters=iters)
        print(f"  x2 input spikes: W_in mean {m_x2:.5f}: hidden rate {r_x2:.2f} Hz", flush=True)
        m_ff, r_ff = calibrate_w_in_mean(samples, recurrent=False, iters=iters)
        print(f"  feed-forward:    W_in mean {m_ff:.5f}: hidden rate {r_ff:.2f} Hz", flush=True)
        cfg.update(w_in_mean_x2=m_x2, w_in_mean_ff=m_ff)

    print("measuring our engine (fresh process) ...", flush=True)
    ours = run_child("ours", cfg)
    print("measuring PyTorch BPTT (fresh process) ...", flush=True)
    bptt = run_child("bptt", {"w_in_mean": m_main, "n_timed": n_timed_bptt})

    om, bm = ours["main"], bptt["main"]
    ms = lambda r: 1000.0 * r["step_s"] / BATCH  # noqa: E731
    speedup = ms(bm) / ms(om)
    mem_ratio = bm["peak_mib"] / om["peak_mib"]

    rows = [("ours: main (10k in-spikes, dt 1 ms)", om, om["peak_mib"], f"{speedup:.1f}x faster, {mem_ratio:.1f}x less memory"),
            ("BPTT (torch autograd, same network)", bm, bm["peak_mib"], "1")]
    for key, name in (("x2", "ours: input spikes x2"), ("dt_half", "ours: dt 0.5 ms (2000 steps)"),
                      ("ff", "ours: feed-forward hidden 256")):
        if key in ours:
            rows.append((name, ours[key], None, f"{ms(ours[key]) / ms(om):.2f}x main time"))
    print()
    hdr = f"{'case':38s} | {'in-spk/smp':>10s} | {'hid Hz':>6s} | {'ms/sample':>9s} | {'peak MiB>base':>13s} | ratio"
    print(hdr)
    print("-" * (len(hdr) + 30))
    for name, r, mem, ratio in rows:
        nin = r.get("n_in_spikes", n_in.mean())
        mem_s = f"{mem:13.1f}" if mem is not None else f"{'-':>13s}"
        print(f"{name:38s} | {nin:10.0f} | {r['hidden_hz']:6.2f} | {ms(r):9.2f} | {mem_s} | {ratio}")
    print()
    print(f"memory: ours input (CSR events) {om['input_mib']:.1f} MiB, BPTT input (dense (T,B,700) float32) "
          f"{bm['input_mib']:.1f} MiB; method: {om['mem_method']} / {bm['mem_method']}")
    bd = ours["breakdown"]
    ph = bd["phases_s"]
    tot = sum(ph.values())
    print("ours, per batch of 32 (median): " + ", ".join(
        f"{k} {1000 * v:.1f} ms ({100 * v / tot:.0f}%)" for k, v in ph.items())
        + f"; {bd['hidden_spikes_per_sample']:.0f} hidden spikes/sample, spike store cap {bd['spike_store_cap']}")
    for key, name in (("x2", "input x2"), ("dt_half", "dt 0.5 ms"), ("ff", "feed-forward")):
        if key in ours and "phases_s" in ours[key]:
            p = ours[key]["phases_s"]
            print(f"  {name:12s}: " + ", ".join(f"{k} {1000 * v:.1f} ms" for k, v in p.items()))
    bp = bm["phases_s"]
    print(f"BPTT, per batch of 32 (median): forward+loss {1000 * bp['forward']:.0f} ms, backward "
          f"{1000 * bp['backward']:.0f} ms, total step {1000 * bm['step_s']:.0f} ms")
    print(f"timed steps: ours {len(om['step_s_all'])}, BPTT {len(bm['step_s_all'])}; "
          f"wall time of this run {time.perf_counter() - t_start:.0f} s")
    print(f"RESULT ms_per_sample={ms(om):.3g} speedup_vs_bptt={speedup:.3g} memory_ratio_vs_bptt={mem_ratio:.3g}")


if __name__ == "__main__":
    main()
