"""The learning curves: loss, accuracy and hidden activity against the training step.

The newest batches stream in (Bokeh's plain streaming, bounded rollover); what rolled off is drawn
from the session's long history (block means, eventprop_lab/history.py), refreshed now and then,
so the before of a change stays on the plot however long the run goes on."""
from collections import deque

import numpy as np
from bokeh.models import ColumnDataSource, LabelSet, LegendItem

from .plots import QUIET, ROLLOVER, _empty, _figure

MARKERS = 50  # change markers kept
EARLIER_RUNS = 3  # faint overlays kept of runs before a reset
EARLIER_POINTS = 400  # an earlier run is thinned to this many points
BRANCH_COLORS = ("#9467bd", "#e377c2")  # by slot (app/branches.py), on every page
MARKER_COLORS = {"undo": "#1f77b4", "rewind": "#1f77b4", "branch": BRANCH_COLORS[0]}  # others: red (a change)
CHANGE_COLOR = "#d62728"


def _number(x):
    return np.nan if x is None else x  # a gap in the plot: say, validation values of a run without validation


def _mark_changes(fig, markers):
    fig.vspan("step", source=markers, line_color="color", line_dash="dashed")
    fig.add_layout(LabelSet(x="step", y=5, y_units="screen", text="label", source=markers, text_font_size="9pt",
                            text_color="color", angle=np.pi / 2, x_offset=-3))


