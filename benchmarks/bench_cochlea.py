"""Speed of the artificial cochlea (eventprop_lab.data.audio): CPU seconds per second of audio.

Run:  .venv/bin/python benchmarks/bench_cochlea.py            (about a minute on a 2-core machine)
      PYTHONPATH=/tmp/lauscher_src .venv/bin/python benchmarks/bench_cochlea.py --lauscher /tmp/lvenv/bin/python
          adds lauscher's column (minutes): the given Python, which must import lauscher (it needs
          matplotlib, which this project does not), times it in a subprocess on the same 1 s clip

What is measured
----------------
A speech-like clip (the reference sounds of cochlea/signals.py one after another) of 1 s and 3 s,
given at 16 kHz, through a 700-channel cochlea at audio_rate 48 kHz (the default: SHD's recording
rate, inner ear at 24 kHz) and at 16 kHz (inner ear at 8 kHz, the rate of the lauscher reference).
CPU time is process time (user + system of this process; the cochlea runs with threads=1, on
one thread, here: the same spikes as with threads), best of --repeats runs after a warm-up that
absorbs numba compilation and the one-off design of the membrane filters for the rate (reported on
its own in the "set-up" line). Wall time with threads, as the dashboard's Speak tab runs it, is
benchmarks/bench_speak.py's.

Per stage, each run on its own so that it can be timed: BM (resampling, normalisation, fade and the
membrane filter bank), IHC (Meddis hair cells), fibres (40 refractory fibres per place), bushy (the
LIF cells). "total" is Cochlea.encode, which runs the three last stages fused in one pass over each
block of places, so it is less than the sum of the stages.

Measured on this project's 2-core machine, shared with other work, with --lauscher:

    audio_rate  clip      BM     IHC  fibres   bushy   total  spikes  lauscher   (CPU s per s of audio)
         48000    1s   0.244   0.100   0.241   0.046   0.612    2398
         48000    3s   0.212   0.122   0.265   0.045   0.612   10425
         16000    1s   0.054   0.028   0.110   0.015   0.216    8786     121.8
         16000    3s   0.058   0.029   0.120   0.016   0.225   31495
    set-up: 3.4 s CPU at 48 kHz, 0.8 s at 16 kHz
    RESULT cpu_s_per_audio_s=0.612

With a random stream per place (so that blocks of places can run on threads), the same script
gave totals of 0.603 and 0.598 at 48 kHz, 0.222 and 0.203 at 16 kHz: the same cost, other spikes
of the same statistics (2310 for the 1 s clip at 48 kHz; over 8 seeds 2376 +- 52, before 2379 +- 52).

lauscher (commit 16db85f, Wave2Spike(700), its own process pool) took 121.8 s of CPU for the 1 s
clip at 16 kHz (9107 spikes against our 8786 with one seed each): about 560 times ours. Its
membrane stage is vectorised numpy in a pool; its hair-cell and bushy-cell stages are Python loops
over samples, so at 48 kHz it has three times the samples to loop over (not timed here; the runs of
tests/data took 8-10 minutes of wall time for 0.3-0.4 s clips with two seeds).
"""
import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventprop_lab.data.audio import Cochlea  # noqa: E402
from eventprop_lab.data.cochlea import impulse_responses  # noqa: E402
from eventprop_lab.data.cochlea.nerve import (bushy_kernel, fibre_kernel, hair_cell_kernel,  # noqa: E402
                                              place_seeds, spike_buffers)
from eventprop_lab.data.cochlea.signals import RATE, speech_like  # noqa: E402


def cpu():
    self_ = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + kids.ru_utime + kids.ru_stime


def stages(cochlea, samples, rate):
    """CPU seconds of each stage run on its own, over all blocks of places."""
    times = dict(BM=0.0, IHC=0.0, fibres=0.0, bushy=0.0)
    t0 = cpu()
    x, audio_rate = cochlea.resample(samples, rate)
    x = cochlea.prepare(x)
    times["BM"] += cpu() - t0
    seeds = place_seeds(0, cochlea.n_channels)
    inner = audio_rate / 2
    hc, nv = cochlea.hair_cell.as_array(), cochlea.nerve.as_array()
    for start in range(0, cochlea.n_channels, cochlea.channel_block):
        channels = np.arange(start, min(start + cochlea.channel_block, cochlea.n_channels))
        t0 = cpu()
        velocity = np.ascontiguousarray(cochlea.membrane_velocity(x, audio_rate, channels))
        t1 = cpu()
        probability = hair_cell_kernel(velocity, inner, hc)
        t2 = cpu()
        fibre_spikes = fibre_kernel(probability, inner, nv, seeds[channels])
        t3 = cpu()
        out_steps, out_count = spike_buffers(*fibre_spikes.shape, inner, cochlea.nerve)
        bushy_kernel(fibre_spikes, inner, nv, out_steps, out_count)
        t4 = cpu()
        for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times[key] += dt
    return times


