"""What the browser tests share: the served app and Debian's Chromium driven by Playwright (the page
helpers are in pages.py)."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
BASE_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--headless")
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


@pytest.fixture
def browser_args():
    """Chromium flags beyond BASE_ARGS; a test module overrides this fixture to add its own."""
    return ()


@pytest.fixture
def browser(browser_args):
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[*BASE_ARGS, *browser_args])
        try:
            yield b
        finally:
            b.close()
