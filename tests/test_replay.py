"""A session's replay: one self-contained HTML file that carries its curves, markers and probes, and
reads back the same; bad files refused with a message that says why; the dashboard's export and
read-only view."""
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

pn = pytest.importorskip("panel", reason="the replay page is drawn with panel's bokeh")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for `app`

from app.dashboard import Dashboard  # noqa: E402
from app.replay import export_replay, probe_columns, replay_page  # noqa: E402
from eventprop_lab.history import FIELDS  # noqa: E402
from eventprop_lab.replay import (BLOCK_ID, VERSION, ProbeAlbum, ReplayError, album_for,  # noqa: E402
                                  read_replay, to_json)
from eventprop_lab.session import TrainingSession  # noqa: E402
from test_session import configs, toy_data  # noqa: E402


@pytest.fixture
def trained(tmp_path):
    """A session trained 14 batches (probes at steps 1, 5, 9, 13) with a change of loss after 8."""
    s = TrainingSession.from_configs(*configs(tmp_path), data=toy_data())
    album = album_for(s)
    s.step(8)
    assert s.wait()
    album.update()
    s.set(loss="avg_xentropy")
    s.step(6)
    assert s.wait()
    yield s
    s.stop()


def test_an_exported_replay_is_self_contained_and_reads_back_the_same(trained, tmp_path):
    path = tmp_path / "out" / "replay.html"
    text = export_replay(trained, path)
    assert path.read_text() == text and not list(path.parent.glob(".*.tmp"))  # written whole (atomic_write)
    # nothing to fetch, from a network or beside the file: no script or stylesheet tag with a source
    assert not re.search(r"""^\s*<(script|link)\b[^>]*\b(src|href)=""", text, re.I | re.M)
    assert "Bokeh" in text and f'<script type="application/json" id="{BLOCK_ID}">' in text
    replay = read_replay(path)
    assert replay.data["version"] == VERSION and replay.data["step"] == 14
    want = trained.long_history.columns()
    got, again = replay.columns(), replay.long_history().columns()
    for f in FIELDS:
        np.testing.assert_allclose(got[f], want[f], rtol=1e-4, equal_nan=True)
        np.testing.assert_allclose(again[f], got[f], equal_nan=True)
    assert len(got["step"]) == 14
    assert [p["step"] for p in replay.probes] == [1, 5, 9, 13] == [p["step"] for p in album_for(trained).probes()]
    assert "loss → avg_xentropy" in [m["label"] for m in replay.data["markers"]]
    assert [e["epoch"] for e in replay.data["epochs"]] == [1, 2]  # 6 batches an epoch
    kinds = [o.kind for o in replay.observations()]
    assert kinds.count("epoch") == 2 and kinds.count("event") == len(replay.data["markers"])
    p = replay.probes[-1]
    assert len(p["hidden_t"]) == len(p["hidden_id"]) and len(p["trace_t"]) == len(p["diff_correct"]) == 100
    assert sum(p["weights"]["W_out"]["counts"]) == 16 * 4
    assert "4 of the 4 probes" in replay.data["probes_note"] and "at most 50" in replay.data["probes_note"]
    assert "at most 50" in text  # the page says how many probes it keeps


def test_the_file_has_no_script_or_stylesheet_to_fetch_even_with_panels_models_imported():
    import panel.widgets  # noqa: F401  (Tabulator and friends list files of their own)
    text = replay_page(json.loads(to_json({"curves": {}, "epochs": [], "markers": [], "probes": []})))
    assert not re.search(r"<(script|link)\b[^>]*\b(src|href)=", text.split("/* BEGIN")[0], re.I)
    assert "static/extensions" not in text.split("/* BEGIN")[0]


