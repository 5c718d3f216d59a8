"""The PyTorch BPTT baseline trained on a dataset, on the same split as `eventprop-lab train`, for
accuracy against wall-clock (issue "The paper's findings on real speech").

    python benchmarks/bptt_baseline.py --dataset data_cache/tts-words/tts_words_train.h5 --minutes 10 \
        --out runs/bptt/epochs.csv

The network and scheme are bench_engine.py's `Bptt` (700 → 256 recurrent LIF → 20 LI readouts,
fast-sigmoid surrogate, Adam, batch 32), with
the initial weights of `init_params` for the same seed. The validation split is the one a run with
the same --seed and --validation-fraction holds out. Per epoch: train, validation and test
accuracy and the wall seconds so far (training and validation; the test evaluation is left out of
the clock, as `eventprop-lab train` leaves it out). Stops after --epochs or when --minutes are
spent, whichever comes first. --readout picks the statistic the cross-entropy takes: the mean
readout voltage (`sum`'s), its e^(-t/T)-weighted mean (`sum_exp`'s) or its maximum over time (the
usual surrogate-gradient choice on SHD). Needs torch (`pip install -e '.[bench]'`)."""
import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_engine as be  # noqa: E402


def accuracy(bptt, data, batch_size=64):
    torch = bptt.torch
    correct = 0
    with torch.no_grad():
        for s in range(0, len(data), batch_size):
            idx = np.arange(s, min(s + batch_size, len(data)))
            stat, _ = bptt.forward(be.Bptt.dense_input(data.samples(idx), int(be.T_MS)))
            correct += int((stat.argmax(1).numpy() == data.labels[idx]).sum())
    return correct / max(len(data), 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--validation-fraction", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--readout", choices=be.Bptt.READOUTS, default="mean",
                    help="statistic of the readout voltage the cross-entropy takes (default: mean)")
    ap.add_argument("--lr", type=float, default=be.LR, help=f"Adam learning rate (default: {be.LR:g})")
    ap.add_argument("--out", default=None, help="CSV of per-epoch results")
    args = ap.parse_args(argv)

    import torch

    from eventprop_lab.data.sources import load_dataset
    from eventprop_lab.data.splits import train_validation_split
    from eventprop_lab.network import NetworkConfig, init_params

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    splits = load_dataset(args.dataset)
    train, test = splits.train, splits.test
    tr, va = train_validation_split(train, args.validation_fraction, np.random.default_rng(args.seed))
    train, validation = train.subset(tr), train.subset(va)
    if (train.n_channels, train.n_classes) != (be.N_IN, be.N_OUT):
        sys.exit(f"the baseline is built for {be.N_IN} channels and {be.N_OUT} classes; "
                 f"{args.dataset} has {train.n_channels} and {train.n_classes}")
    params = init_params(NetworkConfig(n_in=be.N_IN, n_hidden=be.N_HID, n_out=be.N_OUT), rng=args.seed)
    first = np.arange(min(args.batch_size, len(train)))
    bptt = be.Bptt(params, train.samples(first), train.labels[first], readout=args.readout, lr=args.lr)
    rng = np.random.default_rng(args.seed)
    rows, wall, budget = [], 0.0, args.minutes * 60
    print(f"BPTT: {len(train)} train, {len(validation)} validation, {len(test)} test; "
          f"{args.threads} threads; readout {args.readout}, lr {args.lr:g}", flush=True)
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        order = rng.permutation(len(train))
        for s in range(0, len(order), args.batch_size):
            idx = np.sort(order[s:s + args.batch_size])
            bptt.x = be.Bptt.dense_input(train.samples(idx), int(be.T_MS))
            bptt.labels = torch.as_tensor(train.labels[idx])
            bptt.step(record=False)
        train_s = time.perf_counter() - t0
        val = accuracy(bptt, validation)
        wall += time.perf_counter() - t0
        test_acc = accuracy(bptt, test) if test is not None and len(test) else float("nan")
        rows.append({"epoch": epoch, "validation_accuracy": val, "test_accuracy": test_acc, "train_seconds": train_s,
                     "wall_s": wall})
        print(f"epoch {epoch:>3}  val acc {val:.3f}  test acc {test_acc:.3f}  ({train_s:.0f} s training, "
              f"{wall:.0f} s in all)", flush=True)
        if wall > budget:
            break
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out + ".tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, args.out)
    best = max(rows, key=lambda r: r["validation_accuracy"])
    print(f"best validation {best['validation_accuracy']:.3f} at epoch {best['epoch']} ({best['wall_s']:.0f} s); "
          f"test at best validation {best['test_accuracy']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
