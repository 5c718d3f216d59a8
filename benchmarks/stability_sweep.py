"""Training stability across configurations, seeds and datasets: hidden rate, silent neurons,
NaN, accuracy.

Each cell of configurations x seeds x datasets is one `eventprop-lab train` subprocess with its
own run folder under --out; --workers of them run at once, each with NUMBA_NUM_THREADS=--threads.
At the end one table is printed (one row per configuration and dataset, over seeds) and written
as summary.csv + summary.md, with the per-run numbers in runs.csv. The table can be rebuilt from
the folders at any time, also from a sweep that was cut short:

    python benchmarks/stability_sweep.py                       # the default grid (16 cores, ~8 min)
    python benchmarks/stability_sweep.py --configs old-paper paper --seeds 1 --datasets randman-shd \
        --common "--epochs 1 --max-train-samples 64 --n-hidden 32" --workers 2 --threads 1 --out runs/sweep-tiny
    python benchmarks/stability_sweep.py --summarise runs/sweep
    python benchmarks/stability_sweep.py --config "mine=--preset paper --lr 5e-4" --seeds 1 2

A configuration is a name and a string of `eventprop-lab train` options; the named ones are in
CONFIGS below (--list shows them). Rates are the hidden layer's mean rate over each training
epoch (what the regulariser sees); "silent" is the share of hidden neurons that did not spike at
all in the epoch (what the silent-neuron lift acts on).
"""
import argparse
import csv
import io
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

# name -> options. "old-*" are the settings before docs/results.md "Why training was unstable";
# the others are what that section measured. Options given here are appended after --common.
CONFIGS = {
    # settings before the fix, pinned so later default changes do not move them
    "old-default": "--lr 2e-3 --reg-strength 1e-8 --lift-silent 0.002",
    "old-paper": "--lr 1e-3 --reg-strength 1e-8 --lift-silent 0.002 --delay-line --heterogeneous-tau "
                 "--no-het-weight-norm --shift --blend",
    "default": "--preset default",
    "paper": "--preset paper",
    # one change at a time on top of the preset
    "paper-lift0.002": "--preset paper --lift-silent 0.002",
    "paper-noreg": "--preset paper --reg-strength 0",
    "paper-reg3e-8": "--preset paper --reg-strength 3e-8",
    # input weights calibrated to a starting rate; Adam's rate for W_in scaled
    "paper-init14": "--preset paper --init-rate-hz 14",
    "paper-init14-lrs0.1": "--preset paper --init-rate-hz 14 --w-in-lr-scale 0.1",
    "paper-init14-reg3e-8": "--preset paper --init-rate-hz 14 --reg-strength 3e-8",
    "default-init14": "--preset default --init-rate-hz 14",
}
# sized for 16 cores and ~8 minutes: 8 configurations x 2 seeds = 16 runs at once, 1 thread each,
# each stopped after 400 s at the latest (the table reads what the epochs done left). On the
# spoken digits a paper-recipe epoch of 540 clips + 540 blends took 16-25 s on one shared core here.
DEFAULT_CONFIGS = ["old-paper", "paper", "paper-lift0.002", "paper-init14", "paper-init14-lrs0.1",
                   "paper-init14-reg3e-8", "old-default", "default-init14"]
DEFAULT_SEEDS = [1, 2]
DEFAULT_COMMON = "--n-hidden 128 --epochs 6 --max-train-samples 1200"
DEFAULT_WORKERS, DEFAULT_THREADS, DEFAULT_RUN_TIMEOUT = 16, 1, 400.0

TEST_PREFIX = "test (last weights):"
TTS = "data_cache/tts-digits/tts_digits_train.h5"  # the synthetic spoken digits of the issue


# ---- running -------------------------------------------------------------------------------
def dataset_tag(dataset):
    name = Path(dataset).name
    for suffix in (".h5", ".hdf5"):
        if name.endswith(suffix):
            name = name[:-len(suffix)]
    return name.replace("_train", "").replace(":", "-") or "data"


def plan(configs, seeds, datasets, common, out):
    cells = []
    for ds in datasets:
        for name, options in configs.items():
            for seed in seeds:
                run_dir = Path(out) / f"{name}__{dataset_tag(ds)}__s{seed}"
                args = ["train", "--dataset", ds, "--seed", str(seed), "--probe-every", "0",
                        "--out-dir", str(run_dir), *shlex.split(common), *shlex.split(options)]
                cells.append({"config": name, "options": options, "dataset": ds, "seed": seed,
                              "run_dir": str(run_dir), "args": args})
    return cells


