"""A training run: data, network and trainer together, epoch by epoch, with validation,
checkpoints (last and best, written atomically), a metrics file, a summary and observers."""
import json
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from kernels import Params

from .config import AugmentConfig, RunConfig, config_to_dict, configs_from_dict
from .network import NetworkConfig, atomic_write, het_gain, init_params, read_npz
from .observe import BatchRecord, EpochRecord, EventRecord, MetricsWriter, ProbeRecord, probe_data, truncate_metrics
from .optim import format_rate
from .regularisers import lift_silent
from .training import NonFiniteStep, Trainer, TrainingConfig


class NonFiniteRule(NamedTuple):
    """How a run treats a batch with a NaN or infinite loss, gradient or update: it skips the
    batch and halves the learning rate, and stops (TrainingDiverged) when that keeps happening."""

    max_per_epoch: int = 5  # more skipped batches than this in one epoch: stop
    min_lr: float = 1e-6  # a halving would take the base rate below this: stop


class TrainingDiverged(RuntimeError):
    """Training stopped on non-finite values that skipping batches did not cure. Parameters,
    Adam state and checkpoints are as they were before the batch that stopped it."""

    def __init__(self, message, epoch, batch):
        super().__init__(message)
        self.epoch, self.batch = epoch, batch


def make_delay_line(net: NetworkConfig, duration_ms):
    from .data.augment import DelayLine

    if not net.delay_line:
        return None
    return DelayLine(n_delays=net.n_delays, delay_ms=net.delay_ms, n_channels=net.n_in,
                     include_undelayed=net.include_undelayed, duration_ms=duration_ms)


def make_augmentation(aug: AugmentConfig, n_channels, duration_ms):
    from .data.augment import Compose, Dilate, IdJitter, RandomShift

    steps = []
    if aug.shift:
        steps.append(RandomShift(max_shift=aug.max_shift, n_channels=n_channels))
    if aug.dilate:
        steps.append(Dilate(low=aug.dilate_range[0], high=aug.dilate_range[1], duration_ms=duration_ms))
    if aug.jitter:
        steps.append(IdJitter(sigma=aug.jitter_sigma, n_channels=n_channels))
    return Compose(steps) if steps else None