def test_the_first_probe_shown_splits_the_most_active_neurons_out(trained):
    p = json.loads(to_json(album_for(trained).probes()[-1]))  # as a file carries it
    cols = probe_columns(p)
    assert len(cols["hidden"]["t"]) + len(cols["top"]["t"]) == len(p["hidden_t"])
    assert set(cols["top"]["id"]) == set(p["top"]) and len(p["top"]) <= 5
    assert sum(cols["W_in"]["count"]) == 40 * 16 and len(cols["W_in"]["left"]) == len(cols["W_in"]["count"])


def test_an_album_keeps_evenly_spaced_probes_and_the_newest():
    album = ProbeAlbum(capacity=6)
    for i in range(23):
        album.add({"step": i})
    steps = [p["step"] for p in album.probes()]
    assert len(steps) <= 6 and steps[-1] == 22 and steps[0] == 0
    gaps = np.diff(steps[:-1])
    assert len(set(gaps)) == 1 and gaps[0] == album.stride
    assert album.seen == 23


def test_a_reset_starts_the_album_afresh(trained):
    album = album_for(trained)
    album.update()
    assert len(album.probes()) == 4
    trained.reset()
    album.update()
    assert album.probes() == [] and album.seen == 0


def _page(block):
    return f"<!DOCTYPE html><html><body><p>hi</p>{block}</body></html>"


@pytest.mark.parametrize("content, says", [
    (b"\xff\xfe\x00binary", "not an HTML file (not UTF-8"),
    (b"step,loss\n1,0.5\n", "not an HTML file"),
    (_page("").encode(), "without a replay in it (no 'eventprop-replay' JSON block)"),
    (_page(f'<script type="application/json" id="{BLOCK_ID}">{{"format": "eventprop-replay", </script>').encode(),
     "damaged (not valid JSON"),
    (_page(f'<script type="application/json" id="{BLOCK_ID}">{{"format": "other"}}</script>').encode(),
     "is not an Eventprop Lab replay"),
    (_page(f'<script type="application/json" id="{BLOCK_ID}">'
           '{"format": "eventprop-replay", "version": 99}</script>').encode(), "format version 99"),
    (_page(f'<script type="application/json" id="{BLOCK_ID}">'
           f'{{"format": "eventprop-replay", "version": {VERSION}, "curves": {{}}}}</script>').encode(),
     "lacks its epochs, markers, probes"),
])
def test_bad_files_are_refused_with_a_message_saying_why(content, says):
    with pytest.raises(ReplayError, match=re.escape(says)):
        read_replay(content)


def test_the_dashboard_exports_and_shows_a_replay_read_only(trained):
    dash = Dashboard(session=trained, probe_interval=0, status_interval=0)
    dash.__panel__()
    dash.update()
    assert not dash.replay.export.disabled
    data = dash.replay._export().getvalue()
    assert dash.replay.export.filename == "eventprop-replay-step14.html"
    step, n_batches = trained.progress["step"], len(dash.curves.batches.data["step"])
    dash.replay.upload.filename = "class.html"
    dash.replay.upload.value = data
    assert dash.replay.view.visible and dash.replay.shown.name == "class.html"
    assert "Replay: class.html" in dash.replay.view.objects[0].object
    assert "4 probes" in dash.replay.message.object
    dash.update()  # the live views go on as before
    assert trained.progress["step"] == step and len(dash.curves.batches.data["step"]) == n_batches
    dash.replay.upload.filename = "notes.txt"
    dash.replay.upload.value = b"just some notes"
    assert "⚠" in dash.replay.message.object and "not an HTML file" in dash.replay.message.object
    assert dash.replay.view.visible  # a bad file leaves the replay shown
    dash.replay.close()
    assert not dash.replay.view.visible


def test_what_a_file_says_is_shown_as_text_not_as_html():
    from bokeh.models import Div

    from app.replay import replay_layout
    evil = "<img src=x onerror=alert(1)>"
    layout = replay_layout({"created": evil, "settings": {"loss": evil}, "curves": {}, "epochs": [], "markers": [],
                            "probes": []}, note="")
    text = " ".join(d.text for d in layout.select({"type": Div}))
    assert evil not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
