"""Branches on the dashboard: "branch" starts a second run from the run's current weights with
another loss (and, if given, another learning rate) — TrainingSession.branch — and its per-batch
curves are drawn over the run's on every page that shows the run, in the branch's own colour.

- One Branches per session, shared by its pages (branches_of), as the session is (app/shared.py):
  at most MAX_BRANCHES at once, each in a slot that gives it its colour on every page.
- CPU: a branch takes turns with its run, one batch each (they share the session's `turns`), so
  on a 2-core laptop the run trains at about half its speed while one branch trains, and never
  two sets of numba threads run on the same cores. The dashboard's play, pause and step drive
  the run and its branches together; a branch made while the run trains starts at once.
- A branch ends when stopped from a page, when the run is reset (it came from weights the reset
  dropped), or when the server shuts down. Who may start or stop one: who may steer (app/roles.py).
  A visitor's own run does not branch: branches are for the class's run, so the server's load
  stays bounded."""
import threading

import panel as pn

from eventprop_lab.session import TrainingSession
from eventprop_lab.settings import SETTINGS, check_settings
from eventprop_lab.training import check_loss_supported

from .curves import BRANCH_COLORS

MAX_BRANCHES = len(BRANCH_COLORS)  # at once, per run: each one slows the run (they take turns at the CPUs)
COLOR_NAMES = ("purple", "pink")  # BRANCH_COLORS in words, for the note under the controls
_STARTING = "starting"  # a slot taken while its branch is made (at the run's next batch boundary)
_lock = threading.Lock()


def branches_of(session):
    """The Branches of a session, made once and shared by every page (and Python) that asks."""
    with _lock:
        found = getattr(session, "page_branches", None)
        if found is None:
            found = session.page_branches = Branches(session)
        return found


class Branches:
    """The branches of one session, in slots. Thread-safe: pages call it from their event loops,
    the session's thread when a branch is made."""

    def __init__(self, session):
        self.session = session
        self._lock = threading.Lock()
        self._slots = [None] * MAX_BRANCHES  # a branch's session, _STARTING, or None (free)
        self._run = session.run  # what they branched from: a reset replaces it and ends them
        self.version = 0  # counts the changes of the slots: a page redraws its overlay on one

    def live(self):
        """[(slot, branch session)] of the branches made and not stopped."""
        with self._lock:
            return [(i, b) for i, b in enumerate(self._slots) if isinstance(b, TrainingSession)]

    def start(self, **changes):
        """Start a branch with `changes` (hot settings, such as loss and lr); a Future of its
        session. ValueError, in a sentence for the page, for a refused value, for settings that
        are the run's own, or when MAX_BRANCHES are there already."""
        self.end_if_reset()
        s = self.session
        checked = check_settings(changes)
        if "loss" in checked:
            check_loss_supported(s.run.trainer.engine, checked["loss"])
        now = s.settings
        if all(now[k] == v for k, v in checked.items()):
            asked = ", ".join(f"{k} {SETTINGS[k].to_text(v)}" for k, v in checked.items()) or "nothing"
            raise ValueError(f"a branch needs settings other than the run's ({asked} is what the run has): "
                             "choose another loss or learning rate")
        with self._lock:
            if None not in self._slots:
                raise ValueError(f"{MAX_BRANCHES} branches are there already: stop one to start another")
            slot = self._slots.index(None)
            self._slots[slot] = _STARTING
        run = s.run
        try:
            future = s.branch(**checked)
        except Exception:
            with self._lock:
                self._slots[slot] = None
            raise
        future.add_done_callback(lambda f: self._made(slot, run, f))
        return future

    def _made(self, slot, run, future):
        branch = None if future.cancelled() or future.exception() is not None else future.result()
        with self._lock:
            wanted = self._slots[slot] is _STARTING
            keep = branch is not None and wanted and self.session.run is run
            if wanted:
                self._slots[slot] = branch if keep else None
                self.version += 1
        if branch is None:
            return
        if not keep:  # stopped, or the run reset, while it was made
            self.session.branches.discard(branch)
        elif self.session.status == "running":
            branch.start()

    def stop(self, slot, wait=False):
        """Stop the branch in `slot` and free it; returns the branch (None if there was none). It
        ends after its current batch: in the background unless `wait` (the server's shutdown)."""
        with self._lock:
            branch = self._slots[slot]
            if branch is None:
                return None
            self._slots[slot] = None
            self.version += 1
        if not isinstance(branch, TrainingSession):  # still being made: _made lets it go
            return None
        self.session.branches.discard(branch)
        if wait:
            branch.stop()
        else:  # a page's event loop must not wait for a batch (or two: they take turns)
            threading.Thread(target=branch.stop, name="eventprop-branch-stop", daemon=True).start()
        return branch

    def stop_all(self, wait=False):
        return [b for b in (self.stop(i, wait) for i in range(MAX_BRANCHES)) if b is not None]

    def end_if_reset(self):
        """Stop every branch if the run was reset since they began (on any page, or from Python);
        True if it was."""
        with self._lock:
            reset = self.session.run is not self._run
            self._run = self.session.run
        if reset:
            self.stop_all()
        return reset

    def drive(self, command, *args):
        """The run's play, pause or step, for its branches too."""
        for _, branch in self.live():
            getattr(branch, command)(*args)


