"""The server's runs: one TrainingSession per process and key, shared by every page that asks for
it (a classroom watching one run), built in a background thread so pages render at once, stopped
when the server shuts down; and which page steers it."""
import atexit
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import panel as pn

from eventprop_lab.config import AugmentConfig, RunConfig
from eventprop_lab.network import NetworkConfig
from eventprop_lab.session import TrainingSession
from eventprop_lab.training import TrainingConfig


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
    run steers it (a link's settings apply to the run only from that page)."""
    with _cache_lock:
        first = key not in _steered
        _steered.add(key)
        return first


def stop_shared_sessions():
    """Stop every shared session: its thread ends after the current batch, so checkpoints and the
    metrics file are left whole. Returns how many were stopped."""
    stopped = 0
    with _cache_lock:
        futures = [pn.state.cache.get(k) for k in _shared_keys]
    for future in futures:
        if future is None or not future.done() or future.exception() is not None:
            continue
        session = future.result()
        session.stop()
        stopped += 1
        print(f"eventprop-lab: training session stopped at step {session.progress['step']}", file=sys.stderr)
    return stopped
