"""Which hidden neurons a trained run with heterogeneous time constants left silent: the silent
share and mean rate per quartile of tau_mem, after training and at the run's own initial draw,
and the mean input weight of silent and active neurons (what the silent-neuron lift has to undo).

    python benchmarks/silent_by_tau.py runs/preset30_ordered_s7 [RUN_DIR ...] [--samples 600]

Counts are over a fixed random subset of the run's training clips (seed 0), without augmentation.

--steps F [F ...]: also, at the initial draw, the rate and silent share per quartile after every
input weight is lowered by F times the mean input weight (equal steps, as Adam takes whatever a
weight's size) and after every input weight is scaled by 1 - F (steps in proportion to size)."""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from count_probe import hidden_counts  # noqa: E402  this folder is on sys.path as a script


def quartile_table(tau_mem, counts_now, counts_init, n_samples, trial_s):
    """Rows (tau_mem range, silent now, silent at init, Hz now, Hz at init) per quartile of tau_mem."""
    edges = np.quantile(tau_mem, [0, 0.25, 0.5, 0.75, 1])
    which = np.digitize(tau_mem, edges[1:-1])
    rows = []
    for q in range(4):
        m = which == q
        rows.append((edges[q], edges[q + 1], float((counts_now[m] == 0).mean()), float((counts_init[m] == 0).mean()),
                     float(counts_now[m].mean() / n_samples / trial_s), float(counts_init[m].mean() / n_samples / trial_s)))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run folders (their last.npz)")
    ap.add_argument("--samples", type=int, default=600, help="training clips to count spikes on")
    ap.add_argument("--steps", type=float, nargs="*", default=[],
                    help="fractions F for the equal-step and proportional-step tables (e.g. 0.2 0.4)")
    args = ap.parse_args(argv)

    from eventprop_lab.network import init_params
    from eventprop_lab.run import TrainingRun

    for folder in args.runs:
        run = TrainingRun.from_checkpoint(Path(folder) / "last.npz")
        if not run.net.heterogeneous_tau:
            print(f"{folder}: homogeneous tau, nothing to split by")
            continue
        p = run.trainer.params
        p0 = init_params(run.net, rng=run.training.seed, loss=run.training.loss)
        n = min(args.samples, len(run.train_set.labels))
        idx = np.random.default_rng(0).choice(len(run.train_set.labels), n, replace=False)
        now = hidden_counts(run, p, run.train_set, idx).sum(0)
        init = hidden_counts(run, p0, run.train_set, idx).sum(0)
        trial_s = run.training.trial_ms / 1000.0
        silent = now == 0
        print(f"{folder} (epoch {run.epoch}, {n} training clips): {silent.mean():.1%} silent now, "
              f"{(init == 0).mean():.1%} at init")
        print(f"  {'tau_mem (ms)':>13} {'silent now':>10} {'at init':>8} {'Hz now':>7} {'at init':>8}")
        tau = np.asarray(p.tau_mem)
        table = quartile_table(tau, now, init, n, trial_s)
        for lo, hi, s_now, s_init, hz_now, hz_init in table:
            print(f"  {lo:5.1f}-{hi:5.1f}  {s_now:>10.1%} {s_init:>8.1%} {hz_now:>7.1f} {hz_init:>8.1f}")
        if args.steps:
            print(f"  at the initial draw, input weights changed ({n} clips): Hz / silent per quartile")
            print("  " + " " * 18 + "".join(f"{lo:5.1f}-{hi:5.1f} ms   " for lo, hi, *_ in table))
            mean_w = float(np.mean(p0.W_in))
            for f in args.steps:
                for label, w_in in ((f"- {f:g} x mean", p0.W_in - f * mean_w), (f"x {1 - f:g}", p0.W_in * (1 - f))):
                    c = hidden_counts(run, p0._replace(W_in=w_in.astype(p0.W_in.dtype)), run.train_set, idx).sum(0)
                    rows = quartile_table(tau, c, init, n, trial_s)
                    print(f"  {label:>16}  " + "".join(f"{r[4]:5.1f} Hz {r[2]:4.0%}   " for r in rows))
        w = np.asarray(p.W_in, np.float64).mean(0)
        if silent.any():
            print(f"  mean input weight: silent {w[silent].mean():.2e}, active {w[~silent].mean():.2e}; "
                  f"tau_mem silent {np.mean(p.tau_mem[silent]):.1f} ms, active {np.mean(p.tau_mem[~silent]):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
