"""Command line: `eventprop-lab train`, `evaluate`, `demo`, `encode`, `sweep` and `results`.

Every training option comes from the settings table (eventprop_lab/settings.py), whose types,
defaults, bounds and help text are the param configuration's (eventprop_lab/config.py): the
options are the ones the dashboard shows."""
import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import param

from .config import PRESETS, SECTIONS, apply_preset
from .optim import format_rate
from .settings import SETTINGS


def _parse_list(text):
    return [float(x) for x in text.split(",") if x.strip()]


def add_config_options(parser):
    parser.add_argument("--preset", choices=list(PRESETS), default=None,
                        help="start from a named recipe (eventprop_lab/config.py PRESETS); options given "
                             "explicitly override it. paper: delay line, heterogeneous tau, shift + blend")
    groups = {section: parser.add_argument_group(f"{section} options") for section in SECTIONS}
    for name, setting in SETTINGS.items():
        section, group, p = setting.section, groups[setting.section], setting.param
        flag = "--" + name.replace("_", "-")
        doc = (p.doc or "").rstrip(".")
        if isinstance(p, param.Boolean):
            group.add_argument(flag, dest=f"{section}.{name}", action=argparse.BooleanOptionalAction,
                               default=None, help=f"{doc} (default: {p.default})")
        elif isinstance(p, param.Selector):
            group.add_argument(flag, dest=f"{section}.{name}", choices=p.objects, default=None,
                               help=f"{doc} (default: {p.default})")
        elif isinstance(p, (param.List, param.Range)):
            shown = ",".join(str(x) for x in p.default)
            group.add_argument(flag, dest=f"{section}.{name}", type=_parse_list, default=None, metavar="A,B",
                               help=f"{doc} (default: {shown})")
        else:
            kind = int if isinstance(p, param.Integer) else float if isinstance(p, param.Number) else str
            bounds = f"; range {p.bounds[0]}..{p.bounds[1]}" if getattr(p, "bounds", None) else ""
            group.add_argument(flag, dest=f"{section}.{name}", type=kind, default=None, metavar=name.upper(),
                               help=f"{doc} (default: {p.default}{bounds})")


def configs_from_args(args, parser):
    """Param objects with the options given; a bad value stops with param's message."""
    configs = {sec: cls() for sec, cls in SECTIONS.items()}
    if getattr(args, "preset", None):
        apply_preset(configs, args.preset)
    for key, value in vars(args).items():
        if "." not in key or value is None:
            continue
        section, name = key.split(".")
        if isinstance(configs[section].param[name], param.Range):
            value = tuple(value)
        try:
            setattr(configs[section], name, value)
        except ValueError as exc:
            parser.error(f"--{name.replace('_', '-')}: {exc}")
    return configs


class ProgressPrinter:
    """A tqdm bar per epoch and one summary line per epoch."""

    def __init__(self, stream=sys.stderr):
        self.bar = None
        self.stream = stream

    def __call__(self, obs):
        from tqdm import tqdm

        if obs.kind == "batch":
            if self.bar is None:
                self.bar = tqdm(total=obs.n_batches, desc=f"epoch {obs.epoch}", unit="batch", file=self.stream,
                                leave=False, dynamic_ncols=True)
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{obs.loss:.3f}", acc=f"{obs.accuracy:.2f}", hz=f"{obs.rate_hz:.1f}",
                                 sps=f"{obs.samples_per_s:.0f}")
        elif obs.kind == "epoch":
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            line = (f"epoch {obs.epoch:>3}  train loss {obs.train_loss:.4f} acc {obs.train_accuracy:.3f}")
            seconds = f"{obs.train_seconds:.1f} s"
            if obs.validation_accuracy is not None:
                line += (f"  val loss {obs.validation_loss:.4f} acc {obs.validation_accuracy:.3f}"
                         f"  hidden {obs.validation_rate_hz:.1f} Hz, silent {obs.validation_silent_fraction:.0%}")
                seconds += f" + {obs.validation_seconds:.1f} s validation"
            print(line + f"  ({seconds}; {obs.wall_s:.1f} s in all)", flush=True)
        elif obs.kind == "event" and obs.what == "non_finite":
            tqdm.write(obs.message, file=sys.stdout)  # above the bar, which stays

    def close(self):
        if self.bar is not None:
            self.bar.close()


