"""Malformed input raises ValueError with a message that names the problem."""
import numpy as np
import pytest

import kernels
from eventprop_lab.losses import get_loss

N_IN, N_HID, N_OUT = 6, 5, 3
DT, N_STEPS = 1.0, 20


def good_params(recurrent=True, dtype=np.float64):
    rng = np.random.default_rng(0)
    return kernels.Params(
        W_in=rng.normal(0.5, 0.2, (N_IN, N_HID)),
        W_rec=rng.normal(0.0, 0.1, (N_HID, N_HID)) if recurrent else None,
        W_out=rng.normal(0.2, 0.1, (N_HID, N_OUT)),
        tau_mem=np.full(N_HID, 20.0), tau_syn=np.full(N_HID, 5.0),
        tau_mem_out=np.full(N_OUT, 20.0), tau_syn_out=np.full(N_OUT, 5.0),
    ).astype(dtype)


GOOD_SAMPLE = (np.array([0.0, 1.5, 1.5, 7.25]), np.array([0, 3, 3, 5]))


def good_batch(n_samples=3):
    return kernels.make_batch([GOOD_SAMPLE] * n_samples, N_IN, DT, N_STEPS)


def forward(params, batch=None, **kw):
    return kernels.get_engine("numba").forward(params, good_batch() if batch is None else batch, **kw)


# ----------------------------------------------------------------------------- make_batch: samples

BAD_SAMPLES = {
    "channel too large": ((np.array([1.0, 2.0]), np.array([0, N_IN])), rf"channel id {N_IN} out of range \[0, {N_IN}\)"),
    "channel far too large": ((np.array([1.0]), np.array([10**6])), r"channel id 1000000 out of range"),
    "negative channel": ((np.array([1.0, 2.0]), np.array([-1, 2])), r"channel id -1 out of range"),
    "negative time": ((np.array([-0.5, 2.0]), np.array([0, 1])), r"negative time"),
    "NaN time": ((np.array([1.0, np.nan]), np.array([0, 1])), r"NaN or infinity"),
    "inf time": ((np.array([1.0, np.inf]), np.array([0, 1])), r"NaN or infinity"),
    "-inf time": ((np.array([-np.inf, 1.0]), np.array([0, 1])), r"NaN or infinity"),
    "unsorted": ((np.array([3.0, 1.0, 2.0]), np.array([0, 1, 2])), r"not sorted"),
    "unsorted within a step": ((np.array([1.5, 1.2]), np.array([0, 1])), r"not sorted"),
    "more times than channels": ((np.array([1.0, 2.0, 3.0]), np.array([0, 1])), r"equal length"),
    "more channels than times": ((np.array([1.0]), np.array([0, 1])), r"equal length"),
    "2-d times": ((np.array([[1.0, 2.0]]), np.array([0, 1])), r"1-d"),
    "2-d both": ((np.array([[1.0], [2.0]]), np.array([[0], [1]])), r"1-d"),
    "scalar times": ((1.0, 0), r"1-d"),
    "float channels": ((np.array([1.0, 2.0]), np.array([0.0, 1.0])), r"channel ids must be integers"),
    "bool channels": ((np.array([1.0, 2.0]), np.array([True, False])), r"channel ids must be integers"),
    "string times": ((np.array(["1.0", "2.0"]), np.array([0, 1])), r"times must be real numbers"),
    "object times": (([1.0, None], [0, 1]), r"times must be real numbers"),
    "not a pair: triple": ((np.array([1.0]), np.array([0]), np.array([0])), r"expected a pair"),
    "not a pair: number": (5, r"expected a pair"),
    "not a pair: None": (None, r"expected a pair"),
}


@pytest.mark.parametrize("sample, match", BAD_SAMPLES.values(), ids=BAD_SAMPLES.keys())
def test_bad_sample_raises_and_names_it(sample, match):
    with pytest.raises(ValueError, match=match):
        kernels.make_batch([sample], N_IN, DT, N_STEPS)
    # the message names the offending sample of a batch
    with pytest.raises(ValueError, match=r"sample 2\b.*" + match):
        kernels.make_batch([GOOD_SAMPLE, GOOD_SAMPLE, sample, GOOD_SAMPLE], N_IN, DT, N_STEPS)


def test_complex_times_raise():
    with pytest.raises(ValueError, match=r"times must be"):
        kernels.make_batch([(np.array([1.0 + 2.0j]), np.array([0]))], N_IN, DT, N_STEPS)


# --------------------------------------------------------------------------- make_batch: the grid

