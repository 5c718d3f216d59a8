"""The dashboard's Python objects on a tiny toy session: polling, plots, markers, buttons, reset."""
import sys
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest

pn = pytest.importorskip("panel", reason="the dashboard needs panel (pip install panel holoviews bokeh)")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for `app`

from app.dashboard import Dashboard  # noqa: E402
from eventprop_lab.session import TrainingSession  # noqa: E402
from test_session import configs, toy_data  # noqa: E402


@pytest.fixture
def session(tmp_path):
    s = TrainingSession.from_configs(*configs(tmp_path), data=toy_data())  # probes every 4 steps
    yield s
    s.stop()


@pytest.fixture
def dash(session):
    d = Dashboard(session=session)
    d.__panel__()  # builds the layout and widgets, as a browser session would
    return d


def test_the_controls_start_from_the_sessions_configs(dash, session):
    c = dash.controls
    assert (c.loss, c.lr, c.n_hidden, c.shift, c.blend) == ("sum_exp", 1e-2, 16, False, False)
    assert session.progress["pending"] == 0  # syncing sent no hot changes


def test_update_streams_batches_probes_and_weights_into_the_plots(dash, session):
    dash.update()
    assert len(dash.curves.batches.data["step"]) == 0
    dash.step(5)
    assert session.wait()
    dash.update()
    data = dash.curves.batches.data
    assert list(data["step"]) == [1, 2, 3, 4, 5] and len(data["loss"]) == len(data["rate_hz"]) == 5
    assert dash.probe.step == 5 and len(dash.probe.inputs.data["t"]) > 0
    assert len(dash.probe.adjoint.data["diff"]) == 100  # trial_ms 100 at dt 1
    assert sum(dash.weights.bars.data["count"]) == 16 * 4  # W_out: n_hidden x n_out
    points = dash.transported.points.data
    assert 0 < len(set(points["neuron"])) <= 5 and len(points["t"]) == len(points["value"]) > 0
    assert np.all(np.isfinite(points["value"])) and "sums #" in dash.transported.fig.title.text
    assert "step 5" in dash.status.object and "paused" in dash.status.object
    dash.step(2)
    session.wait()
    dash.update()
    assert list(dash.curves.batches.data["step"]) == list(range(1, 8))


def test_the_learning_curves_roll_over(dash, session):
    dash.curves.rollover = 4
    dash.step(6)
    session.wait()
    dash.update()
    assert list(dash.curves.batches.data["step"]) == [3, 4, 5, 6]


def test_a_hot_loss_change_reaches_the_session_and_draws_a_labelled_marker(dash, session):
    dash.step(2)
    session.wait()
    dash.controls.loss = "sum"
    dash.controls.lr = 3e-3
    dash.step(1)
    session.wait()
    dash.update()
    assert session.run.training.loss == "sum" and session.run.training.lr == 3e-3
    markers = dash.curves.markers.data
    assert list(markers["step"]) == [2, 2] and list(markers["label"]) == ["loss → sum", "lr → 0.003"]


def test_a_refused_value_is_reported_not_raised(dash, session):
    dash.controls.shift = True
    assert "shift → True" in dash.message
    with pytest.raises(ValueError):  # the param bounds refuse it before it reaches the session
        dash.controls.lr = 2.0
    assert session.progress["pending"] == 1


def test_the_buttons_change_the_session_status(dash, session):
    dash.buttons["play"].clicks += 1
    assert session.wait(until=lambda p: p["state"] == "running" and p["step"] >= 2)
    dash.buttons["pause"].clicks += 1
    assert session.wait() and session.status == "paused"
    n = session.progress["step"]
    dash.buttons["step"].clicks += 1
    assert session.wait() and session.progress["step"] == n + 1
    dash.update()
    assert dash.curves.batches.data["step"][-1] == n + 1
    dash.controls.n_hidden = 8
    assert "applied on reset" in dash.message and session.run.net.n_hidden == 16
    dash.buttons["reset"].clicks += 1
    assert session.status == "idle" and session.progress["step"] == 0 and session.params.W_out.shape == (8, 4)
    dash.update()  # the reader crossed the reset: the plots start afresh
    assert len(dash.curves.batches.data["step"]) == 0 and len(dash.probe.inputs.data["t"]) == 0


def test_a_new_dataset_rebuilds_the_session_through_make_session(dash, session, tmp_path):
    built = []

    def make_session(dataset, n_hidden):
        built.append((dataset, n_hidden))
        return TrainingSession.from_configs(*configs(tmp_path / "new"), data=toy_data())

    dash.make_session = make_session
    dash.controls.dataset = "other"
    dash.reset()
    assert built == [("other", 16)] and dash.session is not session and session.status == "idle"
    dash.session.stop()


def test_a_loader_shows_loading_until_its_session_is_ready(session):
    future = Future()
    d = Dashboard(loader=future)
    d.__panel__()
    d.play()  # nothing to play yet: ignored
    assert "loading" in d.status.object
    future.set_result(session)
    d.update()
    assert d.session is session and "idle" in d.status.object
    failed = Future()
    failed.set_exception(FileNotFoundError("no data"))
    d2 = Dashboard(loader=failed)
    d2.update()
    assert "no data" in d2.status.object