RESUME_OPTIONS = ("run.epochs", "training.lr", "training.grad_clip")  # what --resume may change; the rest is in the checkpoint
EXIT_DIVERGED = 3


def _train(args, parser):
    from .observe import export_csv
    from .run import TrainingDiverged, TrainingRun

    progress = ProgressPrinter()
    if args.resume:
        ignored = [_flag(k) for k, v in vars(args).items() if "." in k and v is not None and k not in RESUME_OPTIONS]
        if ignored:
            parser.error(f"with --resume only --epochs, --lr and --grad-clip may be given (the other settings are the "
                         f"checkpoint's); drop {', '.join(ignored)}")
        ckpt = Path(args.resume)
        ckpt = ckpt / "last.npz" if ckpt.is_dir() else ckpt
        overrides = {k: getattr(args, k) for k in RESUME_OPTIONS if getattr(args, k) is not None}
        run = TrainingRun.resume(ckpt, observers=[progress], **overrides)
        print(f"resuming {ckpt} after epoch {run.epoch} ({run.wall_s:.1f} s so far), "
              f"learning rate {format_rate(run.trainer.schedule.lr)}", flush=True)
    else:
        c = configs_from_args(args, parser)
        print(f"loading {c['run'].dataset} ...", flush=True)
        run = TrainingRun(c["run"], c["network"], c["training"], c["augment"], observers=[progress])
    print(f"{len(run.train_set)} training, {len(run.validation_set or [])} validation, "
          f"{len(run.test_set or [])} test samples; {run.net.n_in} inputs"
          f"{' (+ delay line)' if run.delay_line else ''} -> {run.net.n_hidden} "
          f"{'recurrent ' if run.net.recurrent else ''}LIF -> {run.net.n_out} readouts; loss {run.training.loss}; "
          f"results in {run.out}", flush=True)
    if run.input_gain is not None:
        print(f"input weights x{run.input_gain:.3f} for {run.net.init_rate_hz:g} Hz at the start", flush=True)
    note = plain_order_note(run.training, run.net)
    if note:
        print(note, flush=True)
    if run.trainer.engine.name == "genn":
        print(f"generating and building the GeNN model ({run.trainer.engine.backend}) on first use ...", flush=True)
    else:
        print("compiling the numba kernels on first use (cached afterwards) ...", flush=True)
    try:
        run.fit()
    except KeyboardInterrupt:
        progress.close()
        print(f"\ninterrupted: {run.out / 'last.npz'} holds epoch {run.epoch}; "
              f"continue with: eventprop-lab train --resume {run.out}", flush=True)
        return 130
    except TrainingDiverged as exc:
        progress.close()
        if run.epoch:
            export_csv(run.out / "metrics.jsonl", run.out / "epochs.csv")
            run.write_summary(stopped=str(exc))
        print("\n" + _diverged_message(exc, run, args), file=sys.stderr, flush=True)
        return EXIT_DIVERGED
    progress.close()
    export_csv(run.out / "metrics.jsonl", run.out / "epochs.csv")
    summary = run.write_summary()
    speed = summary["train_samples_per_s"]
    print(f"done: {run.epoch} epochs in {summary['wall_s']:.1f} s"
          f"{f' ({speed:.0f} training samples/s)' if speed else ''}; per epoch in {run.out / 'epochs.csv'}, "
          f"summary in {run.out / 'summary.json'}")
    print(_best_line(summary), flush=True)
    if summary["test_accuracy_last"] is not None:
        print(f"test (last weights): loss {summary['test_loss_last']:.4f}, "
              f"accuracy {summary['test_accuracy_last']:.3f}")
    return 0


def _flag(dest):
    return "--" + dest.split(".")[1].replace("_", "-")


def _best_line(summary):
    """'best validation 0.612 at epoch 29 (41.3 s); test at best validation 0.590'"""
    on = summary["best_on"]
    if summary["best_epoch"] is None:
        return f"no epoch finished, so no best {on} accuracy"
    line = f"best {on} {summary['best_accuracy']:.3f} at epoch {summary['best_epoch']}"
    if summary["best_wall_s"] is not None:
        line += f" ({summary['best_wall_s']:.1f} s)"
    if summary["test_accuracy_at_best"] is not None:
        line += f"; test at best {on} {summary['test_accuracy_at_best']:.3f}"
    return line


