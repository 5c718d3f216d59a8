"""The live dashboard under load: training speed with 0, 1 and k browser pages attached, the update
rate the browser sees, and the server's memory over a long run (issue 4, "Measured in benchmarks/").

One process holds what `panel serve app/main.py` holds: a TrainingSession on the embedded randman-shd
data (the dashboard's own build_session) and a Panel server in a thread, one Dashboard per browser
session. Headless Chromium pages (Playwright, Debian's /usr/bin/chromium) attach and detach.

    .venv/bin/python benchmarks/bench_dashboard.py                         # ~16 min
    .venv/bin/python benchmarks/bench_dashboard.py --minutes 1 --window 8  # ~4 min, for development

Measured from outside the app (nothing in app/ or eventprop_lab/ is changed for it):
- samples/s: an observer on the session's run counts the samples of every batch, in windows in the
  order 0, 1, k, kh, kh, k, 1, 0 pages so that drift falls on every condition alike. Each window
  starts from the same weights, Adam state and schedule (a snapshot taken after the warm-up): the
  cost of a batch follows the network's firing rate, which changes as it learns (the default run
  even saturates after ~2300 steps), so without this the windows would not be comparable.
  kh = k headless Bokeh clients instead of pages (a child process that pulls the document, reports it
  ready, and discards every message unread): the server does all its work for k sessions, but nothing
  renders, as in a classroom where the browsers run on the students' machines. They send nothing
  back, where a page sends its plots' auto-ranged x/y ranges (the "frames out" column).
- cores: CPU seconds per second of wall time of the parts (training thread + numba's workers, the
  server's event-loop thread, Chromium, the headless clients, other processes), from /proc.
- wake lag: how late a thread of this script wakes from 10 ms sleeps: it waits for a CPU and for the
  GIL, as the server's event loop does.
- in each page, a listener on the Bokeh document counts the changes of data sources that came from the
  server. An update = a stream of new points into the learning curve's source (named "batches"; each
  server update with new batches streams to it once). Also counted: bursts of data
  changes (changes less than 40 ms apart are one burst) and websocket frames and bytes both ways.
- the server's calls of Dashboard.update (wrapped per instance): how many, how long.
- memory: VmRSS of this process (training + server) with one page attached, sampled every 30 s.
The last line is `RESULT slowdown_1=... slowdown_5=... updates_per_s=... mem_growth_mb=... slowdown_5h=...`:
slowdowns as fractions (0.05 = 5 % fewer samples/s than with no page), updates/s in one attached page.
"""
import argparse
import collections
import copy
import cProfile
import logging
import os
import pstats
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# the page loads Panel's and Bokeh's files from this server, as under `panel serve`, not from a CDN
os.environ.setdefault("BOKEH_RESOURCES", "server")
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--headless"]
TICK = os.sysconf("SC_CLK_TCK")
GAP_MS = 40  # data changes closer than this are one burst in the browser
BUSY_SHARE = 0.15  # a window where other processes took more of the CPUs than this is flagged
# What BokehJS sends once a page has rendered; Panel starts a page's periodic updates on it (onload).
DOCUMENT_READY = {"kind": "MessageSent", "msg_type": "bokeh_event",
                  "msg_data": {"type": "event", "name": "document_ready", "values": {}}}

# Installed in each page once Bokeh's document exists: counts the changes the server made to data
# sources (ev.sync is false for what came from the server), grouped into updates.
COUNTER_JS = """(gap) => {
  if (window.__bench) return true;
  const docs = (window.Bokeh && window.Bokeh.documents) || [];
  if (!docs.length) return false;
  const b = window.__bench = {bursts: 0, streams: 0, replaced: 0, other: 0, last: -1e9, by_model: new Map(),
                              by_columns: {}};
  const tally = (data) => {  // values received, by the source's columns (what a source shows)
    const cols = data instanceof Map ? [...data.entries()] : Object.entries(data || {});
    const key = cols.map(([k]) => k).sort().join(",");
    const t = b.by_columns[key] || (b.by_columns[key] = {changes: 0, values: 0});
    t.changes++;
    for (const [, v] of cols) t.values += (v && v.length) || 0;
  };
  const onChange = (ev) => {
    if (ev.sync !== false) return;
    const data = ev.kind === "ColumnsStreamed" || ev.kind === "ColumnDataChanged" || ev.kind === "ColumnsPatched"
                 || (ev.kind === "ModelChanged" && ev.attr === "data");
    if (!data) { b.other++; return; }
    const now = performance.now();
    if (now - b.last > gap) b.bursts++;
    b.last = now;
    tally(ev.kind === "ModelChanged" ? ev.value : ev.data);
    if (ev.kind !== "ColumnsStreamed") { b.replaced++; return; }
    b.streams++;
    const m = b.by_model.get(ev.model.id) || {n: 0, times: [], name: ev.model.name};
    m.n++;
    m.times.push(now);
    if (m.times.length > 4000) m.times.splice(0, 2000);
    b.by_model.set(ev.model.id, m);
  };
  for (const d of docs) d.on_change(onChange, false);
  return true;
}"""
# Installed before any script of the page: counts websocket traffic both ways.
WS_JS = """(() => {
  const ws = window.__ws = {recv: 0, recv_bytes: 0, sent: 0, sent_bytes: 0};
  const size = (d) => typeof d === "string" ? d.length : (d.byteLength ?? d.size ?? 0);
  const Base = window.WebSocket;
  window.WebSocket = class extends Base {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => { ws.recv++; ws.recv_bytes += size(e.data); });
    }
    send(d) { ws.sent++; ws.sent_bytes += size(d); return super.send(d); }
  };
})();"""
# The learning curve's source ("batches"; else the one streamed to most often) gets one stream per
# server update that brings new batches.
READ_JS = """(t0) => {
  const b = window.__bench || {bursts: 0, streams: 0, replaced: 0, other: 0, by_model: new Map()};
  let curve = {n: 0, times: []};
  for (const m of b.by_model.values()) {
    if (m.name === "batches" || (curve.name !== "batches" && m.n > curve.n)) curve = m;
  }
  return {updates: curve.n, times: curve.times.filter((t) => t >= t0), bursts: b.bursts, streams: b.streams,
          replaced: b.replaced, by_columns: b.by_columns || {}, now: performance.now(), ws: window.__ws || {}};
}"""


