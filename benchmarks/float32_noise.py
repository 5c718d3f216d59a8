"""How far the engine's float32 gradients are from its float64 ones on an SHD-sized network.

The same weights and batch in both precisions (700 inputs -> 256 recurrent -> 20 readouts, dt 1 ms,
1 s trials, randman-shd samples): per parameter, the relative L2 difference of the gradients and
their cosine, and how many hidden spikes differ (a spike that moves across a step boundary in one
precision changes the gradient by more than rounding). Several batches, so the spread shows.

    python benchmarks/float32_noise.py --batches 4 --batch-size 32 --loss sum_exp
"""
import argparse

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--loss", default="sum_exp")
    ap.add_argument("--hidden", type=int, default=256)
    args = ap.parse_args(argv)

    from kernels import get_engine, make_batch

    from eventprop_lab.data.sources import load_dataset
    from eventprop_lab.gradient import loss_and_gradients
    from eventprop_lab.losses import get_loss
    from eventprop_lab.network import NetworkConfig, init_params
    from eventprop_lab.regularisers import SpikeCountRegulariser

    data = load_dataset("randman-shd").train
    net = NetworkConfig(n_in=data.n_channels, n_out=data.n_classes, n_hidden=args.hidden)
    engine, loss = get_engine("numba"), get_loss(args.loss)
    reg = SpikeCountRegulariser(14.0, 1e-8, 1e-8)
    rng = np.random.default_rng()
    rows = {}
    spikes_differ = []
    for b in range(args.batches):
        p32 = init_params(net, rng=int(rng.integers(1 << 30)))
        p64 = type(p32)(*[None if x is None else x.astype(np.float64) for x in p32])
        idx = rng.choice(len(data), args.batch_size, replace=False)
        samples, labels = data.samples(idx), data.labels[idx]
        batch = make_batch(samples, data.n_channels, 1.0, 1000)
        r32 = loss_and_gradients(engine, p32, batch, labels, loss, reg)
        r64 = loss_and_gradients(engine, p64, batch, labels, loss, reg)
        spikes_differ.append(abs(int(r32.record.n_spikes.sum()) - int(r64.record.n_spikes.sum()))
                             / max(1, int(r64.record.n_spikes.sum())))
        for name, g64 in r64.gradients._asdict().items():
            if g64 is None:
                continue
            g32 = getattr(r32.gradients, name).astype(np.float64)
            rel = np.linalg.norm(g32 - g64) / max(np.linalg.norm(g64), 1e-300)
            cos = float(np.sum(g32 * g64) / max(np.linalg.norm(g32) * np.linalg.norm(g64), 1e-300))
            rows.setdefault(name, []).append((rel, cos))
    print(f"{args.batches} batches of {args.batch_size}, {args.hidden} hidden, loss {args.loss}; "
          f"spike count differs by {np.median(spikes_differ):.2%} (median), {max(spikes_differ):.2%} (max)")
    print("| parameter | relative difference, median (max) | cosine, min |")
    print("|---|---|---|")
    for name, vals in rows.items():
        rel, cos = np.array(vals).T
        print(f"| {name} | {np.median(rel):.2e} ({rel.max():.2e}) | {cos.min():.6f} |")


if __name__ == "__main__":
    main()
