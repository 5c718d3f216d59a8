"""app/compare.py: learning curves and a sweep's results from run folders, as HoloViews elements."""
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("holoviews")
pytest.importorskip("panel")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for `app`

import holoviews as hv  # noqa: E402

import panel as pn  # noqa: E402

from app.compare import (CompareRuns, compare_runs, curves, epochs_frame, given_root, results_frame,  # noqa: E402
                         results_plot, run_setup)


def _cell(root, config, seed, accs, test):
    d = root / f"{config}__s{seed}"
    d.mkdir(parents=True)
    lines = [json.dumps({"kind": "epoch", "epoch": i, "validation_accuracy": a, "train_accuracy": a,
                         "train_rate_hz": 10.0 + i, "train_silent_fraction": 0.1 * i,
                         "wall_s": 2.0 * i}) for i, a in enumerate(accs, 1)]
    (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (d / "summary.json").write_text(json.dumps({"test_accuracy_at_best": test, "test_accuracy_last": test}))
    (d / "sweep_cell.json").write_text(json.dumps({"config": config, "dataset": "randman-shd", "seed": seed,
                                                   "varied": {"loss": config.split("=")[1]}}))
    return d


@pytest.fixture
def sweep(tmp_path):
    _cell(tmp_path, "loss=max", 1, [0.2, 0.4], 0.30)
    _cell(tmp_path, "loss=max", 2, [0.3, 0.5], 0.40)
    _cell(tmp_path, "loss=sum_exp", 1, [0.5, 0.7, 0.8], 0.60)
    return tmp_path


def test_curves_overlay_one_curve_per_run_against_epoch_or_wall_clock(sweep):
    frame = epochs_frame(sorted(p for p in sweep.iterdir() if p.is_dir()))
    overlay = curves(frame, "validation_accuracy", "wall_s")
    assert isinstance(overlay, hv.NdOverlay) and len(overlay) == 3
    assert list(overlay["loss=sum_exp__s1"].dimension_values("wall_s")) == [2.0, 4.0, 6.0]
    assert len(curves(frame, "train_rate_hz", runs=["loss=max__s1"])) == 1


def test_results_plot_has_mean_and_sd_per_loss_and_augmentation(sweep):
    frame = results_frame(sorted(p for p in sweep.iterdir() if p.is_dir()))
    bars = [layer for layer in results_plot(frame) if isinstance(layer, hv.ErrorBars)]
    assert len(bars) == 1  # one augmentation (unknown here: no start event, a cell without settings)
    rows = dict(zip(bars[0].dimension_values("configuration"), bars[0].dimension_values("test_at_best")))
    assert rows == pytest.approx({"max · ?": 0.35, "sum_exp · ?": 0.60})
    sds = dict(zip(bars[0].dimension_values("configuration"), bars[0].dimension_values("test_at_best_sd")))
    assert sds["max · ?"] == pytest.approx(0.0707, abs=1e-3) and sds["sum_exp · ?"] == 0.0
    frame["augmentation"] = ["none", "shift"]
    plot = results_plot(frame)
    assert [layer.label for layer in plot if isinstance(layer, hv.Scatter)] == ["none", "shift"]
    hv.render(plot)
    hv.render(results_plot(frame.iloc[:0]))  # nothing to show draws an empty plot


def test_compare_view_lists_the_folder_runs_and_renders(sweep):
    view = CompareRuns(root=str(sweep), folder=".")
    assert view.param.runs.objects == ["loss=max__s1", "loss=max__s2", "loss=sum_exp__s1"]
    assert view.message == "" and view.param.found.objects == ["", "."]
    view.runs = ["loss=max__s1"]
    first, row = view.curves_view()
    plots = [first.object, *(pane.object for pane in row)]  # accuracy by epoch and wall-clock, rate, silent
    assert len(plots) == 4 and all(len(overlay) == 1 for overlay in plots)
    assert list(plots[1]["loss=max__s1"].dimension_values("wall_s")) == [2.0, 4.0]
    layout = view.__panel__()
    layout.get_root()  # builds the Bokeh models, as a page or a notebook would
    assert isinstance(compare_runs(sweep), pn.Row)


def test_a_missing_empty_outside_or_half_written_folder_is_said_not_raised(sweep, tmp_path_factory):
    (sweep / "empty").mkdir()
    half = sweep / "loss=max__s3"
    half.mkdir()
    (half / "sweep_cell.json").write_text('{"config": "loss=max", "dataset": "randman-shd", "seed": 3')  # torn
    (half / "metrics.jsonl").write_text('{"kind": "event", "what": "start"}\n{"kind": "epoch", "epo')
    outside = tmp_path_factory.mktemp("elsewhere")
    view = CompareRuns(root=str(sweep), folder=".")
    assert view.message == "" and "loss=max__s3: no finished epoch yet" in view.notes
    assert "loss=max__s3" in view.param.runs.objects  # listed, with its note
    for folder, said in (("nothing", "there is no folder nothing"), ("empty", "no runs in empty"),
                         (str(outside), "is not under"), ("../", "is not under"), ("", "choose a folder")):
        view.folder = folder
        assert said in view.message and view.epochs.empty and view.param.runs.objects == []
        assert said in view.message_view().object
        view.__panel__().get_root()
    view.folder = "."
    assert view.message == "" and len(view.param.runs.objects) == 4


def test_loss_and_augmentation_come_from_the_run_start_event_or_its_sweep_cell(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    config = {"training": {"loss": "first_spike"}, "augment": {"shift": True, "blend": True, "jitter": False}}
    (run / "metrics.jsonl").write_text(json.dumps({"kind": "event", "what": "start", "config": config}) + "\n")
    assert run_setup(run) == {"loss": "first_spike", "augmentation": "shift+blend"}
    (run / "metrics.jsonl").unlink()
    (run / "sweep_cell.json").write_text(json.dumps({"preset": None, "settings": {"loss": "max", "dilate": True},
                                                     "seed": 1, "run_dir": str(run)}))
    assert run_setup(run) == {"loss": "max", "augmentation": "dilate"}
    assert given_root(["serve", "--args", "--runs-root", "/data/runs"]) == "/data/runs"
