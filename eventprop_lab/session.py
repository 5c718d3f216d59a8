"""A training run in a background thread, steered by commands, streaming its observations.

Threading contract: while the session's thread is alive, it alone touches the TrainingRun
(trainer, parameters, configs, augmentation, counters). Other threads may only
- send commands (start, pause, step, stop, reset, settings); they go through a queue and are
  applied at the next batch boundary (a batch inside the engine is never interrupted);
- hold() the training: it waits at its next batch boundary, as while paused, until released
  (the Speak tab's cochlea gets the CPUs meanwhile);
- read observations from the ObservationBuffer (through a Reader);
- read `status`, `progress`, `last_error`, `history()`, `settings`, `pending_reset` and `params`
  (a snapshot: the trainer replaces its Params after every batch and never mutates them in place).
session.run and its parts may be touched only while no thread is alive (before start(), after
stop() or reset()).

The session owns the current settings (eventprop_lab/settings.py): `set(**changes)` checks every
change before it applies any; hot ones reach the run at the next batch boundary, the others wait
for reset(). Each accepted change is published at once as an event observation ("settings"), and
`settings_version` counts them, so every page showing the session can follow it. Besides the
run's settings it owns the teacher's (settings.ROLES), which a reset keeps.

Before every hot change and every few steps it keeps a checkpoint in memory (eventprop_lab/rewind.py;
at most `checkpoint_bytes` of them, 200 MB unless set): undo() goes back to the weights, optimiser
state and hot settings from before the last change. It keeps the per-batch curves of the whole
run, thinned (long_history, eventprop_lab/history.py).

A branch (branch(), eventprop_lab/steering.py) shares its run's `turns`: the two train one batch
at a time, in turn, never two sets of numba threads on the same cores at once.
"""
import contextlib
import itertools
import queue
import threading
import time
import traceback
import weakref
from collections import deque

import numpy as np

from .config import AugmentConfig, config_to_dict
from .history import FIELDS, LongHistory
from .observe import EventRecord, MetricsWriter
from .rewind import CHECKPOINT_BYTES, Checkpoints, run_like
from .run import TrainingRun
from .settings import ROLES, SETTINGS, settings_of
from .steering import Steering
from .stream import ObservationBuffer, Reader, Since  # noqa: F401 (part of this module's interface)

HOT_CHANGES = tuple(dict.fromkeys(s.hot for s in SETTINGS.values() if s.hot))  # the session's commands
HOLD_LIMIT_S = 5.0  # the longest a hold keeps the training waiting (Speak: about 1 s for a 1 s word)
_WAKE = ("wake", None)  # put on the queue by a release: ends the thread's wait, is no command (not counted)


