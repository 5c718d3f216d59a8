"""Command line: `eventprop-lab demo` trains a small network on built-in spike patterns."""
import argparse
import sys
import time

import numpy as np


def _demo(args):
    from .losses import LOSSES
    from .network import NetworkConfig, init_params
    from .toy import spike_patterns
    from .training import Trainer, TrainingConfig

    if args.loss not in LOSSES:
        sys.exit(f"unknown loss {args.loss!r}; choose one of {', '.join(LOSSES)}")
    samples, labels = spike_patterns(args.samples, n_classes=4, n_channels=40, seed=args.seed)
    n_val = len(samples) // 4
    train, val = (samples[n_val:], labels[n_val:]), (samples[:n_val], labels[:n_val])
    net = NetworkConfig(n_in=40, n_hidden=args.hidden, n_out=4, recurrent=True,
                        w_in_mean=0.4, w_in_std=0.2, w_out_std=0.3)
    cfg = TrainingConfig(loss=args.loss, lr=args.lr, warmup=False, batch_size=32, dt=1.0,
                         trial_ms=100.0, reg_strength=0, seed=args.seed)
    trainer = Trainer(init_params(net, rng=args.seed), cfg)
    print(f"Eventprop demo: {len(train[0])} training patterns, 4 classes, 40 inputs -> "
          f"{args.hidden} recurrent LIF -> 4 readouts, loss {args.loss}")
    print("compiling the numba kernels (first run only, about 30 s) ...", flush=True)
    t0 = time.time()
    trainer.evaluate(val[0][:2], val[1][:2])
    print(f"ready after {time.time() - t0:.1f} s")
    print(f"{'epoch':>5} {'train loss':>10} {'val loss':>9} {'val acc':>8} {'rate Hz':>8} {'time s':>7}")
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(train[0]))
        losses = []
        for s in range(0, len(order), 32):
            idx = order[s:s + 32]
            m, _ = trainer.train_batch([train[0][i] for i in idx], train[1][idx])
            losses.append(m["loss"])
        v = trainer.evaluate(*val)
        print(f"{epoch:>5} {np.mean(losses):>10.4f} {v['loss']:>9.4f} {v['accuracy']:>8.3f} "
              f"{v['rate_hz']:>8.1f} {time.time() - t0:>7.1f}", flush=True)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="eventprop-lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train on built-in spike patterns and print progress")
    demo.add_argument("--loss", default="sum_exp", help="loss name (default: sum_exp)")
    demo.add_argument("--epochs", type=int, default=15, help="epochs (default: 15)")
    demo.add_argument("--hidden", type=int, default=32, help="hidden neurons (default: 32)")
    demo.add_argument("--samples", type=int, default=340, help="patterns, a quarter for validation")
    demo.add_argument("--lr", type=float, default=2e-2, help="Adam learning rate (default: 0.02)")
    demo.add_argument("--seed", type=int, default=1, help="random seed")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args)


if __name__ == "__main__":
    sys.exit(main())
