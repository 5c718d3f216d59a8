"""Sweeps on a Dask LocalCluster of 2 worker processes: a tiny LOSO sweep on the embedded data
finishes, is not rerun, goes on when given more epochs; a worker killed mid-cell costs only its
unfinished epoch; a second sweep on one folder is refused."""
import json
import os
import signal
import socket
import threading
import time

import pytest

distributed = pytest.importorskip("distributed")

from eventprop_lab.cli import main  # noqa: E402
from eventprop_lab.observe import read_metrics  # noqa: E402
from eventprop_lab.sweep import SweepError, SweepLock  # noqa: E402
from eventprop_lab.sweep_dask import run_sweep  # noqa: E402

TINY = "{dataset: randman-shd, n_hidden: 16, trial_ms: 200, batch_size: 16, max_train_samples: %d, epochs: %d}"


@pytest.fixture(scope="module")
def client():
    env = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  env=env) as cluster, distributed.Client(cluster) as c:
        yield c


def _write(path, text):
    path.write_text(text)
    return path


def _epochs(run_dir):
    return [r["epoch"] for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "epoch"]


def test_loso_sweep_finishes_is_not_rerun_and_goes_on_with_more_epochs(client, tmp_path, capsys):
    spec = tmp_path / "tiny.yaml"
    text = "base: " + TINY + "\ngrid: {loss: [sum_exp, max]}\nseeds: [1]\nfolds: loso\nfold_speakers: [0, 3]\n"
    out, lines = tmp_path / "sweep", []
    _write(spec, text % (24, 1))
    assert run_sweep(spec, out, client=client, progress=False, print_=lines.append) == 0
    cells = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert cells == ["loss=max__s1__f0", "loss=max__s1__f3", "loss=sum_exp__s1__f0", "loss=sum_exp__s1__f3"]
    for name in cells:  # ordinary run folders
        for f in ("metrics.jsonl", "epochs.csv", "summary.json", "last.npz", "best.npz", "sweep_cell.json"):
            assert (out / name / f).exists(), (name, f)
    cell = json.loads((out / "loss=max__s1__f3" / "sweep_cell.json").read_text())
    assert cell["fold"] == 3 and cell["varied"] == {"loss": "max"}
    summary = json.loads((out / "loss=max__s1__f3" / "summary.json").read_text())
    assert summary["best_on"] == "validation" and summary["test_accuracy_at_best"] is not None
    assert "4 cells into" in lines[0] and "0 finished before, 4 to run" in lines[0]

    stamps = {n: (out / n / "summary.json").stat().st_mtime_ns for n in cells}
    lines.clear()
    assert run_sweep(spec, out, client=client, progress=False, print_=lines.append) == 0
    assert "4 finished before, 0 to run" in lines[0]
    assert stamps == {n: (out / n / "summary.json").stat().st_mtime_ns for n in cells}

    _write(spec, text % (24, 2))  # more epochs: every cell goes on from its checkpoint
    assert run_sweep(spec, out, client=client, progress=False, print_=lines.append) == 0
    for name in cells:
        assert _epochs(out / name) == [1, 2]
        assert [r["what"] for r in read_metrics(out / name / "metrics.jsonl") if r["kind"] == "event"] == \
            ["start", "resume"]
    capsys.readouterr()
    assert main(["results", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| loss=max | randman-shd | 2 | 2 |" in table and "| loss=sum_exp | randman-shd | 2 | 2 |" in table
    assert (out / "summary.csv").read_text().startswith("config,dataset,runs,epochs,best_val_acc")
    assert "fold" in (out / "runs.csv").read_text().splitlines()[0]


def test_a_killed_worker_costs_only_its_unfinished_epoch(client, tmp_path):
    spec = _write(tmp_path / "one.yaml", "base: " + TINY % (600, 12) + "\n")
    out, result = tmp_path / "sweep", {}
    thread = threading.Thread(target=lambda: result.update(rc=run_sweep(spec, out, client=client, progress=False,
                                                                         print_=lambda line: None)))
    thread.start()
    run_dir = out / "base__s0"
    deadline = time.time() + 60
    # last.npz is written just before the epoch's line in metrics.jsonl: wait for both
    while not ((run_dir / "last.npz").exists() and (run_dir / "metrics.jsonl").exists() and _epochs(run_dir)) \
            and time.time() < deadline:
        time.sleep(0.05)
    assert (run_dir / "last.npz").exists() and _epochs(run_dir), "the cell never finished an epoch"
    busy = [addr for addr, keys in client.processing().items() if keys]
    assert len(busy) == 1 and _epochs(run_dir)[-1] < 12, "the cell finished before it could be killed"
    pid = client.run(os.getpid, workers=busy)[busy[0]]
    os.kill(pid, signal.SIGKILL)
    thread.join(120)
    assert result.get("rc") == 0
    events = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "event"]
    assert [e["what"] for e in events] == ["start", "resume"] and events[1]["epoch"] >= 1
    assert _epochs(run_dir) == list(range(1, 13))
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 12


def test_a_second_sweep_on_one_folder_is_refused(tmp_path):
    with SweepLock(tmp_path):
        with pytest.raises(SweepError, match=rf"in use by another sweep \(pid {os.getpid()} on host "
                                             rf"{socket.gethostname()}"):
            SweepLock(tmp_path).__enter__()
    assert not (tmp_path / "sweep.lock").exists()
    # a lock left by a process that is gone from this host is taken over
    (tmp_path / "sweep.lock").write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname()}))
    with SweepLock(tmp_path) as lock:
        assert lock.taken_over["pid"] == 2**22 + 12345


def test_cores_are_divided_between_workers_and_threads():
    from eventprop_lab.sweep_dask import divide_cores

    assert divide_cores(n_cells=8, cores=16) == (8, 2)  # fewer cells than cores: threads take the rest
    assert divide_cores(n_cells=40, cores=16) == (16, 1)
    assert divide_cores(n_cells=40, cores=16, threads=4) == (4, 4)
    assert divide_cores(n_cells=40, cores=16, workers=2) == (2, 8)
