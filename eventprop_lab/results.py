"""Run folders read back into one table: one row per run, grouped by configuration and dataset
(mean ± sd over seeds and folds), printed as markdown and written as CSV.

`eventprop-lab results SWEEP_DIR` and benchmarks/stability_sweep.py both build their tables
here; they differ only in the columns they show. A folder cut short (a killed run, a torn last
line in metrics.jsonl) is read as far as it goes."""
import csv
import io
import json
import math
import statistics
from pathlib import Path

TEST_PREFIX = "test (last weights):"  # the line `eventprop-lab train` prints at its end


def dataset_tag(dataset):
    name = Path(str(dataset)).name
    for suffix in (".h5", ".hdf5"):
        if name.endswith(suffix):
            name = name[:-len(suffix)]
    return name.replace("_train", "").replace(":", "-") or "data"


def _float(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def read_epochs(run_dir):
    """Epoch records from metrics.jsonl (torn or odd lines skipped), else from epochs.csv."""
    run_dir = Path(run_dir)
    records, events = [], []
    path = run_dir / "metrics.jsonl"
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(r, dict):
                continue
            if r.get("kind") == "epoch":
                records.append(r)
            elif r.get("kind") == "event":
                events.append(r)
    elif (run_dir / "epochs.csv").exists():
        with open(run_dir / "epochs.csv", newline="") as f:
            records = [{k: _float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    # a resumed run repeats epochs: keep the last record of each
    by_epoch = {}
    for r in records:
        by_epoch[int(_float(r.get("epoch", len(by_epoch) + 1)))] = r
    return [by_epoch[k] for k in sorted(by_epoch)], events


def _has_nan(epochs, events, stderr):
    for r in epochs:
        for k in ("train_loss", "validation_loss", "train_rate_hz"):
            if k in r and not math.isfinite(_float(r[k])):
                return True
    for e in events:
        if "nan" in json.dumps(e).lower() or "non-finite" in json.dumps(e).lower():
            return True
    return "FloatingPointError" in stderr or "is NaN" in stderr


def _read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _read_text(path):
    path = Path(path)
    return path.read_text(errors="replace") if path.exists() else ""


def summarise_run(run_dir):
    """One row of numbers for a run folder (written by `train`, a sweep cell or stability_sweep)."""
    run_dir = Path(run_dir)
    cell = _read_json(run_dir / "sweep_cell.json")
    result = _read_json(run_dir / "result.json")
    summary = _read_json(run_dir / "summary.json")
    stdout, stderr = _read_text(run_dir / "stdout.log"), _read_text(run_dir / "stderr.log")
    epochs, events = read_epochs(run_dir)
    name_parts = run_dir.name.split("__")
    rate = [_float(r.get("train_rate_hz")) for r in epochs]
    silent = [_float(r.get("train_silent_fraction")) for r in epochs]
    val = [_float(r.get("validation_accuracy")) for r in epochs]
    test = math.nan
    for line in stdout.splitlines():
        if line.startswith(TEST_PREFIX):
            test = _float(line.rsplit(" ", 1)[-1])
    if not math.isfinite(test):
        test = _float(summary.get("test_accuracy_last"))
    wall = _float(result.get("wall_s", summary.get("wall_s")))
    if not math.isfinite(wall) and epochs:  # a cut-short run: the epochs' own times
        wall = _float(epochs[-1].get("wall_s"))  # cumulative, where the run records it
        if not math.isfinite(wall):
            wall = sum(_float(r.get("epoch_seconds")) for r in epochs)
    at = lambda xs, i: xs[i] if -len(xs) <= i < len(xs) else math.nan  # noqa: E731
    finite = lambda xs: [x for x in xs if math.isfinite(x)]  # noqa: E731
    row = {
        "config": cell.get("config", name_parts[0]),
        "dataset": dataset_tag(cell["dataset"]) if "dataset" in cell else (name_parts[1] if len(name_parts) > 1 else ""),
        "seed": cell.get("seed", name_parts[-1].lstrip("s") if len(name_parts) > 2 else ""),
        "fold": cell.get("fold", ""),
        "epochs": len(epochs),
        "best_val_acc": max(finite(val), default=math.nan),
        "best_epoch": summary.get("best_epoch") or "",
        "test_at_best": _float(summary.get("test_accuracy_at_best")),
        "test_acc": test,
        "final_train_acc": _float(epochs[-1].get("train_accuracy")) if epochs else math.nan,
        "rate_e1": at(rate, 0), "rate_e5": at(rate, 4), "rate_last": at(rate, -1),
        "rate_max": max(finite(rate), default=math.nan),
        "silent_last": at(silent, -1), "silent_max": max(finite(silent), default=math.nan),
        "nan": _has_nan(epochs, events, stderr),
        "returncode": result.get("returncode", ""),
        "finished": bool(summary),  # summary.json is written last, also by a run that diverged
        "wall_s": wall,
        "run_dir": str(run_dir),
    }
    for key, value in cell.get("varied", {}).items():  # the options a sweep varies, as columns
        row.setdefault(key, value)
    return row


ROW_KEYS = ("config", "dataset", "seed", "fold", "epochs", "best_val_acc", "best_epoch", "test_at_best", "test_acc",
            "final_train_acc", "rate_e1", "rate_e5", "rate_last", "rate_max", "silent_last", "silent_max", "nan",
            "returncode", "finished", "wall_s", "run_dir")


def find_runs(out):
    return sorted(p.parent for p in Path(out).glob("*/sweep_cell.json")) or \
        sorted(p.parent for p in Path(out).glob("*/metrics.jsonl"))


# ---- tables --------------------------------------------------------------------------------
def _mean(xs):
    xs = [x for x in xs if isinstance(x, (int, float)) and math.isfinite(x)]
    return statistics.fmean(xs) if xs else math.nan


def _sd(xs):
    xs = [x for x in xs if isinstance(x, (int, float)) and math.isfinite(x)]
    return statistics.stdev(xs) if len(xs) > 1 else math.nan


AVERAGED = ("best_val_acc", "test_at_best", "test_acc", "final_train_acc", "rate_e1", "rate_e5", "rate_last",
            "silent_last", "wall_s")


def aggregate(rows):
    """One row per (config, dataset): means and sds over its runs (seeds, folds)."""
    groups = {}
    for r in rows:
        groups.setdefault((r["config"], r["dataset"]), []).append(r)
    out = []
    for (config, dataset), rs in groups.items():
        g = {"config": config, "dataset": dataset, "runs": len(rs), "epochs": _mean([r["epochs"] for r in rs])}
        for k in AVERAGED:
            g[k] = _mean([r[k] for r in rs])
            g[k + "_sd"] = _sd([r[k] for r in rs])
        g["rate_max"] = max([r["rate_max"] for r in rs if math.isfinite(r["rate_max"])], default=math.nan)
        g["silent_max"] = max([r["silent_max"] for r in rs if math.isfinite(r["silent_max"])], default=math.nan)
        g["nan"] = sum(bool(r["nan"]) for r in rs)
        g["failed"] = sum(r["returncode"] not in (0, "") for r in rs)
        g["unfinished"] = sum(not r.get("finished", True) for r in rs)
        for key, value in rs[0].items():  # a sweep's varied options: the same within a group
            if key not in ROW_KEYS and key not in g:
                g[key] = value
        out.append(g)
    return out


def _fmt(x, kind):
    if kind == "int":
        return str(x)
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return "–"
    return {"acc": f"{x:.3f}", "hz": f"{x:.1f}", "pct": f"{x:.0%}", "s": f"{x:.0f}", "n": f"{x:.0f}"}[kind]


def _pm(g, k, kind):
    s = _fmt(g[k], kind)
    sd = g.get(k + "_sd", math.nan)
    return s + (f" ± {_fmt(sd, kind)}" if isinstance(sd, float) and math.isfinite(sd) else "")


def _nan_cell(g):
    return f"yes ({g['nan']}/{g['runs']})" if g["nan"] else "no"


# (header, key, kind, with ± sd); kind "nan" is the NaN column
STABILITY_COLUMNS = [
    ("config", "config", "text", False), ("dataset", "dataset", "text", False), ("runs", "runs", "int", False),
    ("epochs", "epochs", "n", False), ("best val acc", "best_val_acc", "acc", True),
    ("test acc", "test_acc", "acc", True), ("final train acc", "final_train_acc", "acc", True),
    ("Hz e1", "rate_e1", "hz", False), ("Hz e5", "rate_e5", "hz", False), ("Hz last", "rate_last", "hz", True),
    ("Hz max", "rate_max", "hz", False), ("silent last", "silent_last", "pct", False),
    ("silent max", "silent_max", "pct", False), ("NaN", "nan", "nan", False), ("wall s", "wall_s", "s", False),
]
SWEEP_COLUMNS = [
    ("config", "config", "text", False), ("dataset", "dataset", "text", False), ("runs", "runs", "int", False),
    ("epochs", "epochs", "n", False), ("best val acc", "best_val_acc", "acc", True),
    ("test at best val", "test_at_best", "acc", True), ("test (last)", "test_acc", "acc", True),
    ("Hz last", "rate_last", "hz", True), ("silent last", "silent_last", "pct", False),
    ("NaN", "nan", "nan", False), ("unfinished", "unfinished", "int", False), ("wall s", "wall_s", "s", True),
]


def markdown(groups, columns=STABILITY_COLUMNS):
    lines = ["| " + " | ".join(c[0] for c in columns) + " |", "|" + "---|" * len(columns)]
    for g in groups:
        cells = []
        for _, key, kind, pm in columns:
            if kind == "text":
                cells.append(str(g[key]))
            elif kind == "nan":
                cells.append(_nan_cell(g))
            else:
                cells.append(_pm(g, key, kind) if pm else _fmt(g[key], kind))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path, rows):
    if not rows:
        return
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    Path(path).write_text(buf.getvalue())


def summarise(out, columns=STABILITY_COLUMNS, print_=print):
    """Reads every run under `out`, writes runs.csv, summary.csv and summary.md there, prints the
    table; returns the groups (empty when no run was found)."""
    rows = [summarise_run(d) for d in find_runs(out)]
    if not rows:
        print_(f"no runs found under {out}")
        return []
    groups = aggregate(rows)
    md = markdown(groups, columns)
    write_csv(Path(out) / "runs.csv", rows)
    write_csv(Path(out) / "summary.csv", groups)
    Path(out, "summary.md").write_text(md)
    print_(md)
    print_(f"(per run: {Path(out) / 'runs.csv'}; table: {Path(out) / 'summary.csv'}, {Path(out) / 'summary.md'})")
    return groups
