"""Typed observation records: made by keyword only, the same metrics file as the dicts before them."""
import json

import numpy as np
import pytest

from eventprop_lab.observe import (BatchRecord, EpochRecord, EventRecord, MetricsWriter, ProbeRecord, from_json,
                                   read_metrics, read_records, to_json)
from test_run import make_run

# Lines of a metrics file written before the records (a session with a change of loss, an undo and
# a branch; a run resumed without a validation set; the first version's batch line, without
# loss_name and the gradient's norm), as the dicts were written: {"kind": kind, **data}. The start
# event's config is cut short; the non_finite and stopped events are in the order of their old emit().
OLD = r"""{"kind": "event", "epoch": 0, "what": "start", "config": {"run": {"dataset": "toy", "epochs": 20, "max_train_samples": null}, "augment": {"blend_probs": [0.5, 0.5], "shift": false}}}
{"kind": "batch", "epoch": 1, "batch": 1, "n_batches": 6, "step": 1, "lr": 0.01, "samples_per_s": 0.851099606030957, "loss_name": "sum_exp", "loss": 1.3257014432740553, "accuracy": 0.5833333333333334, "rate_hz": 30.833333333333332, "silent_fraction": 0.0, "grad_norm": 0.10709673405610888, "grad_scale": 1.0, "weight_percentiles": {"W_in": [0.08133605159819127, 0.26681334525346756, 0.40116503834724426, 0.5411172062158585, 0.7435972124338146], "W_rec": [-0.03125794790685177, -0.010578306391835213, 0.0036734354216605425, 0.01923822332173586, 0.04111264459788799], "W_out": [-0.47616445273160934, -0.15831294283270836, 0.05427629500627518, 0.2989117503166199, 0.49813841283321375]}}
{"kind": "batch", "epoch": 1, "batch": 2, "n_batches": 6, "step": 2, "lr": 0.01, "samples_per_s": 9178.023830477814, "loss_name": "sum_exp", "loss": 1.3420256636104686, "accuracy": 0.4166666666666667, "rate_hz": 31.145833333333332, "silent_fraction": 0.0, "grad_norm": 0.06482687605384808, "grad_scale": 1.0}
{"kind": "event", "what": "loss", "step": 4, "epoch": 1, "old": "sum_exp", "new": "sum", "label": "loss \u2192 sum"}
{"kind": "epoch", "epoch": 1, "step": 6, "train_loss": 1.3433319679922076, "train_accuracy": 0.3611111111111111, "train_samples": 72, "skipped_batches": 0, "train_rate_hz": 31.527777777777775, "train_silent_fraction": 0.0, "lr": 0.01, "validation_loss": 1.2847732079221088, "validation_accuracy": 0.375, "validation_rate_hz": 33.28125, "validation_silent_fraction": 0.0, "validation_seconds": 0.0005238580051809549, "train_seconds": 14.105291387008037, "epoch_seconds": 14.10588735100464, "wall_s": 14.10588735100464}
{"kind": "event", "what": "undo", "step": 7, "epoch": 2, "to_step": 4, "why": "loss \u2192 sum", "message": "undo: the weights from before loss \u2192 sum", "label": "undo \u2192 step 4"}
{"kind": "event", "what": "branch", "step": 7, "epoch": 2, "changes": {"loss": "sum"}, "label": "branch 1: loss \u2192 sum"}
{"kind": "event", "what": "error", "step": 7, "epoch": 2, "message": "FloatingPointError: the loss is NaN"}
{"kind": "event", "epoch": 1, "step": 4, "what": "resume", "checkpoint": "out/run/last.npz", "lr": 0.01, "wall_s": 0.5342902959964704, "label": "resumed, lr 1e-2"}
{"kind": "epoch", "epoch": 2, "step": 8, "train_loss": 1.356866326362928, "train_accuracy": 0.2734375, "train_samples": 128, "skipped_batches": 0, "train_rate_hz": 30.104166666666664, "train_silent_fraction": 0.0, "lr": 0.01, "train_seconds": 0.009283082996262237, "epoch_seconds": 0.009390152001287788, "wall_s": 0.5436804479977582}
{"kind": "event", "what": "non_finite", "epoch": 1, "batch": 3, "n_batches": 4, "step": 2, "quantity": "gradient", "names": ["W_in"], "lr_old": 0.01, "lr_new": 0.005, "skipped_in_epoch": 1, "message": "non-finite gradient (W_in) at epoch 1 batch 3: batch skipped, lr 1e-2 \u2192 5e-3", "label": "non-finite gradient: lr \u2192 5e-3"}
{"kind": "event", "epoch": 3, "batch": 1, "step": 8, "what": "stopped", "message": "training stopped at epoch 3 batch 1: the weights themselves are NaN"}
{"kind": "batch", "epoch": 1, "batch": 1, "n_batches": 4, "step": 1, "lr": 0.001, "samples_per_s": 55.5, "loss": 1.38, "accuracy": 0.25, "rate_hz": 30.0, "silent_fraction": 0.0}
"""


