"""Compare runs: the learning curves of several run folders overlaid (accuracy against epoch and
wall-clock, hidden rate and silent fraction per epoch), and a sweep's results by loss and
augmentation with error bars over seeds and folds. HoloViews elements rendered by Panel's Bokeh
backend. The dashboard's Compare tab (`?tab=compare`) is this view; in JupyterLab:

    from app.compare import compare_runs
    compare_runs("runs/sweeps/loss-aug")

The folders it reads are those under a root (`runs/`; the server's `--args --runs-root DIR` or
$EVENTPROP_RUNS_ROOT), so that a served page cannot be pointed at the rest of the file system."""
import json
import math
import os
import sys
from pathlib import Path

import holoviews as hv
import pandas as pd
import panel as pn
import param
from bokeh.palettes import Category10_10

from eventprop_lab.results import aggregate, read_epochs, summarise_run

hv.extension("bokeh", logo=False)

CURVES = {"validation accuracy": "validation_accuracy", "train accuracy": "train_accuracy",
          "validation loss": "validation_loss", "train loss": "train_loss"}
RATE, SILENT = "train_rate_hz", "train_silent_fraction"
RESULTS = {"test at best validation": "test_at_best", "best validation": "best_val_acc",
           "test (last weights)": "test_acc", "hidden rate, last epoch (Hz)": "rate_last"}
RUN_FILES = ("sweep_cell.json", "metrics.jsonl", "epochs.csv", "summary.json")  # any one makes a run folder
AUGMENTATIONS = ("shift", "blend", "dilate", "jitter")  # spec §5, the augment section's switches
ROOT_OPTION, ROOT_ENV = "--runs-root", "EVENTPROP_RUNS_ROOT"


def given_root(argv=None):
    """The folder the served Compare tab reads under: `--runs-root DIR` (after panel serve's --args),
    else $EVENTPROP_RUNS_ROOT, else runs/."""
    argv = sys.argv if argv is None else argv
    for i, arg in enumerate(argv):
        if arg == ROOT_OPTION and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(ROOT_OPTION + "="):
            return arg.split("=", 1)[1]
    return os.environ.get(ROOT_ENV) or "runs"


# ---- folders -------------------------------------------------------------------------------------
def is_run(path):
    return any((Path(path) / name).is_file() for name in RUN_FILES)


def run_folders(folder):
    """The run folders in `folder` (a sweep's cells, or runs side by side); a run folder is itself."""
    folder = Path(folder)
    if is_run(folder):
        return [folder]
    return sorted(p for p in folder.iterdir() if p.is_dir() and is_run(p))


def folders_with_runs(root, depth=3, limit=200):
    """Folders under root (root-relative, "." for root) that hold run folders, newest first."""
    root, found = Path(root), []

    def walk(folder, level):
        try:
            children = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        except OSError:
            return
        runs = [p for p in children if is_run(p)]
        if runs:
            found.append((max(p.stat().st_mtime for p in runs), folder))
        if level < depth:
            for child in sorted(set(children) - set(runs)):
                if len(found) < limit:
                    walk(child, level + 1)

    if root.is_dir():
        walk(root, 0)
    return [str(f.relative_to(root)) for _, f in sorted(found, key=lambda t: -t[0])]


def resolve_folder(root, folder):
    """(path, None) for a folder under root, else (None, why not)."""
    if not str(folder).strip():
        return None, "choose a folder of runs"
    root = Path(root).resolve()
    path = Path(folder).expanduser()
    path = (path if path.is_absolute() else root / path).resolve()
    if path != root and root not in path.parents:
        return None, f"{folder} is not under {root}: this page reads only folders there"
    if not path.is_dir():
        return None, f"there is no folder {folder} under {root}"
    return path, None


