"""The served dashboard in a headless browser: it loads without console errors, trains on play (the
curve grows and the raster renders in the page's own Bokeh models), stops on pause, takes a change of
loss while running (the marker reaches the page), opens a shared link in classroom mode, and stops
its training session when the server is shut down."""
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need `pip install playwright`")
pytest.importorskip("panel", reason="the dashboard needs panel")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install -y chromium)",
                allow_module_level=True)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_app(tmp_path):
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", "app/main.py", "--port", str(port),
                             "--address", "127.0.0.1", f"--allow-websocket-origin=127.0.0.1:{port}", "--liveness"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/main"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness", timeout=5)  # builds no page
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"panel serve did not come up: {(tmp_path / 'serve.log').read_text()}")
            time.sleep(0.5)
    yield url
    proc.terminate()  # SIGTERM: the server shuts down and stops the training session after its batch
    proc.wait(timeout=30)
    log.close()
    assert "training session stopped at step" in (tmp_path / "serve.log").read_text()


def _column_length(page, source, column):
    """Length of a column of a named Bokeh data source in the page (what the browser has)."""
    return page.evaluate("""([name, column]) => {
        for (const doc of window.Bokeh.documents) {
            const src = doc.get_model_by_name(name);
            if (src) { const c = src.data.get ? src.data.get(column) : src.data[column]; return c ? c.length : 0; }
        }
        return -1; }""", [source, column])


def _column(page, source, column):
    return page.evaluate("""([name, column]) => {
        for (const doc of window.Bokeh.documents) {
            const src = doc.get_model_by_name(name);
            if (src) { const c = src.data.get ? src.data.get(column) : src.data[column]; return Array.from(c || []); }
        }
        return null; }""", [source, column])


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--headless"])
        try:
            yield b
        finally:
            b.close()


def open_page(browser, url, errors):
    """A page at url whose console errors and uncaught exceptions go to `errors`."""
    page = browser.new_page()
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    return page


def test_the_page_trains_on_play_stops_on_pause_and_switches_loss(served_app, browser):
    errors = []
    page = open_page(browser, served_app, errors)
    status = page.get_by_text(re.compile(r"· step \d+"))  # the status line, once the run is built
    status.wait_for(timeout=90_000)

    def step():
        return int(re.search(r"· step (\d+)", status.inner_text()).group(1))

    first = step()
    page.get_by_role("button", name="play").click()
    deadline = time.monotonic() + 90
    while step() < first + 3:
        assert time.monotonic() < deadline, f"no training after play: {status.inner_text()}"
        time.sleep(0.5)
    # the learning curve grows and the raster renders in the browser itself
    page.wait_for_function("""() => window.Bokeh.documents.some(d => {
        const s = d.get_model_by_name("hidden_raster");
        const t = s && (s.data.get ? s.data.get("t") : s.data.t);
        return t && t.length > 0; })""", timeout=60_000)
    assert _column_length(page, "input_raster", "t") > 0
    grown = _column_length(page, "batches", "step")
    assert grown >= 3
    page.get_by_role("button", name="pause").click()
    page.get_by_text(re.compile(r"^paused")).wait_for(timeout=30_000)
    paused_at = step()
    time.sleep(2.0)
    assert step() == paused_at, "the step counter moved while paused"
    # a hot change of loss while running: the session reports the new loss
    page.locator("select").first.select_option("sum")
    page.get_by_role("button", name="play").click()
    page.get_by_text(re.compile(r"loss fn sum(?!_)")).wait_for(timeout=60_000)
    while step() < paused_at + 2:
        assert time.monotonic() < deadline + 60, f"no training after the switch: {status.inner_text()}"
        time.sleep(0.5)
    page.get_by_role("button", name="pause").click()
    page.wait_for_function("""() => window.Bokeh.documents.some(d => {
        const s = d.get_model_by_name("markers");
        const l = s && (s.data.get ? s.data.get("label") : s.data.label);
        return l && Array.from(l).includes("loss → sum"); })""", timeout=30_000)
    assert _column_length(page, "batches", "step") > grown
    # the weights tab: its plots reach the page only when it is opened (the browser draws only the open tab)
    assert _column_length(page, "W_out_histogram", "count") == -1
    page.get_by_text("Weights", exact=True).click()
    page.wait_for_function("""() => window.Bokeh.documents.some(d => {
        const s = d.get_model_by_name("W_out_histogram");
        const c = s && (s.data.get ? s.data.get("count") : s.data.count);
        return c && c.length > 0; })""", timeout=30_000)
    assert errors == []
    # a link with settings in classroom mode: the set-up controls are hidden, the loss is as linked
    page2 = open_page(browser, served_app + "?mode=classroom&loss=sum_exp&lr=0.002", errors)
    page2.get_by_text(re.compile(r"· step \d+")).wait_for(timeout=60_000)
    page2.get_by_text(re.compile(r"loss fn sum_exp")).wait_for(timeout=30_000)  # paused: applied at once
    assert page2.get_by_text("N hidden").count() == 0 and page2.get_by_role("button", name="reset").count() == 0
    assert page2.locator("select").first.input_value() == "sum_exp"
    assert errors == []


def test_the_classroom_tab_steps_down_the_gradient_and_trains_on_one_class(served_app, browser):
    errors = []
    page = open_page(browser, served_app + "?tab=classroom", errors)
    info = page.get_by_text(re.compile(r"^step 0: w_B"))
    info.wait_for(timeout=90_000)
    for _ in range(3):
        page.get_by_role("button", name="gradient step").click()
    page.get_by_text(re.compile(r"^step 3: w_B")).wait_for(timeout=30_000)
    page.get_by_role("button", name="train").click()
    page.get_by_text(re.compile(r"hidden rate .* Hz")).wait_for(timeout=120_000)
    assert errors == []
