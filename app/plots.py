"""Live Bokeh views of a training session's observations, fed from a Reader by the dashboard.

Each view owns its ColumnDataSources and is only ever touched from the periodic callback of its
browser session (Bokeh's event loop), never from the training thread."""
import numpy as np
from bokeh.layouts import row
from bokeh.models import ColumnDataSource, LabelSet, LinearAxis, Range1d
from bokeh.plotting import figure

ROLLOVER = 2000  # points kept per learning curve; older ones roll off
MARKERS = 50  # hot-change markers kept


def _figure(title, **kw):
    return figure(title=title, height=260, sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset",
                  **kw)


class LearningCurves:
    """Batch loss, accuracy and hidden firing rate vs step; hot changes as labelled vertical lines."""

    def __init__(self, rollover=ROLLOVER):
        self.rollover = rollover
        self.batches = ColumnDataSource({"step": [], "loss": [], "accuracy": [], "rate_hz": []})
        self.markers = ColumnDataSource({"step": [], "label": []})
        self.loss_fig = _figure("batch loss and accuracy", x_axis_label="step", y_axis_label="loss")
        self.loss_fig.line("step", "loss", source=self.batches, color="#1f77b4", legend_label="loss")
        self.loss_fig.extra_y_ranges = {"acc": Range1d(0, 1)}
        self.loss_fig.add_layout(LinearAxis(y_range_name="acc", axis_label="accuracy"), "right")
        self.loss_fig.line("step", "accuracy", source=self.batches, color="#ff7f0e", y_range_name="acc",
                           legend_label="accuracy")
        self.loss_fig.legend.location = "top_left"
        self.rate_fig = _figure("hidden firing rate", x_axis_label="step", y_axis_label="Hz",
                                x_range=self.loss_fig.x_range)
        self.rate_fig.line("step", "rate_hz", source=self.batches, color="#2ca02c")
        for fig in (self.loss_fig, self.rate_fig):
            fig.vspan("step", source=self.markers, line_color="#d62728", line_dash="dashed")
            fig.add_layout(LabelSet(x="step", y=5, y_units="screen", text="label", source=self.markers,
                                    text_font_size="9pt", text_color="#d62728", angle=np.pi / 2, x_offset=-3))

    def clear(self):
        self.batches.data = {k: [] for k in self.batches.data}
        self.markers.data = {k: [] for k in self.markers.data}

    def add(self, observations):
        rows = [o.data for o in observations if o.kind == "batch"]
        if rows:
            self.batches.stream({k: [r[k] for r in rows] for k in self.batches.data}, rollover=self.rollover)
        events = [o.data for o in observations if o.kind == "event" and "label" in o.data]
        if events:
            self.markers.stream({"step": [e["step"] for e in events], "label": [e["label"] for e in events]},
                                rollover=MARKERS)

    def layout(self):
        return [self.loss_fig, self.rate_fig]


class ProbeView:
    """The newest probe: input and hidden rasters, and lambda_V - lambda_I of the correct readout."""

    def __init__(self):
        self.inputs = ColumnDataSource({"t": [], "id": []})
        self.hidden = ColumnDataSource({"t": [], "id": []})
        self.adjoint = ColumnDataSource({"t": [], "diff": []})
        self.step = None
        self.input_fig = _figure("input spikes (probed sample)", x_axis_label="ms", y_axis_label="channel")
        self.input_fig.scatter("t", "id", source=self.inputs, size=2, color="#444444")
        self.hidden_fig = _figure("hidden spikes", x_axis_label="ms", y_axis_label="neuron",
                                  x_range=self.input_fig.x_range)
        self.hidden_fig.scatter("t", "id", source=self.hidden, size=2, color="#1f77b4")
        self.adjoint_fig = _figure("λ_V − λ_I of the correct readout", x_axis_label="ms",
                                   x_range=self.input_fig.x_range)
        self.adjoint_fig.line("t", "diff", source=self.adjoint, color="#9467bd")

    def clear(self):
        for src in (self.inputs, self.hidden, self.adjoint):
            src.data = {k: [] for k in src.data}
        self.step = None

    def add(self, observations):
        probes = [o.data for o in observations if o.kind == "probe"]
        if not probes:
            return
        p = probes[-1]  # only the newest is drawn
        self.step = p.get("step")
        self.inputs.data = {"t": np.asarray(p["input_times"]), "id": np.asarray(p["input_channels"])}
        self.hidden.data = {"t": np.asarray(p["hidden_times"]), "id": np.asarray(p["hidden_ids"])}
        diff = np.asarray(p["lambda_v_out"]) - np.asarray(p["lambda_i_out"])
        label = p.get("label") or 0
        if diff.ndim == 2:  # (time steps, readout neurons)
            diff = diff[:, label] if diff.shape[1] > label else diff[:, 0]
        self.adjoint.data = {"t": np.arange(len(diff)) * float(p["dt"]), "diff": diff}
        for fig, what in ((self.input_fig, "input spikes"), (self.hidden_fig, "hidden spikes")):
            fig.title.text = f"{what} (probe at step {self.step}, class {label})"

    def layout(self):
        return [self.input_fig, self.hidden_fig, self.adjoint_fig]


