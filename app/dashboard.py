"""The dashboard: controls generated from the settings table (app/controls.py), play/pause/step/
undo/reset, a status line, and live plots fed by a per-browser-session periodic callback that polls
a session Reader. Every page follows its session's settings, whoever changed them; who may change
them is the page's role (app/roles.py). "branch" starts a second run from the current weights,
drawn over the run's curves on every page (app/branches.py).

Threading: the training thread only appends to the session's observation buffer. Everything that
touches Bokeh/Panel models happens in `update()`, which Panel runs on the browser session's event
loop (`pn.state.add_periodic_callback`). A page whose browser has gone is not pushed to, and its
callback stops when its session is destroyed (app/shared.py: quiet_closed_pages)."""
import time

import panel as pn
import param

from eventprop_lab.session import TrainingSession
from eventprop_lab.settings import SETTINGS, SHOWN
from kernels import BACKENDS, backend_available

from .branches import PageBranches
from .controls import (BUTTONS, CLASSROOM_HIDES, CUSTOM, HOT, ON_RESET, Controls, describe,  # noqa: F401
                       parse_url_args, widgets_for)
from .curves import LearningCurves
from .plots import PROJECTIONS, AdjointView, ProbeHistory, ProbeView, RateByWeight, TransportedView, WeightView, grid
from .replay import ReplayTools
from .roles import PageRole
from .shared import (build_session, claim_steering, page_connected, quiet_closed_pages, shared_session,  # noqa: F401
                     stop_shared_sessions)