class EpochProgress:
    """One epoch of a run, trained one batch at a time: `train_next_batch()` until `done`, then
    `finish()` (silent-neuron lift, validation, checkpoints, the "epoch" observation). A paused
    session keeps its half-done epoch in one of these instead of restarting it."""

    def __init__(self, run: "TrainingRun"):
        from .data.splits import batches

        t_start = time.perf_counter()
        self.run = run
        self.rng = np.random.default_rng([run.training.seed, run.epoch + 1])
        self.train = run.epoch_training_set(self.rng)
        self.index_batches = list(batches(len(self.train), run.training.batch_size, rng=self.rng))
        self.counts = np.zeros(run.net.n_hidden, np.int64)
        self.losses, self.correct, self.seen, self.next, self.skipped = [], 0, 0, 0, 0
        # time spent on this epoch (pauses do not count): training, then all of it
        self.train_seconds = self.seconds = 0.0
        self._clock(t_start)

    @property
    def done(self):
        return self.next >= len(self.index_batches)

    def _clock(self, t_start, training=True):
        """Adds the time since t_start to this epoch and to the run's wall clock."""
        dt = time.perf_counter() - t_start
        self.seconds += dt
        self.train_seconds += dt if training else 0.0
        self.run.wall_s += dt

    def train_next_batch(self):
        """Trains the next batch; returns its number of samples (0 if it was skipped as non-finite)."""
        run, t_start = self.run, time.perf_counter()
        idx = self.index_batches[self.next]
        rng_state = self.rng.bit_generator.state
        try:
            samples = self.train.samples(idx)
            if run.augmentation is not None:
                samples = [run.augmentation(t, c, self.rng) for t, c in samples]
            samples = run._inputs(samples)
            labels = self.train.labels[idx]
            probe = run.run_cfg.probe_every and run.step % run.run_cfg.probe_every == 0
            t0 = time.perf_counter()
            metrics, res = run.trainer.train_batch(samples, labels, probe_samples=[0] if probe else ())
        except NonFiniteStep as exc:
            try:
                self._skip(exc, rng_state)
            finally:
                self._clock(t_start)
            return 0
        except BaseException:
            # the trainer leaves parameters and Adam untouched when it fails; rewinding the
            # generator makes the retry after a fix see exactly the same augmented batch
            self.rng.bit_generator.state = rng_state
            raise
        elapsed = time.perf_counter() - t0
        run.step += 1
        self.next += 1  # counted before observers run, so a failing observer cannot repeat it
        self.counts += res.record.counts.sum(0)
        self.losses.append(metrics["loss"])
        self.correct += int(metrics["accuracy"] * len(idx) + 0.5)
        self.seen += len(idx)
        self._clock(t_start)
        probed = percentiles = None
        if probe:
            data = probe_data(res, samples, run.trainer.params, sample=0)
            data.update(label=int(labels[0]), epoch=run.epoch + 1, step=run.step)
            probed = ProbeRecord(**data)
            # in the batch record too: batch records are kept far longer than probes, so a view
            # that starts late can still draw the weights' history (and the metrics file keeps it)
            percentiles = {name: [float(q) for q in h["percentiles"]] for name, h in probed.weight_histograms.items()}
        run.emit(BatchRecord(epoch=run.epoch + 1, batch=self.next, n_batches=len(self.index_batches), step=run.step,
                             lr=run.trainer.schedule.lr, samples_per_s=len(idx) / elapsed,
                             loss_name=run.training.loss, **metrics, weight_percentiles=percentiles))
        if probed is not None:
            run.emit(probed)
        return len(idx)

    def _skip(self, exc: NonFiniteStep, rng_state):
        """The run's NonFiniteRule for a batch the trainer refused: pass over it and halve the
        learning rate, or raise TrainingDiverged with the reason."""
        run, rule, schedule = self.run, self.run.nonfinite, self.run.trainer.schedule
        epoch, batch = run.epoch + 1, self.next + 1
        where = f"epoch {epoch} batch {batch}"
        if exc.what == "weights":
            why = (f"the weights themselves are NaN or infinite ({', '.join(exc.names)}); skipping batches "
                   "cannot repair them")
        elif self.skipped >= rule.max_per_epoch:
            why = (f"NaN or infinite values in {self.skipped + 1} batches of this epoch (the last in {exc.source()}), "
                   f"more than the {rule.max_per_epoch} allowed, though the learning rate was halved after each "
                   f"(now {format_rate(schedule.lr)})")
        elif schedule.base / 2 < rule.min_lr:
            why = (f"NaN or infinite values in {exc.source()}, and halving the learning rate "
                   f"({format_rate(schedule.base)}) once more would take it below the floor of "
                   f"{format_rate(rule.min_lr)}")
        else:
            why = None
        if why is not None:
            self.rng.bit_generator.state = rng_state  # a retry after a fix sees the same batch
            raise TrainingDiverged(f"training stopped at {where}: {why}", epoch, batch)
        self.next += 1
        self.skipped += 1
        old = schedule.lr
        schedule.halve()
        action = "update rolled back" if exc.what == "update" else "batch skipped"
        run.emit(EventRecord(
            what="non_finite", epoch=epoch, batch=batch, step=run.step,
            message=f"{exc.describe()} at {where}: {action}, lr {format_rate(old)} → {format_rate(schedule.lr)}",
            label=f"non-finite {exc.what}: lr → {format_rate(schedule.lr)}",
            extra={"n_batches": len(self.index_batches), "quantity": exc.what, "names": list(exc.names),
                   "lr_old": old, "lr_new": schedule.lr, "skipped_in_epoch": self.skipped}))

    def finish(self):
        run, t_start = self.run, time.perf_counter()
        if run.run_cfg.lift_silent > 0:
            W_in, _ = lift_silent(run.trainer.params.W_in, self.counts, run.run_cfg.lift_silent)
            run.trainer.params = run.trainer.params._replace(W_in=W_in)
        run.epoch += 1
        train_accuracy = self.correct / max(self.seen, 1)
        summary = {"epoch": run.epoch, "step": run.step,
                   "train_loss": float(np.mean(self.losses)) if self.losses else float("nan"),
                   "train_accuracy": train_accuracy, "train_samples": self.seen, "skipped_batches": self.skipped,
                   "train_rate_hz": float(self.counts.sum() / max(self.seen, 1) / run.net.n_hidden
                                          / (run.training.trial_ms / 1000.0)),
                   "train_silent_fraction": float((self.counts == 0).mean()),
                   "lr": run.trainer.schedule.lr}
        if run.validation_set is not None and len(run.validation_set):
            t_val = time.perf_counter()
            val = run.evaluate(run.validation_set)
            summary.update({f"validation_{k}": v for k, v in val.items()})
            summary["validation_seconds"] = time.perf_counter() - t_val
            run.trainer.schedule.after_epoch(val["accuracy"])
        self._clock(t_start, training=False)  # checkpoint writing is left out: the clock goes into them
        run.train_seconds += self.train_seconds
        run.train_samples += self.seen
        run.last_train_accuracy = train_accuracy
        summary.update(train_seconds=self.train_seconds, epoch_seconds=self.seconds, wall_s=run.wall_s)
        acc = summary.get("validation_accuracy", train_accuracy)
        new_best = acc > run.best["validation_accuracy"]
        if new_best:  # before last.npz is written, so that a resumed run knows its best
            run.best = {"validation_accuracy": acc, "epoch": run.epoch, "wall_s": run.wall_s}
        run.save_checkpoint(run.out / "last.npz")
        if new_best:
            run.save_checkpoint(run.out / "best.npz")
        run.emit(EpochRecord(**summary))
        return summary


