"""benchmarks/stability_sweep.py reads run folders robustly and builds its table."""
import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "stability_sweep.py"


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("stability_sweep", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_run(root, name, rates, silent, test=0.5, nan_event=False, torn=True):
    d = root / name
    d.mkdir(parents=True)
    lines = [json.dumps({"kind": "event", "epoch": 0, "what": "start"})]
    for i, (r, s) in enumerate(zip(rates, silent), 1):
        lines.append(json.dumps({"kind": "batch", "epoch": i, "rate_hz": r}))
        lines.append(json.dumps({"kind": "epoch", "epoch": i, "train_accuracy": 0.1 * i, "train_loss": 2.0,
                                 "validation_accuracy": 0.05 * i, "train_rate_hz": r,
                                 "train_silent_fraction": s, "wall_s": 10.0 * i, "epoch_seconds": 10.0}))
        if nan_event and i == 2:
            lines.append(json.dumps({"kind": "event", "epoch": i, "what": "non-finite loss: NaN, batch skipped"}))
    text = "\n".join(lines) + "\n"
    if torn:
        text += '{"kind": "epoch", "epo'  # a run killed mid-write
    (d / "metrics.jsonl").write_text(text)
    (d / "stdout.log").write_text(f"done\ntest (last weights): loss 1.0000, accuracy {test:.3f}\n")
    cfg, ds, seed = name.split("__")
    (d / "sweep_cell.json").write_text(json.dumps({"config": cfg, "dataset": ds, "seed": int(seed[1:])}))
    return d


def test_summarise_reads_folders_and_writes_the_table(sweep, tmp_path, capsys):
    _fake_run(tmp_path, "a__randman-shd__s1", [30, 20, 15, 14, 13, 12], [0, 0, 0.1, 0, 0, 0.05], test=0.4)
    _fake_run(tmp_path, "a__randman-shd__s2", [40, 30, 20, 15, 14, 16], [0, 0.2, 0, 0, 0, 0], test=0.6,
              nan_event=True)
    _fake_run(tmp_path, "b__randman-shd__s1", [50, 60], [0, 0.3], test=0.1)  # cut short: no e5
    assert sweep.main(["--summarise", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| a | randman-shd | 2 | 6 |" in out and "| b | randman-shd | 1 | 2 |" in out
    rows = {(r["config"], r["seed"]): r for r in
            (sweep.summarise_run(d) for d in sorted(tmp_path.glob("*__*")))}
    a1 = rows[("a", 1)]
    assert a1["rate_e1"] == 30 and a1["rate_e5"] == 13 and a1["rate_last"] == 12 and a1["rate_max"] == 30
    assert a1["silent_last"] == 0.05 and a1["silent_max"] == 0.1 and a1["test_acc"] == 0.4
    assert a1["wall_s"] == 60 and not a1["nan"] and rows[("a", 2)]["nan"]
    assert math.isnan(rows[("b", 1)]["rate_e5"])
    groups = {g["config"]: g for g in sweep.aggregate(list(rows.values()))}
    assert groups["a"]["test_acc"] == pytest.approx(0.5) and groups["a"]["nan"] == 1
    assert groups["a"]["rate_max"] == 40 and groups["b"]["silent_max"] == 0.3
    for name in ("summary.md", "summary.csv", "runs.csv"):
        assert (tmp_path / name).exists()


def test_dry_run_prints_one_train_command_per_cell(sweep, capsys):
    assert sweep.main(["--config", "x=--preset paper --init-rate-hz 14", "--config", "y=--preset paper",
                       "--seeds", "3", "--datasets", "randman-shd", "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert " train --dataset randman-shd --seed 3" in lines[0] and "--init-rate-hz 14" in lines[0]
    assert " train --dataset randman-shd --seed 3" in lines[1]