def batch(**changes):
    fields = dict(epoch=1, batch=2, n_batches=6, step=2, lr=0.01, samples_per_s=9178.0, loss_name="sum_exp", loss=1.34,
                  accuracy=0.42, rate_hz=31.1, silent_fraction=0.0, grad_norm=0.065, grad_scale=1.0)
    return BatchRecord(**{**fields, **changes})


def epoch(**changes):
    fields = dict(epoch=2, step=8, train_loss=1.36, train_accuracy=0.27, train_samples=128, skipped_batches=0,
                  train_rate_hz=30.1, train_silent_fraction=0.0, lr=0.01, train_seconds=0.0093, epoch_seconds=0.0094,
                  wall_s=0.54)
    return EpochRecord(**{**fields, **changes})


def probe(**changes):
    rng = np.random.default_rng(0)
    fields = dict(input_times=rng.uniform(0, 100, 30), input_channels=rng.integers(0, 40, 30),
                  hidden_times=np.array([1.5, 7.25]), hidden_ids=np.array([3, 0]), transported=np.array([0.5, -1.0]),
                  readout_v=rng.normal(size=(100, 4)).astype(np.float32), lambda_v_out=rng.normal(size=(100, 4)),
                  lambda_i_out=rng.normal(size=(100, 4)), lambda_v=rng.normal(size=(100, 8)),
                  lambda_i=rng.normal(size=(100, 8)), dt=1.0)
    return ProbeRecord(**{**fields, **changes})


def test_a_misspelt_or_unknown_field_raises():
    with pytest.raises(TypeError, match="wieght_percentiles"):
        batch(wieght_percentiles={})
    with pytest.raises(TypeError, match="validaton_loss"):
        epoch(validaton_loss=1.0)
    with pytest.raises(TypeError, match="lable"):
        probe(lable=2)
    with pytest.raises(TypeError, match="lable"):
        EventRecord(what="branch", lable="branch 1")
    with pytest.raises(TypeError, match="label"):  # the payload cannot hide a field, nor stand for one
        EventRecord(what="branch", extra={"label": "branch 1"})
    with pytest.raises(TypeError, match="loss_name"):  # and none may be left out
        BatchRecord(epoch=1, batch=1, n_batches=1, step=1, lr=0.01, samples_per_s=1.0, loss=1.0, accuracy=0.5,
                    rate_hz=1.0, silent_fraction=0.0, grad_norm=1.0, grad_scale=1.0)
    with pytest.raises(TypeError):
        BatchRecord(1, 1, 6, 1, 0.01, 1.0, "sum", 1.0, 0.5, 1.0, 0.0, 1.0, 1.0)  # by keyword only
    with pytest.raises(AttributeError):
        batch().loss = 0.0  # frozen: readers share them


@pytest.mark.parametrize("record", [
    batch(), batch(weight_percentiles={"W_in": [0.1, 0.2, 0.3, 0.4, 0.5], "W_out": [-1.0, -0.5, 0.0, 0.5, 1.0]}),
    epoch(), epoch(validation_loss=1.2, validation_accuracy=0.4, validation_rate_hz=33.3,
                   validation_silent_fraction=0.0, validation_seconds=0.001),
    EventRecord(what="start", epoch=0, extra={"config": {"run": {"epochs": 3}, "augment": {"blend_probs": [0.5, 0.5]}}}),
    EventRecord(what="branch", step=7, epoch=2, label="branch 1: loss → sum", extra={"changes": {"loss": "sum"}}),
    EventRecord(what="stopped", epoch=3, batch=1, step=8, message="training stopped"),
], ids=["batch", "batch-probed", "epoch", "epoch-validated", "start", "branch", "stopped"])
def test_a_record_comes_back_from_its_json(record):
    line = to_json(record)
    assert json.loads(line)["kind"] == record.kind
    back = from_json(line)
    assert type(back) is type(record) and back == record and to_json(back) == line


