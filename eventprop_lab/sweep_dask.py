"""`eventprop-lab sweep SPEC` on Dask: a LocalCluster by default (workers x numba threads within
the cores), an existing scheduler with --scheduler (a laptop's `dask scheduler`, a SLURM job's
through dask-jobqueue, ...). Each cell is one task; a bar counts cells and another epochs."""
import hashlib
import os
import sys
import time
from pathlib import Path

from .results import SWEEP_COLUMNS, summarise
from .sweep import (TOPIC, SweepError, SweepLock, check_existing, epochs_done, finished, plan, prepare,
                    run_cell, write_cell)
from .sweep_spec import parse_spec

INSTALL = "the sweep runs on Dask: pip install 'eventprop-lab[dist]' (dask[distributed])"


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def divide_cores(n_cells, cores, workers=None, threads=None):
    """(workers, numba threads per worker): by default one worker per core, fewer when there are
    fewer cells (the cores left over become threads), so workers x threads <= cores. Independent
    cells scale better over processes than one run over threads (no barrier per time step)."""
    if workers is None:
        workers = max(1, min(n_cells, cores // (threads or 1)))
    if threads is None:
        threads = max(1, cores // workers)
    return workers, threads


def start_cluster(workers, threads):
    """A LocalCluster of `workers` processes, one cell at a time each, numba on `threads` threads."""
    from distributed import Client, LocalCluster

    env = {name: str(threads) for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                           "MKL_NUM_THREADS")}
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, env=env)
    return cluster, Client(cluster)


def describe_cluster(client, cores=None, threads=None):
    info = client.scheduler_info()["workers"]
    memory = [w.get("memory_limit", 0) for w in info.values()]
    each = f", {min(memory) / 2**30:.1f} GiB memory each" if memory and min(memory) else ""
    if cores is not None:
        return (f"LocalCluster: {len(info)} workers x {threads} numba thread{'s' if threads > 1 else ''} on "
                f"{cores} cores{each}; Dask dashboard {client.dashboard_link}")
    threads = "numba's default threads" if threads is None else f"{threads} numba threads"
    return (f"scheduler {client.scheduler.address}: {len(info)} workers, {threads} per cell{each}; "
            f"Dask dashboard {client.dashboard_link}")


class Progress:
    """A bar over cells and one over epochs; epochs arrive as Dask events from the workers."""

    def __init__(self, cells, todo, sweep_id, enabled=True, print_=print):
        from tqdm import tqdm

        self.enabled, self.print_ = enabled, print_
        self.sweep_id, self.done_epochs = sweep_id, {c["name"]: epochs_done(c) for c in cells}
        total = sum(c["epochs"] for c in cells)
        self.cells = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="cells", unit="cell",
                          disable=not enabled, position=0, dynamic_ncols=True)
        self.epochs = tqdm(total=total, initial=sum(self.done_epochs.values()), desc="epochs", unit="epoch",
                           disable=not enabled, position=1, dynamic_ncols=True)

    def on_event(self, event):
        _, msg = event
        if msg.get("sweep") != self.sweep_id:
            return  # another sweep on the same cluster
        before = self.done_epochs.get(msg["cell"], 0)
        if msg["epoch"] > before:
            self.epochs.update(msg["epoch"] - before)
            self.done_epochs[msg["cell"]] = msg["epoch"]

    def cell_done(self, line):
        self.cells.update(1)
        if self.enabled:
            self.cells.write(line)  # above the bars
        else:
            self.print_(line)

    def close(self):
        self.epochs.close()
        self.cells.close()


