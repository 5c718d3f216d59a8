"""Latency of the dashboard's "speak a digit" tab without a browser: from the recording's arrival
to the figure data, paused and while the network trains, the training held for the request (as the
tab does now: TrainingSession.hold) or not (as before), with the cochlea on one thread in blocks of
64 places (as before) and on numba's threads in blocks of 32 (as now; the same spikes).

Run:  .venv/bin/python benchmarks/bench_speak.py                (about 2 minutes on a 2-core machine)
      .venv/bin/python benchmarks/bench_speak.py --repeats 9 --seconds 0.6

What is measured
----------------
The dashboard's own session (app.dashboard.build_session: randman-shd, 96 hidden, 1 s trials),
built in this process as the server builds it. A recording as the browser sends it: a 16-bit
48 kHz WAV of --seconds of the cochlea's speech-like test sounds between 0.3 s of quiet, which
the tab trims. One request is what the Speak tab's worker thread and event loop do for it:
decode the WAV, trim, cochlea, forward pass and probabilities on a snapshot of the weights
(eventprop_lab.infer.hear), then the figure data (app.speak.Speak.show and the serialisation of
its three Bokeh sources). Wall time per request, median and range over --repeats requests; the
variants take turns, so a busy spell of the machine falls on all of them alike, and the table
says how much of the CPUs other processes took meanwhile (on a shared machine, often most of the
difference between runs; --wait-quiet waits for a quieter moment first).

Conditions: "paused": the session idle. "training": the session's thread trains (batches of 32)
meanwhile. "training, held": the same, but the request holds the training (TrainingSession.hold)
around the cochlea and the forward pass, as the Speak tab does: the training ends the batch in
flight, waits, and goes on when the hold is released (before the figure data, as in the tab).
The training rows take turns in one loop, so the held and unheld requests meet the same machine;
"batches" is the median number of batches the training finished during a request.

Not included: the browser (making the WAV, the websocket, drawing): tests/browser/
test_speak_browser.py prints the whole stop→answer time as the page counts it.
"""
import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
from scipy import signal as ssignal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventprop_lab import infer  # noqa: E402
from eventprop_lab.data.audio import Cochlea  # noqa: E402
from eventprop_lab.data.cochlea.signals import RATE, speech_like  # noqa: E402

BROWSER_RATE = 48000


def recording(seconds, quiet=0.3):
    """WAV bytes as the page sends them: 48 kHz, 16 bit, the sound between quiet stretches."""
    x = ssignal.resample_poly(speech_like(seconds), BROWSER_RATE // RATE, 1)
    pad = np.zeros(int(quiet * BROWSER_RATE))
    x = np.concatenate([pad, x, pad])
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(BROWSER_RATE)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def busy_ticks():
    """(CPU ticks busy on the whole machine, ticks of this process): from /proc, Linux only."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
        return sum(values) - values[3] - values[4], int(own[11]) + int(own[12])  # minus idle, iowait
    except (OSError, IndexError, ValueError):
        return None


def others_share(before, after, seconds):
    """Share of the machine's CPUs that other processes used between two busy_ticks()."""
    if before is None or after is None or seconds <= 0:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK") * seconds * os.cpu_count()
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / ticks)


def wait_quiet(limit_s, threshold=0.15):
    """Wait (at most limit_s) until other processes use less than threshold of the CPUs for 5 s."""
    deadline = time.monotonic() + limit_s
    while True:
        before = busy_ticks()
        time.sleep(5)
        share = others_share(before, busy_ticks(), 5)
        if not share >= threshold or time.monotonic() > deadline:
            return share
        print(f"waiting for a quieter machine: other processes use {share:.0%} of the CPUs", flush=True)


def figure_data(panel, heard):
    """Speak.show, then the serialisation Bokeh does of the changed sources."""
    from bokeh.core.serialization import Serializer

    panel.show(heard)
    for source in (panel.raster, panel.readout, panel.probabilities):
        Serializer().serialize(source.data)


