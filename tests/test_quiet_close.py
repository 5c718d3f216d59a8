"""A page that closes in the middle of a push leaves the server's log quiet (app/shared.py); the
served case is tests/browser/test_quiet_close_browser.py."""
import asyncio
import gc
import logging
import sys
from pathlib import Path

import pytest

pytest.importorskip("panel", reason="the dashboard needs panel")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for `app`

from tornado.websocket import WebSocketClosedError  # noqa: E402

from app.shared import page_connected, quiet_closed_pages  # noqa: E402


def test_a_failed_write_to_a_closed_page_is_not_logged_and_other_failures_are(caplog):
    loop = asyncio.new_event_loop()

    async def fail(exc):
        raise exc

    try:
        assert quiet_closed_pages(loop) and not quiet_closed_pages(loop)  # installed once
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            for exc in (WebSocketClosedError(), ValueError("a real failure")):
                task = loop.create_task(fail(exc))
                loop.run_until_complete(asyncio.sleep(0.01))
                del task  # never awaited: its exception is reported when it is collected
                gc.collect()
    finally:
        loop.close()
    assert "a real failure" in caplog.text and "never retrieved" in caplog.text
    assert "WebSocketClosedError" not in caplog.text


def test_outside_a_server_a_page_counts_as_connected():
    assert page_connected()
