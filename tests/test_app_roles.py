"""Roles on the dashboard (teacher, student, a visitor's own run), undo, and the curves' long history."""
import sys
from pathlib import Path

import pytest

pn = pytest.importorskip("panel", reason="the dashboard needs panel (pip install panel holoviews bokeh)")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for `app`

import app.shared as shared  # noqa: E402
from app.dashboard import Dashboard  # noqa: E402
from eventprop_lab.session import TrainingSession  # noqa: E402
from test_session import configs, toy_data  # noqa: E402


@pytest.fixture
def session(tmp_path):
    s = TrainingSession.from_configs(*configs(tmp_path), data=toy_data())
    yield s
    s.stop()


def test_a_students_controls_are_greyed_out_until_the_teacher_lets_students_steer(session):
    teacher = Dashboard(session=session, steering=True)
    student = Dashboard(session=session, steering=False, url_args={"mode": ["classroom"]})
    teacher.__panel__(), student.__panel__()
    assert teacher.students_toggle.visible and not student.students_toggle.visible
    assert student.controls.param["loss"].constant and student.buttons["play"].disabled
    assert "not let students change it" in student.role_note.object and student.role_note.visible
    assert not teacher.controls.param["loss"].constant and not teacher.role_note.visible
    with pn.param.edit_constant(student.controls):  # a change that gets past the greyed-out widget goes back
        student.controls.loss = "sum"
    assert session.settings["loss"] == "sum_exp" and student.controls.loss == "sum_exp"
    student.step()
    assert session.progress["pending"] == 0  # the button did nothing
    teacher.students_toggle.value = True
    assert session.settings["students_may_steer"]
    student.update()
    assert not student.controls.param["loss"].constant and not student.buttons["step"].disabled
    assert "lets students steer" in student.role_note.object
    student.controls.loss = "sum"
    assert session.settings["loss"] == "sum"
    teacher.update()
    assert teacher.controls.loss == "sum"
    session.set(students_may_steer=False)  # from Python too: every page follows
    student.update(), teacher.update()
    assert student.controls.param["loss"].constant and not teacher.students_toggle.value


def test_only_a_page_with_the_teachers_key_steers_when_the_server_was_given_one(monkeypatch):
    monkeypatch.setattr(shared, "_token", None)
    monkeypatch.setenv(shared.TOKEN_ENV, "s3cret")
    assert shared.teacher_token() == "s3cret" and shared.given_token() == "s3cret"
    assert shared.given_token(["panel", "serve", "app", "--args", "--teacher-token", "k2"]) == "k2"
    assert shared.is_teacher({"key": [b"s3cret"]}) and not shared.is_teacher({"key": [b"guess"]})
    assert not shared.is_teacher({})
    assert not shared.claim_steering("eventprop-lab/test-key")  # no first-page rule with a given key
    monkeypatch.delenv(shared.TOKEN_ENV)
    monkeypatch.setattr(shared, "_token", None)
    assert len(shared.teacher_token()) >= 8 and shared.claim_steering("eventprop-lab/test-first")


def test_a_visitor_starts_an_own_run_with_the_links_settings_and_it_ends_with_the_page(session, monkeypatch):
    session.step(1)
    session.wait()
    visitor = Dashboard(session=session, steering=False, url_args={"lr": ["0.003"], "shift": ["1"]})
    visitor.__panel__()
    assert visitor.own_run_button.visible and session.settings["lr"] == 1e-2
    assert visitor.start_own_run() and "starting your own run" in visitor.message
    own = visitor.loader.result(timeout=60)
    visitor.update()
    assert visitor.session is own and own is not session and visitor.back_button.visible
    assert own.settings["lr"] == 3e-3 and own.settings["shift"] and not session.settings["shift"]
    assert own.run.train_set is session.run.train_set  # the data is shared, not loaded again
    assert own.turns is session.turns  # trains in turns with the class's run
    assert not visitor.own_run_button.visible and not visitor.controls.param["lr"].constant
    visitor.controls.lr = 5e-3  # steers its own run only
    assert own.settings["lr"] == 5e-3 and session.settings["lr"] == 1e-2
    monkeypatch.setattr(shared, "PRIVATE_RUNS", 1)  # the server's bound
    other = Dashboard(session=session, steering=False, url_args={"lr": ["0.003"]})
    other.__panel__()
    assert not other.start_own_run() and "try again" in other.message and other.session is session
    own.step(1)
    own.wait()
    visitor.back_to_shared()
    assert visitor.session is session and shared.private_runs() == 0
    assert own.status == "stopped" and not own.run.out.exists()
    assert other.start_own_run()  # the place is free again
    other.update()
    other.loader.result(timeout=60)
    other.update()
    other.end_own_run()  # what the page's close does
    assert shared.private_runs() == 0


def test_undo_restores_the_weights_from_before_a_switch_and_every_page_sees_the_marker(session):
    teacher = Dashboard(session=session, steering=True, probe_interval=0, status_interval=0)
    student = Dashboard(session=session, steering=False, url_args={"mode": ["classroom"]})
    teacher.__panel__(), student.__panel__()
    session.step(3)
    session.wait()
    before = session.params
    teacher.controls.loss = "avg_xentropy"
    session.step(2)
    session.wait()
    teacher.undo()
    session.wait()
    assert "from before loss → avg_xentropy (step 3)" in teacher.message
    assert session.params is before and session.settings["loss"] == "sum_exp"
    student.update(), teacher.update()
    for page in (teacher, student):
        markers = page.curves.markers.data
        assert list(markers["label"]) == ["loss → avg_xentropy", "undo → step 3"]
        assert markers["color"][1] != markers["color"][0]
        assert page.controls.loss == "sum_exp"
    student.undo()  # a student may not
    teacher.undo()
    assert teacher.message == "nothing to undo"


def test_what_rolls_off_the_streamed_curves_is_drawn_from_the_long_history(tmp_path):
    s = TrainingSession.from_configs(*configs(tmp_path), data=toy_data(), history_recent=6, history_capacity=4)
    try:
        d = Dashboard(session=s, history_interval=0)
        d.curves.rollover = 5
        s.step(30)
        s.wait()
        d.update()
        live, older = d.curves.batches.data["step"], d.curves.older.data["step"]
        assert list(live) == [26, 27, 28, 29, 30]
        assert len(older) and older[0] < 10 and max(older) < 26  # the start stays, thinned
        assert len(d.curves.older.data["rate_hz"]) == len(older)
        s.reset()
        d.update()
        assert len(d.curves.older.data["step"]) == 0 and len(d.curves.earlier.data["step"]) > 5
    finally:
        s.stop()