def best(fn, repeats):
    out = None
    for _ in range(repeats):
        t0 = cpu()
        value = fn()
        dt = cpu() - t0
        if out is None or dt < out[0]:
            out = (dt, value)
    return out


LAUSCHER_SNIPPET = """
import resource, sys, numpy as np
from lauscher.audiowaves import MonoAudioWave
from lauscher.transformations.wave2spike import Wave2Spike
samples = np.load(sys.argv[1])
spikes = MonoAudioWave(samples, int(sys.argv[2])).transform(Wave2Spike(num_channels=700))
use = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
print(sum(u.ru_utime + u.ru_stime for u in use), len(spikes.spike_times))
"""


def time_lauscher(python, samples, rate):
    """(CPU s of lauscher's Wave2Spike(700) with its worker pool, spikes), run by another Python."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.npy"
        np.save(path, samples)
        out = subprocess.run([python, "-c", LAUSCHER_SNIPPET, str(path), str(rate)], capture_output=True,
                             text=True, check=True)
    cpu_s, n = out.stdout.split()[-2:]
    return float(cpu_s), int(n)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lauscher", metavar="PYTHON",
                        help="a Python that imports lauscher: also time it on the 1 s clip (minutes)")
    args = parser.parse_args()

    lauscher_note = "not requested (--lauscher PYTHON); measured once: see the docstring"
    if args.lauscher:
        probe = subprocess.run([args.lauscher, "-c", "import lauscher.transformations.wave2spike"],
                               capture_output=True, text=True)
        lauscher_note = None if probe.returncode == 0 else \
            f"{args.lauscher} cannot import lauscher (put its source on PYTHONPATH); column skipped"

    print(f"{'audio_rate':>10} {'clip':>5} {'BM':>7} {'IHC':>7} {'fibres':>7} {'bushy':>7} {'total':>7} "
          f"{'spikes':>7} {'lauscher':>9}   (CPU s per s of audio)")
    result = None
    for audio_rate in (48000.0, 16000.0):
        cochlea = Cochlea(audio_rate=audio_rate, threads=1)  # CPU per second of audio: one thread
        impulse_responses.cache_clear()
        t0 = cpu()
        cochlea.encode(speech_like(0.2), RATE)
        setup = cpu() - t0
        for seconds in (1.0, 3.0):
            samples = speech_like(seconds)
            per_stage = {k: min(v) for k, v in zip(
                ("BM", "IHC", "fibres", "bushy"),
                zip(*[stages(cochlea, samples, RATE).values() for _ in range(args.repeats)]))}
            total, (times, _) = best(lambda: cochlea.encode(samples, RATE), args.repeats)
            col = ""
            if args.lauscher and lauscher_note is None and seconds == 1.0 and audio_rate == RATE:
                lt, ln = time_lauscher(args.lauscher, samples, RATE)
                col = f"{lt / seconds:9.1f}"
                print(f"  lauscher: {lt:.1f} s CPU, {ln} spikes", flush=True)
            print(f"{audio_rate:10.0f} {seconds:4.0f}s " + " ".join(f"{per_stage[k] / seconds:7.3f}" for k in per_stage)
                  + f" {total / seconds:7.3f} {len(times):7d} {col:>9}", flush=True)
            if audio_rate == 48000.0 and seconds == 3.0:
                result = total / seconds
        print(f"{'':>10} set-up at {audio_rate:.0f} Hz (filter design + numba compile or cache load): {setup:.2f} s CPU")
    if lauscher_note:
        print(f"lauscher column: {lauscher_note}")
    print(f"RESULT cpu_s_per_audio_s={result:.3f}")


if __name__ == "__main__":
    main()
