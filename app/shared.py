"""The server's runs: one TrainingSession per process and key, shared by every page that asks for
it (a classroom watching one run), built in a background thread so pages render at once, stopped
when the server shuts down; which page steers it (the teacher's key); and the private runs that
visitors start for themselves, few and small, ended with their page."""
import atexit
import os
import secrets
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import panel as pn

from eventprop_lab.config import AugmentConfig, RunConfig
from eventprop_lab.network import NetworkConfig
from eventprop_lab.rewind import run_like
from eventprop_lab.session import TrainingSession
from eventprop_lab.training import TrainingConfig

TOKEN_OPTION, TOKEN_ENV = "--teacher-token", "EVENTPROP_TEACHER_TOKEN"
PRIVATE_RUNS = 4  # visitors' own runs at once, per server process
# a private run's observation buffer: enough for its curves, a few probes (each ~100s of kB)
PRIVATE_CAPACITY, PRIVATE_PROBES = 1000, 5


def build_session(dataset="randman-shd", n_hidden=96, out_dir="runs/dashboard", data=None, **training):
    """A session with a small network that trains visibly on a laptop (data loaded here: slow once)."""
    # lr 1e-3: at 3e-3 this run trained to 0.5 accuracy, then saturated every hidden neuron (125 Hz)
    # between steps 1800 and 2400 and never recovered; at 1e-3 it was still learning at step 3800
    opts = dict(loss="sum_exp", lr=1e-3, batch_size=32)
    opts.update(training)
    return TrainingSession.from_configs(
        RunConfig(dataset=dataset, out_dir=out_dir, probe_every=10), NetworkConfig(n_hidden=n_hidden),
        TrainingConfig(**opts), AugmentConfig(), data=data)


_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventprop-loader")
_cache_lock = threading.Lock()
_shared_keys = set()
_steered = set()  # keys of shared sessions whose steering page has been given out


def shared_session(key="eventprop-lab/default", **kwargs):
    """A Future of one session per server process under `key` (every browser session watches and
    steers the same run: the classroom case). Built in a background thread so pages render at once.
    The server's shutdown stops it after its current batch (stop_shared_sessions, at exit)."""
    with _cache_lock:
        if key not in pn.state.cache:
            pn.state.cache[key] = _pool.submit(build_session, **kwargs)
            if not _shared_keys:
                atexit.register(stop_shared_sessions)
            _shared_keys.add(key)
        return pn.state.cache[key]


def claim_steering(key="eventprop-lab/default"):
    """True for the first page that asks for a shared session's key: the page that starts the
    run steers it (a link's settings apply to the run only from that page). Never when the
    teacher's key was given to the server: then only a page with the key steers."""
    with _cache_lock:
        first = key not in _steered
        _steered.add(key)
    return first and given_token() is None


def given_token(argv=None):
    """The teacher's key given to the server: `--teacher-token KEY` (after panel serve's --args),
    else $EVENTPROP_TEACHER_TOKEN; None if neither."""
    argv = sys.argv if argv is None else argv
    for i, arg in enumerate(argv):
        if arg == TOKEN_OPTION and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(TOKEN_OPTION + "="):
            return arg.split("=", 1)[1]
    return os.environ.get(TOKEN_ENV) or None


_token = None


def teacher_token():
    """The key of the teacher's link (?key=...): the one given, or one made once per process."""
    global _token
    with _cache_lock:
        if _token is None:
            _token = given_token() or secrets.token_urlsafe(9)
        return _token


_announced = False


def announce_teacher_link(url):
    """Print the teacher's link once per process (at server start, or at the first page)."""
    global _announced
    with _cache_lock:
        if _announced:
            return
        _announced = True
    print(f"eventprop-lab: teacher link (steers the run; keep it to yourself): {url}?key={teacher_token()}",
          file=sys.stderr, flush=True)


def is_teacher(args):
    """Whether a page's query arguments carry the teacher's key."""
    key = (args or {}).get("key")
    key = key[-1] if isinstance(key, (list, tuple)) and key else key
    key = key.decode() if isinstance(key, bytes) else key
    return bool(key) and secrets.compare_digest(str(key), teacher_token())