@pytest.mark.parametrize("dt", [0.0, -1.0, np.nan, np.inf, -np.inf])
def test_bad_dt_raises(dt):
    with pytest.raises(ValueError, match=r"dt must be a positive"):
        kernels.make_batch([GOOD_SAMPLE], N_IN, dt, N_STEPS)


@pytest.mark.parametrize("n_steps", [0, -3, 2.5, 1e-3, "10"])
def test_bad_n_steps_raises(n_steps):
    with pytest.raises(ValueError, match=r"n_steps must be a positive integer"):
        kernels.make_batch([GOOD_SAMPLE], N_IN, DT, n_steps)


@pytest.mark.parametrize("n_steps", [np.nan, np.inf], ids=["nan", "inf"])
def test_non_finite_n_steps_raises_naming_it(n_steps):
    with pytest.raises(ValueError, match=r"n_steps must be a positive integer"):
        kernels.make_batch([GOOD_SAMPLE], N_IN, DT, n_steps)


def test_integral_float_n_steps_is_accepted():
    batch = kernels.make_batch([GOOD_SAMPLE], N_IN, DT, 20.0)
    assert batch.n_steps == 20 and isinstance(batch.n_steps, int)


# ------------------------------------------------------------------------------- empty samples

@pytest.mark.parametrize("empty", [
    ([], []),
    (np.zeros(0), np.zeros(0)),  # float "channels" of length 0 are fine
    (np.zeros(0), np.zeros(0, np.int64)),
    (np.array([float(N_STEPS * DT)]), np.array([2])),  # all events cropped at the trial end
], ids=["lists", "float arrays", "typed arrays", "all cropped"])
def test_empty_sample_is_fine(empty):
    batch = kernels.make_batch([GOOD_SAMPLE, empty, GOOD_SAMPLE], N_IN, DT, N_STEPS)
    assert batch.ptr[2] == batch.ptr[1]
    rec = forward(good_params(), batch, spiking_readout=True, record_readout_current=True,
                  record_state=True)
    assert rec.n_spikes[1] == 0 and not rec.counts[1].any()
    assert not rec.trace_v[1].any() and not rec.state_v[1].any()
    assert (rec.first_step[1] == -1).all()
    np.testing.assert_array_equal(rec.trace_v[0], rec.trace_v[2])


def test_batch_of_only_empty_samples_is_fine():
    batch = kernels.make_batch([([], []), ([], [])], N_IN, DT, N_STEPS)
    rec = forward(good_params(), batch)
    assert rec.n_spikes.tolist() == [0, 0]
    assert not rec.trace_v.any()


# ------------------------------------------------------------------------------------ parameters

def test_batch_channels_must_match_W_in_rows():
    batch = kernels.make_batch([GOOD_SAMPLE], N_IN + 1, DT, N_STEPS)
    with pytest.raises(ValueError, match=rf"{N_IN + 1} input channels but W_in expects {N_IN}"):
        forward(good_params(), batch)


def _with(params, name, value):
    return params._replace(**{name: value})


def _poisoned(params, name, bad):
    x = np.array(getattr(params, name), copy=True)
    x.flat[x.size // 2] = bad
    return _with(params, name, x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", ["W_in", "W_rec", "W_out"])
def test_non_finite_weight_raises(name, bad):
    with pytest.raises(ValueError, match=rf"parameter {name} contains NaN or infinity"):
        forward(_poisoned(good_params(), name, bad))


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("name", ["tau_mem", "tau_syn", "tau_mem_out", "tau_syn_out"])
def test_non_finite_tau_raises(name, bad):
    with pytest.raises(ValueError, match=rf"\b{name}\b.*(NaN|finite)"):
        forward(_poisoned(good_params(), name, bad))


@pytest.mark.parametrize("bad", [0.0, -5.0, -np.inf], ids=["zero", "negative", "-inf"])
@pytest.mark.parametrize("name", ["tau_mem", "tau_syn", "tau_mem_out", "tau_syn_out"])
def test_non_positive_tau_raises(name, bad):
    with pytest.raises(ValueError, match=rf"\b{name}\b must be positive"):
        forward(_poisoned(good_params(), name, bad))


BAD_SHAPES = {
    "W_out rows": ("W_out", np.ones((N_HID + 1, N_OUT))),
    "W_out 1-d": ("W_out", np.ones(N_HID)),
    "W_out 3-d": ("W_out", np.ones((N_HID, N_OUT, 1))),
    "W_rec not square": ("W_rec", np.zeros((N_HID, N_HID + 1))),
    "W_rec too big": ("W_rec", np.zeros((N_HID + 1, N_HID + 1))),
    "W_rec 1-d": ("W_rec", np.zeros(N_HID)),
    "tau_mem short": ("tau_mem", np.full(N_HID - 1, 20.0)),
    "tau_syn long": ("tau_syn", np.full(N_HID + 1, 5.0)),
    "tau_syn 2-d": ("tau_syn", np.full((N_HID, 1), 5.0)),
    "tau_mem scalar": ("tau_mem", np.float64(20.0)),
    "tau_mem_out hidden-sized": ("tau_mem_out", np.full(N_HID, 20.0)),
    "tau_syn_out short": ("tau_syn_out", np.full(N_OUT - 1, 5.0)),
}


@pytest.mark.parametrize("name, value", BAD_SHAPES.values(), ids=BAD_SHAPES.keys())
def test_wrong_shape_raises(name, value):
    with pytest.raises(ValueError, match=rf"\b{name}\b must have shape"):
        forward(_with(good_params(), name, value))


def test_W_in_not_2d_raises_naming_it():
    with pytest.raises(ValueError, match=r"W_in"):
        forward(_with(good_params(), "W_in", np.ones(N_IN)))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float16])
