"""Live Bokeh views of a training session's observations, fed from a Reader by the dashboard.

Each view owns its ColumnDataSources and is only ever touched from the periodic callback of its
browser session (Bokeh's event loop), never from the training thread. Probe views draw one probe
(a dict made by `slim_probe` of a ProbeRecord), so the dashboard can show an older one when the user scrubs back."""
import threading
from collections import OrderedDict, deque

import numpy as np
from bokeh.layouts import row
from bokeh.models import ColumnDataSource, Legend, LegendItem
from bokeh.plotting import figure

ROLLOVER = 2000  # points kept per streamed curve; older ones roll off
TOP_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
QUIET = "#9aa5b1"
MAX_INPUT_POINTS = 3000  # input spikes drawn per probe; more are thinned (every k-th), and the title says so
PROJECTIONS = ("W_in", "W_rec", "W_out")
MAX_TRACE_POINTS = 500  # readout traces are drawn with at most this many points (about a plot's width in pixels)


def _figure(title, height=250, **kw):
    fig = figure(title=title, height=height, sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset",
                 **kw)
    # auto-ranging happens in the browser; sending every new range back cost the server a message
    # per plot per update (benchmarks/bench_dashboard.py), and it never needs them
    for r in (fig.x_range, fig.y_range):
        r.syncable = False
    return fig


def _empty(source):
    source.data = {k: [] for k in source.data}