_private = {}  # id -> TrainingSession: the visitors' own runs


def start_private_run(shared, changes):
    """A Future of a visitor's own session: the shared run's settings with `changes`, fresh
    weights, the same data (not loaded again), a small buffer, no metrics file. Raises
    RuntimeError when PRIVATE_RUNS are running already. End it with end_private_run()."""
    with _cache_lock:
        if len(_private) >= PRIVATE_RUNS:
            raise RuntimeError(f"{PRIVATE_RUNS} visitors' own runs are running on this server already; "
                               "try again when one has ended")
        ident = secrets.token_hex(4)
        _private[ident] = None  # the place is taken while it is built
    out = Path(shared.run.out) / "private" / ident

    def build():
        try:
            run = run_like(shared.run, changes, observers=[], out_dir=str(out))
            # in turns with the class's run: two sets of numba threads at once can abort the
            # process (workqueue layer), and on a laptop they would only share the cores anyway
            session = TrainingSession(run, capacity=PRIVATE_CAPACITY, probe_capacity=PRIVATE_PROBES,
                                      metrics_file=False, turns=shared.turns)
        except BaseException:
            with _cache_lock:
                _private.pop(ident, None)
            raise
        session.private_id = ident
        with _cache_lock:
            _private[ident] = session
        return session

    return _pool.submit(build)


def end_private_run(session):
    """Stop a visitor's own run, forget it and remove its folder (its epoch checkpoints)."""
    session.stop()
    with _cache_lock:
        _private.pop(getattr(session, "private_id", None), None)
    shutil.rmtree(session.run.out, ignore_errors=True)


def private_runs():
    with _cache_lock:
        return len(_private)


def stop_shared_sessions():
    """Stop every shared session and its branches: each thread ends after its current batch, so
    checkpoints and the metrics file are left whole. Returns how many sessions were stopped."""
    stopped = 0
    with _cache_lock:
        futures = [pn.state.cache.get(k) for k in _shared_keys]
    for future in futures:
        if future is None or not future.done() or future.exception() is not None:
            continue
        session = future.result()
        for branch in list(session.branches):  # joined: their epoch checkpoints are left whole too
            branch.stop()
        session.stop()
        stopped += 1
        print(f"eventprop-lab: training session stopped at step {session.progress['step']}", file=sys.stderr)
    with _cache_lock:
        private = [s for s in _private.values() if s is not None]
    for session in private:
        end_private_run(session)
    return stopped


# ---- pages that close --------------------------------------------------------------------------
def page_connected():
    """False when the current page is served and its browser has gone (no connection left), so
    that nothing is pushed to it; True outside a server (a notebook, tests)."""
    doc = pn.state.curdoc
    context = getattr(doc, "session_context", None)
    session = getattr(context, "session", None)
    if session is None:
        return context is None  # a served page whose session is destroyed has none
    return not session.destroyed and session.connection_count > 0


def _is_closed_socket(exc):
    from tornado.iostream import StreamClosedError
    from tornado.websocket import WebSocketClosedError
    return isinstance(exc, (WebSocketClosedError, StreamClosedError))


def quiet_closed_pages(loop=None):
    """Let the server's event loop drop, unlogged, the failed writes to a page whose browser went
    away in the middle of a push: Panel queues a push's messages as tasks and cancels the task that
    would await them when the page's session goes, so their WebSocketClosedError was logged as
    "Task exception was never retrieved" with two tracebacks at every such close. Other
    exceptions are logged as before. Idempotent; returns whether it was installed now."""
    import asyncio
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            from tornado.ioloop import IOLoop
            loop = IOLoop.current().asyncio_loop
    previous = loop.get_exception_handler()
    if getattr(previous, "quiet_closed_pages", False):
        return False

    def handler(loop, context):
        if _is_closed_socket(context.get("exception")) and "never retrieved" in context.get("message", ""):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.quiet_closed_pages = True
    loop.set_exception_handler(handler)
    return True