def test_params_must_be_float32_or_float64(dtype):
    with pytest.raises(ValueError, match=r"float32 or float64"):
        forward(good_params().astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_params_are_accepted(dtype):
    rec = forward(good_params(dtype=dtype))
    assert rec.trace_v.dtype == dtype


# ------------------------------------------------------------------------------------- backward

def _record_and_source(**kw):
    params = good_params()
    batch = good_batch()
    rec = forward(params, batch, **kw)
    source = get_loss("sum").evaluate(rec, np.array([0, 1, 2]), params).source
    return params, batch, rec, source


def test_train_tau_needs_recorded_state():
    params, batch, rec, source = _record_and_source(record_state=False)
    engine = kernels.get_engine("numba")
    with pytest.raises(ValueError, match=r"train_tau.*record_state=True"):
        engine.backward(params, batch, rec, source, train_tau=True)
    # the same with the state recorded works
    params, batch, rec, source = _record_and_source(record_state=True)
    grads, _ = engine.backward(params, batch, rec, source, train_tau=True)
    assert grads.tau_mem.shape == (N_HID,)


@pytest.mark.parametrize("probe", [[3], [0, 7], [-1], 3], ids=["past end", "one bad", "negative", "scalar"])
def test_probe_samples_outside_the_batch_raise(probe):
    params, batch, rec, source = _record_and_source()
    with pytest.raises(ValueError, match=r"outside the batch of 3"):
        kernels.get_engine("numba").backward(params, batch, rec, source, probe_samples=probe)


def test_probe_samples_inside_the_batch_are_fine():
    params, batch, rec, source = _record_and_source()
    _, probe = kernels.get_engine("numba").backward(params, batch, rec, source, probe_samples=[2, 0])
    assert probe.samples.tolist() == [2, 0]


# --------------------------------------------------------------------------------- losses, names

BAD_LABELS = {
    "too large": (np.array([0, 1, N_OUT]), rf"labels must lie in \[0, {N_OUT}\)"),
    "negative": (np.array([0, -1, 2]), rf"labels must lie in \[0, {N_OUT}\)"),
    "too few": (np.array([0, 1]), r"labels must be 3 integers"),
    "too many": (np.array([0, 1, 2, 0]), r"labels must be 3 integers"),
    "2-d": (np.array([[0], [1], [2]]), r"labels must be 3 integers"),
    "scalar": (np.array(1), r"labels must be 3 integers"),
    "floats": (np.array([0.0, 1.0, 2.0]), r"labels must be 3 integers"),
}


@pytest.mark.parametrize("loss_name", ["sum", "max", "first_spike"])
@pytest.mark.parametrize("labels, match", BAD_LABELS.values(), ids=BAD_LABELS.keys())
def test_bad_labels_raise(labels, match, loss_name):
    loss = get_loss(loss_name)
    params = good_params()
    rec = forward(params, spiking_readout=loss.spiking_readout, record_readout_current=True)
    with pytest.raises(ValueError, match=match):
        loss.evaluate(rec, labels, params)


def test_unknown_loss_raises():
    with pytest.raises(ValueError, match=r"unknown loss 'nope'.*sum"):
        get_loss("nope")


def test_unknown_engine_raises():
    with pytest.raises(ValueError, match=r"unknown engine backend 'nope'.*numba"):
        kernels.get_engine("nope")
