"""app/compare.py: learning curves and a sweep's results from run folders, as HoloViews elements."""
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("holoviews")
pytest.importorskip("panel")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for `app`

import holoviews as hv  # noqa: E402

from app.compare import CompareRuns, curves, epochs_frame, results_frame, results_plot  # noqa: E402


def _cell(root, config, seed, accs, test):
    d = root / f"{config}__s{seed}"
    d.mkdir(parents=True)
    lines = [json.dumps({"kind": "epoch", "epoch": i, "validation_accuracy": a, "train_accuracy": a,
                         "train_rate_hz": 10.0 + i, "wall_s": 2.0 * i}) for i, a in enumerate(accs, 1)]
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


def test_results_plot_has_mean_and_sd_per_configuration(sweep):
    frame = results_frame(sorted(p for p in sweep.iterdir() if p.is_dir()))
    plot = results_plot(frame)
    bars = plot.get(0)
    assert isinstance(bars, hv.ErrorBars)
    rows = dict(zip(bars.dimension_values("config"), bars.dimension_values("test_at_best")))
    assert rows["loss=max"] == pytest.approx(0.35) and rows["loss=sum_exp"] == pytest.approx(0.60)
    sds = dict(zip(bars.dimension_values("config"), bars.dimension_values("test_at_best_sd")))
    assert sds["loss=max"] == pytest.approx(0.0707, abs=1e-3) and sds["loss=sum_exp"] == 0.0


def test_compare_view_lists_the_folder_runs_and_renders(sweep):
    view = CompareRuns(folder=str(sweep))
    assert view.param.runs.objects == ["loss=max__s1", "loss=max__s2", "loss=sum_exp__s1"]
    view.runs, view.clock = ["loss=max__s1"], "wall-clock (s)"
    assert len(view.curves_view().object) == 1
    layout = view.__panel__()
    layout.get_root()  # builds the Bokeh models, as a page or a notebook would
    empty = CompareRuns(folder=str(sweep / "nothing"))
    assert empty.param.runs.objects == [] and len(empty.epochs) == 0
    empty.__panel__().get_root()
