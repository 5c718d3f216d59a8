"""The classroom page: accidental gradient ascent, interactive (spec §3, the paper's Figs. 1-3).

Three param-driven viewers, one per demo, each a row of Bokeh figures with a short text beside
it; `Classroom` stacks them. All numbers come from eventprop_lab.classroom (the real engine).
Sections 1 and 2 are computed when the page is built and on each click (a few engine calls);
section 3 trains a small network, so it runs only when its button is pressed, off the event loop."""
import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import panel as pn
import param
from bokeh.layouts import row
from bokeh.models import BoxAnnotation, ColumnDataSource, Range1d, Span
from bokeh.plotting import figure

from eventprop_lab import classroom as demos

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
CORRECT, WRONG, GREY = "#2ca02c", "#d62728", "#888888"
_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="classroom-train")
_landscapes = {}  # (scenario, loss) -> the loss along w_B of the gedankenexperiment


def _figure(title, height=260, **kw):
    return figure(title=title, height=height, sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset",
                  **kw)


def _section(text, *figs, controls=()):
    return pn.Row(pn.Column(pn.pane.Markdown(text, sizing_mode="stretch_width"), *controls, width=330),
                  pn.pane.Bokeh(row(*figs, sizing_mode="stretch_width"), sizing_mode="stretch_width"),
                  sizing_mode="stretch_width")


# ---- 1. The cliff ---------------------------------------------------------------------------
CLIFF_TEXT = """### 1. The cliff
One neuron, one input spike at 5 ms through weight **w**. Lower w and the spike comes later;
below the **critical weight** (where the voltage peak just touches the threshold) it is gone.

The exact gradient dt\\*/dw grows as w approaches the cliff, but it stays finite on the side
where the spike exists, and on the other side there is no spike to take a gradient of. So the
gradient **cannot see the cliff** coming: it only says "later, faster"."""


class CliffView(pn.viewable.Viewer):
    """Voltage trace for the chosen w, t*(w) and |dt*/dw| with the critical weight marked."""

    w = param.Number(default=1.1 * demos.critical_weight(), bounds=(0.8 * demos.critical_weight(),
                                                                    1.8 * demos.critical_weight()),
                     step=0.01, doc="input weight")

    def __init__(self, neuron=None, engine=None, **params):
        super().__init__(**params)
        self.neuron = neuron or demos.OneNeuron()
        self.engine = engine
        n = self.neuron
        self.analytic = demos.critical_weight(n.tau_mem, n.tau_syn)
        self.numeric = demos.critical_weight_numeric(n, engine=engine)
        below = np.linspace(0.8, 1.0, 21)[:-1] * self.numeric
        above = self.numeric * (1 + np.geomspace(1e-6, 0.8, 160))
        self.sweep = demos.cliff_sweep(np.concatenate([below, above]), n, engine=engine)
        self.trace = ColumnDataSource({"t": [], "v": []})
        self.spike = ColumnDataSource({"t": [], "y": []})
        self.now = ColumnDataSource({"w": [], "t": [], "slope": []})
        self._build()
        self.param.watch(lambda e: self.update(), "w")
        self.update()

    def _build(self):
        s = self.sweep
        self.v_fig = _figure("membrane potential", x_axis_label="t (ms)", y_axis_label="V",
                             y_range=Range1d(-0.05, 1.25))
        self.v_fig.line("t", "v", source=self.trace, line_width=2)
        self.v_fig.add_layout(Span(location=1.0, dimension="width", line_dash="dashed", line_color=GREY))
        self.v_fig.scatter("t", "y", source=self.spike, size=12, marker="triangle", color=WRONG)
        bounds = self.param.w.bounds
        self.t_fig = _figure("spike time t*(w)", x_axis_label="w", y_axis_label="t* (ms)",
                             x_range=Range1d(*bounds))
        self.t_fig.line(s.weights, s.spike_time, line_width=2)
        self.t_fig.scatter("w", "t", source=self.now, size=10, color=WRONG)
        self.g_fig = _figure("|dt*/dw| from the adjoint (log)", x_axis_label="w", y_axis_label="|dt*/dw| (ms)",
                             y_axis_type="log", x_range=self.t_fig.x_range)
        self.g_fig.line(s.weights, np.abs(s.dt_dw), line_width=2, color="#9467bd")
        self.g_fig.scatter("w", "slope", source=self.now, size=10, color=WRONG)
        for fig in (self.t_fig, self.g_fig):
            fig.add_layout(BoxAnnotation(right=self.numeric, fill_color=GREY, fill_alpha=0.15))
            fig.add_layout(Span(location=self.numeric, dimension="height", line_color="black"))
            fig.add_layout(Span(location=self.analytic, dimension="height", line_color=WRONG, line_dash="dotted"))
        self.info = pn.pane.Markdown(sizing_mode="stretch_width")

    def update(self):
        tr = demos.voltage_trace(self.w, self.neuron, engine=self.engine)
        self.trace.data = {"t": tr.t, "v": tr.v}
        self.spike.data = {"t": tr.spike_times, "y": np.ones(len(tr.spike_times))}
        one = demos.cliff_sweep([self.w], self.neuron, engine=self.engine)
        t, g = float(one.spike_time[0]), float(one.dt_dw[0])
        self.now.data = {"w": [self.w] if np.isfinite(t) else [], "t": [t] if np.isfinite(t) else [],
                         "slope": [abs(g)] if np.isfinite(t) else []}
        spike = f"t\\* = {t:.2f} ms, dt\\*/dw = {g:.3g} ms" if np.isfinite(t) else "**no spike**, no gradient"
        self.info.object = (f"w = {self.w:.3f} ({self.w / self.numeric:.3f} × critical): {spike}.  \n"
                            f"Critical weight: {self.numeric:.5f} found with the engine (black line), "
                            f"{self.analytic:.5f} from ϑ / PSP peak (dotted).")

    def __panel__(self):
        slider = pn.widgets.FloatSlider.from_param(self.param.w, name="input weight w", sizing_mode="stretch_width")
        return _section(CLIFF_TEXT, self.v_fig, self.t_fig, self.g_fig, controls=(slider, self.info))


