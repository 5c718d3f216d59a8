"""The cells of a sweep (eventprop_lab/sweep_spec.py) and how one is trained: each an ordinary
run folder (the files `eventprop-lab train` writes, and sweep_cell.json), each one task on a Dask
worker (eventprop_lab/sweep_dask.py).

Resuming is the same command again: a finished cell (it has summary.json) is left alone, a cell
with last.npz continues from it. A worker that dies takes only its unfinished epoch with it: the
scheduler hands the cell to another worker, which resumes it from its last checkpoint. The
folder is locked (sweep.lock: pid and host) while a sweep writes to it."""
import json
import os
import socket
import sys
import time
from pathlib import Path

import param

from .config import SECTIONS, apply_preset, config_to_dict
from .network import atomic_write
from .settings import SETTINGS

TOPIC = "eventprop-sweep"  # Dask event topic: each finished epoch, for the driver's progress bar


class SweepError(RuntimeError):
    """A sweep that cannot start (its folder is in use, or holds cells of other settings)."""


# ---- the folder's lock ---------------------------------------------------------------------------
def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SweepLock:
    """sweep.lock in the sweep folder while a sweep writes there. A lock left by a process that is
    gone from this host is taken over; one from another host is not (its process cannot be seen)."""

    def __init__(self, out):
        self.path = Path(out) / "sweep.lock"
        self.mine = {"pid": os.getpid(), "host": socket.gethostname(),
                     "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}
        self.taken_over = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = self._read()
                if other.get("host") == self.mine["host"] and isinstance(other.get("pid"), int) \
                        and not _alive(other["pid"]):
                    self.taken_over = other
                    self.path.unlink(missing_ok=True)
                    continue
                raise SweepError(
                    f"{self.path.parent} is in use by another sweep (pid {other.get('pid', '?')} on host "
                    f"{other.get('host', '?')}, since {other.get('started', '?')}: {other.get('command', '')}). "
                    f"Wait for it to end, or give this sweep another folder with --out. If that sweep is gone "
                    f"(its machine crashed), remove {self.path}") from None
            with os.fdopen(fd, "w") as f:
                json.dump(self.mine, f)
            return self
        raise SweepError(f"could not lock {self.path}")

    def _read(self):
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def __exit__(self, *exc):
        if self._read().get("pid") == self.mine["pid"]:
            self.path.unlink(missing_ok=True)


# ---- planning ------------------------------------------------------------------------------------
def cell_configs(cell):
    """{section: config} of a cell: defaults, its preset, its settings, its seed and folder."""
    configs = {sec: cls() for sec, cls in SECTIONS.items()}
    if cell["preset"]:
        apply_preset(configs, cell["preset"])
    configs["run"].probe_every = 0  # probes are for live views; a sweep's metrics stay small
    for name, value in cell["settings"].items():
        setting = SETTINGS[name]
        if isinstance(setting.param, param.Range):  # JSON gave a list
            value = tuple(value)
        setattr(configs[setting.section], name, value)
    configs["training"].seed = cell["seed"]
    configs["run"].out_dir = cell["run_dir"]
    return configs


def _comparable(cell):
    """What a cell's results depend on: all its settings but the number of epochs."""
    d = config_to_dict(cell_configs(cell))
    d["run"].pop("epochs")
    return json.loads(json.dumps({"config": d, "fold": cell["fold"]}))


def _absolute(settings):
    """Paths as the workers must see them (on a cluster: on a shared file system)."""
    out = dict(settings)
    for key in ("data_dir", "dataset"):
        value = out.get(key)
        if value and (key == "data_dir" or str(value).lower().endswith((".h5", ".hdf5"))):
            prefix = "h5:" if str(value).startswith("h5:") else ""
            out[key] = prefix + str(Path(str(value)[len(prefix):]).resolve())
    out.setdefault("data_dir", str(Path("data_cache").resolve()))
    return out


def plan(spec, out):
    """The cells of a spec: one dict per variant x seed (x fold), each with its run folder."""
    out = Path(out).resolve()
    cells, speakers = [], {}
    for variant in spec.variants:
        settings = _absolute(variant.settings)
        folds = [None]
        if spec.folds == "loso":
            key = (settings.get("dataset", "randman-shd"), settings["data_dir"])
            if key not in speakers:
                speakers[key] = training_speakers(*key)
            folds = spec.fold_speakers or speakers[key]
            missing = sorted(set(folds) - set(speakers[key]))
            if missing:
                raise SweepError(f"fold_speakers {missing} are not speakers of {key[0]}'s training set "
                                 f"(it has {speakers[key]})")
        for seed in spec.seeds:
            for fold in folds:
                name = f"{variant.label}__s{seed}" + (f"__f{fold}" if fold is not None else "")
                cell = {"name": name, "config": variant.label, "varied": variant.varied,
                        "dataset": settings.get("dataset", "randman-shd"), "seed": seed, "fold": fold,
                        "preset": variant.preset, "settings": settings, "run_dir": str(out / name)}
                cell["epochs"] = cell_configs(cell)["run"].epochs
                cells.append(cell)
    return cells


def training_speakers(dataset, data_dir):
    import numpy as np

    from .data.splits import BLENDED_SPEAKER
    from .data.sources import load_dataset

    speakers = np.unique(load_dataset(dataset, data_dir=data_dir).train.speakers)
    return [int(s) for s in speakers if s != BLENDED_SPEAKER]


def check_existing(cells):
    """SweepError if a cell's folder holds a run of other settings (more epochs is fine: it goes on)."""
    clashes = []
    for cell in cells:
        path = Path(cell["run_dir"]) / "sweep_cell.json"
        if path.exists():
            old = json.loads(path.read_text())
            if _comparable(old) != _comparable(cell):
                a, b = _comparable(old)["config"], _comparable(cell)["config"]
                diff = [f"{k}: {a[s][k]!r} -> {b[s][k]!r}" for s in b for k in b[s] if a.get(s, {}).get(k) != b[s][k]]
                clashes.append(f"{cell['name']} ({', '.join(diff) or 'another fold'})")
    if clashes:
        raise SweepError("these cells' folders hold runs of other settings; give the changed sweep another "
                         "folder (--out), or remove the folders:\n  " + "\n  ".join(clashes))


def epochs_done(cell):
    """Epochs a cell's last checkpoint holds (0 without one)."""
    last = Path(cell["run_dir"]) / "last.npz"
    if not last.exists():
        return 0
    from .run import load_checkpoint

    try:
        return load_checkpoint(last)[1]["epoch"]
    except ValueError:
        return 0


def finished(cell):
    """True when a cell needs no more training: its summary has all its epochs, or says why it stopped."""
    try:
        summary = json.loads((Path(cell["run_dir"]) / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return summary.get("stopped") is not None or summary.get("epochs", 0) >= cell["epochs"]


def write_cell(cell):
    folder = Path(cell["run_dir"])
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(cell, indent=1) + "\n"
    atomic_write(folder / "sweep_cell.json", lambda f: f.write(text.encode()))


def prepare(datasets, print_=print):
    """Loads each (dataset, data_dir) once and compiles the numba kernels into their on-disk cache,
    here, before the workers start: randman-shd is generated on first use, and parallel runs must
    not all generate (and write) the same cache files, nor all compile the same kernels, at once."""
    import numpy as np

    from .data.sources import load_dataset
    from .network import NetworkConfig, init_params
    from .toy import spike_patterns
    from .training import Trainer, TrainingConfig

    for dataset, data_dir in datasets:
        t0 = time.time()
        load_dataset(dataset, data_dir=data_dir)
        print_(f"dataset {dataset} ready ({time.time() - t0:.0f} s)")
    t0 = time.time()
    samples, labels = spike_patterns(4, n_classes=2, n_channels=8, seed=0)
    trainer = Trainer(init_params(NetworkConfig(n_in=8, n_hidden=4, n_out=2), rng=0),
                      TrainingConfig(trial_ms=100.0, batch_size=4))
    trainer.train_batch(samples, np.asarray(labels, np.int64))
    print_(f"kernels compiled ({time.time() - t0:.0f} s)")


# ---- one cell, on a worker ---------------------------------------------------------------------
_DATA = {}  # this worker's datasets: loaded once, shared by the cells it runs


def cell_data(cell):
    """The cell's Splits: the dataset's own, or for a fold its other speakers for training and the
    held-out speaker for validation (the test set stays the dataset's)."""
    from .data.sources import Splits, load_dataset
    from .data.splits import leave_one_speaker_out

    key = (cell["dataset"], cell["settings"]["data_dir"])
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = load_dataset(*key)
    splits = _DATA[key]
    if cell["fold"] is None:
        return splits
    for speaker, train_idx, validation_idx in leave_one_speaker_out(splits.train):
        if speaker == cell["fold"]:
            return Splits(splits.train.subset(train_idx), splits.train.subset(validation_idx), splits.test)
    raise ValueError(f"speaker {cell['fold']} is not in {cell['dataset']}'s training set")


def _report_epoch(cell, sweep_id):
    """An observer that tells the driver of each finished epoch (when running on a Dask worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return lambda obs: None

    def observe(obs):
        if obs.kind == "epoch":
            worker.log_event(TOPIC, {"sweep": sweep_id, "cell": cell["name"], "epoch": obs.epoch})

    return observe


def run_cell(cell, threads=None, sweep_id=""):
    """Trains one cell into its folder, from its last checkpoint if it has one; returns a short
    account ({"name", "status", "epochs", "wall_s"}). Safe to call again on a finished cell."""
    if not threads:
        return _run_cell(cell, sweep_id)
    import numba

    # numba's thread count belongs to the calling thread: give it back, so that a cell run in a
    # caller's own thread (a test, a notebook) does not change how its later training sums
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        return _run_cell(cell, sweep_id)
    finally:
        numba.set_num_threads(before)


def _run_cell(cell, sweep_id):
    from .observe import export_csv
    from .run import TrainingDiverged, TrainingRun

    folder = Path(cell["run_dir"])
    write_cell(cell)
    if finished(cell):
        return {"name": cell["name"], "status": "finished before", "epochs": epochs_done(cell)}
    observers = [_report_epoch(cell, sweep_id)]
    last = folder / "last.npz"
    if not last.exists():  # killed in its first epoch: what it wrote is of no epoch that counts
        (folder / "metrics.jsonl").unlink(missing_ok=True)
    if last.exists():
        run = TrainingRun.resume(last, observers=observers, data=cell_data(cell), **{"run.epochs": cell["epochs"]})
        status = f"resumed after epoch {run.epoch}"
    else:
        c = cell_configs(cell)
        run = TrainingRun(c["run"], c["network"], c["training"], c["augment"], observers=observers,
                          data=cell_data(cell))
        status = "done"
    stopped = None
    try:
        run.fit()
    except TrainingDiverged as exc:
        stopped, status = str(exc), "diverged"
    if run.epoch:
        export_csv(folder / "metrics.jsonl", folder / "epochs.csv")
    summary = run.write_summary(stopped=stopped)
    return {"name": cell["name"], "status": status, "epochs": run.epoch, "wall_s": summary["wall_s"],
            "test_at_best": summary["test_accuracy_at_best"]}
