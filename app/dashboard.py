"""The dashboard: controls generated from the run's param configs, play/pause/step/reset, a status
line, and live plots fed by a per-browser-session periodic callback that polls a session Reader.

Threading: the training thread only appends to the session's observation buffer. Everything that
touches Bokeh/Panel models happens in `update()`, which Panel runs on the browser session's event
loop (`pn.state.add_periodic_callback`)."""
import copy
import threading
from concurrent.futures import ThreadPoolExecutor

import panel as pn
import param

from eventprop_lab.config import AugmentConfig, RunConfig
from eventprop_lab.network import NetworkConfig
from eventprop_lab.session import TrainingSession
from eventprop_lab.training import TrainingConfig

from .plots import LearningCurves, ProbeView, TransportedView, WeightHistogram, grid

HOT = {"loss": "training", "lr": "training", "shift": "augment", "blend": "augment"}  # applied at once
ON_RESET = {"n_hidden": "network", "dataset": "run"}  # need a rebuild: applied by reset


def _like(config_cls, name):
    """The config's own parameter (type, bounds, doc), so the widget validates as the config does."""
    return copy.deepcopy(config_cls.param[name])


class Controls(param.Parameterized):
    """What the user may change; mirrors the run's configs, never touches them directly."""

    loss = _like(TrainingConfig, "loss")
    lr = _like(TrainingConfig, "lr")
    shift = _like(AugmentConfig, "shift")
    blend = _like(AugmentConfig, "blend")
    n_hidden = _like(NetworkConfig, "n_hidden")
    dataset = _like(RunConfig, "dataset")
    syncing = False

    def sync_from(self, run):
        configs = {"training": run.training, "augment": run.augment, "network": run.net, "run": run.run_cfg}
        sections = {**HOT, **ON_RESET}
        self.syncing = True  # the widgets follow; the dashboard's watchers ignore it
        try:
            self.param.update(**{k: getattr(configs[sec], k) for k, sec in sections.items()})
        finally:
            self.syncing = False


def build_session(dataset="randman-shd", n_hidden=96, out_dir="runs/dashboard", data=None, **training):
    """A session with a small network that trains visibly on a laptop (data loaded here: slow once)."""
    opts = dict(loss="sum_exp", lr=3e-3, batch_size=32)
    opts.update(training)
    return TrainingSession.from_configs(
        RunConfig(dataset=dataset, out_dir=out_dir, probe_every=10), NetworkConfig(n_hidden=n_hidden),
        TrainingConfig(**opts), AugmentConfig(), data=data)


_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventprop-loader")
_cache_lock = threading.Lock()


def shared_session(key="eventprop-lab/default", **kwargs):
    """A Future of one session per server process under `key` (every browser session watches and
    steers the same run: the classroom case). Built in a background thread so pages render at once."""
    with _cache_lock:
        if key not in pn.state.cache:
            pn.state.cache[key] = _pool.submit(build_session, **kwargs)
        return pn.state.cache[key]


