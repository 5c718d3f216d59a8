"""A replay in Chromium: a few batches trained in the served dashboard, "Export replay" downloads
one HTML file; opened from disk with the network cut off, its plots render and its slider changes
the raster; opened back in the dashboard, it shows read-only as a replay; a bad file is named."""
import re
import time

from pages import column_length, open_page

from eventprop_lab.replay import read_replay


def _length(page, name, column="t"):
    return page.evaluate("""([name, column]) => {
        for (const doc of window.Bokeh.documents) {
            const s = doc.get_model_by_name(name);
            if (s) { const c = s.data.get ? s.data.get(column) : s.data[column]; return c ? c.length : 0; }
        }
        return -1; }""", [name, column])


def _raster(page):
    return _length(page, "replay_hidden_raster") + _length(page, "replay_hidden_top")


def test_a_replay_exports_opens_from_disk_scrubs_and_opens_back_read_only(served_app, browser, tmp_path):
    errors = []
    page = open_page(browser, served_app, errors)
    status = page.get_by_text(re.compile(r"· step \d+"))
    status.wait_for(timeout=120_000)
    page.get_by_role("button", name="play", exact=True).click()
    deadline = time.monotonic() + 180
    while int(re.search(r"· step (\d+)", status.inner_text()).group(1)) < 25:  # probes at steps 1, 11, 21
        assert time.monotonic() < deadline, status.inner_text()
        time.sleep(0.5)
    page.get_by_role("button", name="pause", exact=True).click()
    page.get_by_text(re.compile(r"^paused")).wait_for(timeout=60_000)
    with page.expect_download(timeout=120_000) as got:
        page.get_by_text("Export replay").click()
    path = tmp_path / got.value.suggested_filename
    got.value.save_as(path)
    assert re.fullmatch(r"eventprop-replay-step\d+\.html", path.name)
    replay = read_replay(path)
    probes = replay.probes
    assert len(probes) >= 3 and len(replay.columns()["step"]) >= 25

    # the file on its own: no network at all, and still drawn
    offline = browser.new_context(offline=True)
    requests = []
    file_page = offline.new_page()
    file_page.on("request", lambda r: r.url.startswith("file:") or requests.append(r.url))
    file_page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    file_page.on("pageerror", lambda e: errors.append(str(e)))
    file_page.goto(path.as_uri())
    file_page.wait_for_function("() => window.Bokeh && window.Bokeh.documents.length > 0", timeout=60_000)
    assert _length(file_page, "replay_batches", "step") + _length(file_page, "replay_older_batches", "step") > 0
    last = probes[-1]
    assert _raster(file_page) == len(last["hidden_t"]) > 0
    assert _length(file_page, "replay_input_raster") > 0
    assert file_page.locator("canvas").count() >= 6  # the plots are drawn
    handle = file_page.locator(".noUi-handle").first  # Bokeh's slider
    handle.focus()
    handle.press("Home")  # to the first probe
    file_page.wait_for_function("""() => window.Bokeh.documents.some(d => {
        const s = d.get_model_by_name("replay_slider"); return s && s.value === 0; })""", timeout=30_000)
    first = probes[0]
    file_page.wait_for_function(f"""() => {{
        let n = 0;
        for (const d of window.Bokeh.documents) for (const name of ["replay_hidden_raster", "replay_hidden_top"]) {{
            const s = d.get_model_by_name(name); if (s) n += (s.data.get ? s.data.get("t") : s.data.t).length; }}
        return n === {len(first["hidden_t"])}; }}""", timeout=30_000)
    assert file_page.get_by_text(re.compile(rf"probe 1 of {len(probes)}: step {first['step']}")).count() >= 1
    assert requests == [], requests
    assert errors == [], errors
    offline.close()

    # back into the dashboard: shown read-only, the run untouched
    stopped_at = status.inner_text()
    page.locator(".replay-upload input[type=file]").set_input_files(path)
    page.get_by_text(f"Replay: {path.name}").wait_for(timeout=60_000)
    page.wait_for_function("""() => window.Bokeh.documents.some(d => {
        const s = d.get_model_by_name("replay_hidden_raster");
        return s && (s.data.get ? s.data.get("t") : s.data.t).length >= 0; })""", timeout=60_000)
    assert _raster(page) == len(last["hidden_t"])
    assert column_length(page, "hidden_raster", "t") >= 0  # the live views are still there, apart
    assert re.search(r"step (\d+)", status.inner_text()).group(1) == re.search(r"step (\d+)", stopped_at).group(1)
    bad = tmp_path / "notes.html"
    bad.write_text("<!DOCTYPE html><html><body>my notes</body></html>")
    page.locator(".replay-upload input[type=file]").set_input_files(bad)
    page.get_by_text(re.compile(r"notes\.html not opened")).wait_for(timeout=60_000)
    assert page.get_by_text(re.compile(r"without a replay in it")).count() >= 1
    assert errors == []
