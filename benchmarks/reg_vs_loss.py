"""Can the spike-count regulariser hold the hidden rate against the loss? Its share of the input
weight gradient, neuron by neuron, at initialisation.

For one batch the W_in gradient is computed three ways: loss only, regulariser only, both. Per
hidden neuron the column sum of the gradient says which way descent moves its total input drive
(positive: down). Printed: for neurons above and below the target nu, how often the regulariser
alone and the full gradient push the drive the right way, and the ratio of regulariser to loss
gradient (RMS over the neuron's input weights). Adam normalises each weight's step, so where this
ratio is well above 1 the regulariser sets the direction and the rate can move by about
lr * n_inputs of summed weight per batch; where it is well below 1 it barely acts.

    python benchmarks/reg_vs_loss.py --hidden 128 --reg 1e-8
    python benchmarks/reg_vs_loss.py --delay-line --het --reg 1e-8
"""
import argparse

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="randman-shd")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reg", type=float, nargs="+", default=[1e-9, 1e-8, 1e-7, 1e-6])
    ap.add_argument("--nu", type=float, default=14.0)
    ap.add_argument("--delay-line", action="store_true")
    ap.add_argument("--het", action="store_true")
    ap.add_argument("--no-recurrent", action="store_true")
    ap.add_argument("--het-weight-norm", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--loss", default="sum_exp")
    ap.add_argument("--checkpoint", help="a run's checkpoint (.npz or run folder): its weights instead of a fresh init")
    args = ap.parse_args(argv)

    from kernels import LossSource, get_engine, make_batch
    from eventprop_lab.data.sources import load_dataset
    from eventprop_lab.losses import get_loss
    from eventprop_lab.network import NetworkConfig, init_params
    from eventprop_lab.regularisers import SpikeCountRegulariser
    from eventprop_lab.run import make_delay_line

    data = load_dataset(args.dataset).train
    idx = np.sort(np.random.default_rng(args.seed).permutation(len(data))[:args.batch])
    raw, labels = data.samples(idx), data.labels[idx]
    net = NetworkConfig(n_in=data.n_channels, n_hidden=args.hidden, n_out=data.n_classes,
                        delay_line=args.delay_line, heterogeneous_tau=args.het,
                        recurrent=not args.no_recurrent, het_weight_norm=args.het_weight_norm)
    p = init_params(net, rng=args.seed)
    if args.checkpoint:
        from pathlib import Path

        from eventprop_lab.run import load_checkpoint

        ck = Path(args.checkpoint)
        p, state, _ = load_checkpoint(ck / "last.npz" if ck.is_dir() else ck)
        saved = state["config"]["network"]
        for k in ("delay_line", "n_delays", "delay_ms", "include_undelayed"):
            setattr(net, k, saved[k])
        print(f"weights of {args.checkpoint} after epoch {state['epoch']}: |W_out| RMS {np.sqrt((p.W_out**2).mean()):.3f}")
    dl = make_delay_line(net, 1000.0)
    samples = raw if dl is None else [dl(t, c) for t, c in raw]
    batch = make_batch(samples, p.n_in, 1.0, 1000)
    engine = get_engine("numba")
    loss = get_loss(args.loss)
    rec = engine.forward(p, batch, **loss.record_options())
    res = loss.evaluate(rec, labels, p)
    zero = LossSource(dl_dmean=np.zeros_like(res.source.dl_dmean))
    g_loss = engine.backward(p, batch, rec, res.source)[0].W_in
    n_mean = rec.counts.mean(0)
    above = n_mean > args.nu
    rms_loss = np.sqrt((g_loss**2).mean(0))
    print(f"{args.dataset}, delay line {args.delay_line}, het tau {args.het}: mean {n_mean.mean():.1f} spikes/trial; "
          f"{above.mean():.0%} of neurons above nu = {args.nu:g}, {(n_mean == 0).mean():.0%} silent in the batch")
    print(f"loss only: column sum > 0 (descent lowers drive) for {(g_loss.sum(0) > 0)[above].mean():.0%} of those "
          f"above nu and {(g_loss.sum(0) > 0)[~above].mean():.0%} of those below")
    print(f"{'reg':>8s} {'|reg|/|loss| med':>16s} {'right way (reg only)':>21s} {'right way (both)':>17s} "
          f"{'|reg|/|loss| above':>19s} {'below':>7s}")
    for c in args.reg:
        reg = SpikeCountRegulariser(args.nu, c, c)
        g_reg = engine.backward(p, batch, rec, zero, reg_jump=reg.jump(rec.counts))[0].W_in
        g_both = g_loss + g_reg
        # right way: descent lowers the drive of neurons above nu (sum > 0) and raises it below
        right_reg = np.where(above, g_reg.sum(0) > 0, g_reg.sum(0) < 0)
        right_both = np.where(above, g_both.sum(0) > 0, g_both.sum(0) < 0)
        spiking = n_mean > 0
        ratio = np.sqrt((g_reg**2).mean(0)) / np.maximum(rms_loss, 1e-30)
        print(f"{c:8.0e} {np.median(ratio[spiking]):16.3g} {right_reg[spiking].mean():21.0%} "
              f"{right_both[spiking].mean():17.0%} {np.median(ratio[above & spiking]) if (above & spiking).any() else np.nan:19.3g} "
              f"{np.median(ratio[~above & spiking]) if (~above & spiking).any() else np.nan:7.3g}", flush=True)


if __name__ == "__main__":
    main()