# ---------------------------------------------------------------------------- /proc readings
def _stat_fields(path):
    with open(path) as f:
        text = f.read()
    return text[text.rindex(")") + 2:].split()  # the name may hold spaces and parentheses


def cpu_s(path, children=False):
    """utime + stime (+ those of reaped children) of a /proc/<pid>[/task/<tid>]/stat, in seconds."""
    try:
        f = _stat_fields(path)
    except (OSError, ValueError):
        return 0.0
    ticks = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if children else 0)
    return ticks / TICK


def busy_cpu_s():
    """CPU seconds all processes of the machine spent busy (not idle, not waiting for I/O)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICK


def descendants(root):
    """{pid: name} of every process below `root`."""
    parent, name = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    text = f.read()
            except OSError:
                continue
            pid = int(entry)
            name[pid] = text[text.index("(") + 1:text.rindex(")")]
            parent[pid] = int(text[text.rindex(")") + 2:].split()[1])
    children = collections.defaultdict(list)
    for pid, par in parent.items():
        children[par].append(pid)
    out, frontier = {}, [root]
    while frontier:
        for child in children[frontier.pop()]:
            out[child] = name[child]
            frontier.append(child)
    return out


def rss_mb(pid="self"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def is_chromium(name):
    return name.startswith(("chrom", "headless"))


class CpuMeter:
    """CPU time of the parts, read at the start and the end of a window."""

    def __init__(self, server_tid):
        self.server_tid = server_tid

    def read(self):
        python_threads = {t.native_id: t.name for t in threading.enumerate()}
        parts = dict.fromkeys(("training", "server loop", "driver", "chromium", "node", "clients"), 0.0)
        for tid in os.listdir("/proc/self/task"):
            tid_i, s = int(tid), cpu_s(f"/proc/self/task/{tid}/stat")
            if tid_i == self.server_tid:
                parts["server loop"] += s
            elif tid_i not in python_threads or python_threads[tid_i] == "eventprop-session":
                parts["training"] += s  # the session's thread and numba's worker threads (not Python's)
            else:
                parts["driver"] += s  # this script, Playwright's client, the GIL probe
        for pid, name in descendants(os.getpid()).items():
            part = "chromium" if is_chromium(name) else "node" if name.startswith("node") else "clients"
            parts[part] += cpu_s(f"/proc/{pid}/stat", children=True)
        return time.perf_counter(), busy_cpu_s(), parts

    @staticmethod
    def cores(a, b):
        """Cores used by each part between two readings, and by other processes ("others")."""
        (w0, busy0, p0), (w1, busy1, p1) = a, b
        wall = w1 - w0
        out = {k: (p1[k] - p0[k]) / wall for k in p0}
        out["others"] = max(0.0, (busy1 - busy0) / wall - sum(out.values()))
        return out


class GilProbe(threading.Thread):
    """Sleeps 10 ms again and again and records how late it wakes (it needs the GIL to wake)."""

    def __init__(self):
        super().__init__(name="bench-gil-probe", daemon=True)
        self.lags, self.running = None, True

    def run(self):
        while self.running:
            t0 = time.perf_counter()
            time.sleep(0.01)
            lags = self.lags
            if lags is not None:
                lags.append(time.perf_counter() - t0 - 0.01)


# ---------------------------------------------------------------------------- the session side
class SampleCounter:
    """An observer of the run: samples trained so far and the summed hidden rate of the batches."""

    def __init__(self, n_train, batch_size):
        self.n_train, self.batch_size = n_train, batch_size
        self.samples = self.batches = 0
        self.rate_hz_sum = 0.0

    def __call__(self, obs):
        if obs.kind != "batch":
            return
        last = obs.batch == obs.n_batches
        self.samples += self.n_train - (obs.n_batches - 1) * self.batch_size if last else self.batch_size
        self.batches += 1
        self.rate_hz_sum += float(obs.rate_hz)

    def read(self):
        return time.perf_counter(), self.samples, self.batches, self.rate_hz_sum


class Snapshot:
    """Weights, Adam state and schedule of a run; restored between windows (the session's thread is
    stopped meanwhile: its contract gives us the run while no thread is alive)."""

    def __init__(self, session):
        session.stop()
        t = session.run.trainer
        self.params = t.params  # never mutated in place: the trainer replaces it after every batch
        self.adam, self.schedule = copy.deepcopy(t.optimiser.state_dict()), copy.deepcopy(t.schedule)
        session.start()

    def restore(self, session):
        session.stop()
        t = session.run.trainer
        t.params = self.params
        t.optimiser.load_state_dict(copy.deepcopy(self.adam))
        t.schedule = copy.deepcopy(self.schedule)
        session.start()


class UpdateLog:
    """Counts and times the server's calls of Dashboard.update, per browser session."""

    def __init__(self):
        self.last_call = {}  # dashboard number -> perf_counter at the end of its last update
        self.calls = 0
        self.durations = None  # a list while a window collects them
        self.profile = None  # a cProfile.Profile while one is wanted
        self._n = 0

    def wrap(self, dashboard):
        self._n += 1
        number, update = self._n, dashboard.update

        def timed_update():
            profile = self.profile
            t0 = time.perf_counter()
            try:
                if profile is not None:
                    profile.enable()
                return update()
            finally:
                if profile is not None:
                    profile.disable()
                t1 = time.perf_counter()
                self.calls += 1
                self.last_call[number] = t1
                if self.durations is not None:
                    self.durations.append(t1 - t0)

        dashboard.update = timed_update  # Dashboard looks self.update up when it adds its callback
        return dashboard

    def active(self, within_s=2.0):
        now = time.perf_counter()
        return sum(now - t < within_s for t in self.last_call.values())


