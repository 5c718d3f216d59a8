"""Branches on the dashboard: a second run from the current weights with another loss, its curves
over the run's on every page (a page opened later too), bounded, stopped from a page or by a reset,
and trained in turns with the run."""
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pn = pytest.importorskip("panel", reason="the dashboard needs panel (pip install panel holoviews bokeh)")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for `app`

from app.branches import MAX_BRANCHES, branches_of  # noqa: E402
from app.dashboard import Dashboard  # noqa: E402
from eventprop_lab.session import TrainingSession, Turns  # noqa: E402
from eventprop_lab.settings import SETTINGS  # noqa: E402
from test_session import configs, kinds, toy_data  # noqa: E402

LOSSES = tuple(SETTINGS["loss"].param.objects)


@pytest.fixture
def session(tmp_path):
    s = TrainingSession.from_configs(*configs(tmp_path), data=toy_data())
    yield s
    for branch in list(s.branches):
        branch.stop()
    s.stop()


@pytest.fixture
def rng():
    return np.random.default_rng()


def other_losses(rng, session, n=1):
    return [str(x) for x in rng.choice([x for x in LOSSES if x != session.settings["loss"]], n, replace=False)]


def stopped(branch):
    return branch.wait(timeout=30, until=lambda p: p["state"] == "stopped")


def drawn(page, slot):
    """What a page draws of the branch in `slot`: its batch columns, legend label and visibility."""
    b = page.curves.branches[slot]
    labels = {item.label.value for item in b["items"]}
    shown = {item.visible for item in b["items"]} | {r.visible for r in b["renderers"]}
    assert len(labels) == 1 and len(shown) == 1  # every figure of the page shows it alike
    return b["source"].data, labels.pop(), shown.pop()


def test_a_branch_is_drawn_over_the_run_on_every_page_and_on_one_opened_later(session, rng):
    teacher = Dashboard(session=session, steering=True, probe_interval=0, status_interval=0)
    student = Dashboard(session=session, steering=False, url_args={"mode": ["classroom"]}, status_interval=0)
    teacher.__panel__(), student.__panel__()
    first, more = (int(x) for x in rng.integers(1, 5, size=2))
    teacher.step(first)
    session.wait()
    (loss,) = other_losses(rng, session)
    student.branch_loss.value = teacher.branch_loss.value = loss
    assert student.branch_button.disabled and not student.start_branch()
    assert "only the teacher" in student.message and not branches_of(session).live()
    assert teacher.start_branch()
    session.wait()  # made at the run's next batch boundary
    ((slot, branch),) = branches_of(session).live()
    label = f"branch 1: loss → {loss}"
    assert branch.branch_label == label and branch.progress["step"] == first
    teacher.step(more)  # the run and its branch, in turns
    session.wait(), branch.wait()
    assert session.progress["step"] == branch.progress["step"] == first + more
    rows = kinds(branch, "batch")
    assert {r.loss_name for r in rows} == {loss}
    late = Dashboard(session=session, steering=False, status_interval=0)
    late.__panel__()
    for page in (teacher, student, late):
        page.update()
        data, legend, shown = drawn(page, slot)
        assert list(data["step"]) == list(range(first + 1, first + more + 1)) and shown and legend == label
        assert np.allclose(data["loss"], [r.loss for r in rows])
        assert np.allclose(data["silent_pct"], [100 * r.silent_fraction for r in rows])
        assert list(page.curves.batches.data["step"]) == list(range(1, first + more + 1))  # the run's own
        assert label in page.curves.markers.data["label"] and label in page.branch_note.object
        assert page.branch_pick.options == {label: slot}
    assert not student.stop_branch() and branches_of(session).live()
    assert teacher.stop_branch() and label in teacher.message
    assert stopped(branch) and not list(session.branches)
    for page in (teacher, student, late):
        page.update()
        data, _, shown = drawn(page, slot)
        assert not shown and not len(data["step"]) and not page.branch_note.visible


