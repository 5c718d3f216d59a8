"""Changes to a run between two batches: hot settings, checkpoints in memory to go back to, and
new runs made from a run (a reset, a visitor's own run, a branch).

Called only from the session's thread (or while it has none), at a batch boundary."""
import copy
from collections import deque
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np

from .run import TrainingRun, make_augmentation
from .settings import DATA_SETTINGS, SETTINGS, configs_with, settings_of

HOT = tuple(name for name, s in SETTINGS.items() if s.hot)


def apply_hot(run, what, value):
    """Apply one session command (loss, lr, regulariser, augment) to the run; returns (old, new, label)."""
    if what == "loss":
        old, new, label = run.training.loss, value, f"loss → {value}"
        run.trainer.set_loss(value)
    elif what == "lr":
        old, new, label = run.trainer.schedule.lr, value, f"lr → {value:g}"
        run.trainer.schedule.set_base(value)
        run.training.lr = run.trainer.optimiser.lr = value  # so that checkpoints and reset() keep it
    else:
        target = run.augment if what == "augment" else run.training
        old, new = {k: getattr(target, k) for k in value}, dict(value)
        label = ", ".join(f"{k} → {v}" for k, v in value.items())
        target.param.update(**value)
        if what == "augment":
            run.augmentation = make_augmentation(run.augment, run.train_set.n_channels, run.training.trial_ms)
    return old, new, label


def hot_commands(changes):
    """{name: value} of hot settings as session commands: [(command, value)]."""
    commands = {}
    for name, value in changes.items():
        commands.setdefault(SETTINGS[name].hot, {})[name] = value
    return [(c, v[c] if c in ("loss", "lr") else v) for c, v in commands.items()]


class Checkpoint(NamedTuple):
    step: int
    why: str  # "loss → sum" (taken before that change) or "step 100" (a periodic one)
    params: object  # Params: the trainer replaces them after each batch, never mutates them
    adam: dict
    schedule: dict
    grad_norms: list
    settings: dict  # the hot settings at the time


_SCHEDULE = ("lr", "base", "fast", "slow", "epochs_since_change")


def take(run, why):
    sched = run.trainer.schedule
    return Checkpoint(run.step, why, run.trainer.params, copy.deepcopy(run.trainer.optimiser.state_dict()),
                      {k: getattr(sched, k) for k in _SCHEDULE}, list(run.trainer.clip.history),
                      {k: v for k, v in settings_of(run.configs).items() if k in HOT})


def restore(run, checkpoint):
    """Weights, Adam's state, the schedule and the hot settings as they were; returns {name: value}
    of the settings that changed back."""
    now = settings_of(run.configs)
    changed = {k: v for k, v in checkpoint.settings.items() if now[k] != v}
    for command, value in hot_commands(changed):
        apply_hot(run, command, value)
    sched = run.trainer.schedule
    for k, v in checkpoint.schedule.items():
        setattr(sched, k, v)
    run.trainer.optimiser.load_state_dict(copy.deepcopy(checkpoint.adam))
    run.trainer.clip.history = list(checkpoint.grad_norms)
    run.trainer.params = checkpoint.params
    return changed


CHECKPOINT_BYTES = 200 * 2**20  # the default memory budget of a session's checkpoints


def _arrays(cp):
    yield from (x for x in cp.params if x is not None)
    yield from (np.asarray(v) for v in cp.adam.values())


class Checkpoints:
    """The checkpoints to go back to: one before each hot change (the newest `changes`) and one
    every `every` steps (the newest `periodic`), within `max_bytes` of memory (None: no budget).
    A checkpoint costs about 3 copies of the network's weights (weights, Adam's two moments), so
    a large network meets the budget before the counts: then the oldest periodic checkpoints go
    first, then the older ones taken before a change, and the newest one taken before a change
    (what undo needs) last; one that alone is over the budget is not kept (`dropped` counts them)."""

    def __init__(self, changes=10, periodic=10, every=50, max_bytes=CHECKPOINT_BYTES):
        if max_bytes is not None and not max_bytes > 0:
            raise ValueError(f"max_bytes must be a positive number of bytes or None, got {max_bytes!r}")
        self.every, self.max_bytes, self.dropped = int(every), max_bytes, 0
        self.changes, self.periodic = deque(maxlen=changes), deque(maxlen=periodic)

    def before_change(self, checkpoint):
        self.changes.append(checkpoint)
        self._fit()

    def after_batch(self, run):
        if self.every and run.step % self.every == 0:
            self.periodic.append(take(run, f"step {run.step}"))
            self._fit()

    @property
    def nbytes(self):
        """The memory the kept checkpoints hold; weights that two of them share count once."""
        seen = {}
        for cp in (*self.changes, *self.periodic):
            for a in _arrays(cp):
                seen[id(a)] = a.nbytes
        return sum(seen.values())

    def _fit(self):
        if self.max_bytes is None:
            return
        while (self.changes or self.periodic) and self.nbytes > self.max_bytes:
            if self.periodic:
                self.periodic.popleft()
            elif len(self.changes) > 1:
                self.changes.popleft()
            else:
                self.changes.pop()
            self.dropped += 1

    def pop_change(self):
        """The newest checkpoint taken before a change, removed (None if there is none); periodic
        ones taken after it go too, since they hold the change undone."""
        if not self.changes:
            return None
        cp = self.changes.pop()
        while self.periodic and self.periodic[-1].step > cp.step:
            self.periodic.pop()
        return cp

    def newest_change(self):
        """The newest checkpoint taken before a change, kept (None if there is none)."""
        try:
            return self.changes[-1]
        except IndexError:  # none, or emptied by the session's thread meanwhile
            return None

    def newest_before(self, step):
        """The newest checkpoint taken at or before `step`, kept (None if there is none)."""
        found = [cp for cp in (*self.changes, *self.periodic) if cp.step <= step]
        return max(found, key=lambda cp: cp.step, default=None)

    def __len__(self):
        return len(self.changes) + len(self.periodic)

    def clear(self):
        self.changes.clear()
        self.periodic.clear()
        self.dropped = 0


def run_like(old, changes=None, seed=None, observers=None, **run_options):
    """A new TrainingRun with the old one's settings and `changes` (and `seed`, RunConfig
    `run_options` such as out_dir), fresh weights. It shares the old run's data (already subset
    and split) unless a data setting changed, and its engine if the backend is the same."""
    configs = configs_with(old.configs, changes or {})
    if seed is not None:
        configs["training"].seed = int(seed)
    configs["run"].param.update(**run_options)
    if any(getattr(configs["run"], k) != getattr(old.run_cfg, k) for k in DATA_SETTINGS):
        data = None  # loaded by the run
    else:
        data = SimpleNamespace(train=old.train_set, validation=old.validation_set, test=old.test_set)
    engine = old.trainer.engine if old.trainer.engine.name == configs["training"].backend else None
    return TrainingRun(configs["run"], configs["network"], configs["training"], configs["augment"],
                       observers=list(old.observers if observers is None else observers), data=data, engine=engine)


def branch_run(old, checkpoint, changes, out_dir):
    """A run that goes on from `checkpoint` of `old` (weights, Adam, schedule, step and epoch
    counts) with hot `changes`: the same data and engine, its own folder, no observers."""
    run = run_like(old, changes, observers=[], out_dir=str(out_dir))
    restore(run, checkpoint._replace(settings={**checkpoint.settings, **changes}))
    if "lr" in changes:  # the checkpoint's schedule held the old rate
        run.trainer.schedule.set_base(changes["lr"])
    run.step, run.epoch = checkpoint.step, old.epoch
    return run
