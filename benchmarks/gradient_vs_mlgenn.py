"""One sample at a time, with the same weights: this project's gradient and hidden spike counts
against mlGeNN's (`benchmarks/mlgenn_reference.py --init W.npz --gradients K`).

    python benchmarks/gradient_vs_mlgenn.py runs/mlgenn_gradients.npz --init W.npz \
        --dataset data_cache/tts-words/tts_words_train.h5 --validation-fraction 0 --reg-strength 0

Options after the probe file are `eventprop-lab train`'s (the network must be mlGeNN's plain one).
Our gradients lack mlGeNN's factor 1/tau_m on the readout sources, so they are compared after
division by tau_m. Prints, per sample: total hidden spikes in each, the correlation of per-neuron
counts, and per weight matrix the cosine between the two gradients and the ratio of their norms.

With `--subtract PROBE0` (mlGeNN's probe of the same clips with its regulariser off, `--reg 1e-30`)
it compares the regulariser's part alone: mlGeNN's probe minus PROBE0 against ours with
`--reg-strength` minus ours without. This tells whether the two regularisers weigh the same against
their own loss gradients."""
import argparse
import os
import sys

import numpy as np

sys.path.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from fd import fd_derivative  # noqa: E402  the tests' careful finite differences
from from_weights import NAMES, load_init, slope_as_mlgenn  # noqa: E402  this folder is on sys.path as a script

from eventprop_lab.cli import add_config_options, configs_from_args
from eventprop_lab.gradient import loss_and_gradients
from eventprop_lab.run import TrainingRun


