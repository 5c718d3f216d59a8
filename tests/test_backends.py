"""Choosing an engine backend, without needing pygenn: the message where GeNN is missing, the refusal
of losses a backend cannot train, and the GeNN backend's conversions between its dense per-step
arrays and the numba backend's spike store."""
import subprocess
import sys

import numpy as np
import pytest

from eventprop_lab.network import NetworkConfig, init_params
from eventprop_lab.toy import spike_patterns
from eventprop_lab.training import Trainer, TrainingConfig, check_loss_supported
from kernels import BACKENDS, backend_available, get_engine, make_batch
from kernels.genn_backend import _dense_from_record, _record_from_dense, pygenn_status


def test_genn_is_a_backend_and_says_why_it_cannot_run():
    assert BACKENDS == ("numba", "genn") and backend_available("numba") == (True, "")
    ok, why = backend_available("genn")
    assert ok == pygenn_status()[0]
    if not ok:
        assert "pygenn" in why and "GeNN" in why
        with pytest.raises(ImportError, match="not on PyPI"):
            get_engine("genn")
        with pytest.raises(ImportError, match="pygenn"):
            Trainer(init_params(NetworkConfig(n_in=4, n_hidden=3, n_out=2), rng=0), TrainingConfig(backend="genn"))
    with pytest.raises(ValueError, match="available: numba, genn"):
        get_engine("loihi")


class FewLosses:
    name = "fake"
    supported_losses = ("sum_exp",)
    trains_tau = False


def test_a_loss_the_backend_cannot_train_is_refused_by_name():
    check_loss_supported(get_engine("numba"), "first_spike")  # numba trains them all
    check_loss_supported(FewLosses(), "sum_exp")
    with pytest.raises(ValueError, match="fake backend cannot train the loss 'max'; it supports sum_exp"):
        check_loss_supported(FewLosses(), "max")
    params = init_params(NetworkConfig(n_in=4, n_hidden=3, n_out=2), rng=0)
    trainer = Trainer(params, TrainingConfig(loss="sum_exp"), engine=FewLosses())
    with pytest.raises(ValueError, match="cannot train the loss 'sum'"):
        trainer.set_loss("sum")
    assert trainer.config.loss == "sum_exp"  # unchanged after the refusal
    with pytest.raises(ValueError, match="does not train time constants"):
        Trainer(params, TrainingConfig(train_tau=True), engine=FewLosses())


def test_the_genn_backends_dense_arrays_hold_the_same_spikes_as_the_spike_store():
    samples, _ = spike_patterns(3, n_channels=40, duration_ms=100.0, seed=2)
    params = init_params(NetworkConfig(n_in=40, n_hidden=16, n_out=4, w_in_mean=0.4, w_in_std=0.2), rng=1)
    params = params.astype(np.float64)
    batch = make_batch(samples, 40, 1.0, 100)
    rec = get_engine("numba", in_step_order=False).forward(params, batch)  # GeNN's scheme: by neuron id in a step
    assert rec.n_spikes.min() > 5
    lag, slope = _dense_from_record(rec, 16)
    assert lag.shape == (3, 101, 16) and (lag >= 0).sum() == rec.n_spikes.sum()
    back = _record_from_dense(lag, slope, rec.mean_v, rec.trace_v, None, batch, np.dtype(np.float64))
    assert np.array_equal(back.n_spikes, rec.n_spikes) and np.array_equal(back.counts, rec.counts)
    for s in range(3):
        k = rec.n_spikes[s]
        for name in ("spike_step", "spike_id", "spike_lag", "spike_slope"):
            assert np.array_equal(getattr(back, name)[s, :k], getattr(rec, name)[s, :k]), name
    twice = rec._replace(spike_id=rec.spike_id.copy(), spike_step=rec.spike_step.copy())
    twice.spike_id[0, 1], twice.spike_step[0, 1] = twice.spike_id[0, 0], twice.spike_step[0, 0]
    with pytest.raises(ValueError, match="sample 0: a neuron spikes twice in one step"):
        _dense_from_record(twice, 16)


def test_the_cli_offers_the_backend():
    out = subprocess.run([sys.executable, "-m", "eventprop_lab.cli", "train", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "--backend" in out and "genn" in out
