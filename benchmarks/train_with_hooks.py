"""`eventprop-lab train` with two settings the trainer does not take yet, for measuring them
(docs/results.md, "Why training was unstable"):

- --w-in-lr-scale S: Adam's learning rate for W_in times S (Adam.lr_scale). Adam's step is about
  lr per weight whatever the weight's scale, so with the delay line (W_in initialised 10x smaller,
  11x more inputs) a step in which all of a neuron's input weights agree changes its summed input
  by ~33 % instead of ~3 %; S = 0.1 restores the ratio.
- --init-rate-hz R: after initialisation, scale W_in by one factor so the hidden layer's mean rate
  on 64 training samples is R (network.calibrate_input_gain).

    python benchmarks/train_with_hooks.py --w-in-lr-scale 0.1 --init-rate-hz 14 --preset paper \
        --dataset data_cache/tts-digits/tts_digits_train.h5 --epochs 10 --out-dir runs/x
"""
import argparse
import sys

import numpy as np


def main(argv=None):
    from eventprop_lab.cli import add_config_options, configs_from_args
    from eventprop_lab.network import calibrate_input_gain
    from eventprop_lab.run import TrainingRun

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--w-in-lr-scale", type=float, default=1.0)
    ap.add_argument("--init-rate-hz", type=float, default=0.0)
    add_config_options(ap)
    args = ap.parse_args(argv)
    c = configs_from_args(args, ap)
    run = TrainingRun(c["run"], c["network"], c["training"], c["augment"])
    run.trainer.optimiser.lr_scale["W_in"] = args.w_in_lr_scale
    if args.init_rate_hz > 0:
        idx = np.random.default_rng(c["training"].seed).permutation(len(run.train_set))[:64]
        batch = run.trainer.batch(run._inputs(run.train_set.samples(np.sort(idx))))
        counts = lambda p: run.trainer.engine.forward(p, batch).counts  # noqa: E731
        target = args.init_rate_hz * c["training"].trial_ms / 1000.0
        run.trainer.params, gain, reached = calibrate_input_gain(run.trainer.params, counts, target)
        print(f"input weights x{gain:.3f}: {reached:.1f} spikes per trial at init (target {target:g})", flush=True)
    best = run.fit()
    test = run.evaluate(run.test_set)
    print(f"best validation {best['validation_accuracy']:.3f} at epoch {best['epoch']}")
    print(f"test (last weights): loss {test['loss']:.4f}, accuracy {test['accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
