"""Time per sample of one gradient evaluation: the GeNN backend beside the numba backend.

Run:  python benchmarks/bench_genn.py            (needs pygenn; without it, prints why and the numba rows)
      python benchmarks/bench_genn.py --quick    (a smaller problem, for a smoke run)

Problem: the one of bench_engine.py (700 inputs -> 256 recurrent LIF -> 20 readouts, 1000 steps of
1 ms, ~10,000 SHD-like input spikes per sample, input weights calibrated for ~10 Hz hidden), float32,
loss sum_exp. Timed: forward + loss + backward (what differs between backends; Adam is the same
numpy code for both), median over rounds after a warm-up that includes numba compilation and GeNN's
code generation and build (reported separately). Rows are interleaved round by round in one process,
so load from other processes falls on all of them alike.

GeNN's CPU backend simulates one sample at a time (model batch 1, one thread), so it is compared
with numba at batch 1 (also one thread: numba parallelises over the samples of a batch) and at
batch 32 (2 threads here). On a CUDA machine GeNN runs a batch of 32 at once (`--batch 32`).
The spikes and gradients of both backends on sample 0 are compared too, in float32 and float64.

The last line is machine-readable:
RESULT genn_backend=... genn_ms_per_sample=... numba_b1_ms_per_sample=... numba_b32_ms_per_sample=... genn_vs_numba_b1=...
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_engine as be  # noqa: E402
from eventprop_lab.gradient import loss_and_gradients  # noqa: E402
from eventprop_lab.losses import get_loss  # noqa: E402
from kernels import backend_available, get_engine, make_batch  # noqa: E402


def timed(fn, rounds):
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds, 2 samples in the batch-1 rows")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch", type=int, default=None, help="GeNN model batch (CUDA only; CPU runs 1)")
    ap.add_argument("--backend", default=None, help="GeNN backend (default: cuda if present, else CPU)")
    args = ap.parse_args()
    rounds = 3 if args.quick else args.rounds
    n_steps = int(be.T_MS)
    samples = be.make_samples(be.BATCH)
    w_mean, rate = be.calibrate_w_in_mean(samples)
    params = be.our_params(w_mean)
    labels = be.make_labels(be.BATCH)
    loss = get_loss("sum_exp")
    numba = get_engine("numba")
    batch32 = make_batch(samples, be.N_IN, 1.0, n_steps)
    one = [make_batch([s], be.N_IN, 1.0, n_steps) for s in samples[:2 if args.quick else 4]]
    print(f"problem: {be.N_IN} -> {be.N_HID} recurrent -> {be.N_OUT}, {n_steps} steps of 1 ms, float32, "
          f"hidden {rate:.1f} Hz, {np.mean([len(t) for t, _ in samples]):.0f} input spikes per sample")

    rows = {}
    rows["numba, batch 32 (2 threads)"] = (lambda: loss_and_gradients(numba, params, batch32, labels, loss), be.BATCH)
    rows["numba, batch 1"] = (lambda: [loss_and_gradients(numba, params, b, labels[i:i + 1], loss)
                                       for i, b in enumerate(one)], len(one))
    ok, why = backend_available("genn")
    genn_name = None
    if ok:
        opts = {k: v for k, v in (("backend", args.backend), ("batch_size", args.batch)) if v}
        genn = get_engine("genn", **opts)
        genn_name = genn.backend
        gb = genn.batch_size
        t0 = time.perf_counter()
        loss_and_gradients(genn, params, one[0], labels[:1], loss)  # code generation, build, load
        print(f"GeNN ({genn_name}, model batch {gb}): generate + build + load {time.perf_counter() - t0:.1f} s")
        if gb == 1:
            rows[f"genn {genn_name}, batch 1"] = (lambda: [loss_and_gradients(genn, params, b, labels[i:i + 1], loss)
                                                          for i, b in enumerate(one)], len(one))
        else:
            rows[f"genn {genn_name}, batch {be.BATCH}"] = (
                lambda: loss_and_gradients(genn, params, batch32, labels, loss), be.BATCH)
        for dtype in (np.float32, np.float64):  # agreement on the timed network (float64 builds a second model)
            p = params.astype(dtype)
            ra, rb = (loss_and_gradients(e, p, one[0], labels[:1], loss) for e in (numba, genn))
            k = int(ra.record.n_spikes[0])
            same = (k == int(rb.record.n_spikes[0]) and np.array_equal(ra.record.spike_id[0, :k], rb.record.spike_id[0, :k])
                    and np.array_equal(ra.record.spike_step[0, :k], rb.record.spike_step[0, :k]))
            diff = {n: np.abs(getattr(ra.gradients, n) - getattr(rb.gradients, n)).max()
                    / np.abs(getattr(ra.gradients, n)).max() for n in ("W_in", "W_rec", "W_out")}
            print(f"genn vs numba, sample 0, {np.dtype(dtype).name}: {k} hidden spikes, identical: {same}; "
                  "gradient max relative difference " + ", ".join(f"{n} {d:.1e}" for n, d in diff.items()))
    else:
        print(f"GeNN rows skipped: {why}")
    for fn, _ in rows.values():
        fn()  # warm-up: numba compilation, spike store growth
    times = {name: [] for name in rows}
    for _ in range(rounds):  # interleaved
        for name, (fn, n) in rows.items():
            times[name] += [t / n for t in timed(fn, 1)]
    print(f"\n{'row':<36} {'ms/sample (median)':>19} {'min':>8} {'max':>8}")
    med = {}
    for name, ts in times.items():
        ms = 1000 * np.array(ts)
        med[name] = float(np.median(ms))
        print(f"{name:<36} {med[name]:>19.2f} {ms.min():>8.2f} {ms.max():>8.2f}")
    b1, b32 = med["numba, batch 1"], med["numba, batch 32 (2 threads)"]
    genn_ms = next((v for k, v in med.items() if k.startswith("genn")), float("nan"))
    print(f"\nGeNN / numba at batch 1: {genn_ms / b1:.2f}x the time per sample")
    print(f"RESULT genn_backend={genn_name or 'none'} genn_ms_per_sample={genn_ms:.2f} numba_b1_ms_per_sample={b1:.2f} "
          f"numba_b32_ms_per_sample={b32:.2f} genn_vs_numba_b1={genn_ms / b1:.2f}")


if __name__ == "__main__":
    main()
