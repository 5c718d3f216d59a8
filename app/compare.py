"""Compare runs: the learning curves of several run folders overlaid (against epoch or wall-clock),
and a sweep's results with error bars over seeds and folds. HoloViews elements rendered by Panel's
Bokeh backend; works in JupyterLab as it is:

    from app.compare import CompareRuns
    CompareRuns(folder="runs/sweeps/loss-aug")
"""
from pathlib import Path

import holoviews as hv
import pandas as pd
import panel as pn
import param

from eventprop_lab.results import aggregate, find_runs, read_epochs, summarise_run

hv.extension("bokeh", logo=False)

CURVES = {"validation accuracy": "validation_accuracy", "train accuracy": "train_accuracy",
          "validation loss": "validation_loss", "train loss": "train_loss", "hidden rate (Hz)": "train_rate_hz",
          "silent fraction": "train_silent_fraction"}
CLOCKS = {"epoch": "epoch", "wall-clock (s)": "wall_s"}
RESULTS = {"test at best validation": "test_at_best", "best validation": "best_val_acc",
           "test (last weights)": "test_acc", "hidden rate, last epoch (Hz)": "rate_last"}


def epochs_frame(run_dirs):
    """One row per (run, epoch): the epoch records of each run folder, named by the folder."""
    frames = []
    for d in run_dirs:
        epochs, _ = read_epochs(d)
        if epochs:
            frame = pd.DataFrame(epochs)
            frame["run"] = Path(d).name
            frames.append(frame)
    columns = ["run", "epoch", "wall_s", *CURVES.values()]
    if not frames:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(frames, ignore_index=True)
    return frame.reindex(columns=columns)


def results_frame(run_dirs):
    """One row per configuration (mean and sd over its seeds and folds), as `eventprop-lab results`."""
    return pd.DataFrame(aggregate([summarise_run(d) for d in run_dirs]))


def curves(frame, y, x="epoch", runs=None):
    """hv.Curve per run, overlaid; the legend names the runs."""
    data = frame if runs is None else frame[frame["run"].isin(runs)]
    ds = hv.Dataset(data.dropna(subset=[x, y]), kdims=[x, "run"], vdims=[y])
    overlay = ds.to(hv.Curve, x, y, groupby="run").overlay("run") if len(data) else hv.Curve([], x, y)
    return overlay.opts(hv.opts.Curve(tools=["hover"], line_width=2),
                        hv.opts.NdOverlay(legend_position="right")) if len(data) else overlay


def results_plot(frame, y="test_at_best"):
    """A point per configuration with error bars (± sd over seeds and folds)."""
    if frame.empty:
        return hv.Scatter([], "config", y)
    data = frame[["config", y, y + "_sd"]].fillna({y + "_sd": 0.0})
    points = hv.Scatter(data, "config", [y, y + "_sd"]).opts(size=9, tools=["hover"])
    bars = hv.ErrorBars(data, "config", [y, y + "_sd"])
    return (bars * points).opts(hv.opts.Scatter(xrotation=30), hv.opts.Overlay(show_legend=False))


class CompareRuns(pn.viewable.Viewer):
    """Pick a sweep folder (or any folder of run folders) and some of its runs."""

    folder = param.String("runs/sweeps", doc="a sweep folder, or any folder of run folders")
    runs = param.ListSelector(default=[], objects=[], doc="runs to overlay (none chosen: all)")
    curve = param.Selector(objects=list(CURVES), default="validation accuracy", doc="what the curves show")
    clock = param.Selector(objects=list(CLOCKS), default="epoch", doc="against epochs or wall-clock")
    result = param.Selector(objects=list(RESULTS), default="test at best validation", doc="the results plot's value")
    reload = param.Event(doc="read the folders again (runs still going)")

    def __init__(self, **params):
        super().__init__(**params)
        self._load()

    @param.depends("folder", "reload", watch=True)
    def _load(self):
        dirs = find_runs(self.folder) if Path(self.folder).is_dir() else []
        self.epochs, self.table = epochs_frame(dirs), results_frame(dirs)
        names = [Path(d).name for d in dirs]
        self.param.runs.objects = names
        self.runs = [r for r in self.runs if r in names]

    @param.depends("folder", "reload", "runs", "curve", "clock")
    def curves_view(self):
        plot = curves(self.epochs, CURVES[self.curve], CLOCKS[self.clock], self.runs or None)
        return pn.pane.HoloViews(plot.opts(responsive=True, height=360, title=self.curve, xlabel=self.clock,
                                           ylabel=self.curve), sizing_mode="stretch_width")

    @param.depends("folder", "reload", "result")
    def results_view(self):
        plot = results_plot(self.table, RESULTS[self.result])
        return pn.pane.HoloViews(plot.opts(responsive=True, height=360, title=f"{self.result}, mean ± sd over seeds and folds",
                                           xlabel="configuration", ylabel=self.result),
                                 sizing_mode="stretch_width")

    def __panel__(self):
        controls = pn.Param(self.param, parameters=["folder", "runs", "curve", "clock", "result", "reload"],
                            widgets={"runs": pn.widgets.MultiSelect, "reload": pn.widgets.Button},
                            show_name=False, width=280)
        return pn.Row(controls, pn.Column(self.curves_view, self.results_view, sizing_mode="stretch_width"),
                      sizing_mode="stretch_width")
