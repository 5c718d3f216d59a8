"""What `panel serve app/` runs: the dashboard on the embedded randman-shd data, small network.

All browser sessions of one server process share one run (built once, in a background thread, so
the page shows "loading data…" instead of freezing); each has its own plots and reader."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `panel serve app/` runs this file as a script, not as app.main
    sys.path.insert(0, str(ROOT))

from app.dashboard import Dashboard, build_session, shared_session  # noqa: E402

Dashboard(loader=shared_session(dataset="randman-shd", n_hidden=96), make_session=build_session).servable(
    title="Eventprop Lab")