# ---- reading runs --------------------------------------------------------------------------------
def _setup_of(config):
    augment = config.get("augment", {})
    chosen = [name for name in AUGMENTATIONS if augment.get(name)]
    return {"loss": config.get("training", {}).get("loss", "?"), "augmentation": "+".join(chosen) or "none"}


def run_setup(run_dir, events=None):
    """The loss and augmentation a run trained with: from its start event, else its sweep cell."""
    if events is None:
        _, events = read_epochs(run_dir)
    for event in events:
        if event.get("what") == "start" and isinstance(event.get("config"), dict):
            return _setup_of(event["config"])
    try:
        from eventprop_lab.config import config_to_dict
        from eventprop_lab.sweep import cell_configs

        cell = json.loads((Path(run_dir) / "sweep_cell.json").read_text())
        return _setup_of(config_to_dict(cell_configs(cell)))
    except Exception:  # noqa: BLE001 -- no cell, or one this version cannot read: unknown, not an error
        return {"loss": "?", "augmentation": "?"}


def read_runs(run_dirs):
    """(epochs, results, notes): one row per (run, epoch), one row per configuration (mean and sd
    over seeds and folds, as `eventprop-lab results`), and what could not be read, in words. A run
    cut short is read as far as it goes."""
    frames, rows, notes, unfinished = [], [], [], []
    for d in map(Path, run_dirs):
        try:
            epochs, events = read_epochs(d)
            row = summarise_run(d)
            for key, value in run_setup(d, events).items():  # a sweep's varied loss is as good as the event's
                if value != "?" or key not in row:
                    row[key] = value
        except Exception as exc:  # noqa: BLE001 -- one unreadable folder must not hide the others
            notes.append(f"{d.name}: not readable ({type(exc).__name__}: {exc})")
            continue
        if not epochs:
            notes.append(f"{d.name}: no finished epoch yet")
            continue
        frame = pd.DataFrame(epochs)
        frame["run"] = d.name
        frames.append(frame)
        rows.append(row)
        if not row["finished"]:
            unfinished.append(d.name)
    if unfinished:
        notes.append(f"still running or cut short (shown as far as they go): {', '.join(unfinished)}")
    columns = ["run", "epoch", "wall_s", RATE, SILENT, *CURVES.values()]
    epochs = pd.concat(frames, ignore_index=True).reindex(columns=columns) if frames else pd.DataFrame(columns=columns)
    return epochs, pd.DataFrame(aggregate(rows)), notes


def epochs_frame(run_dirs):
    """One row per (run, epoch): the epoch records of each run folder, named by the folder."""
    return read_runs(run_dirs)[0]


def results_frame(run_dirs):
    """One row per configuration (mean and sd over its seeds and folds), with its loss and augmentation."""
    return read_runs(run_dirs)[1]


# ---- plots ---------------------------------------------------------------------------------------
def colours(names):
    """One colour per run, the same in every plot."""
    return {name: Category10_10[i % len(Category10_10)] for i, name in enumerate(names)}


def curves(frame, y, x="epoch", runs=None, colour=None):
    """hv.Curve per run, overlaid; the legend names the runs."""
    data = frame if runs is None else frame[frame["run"].isin(runs)]
    data = data.dropna(subset=[x, y])
    names = list(dict.fromkeys(data["run"]))
    colour = colour or colours(names)
    overlay = hv.NdOverlay({name: hv.Curve(data[data["run"] == name], x, y, label=name).opts(color=colour[name])
                            for name in names}, kdims=["run"])
    return overlay.opts(hv.opts.Curve(tools=["hover"], line_width=2), hv.opts.NdOverlay(legend_position="right"))


