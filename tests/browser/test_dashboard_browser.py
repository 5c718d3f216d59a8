"""The served dashboard in a headless browser: it loads without console errors, trains on play, stops
on pause, and takes a change of loss while running."""
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
                             "--address", "127.0.0.1", f"--allow-websocket-origin=127.0.0.1:{port}"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/main"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"panel serve did not come up: {(tmp_path / 'serve.log').read_text()}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def test_the_page_trains_on_play_stops_on_pause_and_switches_loss(served_app):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--headless"])
        try:
            page = browser.new_page()
            errors = []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(served_app)
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
            assert errors == []
        finally:
            browser.close()
