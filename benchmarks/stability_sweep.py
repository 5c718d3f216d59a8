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
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from eventprop_lab.results import STABILITY_COLUMNS, dataset_tag
from eventprop_lab.results import aggregate, summarise_run  # noqa: F401 (the tests read runs through this script)
from eventprop_lab.results import summarise as _summarise

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

TTS = "data_cache/tts-digits/tts_digits_train.h5"  # the synthetic spoken digits of the issue


# ---- running -------------------------------------------------------------------------------
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
    from eventprop_lab.sweep import prepare as prepare_all

    prepare_all([(ds, "data_cache") for ds in datasets], print_=lambda line: print(line, flush=True))


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


# ---- reading: eventprop_lab/results.py, shared with `eventprop-lab results` ------------------
def summarise(out):
    return 0 if _summarise(out, STABILITY_COLUMNS) else 1


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