# ---- 2. The gedankenexperiment --------------------------------------------------------------
GEDANKEN_TEXT = """### 2. The gedankenexperiment
Two inputs, two hidden neurons (A at ~6 ms, **B** at ~17 ms), two readouts; class 0 is correct.
Each click is one exact gradient descent step on B's input weight.

**Deletion:** B helps the correct readout, yet with `avg_xentropy` the gradient wants B's spike
*later* (towards the silent tail). Every step lowers the loss a little, the spike moves later
ever faster, then falls off the cliff: the loss jumps **up**, and the gradient is now zero.

**Creation** (the mirror): B drives the wrong readout; the gradient wants its spike earlier and
raises its weight, until a second, unforeseen spike appears and the loss jumps up.

Try `sum_exp`: the helpful spike is pulled earlier instead."""


class GedankenView(pn.viewable.Viewer):
    """Step-by-step exact gradient descent on the two-class network, with the loss landscape."""

    scenario = param.Selector(objects=list(demos.Gedankenexperiment.SCENARIOS), default="deletion",
                              doc="B's spike is deleted, or a second one is created")
    loss = param.Selector(objects=list(demos.CLASSROOM_LOSSES), default="avg_xentropy", doc="loss function")

    def __init__(self, engine=None, **params):
        super().__init__(**params)
        self.engine = engine
        self.spikes = ColumnDataSource({"step": [], "t": [], "neuron": [], "color": []})
        self.losses = ColumnDataSource({"step": [], "loss": [], "color": []})
        self.path = ColumnDataSource({"w": [], "loss": [], "step": []})
        self.curve = ColumnDataSource({"w": [], "loss": []})
        self.readouts = ColumnDataSource({"t": [], "correct": [], "wrong": []})
        self.marks = ColumnDataSource({"t": []})
        self.info = pn.pane.Markdown(sizing_mode="stretch_width")
        self.step_button = pn.widgets.Button(label="gradient step", color="primary", width=140)
        self.reset_button = pn.widgets.Button(label="reset", color="warning", width=90)
        self.step_button.on_click(lambda event: self.step())
        self.reset_button.on_click(lambda event: self.reset())
        self._build()
        self.param.watch(lambda e: self.rebuild(), ["scenario", "loss"])
        self.rebuild()

    def _build(self):
        self.s_fig = _figure("hidden spikes at each step", x_axis_label="step", y_axis_label="spike time (ms)")
        self.s_fig.scatter("step", "t", source=self.spikes, color="color", size=9, legend_field="neuron")
        self.s_fig.add_layout(self.s_fig.legend[0], "right")  # the spikes fill the plot
        self.l_fig = _figure("loss at each step", x_axis_label="step", y_axis_label="loss")
        self.l_fig.line("step", "loss", source=self.losses, color=GREY)
        self.l_fig.scatter("step", "loss", source=self.losses, color="color", size=8)
        self.land_fig = _figure("loss along w_B; the steps taken", x_axis_label="w_B", y_axis_label="loss")
        self.land_fig.line("w", "loss", source=self.curve, line_width=2, color=GREY)
        self.land_fig.line("w", "loss", source=self.path, color=COLORS[1])
        self.land_fig.scatter("w", "loss", source=self.path, size=8, color=COLORS[1])
        self.event_span = Span(location=0, dimension="height", line_color="black", line_dash="dashed")
        self.land_fig.add_layout(self.event_span)
        self.r_fig = _figure("readout voltages now", x_axis_label="t (ms)", y_axis_label="V")
        self.r_fig.line("t", "correct", source=self.readouts, color=CORRECT, legend_label="correct", line_width=2)
        self.r_fig.line("t", "wrong", source=self.readouts, color=WRONG, legend_label="wrong", line_width=2)
        self.r_fig.vspan("t", source=self.marks, line_color=COLORS[1], line_dash="dotted")
        self.r_fig.legend.location = "top_right"

    def rebuild(self):
        self.experiment = demos.Gedankenexperiment(self.scenario, loss=self.loss, engine=self.engine)
        key = (self.scenario, self.loss)
        if key not in _landscapes:  # the same for every page: computed once per process
            _landscapes[key] = self.experiment.landscape()
        land = _landscapes[key]
        self.curve.data = {"w": land.weights, "loss": land.loss}
        self.event_span.location = self.experiment.event_weight
        self.update()

    def step(self):
        self.experiment.step()
        self.update()

    def reset(self):
        self.experiment.reset()
        self.update()

    def update(self):
        hist, ex = self.experiment.history, self.experiment
        steps, times, names, colors = [], [], [], []
        for s in hist:
            for name, spikes, color in (("A", s.spikes_a, GREY), ("B", s.spikes_b, COLORS[1])):
                steps += [s.step] * len(spikes)
                times += list(spikes)
                names += [name] * len(spikes)
                colors += [color] * len(spikes)
        self.spikes.data = {"step": steps, "t": times, "neuron": names, "color": colors}
        events = set(ex.events())
        self.losses.data = {"step": [s.step for s in hist], "loss": [s.loss for s in hist],
                            "color": [WRONG if s.step in events else COLORS[0] for s in hist]}
        self.path.data = {"w": [s.w_b for s in hist], "loss": [s.loss for s in hist], "step": [s.step for s in hist]}
        s = ex.state
        t = (np.arange(s.readout_v.shape[0]) + 0.5) * ex.dt
        self.readouts.data = {"t": t, "correct": s.readout_v[:, 0], "wrong": s.readout_v[:, 1]}
        self.marks.data = {"t": s.spikes_b}
        self.info.object = self.describe()

    def describe(self):
        ex = self.experiment
        s, first = ex.state, ex.history[0]
        spikes = f"B spikes at {', '.join(f'{t:.2f}' for t in s.spikes_b)} ms" if len(s.spikes_b) else "B is silent"
        text = (f"step {s.step}: w_B = {s.w_b:.4f}, {spikes}, loss {s.loss:.5f} (start {first.loss:.5f}), "
                f"dL/dw_B = {s.grad_w_b + 0.0:.3g}.")  # + 0.0: no "-0" on the page
        if ex.events():
            k = ex.events()[0]
            before, after = ex.history[k - 1].loss, ex.history[k].loss
            what = "deleted" if len(ex.history[k].spikes_b) < len(ex.history[k - 1].spikes_b) else "created"
            text += f"  \n**Step {k} {what} a spike: the loss went from {before:.5f} to {after:.5f}.**"
            if s.grad_w_b == 0.0:
                text += " The gradient is exactly zero now: descent cannot undo it."
        return text

    def __panel__(self):
        choices = pn.Param(self.param, parameters=["scenario", "loss"], show_name=False,
                           widgets={"scenario": pn.widgets.RadioButtonGroup, "loss": pn.widgets.RadioButtonGroup})
        return _section(GEDANKEN_TEXT, self.s_fig, self.l_fig, self.land_fig, self.r_fig,
                        controls=(pn.Row(self.step_button, self.reset_button), choices, self.info))