def execute(client, cells, todo, threads, sweep_id, progress=True, print_=print):
    """Runs `todo` (some of `cells`) as Dask tasks; returns the names of the cells that failed."""
    from distributed import as_completed

    bars = Progress(cells, todo, sweep_id, progress, print_)
    client.subscribe_topic(TOPIC, bars.on_event)
    futures = {client.submit(run_cell, cell, threads, sweep_id, key=f"{sweep_id}-{cell['name']}", pure=False):
               cell["name"] for cell in todo}
    failed = []
    try:
        for future in as_completed(futures):
            name = futures[future]
            try:
                r = future.result()
            except Exception as exc:  # one cell's failure leaves the others running
                failed.append(name)
                why = f"{type(exc).__name__}: {exc}"
                if type(exc).__name__ == "KilledWorker":
                    why += " (its workers died: out of memory?)"
                bars.cell_done(f"{name}: failed, {why}")
                continue
            test = r.get("test_at_best")
            bars.cell_done(f"{name}: {r['status']}, {r['epochs']} epochs"
                           + (f", test at best validation {test:.3f}" if test is not None else ""))
    except KeyboardInterrupt:
        client.cancel(list(futures))
        raise
    finally:
        client.unsubscribe_topic(TOPIC)
        bars.close()
    return failed


def run_sweep(spec_path, out=None, scheduler=None, workers=None, threads=None, client=None, progress=True,
              dry_run=False, print_=print):
    """Plans, runs and summarises a sweep; returns 0, or 1 if some cells failed. `client`: an
    existing Dask client to use (its cluster is treated as local: datasets and kernels are
    prepared here)."""
    spec = parse_spec(spec_path)
    out = Path(out or spec.out or Path("runs", "sweeps", spec.path.stem)).resolve()
    if dry_run:
        for cell in plan(spec, out):
            state = "finished" if finished(cell) else f"at epoch {epochs_done(cell)} of {cell['epochs']}"
            print_(f"{cell['name']}: {state}")
        return 0
    with SweepLock(out) as lock:
        if lock.taken_over:
            print_(f"(the lock of pid {lock.taken_over.get('pid')}, no longer running, was taken over)")
        cells = plan(spec, out)
        check_existing(cells)
        (out / f"spec{spec.path.suffix}").write_text(spec.text)  # what this folder was last run with
        todo = [c for c in cells if not finished(c)]
        for cell in todo:
            write_cell(cell)  # so that `results` lists cells not started yet
        print_(f"{len(cells)} cells into {out}: {len(cells) - len(todo)} finished before, {len(todo)} to run")
        failed = []
        if todo:
            failed = _run(todo, cells, out, scheduler, workers, threads, client, progress, print_)
        summarise(out, SWEEP_COLUMNS, print_)
        if failed:
            print_(f"{len(failed)} cells failed: {', '.join(failed)}; run the same command again to retry them")
        return 1 if failed else 0


def _run(todo, cells, out, scheduler, workers, threads, client, progress, print_):
    try:
        import distributed
    except ImportError:
        raise SweepError(INSTALL) from None
    cluster, own = None, client is None
    if scheduler is None:
        prepare(sorted({(c["dataset"], c["settings"]["data_dir"]) for c in todo}), print_)
    if client is None and scheduler is not None:
        client = distributed.Client(scheduler)
        print_(describe_cluster(client, threads=threads))
    elif client is None:
        cores = available_cores()
        workers, threads = divide_cores(len(todo), cores, workers, threads)
        if workers * threads > cores:
            print_(f"note: {workers} workers x {threads} threads is more than the {cores} cores")
        cluster, client = start_cluster(workers, threads)
        print_(describe_cluster(client, cores, threads))
    sweep_id = "sweep-" + hashlib.sha1(f"{out}{time.time()}".encode()).hexdigest()[:8]
    try:
        return execute(client, cells, todo, threads, sweep_id, progress, print_)
    finally:
        if own:
            client.close()
        if cluster is not None:
            cluster.close()


def main_sweep(args):
    """The `sweep` subcommand."""
    try:
        return run_sweep(args.spec, out=args.out, scheduler=args.scheduler, workers=args.workers,
                         threads=args.threads, progress=not args.no_progress, dry_run=args.dry_run)
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to go on (finished cells are kept, the others "
              "resume from their last checkpoint)", flush=True)
        return 130