class LogTally(logging.Handler):
    """Counts the server's log records (by logger and first line) instead of printing them."""

    LOGGERS = ("", "bokeh", "panel", "tornado", "asyncio")

    def __init__(self):
        super().__init__(logging.WARNING)
        self.counts = collections.Counter()
        self._saved = {}

    def emit(self, record):
        text = record.getMessage().splitlines()[0] if record.getMessage() else ""
        if record.exc_info and record.exc_info[0] is not None:
            text += f" [{record.exc_info[0].__name__}]"
        self.counts[(record.levelname, record.name, text[:120])] += 1

    def install(self):
        for name in self.LOGGERS:
            log = logging.getLogger(name)
            self._saved[name] = (log.handlers[:], log.propagate, log.level)
            log.handlers, log.propagate = [self], name == ""  # each record reaches the tally once
            if log.level == logging.NOTSET or log.level > logging.WARNING:
                log.setLevel(logging.WARNING)

    def uninstall(self):
        for name, (handlers, propagate, level) in self._saved.items():
            log = logging.getLogger(name)
            log.handlers, log.propagate = handlers, propagate
            log.setLevel(level)


# ---------------------------------------------------------------------------- the browser side
class Browser:
    """One headless Chromium with pages on the dashboard."""

    def __init__(self, playwright, url):
        self.url = url
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.pages, self.errors = [], []

    def open(self, timeout_s=120):
        page = self.browser.new_page()
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url} ({r.failure})"))
        page.add_init_script(WS_JS)
        page.goto(self.url, timeout=timeout_s * 1000)
        page.get_by_text(re.compile(r"· step \d+")).first.wait_for(timeout=timeout_s * 1000)
        deadline = time.monotonic() + timeout_s
        while not page.evaluate(COUNTER_JS, GAP_MS):
            if time.monotonic() > deadline:
                raise RuntimeError("Bokeh's document never appeared in the page")
            time.sleep(0.2)
        self.pages.append(page)

    def pages_to(self, n):
        while len(self.pages) > n:
            self.pages.pop().close()
        while len(self.pages) < n:
            self.open()

    def readings(self, t0_by_page=None):
        """What each page counted (update times since its own t0, if given)."""
        t0s = t0_by_page or [0.0] * len(self.pages)
        return [page.evaluate(READ_JS, t0) for page, t0 in zip(self.pages, t0s)]

    def _chromium_pids(self):
        return [pid for pid, name in descendants(os.getpid()).items() if is_chromium(name)]

    def chromium_rss_mb(self):
        return sum(rss_mb(pid) for pid in self._chromium_pids())

    def close(self):
        try:
            while self.pages:
                self.pages.pop().close()
        finally:
            self.browser.close()


class HeadlessClients:
    """k Bokeh clients in a child process (see run_clients); its cumulative counts are read from its
    output, which a thread of ours follows."""

    def __init__(self, url, n, timeout_s=60):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--clients", url, str(n)],
                                     stdout=subprocess.PIPE, text=True, cwd=str(REPO))
        self.ready, self.counts = 0, (time.perf_counter(), 0, 0)
        threading.Thread(target=self._follow, name="bench-clients-reader", daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while self.ready < n:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError(f"only {self.ready} of {n} headless clients connected")
            time.sleep(0.2)

    def _follow(self):
        for line in self.proc.stdout:
            ready, frames, nbytes = (int(x) for x in line.split())
            self.ready, self.counts = ready, (time.perf_counter(), frames, nbytes)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)