def test_branches_are_bounded_checked_and_end_with_a_reset(session, rng):
    page = Dashboard(session=session, steering=True, status_interval=0)
    page.__panel__()
    page.branch_loss.value = session.settings["loss"]
    assert not page.start_branch() and "other than the run's" in page.message
    page.branch_lr.value = -float(rng.uniform(1e-4, 1.0))
    assert not page.start_branch() and "lr=" in page.message and "refused" in page.message
    page.branch_lr.value = None
    losses = other_losses(rng, session, MAX_BRANCHES + 1)
    for loss in losses[:MAX_BRANCHES]:
        page.branch_loss.value = loss
        assert page.start_branch(), page.message  # the run has no thread: made at once
    page.branch_loss.value = losses[-1]
    assert not page.start_branch() and "stop one" in page.message
    page.update()
    made = [b for _, b in branches_of(session).live()]
    assert [b.branch_label for b in made] == [f"branch {i + 1}: loss → {x}" for i, x in enumerate(losses[:-1])]
    colors = {b["renderers"][0].glyph.line_color for b in page.curves.branches}
    assert len(colors) == MAX_BRANCHES and all(drawn(page, slot)[2] for slot in range(MAX_BRANCHES))
    page.step(2)
    session.wait()
    assert page.reset() and "branches stopped" in page.message
    assert all(stopped(b) for b in made) and not branches_of(session).live()
    page.update()
    assert not any(drawn(page, slot)[2] for slot in range(MAX_BRANCHES))
    page.branch_loss.value = losses[0]
    assert page.start_branch()  # the places are free again


def test_a_reset_from_python_also_ends_the_branches(session, rng):
    page = Dashboard(session=session, steering=True, status_interval=0)
    page.__panel__()
    page.branch_loss.value = other_losses(rng, session)[0]
    assert page.start_branch()
    ((_, branch),) = branches_of(session).live()
    page.step(1)
    session.wait(), branch.wait()
    session.reset()  # not through a page: the next update of any page notices
    page.update()
    assert stopped(branch) and not branches_of(session).live() and not drawn(page, 0)[2]


def test_the_run_and_its_branch_take_turns_at_the_kernels(session, rng, monkeypatch):
    page = Dashboard(session=session, steering=True, status_interval=0)
    page.__panel__()
    page.branch_loss.value = other_losses(rng, session)[0]
    page.branch_lr.value = float(rng.uniform(1e-3, 2e-2))
    assert page.start_branch()
    ((_, branch),) = branches_of(session).live()
    engine = session.run.trainer.engine
    assert branch.run.trainer.engine is engine and branch.turns is session.turns
    inside, overlaps, forward = [], [], engine.forward

    def watched(*args, **kwargs):  # slow enough that two batches at once would meet here
        inside.append(threading.current_thread().name)
        overlaps.append(len(inside) > 1)
        time.sleep(0.005)
        try:
            return forward(*args, **kwargs)
        finally:
            inside.pop()

    monkeypatch.setattr(engine, "forward", watched)
    n = int(rng.integers(4, 9))
    page.play()
    assert session.wait(until=lambda p: p["step"] >= n) and branch.wait(until=lambda p: p["step"] >= n)
    page.pause()
    session.wait(), branch.wait()
    assert branch.status == session.status == "paused"
    assert len(overlaps) >= 2 * n and not any(overlaps)


def test_turns_alternate_between_two_threads_and_never_overlap(rng):
    turns, order, inside = Turns(), [], []
    n = int(rng.integers(5, 12))
    start = threading.Barrier(2)

    def work(name):
        start.wait()
        for _ in range(n):
            with turns.turn():
                inside.append(name)
                order.append((name, len(inside)))
                time.sleep(0.02)  # long enough for the other to queue again meanwhile
                inside.pop()

    threads = [threading.Thread(target=work, args=(x,)) for x in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(order) == 2 * n and all(k == 1 for _, k in order)
    names = [x for x, _ in order]
    while len(names) > 1 and names[1] == names[0]:  # one's turns before the other queued
        names = names[1:]
    while len(names) > 1 and names[-2] == names[-1]:  # the other's after one was done
        names = names[:-1]
    assert len(names) >= n and all(x != y for x, y in zip(names, names[1:]))
