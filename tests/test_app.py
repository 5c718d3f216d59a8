"""The dashboard's Python objects on a tiny toy session: polling, plots, markers, buttons, reset."""
import sys
from urllib.parse import parse_qs
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest

pn = pytest.importorskip("panel", reason="the dashboard needs panel (pip install panel holoviews bokeh)")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for `app`

from app.dashboard import Dashboard, parse_url_args  # noqa: E402
from app.plots import MAX_TRACE_POINTS, slim_probe  # noqa: E402
from eventprop_lab.observe import ProbeRecord  # noqa: E402
from eventprop_lab.session import TrainingSession  # noqa: E402
from test_session import configs, toy_data  # noqa: E402


@pytest.fixture
def session(tmp_path):
    s = TrainingSession.from_configs(*configs(tmp_path), data=toy_data())  # probes every 4 steps
    yield s
    s.stop()


@pytest.fixture
def dash(session):
    # every new probe and status drawn at once (the throttles have their own tests)
    d = Dashboard(session=session, probe_interval=0, status_interval=0)
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
    assert len(dash.adjoint.correct) == 100  # trial_ms 100 at dt 1
    lines = dash.adjoint.lines.source.data  # the correct class, and the band of the other three
    p = dash.probes[-1]
    others = np.delete(p["diff"], p["label"], axis=1)
    assert np.array_equal(lines["lo"], others.min(1)) and np.array_equal(lines["hi"], others.max(1))
    assert np.array_equal(dash.adjoint.correct, p["diff"][:, p["label"]]) and p["diff"].shape[1] == 4
    for name, size in (("W_in", 40 * 16), ("W_rec", 16 * 16), ("W_out", 16 * 4)):
        assert sum(dash.weights[name].bars.data["count"]) == size
        assert list(dash.weights[name].bands.data["step"]) == [1, 5]  # probes every 4 steps
        bands = dash.weights[name].bands.data
        assert bands["p5"][0] <= bands["p25"][0] <= bands["p50"][0] <= bands["p75"][0] <= bands["p95"][0]
    assert len(dash.by_weight.points.data["w"]) == 16
    points = dash.transported.points.data
    assert 0 < len(set(points["neuron"])) <= 5 and len(points["t"]) == len(points["value"]) > 0
    assert np.all(np.isfinite(points["value"]))
    j = points["neuron"][0]  # the legend names each neuron with the sum of what it received
    total = np.asarray(points["value"])[np.asarray(points["neuron"]) == j].sum()
    assert points["label"][0] == f"#{j}: Σ {total:+.1e}"
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
    earlier = dash.curves.earlier.data  # the run before the reset stays as a faint overlay
    assert len(earlier["step"]) == n + 2 and earlier["step"][n] == n + 1 and np.isnan(earlier["step"][-1])
    assert "sum_exp" in dash.curves.loss_fig.title.text


def test_a_new_dataset_is_loaded_by_the_reset_and_every_page_follows(dash, session, tmp_path):
    from eventprop_lab.data import write_shd_h5
    from eventprop_lab.toy import spike_patterns

    samples, labels = spike_patterns(40, n_classes=4, n_channels=24, seed=3)
    for split, part in (("train", slice(0, 30)), ("test", slice(30, 40))):
        write_shd_h5(tmp_path / f"other_{split}.h5", samples[part], labels[part], np.arange(40)[part] % 2)
    other = Dashboard(session=session)  # a second page on the same session
    path = str(tmp_path / "other_train.h5")
    dash.controls.dataset = path
    assert "applied on reset" in dash.message and session.pending_reset == {"dataset": path}
    other.update()
    assert other.controls.dataset == path and "waiting for reset: dataset" in other.status_line(session.progress)
    assert dash.reset()
    assert dash.session is other.session is session and session.run.net.n_in == 700  # SHD layout
    assert len(session.run.train_set) + len(session.run.validation_set) == 30 and len(session.run.test_set) == 10


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