def results_plot(frame, y="test_at_best"):
    """A point per configuration with error bars (± sd over seeds and folds): across, the loss and
    augmentation; colour, the augmentation. A sweep that varies more shows its configurations."""
    if frame.empty or y not in frame:
        return hv.Overlay([hv.ErrorBars([], "configuration", [y, y + "_sd"]), hv.Scatter([], "configuration", y)])
    data = frame.copy()
    for key in ("loss", "augmentation"):
        data[key] = data[key].fillna("?").astype(str) if key in data else "?"
    data[y + "_sd"] = data[y + "_sd"].fillna(0.0)
    by_setup = data.groupby(["loss", "augmentation"]).size().max() == 1
    data["configuration"] = (data["loss"] + " · " + data["augmentation"]) if by_setup else data["config"]
    data = data.sort_values(["loss", "augmentation", "configuration"])
    colour = colours(list(dict.fromkeys(data["augmentation"])))
    across = hv.Dimension("configuration", values=list(data["configuration"]))  # the axis in this order, not by layer
    layers = []
    for augmentation, part in data.groupby("augmentation", sort=False):
        points = part[["configuration", y, y + "_sd", "config"]]
        layers.append(hv.ErrorBars(points, across, [y, y + "_sd"]).opts(color=colour[augmentation]))
        layers.append(hv.Scatter(points, across, [y, y + "_sd", "config"], label=augmentation)
                      .opts(color=colour[augmentation], size=9, tools=["hover"]))
    return hv.Overlay(layers).opts(hv.opts.Scatter(xrotation=20), hv.opts.Overlay(legend_position="right"))


