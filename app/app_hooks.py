"""Bokeh's server hooks for `panel serve app/` (a directory app): print the teacher's link at
server start, before any page is opened, and keep closed pages' failed writes out of the log
(app/shared.py)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.shared import announce_teacher_link, quiet_closed_pages  # noqa: E402


def _option(name, default):
    for i, arg in enumerate(sys.argv):
        if arg == name and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def on_server_loaded(server_context):
    quiet_closed_pages()
    address = _option("--address", None) or "localhost"
    announce_teacher_link(f"http://{address}:{_option('--port', '5006')}/{Path(__file__).parent.name}")
