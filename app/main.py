"""What `panel serve app/` runs: the dashboard on the embedded randman-shd data (small network),
the classroom page (accidental gradient ascent) in a second tab, and "Speak a digit" (the network
being trained listens to a recorded word) in a third.

All browser sessions of one server process share one run (built once, in a background thread, so
the page shows "loading data…" instead of freezing); each has its own plots and reader, and all
follow the run's settings. The teacher's page steers: one opened with `?key=` (the server prints
that link; `panel serve app/ --args --teacher-token KEY` or $EVENTPROP_TEACHER_TOKEN fixes the key),
or, when no key was given, the first page that is not a student's (`?mode=classroom`).
`?tab=classroom` and `?tab=speak` open those tabs, `?tab=compare` the runs under runs/ (or
`--args --runs-root DIR`) side by side (app/compare.py); the dashboard's own flags are in its docstring."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `panel serve app/` runs this file as a script, not as app.main
    sys.path.insert(0, str(ROOT))

import panel as pn  # noqa: E402

from app.classroom import Classroom  # noqa: E402
from app.compare import compare_tab  # noqa: E402
from app.dashboard import Dashboard  # noqa: E402
from app.shared import announce_teacher_link, claim_steering, is_teacher, shared_session  # noqa: E402
from app.speak import Speak  # noqa: E402

TABS = ("training", "classroom", "speak", "compare")
args = getattr(pn.state, "session_args", None) or {}
wanted = (args.get("tab") or [b"training"])[-1]
wanted = wanted.decode() if isinstance(wanted, bytes) else str(wanted)
host = pn.state.headers.get("Host") if pn.state.curdoc else None
announce_teacher_link(f"http://{host}{pn.state.app_url or ''}" if host else "http://localhost:5006/app")
mode = (args.get("mode") or [b""])[-1]
student = (mode.decode() if isinstance(mode, bytes) else str(mode)) == "classroom"
steering = is_teacher(args) or (not student and claim_steering())
dashboard = Dashboard(loader=shared_session(dataset="randman-shd", n_hidden=96), steering=steering)
pn.Tabs(("Training", dashboard), ("Classroom", Classroom()), ("Speak", Speak(dashboard=dashboard)),
        ("Compare", compare_tab(args)), active=TABS.index(wanted) if wanted in TABS else 0, dynamic=True,
        sizing_mode="stretch_width").servable(title="Eventprop Lab")