def _command(args, lr):
    """The train command of these args, with the learning rate replaced: to start again."""
    words = ["eventprop-lab", "train"]
    for dest, value in vars(args).items():
        if "." not in dest or value is None or dest == "training.lr":
            continue
        if isinstance(value, bool):
            words.append(_flag(dest) if value else "--no-" + _flag(dest)[2:])
        else:
            text = ",".join(str(x) for x in value) if isinstance(value, (list, tuple)) else str(value)
            words += [_flag(dest), shlex.quote(text)]
    return " ".join(words + ["--lr", format_rate(lr)])


def plain_order_note(training, network):
    """A warning where a run takes the plain step order on a grid where it has run away, else None."""
    plain = training.backend == "genn" or not training.in_step_order
    if not (plain and network.heterogeneous_tau and training.dt > 0.5):
        return None
    if training.backend == "genn":
        how, fix = "the genn backend computes", "--dt 0.5"
    else:
        how, fix = "--no-in-step-order asks for", "--in-step-order (held in every run, costs 1.2-1.5x), or --dt 0.5"
    return (f"note: {how} the plain order in a step; with heterogeneous tau at dt {training.dt:g} ms it ran away "
            f"within 2-3 epochs in our runs, at dt 0.5 it failed less often (2 of 6 runs on spoken words): "
            f"consider {fix} (docs/results.md, 'The order in a step', 'The paper preset on the spoken words')")


def _diverged_message(exc, run, args):
    """What stopped the run, which checkpoints it keeps, and the command to go on at a lower rate."""
    from .run import load_checkpoint

    last, best = run.out / "last.npz", run.out / "best.npz"
    lines = [f"stopped: {exc}."]
    if last.exists():
        _, state, _ = load_checkpoint(last)
        lines.append(f"kept: {last} holds epoch {state['epoch']}, the last whole one (the stopped epoch is "
                     f"trained again on resume)")
        if best.exists():
            _, best_state, _ = load_checkpoint(best)
            on = "validation" if run.validation_set is not None and len(run.validation_set) else "train"
            lines[-1] += (f"; {best} holds epoch {best_state['epoch']}, the best so far ({on} accuracy "
                          f"{run.best['validation_accuracy']:.3f})")
        lines[-1] += "."
        lines.append(f"to continue with half its learning rate: eventprop-lab train --resume "
                     f"{shlex.quote(str(run.out))} --lr {format_rate(state['lr_base'] / 2)}")
    else:
        lines.append("kept: no checkpoint; the run stopped in its first epoch.")
        lines.append(f"to start again with half the learning rate: {_command(args, run.training.lr / 2)}")
    return "\n".join(lines)


def _evaluate(args):
    from .run import TrainingRun

    ckpt = Path(args.checkpoint)
    ckpt = ckpt / "best.npz" if ckpt.is_dir() else ckpt
    overrides = {"run.dataset": args.dataset} if args.dataset else {}
    run = TrainingRun.from_checkpoint(ckpt, **overrides)  # evaluating must not touch the run's files
    sets = {"train": run.train_set, "validation": run.validation_set, "test": run.test_set}
    for name in args.split:
        data = sets[name]
        if data is None or not len(data):
            print(f"{name:>10}: none")
            continue
        r = run.evaluate(data)
        print(f"{name:>10}: loss {r['loss']:.4f}  accuracy {r['accuracy']:.3f}  hidden {r['rate_hz']:.1f} Hz  "
              f"silent {r['silent_fraction']:.0%}  ({len(data)} samples)")
    return 0


