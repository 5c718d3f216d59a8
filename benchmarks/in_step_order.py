"""The order of the hidden spikes in a step: what it changes in a real network's gradient, and what it costs.

The engine takes a step's hidden spikes in time order, each reaching the others at its crossing
(in_step_order=True, the default); the plain scheme lets them meet only at the step's end
(in_step_order=False, what the GeNN backend computes). On batches of a run's training set, with
its weights (a checkpoint, or the fresh network of --preset), this prints per scheme and dt:
- the cosine of the batch gradient (float64) to the ordered one at --reference-dt, median and
  worst over the batches, and the norm against the reference's;
- the share of hidden spikes that started their step over threshold (lag = dt: a kick from the
  step before that the scheme did not resolve);
- ms per sample of forward + backward in the training dtype (float32), for each scheme and dt,
  all timed interleaved in this process, median over the batches, and the ratio of each to the
  plain scheme at the run's own dt (or the first of --dts).

    python benchmarks/in_step_order.py --preset paper --batches 4
    python benchmarks/in_step_order.py runs/paper/last.npz --batches 8
    python benchmarks/in_step_order.py runs/paper/last.npz --batches 1 --reference-dt 0.05 --per-sample
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's code


def _flat(grads):
    return np.concatenate([np.ravel(v).astype(np.float64) for k, v in sorted(grads._asdict().items())
                           if v is not None])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", help="a run's checkpoint (default: a fresh network of --preset)")
    ap.add_argument("--preset", default="paper", help="the recipe of the fresh network (no checkpoint)")
    ap.add_argument("--dataset", default="randman-shd")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dts", default="1,0.5", help="grids to compare (ms)")
    ap.add_argument("--reference-dt", type=float, default=0.1)
    ap.add_argument("--per-sample", action="store_true",
                    help="also each sample's gradient alone: cosine to its reference (median, quartiles, worst) "
                         "and the largest sample norm against the median")
    args = ap.parse_args(argv)
    dts = [float(x) for x in args.dts.split(",")]
    grids = dts + [args.reference_dt] * (args.reference_dt not in dts)

    from kernels import get_engine, make_batch

    from eventprop_lab.config import SECTIONS, apply_preset
    from eventprop_lab.gradient import loss_and_gradients
    from eventprop_lab.run import TrainingRun

    scratch = tempfile.mkdtemp(prefix="in-step-order-")
    if args.checkpoint:
        run = TrainingRun.from_checkpoint(args.checkpoint, **{"run.out_dir": scratch})
        source = args.checkpoint
    else:
        configs = apply_preset({k: cls() for k, cls in SECTIONS.items()}, args.preset)
        configs["run"].dataset, configs["run"].out_dir = args.dataset, scratch
        configs["training"].seed = args.seed
        run = TrainingRun(configs["run"], configs["network"], configs["training"], configs["augment"])
        source = f"a fresh network of --preset {args.preset} (seed {args.seed})"
    tr, trial = run.trainer, run.training.trial_ms
    engines = {"ordered": get_engine("numba", in_step_order=True), "plain": get_engine("numba", in_step_order=False)}
    rng = np.random.default_rng(args.seed)
    p64 = tr.params.astype(np.float64)

    def grad(engine, params, samples, labels, dt):
        batch = make_batch(samples, params.n_in, dt, int(round(trial / dt)))
        res = loss_and_gradients(engine, params, batch, labels, tr.loss, tr.regulariser,
                                 train_tau=run.training.train_tau)
        n = res.record.n_spikes
        lag = np.concatenate([res.record.spike_lag[s, :n[s]] for s in range(len(n))])
        return res.gradients, float(np.mean(lag >= dt * (1 - 1e-6))) if len(lag) else 0.0

    cos = {(s, dt): [] for s in engines for dt in grids}
    ratio, unresolved = {k: [] for k in cos}, {k: [] for k in cos}
    ms = {(s, dt): [] for s in engines for dt in dts}
    single = {k: [] for k in cos}
    for b in range(args.batches):
        idx = np.sort(rng.choice(len(run.train_set), args.batch_size, replace=False))
        samples = run._inputs(run.train_set.samples(idx))
        labels = np.asarray(run.train_set.labels[idx])
        ref, _ = grad(engines["ordered"], p64, samples, labels, args.reference_dt)
        ref = _flat(ref)
        for scheme, engine in engines.items():
            for dt in grids:
                g, kicked = grad(engine, p64, samples, labels, dt)
                g = _flat(g)
                cos[scheme, dt].append(float(g @ ref / (np.linalg.norm(g) * np.linalg.norm(ref) + 1e-300)))
                ratio[scheme, dt].append(float(np.linalg.norm(g) / np.linalg.norm(ref)))
                unresolved[scheme, dt].append(kicked)
        if args.per_sample:
            for k in range(len(samples)):
                one = (samples[k:k + 1], labels[k:k + 1])
                ref1 = _flat(grad(engines["ordered"], p64, *one, args.reference_dt)[0])
                for scheme, dt in cos:
                    g1 = _flat(grad(engines[scheme], p64, *one, dt)[0])
                    single[scheme, dt].append((float(g1 @ ref1 / (np.linalg.norm(g1) * np.linalg.norm(ref1) + 1e-300)),
                                               float(np.linalg.norm(g1))))
        if b == 0:  # compile (or load) the training dtype's kernels outside the timing
            for scheme, dt in ms:
                grad(engines[scheme], tr.params, samples[:1], labels[:1], dt)
        for _ in range(2):  # interleaved, so that load from other processes falls on all alike
            for scheme, dt in ms:
                t0 = time.perf_counter()
                grad(engines[scheme], tr.params, samples, labels, dt)
                ms[scheme, dt].append(1e3 * (time.perf_counter() - t0) / len(samples))
        print(f"  batch {b + 1}/{args.batches} done", file=sys.stderr, flush=True)

    print(f"{args.batches} batches of {args.batch_size} from {run.run_cfg.dataset}, weights of {source}; "
          f"reference: ordered at dt {args.reference_dt:g} ms")
    print(f"{'scheme':8s} {'dt':>5s}  {'cosine median':>13s} {'worst':>7s}  {'norm/ref':>8s}  {'lag = dt':>8s}")
    for scheme in engines:
        for dt in grids:
            c = cos[scheme, dt]
            print(f"{scheme:8s} {dt:5g}  {np.median(c):13.4f} {min(c):7.4f}  {np.median(ratio[scheme, dt]):8.3f}  "
                  f"{np.mean(unresolved[scheme, dt]):8.2%}")
    if args.per_sample:
        print(f"each sample alone ({sum(map(len, single.values())) // len(single)}): cosine to the ordered "
              f"gradient at dt {args.reference_dt:g} ms, median [quartiles] worst; largest norm / median norm")
        for (scheme, dt), v in single.items():
            c, n = np.array(v).T
            print(f"{scheme:8s} {dt:5g}  {np.median(c):.3f} [{np.percentile(c, 25):.3f}, {np.percentile(c, 75):.3f}] "
                  f"{c.min():.3f}  {n.max() / np.median(n):9.3g}")
    base = ("plain", run.training.dt) if ("plain", run.training.dt) in ms else ("plain", dts[0])
    print(f"forward + backward ({tr.params.W_in.dtype}), ms per sample, median; ratio to plain at dt {base[1]:g} ms")
    for (scheme, dt), v in ms.items():
        print(f"{scheme:8s} {dt:5g}  {np.median(v):8.2f} ms  {np.median(v) / np.median(ms[base]):5.2f}")


if __name__ == "__main__":
    main()