def prepare(datasets):
    """Load every dataset once here: randman-shd is generated and cached on first use, and
    parallel runs must not all generate (and write) the same cache files at once."""
    from eventprop_lab.data.sources import load_dataset

    for ds in datasets:
        t0 = time.time()
        load_dataset(ds)
        print(f"dataset {ds} ready ({time.time() - t0:.0f} s)", flush=True)
    # one small training step compiles the numba kernels into their on-disk cache, so the runs
    # load them instead of each compiling them at once
    import numpy as np

    from eventprop_lab.network import NetworkConfig, init_params
    from eventprop_lab.toy import spike_patterns
    from eventprop_lab.training import Trainer, TrainingConfig

    t0 = time.time()
    samples, labels = spike_patterns(4, n_classes=2, n_channels=8, seed=0)
    trainer = Trainer(init_params(NetworkConfig(n_in=8, n_hidden=4, n_out=2), rng=0),
                      TrainingConfig(trial_ms=100.0, batch_size=4))
    trainer.train_batch(samples, np.asarray(labels, np.int64))
    print(f"kernels compiled ({time.time() - t0:.0f} s)", flush=True)


def command(cell):
    """The `eventprop-lab train ...` command line of a cell."""
    args = cell["args"]
    exe = Path(sys.executable).with_name("eventprop-lab")
    return ([str(exe)] if exe.exists() else [sys.executable, "-m", "eventprop_lab.cli"]) + args


def run_all(cells, workers, threads, run_timeout):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    pending, running = list(cells), []
    t_start = time.time()
    while pending or running:
        while pending and len(running) < workers:
            cell = pending.pop(0)
            d = Path(cell["run_dir"])
            d.mkdir(parents=True, exist_ok=True)
            for stale in ("metrics.jsonl", "epochs.csv", "result.json"):
                (d / stale).unlink(missing_ok=True)  # a rerun into the same folder starts clean
            (d / "sweep_cell.json").write_text(json.dumps({k: v for k, v in cell.items()}, indent=1))
            out, err = open(d / "stdout.log", "w"), open(d / "stderr.log", "w")
            proc = subprocess.Popen(command(cell), stdout=out, stderr=err, env=env)
            running.append((proc, cell, time.time(), out, err))
            print(f"[{time.time() - t_start:6.0f} s] start {d.name}", flush=True)
        time.sleep(0.5)
        for item in list(running):
            proc, cell, t0, out, err = item
            timed_out = run_timeout is not None and time.time() - t0 > run_timeout
            if timed_out and proc.poll() is None:
                proc.terminate()  # the run's own process only: its folder keeps the epochs done
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            if proc.poll() is None:
                continue
            out.close()
            err.close()
            running.remove(item)
            result = {"returncode": proc.returncode, "wall_s": time.time() - t0, "timed_out": timed_out}
            Path(cell["run_dir"], "result.json").write_text(json.dumps(result))
            print(f"[{time.time() - t_start:6.0f} s] done  {Path(cell['run_dir']).name} "
                  f"(rc {proc.returncode}{', timed out' if timed_out else ''}, {result['wall_s']:.0f} s)", flush=True)


