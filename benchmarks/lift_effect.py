"""What the silent-neuron lift does to a trained network: add the lift to every input weight
(as the paper's code does; ours adds it to silent neurons only) and compare rates on 64
training samples, for the neurons that were nearly silent and for all.

    python benchmarks/lift_effect.py runs/paper --lift 0.002 0.0002
"""
import argparse

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", help="a run folder (its last.npz)")
    ap.add_argument("--lift", type=float, nargs="+", default=[0.002, 0.0002])
    args = ap.parse_args(argv)

    from eventprop_lab.run import TrainingRun

    run = TrainingRun.from_checkpoint(f"{args.run_dir}/last.npz")
    idx = np.arange(0, len(run.train_set), max(1, len(run.train_set) // 64))[:64]
    batch = run.trainer.batch(run._inputs(run.train_set.samples(idx)))
    engine, p = run.trainer.engine, run.trainer.params
    before = engine.forward(p, batch).counts.mean(0)
    low = before < 2
    print(f"{args.run_dir}: {p.W_in.shape[0]} inputs, W_in mean {p.W_in.mean():.5f}; {before.mean():.1f} Hz, "
          f"{low.mean():.0%} of neurons below 2 Hz")
    for lift in args.lift:
        after = engine.forward(p._replace(W_in=p.W_in + np.asarray(lift, p.W_in.dtype)), batch).counts.mean(0)
        lows = f"median {np.median(after[low]):.1f} Hz, p90 {np.percentile(after[low], 90):.1f} Hz" if low.any() else "none"
        print(f"  lift {lift:g}: neurons below 2 Hz -> {lows}; all neurons {before.mean():.1f} -> {after.mean():.1f} Hz")


if __name__ == "__main__":
    main()
