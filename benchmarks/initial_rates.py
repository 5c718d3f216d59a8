"""Hidden activity of freshly initialised networks, before any learning: mean rate, the spread
over neurons, and the share of neurons silent on a batch, for the initialisations the spec and
the reference codes use (with and without the delay line, homogeneous or heterogeneous tau).

    python benchmarks/initial_rates.py --hidden 128 --samples 64
    python benchmarks/initial_rates.py --dataset data_cache/tts-digits/tts_digits_train.h5
"""
import argparse

import numpy as np

CASES = {
    "plain": {},
    "plain-het": {"heterogeneous_tau": True},
    "delay R (11 copies, /10)": {"delay_line": True},
    "delay R het": {"delay_line": True, "heterogeneous_tau": True},
    "plain-het-norm": {"heterogeneous_tau": True, "het_weight_norm": True},
    "delay R het-norm": {"delay_line": True, "heterogeneous_tau": True, "het_weight_norm": True},
    "delay M (10 copies, x1)": {"delay_line": True, "include_undelayed": False, "_scale": 10.0},
    "delay M het": {"delay_line": True, "include_undelayed": False, "heterogeneous_tau": True, "_scale": 10.0},
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="randman-shd")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cases", nargs="+", default=list(CASES))
    ap.add_argument("--w-in-scale", type=float, nargs="+", default=[1.0],
                    help="factors on the input-weight mean and std (each is a row)")
    args = ap.parse_args(argv)

    from kernels import get_engine, make_batch
    from eventprop_lab.data.sources import load_dataset
    from eventprop_lab.network import NetworkConfig, init_params
    from eventprop_lab.run import make_delay_line

    data = load_dataset(args.dataset).train
    idx = np.random.default_rng(0).permutation(len(data))[:args.samples]
    raw = data.samples(np.sort(idx))
    n_events = np.mean([len(t) for t, _ in raw])
    print(f"{args.dataset}: {len(data)} training samples, {n_events:.0f} input spikes per sample, "
          f"{args.hidden} hidden; target nu = 14 spikes per trial")
    engine = get_engine("numba")
    print(f"{'case':28s} {'Hz':>6s} {'p10':>6s} {'p50':>6s} {'p90':>6s} {'silent/batch':>12s} {'>50 Hz':>7s}")
    for case, w_scale in [(c, w) for c in args.cases for w in args.w_in_scale]:
        opts = dict(CASES[case])
        scale = opts.pop("_scale", 1.0) * w_scale
        rows, fits = [], []
        for seed in args.seeds:
            net = NetworkConfig(n_in=data.n_channels, n_hidden=args.hidden, n_out=data.n_classes, **opts)
            net.w_in_mean *= scale
            net.w_in_std *= scale
            p = init_params(net, rng=seed)
            dl = make_delay_line(net, 1000.0)
            samples = raw if dl is None else [dl(t, c) for t, c in raw]
            batch = make_batch(samples, p.n_in, 1.0, 1000)
            rec = engine.forward(p, batch)
            per_neuron = rec.counts.mean(0)  # spikes per trial = Hz at T = 1 s
            rows.append((per_neuron.mean(), *np.percentile(per_neuron, [10, 50, 90]),
                         (rec.counts.sum(0) == 0).mean(), (per_neuron > 50).mean()))
            if net.heterogeneous_tau:  # what sets a neuron's rate: log rate ~ log tau_syn, log tau_mem
                X = np.c_[np.log(p.tau_syn), np.log(p.tau_mem), np.ones(p.n_hidden)]
                fits.append(np.linalg.lstsq(X, np.log(per_neuron + 1.0), rcond=None)[0][:2])
        r = np.mean(rows, 0)
        label = case if w_scale == 1.0 else f"{case} x{w_scale:g}"
        fit = f"  rate ~ tau_syn^{np.mean(fits, 0)[0]:.2f} tau_mem^{np.mean(fits, 0)[1]:.2f}" if fits else ""
        print(f"{label:28s} {r[0]:6.1f} {r[1]:6.1f} {r[2]:6.1f} {r[3]:6.1f} {r[4]:12.0%} {r[5]:7.0%}{fit}", flush=True)


if __name__ == "__main__":
    main()
