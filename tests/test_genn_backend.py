"""The GeNN backend against the numba one: same spikes, same readout, same gradients and probes, on
identical weights and inputs. Skipped, saying why, where pygenn cannot be imported (it is built from
GeNN's source, not installed from PyPI; README, "Running on a GPU with GeNN").
GeNN computes the plain grid scheme, where the hidden spikes of a step meet only at its end, so it
is compared with numba's in_step_order=False (numba's default orders them in the step).

Tolerances: in float64 both backends compute the same scheme to rounding, so spikes are identical;
the recurrent dynamics amplify rounding differences (sums in another order) to at most 1e-9 ms in
lags on these networks, and gradients agree to 1e-8 relative (typically ~1e-15). In float32 the order of sums differs (and numba
uses fused multiply-adds), and the recurrent dynamics amplify the rounding over the trial: spike steps
and ids are still identical on these networks, but lags differ by up to 1.7e-3 ms, readout means by
4e-5 and gradients by 6e-5 relative (seeds 1, 4, 7, 9); the float32 tolerances are 3-5x those."""
import numpy as np
import pytest

from eventprop_lab.losses import LOSSES
from kernels.genn_backend import pygenn_status

OK, WHY = pygenn_status()
if not OK:
    pytest.skip(WHY, allow_module_level=True)

from eventprop_lab.losses import get_loss  # noqa: E402
from eventprop_lab.network import NetworkConfig, init_params  # noqa: E402
from eventprop_lab.regularisers import SpikeCountRegulariser  # noqa: E402
from eventprop_lab.toy import spike_patterns  # noqa: E402
from eventprop_lab.training import Trainer, TrainingConfig  # noqa: E402
from kernels import LossSource, get_engine, make_batch  # noqa: E402

TOL = {np.float64: dict(lag=1e-8, v=1e-10, grad=1e-8), np.float32: dict(lag=5e-3, v=2e-4, grad=3e-4)}


@pytest.fixture(scope="module")
def genn(tmp_path_factory):
    return get_engine("genn", build_dir=str(tmp_path_factory.mktemp("genn_build")))


def problem(dtype=np.float64, recurrent=True, n_samples=3, seed=1):
    samples, labels = spike_patterns(n_samples, n_classes=4, n_channels=40, duration_ms=100.0, seed=seed)
    net = NetworkConfig(n_in=40, n_hidden=16, n_out=4, recurrent=recurrent, heterogeneous_tau=True,
                        w_in_mean=0.4, w_in_std=0.2, w_out_std=0.3)
    return init_params(net, rng=seed + 2).astype(dtype), make_batch(samples, 40, 1.0, 100), labels


def assert_same_record(a, b, tol):
    assert np.array_equal(a.n_spikes, b.n_spikes) and a.n_spikes.min() > 5
    assert np.array_equal(a.counts, b.counts)
    for s in range(len(a.n_spikes)):
        k = a.n_spikes[s]
        assert np.array_equal(a.spike_step[s, :k], b.spike_step[s, :k])
        assert np.array_equal(a.spike_id[s, :k], b.spike_id[s, :k])
        assert np.allclose(a.spike_lag[s, :k], b.spike_lag[s, :k], rtol=0, atol=tol["lag"])
        assert np.allclose(a.spike_slope[s, :k], b.spike_slope[s, :k], rtol=0, atol=tol["lag"])
    assert np.allclose(a.mean_v, b.mean_v, rtol=0, atol=tol["v"])
    assert (a.trace_v is None) == (b.trace_v is None)
    if a.trace_v is not None:
        assert np.allclose(a.trace_v, b.trace_v, rtol=0, atol=tol["v"])


def rel(a, b):
    return np.abs(a - b).max() / np.abs(a).max()


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_the_forward_pass_gives_the_same_spikes_and_readout(genn, dtype):
    params, batch, _ = problem(dtype)
    assert_same_record(get_engine("numba", in_step_order=False).forward(params, batch), genn.forward(params, batch), TOL[dtype])


@pytest.mark.parametrize("loss_name", [n for n in LOSSES if n != "first_spike"])  # it has its own test below
def test_the_gradients_and_probes_are_the_same_for_each_loss(genn, loss_name):
    params, batch, labels = problem(np.float64)
    numba = get_engine("numba", in_step_order=False)
    loss = get_loss(loss_name)
    record = numba.forward(params, batch, **loss.record_options())
    source = loss.evaluate(record, labels, params).source
    jump = SpikeCountRegulariser(2.0, 1e-4, 1e-4).jump(record.counts)  # the regulariser's jumps too
    g_a, p_a = numba.backward(params, batch, record, source, reg_jump=jump, probe_samples=[0, 2])
    g_b, p_b = genn.backward(params, batch, record, source, reg_jump=jump, probe_samples=[0, 2])
    for name in ("W_in", "W_rec", "W_out"):
        a, b = getattr(g_a, name), getattr(g_b, name)
        assert np.abs(a).max() > 0 and rel(a, b) < TOL[np.float64]["grad"], (name, rel(a, b))
    for name in ("lambda_v", "lambda_i", "lambda_v_out", "lambda_i_out"):
        assert rel(getattr(p_a, name), getattr(p_b, name)) < 1e-9, name
    assert np.allclose(p_a.transported, p_b.transported, rtol=1e-9, atol=1e-15, equal_nan=True)