def run_clients(url, n):
    """The child: n clients that fetch the page, pull its document over the websocket, send
    document_ready, then read and drop every message; prints `ready frames bytes` twice a second."""
    import asyncio
    import json
    import uuid

    from tornado.httpclient import AsyncHTTPClient, HTTPRequest
    from tornado.websocket import websocket_connect

    stats = {"ready": 0, "frames": 0, "bytes": 0}
    sockets = []
    origin = re.match(r"https?://[^/]+", url).group(0)

    async def send(ws, msgtype, content):  # a Bokeh message: header, metadata, content
        for part in ({"msgid": uuid.uuid4().hex, "msgtype": msgtype}, {}, content):
            await ws.write_message(json.dumps(part))

    async def client():
        page = await AsyncHTTPClient().fetch(url)
        token = re.search(r'"token"\s*:\s*"([^"]+)"', page.body.decode()).group(1)
        ws = await websocket_connect(HTTPRequest("ws" + url[len("http"):] + "/ws", headers={"Origin": origin}),
                                     subprotocols=["bokeh", token], max_message_size=2**30)
        sockets.append(ws)
        pulled = ready = False
        while (msg := await ws.read_message()) is not None:
            stats["frames"] += 1
            stats["bytes"] += len(msg)
            if not pulled and isinstance(msg, str) and '"ACK"' in msg:  # the server is ready to listen
                pulled = True
                await send(ws, "PULL-DOC-REQ", {})
            elif not ready and isinstance(msg, str) and '"PULL-DOC-REPLY"' in msg:
                ready = True
                await send(ws, "PATCH-DOC", {"events": [DOCUMENT_READY]})
                stats["ready"] += 1

    async def main():
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        tasks = [asyncio.ensure_future(client()) for _ in range(n)]
        while not stop.is_set() and not any(t.done() and t.exception() for t in tasks):
            print(stats["ready"], stats["frames"], stats["bytes"], flush=True)
            await asyncio.sleep(0.5)
        for ws in sockets:  # a clean close: the server lets the sessions go at once
            ws.close()
        await asyncio.sleep(0.5)
        for t in tasks:
            if t.done() and t.exception():
                raise t.exception()

    asyncio.run(main())


# ---------------------------------------------------------------------------- measurement
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _mean(xs):
    xs = [x for x in xs if x == x]
    return sum(xs) / len(xs) if xs else float("nan")


