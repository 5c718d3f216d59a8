"""A teacher's page and a student's page on one served run (the server given the teacher's key): the
student's controls are greyed out; the teacher switches the loss and undoes it, and the student's
page shows both markers and the loss back; the teacher lets students steer and the student's
controls come free."""
import re
import time

import pytest
from pages import column, open_page

KEY = "teacher-key-for-tests"


@pytest.fixture
def teacher_key(monkeypatch):
    monkeypatch.setenv("EVENTPROP_TEACHER_TOKEN", KEY)  # the served app inherits it


def _until(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the page did not follow"
        time.sleep(0.3)


def test_a_teacher_switches_the_loss_and_undoes_it_and_a_student_watches(teacher_key, served_app, browser):
    errors = []
    student = open_page(browser, served_app + "?mode=classroom", errors)  # first, yet it does not steer
    student.get_by_text(re.compile(r"· step \d+")).wait_for(timeout=90_000)
    student.get_by_text(re.compile("not let students change it")).wait_for(timeout=30_000)
    assert student.locator("select").first.is_disabled()
    teacher = open_page(browser, f"{served_app}?key={KEY}", errors)
    status = teacher.get_by_text(re.compile(r"· step \d+"))
    status.wait_for(timeout=60_000)
    teacher.get_by_role("button", name="step").click()
    teacher.get_by_text(re.compile(r"· step [1-9]")).wait_for(timeout=120_000)
    teacher.locator("select").first.select_option("avg_xentropy")
    teacher.get_by_text(re.compile(r"loss fn avg_xentropy")).wait_for(timeout=30_000)
    _until(lambda: student.locator("select").first.input_value() == "avg_xentropy")
    teacher.get_by_role("button", name="undo").click()
    teacher.get_by_text(re.compile(r"undo: the weights from before loss → avg_xentropy")).wait_for(timeout=30_000)
    _until(lambda: any(label.startswith("undo → step") for label in column(student, "markers", "label") or []))
    assert "loss → avg_xentropy" in column(student, "markers", "label")
    _until(lambda: student.locator("select").first.input_value() == "sum_exp")
    teacher.locator(".students-toggle input[type=checkbox]").check()
    _until(lambda: not student.locator("select").first.is_disabled())
    student.get_by_text(re.compile("lets students steer")).wait_for(timeout=30_000)
    for page in (student, teacher):
        page.close()
    assert errors == []