def request(session, panel, data, cochleas, hold):
    """Seconds of each stage of one request, and the whole; batches trained meanwhile."""
    ticks = busy_ticks()
    step = session.progress["step"]
    t0 = time.perf_counter()
    with session.hold() if hold else contextlib.nullcontext():  # as app.speak.Speak._work
        infer.cochlea = lambda n_channels: cochleas[n_channels]  # the variant's cochlea
        heard = infer.hear(data, ".wav", infer.snapshot(session))
    t1 = time.perf_counter()
    figure_data(panel, heard)
    t2 = time.perf_counter()
    return dict(heard.seconds, figure=t2 - t1, total=t2 - t0, audio=heard.audio_seconds,
                batches=session.progress["step"] - step, others=others_share(ticks, busy_ticks(), t2 - t0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="requests per variant")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of the sound in the recording")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                        help="first wait up to S seconds for other processes to leave the CPUs (< 15 %%)")
    args = parser.parse_args()

    import numba

    from app.dashboard import build_session
    from app.speak import Speak

    data = recording(args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        session = build_session(out_dir=str(Path(tmp) / "run"))
        panel = Speak(session=session)
        n = infer.snapshot(session).n_channels
        # before: one thread, blocks of 64 places; now: numba's thread count, blocks of 32 (same spikes)
        variants = {"1 thread": {n: Cochlea(n_channels=n, threads=1, channel_block=64)},
                    f"{numba.config.NUMBA_NUM_THREADS} threads": {n: Cochlea(n_channels=n)}}
        for cochleas in variants.values():  # compile or load the kernels, design the filters
            request(session, panel, data, cochleas, hold=False)
        if args.wait_quiet > 0:
            wait_quiet(args.wait_quiet)
        load = [os.getloadavg()[0]]
        threads = list(variants)[-1]
        groups = [[("paused", name) for name in variants],  # each group's rows take turns
                  [("training", name) for name in variants] + [("training, held", threads)]]
        runs = {}
        for group in groups:
            if group[0][0] != "paused":
                session.start()
                session.wait(until=lambda p: p["step"] >= 3, timeout=300)
            for _ in range(args.repeats):
                for condition, name in group:
                    runs.setdefault((condition, name), []).append(
                        request(session, panel, data, variants[name], hold=condition.endswith("held")))
        rows = [(condition, name, r) for (condition, name), r in runs.items()]
        steps = session.progress["step"]
        session.stop()
        load.append(os.getloadavg()[0])

    audio = rows[0][2][0]["audio"]
    print(f"stop→answer on the server for {audio:.2f} s of sound (a {args.seconds:g} s recording, trimmed), "
          f"{args.repeats} requests per row; seconds, median (min-max)")
    print(f"{'condition':<15} {'cochlea':<10} {'total':>18} {'decode':>7} {'cochlea':>8} {'network':>8} {'figure':>7}"
          f" {'batches':>8} {'others':>7}")
    for condition, name, runs in rows:
        med = {k: statistics.median(r[k] for r in runs)
               for k in ("decode", "encode", "network", "figure", "batches", "others")}
        totals = [r["total"] for r in runs]
        print(f"{condition:<15} {name:<10} {statistics.median(totals):6.2f} ({min(totals):.2f}-{max(totals):.2f})"
              f" {med['decode']:7.3f} {med['encode']:8.3f} {med['network']:8.3f} {med['figure']:7.3f}"
              f" {med['batches']:8g} {med['others']:7.0%}")
    print("others: the share of the machine's CPUs that other processes took during the requests (median)")
    print(f"load average (1 min) before {load[0]:.2f}, after {load[1]:.2f}; the session trained to step {steps}; "
          f"numba threading layer {infer._threading_layer()}")
    best = {(c, v): statistics.median(r["total"] for r in runs) for c, v, runs in rows}
    keys = {"paused_1thread": ("paused", "1 thread"), "paused": ("paused", threads),
            "training_1thread": ("training", "1 thread"), "training": ("training", threads),
            "training_held": ("training, held", threads)}
    print("RESULT " + " ".join(f"speak_latency_s_{k}={best[c]:.3f}" for k, c in keys.items())
          + f" load_average_1min={load[0]:.2f}")


if __name__ == "__main__":
    main()