def test_epochs_add_train_and_validation_points_and_activity(dash, session):
    session.step_epoch()  # 6 batches
    assert session.wait()
    dash.update()
    epochs = dash.curves.epochs.data
    assert list(epochs["step"]) == [6] and list(epochs["epoch"]) == [1]
    assert 0 <= epochs["validation_accuracy"][0] <= 1 and np.isfinite(epochs["validation_loss"][0])
    assert 0 <= epochs["train_silent_fraction"][0] <= 1 and epochs["train_rate_hz"][0] > 0
    batches = dash.curves.batches.data
    assert np.allclose(batches["silent_pct"], 100 * np.asarray(batches["silent_fraction"]))


def test_scrubbing_back_shows_an_older_probe_and_keeps_it_while_training_goes_on(dash, session):
    dash.step(9)  # probes at steps 1, 5, 9
    session.wait()
    dash.update()
    assert [p["step"] for p in dash.probes.items] == [1, 5, 9] and dash.probe.step == 9
    newest_inputs = len(dash.probe.inputs.data["t"])
    dash.scrub.value = 0  # what the slider does when dragged back
    assert dash.probe.step == 1 and not dash.follow.value and "step 1" in dash.scrub.label
    assert "step 1" in dash.weights["W_in"].hist_fig.title.text
    dash.step(4)  # a new probe at 13: the shown one stays
    session.wait()
    dash.update()
    assert dash.probe.step == 1 and dash.scrub.value == 0 and dash.scrub.end == 3
    dash.follow.value = True
    assert dash.probe.step == 13 and dash.scrub.value == 3
    assert newest_inputs > 0


def test_link_settings_apply_hot_ones_and_rebuild_an_untrained_run(session):
    d = Dashboard(session=session, url_args={"loss": [b"sum"], "shift": [b"1"], "n_hidden": [b"8"],
                                             "hide": [b"dataset,reset"]})
    d.__panel__()
    assert session.run.net.n_hidden == 8 and session.params.W_out.shape == (8, 4)  # rebuilt before training
    session.wait()
    assert session.run.training.loss == "sum" and session.run.augment.shift is True
    assert d.hidden == {"dataset", "reset"} and "settings from the link" in d.message
    query = d.share_url().split("?", 1)[1]
    assert "loss=sum" in query and "shift=1" in query and "n_hidden=8" in query and "hide=dataset,reset" in query
    settings, hidden, problems = parse_url_args(parse_qs(query))  # the link gives back these settings
    assert problems == [] and hidden == {"dataset", "reset"}
    assert {k: settings[k] for k in ("loss", "shift", "n_hidden")} == {"loss": "sum", "shift": True, "n_hidden": 8}


def test_a_bad_link_is_reported_and_the_rest_applied(session):
    settings, hidden, problems = parse_url_args({"lr": ["abc"], "batch_size": ["0"], "foo": ["1"],
                                                 "shift": ["maybe"], "hide": ["lr,nope"], "loss": ["max"]})
    assert settings == {"loss": "max"} and hidden == {"lr"}
    text = " ".join(problems)
    for bad in ("lr='abc'", "batch_size='0'", "'foo'", "shift='maybe'", "nope"):
        assert bad in text
    session.step(1)
    session.wait()
    d = Dashboard(session=session, url_args={"lr": ["abc"], "n_hidden": ["8"]})
    d.__panel__()
    assert "lr='abc' ignored" in d.link_report and session.run.net.n_hidden == 16  # trained already: not rebuilt
    assert d.controls.n_hidden == 8 and session.pending_reset == {"n_hidden": 8}
    assert "lr='abc' ignored" in d.status_line(session.progress)


def test_a_bad_link_is_still_named_after_the_session_attaches(session):
    """Bug 3 of issue 13: the message was cleared when the session attached."""
    future = Future()
    d = Dashboard(loader=future, url_args={"lr": ["abc"], "loss": ["nope"], "n_hidden": ["-5"], "foo": ["1"]})
    d.__panel__()
    future.set_result(session)
    d.update()
    assert d.session is session
    for bad in ("lr='abc'", "loss='nope'", "n_hidden='-5'", "'foo'", "one of sum, sum_exp", "≥ 1"):
        assert bad in d.status.object, bad
    d.message = "something else happened"
    d.update()
    assert "lr='abc'" in d.status.object