class LearningCurves:
    """Every batch (thin line: streamed for the newest, block means before them), every epoch's
    train and validation values (dots), changes and undos as labelled vertical lines, the
    curves of earlier runs (before a reset) as faint grey lines, and the batches of the run's
    branches (app/branches.py), each in its slot's colour with a legend entry naming it."""

    BATCH = ("step", "loss", "accuracy", "rate_hz", "silent_fraction")
    EPOCH = ("step", "epoch", "train_loss", "train_accuracy", "validation_loss", "validation_accuracy",
             "train_rate_hz", "train_silent_fraction")

    def __init__(self, rollover=ROLLOVER):
        self.rollover = rollover
        self.batches = ColumnDataSource({k: [] for k in self.BATCH + ("silent_pct",)}, name="batches")
        self.older = ColumnDataSource({k: [] for k in self.BATCH + ("silent_pct",)}, name="older_batches")
        self.epochs = ColumnDataSource({k: [] for k in self.EPOCH})
        self.markers = ColumnDataSource({"step": [], "label": [], "color": []}, name="markers")
        self.earlier = ColumnDataSource({k: [] for k in self.BATCH})  # NaN rows separate the runs
        self.earlier_runs = deque(maxlen=EARLIER_RUNS)  # (label, thinned columns)
        self.loss_names = []  # the losses the current run used, in order
        self.loss_fig = _figure("loss", x_axis_label="step", y_axis_label="loss")
        self.acc_fig = _figure("accuracy", x_axis_label="step", y_axis_label="fraction correct",
                               x_range=self.loss_fig.x_range)
        self.activity_fig = _figure("hidden activity", x_axis_label="step", y_axis_label="Hz  /  % silent",
                                    x_range=self.loss_fig.x_range)
        for fig, key, color in ((self.loss_fig, "loss", "#1f77b4"), (self.acc_fig, "accuracy", "#ff7f0e")):
            fig.line("step", key, source=self.earlier, color=QUIET, alpha=0.45, legend_label="earlier runs")
            fig.line("step", key, source=self.older, color=color, alpha=0.6)
            fig.line("step", key, source=self.batches, color=color, alpha=0.6, legend_label="batch")
            fig.scatter("step", f"train_{key}", source=self.epochs, color=color, size=7, legend_label="epoch (train)")
            fig.line("step", f"validation_{key}", source=self.epochs, color="#2ca02c", line_width=2)
            fig.scatter("step", f"validation_{key}", source=self.epochs, color="#2ca02c", marker="square", size=7,
                        legend_label="epoch (validation)")
        a = self.activity_fig
        a.line("step", "rate_hz", source=self.earlier, color=QUIET, alpha=0.45, legend_label="earlier runs")
        for source in (self.older, self.batches):
            a.line("step", "rate_hz", source=source, color="#2ca02c", legend_label="firing rate (Hz)")
            a.line("step", "silent_pct", source=source, color="#7f7f7f", line_dash="dashed",
                   legend_label="silent neurons (%)")
        self.branches = [self._branch_slot(slot, color) for slot, color in enumerate(BRANCH_COLORS)]
        for fig in (self.loss_fig, self.acc_fig, self.activity_fig):
            fig.legend.location = "top_left"
            fig.legend.background_fill_alpha = 0.6
            fig.legend.label_text_font_size = "8pt"
            _mark_changes(fig, self.markers)

    def _branch_slot(self, slot, color):
        """A branch's source and lines, made with the figures and hidden until a branch is shown:
        renderers added to a page's figures later cost a redraw of the whole plot."""
        source = ColumnDataSource({k: [] for k in self.BATCH + ("silent_pct",)}, name=f"branch_{slot}")
        lines = {"loss": [self.loss_fig.line("step", "loss", source=source, color=color, line_width=1.5)],
                 "accuracy": [self.acc_fig.line("step", "accuracy", source=source, color=color, line_width=1.5)],
                 "activity": [self.activity_fig.line("step", "rate_hz", source=source, color=color),
                              self.activity_fig.line("step", "silent_pct", source=source, color=color,
                                                     line_dash="dashed")]}
        items = []
        for fig, key in ((self.loss_fig, "loss"), (self.acc_fig, "accuracy"), (self.activity_fig, "activity")):
            name = f"branch_{slot}_legend" if key == "loss" else None  # read by the browser tests
            item = LegendItem(label="", renderers=lines[key], visible=False, name=name)
            fig.legend[0].items.append(item)
            items.append(item)
        renderers = [r for rs in lines.values() for r in rs]
        for r in renderers:
            r.visible = False
        return {"source": source, "renderers": renderers, "items": items}

    def show_branch(self, slot, label):
        """Draw a branch in `slot`, from no batches on (add_branch streams them), named `label`."""
        b = self.branches[slot]
        _empty(b["source"])
        for item in b["items"]:
            item.update(label={"value": label}, visible=True)
        for r in b["renderers"]:
            r.visible = True

    def hide_branch(self, slot):
        b = self.branches[slot]
        _empty(b["source"])
        for thing in (*b["items"], *b["renderers"]):
            thing.visible = False

    def add_branch(self, slot, observations):
        rows = [o for o in observations if o.kind == "batch"]
        if rows:
            self.branches[slot]["source"].stream(self._columns(rows), rollover=self.rollover)

    def _columns(self, rows):
        new = {k: [getattr(r, k) for r in rows] for k in self.BATCH}
        new["silent_pct"] = [100.0 * r.silent_fraction for r in rows]
        return new

    def clear(self):
        for source in (self.batches, self.older, self.epochs, self.markers):
            _empty(source)
        for slot in range(len(self.branches)):
            self.hide_branch(slot)
        self.loss_names = []

    @property
    def first_live_step(self):
        steps = self.batches.data["step"]
        return steps[0] if len(steps) else None

    def show_older(self, columns):
        """What rolled off the streamed curves: {field: array} (from LongHistory.columns)."""
        self.older.data = {**{k: np.asarray(columns[k]) for k in self.BATCH},
                           "silent_pct": 100.0 * np.asarray(columns["silent_fraction"])}

    def archive(self):
        """Keep the current run as a faint overlay (the last EARLIER_RUNS of them), then clear."""
        data = {k: np.concatenate([np.asarray(self.older.data[k], float), np.asarray(self.batches.data[k], float)])
                for k in self.BATCH}
        n = len(data["step"])
        if n:
            keep = np.unique(np.linspace(0, n - 1, min(n, EARLIER_POINTS)).astype(int))
            columns = {k: data[k][keep] for k in self.BATCH}
            self.earlier_runs.append((" → ".join(self.loss_names) or "run", columns))
            joined = {k: [] for k in self.BATCH}
            for _, cols in self.earlier_runs:
                for k in self.BATCH:
                    joined[k] += list(cols[k]) + [np.nan]
            self.earlier.data = joined
            labels = "; ".join(label for label, _ in self.earlier_runs)
            self.loss_fig.title.text = f"loss (faint: earlier runs — {labels})"
        self.clear()

    def add(self, observations):
        rows = [o for o in observations if o.kind == "batch"]
        if rows:
            self.batches.stream(self._columns(rows), rollover=self.rollover)
            for r in rows:
                name = r.loss_name
                if name and (not self.loss_names or self.loss_names[-1] != name):
                    self.loss_names.append(name)
        epochs = [o for o in observations if o.kind == "epoch"]
        if epochs:
            self.epochs.stream({k: [_number(getattr(e, k)) for e in epochs] for k in self.EPOCH},
                               rollover=self.rollover)
        events = [o for o in observations if o.kind == "event" and o.label is not None]
        if events:
            self.markers.stream({"step": [e.step for e in events], "label": [e.label for e in events],
                                 "color": [MARKER_COLORS.get(e.what, CHANGE_COLOR) for e in events]},
                                rollover=MARKERS)

    def layout(self):
        return [self.loss_fig, self.acc_fig, self.activity_fig]
