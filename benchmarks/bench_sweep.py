"""Sweep throughput on Dask: the same 8-cell sweep (2 losses x 4 seeds on the embedded data) run
with 1 worker, then 2 (and 4, 8, ... while the cores allow), each worker with 1 numba thread.

    python benchmarks/bench_sweep.py                     # ~3-5 minutes on 2 cores
    python benchmarks/bench_sweep.py --epochs 1 --samples 128 --workers 1 2

Prints one line per worker count and
    RESULT cells_per_hour_1=... cells_per_hour_2=... efficiency=...
where efficiency is cells/hour at the most workers over (workers x cells/hour at 1 worker).
Each count runs in a fresh folder on a fresh LocalCluster; its time includes starting the cluster
(its share shrinks with longer cells). The cores that this sweep and that other processes kept busy
are printed too: on a shared machine other processes take cores from the workers, and the
efficiency says so."""
import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from eventprop_lab.sweep_dask import available_cores, run_sweep

SPEC = """base: {{dataset: randman-shd, n_hidden: {hidden}, max_train_samples: {samples}, epochs: {epochs},
       batch_size: 32}}
grid: {{loss: [sum_exp, max]}}
seeds: [1, 2, 3, 4]
"""


class CpuShare:
    """Cores kept busy, on average, by this process and its children (the workers) and by all
    other processes, sampled while a sweep runs: other processes' share is what the workers lacked."""

    def __init__(self, every=0.5):
        self.every, self.ours, self._stop = every, {}, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        me = psutil.Process()
        while not self._stop.wait(self.every):
            for p in [me, *me.children(recursive=True)]:
                try:
                    t = p.cpu_times()
                    self.ours[p.pid] = t.user + t.system  # the last sample of each process
                except psutil.Error:
                    pass

    def __enter__(self):
        self.t0, self.busy0, self.ours0 = time.perf_counter(), self._busy(), self._own()
        self._thread.start()
        return self

    @staticmethod
    def _busy():
        t = psutil.cpu_times()
        return t.user + t.system + getattr(t, "nice", 0.0)

    @staticmethod
    def _own():
        t = psutil.Process().cpu_times()
        return t.user + t.system

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        wall = time.perf_counter() - self.t0
        ours = sum(self.ours.values()) - self.ours0
        self.ours_cores = ours / wall
        self.other_cores = max(0.0, (self._busy() - self.busy0 - ours) / wall)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cores = available_cores()
    counts = [n for n in (1, 2, 4, 8, 16, 32) if n <= max(cores, 2)]
    ap.add_argument("--workers", type=int, nargs="+", default=counts, help=f"worker counts (default: {counts})")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--samples", type=int, default=1024, help="training samples per cell (max_train_samples)")
    ap.add_argument("--hidden", type=int, default=64)
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    spec = root / "bench.yaml"
    spec.write_text(SPEC.format(hidden=args.hidden, samples=args.samples, epochs=args.epochs))
    print(f"8 cells of {args.epochs} epochs on {args.samples} samples, {args.hidden} hidden; {cores} cores; "
          f"load average before {os.getloadavg()[0]:.1f}", flush=True)
    rates = {}
    for workers in args.workers:
        with CpuShare() as cpu:
            rc = run_sweep(spec, root / f"w{workers}", workers=workers, threads=1, progress=False,
                           print_=lambda line: None)
        seconds = time.perf_counter() - cpu.t0
        if rc != 0:
            print(f"{workers} workers: some cells failed (see {root / f'w{workers}'})")
            return 1
        rates[workers] = 8 / seconds * 3600
        print(f"{workers} workers x 1 thread: {seconds:6.1f} s, {rates[workers]:7.1f} cells/hour, "
              f"cores busy: ours {cpu.ours_cores:.1f}, other processes' {cpu.other_cores:.1f} of {cores}", flush=True)
    most = max(rates)
    efficiency = rates[most] / (most * rates[min(rates)]) if min(rates) == 1 else float("nan")
    print("RESULT " + " ".join(f"cells_per_hour_{w}={r:.1f}" for w, r in rates.items())
          + f" efficiency={efficiency:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