# ---- reading -------------------------------------------------------------------------------
def _float(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def read_epochs(run_dir):
    """Epoch records from metrics.jsonl (torn or odd lines skipped), else from epochs.csv."""
    run_dir = Path(run_dir)
    records, events = [], []
    path = run_dir / "metrics.jsonl"
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(r, dict):
                continue
            if r.get("kind") == "epoch":
                records.append(r)
            elif r.get("kind") == "event":
                events.append(r)
    elif (run_dir / "epochs.csv").exists():
        with open(run_dir / "epochs.csv", newline="") as f:
            records = [{k: _float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    # a resumed run repeats epochs: keep the last record of each
    by_epoch = {}
    for r in records:
        by_epoch[int(_float(r.get("epoch", len(by_epoch) + 1)))] = r
    return [by_epoch[k] for k in sorted(by_epoch)], events


def _has_nan(epochs, events, stderr):
    for r in epochs:
        for k in ("train_loss", "validation_loss", "train_rate_hz"):
            if k in r and not math.isfinite(_float(r[k])):
                return True
    for e in events:
        if "nan" in json.dumps(e).lower() or "non-finite" in json.dumps(e).lower():
            return True
    return "FloatingPointError" in stderr or "is NaN" in stderr


def summarise_run(run_dir):
    run_dir = Path(run_dir)
    cell = {}
    if (run_dir / "sweep_cell.json").exists():
        cell = json.loads((run_dir / "sweep_cell.json").read_text())
    result = json.loads((run_dir / "result.json").read_text()) if (run_dir / "result.json").exists() else {}
    stdout = (run_dir / "stdout.log").read_text(errors="replace") if (run_dir / "stdout.log").exists() else ""
    stderr = (run_dir / "stderr.log").read_text(errors="replace") if (run_dir / "stderr.log").exists() else ""
    epochs, events = read_epochs(run_dir)
    name_parts = run_dir.name.split("__")
    rate = [_float(r.get("train_rate_hz")) for r in epochs]
    silent = [_float(r.get("train_silent_fraction")) for r in epochs]
    val = [_float(r.get("validation_accuracy")) for r in epochs]
    test = math.nan
    for line in stdout.splitlines():
        if line.startswith(TEST_PREFIX):
            test = _float(line.rsplit(" ", 1)[-1])
    summary = {}
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        pass
    if not math.isfinite(test):
        test = _float(summary.get("test_accuracy_last"))
    wall = _float(result.get("wall_s", summary.get("wall_s")))
    if not math.isfinite(wall) and epochs:  # a cut-short sweep: the epochs' own times
        wall = _float(epochs[-1].get("wall_s"))  # cumulative, where the run records it
        if not math.isfinite(wall):
            wall = sum(_float(r.get("epoch_seconds")) for r in epochs)
    at = lambda xs, i: xs[i] if -len(xs) <= i < len(xs) else math.nan  # noqa: E731
    finite = lambda xs: [x for x in xs if math.isfinite(x)]  # noqa: E731
    return {
        "config": cell.get("config", name_parts[0]),
        "dataset": dataset_tag(cell["dataset"]) if "dataset" in cell else (name_parts[1] if len(name_parts) > 1 else ""),
        "seed": cell.get("seed", name_parts[-1].lstrip("s") if len(name_parts) > 2 else ""),
        "epochs": len(epochs),
        "best_val_acc": max(finite(val), default=math.nan),
        "test_acc": test,
        "final_train_acc": _float(epochs[-1].get("train_accuracy")) if epochs else math.nan,
        "rate_e1": at(rate, 0), "rate_e5": at(rate, 4), "rate_last": at(rate, -1),
        "rate_max": max(finite(rate), default=math.nan),
        "silent_last": at(silent, -1), "silent_max": max(finite(silent), default=math.nan),
        "nan": _has_nan(epochs, events, stderr),
        "returncode": result.get("returncode", ""),
        "wall_s": wall,
        "run_dir": str(run_dir),
    }


def find_runs(out):
    return sorted(p.parent for p in Path(out).glob("*/sweep_cell.json")) or \
        sorted(p.parent for p in Path(out).glob("*/metrics.jsonl"))


# ---- tables --------------------------------------------------------------------------------
def _mean(xs):
    xs = [x for x in xs if isinstance(x, (int, float)) and math.isfinite(x)]
    return statistics.fmean(xs) if xs else math.nan


def _sd(xs):
    xs = [x for x in xs if isinstance(x, (int, float)) and math.isfinite(x)]
    return statistics.stdev(xs) if len(xs) > 1 else math.nan


def aggregate(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["config"], r["dataset"]), []).append(r)
    out = []
    for (config, dataset), rs in groups.items():
        g = {"config": config, "dataset": dataset, "runs": len(rs), "epochs": _mean([r["epochs"] for r in rs])}
        for k in ("best_val_acc", "test_acc", "final_train_acc", "rate_e1", "rate_e5", "rate_last", "silent_last",
                  "wall_s"):
            g[k] = _mean([r[k] for r in rs])
            g[k + "_sd"] = _sd([r[k] for r in rs])
        g["rate_max"] = max([r["rate_max"] for r in rs if math.isfinite(r["rate_max"])], default=math.nan)
        g["silent_max"] = max([r["silent_max"] for r in rs if math.isfinite(r["silent_max"])], default=math.nan)
        g["nan"] = sum(bool(r["nan"]) for r in rs)
        g["failed"] = sum(r["returncode"] not in (0, "") for r in rs)
        out.append(g)
    return out


def _fmt(x, kind):
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return "–"
    return {"acc": f"{x:.3f}", "hz": f"{x:.1f}", "pct": f"{x:.0%}", "s": f"{x:.0f}"}[kind]


def _pm(g, k, kind):
    s = _fmt(g[k], kind)
    sd = g.get(k + "_sd", math.nan)
    return s + (f" ± {_fmt(sd, kind)}" if isinstance(sd, float) and math.isfinite(sd) else "")


def markdown(groups):
    head = ("| config | dataset | runs | epochs | best val acc | test acc | final train acc | Hz e1 | Hz e5 | Hz last "
            "| Hz max | silent last | silent max | NaN | wall s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for g in groups:
        lines.append(
            f"| {g['config']} | {g['dataset']} | {g['runs']} | {g['epochs']:.0f} | {_pm(g, 'best_val_acc', 'acc')} | "
            f"{_pm(g, 'test_acc', 'acc')} | {_pm(g, 'final_train_acc', 'acc')} | {_fmt(g['rate_e1'], 'hz')} | "
            f"{_fmt(g['rate_e5'], 'hz')} | {_pm(g, 'rate_last', 'hz')} | {_fmt(g['rate_max'], 'hz')} | "
            f"{_fmt(g['silent_last'], 'pct')} | {_fmt(g['silent_max'], 'pct')} | "
            f"{'yes (' + str(g['nan']) + '/' + str(g['runs']) + ')' if g['nan'] else 'no'} | {_fmt(g['wall_s'], 's')} |")
    return "\n".join(lines) + "\n"


def write_csv(path, rows):
    if not rows:
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    Path(path).write_text(buf.getvalue())


def summarise(out):
    rows = [summarise_run(d) for d in find_runs(out)]
    if not rows:
        print(f"no runs found under {out}")
        return 1
    groups = aggregate(rows)
    md = markdown(groups)
    write_csv(Path(out) / "runs.csv", rows)
    write_csv(Path(out) / "summary.csv", groups)
    Path(out, "summary.md").write_text(md)
    print(md)
    print(f"(per run: {Path(out) / 'runs.csv'}; table: {Path(out) / 'summary.csv'}, {Path(out) / 'summary.md'})")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--summarise", metavar="DIR", help="only re-print the table of the runs under DIR")
    ap.add_argument("--configs", nargs="+", default=None, help=f"named configurations (default: {' '.join(DEFAULT_CONFIGS)})")
    ap.add_argument("--config", action="append", default=[], metavar="NAME=OPTIONS",
                    help="an extra configuration: a name and eventprop-lab train options")
    ap.add_argument("--seeds", nargs="+", type=int, default=DEFAULT_SEEDS)
    ap.add_argument("--datasets", nargs="+", default=None,
                    help=f"datasets (default: {TTS} if present, else randman-shd)")
    ap.add_argument("--common", default=DEFAULT_COMMON, help=f"options for every run (default: {DEFAULT_COMMON!r})")
    ap.add_argument("--epochs", type=int, default=None, help="shorthand for --epochs in --common")
    ap.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="runs at once")
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="NUMBA_NUM_THREADS of each run")
    ap.add_argument("--run-timeout", type=float, default=DEFAULT_RUN_TIMEOUT,
                    help="stop a run after this many seconds (0: never)")
    ap.add_argument("--out", default="runs/sweep")
    ap.add_argument("--list", action="store_true", help="show the named configurations")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args(argv)
    if args.list:
        for k, v in CONFIGS.items():
            print(f"{k:16s} {v}")
        return 0
    if args.summarise:
        return summarise(args.summarise)
    configs = {}
    for name in (args.configs if args.configs is not None else ([] if args.config else DEFAULT_CONFIGS)):
        if name not in CONFIGS:
            ap.error(f"unknown configuration {name!r}; named ones: {', '.join(CONFIGS)}")
        configs[name] = CONFIGS[name]
    for item in args.config:
        name, _, options = item.partition("=")
        if not name or "__" in name or "/" in name:
            ap.error(f"--config wants NAME=OPTIONS with a plain name, got {item!r}")
        configs[name] = options
    datasets = args.datasets
    if datasets is None:
        datasets = [TTS] if Path(TTS).exists() else ["randman-shd"]
    common = args.common + (f" --epochs {args.epochs}" if args.epochs else "")
    cells = plan(configs, args.seeds, datasets, common, args.out)
    if args.dry_run:
        for cell in cells:
            print(" ".join(shlex.quote(a) for a in command(cell)))
        return 0
    prepare(datasets)
    print(f"{len(cells)} runs, {args.workers} at once with {args.threads} threads each, into {args.out}", flush=True)
    run_all(cells, args.workers, args.threads, args.run_timeout or None)
    return summarise(args.out)


if __name__ == "__main__":
    sys.exit(main())
