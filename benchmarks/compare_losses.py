"""Accuracy and hidden activity per loss, with and without shift + blend, on the embedded data.

Each cell is one `eventprop-lab train` run (same seed, network and schedule for every loss), so
the table can be reproduced run by run. Prints a markdown table; run folders go to --out.

    python benchmarks/compare_losses.py --epochs 15 --hidden 128
"""
import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

LOSSES = ["sum", "sum_exp", "max", "first_spike", "avg_xentropy"]


def last_epoch(run_dir):
    """The last epoch's record, with the best validation accuracy of the run added."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    return dict(epochs[-1], best_validation_accuracy=max(r.get("validation_accuracy", 0) for r in epochs))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--losses", nargs="+", default=LOSSES)
    ap.add_argument("--out", default="runs/compare")
    args = ap.parse_args()
    exe = Path(sys.executable).with_name("eventprop-lab")
    rows = []
    for loss, augmented in itertools.product(args.losses, (False, True)):
        run_dir = Path(args.out) / f"{loss}{'-shift-blend' if augmented else ''}"
        cmd = [str(exe), "train", "--dataset", "randman-shd", "--loss", loss, "--epochs", str(args.epochs),
               "--n-hidden", str(args.hidden), "--lr", str(args.lr), "--seed", str(args.seed),
               "--probe-every", "0", "--out-dir", str(run_dir)]
        if augmented:
            cmd += ["--shift", "--blend"]
        print("$", " ".join(cmd[1:]), flush=True)
        t0 = time.time()
        out = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.time() - t0
        if out.returncode != 0:
            print(out.stdout[-2000:], out.stderr[-2000:], flush=True)
            rows.append((loss, augmented, None, None, wall))
            continue
        test = [line for line in out.stdout.splitlines() if line.startswith("test")]
        test_acc = float(test[-1].rsplit(" ", 1)[-1]) if test else float("nan")
        rows.append((loss, augmented, last_epoch(run_dir), test_acc, wall))
        print(out.stdout.splitlines()[-3], flush=True)
    print(f"\n| loss | shift+blend | train acc (last) | best val acc | test acc (last) | hidden Hz (last) | silent (last) | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for loss, augmented, ep, test_acc, wall in rows:
        if ep is None:
            print(f"| {loss} | {'yes' if augmented else 'no'} | failed | | | | | {wall:.0f} |")
            continue
        print(f"| {loss} | {'yes' if augmented else 'no'} | {ep['train_accuracy']:.3f} | "
              f"{ep['best_validation_accuracy']:.3f} | {test_acc:.3f} | "
              f"{ep.get('validation_rate_hz', float('nan')):.1f} | {ep.get('validation_silent_fraction', float('nan')):.0%} | "
              f"{wall:.0f} |")


if __name__ == "__main__":
    main()
