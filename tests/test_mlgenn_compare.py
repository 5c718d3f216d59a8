"""The tools that set this project beside mlGeNN with the same weights: benchmarks/from_weights.py
(train or evaluate from given weights) and benchmarks/gradient_vs_mlgenn.py (gradients sample by
sample). mlGeNN itself is not needed: the probe file is written here from our own engine."""
import re

import numpy as np
import pytest

from eventprop_lab.data import write_shd_h5
from eventprop_lab.toy import spike_patterns

from bench import BENCH, load_bench as _load


@pytest.fixture
def h5(tmp_path):
    seed = int(np.random.default_rng().integers(1_000_000))
    samples, labels = spike_patterns(60, n_classes=3, n_channels=30, seed=seed)
    speakers = np.arange(60) % 3
    write_shd_h5(tmp_path / "toy_train.h5", samples[:48], labels[:48], speakers[:48])
    write_shd_h5(tmp_path / "toy_test.h5", samples[48:], labels[48:], speakers[48:])
    return tmp_path / "toy_train.h5"


def _opts(h5, out):
    return ["--dataset", str(h5), "--n-hidden", "12", "--trial-ms", "100", "--no-warmup", "--batch-size", "4",
            "--epochs", "1", "--validation-fraction", "0", "--probe-every", "0", "--w-in-mean", "0.4",
            "--w-in-std", "0.2", "--lr", "0.01", "--out-dir", str(out)]


def _losses(run_dir):
    return [float(line.split(",")[3]) for line in (run_dir / "epochs.csv").read_text().splitlines()
            if line.startswith("epoch,")]


def test_from_weights_trains_from_the_given_weights(h5, tmp_path, capsys):
    fw = _load("from_weights")
    assert fw.main(["--save-init", str(tmp_path / "w.npz")] + _opts(h5, tmp_path / "a")) == 0
    assert fw.main(["--init", str(tmp_path / "w.npz")] + _opts(h5, tmp_path / "b")) == 0
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    with np.load(tmp_path / "w.npz") as f:
        w = {k: f[k] for k in f.files}
    np.savez(tmp_path / "w2.npz", **{**w, "W_in": w["W_in"] * 0.5})
    assert fw.main(["--init", str(tmp_path / "w2.npz")] + _opts(h5, tmp_path / "c")) == 0
    assert _losses(tmp_path / "c") != _losses(tmp_path / "a")
    out = capsys.readouterr().out
    assert re.search(r"epoch +1 +test acc \d\.\d{3}", out)

    assert fw.main(["--evaluate-only", "--init", str(tmp_path / "w.npz")] + _opts(h5, tmp_path / "d")) == 0
    out = capsys.readouterr().out
    assert re.search(r"^train: accuracy \d\.\d{3}", out, re.M) and re.search(r"^test: accuracy", out, re.M)

    np.savez(tmp_path / "bad.npz", **{**w, "W_rec": np.zeros((3, 3), np.float32)})
    with pytest.raises(SystemExit):
        fw.main(["--init", str(tmp_path / "bad.npz")] + _opts(h5, tmp_path / "e"))
    assert "W_rec has shape (3, 3)" in capsys.readouterr().err


def _our_probe(h5, tmp_path, k=3, extra=(), name="probe.npz"):
    """A probe file as mlgenn_reference.py --gradients writes it, from our own engine."""
    from eventprop_lab.cli import add_config_options, configs_from_args
    from eventprop_lab.gradient import loss_and_gradients
    from eventprop_lab.run import TrainingRun
    import argparse

    fw = _load("from_weights")
    fw.main(["--save-init", str(tmp_path / "w.npz"), "--evaluate-only"] + _opts(h5, tmp_path / "p"))
    ap = argparse.ArgumentParser()
    add_config_options(ap)
    c = configs_from_args(ap.parse_args(_opts(h5, tmp_path / "q")[:-2] + list(extra)), ap)
    run = TrainingRun(c["run"], c["network"], c["training"], c["augment"])
    tr = run.trainer
    with np.load(tmp_path / "w.npz") as f:
        tr.params = tr.params._replace(**{n: f[n] for n in ("W_in", "W_rec", "W_out")})
    tau = float(tr.params.tau_mem_out[0])
    probe = {f"grad/{n}": [] for n in ("W_in", "W_rec", "W_out")}
    probe["counts"] = []
    for i in range(k):
        batch = tr.batch(run.train_set.samples(np.array([i])))
        res = loss_and_gradients(tr.engine, tr.params, batch, run.train_set.labels[i:i + 1], tr.loss,
                                 tr.regulariser)
        for n in ("W_in", "W_rec", "W_out"):
            probe[f"grad/{n}"].append(getattr(res.gradients, n) / tau)
        probe["counts"].append(np.asarray(res.record.counts).reshape(-1))
    probe = {key: np.stack(v) for key, v in probe.items()}
    probe["labels"] = run.train_set.labels[:k]
    np.savez(tmp_path / name, **probe)
    return tmp_path / name, tmp_path / "w.npz"