def test_a_visitors_link_does_not_change_a_shared_run(session):
    """Bug 2 of issue 13: only the steering page's link applies to the run."""
    session.step(1)
    session.wait()
    visitor = Dashboard(session=session, steering=False, url_args={"lr": ["0.1"], "mode": ["classroom"]})
    visitor.__panel__()
    session.wait()
    assert session.settings["lr"] == 1e-2 and session.run.training.lr == 1e-2 and visitor.controls.lr == 1e-2
    assert "lr=0.1 not applied" in visitor.link_report and "teacher's page" in visitor.link_report
    assert "lr" not in visitor.hidden and "n_hidden" in visitor.hidden  # the page's own flags still count


def test_every_page_follows_a_change_made_on_another(session):
    """Bug 1 of issue 13: page B switches the loss, page A's selector follows."""
    a, b = Dashboard(session=session), Dashboard(session=session)
    a.__panel__(), b.__panel__()
    b.controls.loss = "avg_xentropy"
    assert a.controls.loss == "sum_exp"  # until a's next update
    a.update()
    assert a.controls.loss == "avg_xentropy" and session.progress["pending"] == 1  # following sent nothing
    session.set(lr=3e-3, n_hidden=8)  # from Python (a notebook) too
    a.update()
    assert (a.controls.lr, a.controls.n_hidden) == (3e-3, 8) and "waiting for reset: n_hidden 8" in a.status.object


def test_the_preset_selector_applies_a_preset_through_the_session(session):
    d, other = Dashboard(session=session), Dashboard(session=session)
    d.__panel__()
    assert d.controls.preset == "custom"  # the toy's lr is neither preset's
    d.controls.preset = "paper"
    assert session.settings["delay_line"] and session.settings["lr"] == 1e-3
    assert "press reset for" in d.message and "delay_line" in d.message
    other.update()
    assert other.controls.preset == "paper" and other.controls.delay_line and other.controls.blend
    other.controls.lr = 3e-3  # no longer the paper's recipe
    d.update()
    assert d.controls.preset == "custom"
    assert d.reset() and session.run.net.delay_line and session.pending_reset == {}
    link = Dashboard(session=session, url_args={"preset": ["default"], "lr": ["0.002"]})
    link.__panel__()
    assert session.settings["lr"] == 2e-3 and not session.settings["blend"]  # the link's own value wins
    bad, _, problems = parse_url_args({"preset": ["fast"]})
    assert bad == {} and "preset='fast' ignored" in problems[0]


def test_classroom_mode_hides_the_setup_controls(session):
    d = Dashboard(session=session, url_args={"mode": ["classroom"]})
    text = str(d._control_panel())
    assert "loss" in text.lower() and "n_hidden" not in text and "dataset" not in text.lower()
    assert "reset" not in [b.label for b in d._control_panel()[1]]


def test_the_shared_session_is_stopped_at_server_shutdown(session, monkeypatch):
    import app.shared as dashboard

    future = Future()
    future.set_result(session)
    monkeypatch.setitem(pn.state.cache, "eventprop-lab/test", future)
    monkeypatch.setattr(dashboard, "_shared_keys", {"eventprop-lab/test"})
    session.start()
    assert session.wait(until=lambda p: p["step"] >= 1)
    assert dashboard.stop_shared_sessions() == 1
    assert session.status == "stopped" and not any(t.name == "eventprop-session" and t.is_alive()
                                                   for t in __import__("threading").enumerate())


def test_a_backend_that_cannot_run_here_is_greyed_out_and_a_reset_to_it_is_refused(dash, session, monkeypatch):
    import app.dashboard as dashboard
    import eventprop_lab.training as training

    monkeypatch.setattr(dashboard, "backend_available",
                        lambda name: (False, "pygenn cannot be imported") if name == "genn" else (True, ""))
    select = [w for w in pn.panel(dash._control_panel()).select(pn.widgets.Select) if "genn" in w.options]
    assert select and select[0].disabled_options == ["genn"] and "pygenn" in select[0].description
    real = training.get_engine

    def no_genn(name="numba", **kw):
        if name == "genn":
            raise ImportError("pygenn cannot be imported (test)")
        return real(name, **kw)

    monkeypatch.setattr(training, "get_engine", no_genn)
    session.step(1)
    session.wait()
    d = Dashboard(session=session)  # as from a link or from Python: no widget stands in the way
    d.controls.backend = "genn"
    d.reset()
    assert "not reset" in d.message and "pygenn" in d.message
    assert session.run.training.backend == "numba" and d.controls.backend == "numba"
    assert session.progress["step"] == 1  # the run is untouched