# ---- the page ------------------------------------------------------------------------------------
class CompareRuns(pn.viewable.Viewer):
    """Pick a folder of runs under the root (a sweep's, or any folder of run folders) and some of its runs."""

    root = param.String("runs", constant=True, doc="the folder whose subfolders this view may read")
    folder = param.String("", doc="a sweep folder, or any folder of run folders (relative to the root)")
    found = param.Selector(default="", objects=[""], label="folders with runs",
                           doc="the folders under the root that hold runs, newest first")
    runs = param.ListSelector(default=[], objects=[], doc="runs to compare (none chosen: all)")
    curve = param.Selector(objects=list(CURVES), default="validation accuracy",
                           doc="what the first two plots show, against epoch and against wall-clock")
    result = param.Selector(objects=list(RESULTS), default="test at best validation", doc="the results plot's value")
    reload = param.Event(doc="read the folders again (runs still going)")
    message = param.String("", doc="why nothing or not everything is shown")

    def __init__(self, **params):
        super().__init__(**params)
        self.run_dirs, self.notes = [], []
        self.epochs, self.table = read_runs([])[:2]
        self._list_folders()
        if not self.folder and self.param.found.objects[1:]:
            self.folder = self.param.found.objects[1]  # the newest; sets found and loads
        else:
            self._load()

    @param.depends("reload", watch=True)
    def _list_folders(self):
        found = folders_with_runs(self.root)
        self.param.found.objects = ["", *found]
        self.found = self.folder if self.folder in found else ""

    @param.depends("found", watch=True)
    def _found_chosen(self):
        if self.found:
            self.folder = self.found

    @param.depends("folder", "reload", watch=True)
    def _load(self):
        path, why = resolve_folder(self.root, self.folder)
        self.run_dirs = []
        if path is not None:
            try:
                self.run_dirs = run_folders(path)
            except OSError as exc:
                why = f"{self.folder} could not be read: {exc}"
            else:
                if not self.run_dirs:
                    why = (f"no runs in {self.folder}: a run folder holds metrics.jsonl or epochs.csv "
                           "(from `eventprop-lab train` or a sweep)")
        self.epochs, self.table, self.notes = read_runs(self.run_dirs)
        if self.run_dirs and self.epochs.empty:
            why = f"no run in {self.folder} has finished an epoch yet"
        names = [d.name for d in self.run_dirs]
        self.param.runs.objects = names
        self.runs = [r for r in self.runs if r in names]
        self.found = self.folder if self.folder in self.param.found.objects else ""
        self.message = why or ""

    def _chosen(self):
        return self.runs or None

    def _pane(self, plot, title, xlabel, ylabel, legend=True):
        plot = plot.opts(responsive=True, title=title, xlabel=xlabel, ylabel=ylabel, show_legend=legend)
        return pn.pane.HoloViews(plot, sizing_mode="stretch_width", height=340, backend="bokeh")

    @param.depends("folder", "reload", "runs", "curve")
    def curves_view(self):
        if self.epochs.empty:
            return pn.Column()
        colour = colours(self.param.runs.objects)
        draw = lambda y, x="epoch": curves(self.epochs, y, x, self._chosen(), colour)  # noqa: E731
        return pn.Column(
            # the legend once, full width: a sweep's run names are long
            self._pane(draw(CURVES[self.curve]), f"{self.curve} per epoch", "epoch", self.curve),
            pn.Row(self._pane(draw(CURVES[self.curve], "wall_s"), "against wall-clock",
                              "wall-clock (s)", self.curve, legend=False),
                   self._pane(draw(RATE), "hidden rate per epoch (training)", "epoch", "hidden rate (Hz)",
                              legend=False),
                   self._pane(draw(SILENT), "silent fraction per epoch (training)", "epoch", "silent fraction",
                              legend=False),
                   sizing_mode="stretch_width"),
            sizing_mode="stretch_width")

    @param.depends("folder", "reload", "runs", "result")
    def results_view(self):
        if self.epochs.empty:
            return pn.Column()
        table = self.table
        if self.runs:
            table = read_runs([d for d in self.run_dirs if d.name in self.runs])[1]
        return self._pane(results_plot(table, RESULTS[self.result]),
                          f"{self.result} by loss · augmentation, mean ± sd over seeds and folds",
                          "loss · augmentation", self.result)

    @param.depends("message", "folder", "reload", "runs")
    def message_view(self):
        text = f"⚠ {self.message}" if self.message else f"{len(self.run_dirs)} runs in {self.folder}"
        if self.runs and not self.message:
            text += f", {len(self.runs)} chosen"
        notes = "".join(f"\n- {note}" for note in self.notes)
        return pn.pane.Markdown(text + ("\n" + notes if notes else ""), css_classes=["compare-message"],
                                sizing_mode="stretch_width")

    def __panel__(self):
        controls = pn.Param(self.param, parameters=["folder", "found", "runs", "curve", "result", "reload"],
                            widgets={"folder": {"type": pn.widgets.TextInput,
                                                "placeholder": "a folder under the root, e.g. sweeps/loss-aug"},
                                     "runs": {"type": pn.widgets.MultiSelect, "size": 12},
                                     "reload": pn.widgets.Button},
                            show_name=False, width=320)
        head = pn.pane.Markdown(f"## Compare runs\nFolders under `{self.root}`; none of the runs chosen: all.",
                                width=320)
        return pn.Row(pn.Column(head, controls, width=330),
                      pn.Column(self.message_view, self.curves_view, self.results_view, sizing_mode="stretch_width"),
                      sizing_mode="stretch_width")


def compare_runs(folder="runs", root=None):
    """The Compare tab's page (in JupyterLab, or `.servable()`): the runs in `folder`, and the folders
    of runs under `root` (default: `folder` itself) to choose from."""
    if root is None:
        return CompareRuns(root=str(folder), folder=".").__panel__()
    return CompareRuns(root=str(root), folder=str(folder)).__panel__()


def compare_tab(session_args=None):
    """The dashboard's Compare tab: compare_runs under the server's root, built only when the tab is
    first shown (reading a sweep's runs costs a page that stays on Training nothing). `?folder=`
    opens that folder."""
    folder = ((session_args or {}).get("folder") or [b""])[-1]
    folder = folder.decode() if isinstance(folder, bytes) else str(folder)
    return pn.param.ParamFunction(lambda: compare_runs(folder, root=given_root()), lazy=True,
                                  sizing_mode="stretch_width")
