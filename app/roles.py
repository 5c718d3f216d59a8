"""Who a page is and what its link may do; a part of the Dashboard (app/dashboard.py).

- The teacher's page (`steering`: opened with the server's ?key=, or the first page when no key
  was given to the server) changes the shared run, from its link too, and decides whether
  students may steer (a setting the session owns, so every page follows it).
- A student's page (?mode=classroom) watches: its controls are greyed out, with a line saying
  why, until the teacher lets students steer.
- A page whose link asks for settings it may not apply to the shared run offers "start my own
  run": a private run for that visitor (app/shared.py), ended when the page closes."""
import panel as pn
import param

from eventprop_lab.settings import SETTINGS, SHOWN

from .controls import parse_url_args
from .shared import end_private_run, start_private_run

WATCHING = "You are watching the class's run: the teacher has not let students change it."
STEERING = "The teacher lets students steer: your changes reach everyone's run."


class PageRole:
    """Roles, links and a visitor's own run, for the Dashboard (which owns the state used here)."""

    def _init_role(self):
        self.classroom = False  # opened with ?mode=classroom
        self._declined = {}  # what the link asked that a shared run did not take: an own run can
        self._shared = None  # the class's session while this page shows its own run
        self.students_toggle = pn.widgets.Checkbox(label="students may steer", value=False, visible=False,
                                                  css_classes=["students-toggle"])
        self.students_toggle.param.watch(self._toggle_students, "value")
        self.role_note = pn.pane.Markdown("", visible=False, sizing_mode="stretch_width")
        self.own_run_button = pn.widgets.Button(label="start my own run", color="primary", visible=False,
                                                description="a run of your own with your link's settings, "
                                                            "ended when you close this page")
        self.own_run_button.on_click(lambda event: self.start_own_run())
        self.back_button = pn.widgets.Button(label="back to the class's run", visible=False)
        self.back_button.on_click(lambda event: self.back_to_shared())
        self._toggle_syncing = False

    @property
    def own_run(self):
        return self._shared is not None

    def may_steer(self):
        """Whether this page's controls and buttons may change its session now."""
        if self.session is None:
            return False
        if self.steering or self.own_run or not self.classroom:
            return True
        return bool(self.session.settings.get("students_may_steer"))

    def _apply_role(self):
        """Grey out or free the controls and buttons, and show the role's widgets."""
        allowed = self.may_steer()
        for name in SHOWN:
            if self.controls.param[name].constant == allowed:
                self.controls.param[name].constant = not allowed
        for button in self.buttons.values():
            button.disabled = not allowed
        self._apply_branch_role(allowed)
        teacher = self.steering and not self.own_run
        self.students_toggle.visible = teacher
        if self.session is not None and self.students_toggle.value != self.session.settings["students_may_steer"]:
            self._toggle_syncing = True
            try:
                self.students_toggle.value = self.session.settings["students_may_steer"]
            finally:
                self._toggle_syncing = False
        student = self.classroom and not self.steering and not self.own_run
        self.role_note.object = f"_{STEERING if allowed else WATCHING}_" if student else ""
        self.role_note.visible = student
        self.own_run_button.visible = bool(self._declined) and not self.own_run
        self.back_button.visible = self.own_run

    def _toggle_students(self, event):
        if self._toggle_syncing or self.session is None or not self.steering or self.own_run:
            return
        self.session.set(students_may_steer=event.new)
        self.message = "students may steer" if event.new else "students watch"
        self._follow()

    # ---- links ---------------------------------------------------------------------------
    def _read_url(self, args):
        self._url_settings, self.hidden, problems = parse_url_args(args)
        mode = (args or {}).get("mode")
        mode = mode[-1] if isinstance(mode, (list, tuple)) and mode else mode
        self.classroom = (mode.decode() if isinstance(mode, bytes) else mode) == "classroom"
        if problems:
            self.link_report = "link: " + "; ".join(problems)

    def _report(self, note):
        self.link_report = "; ".join(x for x in (self.link_report or "link", note) if x)

    def _apply_url_settings(self):
        """A link's settings, where they differ from the session's, from the steering page only:
        hot ones from the next batch, the others by a reset if the run has not trained yet (so
        that no marker says "changed"), else on the next reset. Elsewhere they are named, and
        "start my own run" offers them."""
        s = self.session
        now = s.settings
        wanted = {k: v for k, v in self._url_settings.items() if now[k] != v}
        self._url_settings = {}
        if not wanted:
            return
        asked = ", ".join(f"{k}={SETTINGS[k].to_text(v)}" for k, v in wanted.items())
        if not self.steering:
            self._declined = wanted
            self._report(f"{asked} not applied: this run is shared, and only the teacher's page changes it "
                         "from a link (start your own run to try them)")
            self._apply_role()
            return
        try:
            s.set(**wanted)
            if s.progress["step"] == 0 and s.status in ("idle", "stopped"):
                s.reset()
        except Exception as exc:  # checked already; a reset may still fail (a backend missing here)
            self._report(f"{asked} not applied: {exc}")
            self._follow(force=True)
            return
        self._follow(force=True)
        self.message = "settings from the link"

    def share_url(self):
        """A link to this page with the current settings (and the same hidden controls)."""
        query = self.controls.query()
        if self.hidden:
            query = "&".join(q for q in (query, "hide=" + ",".join(sorted(self.hidden))) if q)
        base = ""
        try:
            base = (pn.state.location.href or "").split("?")[0] if pn.state.location else ""
        except Exception:  # outside a server session there is no location
            base = ""
        return f"{base}?{query}" if query else (base or "?")

    def _update_share(self, *events):
        self.share.object = f"[link to these settings]({self.share_url()})"

    # ---- a visitor's own run -------------------------------------------------------------
    def start_own_run(self):
        """Leave the class's run for a private one with the link's settings (app/shared.py);
        False (and a message) if the server runs as many as it allows."""
        if self.session is None or self.own_run:
            return False
        try:
            future = start_private_run(self.session, self._declined)
        except RuntimeError as exc:
            self.message = str(exc)
            return False
        self._shared, self._declined = self.session, {}
        with param.parameterized.discard_events(self):
            self.session = None
        self.loader = future
        self.message = "starting your own run…"
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:  # a served page: ended with it
            pn.state.on_session_destroyed(lambda context: self.end_own_run())
        self._apply_role()
        return True

    def end_own_run(self):
        """Stop this page's own run (if it shows one, or once it is built) and let its place go."""
        if not self.own_run:
            return
        if self.session is not None:
            end_private_run(self.session)
        elif self.loader is not None:
            self.loader.add_done_callback(lambda f: f.exception() is None and end_private_run(f.result()))

    def back_to_shared(self):
        """End this page's own run and show the class's run again."""
        if not self.own_run:
            return
        self.end_own_run()
        shared, self._shared = self._shared, None
        self.loader = None
        self._attach(shared)
        self.message = "back to the class's run"