def _demo(args):
    from .losses import LOSSES
    from .network import NetworkConfig, init_params
    from .toy import spike_patterns
    from .training import Trainer, TrainingConfig

    if args.loss not in LOSSES:
        sys.exit(f"unknown loss {args.loss!r}; choose one of {', '.join(LOSSES)}")
    samples, labels = spike_patterns(args.samples, n_classes=4, n_channels=40, seed=args.seed)
    n_val = len(samples) // 4
    train, val = (samples[n_val:], labels[n_val:]), (samples[:n_val], labels[:n_val])
    net = NetworkConfig(n_in=40, n_hidden=args.hidden, n_out=4, recurrent=True,
                        w_in_mean=0.4, w_in_std=0.2, w_out_std=0.3)
    cfg = TrainingConfig(loss=args.loss, lr=args.lr, warmup=False, batch_size=32, dt=1.0,
                         trial_ms=100.0, reg_strength=0, seed=args.seed)
    trainer = Trainer(init_params(net, rng=args.seed, loss=args.loss), cfg)
    print(f"Eventprop demo: {len(train[0])} training patterns, 4 classes, 40 inputs -> "
          f"{args.hidden} recurrent LIF -> 4 readouts, loss {args.loss}")
    print("compiling the numba kernels (first run only, about 30 s) ...", flush=True)
    t0 = time.time()
    trainer.evaluate(val[0][:2], val[1][:2])
    print(f"ready after {time.time() - t0:.1f} s")
    print(f"{'epoch':>5} {'train loss':>10} {'val loss':>9} {'val acc':>8} {'rate Hz':>8} {'time s':>7}")
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(train[0]))
        losses = []
        for s in range(0, len(order), 32):
            idx = order[s:s + 32]
            m, _ = trainer.train_batch([train[0][i] for i in idx], train[1][idx])
            losses.append(m["loss"])
        v = trainer.evaluate(*val)
        print(f"{epoch:>5} {np.mean(losses):>10.4f} {v['loss']:>9.4f} {v['accuracy']:>8.3f} "
              f"{v['rate_hz']:>8.1f} {time.time() - t0:>7.1f}", flush=True)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="eventprop-lab",
                                     description="Exact-gradient (Eventprop) training of spiking networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a network; checkpoints and metrics go to --out-dir",
                           description="Train a recurrent spiking network with exact gradients.")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    add_config_options(train)
    ev = sub.add_parser("evaluate", help="evaluate a checkpoint")
    ev.add_argument("checkpoint", help="a checkpoint file, or a run folder (uses its best.npz)")
    ev.add_argument("--dataset", help="evaluate on another dataset than the run's")
    ev.add_argument("--split", nargs="+", default=["validation", "test"], choices=["train", "validation", "test"])
    demo = sub.add_parser("demo", help="train on built-in spike patterns and print progress (seconds)")
    demo.add_argument("--loss", default="sum_exp", help="loss name (default: sum_exp)")
    demo.add_argument("--epochs", type=int, default=15, help="epochs (default: 15)")
    demo.add_argument("--hidden", type=int, default=32, help="hidden neurons (default: 32)")
    demo.add_argument("--samples", type=int, default=340, help="patterns, a quarter for validation")
    demo.add_argument("--lr", type=float, default=2e-2, help="Adam learning rate (default: 0.02)")
    demo.add_argument("--seed", type=int, default=1, help="random seed")
    from .encode import add_encode_parser

    add_encode_parser(sub)
    sw = sub.add_parser("sweep", help="train every cell of a sweep spec (grid, list, seeds, LOSO folds) on Dask",
                        description="Train every cell of a sweep spec (YAML or TOML; see eventprop_lab/sweep_spec.py "
                                    "and the README) as a run folder, on a Dask LocalCluster or --scheduler. "
                                    "The same command again resumes the sweep.")
    sw.add_argument("spec", help="the spec file (.yaml, .yml or .toml)")
    sw.add_argument("--out", help="sweep folder (default: the spec's out:, else runs/sweeps/<spec name>)")
    sw.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler (tcp://host:8786); "
                                                           "default: a LocalCluster on this machine")
    sw.add_argument("--workers", type=int, help="LocalCluster workers (default: cores / threads, at most one per cell)")
    sw.add_argument("--threads", type=int, help="numba threads per cell (default: cores / workers)")
    sw.add_argument("--no-progress", action="store_true", help="no progress bars (logs, batch jobs)")
    sw.add_argument("--dry-run", action="store_true", help="list the cells and how far each is; run nothing")
    res = sub.add_parser("results", help="the table of a sweep folder (mean ± sd over seeds and folds), as CSV too",
                         description="Print the table of the runs in a sweep folder: mean ± sd over seeds and "
                                     "folds, test accuracy at the best validation epoch; write runs.csv, "
                                     "summary.csv and summary.md there.")
    res.add_argument("sweep_dir", help="a sweep folder (or any folder of run folders)")
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return _train(args, train)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "sweep":
            from .sweep_dask import main_sweep

            return main_sweep(args)
        if args.command == "results":
            from .results import SWEEP_COLUMNS, summarise

            return 0 if summarise(args.sweep_dir, SWEEP_COLUMNS) else 1
        if args.command == "encode":
            from .encode import run_encode

            return run_encode(args)
        return _demo(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
