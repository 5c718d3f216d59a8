"""How much of the class sits in the hidden layer's spike counts, next to what the network's own
readout makes of it.

Under the `sum` loss a readout's statistic is a linear function of the hidden spike counts (the
integral of a PSP is w * tau_syn wherever the spike falls, trial end aside), so a softmax
regression on the counts is the best that training W_out alone could reach. This fits one
(L2-regularised, on standardised counts, by L-BFGS) on training samples of each run and scores it
on the run's test set, beside the run's own test accuracy; with --init also on the untrained
network of the same config and seed. With --gradient-scale it first prints, per loss, the mean
|dL/dW| of the first run's untrained network on one batch of 32 training samples: how much
gradient each loss sends into the hidden layer.

    python benchmarks/count_probe.py RUN_DIR [RUN_DIR ...] [--init] [--gradient-scale]
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eventprop_lab.network import init_params  # noqa: E402
from eventprop_lab.run import TrainingRun  # noqa: E402


def hidden_counts(run, params, dataset, idx, chunk=64):
    samples = run._inputs(dataset.samples())
    trainer = run.trainer
    out = []
    for start in range(0, len(idx), chunk):
        batch = trainer.batch([samples[i] for i in idx[start:start + chunk]])
        out.append(trainer.engine.forward(params, batch).counts.astype(np.float64))
    return np.concatenate(out)


def fit_softmax(X, y, n_classes, l2=1e-2):
    """Weights (features + 1, classes) of a softmax regression: mean cross-entropy + l2 |W|^2 / 2."""
    Xb = np.hstack([X, np.ones((len(X), 1))])
    Y = np.eye(n_classes)[y]

    def loss(w):
        W = w.reshape(Xb.shape[1], n_classes)
        z = Xb @ W
        z -= z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        grad = Xb.T @ (np.exp(logp) - Y) / len(X) + l2 * W
        return -(Y * logp).sum() / len(X) + 0.5 * l2 * (W ** 2).sum(), grad.ravel()

    res = minimize(loss, np.zeros(Xb.shape[1] * n_classes), jac=True, method="L-BFGS-B",
                   options={"maxiter": 2000})
    return res.x.reshape(Xb.shape[1], n_classes)


def accuracy(W, X, y):
    return float(((np.hstack([X, np.ones((len(X), 1))]) @ W).argmax(1) == y).mean())


def gradient_scale(folder, checkpoint):
    from eventprop_lab.gradient import loss_and_gradients
    from eventprop_lab.losses import get_loss

    run = TrainingRun.from_checkpoint(Path(folder) / f"{checkpoint}.npz")
    idx = np.random.default_rng(0).choice(len(run.train_set.labels), 32, replace=False)
    samples = run._inputs(run.train_set.samples())
    batch = run.trainer.batch([samples[i] for i in idx])
    print("| loss | mean abs dL/dW_in | dL/dW_rec | dL/dW_out |")
    print("|---|---|---|---|")
    for name in ["sum", "sum_exp", "max", "first_spike", "avg_xentropy"]:
        params = init_params(run.net, rng=run.training.seed, loss=name)
        g = loss_and_gradients(run.trainer.engine, params, batch, run.train_set.labels[idx], get_loss(name)).gradients
        rec = "-" if g.W_rec is None else f"{np.abs(g.W_rec).mean():.2g}"
        print(f"| {name} | {np.abs(g.W_in).mean():.2g} | {rec} | {np.abs(g.W_out).mean():.2g} |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run folders (each with best.npz or last.npz)")
    ap.add_argument("--checkpoint", choices=["last", "best"], default="last")
    ap.add_argument("--train-samples", type=int, default=2000, help="training samples the probe is fit on")
    ap.add_argument("--init", action="store_true", help="also probe the untrained network of each run")
    ap.add_argument("--gradient-scale", action="store_true",
                    help="first print each loss's mean |dL/dW| on the first run's untrained network")
    args = ap.parse_args()
    if args.gradient_scale:
        gradient_scale(args.runs[0], args.checkpoint)
    rows = []
    for folder in args.runs:
        ckpt = Path(folder) / f"{args.checkpoint}.npz"
        if not ckpt.exists():
            sys.exit(f"{ckpt} does not exist: give run folders that hold a {args.checkpoint}.npz")
        run = TrainingRun.from_checkpoint(ckpt)
        train, test = run.train_set, run.test_set
        rng = np.random.default_rng(0)
        idx = rng.choice(len(train.labels), min(args.train_samples, len(train.labels)), replace=False)
        nets = [("trained", run.trainer.params)]
        if args.init:
            nets.insert(0, ("untrained", init_params(run.net, rng=run.training.seed, loss=run.training.loss)))
        for which, params in nets:
            Xtr = hidden_counts(run, params, train, idx)
            Xte = hidden_counts(run, params, test, np.arange(len(test.labels)))
            mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-9
            W = fit_softmax((Xtr - mu) / sd, train.labels[idx], train.n_classes)
            own = run.evaluate(test, params)["accuracy"]
            rows.append((f"{Path(folder).name} ({which})", run.training.loss, Xtr.mean() / (run.training.trial_ms / 1000),
                         accuracy(W, (Xtr - mu) / sd, train.labels[idx]), accuracy(W, (Xte - mu) / sd, test.labels), own))
            print(f"{rows[-1][0]}: done", file=sys.stderr, flush=True)
    print("| network | loss | hidden Hz | probe train acc | probe test acc | network's own test acc |")
    print("|---|---|---|---|---|---|")
    for name, loss, hz, ptr, pte, own in rows:
        print(f"| {name} | {loss} | {hz:.1f} | {ptr:.3f} | {pte:.3f} | {own:.3f} |")


if __name__ == "__main__":
    main()
