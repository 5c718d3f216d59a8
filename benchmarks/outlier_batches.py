"""Catch the batches whose gradient is an outlier and ask whether the network or the grid made it.

Goes on training from a run's checkpoint (in a scratch folder: the run itself is not touched),
and for every batch whose gradient norm is above FACTOR times the median of the last 100, takes
the weights it was computed on and reports:
- the share of the batch's norm in its largest sample, and that sample's norm against the median;
- its hidden spikes: how many started their step over threshold (crossing lag = dt: a kick the
  grid did not place at its crossing; with the in-step order only its fallback cases, with
  --no-in-step-order in the run every kick), how many have their slope at a floor, the smallest;
- the same batch's gradient on finer grids (--dts): norm, and cosine to the finest one.
If the finer grids agree with each other and not with dt = 1 ms, the outlier belongs to the grid.

    python benchmarks/outlier_batches.py runs/paper/last.npz --batches 300 --factor 20
"""
import argparse
import pickle
import tempfile

import numpy as np


def _norm(grads):
    return float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grads.values())))


def _flat(grads):
    return np.concatenate([np.ravel(grads[k]).astype(np.float64) for k in sorted(grads)])


def gradient(run, params, samples, labels, dt):
    from kernels import make_batch

    from eventprop_lab.gradient import loss_and_gradients

    tr = run.trainer
    n_steps = int(round(run.training.trial_ms / dt))
    batch = make_batch(samples, params.n_in, dt, n_steps)
    res = loss_and_gradients(tr.engine, params, batch, labels, tr.loss, tr.regulariser,
                             train_tau=run.training.train_tau)
    return {k: v for k, v in res.gradients._asdict().items() if v is not None}, res.record


def spike_table(record, dt, min_slope, kick_min_slope):
    """Kicked, floored and smallest slopes of a forward record's hidden spikes."""
    n = record.n_spikes
    lag = np.concatenate([record.spike_lag[s, :n[s]] for s in range(len(n))])
    slope = np.concatenate([record.spike_slope[s, :n[s]] for s in range(len(n))])
    kicked = lag >= dt * (1 - 1e-6)
    return {"spikes": len(lag), "kicked": float(kicked.mean()) if len(lag) else 0.0,
            "at_floor": int(np.sum(np.isclose(slope, min_slope)) + np.sum(kicked & np.isclose(slope, kick_min_slope))),
            "min_slope_free": float(slope[~kicked].min()) if (~kicked).any() else float("nan")}


def analyse(run, params, samples, labels, dts):
    engine = run.trainer.engine
    g1, rec = gradient(run, params, samples, labels, run.training.dt)
    per_sample = []
    for i in range(len(samples)):
        gi, _ = gradient(run, params, samples[i:i + 1], labels[i:i + 1], run.training.dt)
        per_sample.append(_norm(gi))
    per_sample = np.array(per_sample)
    worst = int(np.argmax(per_sample))
    print(f"  batch norm {_norm(g1):.3g}; per sample: largest {per_sample[worst]:.3g} (sample {worst}), "
          f"next {np.sort(per_sample)[-2]:.3g}, median {np.median(per_sample):.3g}")
    t = spike_table(rec, run.training.dt, engine.min_slope, engine.kick_min_slope)
    print(f"  hidden spikes {t['spikes']}: kicked {t['kicked']:.1%}, at a floor {t['at_floor']}, "
          f"smallest slope of a crossing inside its step {t['min_slope_free']:.3g}")
    per_name = {k: float(np.linalg.norm(v)) for k, v in g1.items()}
    print("  norm by parameter: " + ", ".join(f"{k} {v:.3g}" for k, v in per_name.items()))
    ladder = {}
    for dt in dts:
        g, r = gradient(run, params, samples, labels, dt)
        ladder[dt] = (g, spike_table(r, dt, engine.min_slope, engine.kick_min_slope))
    finest = _flat(ladder[min(dts)][0])
    for dt in [run.training.dt] + list(dts):
        g, tab = (g1, t) if dt == run.training.dt else ladder[dt]
        f = _flat(g)
        cos = float(f @ finest / (np.linalg.norm(f) * np.linalg.norm(finest) + 1e-300))
        ws, _ = gradient(run, params, samples[worst:worst + 1], labels[worst:worst + 1], dt)
        print(f"  dt {dt:5.3g} ms: norm {_norm(g):9.3g}, cosine to dt {min(dts):g}: {cos:+.3f}; "
              f"kicked {tab['kicked']:.1%}; worst sample's norm {_norm(ws):.3g}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="a run's checkpoint (last.npz, best.npz)")
    ap.add_argument("--batches", type=int, default=200, help="batches to train from the checkpoint")
    ap.add_argument("--factor", type=float, default=20.0, help="an outlier's norm against the recent median")
    ap.add_argument("--dts", default="0.5,0.25,0.1", help="finer grids to compare with (ms)")
    ap.add_argument("--max-outliers", type=int, default=3)
    ap.add_argument("--save", metavar="PREFIX", help="also pickle each outlier's (params, samples, labels) to PREFIX-N.pkl")
    args = ap.parse_args(argv)
    dts = [float(x) for x in args.dts.split(",")]

    from eventprop_lab.run import TrainingRun

    scratch = tempfile.mkdtemp(prefix="outliers-")
    run = TrainingRun.from_checkpoint(args.checkpoint, **{"run.out_dir": scratch})
    tr = run.trainer
    train_batch = tr.train_batch
    found = []

    def watched(samples, labels, probe_samples=()):
        params, history = tr.params, list(tr.clip.history)
        metrics, res = train_batch(samples, labels, probe_samples)
        median = np.median(history[-100:]) if len(history) >= 10 else np.nan
        if metrics["grad_norm"] > args.factor * median and len(found) < args.max_outliers:
            found.append((run.epoch + 1, len(found)))
            print(f"epoch {run.epoch + 1} step {run.step + 1}: norm {metrics['grad_norm']:.3g} = "
                  f"{metrics['grad_norm'] / median:.0f}x the median {median:.3g}; "
                  f"{metrics['rate_hz']:.1f} Hz, {metrics['silent_fraction']:.0%} silent")
            if args.save:
                with open(f"{args.save}-{len(found)}.pkl", "wb") as f:
                    pickle.dump((params, list(samples), np.asarray(labels)), f)
            analyse(run, params, list(samples), np.asarray(labels), dts)
        return metrics, res

    tr.train_batch = watched
    done = 0
    while done < args.batches and len(found) < args.max_outliers:
        epoch = run.begin_epoch()
        while not epoch.done and done < args.batches and len(found) < args.max_outliers:
            epoch.train_next_batch()
            done += 1
        if epoch.done:
            epoch.finish()
    print(f"{done} batches from {args.checkpoint}: {len(found)} outliers above {args.factor:g}x the median")


if __name__ == "__main__":
    main()