def test_a_probe_comes_back_from_its_json():
    record = probe(label=2, epoch=1, step=5, w_out=np.ones((8, 4)),
                   weight_histograms={"W_in": {"counts": np.array([1, 2]), "edges": np.array([0.0, 0.5, 1.0]),
                                               "percentiles": np.array([0.1, 0.2, 0.3, 0.4, 0.5])}})
    back = from_json(to_json(record))
    assert type(back) is ProbeRecord and (back.label, back.epoch, back.step, back.dt) == (2, 1, 5, 1.0)
    for name in ("input_times", "input_channels", "hidden_times", "hidden_ids", "transported", "readout_v",
                 "lambda_v_out", "lambda_i_out", "lambda_v", "lambda_i", "w_out"):
        assert isinstance(getattr(back, name), np.ndarray) and np.array_equal(getattr(back, name), getattr(record, name))
    for key, value in record.weight_histograms["W_in"].items():
        assert np.array_equal(back.weight_histograms["W_in"][key], value)
    assert from_json(to_json(probe())).weight_histograms is None


def test_an_old_metrics_file_reads_as_the_same_records(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(OLD + '{"kind": "batch", "epoch": 1, "bat', encoding="utf-8")  # torn by a crash
    records = read_records(path)
    lines = OLD.splitlines()
    assert [r.kind for r in records] == [json.loads(line)["kind"] for line in lines]
    for record, line in zip(records, lines):  # the same JSON as before, field for field
        assert json.loads(to_json(record)) == json.loads(line)
        if record.kind != "event":  # for batches and epochs byte for byte (events had no one order)
            assert to_json(record) == line
    assert records == [from_json(d) for d in read_metrics(path)]

    start, probed, plain, change, validated, undo, branch, error, resume, unvalidated, skipped, stopped, old = records
    assert start == EventRecord(what="start", epoch=0, extra={"config": {
        "run": {"dataset": "toy", "epochs": 20, "max_train_samples": None},
        "augment": {"blend_probs": [0.5, 0.5], "shift": False}}})
    assert plain == batch(samples_per_s=9178.023830477814, loss=1.3420256636104686, accuracy=0.4166666666666667,
                          rate_hz=31.145833333333332, grad_norm=0.06482687605384808)
    assert probed.weight_percentiles["W_rec"][2] == 0.0036734354216605425 and plain.weight_percentiles is None
    assert change == EventRecord(what="loss", step=4, epoch=1, label="loss → sum",
                                 extra={"old": "sum_exp", "new": "sum"})
    assert validated.validation_accuracy == 0.375 and validated.wall_s == 14.10588735100464
    assert unvalidated == epoch(train_loss=1.356866326362928, train_accuracy=0.2734375, train_rate_hz=30.104166666666664,
                                train_seconds=0.009283082996262237, epoch_seconds=0.009390152001287788,
                                wall_s=0.5436804479977582)
    assert unvalidated.validation_loss is None and unvalidated.validation_seconds is None
    assert (undo.what, undo.step, undo.label, undo.extra) == ("undo", 7, "undo → step 4",
                                                              {"to_step": 4, "why": "loss → sum"})
    assert undo.message == "undo: the weights from before loss → sum"
    assert branch == EventRecord(what="branch", step=7, epoch=2, label="branch 1: loss → sum",
                                 extra={"changes": {"loss": "sum"}})
    assert error.message.startswith("FloatingPointError") and error.label is None and error.extra == {}
    assert resume.extra == {"checkpoint": "out/run/last.npz", "lr": 0.01, "wall_s": 0.5342902959964704}
    assert (skipped.epoch, skipped.batch, skipped.step, skipped.extra["n_batches"], skipped.extra["names"]) == \
        (1, 3, 2, 4, ["W_in"])
    assert (stopped.epoch, stopped.batch, stopped.step, stopped.label) == (3, 1, 8, None)
    assert old.loss == 1.38 and old.loss_name is None and old.grad_norm is None and old.grad_scale is None


def test_a_runs_metrics_file_reads_back_as_the_records_its_observers_saw(tmp_path):
    seen = []
    run = make_run(tmp_path, observers=[seen.append])
    run.fit(epochs=2)
    kept = [r for r in seen if r.kind != "probe"]
    assert {r.kind for r in seen} == {"event", "batch", "epoch", "probe"}
    read = read_records(tmp_path / "run" / "metrics.jsonl")
    assert [r for r in read if r.kind != "event"] == [r for r in kept if r.kind != "event"]
    # the start event's config has tuples, which JSON makes lists
    assert [json.loads(to_json(r)) for r in read] == [json.loads(to_json(r)) for r in kept]
    assert any(r.kind == "batch" and r.weight_percentiles is not None for r in read)


def test_the_writer_leaves_probes_out(tmp_path):
    writer = MetricsWriter(tmp_path / "metrics.jsonl")
    for record in (batch(), probe(), epoch()):
        writer(record)
    writer.close()
    assert [r.kind for r in read_records(tmp_path / "metrics.jsonl")] == ["batch", "epoch"]


def test_a_line_of_no_known_kind_is_refused():
    with pytest.raises(ValueError, match="'sample'"):
        from_json('{"kind": "sample", "step": 1}')