class TrainingRun:
    """Trains one network; `observers` are called with every record (observe.Observation)."""

    def __init__(self, run: RunConfig, net: NetworkConfig, training: TrainingConfig, augment: AugmentConfig,
                 observers=(), data=None, engine=None):
        from .data.splits import train_validation_split

        self.configs = {"run": run, "network": net, "training": training, "augment": augment}
        self.run_cfg, self.net, self.training, self.augment = run, net, training, augment
        self.observers = list(observers)
        if data is None:
            from .data.sources import load_dataset

            data = load_dataset(run.dataset, data_dir=run.data_dir)
        splits = data
        train, test = splits.train, splits.test
        if run.max_train_samples is not None and run.max_train_samples < len(train):
            keep = np.random.default_rng(training.seed).permutation(len(train))[:run.max_train_samples]
            train = train.subset(np.sort(keep))
        validation = getattr(splits, "validation", None)
        if validation is None and run.validation_fraction > 0:
            tr_idx, va_idx = train_validation_split(train, run.validation_fraction,
                                                    np.random.default_rng(training.seed))
            train, validation = train.subset(tr_idx), train.subset(va_idx)
        self.train_set, self.validation_set, self.test_set = train, validation, test
        if net.n_in != train.n_channels:
            net.n_in = train.n_channels
        if net.n_out != train.n_classes:
            net.n_out = train.n_classes
        self.delay_line = make_delay_line(net, training.trial_ms)
        self.augmentation = make_augmentation(augment, train.n_channels, training.trial_ms)
        params = init_params(net, rng=training.seed, loss=training.loss)
        neuron_lr = None
        if training.het_lr_norm and net.heterogeneous_tau and net.het_weight_norm:
            neuron_lr = het_gain(net, params.tau_mem, params.tau_syn)  # the initial draw's, also on resume
        self.trainer = Trainer(params, training, engine=engine, neuron_lr_scale=neuron_lr)
        self.input_gain = self._calibrate_input_gain() if net.init_rate_hz > 0 else None
        self.epoch = 0
        self.step = 0
        self.best = {"validation_accuracy": -1.0, "epoch": 0, "wall_s": None}
        # wall clock of the run's epochs (seconds, pauses and the time between resumes left out),
        # the part of it spent training, the samples trained on, the last epoch's train accuracy
        self.wall_s, self.train_seconds, self.train_samples, self.last_train_accuracy = 0.0, 0.0, 0, None
        self.nonfinite = NonFiniteRule()
        self.resumed_from = None
        self.out = Path(run.out_dir)

    def _calibrate_input_gain(self, n_samples=64):
        """Scale W_in so the hidden layer starts at net.init_rate_hz on some training samples.

        The paper's input init was tuned on SHD; denser input (the spoken digits) starts the
        layer at 65-100 Hz against a target of 14 spikes per trial (docs/results.md)."""
        from .network import calibrate_input_gain

        rng = np.random.default_rng(self.training.seed)
        idx = np.sort(rng.permutation(len(self.train_set))[:n_samples])
        batch = self.trainer.batch(self._inputs(self.train_set.samples(idx)))
        target = self.net.init_rate_hz * self.training.trial_ms / 1000.0
        params, gain, _ = calibrate_input_gain(self.trainer.params, lambda p: self.trainer.engine.forward(p, batch).counts,
                                               target)
        self.trainer.params = params
        return gain

    # ---- observation ---------------------------------------------------------------------
    def emit(self, record):
        for observer in self.observers:
            observer(record)

    # ---- data ----------------------------------------------------------------------------
    def _inputs(self, samples):
        if self.delay_line is None:
            return samples
        return [self.delay_line(t, c) for t, c in samples]

    def epoch_training_set(self, rng):
        from .data.augment import blend, concat

        train = self.train_set
        if self.augment.blend:
            train = concat(train, blend(train, probs=tuple(self.augment.blend_probs), rng=rng))
        return train

    # ---- training ------------------------------------------------------------------------
    def begin_epoch(self):
        """The next epoch, to be trained batch by batch (see EpochProgress)."""
        return EpochProgress(self)

    def train_epoch(self, should_stop=lambda: False):
        """One epoch; returns its summary, or None if should_stop() asked to stop mid-epoch."""
        epoch = self.begin_epoch()
        while not epoch.done:
            if should_stop():
                return None
            epoch.train_next_batch()
        return epoch.finish()

    def evaluate(self, dataset, params=None):
        samples = self._inputs(dataset.samples())
        return {k: float(v) for k, v in self.trainer.evaluate(samples, dataset.labels, params).items()}

    def fit(self, epochs=None, should_stop=lambda: False):
        """Train until `epochs` (default: the configured number) are done or should_stop()."""
        self.out.mkdir(parents=True, exist_ok=True)
        writer = MetricsWriter(self.out / "metrics.jsonl")
        self.observers.append(writer)
        try:
            if self.epoch == 0:
                self.emit(EventRecord(what="start", epoch=0, extra={"config": config_to_dict(self.configs)}))
            elif self.resumed_from is not None:
                lr = self.trainer.schedule.lr
                self.emit(EventRecord(what="resume", epoch=self.epoch, step=self.step,
                                      label=f"resumed, lr {format_rate(lr)}",
                                      extra={"checkpoint": str(self.resumed_from), "lr": lr, "wall_s": self.wall_s}))
                self.resumed_from = None
            target = epochs if epochs is not None else self.run_cfg.epochs
            while self.epoch < target and not should_stop():
                if self.train_epoch(should_stop) is None:
                    break
        except TrainingDiverged as exc:
            self.emit(EventRecord(what="stopped", epoch=exc.epoch, batch=exc.batch, step=self.step, message=str(exc)))
            raise
        finally:
            self.observers.remove(writer)
            writer.close()
        return self.best

    # ---- summary -------------------------------------------------------------------------
    def write_summary(self, stopped=None):
        """summary.json in the run folder (written atomically): the best epoch, its wall time and
        test accuracy (best.npz on the test set), the test accuracy of the last weights, the last
        train accuracy, total wall time and training speed. `stopped`: why training ended early, if
        it did. Returns the dict."""
        has_validation = self.validation_set is not None and len(self.validation_set) > 0
        best = self.best if self.best["epoch"] > 0 else {"validation_accuracy": None, "epoch": None, "wall_s": None}
        summary = {"epochs": self.epoch, "best_on": "validation" if has_validation else "train",
                   "best_accuracy": best["validation_accuracy"], "best_epoch": best["epoch"],
                   "best_wall_s": best["wall_s"], "test_accuracy_at_best": None, "test_loss_at_best": None,
                   "test_samples": len(self.test_set) if self.test_set is not None else 0,
                   "final_train_accuracy": self.last_train_accuracy, "wall_s": self.wall_s,
                   "train_samples_per_s": self.train_samples / self.train_seconds if self.train_seconds else None,
                   "stopped": stopped}
        summary.update(test_accuracy_last=None, test_loss_last=None)
        best_file = self.out / "best.npz"
        if summary["test_samples"] and best["epoch"] is not None and best_file.exists():
            params, _, _ = load_checkpoint(best_file)
            test = self.evaluate(self.test_set, params)
            summary.update(test_accuracy_at_best=test["accuracy"], test_loss_at_best=test["loss"])
            test = self.evaluate(self.test_set) if best["epoch"] != self.epoch else test
            summary.update(test_accuracy_last=test["accuracy"], test_loss_last=test["loss"])
        text = json.dumps(summary, indent=1) + "\n"
        atomic_write(self.out / "summary.json", lambda f: f.write(text.encode()))
        return summary

    # ---- checkpoints ---------------------------------------------------------------------
    def save_checkpoint(self, path):
        p = self.trainer.params
        arrays = {f"params/{k}": v for k, v in p._asdict().items() if v is not None}
        arrays.update({f"adam/{k}": v for k, v in self.trainer.optimiser.state_dict().items()})
        sched = self.trainer.schedule
        state = {"epoch": self.epoch, "step": self.step, "best": self.best, "lr": sched.lr, "lr_base": sched.base,
                 "ema_fast": sched.fast, "ema_slow": sched.slow, "since_change": sched.epochs_since_change,
                 "clock": {"wall_s": self.wall_s, "train_seconds": self.train_seconds,
                           "train_samples": self.train_samples},
                 "train_accuracy": self.last_train_accuracy, "grad_norms": self.trainer.clip.history,
                 "config": config_to_dict(self.configs)}
        arrays["state"] = np.array(json.dumps(state))
        atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def from_checkpoint(cls, path, observers=(), data=None, engine=None, **overrides):
        """A run as a checkpoint left it (config, weights, optimiser, schedule, clock); changes no
        file. An override of training.lr replaces the checkpoint's rate (and ends any warm-up)."""
        params, state, adam = load_checkpoint(path)
        configs = configs_from_dict(state["config"])
        for key, value in overrides.items():
            section, name = key.split(".")
            setattr(configs[section], name, value)
        run = cls(configs["run"], configs["network"], configs["training"], configs["augment"], observers, data, engine)
        run.trainer.params = params
        run.trainer.optimiser.load_state_dict(adam)
        sched = run.trainer.schedule
        sched.lr, sched.base = state["lr"], state["lr_base"]
        sched.fast, sched.slow, sched.epochs_since_change = state["ema_fast"], state["ema_slow"], state["since_change"]
        if "training.lr" in overrides:
            sched.set_base(run.training.lr)
            run.trainer.optimiser.lr = run.training.lr
        run.epoch, run.step, run.best = state["epoch"], state["step"], state["best"]
        run.best.setdefault("wall_s", None)  # checkpoints from before the clock
        clock = state.get("clock", {})
        run.wall_s = clock.get("wall_s", 0.0)
        run.train_seconds = clock.get("train_seconds", 0.0)
        run.train_samples = clock.get("train_samples", 0)
        run.last_train_accuracy = state.get("train_accuracy")
        run.trainer.clip.history = list(state.get("grad_norms", []))
        return run

    @classmethod
    def resume(cls, path, observers=(), data=None, engine=None, **overrides):
        """A run to continue training from a checkpoint: as from_checkpoint, and the metrics file
        loses the records of the epoch that was interrupted, which will be trained again."""
        run = cls.from_checkpoint(path, observers, data, engine, **overrides)
        run.resumed_from = Path(path)
        metrics = run.out / "metrics.jsonl"
        if metrics.exists():
            truncate_metrics(metrics, run.epoch)
        return run


def load_checkpoint(path):
    """(Params, state dict, Adam state) from a checkpoint file, with clear errors."""
    data = read_npz(path, "checkpoint")
    try:
        state = json.loads(str(data["state"]))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable checkpoint (no run state: {exc})") from exc
    params = Params(**{k: data.get(f"params/{k}") for k in Params._fields})
    adam = {k[len("adam/"):]: v for k, v in data.items() if k.startswith("adam/")}
    return params, state, adam