class Bench:
    """The session, the server and the browser, and the measurements made with them."""

    def __init__(self, args, session, counter, cpu, log, gil, playwright, url, say):
        self.args, self.session, self.counter, self.cpu, self.log, self.gil = args, session, counter, cpu, log, gil
        self.playwright, self.url, self.say = playwright, url, say
        self.browser = Browser(playwright, url)
        self.clients = None
        self.errors = []

    def clients_to(self, n):
        if self.clients is not None:
            self.clients.close()
            self.clients = None
        if n:
            self.clients = HeadlessClients(self.url, n)

    def close(self):
        self.clients_to(0)
        if self.browser is not None:
            self.errors += self.browser.errors
            self.browser.close()
            self.browser = None

    def settle_sessions(self, n, timeout_s=45):
        """Wait until exactly n server sessions are updating (closed ones are discarded after ~2 s)."""
        deadline = time.monotonic() + timeout_s
        while self.log.active() != n and time.monotonic() < deadline:
            time.sleep(0.5)
        return self.log.active()

    def wait_quiet(self):
        """Wait (up to --wait-quiet s) while other processes keep more than BUSY_SHARE of the CPUs."""
        t0 = time.monotonic()
        while True:
            c0 = self.cpu.read()
            time.sleep(2.0)
            share = CpuMeter.cores(c0, self.cpu.read())["others"] / os.cpu_count()
            if share <= BUSY_SHARE or time.monotonic() - t0 >= self.args.wait_quiet:
                return time.monotonic() - t0, share

    def window(self):
        """One window of training with the pages as they are."""
        browser, log, seconds = self.browser, self.log, self.args.window
        before = browser.readings()
        h0 = self.clients.counts if self.clients else None
        log.durations, calls0 = [], log.calls
        self.gil.lags = []
        c0, s0 = self.cpu.read(), self.counter.read()
        time.sleep(seconds)
        c1, s1 = self.cpu.read(), self.counter.read()
        durations, log.durations = log.durations, None
        lags, self.gil.lags = self.gil.lags, None
        after = browser.readings([r["now"] for r in before])
        h1 = self.clients.counts if self.clients else None
        wall = s1[0] - s0[0]
        row = {"wall": wall, "samples_per_s": (s1[1] - s0[1]) / wall, "batches": s1[2] - s0[2],
               "rate_hz": (s1[3] - s0[3]) / max(s1[2] - s0[2], 1), "cores": CpuMeter.cores(c0, c1),
               "sessions": log.active(), "calls_per_s": (log.calls - calls0) / wall,
               "update_ms": [1000 * d for d in durations], "gil_ms": [1000 * x for x in lags], "pages": []}
        for b, a in zip(before, after):
            secs = (a["now"] - b["now"]) / 1000
            gaps = [y - x for x, y in zip(a["times"], a["times"][1:])]
            ws0, ws1 = b["ws"], a["ws"]
            row["pages"].append({
                "updates_per_s": (a["updates"] - b["updates"]) / secs,
                "bursts_per_s": (a["bursts"] - b["bursts"]) / secs,
                "gap_p50_ms": _pct(gaps, 0.5), "gap_max_ms": max(gaps, default=float("nan")),
                "recv_per_s": (ws1.get("recv", 0) - ws0.get("recv", 0)) / secs,
                "recv_kb_s": (ws1.get("recv_bytes", 0) - ws0.get("recv_bytes", 0)) / secs / 1024,
                "sent_per_s": (ws1.get("sent", 0) - ws0.get("sent", 0)) / secs,
                "by_columns": {key: ((t["changes"] - b["by_columns"].get(key, {}).get("changes", 0)) / secs,
                                     (t["values"] - b["by_columns"].get(key, {}).get("values", 0)) / secs)
                               for key, t in a["by_columns"].items()}})
        if h0 is not None:  # per client, like the pages' own counts
            secs, n = h1[0] - h0[0], self.clients.ready
            row["clients"] = {"recv_per_s": (h1[1] - h0[1]) / secs / n,
                              "recv_kb_s": (h1[2] - h0[2]) / secs / n / 1024}
        return row

    def speed(self, snapshot):
        k = self.args.pages
        order = [(0, False), (1, False), (k, False), (k, True), (k, True), (k, False), (1, False), (0, False)]
        rows = []
        for i, (n, headless) in enumerate(order):
            cond = f"{n}h" if headless else str(n)
            if not (headless and self.clients is not None):
                self.clients_to(n if headless else 0)
                self.browser.pages_to(0 if headless else n)
            sessions = self.settle_sessions(n)
            time.sleep(self.args.settle)  # pages finish their first render
            waited, share = self.wait_quiet()
            what = "headless client(s)" if headless else "page(s)"
            self.say(f"  window {i + 1}/{len(order)}: {n} {what}, {sessions} server session(s) updating; other "
                     f"processes {100 * share:.0f}% of the CPUs" + (f", waited {waited:.0f} s" if waited > 3 else ""))
            snapshot.restore(self.session)
            time.sleep(0.5)  # the thread restarts; its first batch assembles a new epoch's order
            row = self.window()
            row["cond"] = cond
            rows.append(row)
        return rows

    def memory(self):
        args, browser, log = self.args, self.browser, self.log
        self.clients_to(0)
        browser.pages_to(1)
        self.settle_sessions(1)
        # a profile of the server's update with one page attached: where its time goes
        profile = cProfile.Profile()
        log.profile = profile
        time.sleep(min(10.0, args.minutes * 6))
        log.profile = None
        total_s, interval = args.minutes * 60, min(30.0, args.minutes * 60 / 6)
        self.say(f"  memory: {args.minutes:g} min with 1 page, a sample every {interval:.0f} s ...")
        samples, t_start = [], time.perf_counter()
        last, last_c = browser.readings()[0], self.counter.read()
        while True:
            t = time.perf_counter() - t_start
            now, c = browser.readings()[0], self.counter.read()
            secs = (now["now"] - last["now"]) / 1000
            samples.append({
                "t": t, "rss": rss_mb(), "chromium_rss": browser.chromium_rss_mb(), "step": c[2],
                "rate_hz": (c[3] - last_c[3]) / (c[2] - last_c[2]) if c[2] > last_c[2] else float("nan"),
                "updates_per_s": (now["updates"] - last["updates"]) / secs if secs > 0 else float("nan"),
                "sessions": log.active()})
            last, last_c = now, c
            if t >= total_s - 1e-6:
                return samples, profile
            time.sleep(min(interval, total_s - t))