# ---- 3. Where the signal goes ---------------------------------------------------------------
SIGNAL_TEXT = """### 3. Where the signal goes
A small network (40 inputs, 64 hidden, 20 readouts) is trained for a few epochs on **one class**;
its inputs stop at 300 ms, the rest of the 1 s trial is silent. Then the adjoint of one sample
is recorded.

The value arriving at a hidden spike, Σ w (λ_V − λ_I), says which way that spike should move:
positive "earlier" (input weights grow), negative "later" (input weights shrink, until the
spike is deleted). With `avg_xentropy` the last spikes before the silent tail get negative
values and neurons that help the correct readout are silenced; with `sum_exp` every spike gets
a positive value. With `sum` almost nothing arrives: only spikes in the last ~100 ms would."""


class SignalView(pn.viewable.Viewer):
    """Train on one class at the press of a button, then show the adjoint picture of one sample."""

    busy = param.Boolean(False, doc="a training run is in progress")

    def __init__(self, engine=None, **params):
        super().__init__(**params)
        self.engine = engine
        self.config = demos.SignalConfig()
        self.result = None
        names = ("inputs", "hidden", "top", "lambdas", "diff", "moved", "hist", "rates", "history")
        self.sources = {k: ColumnDataSource() for k in names}
        self.train_button = pn.widgets.Button(label="train", color="primary", width=140)
        self.train_button.on_click(self._on_train)
        self.spinner = pn.indicators.LoadingSpinner(value=False, size=28)
        self.status = pn.pane.Markdown("Press **train** (a few seconds).", sizing_mode="stretch_width")
        self._build()
        self._clear()

    def _clear(self):
        empty = {"inputs": ("t", "id"), "hidden": ("t", "id"), "top": ("t", "id", "color"),
                 "lambdas": ("t", "lambda_v", "lambda_i"), "diff": ("t", "diff"),
                 "moved": ("t", "value", "color", "neuron"),
                 "hist": ("left", "right", "count"), "rates": ("rank", "rate", "w", "color"),
                 "history": ("epoch", "rate_hz", "loss")}
        for k, cols in empty.items():
            self.sources[k].data = {c: [] for c in cols}
        self.late_box.left = self.late_box.right = None

    def _build(self):
        src = self.sources
        self.in_fig = _figure("input spikes", x_axis_label="t (ms)", y_axis_label="channel")
        self.in_fig.scatter("t", "id", source=src["inputs"], size=2, color="#444444")
        self.hid_fig = _figure("hidden spikes (most active in colour)", x_axis_label="t (ms)", y_axis_label="neuron",
                               x_range=self.in_fig.x_range)
        self.hid_fig.scatter("t", "id", source=src["hidden"], size=3, color="#bbbbbb")
        self.hid_fig.scatter("t", "id", source=src["top"], size=6, color="color")
        reverse = Range1d(1000, 0)  # the adjoint runs from the trial end back to 0
        self.lam_fig = _figure("λ_V and λ_I of the correct readout (reverse time)", x_axis_label="t (ms), reversed",
                               x_range=reverse)
        self.lam_fig.line("t", "lambda_v", source=src["lambdas"], color=COLORS[0], legend_label="λ_V", line_width=2)
        self.lam_fig.line("t", "lambda_i", source=src["lambdas"], color=COLORS[1], legend_label="λ_I", line_width=2)
        self.lam_fig.legend.location = "center"
        self.diff_fig = _figure("λ_V − λ_I of the correct readout", x_axis_label="t (ms), reversed",
                                x_range=reverse, y_range=Range1d(-1, 1))
        self.diff_fig.line("t", "diff", source=src["diff"], color="#9467bd", line_width=2)
        self.diff_fig.add_layout(Span(location=0, dimension="width", line_color=GREY, line_dash="dotted"))
        self.moved_fig = _figure("arriving at the most active neurons' spikes", x_axis_label="t (ms)",
                                 y_axis_label="Σ w (λ_V − λ_I)")
        self.late_box = BoxAnnotation(fill_color=GREY, fill_alpha=0.15)  # the late spikes
        self.moved_fig.add_layout(self.late_box)
        self.moved_fig.scatter("t", "value", source=src["moved"], color="color", size=8, legend_field="neuron")
        self.moved_fig.add_layout(Span(location=0, dimension="width", line_color=GREY, line_dash="dotted"))
        legend = self.moved_fig.legend[0]
        legend.label_text_font_size = "8pt"
        self.moved_fig.add_layout(legend, "right")  # beside the points, not over them
        self.hist_fig = _figure("weights onto the correct readout", x_axis_label="W_out[:, correct]",
                                y_axis_label="neurons")
        self.hist_fig.quad(left="left", right="right", top="count", bottom=0, source=src["hist"],
                           fill_color="#8c564b", line_color="white")
        self.rate_fig = _figure("hidden rates, sorted by that weight", x_axis_label="rank (most negative weight first)",
                                y_axis_label="rate (Hz)")
        self.rate_fig.vbar(x="rank", top="rate", width=0.8, source=src["rates"], color="color")
        self.history_fig = _figure("hidden rate per epoch", x_axis_label="epoch", y_axis_label="Hz")
        self.history_fig.line("epoch", "rate_hz", source=src["history"], line_width=2)
        self.history_fig.scatter("epoch", "rate_hz", source=src["history"], size=7)

    # ---- training -----------------------------------------------------------------------
    def compute(self):
        """The demo's numbers for the current settings (no Bokeh models touched: safe in a thread)."""
        return demos.where_the_signal_goes(self.config, engine=self.engine)

    def train(self):
        """Train and show the result (blocking)."""
        self.show(self.compute())

    async def _on_train(self, event):
        if self.busy:
            return
        doc = pn.state.curdoc  # after the await only a callback of the document may touch its models
        self.busy, self.spinner.value, self.train_button.disabled = True, True, True
        self.status.object = f"training {self.config.epochs} epochs with `{self.config.loss}`…"
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(_pool, self.compute)
        except Exception as exc:  # a bad setting or a diverged run: say so on the page
            outcome = exc
        if doc is not None and doc.session_context is not None:
            doc.add_next_tick_callback(partial(self._finish, outcome))
        else:  # no server (tests, notebooks): nothing else holds the models
            self._finish(outcome)

    def _finish(self, outcome):
        try:
            if isinstance(outcome, Exception):
                self.status.object = f"⚠ {type(outcome).__name__}: {outcome}"
            else:
                self.show(outcome)
        finally:
            self.busy, self.spinner.value, self.train_button.disabled = False, False, False

    # ---- display --------------------------------------------------------------------------
    def show(self, r):
        self.result = r
        p, src = r.probe, self.sources
        src["inputs"].data = {"t": p["input_times"], "id": p["input_channels"]}
        ids, times, moved = p["hidden_ids"], p["hidden_times"], p["transported"]
        src["hidden"].data = {"t": times, "id": ids}
        color_of = {int(j): COLORS[i % len(COLORS)] for i, j in enumerate(r.top)}
        keep = np.isin(ids, r.top)
        colors = [color_of[int(j)] for j in ids[keep]]
        src["top"].data = {"t": times[keep], "id": ids[keep], "color": colors}
        sums = {int(j): s for j, s in zip(r.top, r.top_sums)}
        src["moved"].data = {"t": times[keep], "value": moved[keep], "color": colors,
                             "neuron": [f"#{int(j)}: sum {sums[int(j)]:+.2e}" for j in ids[keep]]}
        if len(times):
            self.late_box.left, self.late_box.right = r.late_from, float(times.max())
        t = (np.arange(p["lambda_v_out"].shape[0]) + 1) * p["dt"]
        lv, li = p["lambda_v_out"][:, r.label], p["lambda_i_out"][:, r.label]
        src["lambdas"].data = {"t": t, "lambda_v": lv, "lambda_i": li}
        src["diff"].data = {"t": t, "diff": lv - li}
        for fig in (self.lam_fig, self.diff_fig):
            fig.x_range.start, fig.x_range.end = r.trial_ms, 0
        # near T the difference is far larger than where the spikes are; scale to the spikes
        window = t <= (times.max() if len(times) else 0.0) + 100.0
        span = 1.2 * np.abs((lv - li)[window]).max() if window.any() else 1.0
        self.diff_fig.y_range.start, self.diff_fig.y_range.end = -span, span
        self.diff_fig.title.text = (f"λ_V − λ_I, correct readout (scaled to the spikes; "
                                    f"up to {np.abs(lv - li).max():.1e})")
        counts, edges = np.histogram(r.w_correct, bins=21)
        src["hist"].data = {"left": edges[:-1], "right": edges[1:], "count": counts}
        order = np.argsort(r.w_correct, kind="stable")
        w = r.w_correct[order]
        src["rates"].data = {"rank": np.arange(len(order)), "rate": r.rates_hz[order], "w": w,
                             "color": [CORRECT if x > 0 else WRONG for x in w]}
        src["history"].data = {"epoch": r.history["epoch"], "rate_hz": r.history["rate_hz"], "loss": r.history["loss"]}
        self.moved_fig.title.text = f"arriving at the {len(r.top)} most active neurons' spikes (late ones shaded)"
        h = r.history
        n = len(h["epoch"]) - 1
        self.status.object = (
            f"`{r.loss}`, {n} epoch{'' if n == 1 else 's'}: "
            f"hidden rate {h['rate_hz'][0]:.2f} → {h['rate_hz'][-1]:.2f} Hz, "
            f"silent {100 * h['silent_fraction'][-1]:.0f} %, loss {h['loss'][0]:.3f} → {h['loss'][-1]:.3f}.  \n"
            f"Arriving at late spikes (t ≥ {r.late_from:.0f} ms): {r.late_sum:+.2e}; earlier: {r.early_sum:+.2e}.  \n"
            f"Most active neurons' sums: {', '.join(f'{s:+.1e}' for s in r.top_sums)}.  \n"
            f"corr(weight onto correct readout, rate) = {r.weight_rate_correlation:+.2f}.")

    def __panel__(self):
        settings = pn.Param(self.config, parameters=["loss", "epochs", "lr", "seed"], show_name=False,
                            widgets={"loss": pn.widgets.RadioButtonGroup, "lr": {"type": pn.widgets.FloatInput,
                                                                                   "step": 1e-3}})
        text = pn.pane.Markdown(SIGNAL_TEXT, sizing_mode="stretch_width")
        controls = pn.Column(text, settings, pn.Row(self.train_button, self.spinner), self.status, width=330)
        figs = pn.Column(
            pn.pane.Bokeh(row(self.in_fig, self.hid_fig, self.history_fig, sizing_mode="stretch_width"),
                          sizing_mode="stretch_width"),
            pn.pane.Bokeh(row(self.lam_fig, self.diff_fig, sizing_mode="stretch_width"), sizing_mode="stretch_width"),
            pn.pane.Bokeh(row(self.moved_fig, self.hist_fig, self.rate_fig, sizing_mode="stretch_width"),
                          sizing_mode="stretch_width"),
            sizing_mode="stretch_width")
        return pn.Row(controls, figs, sizing_mode="stretch_width")


# ---- the page -------------------------------------------------------------------------------
INTRO = """## Accidental gradient ascent
Eventprop computes the *exact* gradient of the loss, yet training with a badly shaped loss can
silence a network. The three demos below, computed live with this project's engine, show why:
the gradient cannot see spikes appear or disappear (1), so following it can delete a useful
spike and raise the loss (2), and with `avg_xentropy` that is where the signal pushes (3)."""


class Classroom(pn.viewable.Viewer):
    """The three classroom demos of spec §3 on one page."""

    def __init__(self, engine=None, **params):
        super().__init__(**params)
        self.cliff = CliffView(engine=engine)
        self.gedanken = GedankenView(engine=engine)
        self.signal = SignalView(engine=engine)

    def __panel__(self):
        return pn.Column(pn.pane.Markdown(INTRO, sizing_mode="stretch_width"), self.cliff, pn.layout.Divider(),
                         self.gedanken, pn.layout.Divider(), self.signal, sizing_mode="stretch_width")