class Dashboard(pn.viewable.Viewer):
    """Steers one TrainingSession and shows its observation stream live."""

    session = param.ClassSelector(class_=TrainingSession, allow_None=True, doc="the session shown")
    loader = param.Parameter(None, doc="a Future of a session, attached when done (while data load)")
    make_session = param.Callable(None, doc="make_session(dataset=, n_hidden=) for a reset that changes them")
    period = param.Integer(250, bounds=(20, None), doc="ms between plot updates")
    message = param.String("loading data…", doc="last notice shown beside the status")

    def __init__(self, **params):
        super().__init__(**params)
        self.controls = Controls()
        self.curves, self.probe, self.weights = LearningCurves(), ProbeView(), WeightHistogram()
        self.transported = TransportedView()
        self._reader, self._callback = None, None
        self.status = pn.pane.Markdown("**loading data…**", sizing_mode="stretch_width")
        self.bar = pn.indicators.Progress(value=0, max=1, sizing_mode="stretch_width", height=18)
        self.buttons = {name: pn.widgets.Button(label=label, color=kind, width=70)
                        for name, label, kind in (("play", "play", "success"), ("pause", "pause", "warning"),
                                                  ("step", "step", "primary"), ("reset", "reset", "danger"))}
        for name, button in self.buttons.items():
            button.on_click(lambda event, f=getattr(self, name): f())
        self.controls.param.watch(self._hot_change, list(HOT))
        self.controls.param.watch(self._rebuild_pending, list(ON_RESET))
        if self.session is not None:
            self._attach(self.session)

    # ---- session -------------------------------------------------------------------------
    def _attach(self, session):
        with param.parameterized.discard_events(self):
            self.session = session
        self._reader = session.reader(from_start=True)
        self.controls.sync_from(session.run)
        self.curves.clear(), self.probe.clear(), self.weights.clear(), self.transported.clear()
        self.message = ""

    def _try_attach(self):
        if self.session is not None or self.loader is None or not self.loader.done():
            return
        try:
            self._attach(self.loader.result())
        except Exception as exc:  # data could not be loaded: say so instead of a frozen page
            self.message = f"could not build the session: {type(exc).__name__}: {exc}"
            self.loader = None

    def _hot_change(self, *events):
        if self.session is None or self.controls.syncing:
            return
        for event in events:
            try:
                if event.name == "loss":
                    self.session.set_loss(event.new)
                elif event.name == "lr":
                    self.session.set_learning_rate(event.new)
                else:
                    self.session.set_augmentation(**{event.name: event.new})
                self.message = f"{event.name} → {event.new} (from the next batch)"
            except ValueError as exc:
                self.message = str(exc)

    def _rebuild_pending(self, *events):
        if self.controls.syncing:
            return
        self.message = ", ".join(f"{e.name} → {e.new}" for e in events) + ": applied on reset"

    # ---- buttons (also callable from Python) ----------------------------------------------
    def play(self):
        if self.session is not None:
            self.session.start()

    def pause(self):
        if self.session is not None:
            self.session.pause()

    def step(self, n_batches=1):
        if self.session is not None:
            self.session.step(n_batches)

    def reset(self):
        """Fresh weights; a changed dataset or hidden size rebuilds the run (the dataset via make_session)."""
        s, c = self.session, self.controls
        if s is None:
            return
        if c.dataset != s.run.run_cfg.dataset:
            if self.make_session is None:
                self.message = "this dashboard cannot change its dataset"
                return
            s.stop()
            self.message = f"loading {c.dataset}…"
            try:
                new = self.make_session(dataset=c.dataset, n_hidden=c.n_hidden)
            except Exception as exc:
                self.message = f"could not load {c.dataset}: {exc}"
                return
            self._attach(new)
            return
        s.stop()  # the run may be changed only while no thread is alive
        s.run.net.n_hidden = c.n_hidden
        s.reset()
        self.message = "reset: fresh weights"

    # ---- the periodic update (Bokeh's event loop only) ------------------------------------
    def update(self):
        self._try_attach()
        if self.session is None:
            self.status.object = f"**{self.message or 'loading data…'}**"
            return
        observations = self._reader.poll()
        if self._reader.cleared:
            self.curves.clear(), self.probe.clear(), self.weights.clear(), self.transported.clear()
        for view in (self.curves, self.probe, self.weights, self.transported):
            view.add(observations)
        p = self.session.progress
        self.status.object = self.status_line(p)
        self.bar.max = max(p["n_batches"] or 1, 1)
        self.bar.value = min(p["batch"], self.bar.max)

    def status_line(self, p):
        state = p["state"]
        if state == "running" and p["step"] == 0:
            state = "compiling kernels…"
        rate = f"{p['samples_per_s']:.0f} samples/s" if p["samples_per_s"] else "– samples/s"
        batches = f"{p['batch']}/{p['n_batches']}" if p["n_batches"] else "–"
        line = (f"**{state}** · epoch {p['epoch'] + 1} · batch {batches} · step {p['step']} · {rate} · "
                f"loss fn {p['loss']}")
        if p["last_error"]:
            line += f" · ⚠ {p['last_error']}"
        if self.message:
            line += f" · _{self.message}_"
        return line

    def _start_updates(self):
        if self._callback is None:
            self._callback = pn.state.add_periodic_callback(self.update, period=self.period)

    # ---- layout --------------------------------------------------------------------------
    def __panel__(self):
        widgets = pn.Param(self.controls, show_name=False, widgets={
            "lr": {"type": pn.widgets.FloatInput, "step": 1e-4, "format": "0.[0000]"},
            "n_hidden": pn.widgets.IntInput}, sizing_mode="stretch_width")
        pn.state.onload(self._start_updates)
        self.update()
        return pn.Row(
            pn.Column("## Eventprop Lab", pn.Row(*self.buttons.values()), widgets, width=340),
            pn.Column(self.status, self.bar,
                      pn.pane.Bokeh(grid(*self.curves.layout()), sizing_mode="stretch_width"),
                      pn.pane.Bokeh(grid(*self.probe.layout()), sizing_mode="stretch_width"),
                      pn.pane.Bokeh(grid(*self.transported.layout(), *self.weights.layout()),
                                    sizing_mode="stretch_width"),
                      sizing_mode="stretch_width"),
            sizing_mode="stretch_width")