class TrainingSession(Steering):
    """Owns a TrainingRun and one daemon thread that trains it batch by batch on command."""

    def __init__(self, run: TrainingRun, capacity=2000, probe_capacity=20, metrics_file=True, history_recent=2000,
                 history_capacity=1000, checkpoint_every=50, checkpoint_bytes=CHECKPOINT_BYTES, turns=None):
        self.run = run
        self.turns = Turns() if turns is None else turns  # shared with the sessions that take turns with this one
        self.branches = weakref.WeakSet()  # the branches made from this session that are still referenced
        self.branch_label = None  # a branch's: "branch 1: loss → sum"
        self.buffer = ObservationBuffer(capacity, probe_capacity)
        self.long_history = LongHistory(history_recent, history_capacity)
        self.checkpoints = Checkpoints(every=checkpoint_every, max_bytes=checkpoint_bytes)
        self._roles = {name: s.default for name, s in ROLES.items()}
        self._branches = itertools.count(1)  # numbers the branches' folders and markers
        self.metrics_file = metrics_file  # append to metrics.jsonl in the run's folder, as fit() does
        self._commands = queue.Queue()
        self._cond = threading.Condition()  # guards the status fields; notified whenever they change
        self._control = threading.Lock()  # serialises starting, joining and rebuilding
        self._thread = None
        self._holds, self._hold_ids = {}, itertools.count()  # {id: deadline (time.monotonic)} of holds taken
        # times all holds ended, and their count when the thread began to wait for holds (None: it is not)
        self._hold_gaps, self._held_since = 0, None
        run.observers.insert(0, self._observe)  # first, so that a failing observer cannot hide ours
        self._clear_state()

    @classmethod
    def from_configs(cls, run_cfg, net, training, augment=None, *, data=None, engine=None, observers=(), **kwargs):
        run = TrainingRun(run_cfg, net, training, augment or AugmentConfig(), observers=list(observers),
                          data=data, engine=engine)
        return cls(run, **kwargs)

    def _clear_state(self):
        self._queued, self._on_reset = {}, {}  # hot changes sent but not applied; changes waiting for reset
        self._epoch = None  # the half-done epoch: kept across pause, stop and errors
        self._budget, self._until_epoch_end = None, False  # step(n) / step_epoch() in progress
        self._announced = self.run.step > 0  # a run that has not trained yet gets a "start" event
        self._rates = deque(maxlen=8)  # (samples, seconds) of the last batches
        self.long_history.clear()
        self.checkpoints.clear()
        with self._cond:
            self._state, self._last_error, self.last_traceback = "idle", None, None
            self._pending, self._history = 0, []
            self.settings_version = getattr(self, "settings_version", 0) + 1
            self._publish()

    # ---- what other threads may read -------------------------------------------------------
    def _observe(self, obs):
        self.buffer.append(obs)
        if obs.kind == "batch":
            self.long_history.add({f: getattr(obs, f) for f in FIELDS})
        if obs.kind in ("epoch", "event"):
            with self._cond:
                self._history.append(obs)

    def _publish(self):  # with self._cond held, from the thread (or while there is none)
        run, epoch = self.run, self._epoch
        n, secs = (sum(x) for x in zip(*self._rates)) if self._rates else (0, 0.0)
        self._params = run.trainer.params
        self._progress = {"epoch": run.epoch, "batch": epoch.next if epoch else 0,
                          "n_batches": len(epoch.index_batches) if epoch else None, "step": run.step,
                          "samples_per_s": n / secs if secs else None, "loss": run.training.loss}
        self._cond.notify_all()

    def _snapshot(self):
        now = time.monotonic()
        return dict(self._progress, state=self._state, last_error=self._last_error, pending=self._pending,
                    held=sum(deadline > now for deadline in self._holds.values()))

    @property
    def status(self):
        """One of "idle", "running", "paused", "stopped", "error" (paused by a failure)."""
        with self._cond:
            return self._state

    @property
    def last_error(self):
        with self._cond:
            return self._last_error

    @property
    def progress(self):
        """State and counters for a progress display (epoch: epochs completed; held: holds in force)."""
        with self._cond:
            return self._snapshot()

    @property
    def params(self):
        with self._cond:
            return self._params

    def history(self):
        """The epoch summaries and events (start, hot changes, errors) since the last reset."""
        with self._cond:
            return list(self._history)

    @property
    def settings(self):
        """{name: value} of every setting as it is now: applied, sent, or waiting for reset."""
        with self._cond:
            return {**settings_of(self.run.configs), **self._queued, **self._on_reset, **self._roles}

    @property
    def pending_reset(self):
        """{name: value} of the changes that wait for reset()."""
        with self._cond:
            return dict(self._on_reset)

    def reader(self, from_start=True):
        return Reader(self.buffer, from_start)

    def wait(self, timeout=30.0, until=None):
        """Block until every command sent is handled and training is not running (or until
        until(progress) holds, or no thread is alive); returns whether that condition holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                p = self._snapshot()
                done = until(p) if until else p["pending"] == 0 and p["state"] != "running"
                left = deadline - time.monotonic()
                if done or left <= 0 or not self._alive():
                    return bool(done)
                self._cond.wait(min(left, 0.5))

    # ---- commands ----------------------------------------------------------------------------
    def start(self):
        """Train until paused or stopped; also resumes after a pause, a stop or an error."""
        self._send("run")
        self._ensure_thread()

    resume = start

    def pause(self):
        if self._alive():
            self._send("pause")

    def hold(self, limit_s=HOLD_LIMIT_S):
        """Make the training wait at its next batch boundary until the Hold is released (`with
        session.hold(): ...`, or hold.release()); returns at once, while the batch in flight ends.

        The batches, their order and the weights are those of a run never held, only later; status
        stays "running" and commands are still applied at once. Holds nest: the training waits
        while any is in force, and after the last one ends it trains one batch before it waits for
        a new one, so back-to-back holds (a classroom speaking in turn) slow it but never stop it.
        A hold ends by itself after `limit_s` seconds (default HOLD_LIMIT_S), so that a page stuck
        before its release cannot freeze the run; release() then says it had lapsed."""
        if not limit_s > 0:
            raise ValueError(f"limit_s must be a positive number of seconds, got {limit_s!r}")
        with self._cond:
            key = next(self._hold_ids)
            self._holds[key] = time.monotonic() + limit_s
        return Hold(self, key)

    def _release(self, key):
        with self._cond:
            deadline = self._holds.pop(key, None)
            in_force = deadline is not None and deadline > time.monotonic()
            last = not self._holds
            if last and deadline is not None:
                self._hold_gaps += 1
        if last and deadline is not None and self._alive():
            self._commands.put(_WAKE)  # a thread waiting for the holds to end blocks on the queue
        return in_force

    def step(self, n_batches=1):
        """Train exactly n batches (the epoch's last one with its end-of-epoch work), then pause."""
        if isinstance(n_batches, bool) or not isinstance(n_batches, (int, np.integer)) or n_batches < 1:
            raise ValueError(f"n_batches must be a positive integer, got {n_batches!r}")
        self._send("step", int(n_batches))
        self._ensure_thread()

    def step_epoch(self):
        """Train to the end of the current epoch (a whole one at an epoch boundary), then pause."""
        self._send("step_epoch")
        self._ensure_thread()

    def stop(self):
        """End the thread after the current batch and join it. The half-done epoch is kept for a
        later start(); commands sent after the stop wait for it too. Idempotent."""
        if threading.current_thread() is self._thread:  # from an observer: it cannot join itself
            self._send("stop")
            return
        with self._control:
            if self._thread is not None:
                self._send("stop")
                self._thread.join()
                self._thread = None

    def reset(self, seed=None):
        """Stop; rebuild the run with the settings as they are now (hot changes sent and changes
        waiting for reset included) and fresh weights (from `seed` if given); clear history, buffer
        and metrics file; idle. A new dataset is loaded here. If the run cannot be built (say, a
        backend missing here), the changes waiting for reset are dropped, that is published, and
        the error raised: the old run goes on as it was."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("reset() cannot be called from the training thread")
        self.stop()
        with self._control:
            old = self.run
            held = self._drain()
            with self._cond:
                wanted = {**self._queued, **self._on_reset}
            try:  # on copies of the configs: the old run keeps its own if the new one cannot be built
                run = run_like(old, wanted, seed)
            except Exception as exc:
                for command in held:
                    self._commands.put(command)
                with self._cond:
                    dropped, self._on_reset = self._on_reset, {}
                self._published({k: getattr(old.configs[SETTINGS[k].section], k) for k in dropped},
                                source="reset failed", why=f"{type(exc).__name__}: {exc}")
                raise
            self.run = run
            for command in held:
                if command[0] not in HOT_CHANGES + _WAKE[:1]:  # the hot ones are in the new run's configs
                    self._commands.put(command)
            if self.metrics_file:
                (self.run.out / "metrics.jsonl").unlink(missing_ok=True)
            self.buffer.clear()
            self._clear_state()
            with self._cond:
                self._pending = self._commands.qsize()  # sent after the stop: they apply at the next start

    def _drain(self):
        held = []
        while True:
            try:
                held.append(self._commands.get_nowait())
            except queue.Empty:
                return held

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---- the thread --------------------------------------------------------------------------
    def _alive(self):
        return self._thread is not None and self._thread.is_alive()

    def _send(self, name, arg=None):
        with self._cond:
            self._pending += 1
        self._commands.put((name, arg))

    def _ensure_thread(self):
        if threading.current_thread() is self._thread:
            return
        with self._control:
            if not self._alive():
                self._thread = threading.Thread(target=self._loop, name="eventprop-session", daemon=True)
                self._thread.start()

    def _loop(self):
        run, writer = self.run, None
        try:
            run.out.mkdir(parents=True, exist_ok=True)
            if self.metrics_file:
                writer = MetricsWriter(run.out / "metrics.jsonl")
                run.observers.append(writer)
            if not self._announced:
                self._announced = True
                run.emit(EventRecord(what="start", epoch=0, extra={"config": config_to_dict(run.configs)}))
        except Exception as exc:
            self._fail(exc)
        try:
            while True:
                wait_s = self._wait_s()
                if self._handle_commands(wait_s):
                    break
                if wait_s == 0 and self.status == "running":
                    self._train_one()
        except BaseException as exc:  # a bug in the loop itself: reported, never silent
            self._fail(exc)
            raise
        finally:
            if writer is not None:
                run.observers.remove(writer)
                writer.close()
            with self._cond:
                self._state = "error" if self._state == "error" else "stopped"
                self._publish()

    def _wait_s(self):
        """How long the thread may wait for a command before it trains: None (until one comes) when
        not running, the time left of the holds in force while held, 0 when it should train on."""
        with self._cond:
            if self._state != "running":
                self._held_since = None
                return None
            now = time.monotonic()
            for key, deadline in list(self._holds.items()):
                if deadline <= now:  # lapsed: its release() will say so
                    del self._holds[key]
                    self._hold_gaps += not self._holds
            # after waiting until all holds ended it trains one batch, even if new ones came meanwhile
            if self._holds and self._held_since in (None, self._hold_gaps):
                self._held_since = self._hold_gaps
                return max(self._holds.values()) - now
            self._held_since = None
            return 0

    def _handle_commands(self, wait_s=0):
        """Apply queued commands in order, waiting up to wait_s seconds for the first (None: as long
        as it takes); True when told to stop (later ones stay queued)."""
        while True:
            try:
                name, arg = self._commands.get(block=wait_s != 0, timeout=wait_s)
            except queue.Empty:
                return False
            wait_s = 0
            if name == _WAKE[0]:
                continue
            try:
                if name == "stop":
                    return True
                if name in HOT_CHANGES:
                    self._apply(name, arg)
                    continue
                if name in ("undo", "rewind"):
                    self._go_back(name, arg)
                    continue
                if name == "branch":
                    self._branch(arg)
                    continue
                with self._cond:
                    if name == "pause":
                        self._state = "paused" if self._state == "running" else self._state
                        continue
                    self._state, self._last_error = "running", None
                self._budget = arg if name == "step" else None
                self._until_epoch_end = name == "step_epoch"
            except Exception as exc:
                self._fail(exc)
            finally:
                with self._cond:
                    self._pending -= 1
                    self._publish()

    def _event(self, what, **fields):
        self.run.emit(EventRecord(what=what, step=self.run.step, epoch=self.run.epoch + 1, **fields))

    def _train_one(self):
        try:
            with self.turns.turn():  # an epoch's end evaluates the validation set: kernels too
                if self._epoch is None:
                    self._epoch = self.run.begin_epoch()
                epoch = self._epoch
                if not epoch.done:  # done already when an observer failed after the epoch's last batch
                    t0 = time.perf_counter()
                    n = epoch.train_next_batch()
                    self._rates.append((n, time.perf_counter() - t0))
                    if n:
                        self.checkpoints.after_batch(self.run)
                if epoch.done:
                    self._epoch = None  # closed first: an epoch's end is not safe to repeat after a failure
                    epoch.finish()
        except Exception as exc:  # a failed batch is retried on resume
            self._fail(exc)
            return
        with self._cond:
            self._budget = None if self._budget is None else self._budget - 1
            if self._budget == 0 or (self._until_epoch_end and self._epoch is None):
                self._state, self._budget, self._until_epoch_end = "paused", None, False
            self._publish()

    def _fail(self, exc):
        message = f"{type(exc).__name__}: {exc}"
        with self._cond:
            self._state, self._last_error = "error", message
            self.last_traceback = traceback.format_exc()
            self._budget, self._until_epoch_end = None, False
            self._publish()
        try:
            self._event("error", message=message)
        except Exception:  # another observer failed as well: ours ran first and has the event
            pass


class Turns:
    """Sessions that share it train one batch at a time, first come first served: a session that
    wants another batch queues behind one that waits already, so two running sessions alternate
    and each gets half the batches. numba's workqueue threading layer aborts the process when two
    threads launch parallel kernels at once; and at the dashboard's size on a busy 2-core machine,
    a run and its branch trained no faster in total at once than in turns (26-32 batches/s both
    ways, against 29-31 for the run alone)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._queue = deque()  # the waiting sessions' tickets; the head's holder trains

    @contextlib.contextmanager
    def turn(self):
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket:
                    self._cond.wait()
            except BaseException:  # interrupted while waiting: the others must not wait for it
                self._queue.remove(ticket)
                self._cond.notify_all()
                raise
        try:
            yield
        finally:
            with self._cond:
                self._queue.popleft()
                self._cond.notify_all()


class Hold:
    """A hold on a session's training (TrainingSession.hold); a context manager. release() is
    idempotent and returns whether the hold was still in force (False: it had lapsed, or was
    released before)."""

    def __init__(self, session, key):
        self._session, self._key = session, key

    def release(self):
        return self._session._release(self._key)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
