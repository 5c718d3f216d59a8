"""The Compare tab in a headless browser: a tiny finished sweep (loss × shift, two seeds, trained
here on the embedded data in a few seconds) is picked from the folders under the server's root, its
runs' curves and the results' error bars reach the page's Bokeh models, choosing two runs leaves
their two curves; a missing folder, an empty one, a half-written run and a folder outside the root
are said in the page."""
import json
import re

import pytest

from pages import open_page

SPEC = ("base: {dataset: randman-shd, n_hidden: 16, trial_ms: 200, batch_size: 16, max_train_samples: 24, epochs: 2}\n"
        "grid: {loss: [sum_exp, max], shift: [false, true]}\nseeds: [1, 2]\n")


@pytest.fixture(autouse=True)
def runs_root(tmp_path, monkeypatch):
    """runs/ for the server (autouse: before served_app starts it): sweeps/tiny, empty/, half/."""
    from eventprop_lab.sweep import plan, run_cell
    from eventprop_lab.sweep_spec import parse_spec

    root = tmp_path / "runs"
    (tmp_path / "tiny.yaml").write_text(SPEC)
    for cell in plan(parse_spec(tmp_path / "tiny.yaml"), root / "sweeps" / "tiny"):
        assert run_cell(cell, threads=1)["epochs"] == 2
    (root / "empty").mkdir()
    half = root / "half" / "loss=max__s9"  # a cell killed before its first epoch ended
    half.mkdir(parents=True)
    (half / "sweep_cell.json").write_text(json.dumps({"config": "loss=max", "seed": 9}))
    (half / "metrics.jsonl").write_text('{"kind": "event", "what": "start"}\n{"kind": "batch", "epo')
    monkeypatch.setenv("EVENTPROP_RUNS_ROOT", str(root))
    return root


def bokeh_models(page):
    """[type, legend label or ""] of every model in the page's Bokeh documents."""
    return page.evaluate("""() => {
        const out = [];
        for (const doc of window.Bokeh.documents) {
            const models = doc._all_models instanceof Map ? [...doc._all_models.values()] : [...doc.all_models];
            for (const m of models) {
                const type = m.type || m.constructor.__name__;
                let label = "";
                if (type === "LegendItem") { label = m.label && m.label.value !== undefined ? m.label.value : m.label; }
                out.push([type, String(label || "")]);
            }
        }
        return out; }""")


def wait_for_legend(page, names, timeout_ms=60_000):
    page.wait_for_function("""(names) => window.Bokeh && names.every(n => window.Bokeh.documents.some(doc => {
        const models = doc._all_models instanceof Map ? [...doc._all_models.values()] : [...doc.all_models];
        return models.some(m => (m.type || m.constructor.__name__) === "LegendItem" && m.label
                                 && (m.label.value === n || m.label === n)); }))""", arg=names, timeout=timeout_ms)


def test_a_sweep_picked_in_the_compare_tab_shows_its_curves_and_error_bars_and_bad_folders_are_said(
        served_app, browser, runs_root):
    errors = []
    runs = sorted(p.name for p in (runs_root / "sweeps" / "tiny").iterdir())
    assert len(runs) == 8 and "loss=max,shift=true__s2" in runs
    page = open_page(browser, served_app + "?tab=compare", errors)
    page.set_viewport_size({"width": 1400, "height": 1000})
    folder = page.get_by_placeholder(re.compile("a folder under the root"))
    folder.wait_for(timeout=60_000)
    # the folders under the root that hold runs are offered; the newest is open (half/ holds one run)
    found = page.locator("select", has=page.locator("option", has_text="sweeps/tiny"))
    found.select_option("sweeps/tiny")
    page.get_by_text("8 runs in sweeps/tiny").wait_for(timeout=30_000)
    wait_for_legend(page, [*runs, "none", "shift"])
    models = bokeh_models(page)
    types = [t for t, _ in models]
    assert types.count("Whisker") == 2, "the results plot's error bars, one per augmentation"
    assert types.count("figure") + types.count("Figure") == 5  # 4 curves plots and the results plot
    assert {label for t, label in models if t == "LegendItem"} == {*runs, "none", "shift"}
    # two runs chosen: their curves only
    chosen = ["loss=max,shift=true__s1", "loss=sum_exp,shift=false__s2"]
    page.locator("select[multiple]").select_option(chosen)
    page.get_by_text("8 runs in sweeps/tiny, 2 chosen").wait_for(timeout=30_000)
    page.wait_for_function("""(others) => !window.Bokeh.documents.some(doc => {
        const models = doc._all_models instanceof Map ? [...doc._all_models.values()] : [...doc.all_models];
        return models.some(m => (m.type || m.constructor.__name__) === "LegendItem" && m.label
                                && others.includes(m.label.value !== undefined ? m.label.value : m.label)); })""",
                           arg=[r for r in runs if r not in chosen], timeout=60_000)
    wait_for_legend(page, chosen)
    # bad folders: said in the page, no traceback
    for typed, said in (("nowhere", "there is no folder nowhere"), ("empty", "no runs in empty"),
                        ("half", "no run in half has finished an epoch yet"), ("../..", "is not under")):
        folder.fill(typed)
        folder.press("Enter")
        page.get_by_text(re.compile("⚠.*" + re.escape(said))).wait_for(timeout=30_000)
    assert "Traceback" not in page.content()
    folder.fill("sweeps/tiny")
    folder.press("Enter")
    page.get_by_text("8 runs in sweeps/tiny").wait_for(timeout=30_000)
    assert errors == []
