"""Train this project's network from given initial weights, e.g. mlGeNN's own draw
(`benchmarks/mlgenn_reference.py --save-init`), so the two engines can start from the same network.

    python benchmarks/from_weights.py --init runs/mlgenn_init_s1.npz --dataset data_cache/tts-words/tts_words_train.h5 \
        --n-hidden 256 --batch-size 1 --no-warmup --epochs 3 --validation-fraction 0 --reg-strength 5e-9 \
        --out-dir runs/ours_from_mlgenn_s1

The options after --init are `eventprop-lab train`'s. Without --init the run draws its own weights,
as `eventprop-lab train` would; --save-init writes them (W_in, W_rec, W_out) for mlGeNN's --init.
Prints one line per epoch, with the test accuracy after it (as mlgenn_reference.py does); the run folder is as
`eventprop-lab train` writes it."""
import argparse
import sys

import numpy as np

from eventprop_lab.cli import ProgressPrinter, add_config_options, configs_from_args
from eventprop_lab.network import atomic_write
from eventprop_lab.observe import export_csv
from eventprop_lab.run import TrainingRun

NAMES = ("W_in", "W_rec", "W_out")


def load_init(path, params):
    """params with W_in, W_rec, W_out from an .npz (plain keys or a checkpoint's params/W_in);
    ValueError naming what is missing or of the wrong shape."""
    with np.load(path, allow_pickle=False) as f:
        new = {}
        for name in NAMES:
            key = name if name in f.files else f"params/{name}"
            if key not in f.files:
                raise ValueError(f"{path} has no {name} (keys: {', '.join(f.files)})")
            w = np.asarray(f[key], params.W_in.dtype)
            want = getattr(params, name).shape
            if w.shape != want:
                raise ValueError(f"{path}: {name} has shape {w.shape}; this network needs {want}")
            new[name] = w
    return params._replace(**new)


def slope_as_mlgenn(engine, params):
    """Wrap engine.backward so it sees mlGeNN's estimate of each hidden spike's I - V: I at the
    start of the spike's step (the exact I at the crossing, grown back over the rest of the step
    with tau_s, arrivals in the step left out) minus V at the step's end (threshold plus the
    overshoot over the lag at the crossing's slope)."""
    backward = engine.backward
    tau_s, tau_m = float(params.tau_syn[0]), float(params.tau_mem[0])

    def biased(p, batch, record, source, **kwargs):
        slope, lag = record.spike_slope.copy(), record.spike_lag
        used = np.arange(slope.shape[1])[None, :] < np.asarray(record.n_spikes)[:, None]  # the rest is scratch
        s, d = slope[used].astype(np.float64), lag[used].astype(np.float64)
        i_start = (s + 1.0) * np.exp((batch.dt - d) / tau_s)
        v_end = 1.0 + d * s / tau_m
        slope[used] = np.maximum(i_start - v_end, 1e-3)
        record = record._replace(spike_slope=slope)
        return backward(p, batch, record, source, **kwargs)

    engine.backward = biased


def late_gradient(optimiser):
    """Make optimiser.step apply the gradient it was given at its previous call (nothing at the first)."""
    step, held = optimiser.step, {}

    def late(params, grads, lr=None):
        previous = dict(held)
        held.clear()
        held.update(grads)
        return step(params, previous, lr=lr) if previous else []

    optimiser.step = late


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init", default=None, help=".npz with W_in, W_rec, W_out (or params/W_in, ...)")
    ap.add_argument("--save-init", default=None, help="write the initial weights to this .npz")
    ap.add_argument("--evaluate-only", action="store_true",
                    help="do not train: accuracy, loss and hidden rate of the weights on the train and test sets")
    ap.add_argument("--adam-eps", type=float, default=None,
                    help="Adam's epsilon (default 1e-8; mlGeNN's 1e-8 acts as 2e-7 here, its gradients lack "
                         "our factor tau_m = 20)")
    ap.add_argument("--min-slope", type=float, default=None,
                    help="floor on I - threshold at a hidden spike in the backward pass (numba engine; default "
                         "1e-3): a larger floor caps the jump of near-grazing spikes, a biased gradient")
    ap.add_argument("--slope-as-mlgenn", action="store_true",
                    help="a biased gradient, for comparison: the backward pass divides each hidden spike's jump by "
                         "mlGeNN's grid estimate of I - V (I at the step's start, V at its end) instead of the exact "
                         "I - threshold at the crossing")
    ap.add_argument("--late-gradient", action="store_true",
                    help="apply each batch's gradient one batch late, as mlGeNN does (its backward pass of "
                         "example n runs during the forward pass of example n + 1)")
    add_config_options(ap)
    args = ap.parse_args(argv)
    c = configs_from_args(args, ap)
    if c["network"].delay_line or c["network"].heterogeneous_tau:
        ap.error("the weights of mlGeNN's reference network are plain: drop --delay-line and --heterogeneous-tau")
    run = TrainingRun(c["run"], c["network"], c["training"], c["augment"], observers=[ProgressPrinter()])
    params = run.trainer.params
    if args.slope_as_mlgenn:
        slope_as_mlgenn(run.trainer.engine, run.trainer.params)
    if args.late_gradient:
        late_gradient(run.trainer.optimiser)
    if args.min_slope is not None:
        run.trainer.engine.min_slope = args.min_slope
    if args.adam_eps is not None:
        run.trainer.optimiser.eps = args.adam_eps
    if args.init:
        try:
            run.trainer.params = load_init(args.init, params)
        except ValueError as exc:
            ap.error(str(exc))
        print(f"initial weights from {args.init}", flush=True)
    if args.save_init:
        p = run.trainer.params
        atomic_write(args.save_init, lambda f: np.savez(f, **{n: getattr(p, n) for n in NAMES}))
        print(f"initial weights in {args.save_init}", flush=True)
    if args.evaluate_only:
        for name, data in (("train", run.train_set), ("test", run.test_set)):
            res = run.evaluate(data)
            print(f"{name}: accuracy {res['accuracy']:.3f}, loss {res['loss']:.4f}, hidden {res['rate_hz']:.1f} Hz",
                  flush=True)
        return 0
    for epoch in range(1, run.run_cfg.epochs + 1):
        run.fit(epoch)
        res = run.evaluate(run.test_set)
        print(f"epoch {epoch:>3}  test acc {res['accuracy']:.3f}  hidden {res['rate_hz']:.1f} Hz", flush=True)
    export_csv(run.out / "metrics.jsonl", run.out / "epochs.csv")
    summary = run.write_summary()
    print(f"test (last weights): accuracy {summary['test_accuracy_last']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