class Dashboard(PageRole, PageBranches, pn.viewable.Viewer):
    """Steers one TrainingSession and shows its observation stream live."""

    session = param.ClassSelector(class_=TrainingSession, allow_None=True, doc="the session shown")
    loader = param.Parameter(None, doc="a Future of a session, attached when done (while data load)")
    steering = param.Boolean(True, doc="the teacher's page: its link's settings change the session, and it decides "
                                       "whether students may steer (False: a visitor's page of a shared run, which "
                                       "names what its link asked and offers a run of the visitor's own)")
    period = param.Integer(200, bounds=(20, None), doc="ms between plot updates (a browser sees a little fewer)")
    probe_interval = param.Number(1.0, bounds=(0, None),
                                  doc="s between redraws of the newest probe and of the weight bands")
    history_interval = param.Number(10.0, bounds=(0, None),
                                    doc="s between redraws of the curves' older part (block means of what rolled off)")
    status_interval = param.Number(1.0, bounds=(0, None),
                                   doc="s between refreshes of the status line and progress bar (sooner when the "
                                       "state or a message changes)")
    message = param.String("loading data…", doc="last notice shown beside the status")
    link_report = param.String("", doc="what the page's link asked that was refused or ignored; stays shown")
    url_args = param.Dict(None, allow_None=True,
                          doc="query arguments (settings, preset=, hide=, mode=classroom); default: the page's own")

    def __init__(self, **params):
        super().__init__(**params)
        self.controls = Controls()
        self.curves, self.probe, self.adjoint = LearningCurves(), ProbeView(), AdjointView()
        self.transported, self.by_weight = TransportedView(), RateByWeight()
        self.weights = {name: WeightView(name) for name in PROJECTIONS}
        self.probes = ProbeHistory()
        self._reader, self._callback, self._synced = None, None, None
        self._closed = False  # the page's session was destroyed: its browser has gone
        self.replay = ReplayTools(session=lambda: self.session)
        self._url_settings, self.hidden = {}, set()
        self._older_key, self._older_at = None, -float("inf")
        self.status = pn.pane.Markdown("**loading data…**", sizing_mode="stretch_width")
        self.bar = pn.indicators.Progress(value=0, max=1, sizing_mode="stretch_width", height=18)
        self.share = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.buttons = {name: pn.widgets.Button(label=label, color=kind, width=70)
                        for name, label, kind in (("play", "play", "success"), ("pause", "pause", "warning"),
                                                  ("step", "step", "primary"), ("undo", "undo", "light"),
                                                  ("reset", "reset", "danger"))}
        self.buttons["undo"].description = "back to the weights from before the last change"
        for name, button in self.buttons.items():
            button.on_click(lambda event, f=getattr(self, name): f())
        self.follow = pn.widgets.Checkbox(label="follow the newest probe", value=True)
        self.scrub = pn.widgets.IntSlider(label="probe", start=0, end=1, value=0, disabled=True,
                                          sizing_mode="stretch_width")
        self.scrub.param.watch(self._scrubbed, "value")
        self.follow.param.watch(lambda e: e.new and self._show_probe(len(self.probes) - 1), "value")
        self._shown_step, self._scrub_syncing = None, False
        self._probe_drawn_at, self._probe_waiting = -float("inf"), False
        self._band_rows, self._bands_flushed_at = [], -float("inf")  # (step, percentiles) not yet drawn
        self._status_key, self._status_at = None, -float("inf")
        self.controls.param.watch(self._changed, list(SHOWN))
        self.controls.param.watch(self._preset_chosen, "preset")
        self.controls.param.watch(self._update_share, list(SHOWN))
        self._init_role()
        self._init_branches()
        if self.url_args is not None:
            self._read_url(self.url_args)
        if self.session is not None:
            self._attach(self.session)

    # ---- session -------------------------------------------------------------------------
    def _views(self):
        return (self.probe, self.adjoint, self.transported, self.by_weight, *self.weights.values())

    def _clear_views(self, archive):
        if archive:
            self.curves.archive()  # an earlier run stays as a faint overlay
        else:
            self.curves.clear()
        for view in self._views():
            view.clear()
        self.probes.clear()
        self._band_rows = []
        self._shown_step, self._older_key = None, None
        self._forget_branches()  # the curves' branch overlays went with them
        self._sync_scrub()

    def _attach(self, session):
        with param.parameterized.discard_events(self):
            self.session = session
        self._reader = session.reader(from_start=True)
        self._follow(force=True)
        self._clear_views(archive=True)
        self.message = ""  # "loading data…"; the link's report stays
        self._update_share()
        self._apply_url_settings()

    def _try_attach(self):
        if self.session is not None or self.loader is None or not self.loader.done():
            return
        try:
            self._attach(self.loader.result())
        except Exception as exc:  # data could not be loaded: say so instead of a frozen page
            self.message = f"could not build the session: {type(exc).__name__}: {exc}"
            self.loader = None
            if self.own_run:  # back to the class's run
                shared, self._shared = self._shared, None
                self._attach(shared)

    def _follow(self, force=False):
        """Show the session's settings if they changed since this page last showed them."""
        version = self.session.settings_version
        if force or version != self._synced:
            self._synced = version
            self.controls.sync(self.session.settings)
            self._update_share()
            self._apply_role()

    def _changed(self, *events):
        if self.session is None or self.controls.syncing:
            return
        if not self.may_steer():  # greyed out; a change that got through anyway goes back
            self.message = "only the teacher changes the run now"
            self._follow(force=True)
            return
        try:
            changed = self.session.set(**{e.name: e.new for e in events})
        except ValueError as exc:
            self.message = str(exc)
            self._follow(force=True)  # the widget goes back to the session's value
            return
        if changed:
            self.message = describe(changed)
        self._follow()

    def _preset_chosen(self, event):
        if self.session is None or self.controls.syncing or event.new == CUSTOM:
            return
        try:
            self.session.apply_preset(event.new)
        except ValueError as exc:
            self.message = f"preset {event.new} not applied: {exc}"
        else:
            waits = self.session.pending_reset
            self.message = f"preset {event.new}" + (f"; press reset for {', '.join(waits)}" if waits else "")
        self._follow(force=True)

    # ---- buttons (also callable from Python) ----------------------------------------------
    # play, pause and step drive the run's branches too: they train beside it (app/branches.py)
    def play(self):
        if self.may_steer():
            self.session.start()
            self._branches().drive("start")

    def pause(self):
        if self.may_steer():
            self.session.pause()
            self._branches().drive("pause")

    def step(self, n_batches=1):
        if self.may_steer():
            self.session.step(n_batches)
            self._branches().drive("step", n_batches)

    def undo(self):
        """Back to the weights, optimiser state and hot settings from before the last change."""
        if not self.may_steer():
            return
        last = self.session.checkpoints.newest_change()
        self.session.undo()
        self.message = f"undo: the weights from before {last.why} (step {last.step})" if last else "nothing to undo"

    def reset(self):
        """Fresh weights with the session's settings as they are now (a new dataset is loaded);
        the run's branches end."""
        s = self.session
        if not self.may_steer():
            return False
        if "dataset" in s.pending_reset:
            self.message = f"loading {s.pending_reset['dataset']}…"
        try:
            s.reset()
        except Exception as exc:  # e.g. genn without pygenn, or a dataset that is not there
            self.message = f"not reset: {exc}"
            self._follow(force=True)
            return False
        ended = self._branches().end_if_reset()
        self.message = "reset: fresh weights" + ("; its branches stopped" if ended else "")
        self._follow(force=True)
        return True

    # ---- probe scrubbing -----------------------------------------------------------------
    def _sync_scrub(self):
        n = len(self.probes)
        self._scrub_syncing = True
        try:
            self.scrub.param.update(start=0, end=max(n - 1, 1), disabled=n < 2,
                                    value=self.probes.index_of_step(self._shown_step) if n else 0)
            step = self._shown_step
            self.scrub.label = f"probe at step {step} ({n} kept)" if step is not None else "probe"
        finally:
            self._scrub_syncing = False

    def _scrubbed(self, event):
        if self._scrub_syncing or not len(self.probes):
            return
        self.follow.value = event.new == len(self.probes) - 1
        self._show_probe(event.new)

    def _show_probe(self, index):
        if not len(self.probes):
            return
        p = self.probes[max(0, min(index, len(self.probes) - 1))]
        for view in self._views():
            view.show(p)
        self._shown_step, self._probe_drawn_at = p["step"], time.monotonic()
        self._sync_scrub()

    # ---- the periodic update (Bokeh's event loop only) ------------------------------------
    def update(self):
        # one message to each browser per update, not one per changed model (benchmarks/bench_dashboard.py:
        # most of an update's time). Not freeze=True: its graph walk at the end made updates 4x slower.
        with pn.io.hold():
            self._update()

    def _update(self):
        self._try_attach()
        if self.session is None:
            report = f" · ⚠ _{self.link_report}_" if self.link_report else ""
            self.status.object = f"**{self.message or 'loading data…'}**{report}"
            return
        observations = self._reader.poll()
        self.replay.poll()
        if self._reader.cleared:
            self._clear_views(archive=True)
        self._follow()  # a change made on another page, or by a reset
        self.curves.add(observations)
        self._draw_older()
        n_before = len(self.probes)
        arrived = self.probes.add(observations)
        now = time.monotonic()
        self._band_rows += [(o.step, o.weight_percentiles) for o in observations
                            if o.kind == "batch" and o.weight_percentiles is not None]
        if arrived:
            self._probe_waiting = self.follow.value or n_before == 0
            if not self._probe_waiting:
                self._sync_scrub()  # the shown probe keeps its place while older ones roll off
        # Browsers pay for each redraw (benchmarks/bench_dashboard.py), so what changes slowly is
        # redrawn slowly: the newest probe and the weight bands at most every probe_interval, the
        # status line every status_interval; the learning curves take every update.
        if self._probe_waiting and (n_before == 0 or now - self._probe_drawn_at >= self.probe_interval):
            self._probe_waiting = False
            self._show_probe(len(self.probes) - 1)
        if self._band_rows and (not len(self.weights["W_in"].bands.data["step"])
                                or now - self._bands_flushed_at >= self.probe_interval):
            for view in self.weights.values():
                view.add(self._band_rows)
            self._band_rows, self._bands_flushed_at = [], now
        p = self.session.progress
        key = (p["state"], p["step"] == 0, p["loss"], p["last_error"], self.message, self.link_report, self._synced)
        due = key != self._status_key or now - self._status_at >= self.status_interval
        self._update_branches(status_due=due)
        if due:
            self._status_key, self._status_at = key, now
            self.status.object = self.status_line(p)
            self.bar.max = max(p["n_batches"] or 1, 1)
            self.bar.value = min(p["batch"], self.bar.max)

    def _draw_older(self):
        """What rolled off the streamed curves, from the session's long history, now and then."""
        now, first = time.monotonic(), self.curves.first_live_step
        key = (self.session.long_history.version, first)
        if first is None or key == self._older_key or now - self._older_at < self.history_interval:
            return
        self._older_key, self._older_at = key, now
        self.curves.show_older(self.session.long_history.columns(before=first))

    def status_line(self, p):
        state = p["state"]
        if state == "running" and p["step"] == 0:
            genn = self.session is not None and self.session.run.trainer.engine.name == "genn"
            state = "building the GeNN model…" if genn else "compiling kernels…"
        rate = f"{p['samples_per_s']:.0f} samples/s" if p["samples_per_s"] else "– samples/s"
        batches = f"{p['batch']}/{p['n_batches']}" if p["n_batches"] else "–"
        line = (f"**{state}** · epoch {p['epoch'] + 1} · batch {batches} · step {p['step']} · {rate} · "
                f"loss fn {p['loss']}")
        if p["last_error"]:
            line += f" · ⚠ {p['last_error']}"
        waiting = self.session.pending_reset if self.session is not None else {}
        if waiting:
            line += " · waiting for reset: " + ", ".join(f"{k} {SETTINGS[k].to_text(v)}" for k, v in waiting.items())
        if self.message:
            line += f" · _{self.message}_"
        if self.link_report:
            line += f" · ⚠ _{self.link_report}_"
        return line

    def _tick(self):
        if not self._closed and page_connected():  # a push to a page that has gone fails in the event loop
            self.update()

    def _page_closed(self, session_context):
        self._closed = True
        if self._callback is not None:
            self._callback.stop()
            self._callback = None

    def _start_updates(self):
        if self._callback is None and not self._closed:
            # background: otherwise Panel marks the session busy around each call, and that bookkeeping
            # cost the server more than the update itself (benchmarks/bench_dashboard.py); a redraw is
            # not work the user waits on. Panel's own refreshing widgets do the same.
            self._callback = pn.io.PeriodicCallback(callback=self._tick, period=self.period, background=True)
            self._callback.start()
            doc = pn.state.curdoc
            if doc is not None and doc.session_context is not None:  # a served page
                quiet_closed_pages()
                pn.state.on_session_destroyed(self._page_closed)

    # ---- layout --------------------------------------------------------------------------
    def _control_panel(self):
        shown = [k for k in SHOWN if k not in self.hidden]
        hot = [k for k in shown if k in HOT]
        later = [k for k in shown if k in ON_RESET]
        extra = {}
        missing = {b: why for b in BACKENDS for ok, why in [backend_available(b)] if not ok}
        if missing:  # greyed out, with the reason as the tooltip
            extra["backend"] = {"type": pn.widgets.Select, "disabled_options": list(missing),
                                "description": " ".join(f"{b}: {why}" for b, why in missing.items())}
        parts = [pn.Row(*(b for name, b in self.buttons.items() if name not in self.hidden)), self.role_note,
                 self.own_run_button, self.back_button]
        for title, names in (("**Change while it runs**", hot), ("**Applied on reset** (a new network)", later)):
            if names:
                parts += [title, pn.Param(self.controls, parameters=names, show_name=False,
                                          sizing_mode="stretch_width", widgets=widgets_for(names, extra))]
        if "preset" not in self.hidden:
            parts += ["**Preset** (its network settings wait for reset)",
                      pn.widgets.Select.from_param(self.controls.param.preset, name="", sizing_mode="stretch_width")]
        if "branch" not in self.hidden:
            parts.append(self._branch_panel())
        parts += [self.students_toggle, self.share]  # the toggle last: the controls' order stays the table's
        parts.append(self.replay.controls())  # every page: exporting or opening a replay changes no run
        return pn.Column("## Eventprop Lab", *parts, width=340)

    def __panel__(self):
        if self.url_args is None:
            args = getattr(pn.state, "session_args", None) or {}
            if args:
                self._read_url(args)
                if self.session is not None:
                    self._apply_url_settings()
        pn.state.onload(self._start_updates)
        self.update()
        self._update_share()
        text = pn.pane.Markdown
        return pn.Row(
            self._control_panel(),
            pn.Column(
                self.status, self.bar,
                text("### Learning curves\nThin lines: every batch; dots: every epoch (squares: validation). "
                     "Red dashed lines: a setting changed while training. Grey: earlier runs (before a reset). "
                     "Purple and pink: branches (a second run from the weights at their marker)."),
                pn.pane.Bokeh(grid(*self.curves.layout()), sizing_mode="stretch_width"),
                text("### One probed sample, and the weights\nEvery few batches one training sample is probed: "
                     "its spikes, the readout voltages, and the adjoint (λ) that Eventprop sends back through time; "
                     "and the weights at that moment."),
                pn.Row(self.scrub, self.follow, sizing_mode="stretch_width"),
                # dynamic: a browser receives and draws only the open tab; each plot it redraws costs CPU
                # that the training loses on a small machine (benchmarks/bench_dashboard.py)
                pn.Tabs(
                    ("Probed sample", pn.Column(
                        pn.pane.Bokeh(grid(*self.probe.layout()), sizing_mode="stretch_width"),
                        pn.pane.Bokeh(grid(*self.adjoint.layout(), *self.transported.layout(),
                                           *self.by_weight.layout()), sizing_mode="stretch_width"),
                        sizing_mode="stretch_width")),
                    ("Weights", pn.Column(
                        text("Each projection's histogram at the shown probe, and its percentiles over time "
                             "(shaded: 5–95 % and 25–75 %; line: median)."),
                        *(pn.pane.Bokeh(grid(*view.layout()), sizing_mode="stretch_width")
                          for view in self.weights.values()),
                        sizing_mode="stretch_width")),
                    dynamic=True, sizing_mode="stretch_width"),
                self.replay.view,  # an opened replay, read-only, below the live views
                sizing_mode="stretch_width"),
            sizing_mode="stretch_width")
