"""benchmarks/silent_by_tau.py: the silent share per quartile of tau_mem, on a run whose
shortest-tau neurons are silenced by hand."""
import re

import numpy as np

from eventprop_lab.cli import main
from eventprop_lab.data import write_shd_h5
from eventprop_lab.toy import spike_patterns

from bench import BENCH, load_bench as _load


def test_silent_by_tau_finds_the_silenced_quartile(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    seed = int(np.random.default_rng().integers(1_000_000))
    samples, labels = spike_patterns(40, n_classes=2, n_channels=30, seed=seed)
    write_shd_h5(tmp_path / "toy_train.h5", samples, labels, np.arange(40) % 2)
    run_dir = tmp_path / "run"
    assert main(["train", "--dataset", str(tmp_path / "toy_train.h5"), "--n-hidden", "16", "--trial-ms", "100",
                    "--heterogeneous-tau", "--het-weight-norm", "--no-warmup", "--batch-size", "8", "--epochs", "1",
                    "--validation-fraction", "0", "--probe-every", "0", "--w-in-mean", "0.4", "--w-in-std", "0.2",
                    "--lift-silent", "0", "--seed", str(seed % 1000), "--out-dir", str(run_dir)]) == 0
    with np.load(run_dir / "last.npz") as f:
        ck = {k: f[k] for k in f.files}
    tau = ck["params/tau_mem"]
    shortest = tau <= np.quantile(tau, 0.25)
    ck["params/W_in"][:, shortest] = -1.0
    ck["params/W_rec"][:, shortest] = -1.0
    np.savez(run_dir / "last.npz", **ck)
    capsys.readouterr()

    sb = _load("silent_by_tau")
    assert sb.main([str(run_dir), "--samples", "20"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\s+([\d.]+)-\s*([\d.]+)\s+([\d.]+)%\s+([\d.]+)%", out, re.M)
    assert len(rows) == 4
    assert float(rows[0][2]) == 100.0  # the silenced quartile
    assert "silent now" in out and "mean input weight: silent -1.00e+00" in out

    # all input weights scaled by 0: no input, so no spike in any quartile
    assert sb.main([str(run_dir), "--samples", "20", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    scaled = re.search(r"^\s+x 0\s+(.*)$", out, re.M).group(1)
    assert re.findall(r"([\d.]+) Hz\s+(\d+)%", scaled) == [("0.0", "100")] * 4
    assert re.search(r"^\s+- 1 x mean\s+", out, re.M)


def test_quartile_table_counts_per_quartile():
    sb = _load("silent_by_tau")
    rng = np.random.default_rng()
    tau = rng.permutation(np.arange(1.0, 9.0))
    now = np.where(tau <= 2.0, 0, rng.integers(1, 50, 8))
    init = rng.integers(1, 50, 8)
    rows = sb.quartile_table(tau, now, init, n_samples=10, trial_s=0.5)
    assert [r[2] for r in rows] == [1.0, 0.0, 0.0, 0.0]
    assert [r[3] for r in rows] == [0.0] * 4
    assert rows[3][4] == np.mean(now[tau > 6.0]) / 10 / 0.5