def test_float32_gradients_agree_to_float32_tolerance_and_feed_forward_works(genn):
    for dtype, recurrent in ((np.float32, True), (np.float64, False)):
        params, batch, labels = problem(dtype, recurrent=recurrent, seed=4)
        loss = get_loss("sum_exp")
        ra, rb = get_engine("numba", in_step_order=False).forward(params, batch), genn.forward(params, batch)
        assert_same_record(ra, rb, TOL[dtype])
        source = loss.evaluate(ra, labels, params).source
        g_a, _ = get_engine("numba", in_step_order=False).backward(params, batch, ra, source)
        g_b, _ = genn.backward(params, batch, rb, source)  # from its own record
        names = ("W_in", "W_rec", "W_out") if recurrent else ("W_in", "W_out")
        for name in names:
            assert rel(getattr(g_a, name), getattr(g_b, name)) < TOL[dtype]["grad"], (dtype, name)
        assert (g_b.W_rec is None) == (not recurrent)


def test_repeated_events_on_one_channel_in_one_step_all_count(genn):
    params, _, labels = problem(np.float64)
    times = np.array([1.0, 1.2, 1.7, 5.0, 5.5, 30.0, 30.1, 30.2, 30.3])  # several per step
    channels = np.array([3, 3, 3, 7, 7, 9, 9, 9, 9])
    batch = make_batch([(times, channels)], 40, 1.0, 100)
    params = params._replace(W_in=params.W_in * 3)
    a, b = get_engine("numba", in_step_order=False).forward(params, batch), genn.forward(params, batch)
    assert_same_record(a, b, TOL[np.float64])
    source = get_loss("sum").evaluate(a, labels[:1], params).source
    assert rel(get_engine("numba", in_step_order=False).backward(params, batch, a, source)[0].W_in,
               genn.backward(params, batch, a, source)[0].W_in) < 1e-9


def test_trainable_time_constants_get_the_same_gradients(genn):
    params, batch, labels = problem(np.float64, seed=5)
    numba, loss = get_engine("numba", in_step_order=False), get_loss("sum_exp")
    a, b = (e.forward(params, batch, record_state=True) for e in (numba, genn))
    assert_same_record(a, b, TOL[np.float64])
    assert np.allclose(a.state_v, b.state_v, atol=1e-10) and np.allclose(a.state_i, b.state_i, atol=1e-10)
    source = loss.evaluate(a, labels, params).source
    g_a, _ = numba.backward(params, batch, a, source, train_tau=True)
    g_b, _ = genn.backward(params, batch, b, source, train_tau=True)
    for name in ("tau_mem", "tau_syn", "W_in"):
        assert np.abs(getattr(g_a, name)).max() > 0 and rel(getattr(g_a, name), getattr(g_b, name)) < 1e-8, name
    with pytest.raises(ValueError, match="record_state=True"):
        genn.backward(params, batch, genn.forward(params, batch), source, train_tau=True)


def test_a_spiking_readout_and_its_first_spikes_match(genn):
    params, batch, labels = problem(np.float64, seed=3)
    params = params._replace(W_out=np.abs(params.W_out) * 2)  # readouts that do spike
    loss = get_loss("first_spike")
    numba = get_engine("numba", in_step_order=False)
    a, b = (e.forward(params, batch, **loss.record_options()) for e in (numba, genn))
    assert_same_record(a, b, TOL[np.float64])
    assert (a.first_step >= 0).sum() >= 4 and np.array_equal(a.first_step, b.first_step)
    assert np.allclose(a.first_lag, b.first_lag, atol=1e-8) and np.allclose(a.first_slope, b.first_slope, atol=1e-8)
    source = loss.evaluate(a, labels, params).source
    g_a, _ = numba.backward(params, batch, a, source)
    g_b, _ = genn.backward(params, batch, b, source)
    for name in ("W_in", "W_rec", "W_out"):
        assert rel(getattr(g_a, name), getattr(g_b, name)) < TOL[np.float64]["grad"], name


def test_a_trainer_on_genn_takes_the_same_steps_as_on_numba(genn):
    params, batch, labels = problem(np.float64, n_samples=4, seed=7)
    samples, labels = spike_patterns(4, n_classes=4, n_channels=40, duration_ms=100.0, seed=7)
    cfg = dict(loss="sum_exp", lr=1e-2, warmup=False, trial_ms=100.0)
    a = Trainer(params, TrainingConfig(backend="numba", **cfg), engine=get_engine("numba", in_step_order=False))
    b = Trainer(params, TrainingConfig(backend="genn", **cfg), engine=genn)
    for _ in range(3):
        ma, _ = a.train_batch(samples, labels)
        mb, _ = b.train_batch(samples, labels)
        assert ma["loss"] == pytest.approx(mb["loss"], rel=1e-9)
    for name in ("W_in", "W_rec", "W_out"):
        assert rel(getattr(a.params, name), getattr(b.params, name)) < 1e-9


def test_sources_on_hidden_spike_times_and_on_sampled_voltages_match(genn):
    """The max loss's two kinds of source, each given at random so that every path is exercised."""
    params, batch, _ = problem(np.float64)
    numba = get_engine("numba", in_step_order=False)
    a = numba.forward(params, batch, record_readout_current=True)
    b = genn.forward(params, batch, record_readout_current=True)
    assert np.allclose(a.trace_i, b.trace_i, rtol=0, atol=1e-12)
    rng = np.random.default_rng(0)
    source = LossSource(dl_dtrace=rng.normal(0, 1e-3, a.mean_v.shape),
                        dl_dspike=rng.normal(0, 1e-2, a.spike_step.shape))
    g_a, p_a = numba.backward(params, batch, a, source, probe_samples=[1])
    g_b, p_b = genn.backward(params, batch, a, source, probe_samples=[1])
    for name in ("W_in", "W_rec", "W_out"):
        assert rel(getattr(g_a, name), getattr(g_b, name)) < TOL[np.float64]["grad"], name
    assert rel(p_a.lambda_v, p_b.lambda_v) < 1e-9 and rel(p_a.lambda_v_out, p_b.lambda_v_out) < 1e-9