def _medians(out):
    line = next(line for line in out.splitlines() if line.startswith("median"))
    return [float(x) for x in line.split()[1:]]


def test_gradient_comparison_finds_our_own_gradient_equal(h5, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    probe, weights = _our_probe(h5, tmp_path)
    capsys.readouterr()
    gv = _load("gradient_vs_mlgenn")
    base = [str(probe), "--init", str(weights)] + _opts(h5, tmp_path / "r")[:-2]
    assert gv.main(base + ["--fd", "1e-6"]) == 0
    out = capsys.readouterr().out
    med = _medians(out)
    # count correlation, then (cosine, norm ratio) for W_in, W_rec, W_out
    assert med[1:] == pytest.approx([1.0] * 6, abs=1e-3)
    fd = [line.split() for line in out.split("central difference")[1].splitlines()[2:]]
    ratios = [float(r[4]) for r in fd if len(r) == 6]
    if ratios:  # a sample whose +-1e-6 step changes a spike count gives no FD
        assert np.median(ratios) == pytest.approx(1.0, rel=0.1)

    assert gv.main(base + ["--slope-as-mlgenn"]) == 0
    med = _medians(capsys.readouterr().out)
    assert med[2] != pytest.approx(1.0, abs=1e-3)  # the biased slope changes W_in's gradient
    assert med[6] == pytest.approx(1.0, abs=1e-3)  # and not the readout's


def test_gradient_comparison_of_the_regularisers_part(h5, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    c = float(np.random.default_rng().uniform(1e-6, 1e-4))
    probe0, weights = _our_probe(h5, tmp_path, extra=["--reg-strength", "0"], name="p0.npz")
    probe2, _ = _our_probe(h5, tmp_path, extra=["--reg-strength", str(2 * c)], name="p2.npz")
    capsys.readouterr()
    gv = _load("gradient_vs_mlgenn")
    base = [str(probe2), "--init", str(weights), "--subtract", str(probe0)] + _opts(h5, tmp_path / "r")[:-2]
    assert gv.main(base + ["--reg-strength", str(c)]) == 0
    med = _medians(capsys.readouterr().out)
    # the regulariser's jump, and so its part of the gradient, is linear in its strength
    for cos, ratio in zip(med[1::2], med[2::2]):
        if not np.isnan(cos):  # W_out's part is zero: the jump acts on the hidden layer
            assert cos == pytest.approx(1.0, abs=1e-3) and ratio == pytest.approx(0.5, rel=1e-3)
    assert not np.isnan(med[1])

    with pytest.raises(SystemExit):
        gv.main(base + ["--reg-strength", "0"])
    assert "give --reg-strength > 0" in capsys.readouterr().err


def test_gradient_comparison_refuses_a_probe_of_other_samples(h5, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    probe, weights = _our_probe(h5, tmp_path)
    with np.load(probe) as f:
        p = {k: f[k] for k in f.files}
    p["labels"] = (p["labels"] + 1) % 3
    np.savez(tmp_path / "other.npz", **p)
    gv = _load("gradient_vs_mlgenn")
    with pytest.raises(SystemExit):
        gv.main([str(tmp_path / "other.npz"), "--init", str(weights)] + _opts(h5, tmp_path / "r")[:-2])
    assert "labels differ" in capsys.readouterr().err


def test_late_gradient_applies_each_gradient_one_step_late():
    from eventprop_lab.optim import Adam

    fw = _load("from_weights")
    rng = np.random.default_rng()
    x0 = rng.normal(size=5).astype(np.float32)
    g1, g2 = rng.normal(size=5).astype(np.float32), rng.normal(size=5).astype(np.float32)
    late, plain = Adam(lr=0.1), Adam(lr=0.1)
    fw.late_gradient(late)
    p = {"w": x0.copy()}
    assert late.step(p, {"w": g1}) == []
    np.testing.assert_array_equal(p["w"], x0)
    late.step(p, {"w": g2})
    q = {"w": x0.copy()}
    plain.step(q, {"w": g1})
    np.testing.assert_array_equal(p["w"], q["w"])