class WeightHistogram:
    """Histogram of W_out from the newest probe's weight_histograms."""

    def __init__(self, name="W_out"):
        self.name = name
        self.bars = ColumnDataSource({"left": [], "right": [], "count": []})
        self.fig = _figure(f"{name} histogram", x_axis_label="weight", y_axis_label="count")
        self.fig.quad(left="left", right="right", top="count", bottom=0, source=self.bars,
                      fill_color="#8c564b", line_color="white")

    def clear(self):
        self.bars.data = {k: [] for k in self.bars.data}

    def add(self, observations):
        probes = [o.data for o in observations if o.kind == "probe"]
        hist = probes[-1].get("weight_histograms", {}).get(self.name) if probes else None
        if hist is not None:
            edges = np.asarray(hist["edges"])
            self.bars.data = {"left": edges[:-1], "right": edges[1:], "count": np.asarray(hist["counts"])}

    def layout(self):
        return [self.fig]


class TransportedView:
    """What each spike of the most active hidden neurons receives, sum_m w (lambda_V - lambda_I)_m,
    against its time (the paper's Fig. 3): its sign tells whether the gradient moves that spike
    earlier (positive) or later (negative), and later means the neuron's input weights go down."""

    COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")

    def __init__(self, n_neurons=5):
        self.n = n_neurons
        self.points = ColumnDataSource({"t": [], "value": [], "color": [], "neuron": []})
        self.fig = _figure("value transported to the most active hidden neurons at their spikes",
                           x_axis_label="ms", y_axis_label="Σ w (λ_V − λ_I)")
        self.fig.scatter("t", "value", source=self.points, color="color", size=6, alpha=0.8)
        self.fig.hspan(y=[0], line_color="#888888", line_dash="dotted")

    def clear(self):
        self.points.data = {k: [] for k in self.points.data}

    def add(self, observations):
        probes = [o.data for o in observations if o.kind == "probe"]
        if not probes:
            return
        p = probes[-1]
        ids, times, values = (np.asarray(p[k]) for k in ("hidden_ids", "hidden_times", "transported"))
        if len(ids) == 0:
            self.clear()
            return
        counts = np.bincount(ids)
        top = np.argsort(counts)[::-1][:self.n]
        top = top[counts[top] > 0]
        keep = np.isin(ids, top)
        color_of = {int(j): self.COLORS[i % len(self.COLORS)] for i, j in enumerate(top)}
        self.points.data = {"t": times[keep], "value": values[keep],
                            "color": [color_of[int(j)] for j in ids[keep]], "neuron": ids[keep]}
        sums = " ".join(f"#{int(j)} {values[ids == j].sum():+.0e}" for j in top)
        self.fig.title.text = f"transported to the top {len(top)} hidden neurons; sums {sums}"

    def layout(self):
        return [self.fig]


def grid(*figs):
    return row(*figs, sizing_mode="stretch_width")
