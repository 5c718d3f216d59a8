"""A training run: data, network and trainer together, epoch by epoch, with validation,
checkpoints (last and best, written atomically), a metrics file and observers."""
import json
import time
from pathlib import Path

import numpy as np

from kernels import Params

from .config import AugmentConfig, RunConfig, config_to_dict, configs_from_dict
from .network import NetworkConfig, atomic_write, init_params, read_npz
from .observe import MetricsWriter, Observation, probe_data, truncate_metrics
from .regularisers import lift_silent
from .training import Trainer, TrainingConfig


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


class TrainingRun:
    """Trains one network; `observers` are called with every Observation."""

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
        params = init_params(net, rng=training.seed)
        self.trainer = Trainer(params, training, engine=engine)
        self.epoch = 0
        self.step = 0
        self.best = {"validation_accuracy": -1.0, "epoch": 0}
        self.out = Path(run.out_dir)

    # ---- observation ---------------------------------------------------------------------
    def emit(self, kind, **data):
        obs = Observation(kind, data)
        for observer in self.observers:
            observer(obs)

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
    def train_epoch(self, should_stop=lambda: False):
        """One epoch; returns its summary, or None if should_stop() asked to stop mid-epoch."""
        from .data.splits import batches

        cfg = self.training
        rng = np.random.default_rng([cfg.seed, self.epoch + 1])
        train = self.epoch_training_set(rng)
        counts = np.zeros(self.net.n_hidden, np.int64)
        losses, correct, seen = [], 0, 0
        t_start = time.perf_counter()
        index_batches = list(batches(len(train), cfg.batch_size, rng=rng))
        for b, idx in enumerate(index_batches):
            if should_stop():
                return None
            samples = train.samples(idx)
            if self.augmentation is not None:
                samples = [self.augmentation(t, c, rng) for t, c in samples]
            samples = self._inputs(samples)
            labels = train.labels[idx]
            probe = self.run_cfg.probe_every and self.step % self.run_cfg.probe_every == 0
            t0 = time.perf_counter()
            metrics, res = self.trainer.train_batch(samples, labels, probe_samples=[0] if probe else ())
            elapsed = time.perf_counter() - t0
            self.step += 1
            counts += res.record.counts.sum(0)
            losses.append(metrics["loss"])
            correct += int(metrics["accuracy"] * len(idx) + 0.5)
            seen += len(idx)
            self.emit("batch", epoch=self.epoch + 1, batch=b + 1, n_batches=len(index_batches), step=self.step,
                      lr=self.trainer.schedule.lr, samples_per_s=len(idx) / elapsed, **metrics)
            if probe:
                data = probe_data(res, samples, self.trainer.params, sample=0)
                data.update(label=int(labels[0]), epoch=self.epoch + 1, step=self.step)
                self.emit("probe", **data)
        if self.run_cfg.lift_silent > 0:
            W_in, silent = lift_silent(self.trainer.params.W_in, counts, self.run_cfg.lift_silent)
            self.trainer.params = self.trainer.params._replace(W_in=W_in)
        self.epoch += 1
        summary = {"epoch": self.epoch, "train_loss": float(np.mean(losses)), "train_accuracy": correct / max(seen, 1),
                   "epoch_seconds": time.perf_counter() - t_start, "lr": self.trainer.schedule.lr}
        if self.validation_set is not None and len(self.validation_set):
            val = self.evaluate(self.validation_set)
            summary.update({f"validation_{k}": v for k, v in val.items()})
            self.trainer.schedule.after_epoch(val["accuracy"])
        self.save_checkpoint(self.out / "last.npz")
        acc = summary.get("validation_accuracy", summary["train_accuracy"])
        if acc > self.best["validation_accuracy"]:
            self.best = {"validation_accuracy": acc, "epoch": self.epoch}
            self.save_checkpoint(self.out / "best.npz")
        self.emit("epoch", **summary)
        return summary

    def evaluate(self, dataset):
        samples = self._inputs(dataset.samples())
        return {k: float(v) for k, v in self.trainer.evaluate(samples, dataset.labels).items()}

    def fit(self, epochs=None, should_stop=lambda: False):
        """Train until `epochs` (default: the configured number) are done or should_stop()."""
        self.out.mkdir(parents=True, exist_ok=True)
        writer = MetricsWriter(self.out / "metrics.jsonl")
        self.observers.append(writer)
        try:
            if self.epoch == 0:
                self.emit("event", epoch=0, what="start", config=config_to_dict(self.configs))
            target = epochs if epochs is not None else self.run_cfg.epochs
            while self.epoch < target and not should_stop():
                if self.train_epoch(should_stop) is None:
                    break
        finally:
            self.observers.remove(writer)
            writer.close()
        return self.best

    # ---- checkpoints ---------------------------------------------------------------------
    def save_checkpoint(self, path):
        p = self.trainer.params
        arrays = {f"params/{k}": v for k, v in p._asdict().items() if v is not None}
        arrays.update({f"adam/{k}": v for k, v in self.trainer.optimiser.state_dict().items()})
        sched = self.trainer.schedule
        state = {"epoch": self.epoch, "step": self.step, "best": self.best, "lr": sched.lr, "lr_base": sched.base,
                 "ema_fast": sched.fast, "ema_slow": sched.slow, "since_change": sched.epochs_since_change,
                 "config": config_to_dict(self.configs)}
        arrays["state"] = np.array(json.dumps(state))
        atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def resume(cls, path, observers=(), data=None, engine=None, **overrides):
        """A run continued from a checkpoint (its config, weights, optimiser and schedule)."""
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
        run.epoch, run.step, run.best = state["epoch"], state["step"], state["best"]
        metrics = run.out / "metrics.jsonl"
        if metrics.exists():
            truncate_metrics(metrics, run.epoch)  # drop the batches of an interrupted epoch
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