# ---------------------------------------------------------------------------- report
def print_speed(args, rows):
    k = args.pages
    print()
    print(f"Training speed: windows of {args.window:g} s in this order ({k}h = {k} headless Bokeh clients "
          "instead of pages); each window starts from the same weights")
    hdr = (f"{'#':>2s} {'pages':>5s} {'sess':>4s} | {'samples/s':>9s} {'hid Hz':>6s} | {'cores: train':>12s} "
           f"{'server':>6s} {'chrom':>5s} {'hdls':>5s} {'node':>5s} {'drv':>4s} {'others':>6s} | "
           f"{'wake lag ms p50/p95':>19s} | {'upd/s/sess':>10s} {'update ms p50/p95':>17s}")
    print(hdr)
    print("-" * len(hdr))
    for i, r in enumerate(rows):
        c, ms, gil = r["cores"], r["update_ms"], r["gil_ms"]
        per_sess = r["calls_per_s"] / r["sessions"] if r["sessions"] else 0.0
        busy = " busy" if c["others"] / os.cpu_count() > BUSY_SHARE else ""
        print(f"{i + 1:2d} {r['cond']:>5s} {r['sessions']:4d} | {r['samples_per_s']:9.0f} {r['rate_hz']:6.1f} | "
              f"{c['training']:12.2f} {c['server loop']:6.2f} {c['chromium']:5.2f} {c['clients']:5.2f} "
              f"{c['node']:5.2f} {c['driver']:4.2f} {c['others']:6.2f} | "
              f"{_pct(gil, 0.5):8.1f}/{_pct(gil, 0.95):<10.1f} | {per_sess:10.2f} "
              f"{_pct(ms, 0.5):8.1f}/{_pct(ms, 0.95):<8.1f}{busy}")

    by = {}
    for r in rows:
        by.setdefault(r["cond"], []).append(r)
    rate = {cond: _mean([r["samples_per_s"] for r in rs]) for cond, rs in by.items()}
    base = rate["0"]
    print()
    print("Per condition (mean of its two windows); slowdown = 1 - samples/s / samples/s with no page, in %:")
    hdr = (f"{'pages':>5s} | {'samples/s':>9s} | {'slowdown':>8s} | {'server loop':>11s} | {'clients':>8s} | "
           f"{'update ms p50/p95':>17s} | {'browser upd/s: mean (min-max)':>29s} | "
           f"{'ws frames/s in':>14s} {'kB/s in':>7s} {'frames/s out':>12s}")
    print(hdr)
    print("-" * len(hdr))
    for cond in ["0", "1", str(k), f"{k}h"]:
        rs = by[cond]
        pages = [p for r in rs for p in r["pages"]] or [dict(r["clients"], sent_per_s=0.0) for r in rs
                                                         if "clients" in r]
        ups = [p["updates_per_s"] for p in pages if "updates_per_s" in p]
        upd = f"{_mean(ups):.2f} ({min(ups):.2f}-{max(ups):.2f})" if ups else "-"
        ms = [x for r in rs for x in r["update_ms"]]
        print(f"{cond:>5s} | {rate[cond]:9.0f} | {100 * (1 - rate[cond] / base):7.1f}% | "
              f"{_mean([r['cores']['server loop'] for r in rs]):8.2f} c | "
              f"{_mean([r['cores']['chromium'] + r['cores']['clients'] for r in rs]):6.2f} c | "
              f"{_pct(ms, 0.5):8.1f}/{_pct(ms, 0.95):<8.1f} | {upd:>29s} | "
              f"{_mean([p['recv_per_s'] for p in pages]):14.1f} {_mean([p['recv_kb_s'] for p in pages]):7.1f} "
              f"{_mean([p['sent_per_s'] for p in pages]):12.1f}")
    zeros = [r["samples_per_s"] for r in by["0"]]
    print(f"  no-page windows, first and last: {zeros[0]:.0f} and {zeros[-1]:.0f} samples/s, "
          f"{100 * abs(zeros[0] - zeros[-1]) / base:.1f}% apart (noise and drift; the order cancels linear drift)")
    slow_k, slow_h = 1 - rate[str(k)] / base, 1 - rate[f"{k}h"] / base
    print(f"  {k} pages: {100 * slow_k:.1f}% slower; {k} headless clients: {100 * slow_h:.1f}% (the server's own "
          f"cost, without the pages' range updates); the rest, {100 * (slow_k - slow_h):.1f} points, is Chromium "
          "rendering on the same CPUs")
    busy = [i + 1 for i, r in enumerate(rows) if r["cores"]["others"] / os.cpu_count() > BUSY_SHARE]
    if busy:
        print(f"  WARNING: other processes took over {100 * BUSY_SHARE:.0f}% of the CPUs in window(s) {busy}: "
              "those numbers are disturbed")
    pages1 = [p for r in by["1"] for p in r["pages"]]
    from app.dashboard import Dashboard
    period_ms = Dashboard.param.period.default
    print(f"  browser, 1 page: median gap between updates {_mean([p['gap_p50_ms'] for p in pages1]):.0f} ms, "
          f"longest {max(p['gap_max_ms'] for p in pages1):.0f} ms (the dashboard's period: {period_ms} ms, "
          f"{1000 / period_ms:.0f}/s); bursts of "
          f"data changes {_mean([p['bursts_per_s'] for p in pages1]):.2f}/s")
    sources = collections.defaultdict(lambda: [0.0, 0.0])
    for p in pages1:
        for key, (changes, values) in p["by_columns"].items():
            sources[key][0] += changes / len(pages1)
            sources[key][1] += values / len(pages1)
    print("  data sources the page received most, by values/s (1 page; a source is named by its columns):")
    for key, (changes, values) in sorted(sources.items(), key=lambda kv: -kv[1][1])[:6]:
        print(f"    {values:9.0f} values/s in {changes:5.2f} changes/s  [{key[:90]}]")
    print("  cores: CPU seconds per second of wall time. train = the session's thread + numba's workers; server = "
          "the Panel/Bokeh event-loop thread;\n  chrom = Chromium; hdls = the headless clients' process; node = "
          "Playwright's driver; drv = this script; others = other processes of the machine.\n  sess = server "
          "sessions whose update ran in the last 2 s; upd/s/sess, update ms = the server's calls of "
          "Dashboard.update (wall time,\n  Bokeh's message building included); clients = Chromium or the headless "
          "clients. ws frames in/out: websocket frames server->page / page->server,\n  per page or client (a "
          "Bokeh message is 3 frames + 2 per binary buffer)")
    return rate, pages1


