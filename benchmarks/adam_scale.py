"""How large are our gradients next to Adam's epsilon, and what would epsilon do at the reference
codes' gradient scale?

The reference codes (genn_eventprop, mlGeNN) put an extra 1/tau_m on every readout source, so their
loss gradients are ours / tau_m (20x smaller at 20 ms). Adam is scale-invariant except for
epsilon: a reference step is lr * m / (sqrt(v) + eps) on gradients g / tau_m, which in our units is
lr * m / (sqrt(v) + eps * tau_m). This trains a small network and, after each epoch, prints per
parameter the distribution of sqrt(v_hat) and the step damping eps would give at our scale and at
theirs: damping = sqrt(v_hat) / (sqrt(v_hat) + eps), averaged weighted by |m_hat| / sqrt(v_hat)
(each weight's share of the undamped step).

    python benchmarks/adam_scale.py --epochs 4 --hidden 128 --max-train-samples 1000
"""
import argparse
import json
import time

import numpy as np


def damping_stats(opt, eps_values):
    out = {}
    c1 = 1 - opt.beta1**opt.t
    c2 = 1 - opt.beta2**opt.t
    for name, v in opt.v.items():
        sv = np.sqrt(np.asarray(v, np.float64) / c2).ravel()
        m = np.abs(np.asarray(opt.m[name], np.float64).ravel()) / c1
        share = np.where(sv > 0, m / np.maximum(sv, 1e-300), 0.0)
        row = {"sqrt_v_p10": float(np.percentile(sv, 10)), "sqrt_v_p50": float(np.median(sv)),
               "sqrt_v_p90": float(np.percentile(sv, 90)), "frac_zero": float((sv == 0).mean())}
        for label, eps in eps_values.items():
            d = sv / (sv + eps)
            row[f"damp_{label}"] = float((d * share).sum() / max(share.sum(), 1e-300))
        out[name] = row
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--max-train-samples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dataset", default="randman-shd")
    ap.add_argument("--extra", default="", help="more settings: section.name=value,... (JSON values)")
    ap.add_argument("--out", default=None, help="write the per-epoch records as JSON lines here")
    args = ap.parse_args(argv)

    from eventprop_lab.config import SECTIONS
    from eventprop_lab.run import TrainingRun

    c = {sec: cls() for sec, cls in SECTIONS.items()}
    c["run"].dataset = args.dataset
    c["run"].epochs = args.epochs
    c["run"].max_train_samples = args.max_train_samples
    c["run"].out_dir = "/tmp/adam_scale_run"
    c["run"].probe_every = 0
    c["network"].n_hidden = args.hidden
    c["training"].seed = args.seed
    c["training"].lr = args.lr
    for item in filter(None, args.extra.split(",")):
        key, value = item.split("=")
        sec, name = key.split(".")
        setattr(c[sec], name, json.loads(value))
    run = TrainingRun(c["run"], c["network"], c["training"], c["augment"])
    tau = float(np.mean(run.trainer.params.tau_mem_out))
    eps = run.trainer.optimiser.eps
    records = []
    t0 = time.time()
    for _ in range(args.epochs):
        s = run.train_epoch()
        stats = damping_stats(run.trainer.optimiser, {"ours": eps, "ref": eps * tau})
        rec = {"epoch": s["epoch"], "train_acc": s["train_accuracy"], "val_acc": s.get("validation_accuracy"),
               "rate_hz": s["train_rate_hz"], "silent": s["train_silent_fraction"], "stats": stats}
        records.append(rec)
        print(f"epoch {s['epoch']}: train acc {s['train_accuracy']:.3f} val {s.get('validation_accuracy', 0):.3f} "
              f"rate {s['train_rate_hz']:.1f} Hz silent {s['train_silent_fraction']:.0%} ({time.time() - t0:.0f} s)")
        for name, r in stats.items():
            print(f"   {name:8s} sqrt(v_hat) p10/50/90 {r['sqrt_v_p10']:.2e} {r['sqrt_v_p50']:.2e} "
                  f"{r['sqrt_v_p90']:.2e}  zero {r['frac_zero']:.0%}  step kept: ours {r['damp_ours']:.3f}, "
                  f"at reference scale {r['damp_ref']:.3f}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