def slim_probe(p, n_top=len(TOP_COLORS)):
    """What the probe views draw, without the full hidden adjoint traces (a probe is kept for
    scrubbing, and the full traces would cost hundreds of kB each). Readout traces are thinned to
    MAX_TRACE_POINTS in time: every browser receives them, and a plot is no wider than that."""
    ids = np.asarray(p.hidden_ids)
    label = int(p.label or 0)
    diff = np.asarray(p.lambda_v_out, np.float32) - np.asarray(p.lambda_i_out, np.float32)
    v = np.asarray(p.readout_v, np.float32)
    diff, v = (x if x.ndim == 2 else x[:, None] for x in (diff, v))
    every = -(-v.shape[0] // MAX_TRACE_POINTS)  # ceil
    w_out = np.asarray(p.w_out) if p.w_out is not None else None
    n_hidden = w_out.shape[0] if w_out is not None else int(ids.max(initial=-1)) + 1
    counts = np.bincount(ids, minlength=n_hidden) if len(ids) else np.zeros(n_hidden, int)
    top = np.argsort(counts, kind="stable")[::-1][:n_top]
    top = top[counts[top] > 0]
    return {
        "step": p.step, "epoch": p.epoch, "label": label, "dt": float(p.dt),
        # narrow types: these arrays go to every browser as they are
        "input_times": np.asarray(p.input_times, np.float32), "input_channels": np.asarray(p.input_channels, np.int32),
        "hidden_times": np.asarray(p.hidden_times, np.float32), "hidden_ids": ids.astype(np.int32),
        "transported": np.asarray(p.transported), "counts": counts, "top": top,
        "trace_t": (np.arange(0, v.shape[0], every) * float(p.dt)).astype(np.float32),
        "diff": np.ascontiguousarray(diff[::every]), "readout_v": np.ascontiguousarray(v[::every]),
        "w_to_label": None if w_out is None else w_out[:, min(label, w_out.shape[1] - 1)].copy(),
        "weight_histograms": p.weight_histograms or {},
    }


_slimmed = OrderedDict()  # id(probe record) -> (probe record, slim probe): every browser session shows the same probes
_slimmed_lock = threading.Lock()


def slim_probe_shared(p, keep=16):
    """slim_probe(p), computed once for all the dashboards that read the same probe. It keeps the
    last `keep` probes alive, fewer than the session's own buffer keeps (20), so no memory is added."""
    with _slimmed_lock:
        hit = _slimmed.get(id(p))
        if hit is not None and hit[0] is p:
            return hit[1]
    slim = slim_probe(p)
    with _slimmed_lock:
        _slimmed[id(p)] = (p, slim)  # holding p keeps its id from being reused while cached
        while len(_slimmed) > keep:
            _slimmed.popitem(last=False)
    return slim


class ProbeHistory:
    """The last `capacity` probes (slimmed), for scrubbing back in time."""

    def __init__(self, capacity=25):
        self.items = deque(maxlen=capacity)

    def clear(self):
        self.items.clear()

    def add(self, observations):
        """Take in the probes among `observations`; returns how many arrived."""
        probes = [slim_probe_shared(o) for o in observations if o.kind == "probe"]
        self.items.extend(probes)
        return len(probes)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def index_of_step(self, step):
        """The index of the probe taken at `step`, or of the oldest one if it has rolled off."""
        for i, p in enumerate(self.items):
            if p["step"] == step:
                return i
        return 0


def _top_colors(p):
    """{neuron: colour} of the most active hidden neurons of a probe."""
    return {int(j): TOP_COLORS[i] for i, j in enumerate(p["top"])}


class ReadoutLines:
    """The readouts over the trial: the correct class as a bold line, the other classes as a grey
    band from their lowest to their highest value (with 20 classes, 19 grey lines were a tangle,
    and each browser received 150 kB/s of them)."""

    def __init__(self, fig, color, others_alpha, what):
        self.source = ColumnDataSource({"t": [], "lo": [], "hi": [], "correct": []})
        others = fig.varea("t", "lo", "hi", source=self.source, fill_color=QUIET, fill_alpha=others_alpha)
        correct = fig.line("t", "correct", source=self.source, color=color, line_width=2.5)
        fig.add_layout(Legend(items=[LegendItem(label=f"{what}: correct class", renderers=[correct]),
                                     LegendItem(label="range of the other classes", renderers=[others])],
                              location="top_left", label_text_font_size="8pt", background_fill_alpha=0.6))

    def clear(self):
        _empty(self.source)

    def show(self, t, traces, label):
        """t: (T,), traces: (T, K)."""
        rest = np.delete(traces, label, axis=1)
        if rest.shape[1] == 0:
            rest = traces[:, label:label + 1]
        self.source.data = {"t": t, "lo": rest.min(1), "hi": rest.max(1), "correct": traces[:, label]}

    @property
    def correct(self):
        return np.asarray(self.source.data["correct"])


class ProbeView:
    """One probed sample: input and hidden rasters (the most active hidden neurons in colour) and
    the readout voltages (the correct class as a line, the others as a band)."""

    def __init__(self):
        self.inputs = ColumnDataSource({"t": [], "id": []}, name="input_raster")
        self.hidden = ColumnDataSource({"t": [], "id": []}, name="hidden_raster")
        self.top = ColumnDataSource({"t": [], "id": [], "color": []}, name="hidden_top")
        self.step = None
        self.input_fig = _figure("input spikes (probed sample)", x_axis_label="ms", y_axis_label="channel")
        self.input_fig.scatter("t", "id", source=self.inputs, size=2, color="#444444")
        self.hidden_fig = _figure("hidden spikes (colour: the 5 most active)", x_axis_label="ms",
                                  y_axis_label="neuron", x_range=self.input_fig.x_range)
        self.hidden_fig.scatter("t", "id", source=self.hidden, size=3, color=QUIET)
        self.hidden_fig.scatter("t", "id", source=self.top, size=3, color="color")
        self.voltage_fig = _figure("readout voltages", x_axis_label="ms",
                                   y_axis_label="V", x_range=self.input_fig.x_range)
        self.voltages = ReadoutLines(self.voltage_fig, "#d62728", others_alpha=0.5, what="V")

    def clear(self):
        for src in (self.inputs, self.hidden, self.top):
            _empty(src)
        self.voltages.clear()
        self.step = None

    def show(self, p):
        self.step = p["step"]
        t_in, ch_in = p["input_times"], p["input_channels"]
        k = -(-len(t_in) // MAX_INPUT_POINTS)  # ceil: draw every k-th input spike
        self.inputs.data = {"t": t_in[::k], "id": ch_in[::k]}
        ids, times = p["hidden_ids"], p["hidden_times"]
        top = np.isin(ids, p["top"])
        color_of = _top_colors(p)
        self.hidden.data = {"t": times[~top], "id": ids[~top]}
        self.top.data = {"t": times[top], "id": ids[top], "color": [color_of[int(j)] for j in ids[top]]}
        v, label = p["readout_v"], p["label"]
        self.voltages.show(p["trace_t"], v, min(label, v.shape[1] - 1))
        thinned = f"\n1 in {k} of {len(t_in)} spikes shown" if k > 1 else ""
        self.input_fig.title.text = f"input spikes: step {self.step}, class {label}{thinned}"
        self.hidden_fig.title.text = f"hidden spikes: step {self.step}\ncolour: the 5 most active"
        self.voltage_fig.title.text = f"readout voltages: class {label}"

    def layout(self):
        return [self.input_fig, self.hidden_fig, self.voltage_fig]


class AdjointView:
    """λ_V − λ_I of the readout neurons over the trial (the correct class as a line, the others as
    a band): the adjoint runs backwards from the trial's end, so read this from right to left."""

    def __init__(self):
        self.fig = _figure("λ_V − λ_I of the readouts\nread right to left: the adjoint runs backwards", x_axis_label="ms",
                           y_axis_label="λ_V − λ_I")
        self.lines = ReadoutLines(self.fig, "#9467bd", others_alpha=0.35, what="λ_V − λ_I")
        self.fig.hspan(y=[0], line_color="#888888", line_dash="dotted")

    @property
    def correct(self):
        """The correct readout's trace."""
        return self.lines.correct

    def clear(self):
        self.lines.clear()

    def show(self, p):
        diff, label = p["diff"], p["label"]
        label = min(label, diff.shape[1] - 1)
        self.lines.show(p["trace_t"], diff, label)
        self.fig.title.text = f"λ_V − λ_I of the readouts: class {label}\nread right to left: the adjoint runs backwards"

    def layout(self):
        return [self.fig]


class TransportedView:
    """What each spike of the most active hidden neurons receives, sum_m w (lambda_V - lambda_I)_m,
    against its time (the paper's Fig. 3): its sign tells whether the gradient moves that spike
    earlier (positive) or later (negative), and later means the neuron's input weights go down."""

    def __init__(self):
        self.points = ColumnDataSource({"t": [], "value": [], "color": [], "neuron": [], "label": []})
        self.fig = _figure("transported to the most active neurons\nat their spikes; > 0: moves a spike earlier",
                           x_axis_label="ms", y_axis_label="Σ w (λ_V − λ_I)")
        # one legend entry per neuron, with the sum of what it received
        self.fig.scatter("t", "value", source=self.points, color="color", size=6, alpha=0.8, legend_field="label")
        self.fig.legend.location = "top_left"
        self.fig.legend.label_text_font_size = "8pt"
        self.fig.legend.background_fill_alpha = 0.6
        self.fig.hspan(y=[0], line_color="#888888", line_dash="dotted")

    def clear(self):
        _empty(self.points)

    def show(self, p):
        ids, times, values = p["hidden_ids"], p["hidden_times"], p["transported"]
        keep = np.isin(ids, p["top"])
        color_of = _top_colors(p)
        label_of = {int(j): f"#{int(j)}: Σ {values[ids == j].sum():+.1e}" for j in p["top"]}
        self.points.data = {"t": times[keep], "value": values[keep], "color": [color_of[int(j)] for j in ids[keep]],
                            "neuron": ids[keep], "label": [label_of[int(j)] for j in ids[keep]]}

    def layout(self):
        return [self.fig]


class RateByWeight:
    """Spikes of each hidden neuron in the probed trial against its weight onto the correct
    readout (Fig. 3): with a well-shaped loss the neurons that help the correct class stay active."""

    def __init__(self):
        self.points = ColumnDataSource({"w": [], "spikes": [], "color": []})
        self.fig = _figure("hidden spikes vs weight onto the correct readout", x_axis_label="W_out[:, class]",
                           y_axis_label="spikes in the trial")
        self.fig.scatter("w", "spikes", source=self.points, color="color", size=5, alpha=0.7)

    def clear(self):
        _empty(self.points)

    def show(self, p):
        w = p["w_to_label"]
        if w is None:
            return self.clear()
        counts = p["counts"][:len(w)]
        color_of = _top_colors(p)
        self.points.data = {"w": w, "spikes": counts, "color": [color_of.get(j, QUIET) for j in range(len(w))]}

    def layout(self):
        return [self.fig]


class WeightView:
    """One projection's weights: the histogram at the shown probe, and the 5/25/50/75/95th
    percentiles over time at every probe step the session still remembers (from its batch records,
    so a page opened late draws as much history as the learning curves)."""

    def __init__(self, name):
        self.name = name
        self.bars = ColumnDataSource({"left": [], "right": [], "count": []}, name=f"{name}_histogram")
        self.bands = ColumnDataSource({"step": [], "p5": [], "p25": [], "p50": [], "p75": [], "p95": []})
        self.hist_fig = _figure(f"{name} now", x_axis_label="weight", y_axis_label="count", height=220)
        self.hist_fig.quad(left="left", right="right", top="count", bottom=0, source=self.bars,
                           fill_color="#8c564b", line_color="white")
        self.band_fig = _figure(f"{name} percentiles over time", x_axis_label="step", y_axis_label="weight",
                                height=220)
        outer = self.band_fig.varea("step", "p5", "p95", source=self.bands, fill_color="#8c564b", fill_alpha=0.2)
        inner = self.band_fig.varea("step", "p25", "p75", source=self.bands, fill_color="#8c564b", fill_alpha=0.45)
        median = self.band_fig.line("step", "p50", source=self.bands, color="#5a3520", line_width=2)
        self.band_fig.add_layout(Legend(items=[LegendItem(label="5–95 %", renderers=[outer]),
                                               LegendItem(label="25–75 %", renderers=[inner]),
                                               LegendItem(label="median", renderers=[median])],
                                        location="top_left", label_text_font_size="8pt", background_fill_alpha=0.6))

    def clear(self):
        _empty(self.bars)
        _empty(self.bands)

    def add(self, rows):
        """rows: [(step, {projection: [p5, p25, p50, p75, p95]})], from the batch records of probe steps."""
        rows = [(step, q[self.name]) for step, q in rows if self.name in q]
        if rows:
            self.bands.stream({"step": [s for s, _ in rows],
                               **{f"p{q}": [float(r[i]) for _, r in rows] for i, q in enumerate((5, 25, 50, 75, 95))}},
                              rollover=ROLLOVER)

    def show(self, p):
        hist = p["weight_histograms"].get(self.name)
        if hist is None:  # e.g. W_rec of a feed-forward network
            self.hist_fig.title.text = f"{self.name}: none in this network"
            return _empty(self.bars)
        edges = np.asarray(hist["edges"])
        self.bars.data = {"left": edges[:-1], "right": edges[1:], "count": np.asarray(hist["counts"])}
        self.hist_fig.title.text = f"{self.name} at step {p['step']}"

    def layout(self):
        return [self.hist_fig, self.band_fig]


def grid(*figs):
    return row(*figs, sizing_mode="stretch_width")
