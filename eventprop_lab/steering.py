"""The session's settings, its way back and its branches, part of TrainingSession
(eventprop_lab/session.py): set() is checked in the caller's thread; _apply(), _go_back() and
_branch() run in the session's thread, at a batch boundary (or in the caller's while it has none)."""
from concurrent.futures import Future
from .config import AugmentConfig
from .observe import EventRecord
from .rewind import apply_hot, branch_run, hot_commands, restore, take
from .settings import ROLES, SETTINGS, SettingError, check_settings, preset_settings, settings_of
from .training import check_loss_supported


class Steering:
    """set(), presets, undo() and rewind() of a TrainingSession (which owns the state they use)."""

    # ---- settings: all checked in the caller's thread; hot ones applied at the next batch ------
    def set(self, **changes):
        """Change settings by name (eventprop_lab/settings.py). Every change is checked before any
        is applied: one refused value raises SettingError (a ValueError) naming each refused one,
        and nothing changes. Hot settings take effect at the next batch boundary (blend with the
        next epoch), the others at reset(). Returns {name: value} of what changed."""
        return self._set(changes)

    def apply_preset(self, name):
        """The settings of a named preset (config.PRESETS), through set(); returns what changed."""
        return self._set(preset_settings(name), source=f"preset {name}")

    def _set(self, changes, force=(), source=None):
        checked = check_settings(changes)
        if "loss" in checked:
            try:
                check_loss_supported(self.run.trainer.engine, checked["loss"])
            except ValueError as exc:
                raise SettingError([f"loss={checked['loss']!r} refused: {exc}"]) from None
        with self._cond:
            now = self.settings
            applied = settings_of(self.run.configs)
            changed = {k: v for k, v in checked.items() if k in force or now[k] != v}
            hot = {}
            for name, value in changed.items():
                if name in ROLES:
                    self._roles[name] = value  # the session's own: at once
                elif SETTINGS[name].hot:
                    self._queued[name] = hot[name] = value
                elif value == applied[name]:
                    self._on_reset.pop(name, None)  # back to what the run has
                else:
                    self._on_reset[name] = value
            for command, value in hot_commands(hot):
                self._send(command, value)
        if changed:
            self._published(changed, source=source)
        return changed

    def _published(self, changes, source=None, why=None):
        with self._cond:
            self.settings_version += 1
            pending = sorted(self._on_reset)
            self._cond.notify_all()
        extra = {"changes": dict(changes), "on_reset": pending}
        if source:
            extra["source"] = source
        if why:
            extra["why"] = why
        self._observe(EventRecord(what="settings", step=self.run.step, epoch=self.run.epoch + 1, extra=extra))

    def undo(self):
        """At the next batch boundary, go back to the weights, Adam's state, the schedule and the
        hot settings from before the last hot change (each undo one change further back); the
        step count goes on, and an "undo" event marks the curves. Nothing to undo: an event says so."""
        self._send("undo")

    def rewind(self, step):
        """As undo(), to the newest checkpoint kept at or before `step` (one every few steps)."""
        self._send("rewind", int(step))

    def branch(self, **changes):
        """A Future of a second session that goes on from this one's weights, Adam state and
        schedule as they are at the next batch boundary, with other hot settings (say
        loss="sum"); idle, its folder beside this run's, its step count going on from here so that
        its curves overlay this one's. A "branch" event marks the curves here. The two take turns
        at the CPUs, a batch each (they share `turns`: eventprop_lab/session.py)."""
        checked = check_settings(changes)
        cold = [k for k in checked if k in ROLES or not SETTINGS[k].hot]
        if cold:
            raise SettingError([f"{k} cannot differ in a branch (a branch keeps the network)" for k in cold])
        future = Future()
        if self._alive():
            self._send("branch", (checked, future))
        else:
            self._branch((checked, future))
        return future

    def _branch(self, arg):
        changes, future = arg
        n = next(self._branches)
        label = ", ".join(f"{k} → {SETTINGS[k].to_text(v)}" for k, v in changes.items()) or "same settings"
        try:
            run = branch_run(self.run, take(self.run, "branch"), changes, self.run.out / f"branch-{n}")
            branch = type(self)(run, metrics_file=False, turns=self.turns)
        except Exception as exc:
            future.set_exception(exc)
            return
        branch.branch_label = f"branch {n}: {label}"
        self.branches.add(branch)
        try:  # the marker first: whoever waits on the future finds it in this run's stream
            self.run.emit(EventRecord(what="branch", step=self.run.step, epoch=self.run.epoch + 1,
                                      label=branch.branch_label, extra={"changes": dict(changes)}))
        finally:  # an observer that fails must not leave the caller waiting
            future.set_result(branch)

    def set_loss(self, name):
        """Set the loss; sent even if it is the current one (a fresh loss object: see the tests)."""
        self._set({"loss": name}, force=("loss",))

    def set_augmentation(self, **changes):
        """Change AugmentConfig fields. Per-sample ones (shift, dilate, jitter) apply from the next
        batch; blend and blend_probs from the next epoch, whose training set they build."""
        known = [k for k in AugmentConfig.param if k != "name"]
        unknown = [k for k in changes if k not in known]
        if not changes or unknown:
            raise ValueError(f"unknown augmentation setting(s) {unknown}; choose among {', '.join(known)}")
        self._set(changes)

    def set_learning_rate(self, lr):
        """A new base rate; it ends any warm-up (LearningRateSchedule.set_base)."""
        self._set({"lr": lr})

    def set_regulariser(self, strength=None, nu=None):
        changes = {k: v for k, v in (("reg_strength", strength), ("reg_nu", nu)) if v is not None}
        if not changes:
            raise ValueError("give strength and/or nu")
        self._set(changes)


    def _apply(self, what, value):
        before = take(self.run, "")
        old, new, label = apply_hot(self.run, what, value)
        self.checkpoints.before_change(before._replace(why=label))
        with self._cond:  # the run has it now; a later change of the same setting stays queued
            for k, v in (value if isinstance(value, dict) else {what: value}).items():
                if k in self._queued and self._queued[k] == v:
                    del self._queued[k]
        self._event(what, label=label, extra={"old": old, "new": new})

    def _go_back(self, how, step):
        cp = self.checkpoints.pop_change() if how == "undo" else self.checkpoints.newest_before(step)
        if cp is None:  # an event without a label: reported, no marker
            self._event(how, message=f"nothing to {how}: no checkpoint " +
                        ("from before a change" if how == "undo" else f"at or before step {step}"))
            return
        changed = restore(self.run, cp)
        if changed:
            self._published(changed, source=how)
        back = f"before {cp.why}" if how == "undo" else f"at step {cp.step}"
        self._event(how, message=f"{how}: the weights from {back}", label=f"{how} → step {cp.step}",
                    extra={"to_step": cp.step, "why": cp.why})