def print_memory(args, mem):
    print()
    first, half = mem[0], mem[len(mem) // 2]
    print(f"Server memory (VmRSS of this process: session + server), 1 page attached, {args.minutes:g} min of "
          "training; Δ from the first sample (taken once the page was attached and warm):")
    hdr = (f"{'t (s)':>6s} | {'RSS MB':>7s} | {'Δ MB':>6s} | {'step':>6s} | {'hid Hz':>6s} | "
           f"{'browser upd/s':>13s} | {'sess':>4s} | {'chromium RSS MB':>15s}")
    print(hdr)
    print("-" * len(hdr))
    for s in mem:
        print(f"{s['t']:6.0f} | {s['rss']:7.1f} | {s['rss'] - first['rss']:+6.1f} | {s['step']:6d} | "
              f"{s['rate_hz']:6.1f} | {s['updates_per_s']:13.2f} | {s['sessions']:4d} | {s['chromium_rss']:15.0f}")
    growth = mem[-1]["rss"] - first["rss"]
    print(f"  growth: {growth:+.1f} MB over the run, {mem[-1]['rss'] - half['rss']:+.1f} MB over its second half; "
          f"peak {max(s['rss'] for s in mem):.1f} MB (Chromium's RSS counts pages its processes share more than once)")
    return growth


def print_profile(profile):
    print()
    print("Where the server's update time goes (cProfile of the event-loop thread, one page; profiled calls are "
          "slower):")
    try:
        stats = pstats.Stats(profile).stats
    except TypeError:  # no update ran while profiling
        print("  (no calls profiled)")
        return
    updates = [v for (f, _, name), v in stats.items() if name == "update" and f.endswith("dashboard.py")]
    if updates:
        n, cum = updates[0][0], updates[0][3]
        print(f"  Dashboard.update: {n} calls, {1000 * cum / max(n, 1):.1f} ms each")
    else:
        cum = sum(v[2] for v in stats.values()) or 1.0

    def where(f):
        return f[f.find("site-packages/") + 14:] if "site-packages/" in f else os.path.relpath(f, REPO)

    app = sorted(((v[3], v[0], f, line, name) for (f, line, name), v in stats.items()
                  if f.startswith(str(REPO / "app")) and name != "update"), reverse=True)
    print("  the app's functions, cumulative:")
    for t, n, f, line, name in app[:8]:
        print(f"    {100 * t / cum:5.1f}%  {n:6d} calls  {where(f)}:{line} {name}")
    serialise = sum(v[3] for (f, _, name), v in stats.items() if name == "create" and f.endswith("patch_doc.py"))
    messages = sum(v[0] for (f, _, name), v in stats.items() if name == "create" and f.endswith("patch_doc.py"))
    if updates and messages:
        print(f"  Bokeh builds {messages / max(updates[0][0], 1):.0f} PATCH-DOC messages per update "
              f"({100 * serialise / cum:.0f}% of update's time): one message per model change")
    own = sorted(((v[2], v[0], f, line, name) for (f, line, name), v in stats.items()), reverse=True)
    print("  most time in the function itself:")
    for t, n, f, line, name in own[:6]:
        print(f"    {100 * t / cum:5.1f}%  {n:6d} calls  {where(f)}:{line} {name}")


def print_logs(tally, errors):
    print()
    # Pages of the in-process server (pn.serve, threaded) opened while others are attached sometimes
    # ask cdn.holoviz.org for Panel's CSS, which cannot resolve here; `panel serve` does not do that
    # (checked with 5 pages), so these are listed apart from the console errors.
    cdn = [e for e in errors if "cdn.holoviz.org" in e or e.endswith("net::ERR_NAME_NOT_RESOLVED")]
    errors = [e for e in errors if e not in cdn]
    if cdn:
        print(f"requests to cdn.holoviz.org for Panel's CSS (no network here): {len(cdn)}, an artefact of the "
              "in-process server, not counted below")
    if errors:
        uniq = collections.Counter(errors)
        print(f"browser console errors: {len(errors)} ({len(uniq)} distinct):")
        for e, n in uniq.most_common(5):
            print(f"  {n:4d} x {e[:300]}")
    else:
        print("browser console errors: none")
    if tally.counts:
        print(f"server log records, warnings and errors (counted, not printed): {sum(tally.counts.values())}")
        for (level, name, text), n in tally.counts.most_common(6):
            print(f"  {n:5d} x {level} {name}: {text}")
    else:
        print("server log records (warnings and errors): none")


# ---------------------------------------------------------------------------- main
def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the memory run (default 10)")
    ap.add_argument("--window", type=float, default=20.0, help="seconds per speed window (default 20)")
    ap.add_argument("--hidden", type=int, default=96, help="hidden neurons (default 96, as the dashboard)")
    ap.add_argument("--pages", type=int, default=5, help="pages of the busy condition (default 5)")
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds of training before measuring (default 20)")
    ap.add_argument("--settle", type=float, default=4.0, help="seconds after pages change, before a window")
    ap.add_argument("--wait-quiet", type=float, default=30.0, metavar="S",
                    help="before a window, wait up to S s while other processes keep the CPUs busy (default 30)")
    ap.add_argument("--clients", nargs=2, metavar=("URL", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.clients:
        run_clients(args.clients[0], int(args.clients[1]))
        return
    t_start = time.perf_counter()

    def say(text):
        print(f"[{time.perf_counter() - t_start:4.0f} s] {text}", flush=True)

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("SKIP: this benchmark needs Playwright (`.venv/bin/pip install playwright`)")
        return
    if not os.path.exists(CHROMIUM):
        print(f"SKIP: this benchmark needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium)")
        return
    import panel as pn

    from app.dashboard import Dashboard, build_session
    from eventprop_lab.data.sources import load_dataset

    import numba

    signal.signal(signal.SIGTERM, _interrupt)  # through the finally blocks: no browser left behind
    print(f"Dashboard under load: randman-shd, {args.hidden} hidden, the dashboard's build_session (batch 32); "
          f"{os.cpu_count()} CPUs, numba {numba.get_num_threads()} threads; speed windows of {args.window:g} s; "
          f"memory run of {args.minutes:g} min", flush=True)
    say("loading data, building the session ...")
    rss_start = rss_mb()
    data = load_dataset("randman-shd", data_dir=str(REPO / "data_cache"))
    tmp = tempfile.TemporaryDirectory(prefix="bench_dashboard_")
    session = build_session(n_hidden=args.hidden, data=data, out_dir=tmp.name)
    rss_session = rss_mb()
    counter = SampleCounter(len(session.run.train_set), session.run.training.batch_size)
    session.run.observers.append(counter)  # before start(): the run is ours while no thread runs
    log, tally, gil = UpdateLog(), LogTally(), GilProbe()
    server = playwright = bench = None
    tally.install()
    try:
        port = free_port()
        # closed pages' sessions are discarded within ~2 s instead of Bokeh's 15-30 s, so that a
        # window after pages were closed measures only the pages still open
        server = pn.serve({"dashboard": lambda: log.wrap(Dashboard(session=session))}, port=port,
                          address="127.0.0.1", websocket_origin=[f"127.0.0.1:{port}"], show=False,
                          threaded=True, verbose=False, check_unused_sessions_milliseconds=1000,
                          unused_session_lifetime_milliseconds=1000)
        deadline = time.monotonic() + 30
        while getattr(server, "native_id", None) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        cpu = CpuMeter(server.native_id)
        gil.start()
        say(f"serving on 127.0.0.1:{port}; training (numba compiles on first use) ...")
        session.start()
        if not session.wait(300, until=lambda p: p["step"] > 0 or p["state"] == "error"):
            raise RuntimeError("no training step within 300 s")
        time.sleep(args.warmup)
        if session.last_error:
            raise RuntimeError(f"the session failed: {session.last_error}")
        snapshot = Snapshot(session)
        rss_warm = rss_mb()
        playwright = sync_playwright().start()
        bench = Bench(args, session, counter, cpu, log, gil, playwright, f"http://127.0.0.1:{port}/dashboard", say)
        say(f"warm ({counter.batches} batches trained); speed windows ...")
        rows = bench.speed(snapshot)
        rss_after_speed = rss_mb()
        mem, profile = bench.memory()
        say("done")
        bench.close()
        print(f"\nRSS of this process: {rss_start:.0f} MB at start, {rss_session:.0f} MB with the session built, "
              f"{rss_warm:.0f} MB after the warm-up (no page), {rss_after_speed:.0f} MB after the speed windows")
        rate, pages1 = print_speed(args, rows)
        growth = print_memory(args, mem)
        print_profile(profile)
        print_logs(tally, bench.errors)
        p = session.progress
        print(f"the session: {p['step']} steps, {p['state']}, last error {session.last_error}; "
              f"wall time of this run {time.perf_counter() - t_start:.0f} s")
        k = args.pages
        print(f"RESULT slowdown_1={1 - rate['1'] / rate['0']:.3f} slowdown_{k}={1 - rate[str(k)] / rate['0']:.3f} "
              f"updates_per_s={_mean([p['updates_per_s'] for p in pages1]):.2f} mem_growth_mb={growth:.1f} "
              f"slowdown_{k}h={1 - rate[f'{k}h'] / rate['0']:.3f}")
    finally:
        gil.running = False
        try:
            if bench is not None:
                bench.close()
        finally:
            if playwright is not None:
                playwright.stop()
            session.stop()
            if server is not None:
                server.stop()
                server.join(timeout=10)  # its last log records still reach the tally
            tally.uninstall()
            tmp.cleanup()


if __name__ == "__main__":
    main()