def test_the_newest_probe_is_redrawn_at_most_every_probe_interval(session):
    d = Dashboard(session=session, probe_interval=3600)
    d.__panel__()
    session.step(5)  # probes at steps 1 and 5
    session.wait()
    d.update()
    assert d.probe.step == 5  # the first probe a page sees is drawn at once
    session.step(4)  # a probe at step 9
    session.wait()
    d.update()
    assert d.probe.step == 5 and [p["step"] for p in d.probes.items] == [1, 5, 9]  # kept, not yet drawn
    assert list(d.weights["W_out"].bands.data["step"]) == [1, 5]  # on the same clock
    d.probe_interval = 0
    d.update()
    assert d.probe.step == 9
    assert list(d.weights["W_out"].bands.data["step"]) == [1, 5, 9]  # no probe is left out of the bands


def test_the_status_line_refreshes_every_status_interval_and_at_once_on_a_change(session):
    d = Dashboard(session=session, status_interval=3600)
    d.__panel__()
    session.step(2)
    session.wait()
    d.update()
    assert "step 2" in d.status.object and "paused" in d.status.object  # the state changed: at once
    session.step(3)
    session.wait()
    d.update()
    assert "step 2" in d.status.object  # the same state: the counter waits for the interval
    assert list(d.curves.batches.data["step"]) == [1, 2, 3, 4, 5]  # the curves never wait
    d.message = "hello"
    d.update()
    assert "step 5" in d.status.object and "hello" in d.status.object


def test_every_dashboard_shares_one_slimmed_copy_of_a_probe(session):
    a, b = Dashboard(session=session), Dashboard(session=session)
    session.step(1)
    session.wait()
    a.update()
    b.update()
    assert len(a.probes) == len(b.probes) == 1 and a.probes[0] is b.probes[0]


def test_long_readout_traces_are_thinned_for_the_browser():
    T, K = 1001, 3
    rng = np.random.default_rng(0)
    probe = ProbeRecord(hidden_ids=np.array([0, 1, 1]), hidden_times=np.array([1.0, 2.0, 3.0]),
                        transported=np.zeros(3), input_times=np.zeros(0), input_channels=np.zeros(0, int), dt=0.5, label=2,
                        readout_v=rng.normal(size=(T, K)), lambda_v_out=rng.normal(size=(T, K)),
                        lambda_i_out=rng.normal(size=(T, K)), lambda_v=np.zeros((T, 2)), lambda_i=np.zeros((T, 2)),
                        w_out=np.ones((2, K)))
    p = slim_probe(probe)
    every = 3  # ceil(1001 / 500)
    assert len(p["trace_t"]) == p["readout_v"].shape[0] == p["diff"].shape[0] <= MAX_TRACE_POINTS
    assert np.allclose(p["trace_t"], np.arange(0, T, every) * 0.5)
    assert np.allclose(p["readout_v"], probe.readout_v[::every])
    assert np.allclose(p["diff"], (probe.lambda_v_out - probe.lambda_i_out)[::every], atol=1e-6)


def test_a_page_opened_late_draws_the_weights_history_the_session_remembers(tmp_path):
    s = TrainingSession.from_configs(*configs(tmp_path), data=toy_data(), probe_capacity=2)  # probes every 4 steps
    try:
        s.step(13)  # probes at steps 1, 5, 9 and 13; the session keeps only the last 2 probes
        s.wait()
        d = Dashboard(session=s)
        d.update()
        assert [p["step"] for p in d.probes.items] == [9, 13]
        for name in ("W_in", "W_rec", "W_out"):
            assert list(d.weights[name].bands.data["step"]) == [1, 5, 9, 13]
        newest = s.reader().poll(kinds=("probe",))[-1]  # the step-13 probe: the same numbers
        assert d.weights["W_out"].bands.data["p50"][-1] == newest.weight_histograms["W_out"]["percentiles"][2]
    finally:
        s.stop()