class PageBranches:
    """A page's branch controls and overlay, for the Dashboard (which owns the state used here:
    session, curves, message, may_steer)."""

    def _init_branches(self):
        self.branch_loss = pn.widgets.Select(label="loss of the branch", options=list(SETTINGS["loss"].param.objects),
                                             width=150, css_classes=["branch-loss"])
        self.branch_lr = pn.widgets.FloatInput(label="its lr (blank: the run's)", value=None, width=150,
                                               placeholder="the run's", css_classes=["branch-lr"])
        self.branch_button = pn.widgets.Button(label="branch", color="primary", width=90,
                                               description="a second run from the current weights with this loss "
                                                           "(and lr); it takes turns with the run, a batch each, "
                                                           "and its curves are drawn over the run's")
        self.branch_button.on_click(lambda event: self.start_branch())
        self.branch_pick = pn.widgets.Select(options={}, width=150, visible=False)
        self.branch_stop_button = pn.widgets.Button(label="stop branch", width=90, visible=False)
        self.branch_stop_button.on_click(lambda event: self.stop_branch())
        self.branch_note = pn.pane.Markdown("", sizing_mode="stretch_width", visible=False,
                                            css_classes=["branch-note"])
        self._branch_future = None  # of the last branch this page started, until it is made
        self._forget_branches()

    def _forget_branches(self):
        """Draw the branches afresh at the next update (a new session shown, or the curves cleared)."""
        self._branch_seen = [None] * MAX_BRANCHES  # (branch, reader) drawn in each slot
        self._branch_version = None

    def _branches(self):
        return branches_of(self.session)

    def start_branch(self):
        """Start a branch with the chosen loss and lr; False (and a message) if it was refused."""
        if self.session is None:
            return False
        if not self.may_steer():
            self.message = "only the teacher starts a branch now"
            return False
        if self.own_run:
            self.message = "branches are for the class's run, not your own"
            return False
        changes = {"loss": self.branch_loss.value}
        if self.branch_lr.value is not None:
            changes["lr"] = self.branch_lr.value
        try:
            future = self._branches().start(**changes)
        except ValueError as exc:  # SettingError too: a refused value, named
            self.message = f"no branch: {exc}"
            return False
        self._branch_future = future
        if self._branch_failed():
            return False
        # made at once while the run has no thread, else at its next batch boundary
        later = "" if self.session.status == "running" else "; play or step trains it with the run"
        self.message = (f"{future.result().branch_label}: from step {self.session.progress['step']}"
                        if future.done() else "branch: made at the run's next batch") + later
        return True

    def _branch_failed(self):
        """Say so if this page's last branch could not be made (once); True if it could not."""
        future = self._branch_future
        if future is None or not future.done():
            return False
        self._branch_future = None
        if future.exception() is None:
            return False
        self.message = f"no branch: {type(future.exception()).__name__}: {future.exception()}"
        return True

    def stop_branch(self, slot=None):
        """Stop the branch in `slot` (default: the one picked); its overlay goes from every page."""
        if self.session is None or not self.may_steer():
            return False
        slot = self.branch_pick.value if slot is None else slot
        branch = None if slot is None else self._branches().stop(slot)
        self.message = f"{branch.branch_label}: stopped" if branch is not None else "no branch to stop"
        return branch is not None

    def _apply_branch_role(self, allowed):
        for widget in (self.branch_loss, self.branch_lr, self.branch_button, self.branch_pick,
                       self.branch_stop_button):
            widget.disabled = not allowed or self.own_run

    def _update_branches(self, status_due):
        """Follow the session's branches: an overlay per live one (new batches streamed), none for
        a stopped one; the note under the branch controls when the status line refreshes."""
        self._branch_failed()
        branches = self._branches()
        branches.end_if_reset()
        live = dict(branches.live())
        if branches.version != self._branch_version:
            self._branch_version = branches.version
            for slot in range(MAX_BRANCHES):
                branch = live.get(slot)
                seen = self._branch_seen[slot]
                if seen is not None and seen[0] is branch:
                    continue
                if branch is None:
                    self.curves.hide_branch(slot)
                    self._branch_seen[slot] = None
                else:
                    self.curves.show_branch(slot, branch.branch_label)
                    self._branch_seen[slot] = (branch, branch.reader(from_start=True))
            picks = {b.branch_label: slot for slot, b in live.items()}
            self.branch_pick.options = picks
            if self.branch_pick.value not in picks.values():
                self.branch_pick.value = next(iter(picks.values()), None)
            self.branch_pick.visible = self.branch_stop_button.visible = bool(live)
            status_due = True
        for slot, seen in enumerate(self._branch_seen):
            if seen is not None:
                observations = seen[1].poll(kinds=("batch",))
                if seen[1].cleared:
                    self.curves.show_branch(slot, seen[0].branch_label)
                self.curves.add_branch(slot, observations)
        if status_due:
            self.branch_note.object = "  \n".join(self._branch_line(slot, b) for slot, b in live.items())
            self.branch_note.visible = bool(live)

    @staticmethod
    def _branch_line(slot, branch):
        p = branch.progress
        # not "· step N": that is the status line's, and the pages' tests look for it
        line = f"**{branch.branch_label}** ({COLOR_NAMES[slot]}): {p['state']}, at step {p['step']}"
        return line + (f", ⚠ {p['last_error']}" if p["last_error"] else "")

    def _branch_panel(self):
        return pn.Column("**Branch** (a second run from these weights; it takes turns with the run)",
                         pn.Row(self.branch_loss, self.branch_lr), pn.Row(self.branch_button),
                         pn.Row(self.branch_pick, self.branch_stop_button), self.branch_note,
                         sizing_mode="stretch_width")