def cosine(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(np.dot(a.ravel(), b.ravel()) / (na * nb)) if na > 0 and nb > 0 else float("nan")


def directional_fd(trainer, batch, labels, direction, eps, ours_grad, tau):
    """(FD, ours, mlGeNN's x tau) of the loss's derivative along `direction` in W_in, in float64;
    FD (tests/fd.py: steps eps, eps/10, eps/100, kept where two agree) is None where a step changes a
    spike count or the steps disagree."""
    p = trainer.params.astype(np.float64)
    d = direction.astype(np.float64) / np.linalg.norm(direction)

    def loss_and_counts(x):
        q = p._replace(W_in=p.W_in + x * d)
        rec = trainer.engine.forward(q, batch, **trainer.loss.record_options())
        return trainer.loss.evaluate(rec, labels, q).value, np.asarray(rec.counts)

    fd, _ = fd_derivative(loss_and_counts, None, 0.0, eps)
    if fd is None:
        return None, None, None
    return float(fd), float(np.sum(ours_grad * d)), float(np.sum(direction * d) * tau)


def nanmedian(x):
    """The median of the finite entries; nan where there are none (a part that is zero in both)."""
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("probe", help=".npz written by mlgenn_reference.py --gradients")
    ap.add_argument("--init", required=True, help="the weights mlGeNN used (its --init file)")
    ap.add_argument("--slope-as-mlgenn", action="store_true",
                    help="our backward pass with mlGeNN's grid estimate of I - V at hidden spikes (from_weights.py)")
    ap.add_argument("--fd", type=float, default=0.0, metavar="EPS",
                    help="also the loss's central difference (float64, step EPS) along mlGeNN's W_in gradient: "
                         "which of the two predicts it (tests/fd.py's steps EPS, EPS/10, EPS/100)")
    ap.add_argument("--subtract", default=None, metavar="PROBE0",
                    help="mlGeNN's probe of the same clips without its regulariser: compare the regulariser's part "
                         "of the gradient only (ours: --reg-strength minus no regulariser)")
    add_config_options(ap)
    args = ap.parse_args(argv)
    c = configs_from_args(args, ap)
    run = TrainingRun(c["run"], c["network"], c["training"], c["augment"])
    trainer = run.trainer
    try:
        trainer.params = load_init(args.init, trainer.params)
    except ValueError as exc:
        ap.error(str(exc))
    if args.slope_as_mlgenn:
        slope_as_mlgenn(trainer.engine, trainer.params)
    with np.load(args.probe) as f:
        probe = {k: f[k] for k in f.files}
    if args.subtract:
        if trainer.regulariser is None:
            ap.error("--subtract compares the regulariser's part: give --reg-strength > 0")
        if args.fd > 0:
            ap.error("--fd checks the loss's gradient; it does not combine with --subtract")
        with np.load(args.subtract) as f:
            probe0 = {k: f[k] for k in f.files}
        if not np.array_equal(probe0["labels"], probe["labels"][:len(probe0["labels"])]):
            ap.error(f"{args.subtract} is a probe of other clips than {args.probe}")
        n0 = len(probe0["labels"])
        probe = {k: probe[k][:n0] for k in ("labels", "counts", "grad/W_in", "grad/W_rec", "grad/W_out")}
        for n in NAMES:
            probe[f"grad/{n}"] = probe[f"grad/{n}"] - probe0[f"grad/{n}"]
    k = len(probe["labels"])
    labels = run.train_set.labels[:k]
    if not np.array_equal(labels, probe["labels"]):
        ap.error("the probe's labels differ from the dataset's first samples: use the same file and "
                 "--validation-fraction 0")
    tau = float(trainer.params.tau_mem_out[0])
    rows, fd_rows = [], []
    print(f"{'sample':>6} {'spikes ours/mlGeNN':>19} {'count corr':>10} " +
          " ".join(f"{n + ' cos':>10} {n + ' ratio':>10}" for n in NAMES))
    for i in range(k):
        batch = trainer.batch(run._inputs(run.train_set.samples(np.array([i]))))
        res = loss_and_gradients(trainer.engine, trainer.params, batch, labels[i:i + 1], trainer.loss,
                                 trainer.regulariser)
        grads = {n: np.asarray(getattr(res.gradients, n), np.float64) for n in NAMES}
        if args.subtract:  # the same forward pass, backward without the regulariser's jump
            plain, _ = trainer.engine.backward(trainer.params, batch, res.record, res.loss.source)
            grads = {n: grads[n] - np.asarray(getattr(plain, n), np.float64) for n in NAMES}
        ours_counts = np.asarray(res.record.counts).reshape(-1)
        theirs = probe["counts"][i]
        corr = float(np.corrcoef(ours_counts, theirs)[0, 1]) if ours_counts.std() and theirs.std() else float("nan")
        row = [ours_counts.sum(), theirs.sum(), corr]
        for n in NAMES:
            g = grads[n] / tau
            h = probe[f"grad/{n}"][i].astype(np.float64)
            nh = np.linalg.norm(h)
            row += [cosine(g, h), np.linalg.norm(g) / nh if nh else float("nan")]
        rows.append(row)
        if args.fd > 0:
            fd_rows.append(directional_fd(trainer, batch, labels[i:i + 1], probe["grad/W_in"][i], args.fd,
                                          res.gradients.W_in, tau))
        print(f"{i:>6} {int(row[0]):>9}/{int(row[1]):<9} {row[2]:>10.3f} " +
              " ".join(f"{row[3 + 2 * j]:>10.3f} {row[4 + 2 * j]:>10.3f}" for j in range(len(NAMES))), flush=True)
    r = np.array(rows, np.float64)
    print(f"{'median':>6} {'':>19} {nanmedian(r[:, 2]):>10.3f} " +
          " ".join(f"{nanmedian(r[:, 3 + 2 * j]):>10.3f} {nanmedian(r[:, 4 + 2 * j]):>10.3f}"
                   for j in range(len(NAMES))))
    if args.fd > 0:
        print(f"\nalong mlGeNN's W_in gradient (unit step), central difference of the loss, step {args.fd:g}:")
        print(f"{'sample':>6} {'FD':>11} {'ours':>11} {'mlGeNN':>11} {'ours/FD':>8} {'mlGeNN/FD':>9}")
        for i, (fd, ours, theirs) in enumerate(fd_rows):
            if fd is None:
                print(f"{i:>6}  (a spike count changed or the steps disagree: no FD)")
            else:
                print(f"{i:>6} {fd:>11.4e} {ours:>11.4e} {theirs:>11.4e} {ours / fd:>8.3f} {theirs / fd:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
