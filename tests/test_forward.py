"""The numba engine's forward pass against the plain-numpy grid reference (tests/grid_reference.py),
which implements docs/engine.md independently of the kernels."""
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

import kernels

try:
    from grid_reference import THRESHOLD, event_step, forward_reference, mean_coefficients, step_coefficients
except ImportError:  # tests/ imported as a package
    from tests.grid_reference import (THRESHOLD, event_step, forward_reference, mean_coefficients,
                                      step_coefficients)

MIN_SLOPE = 1e-3  # the engine's default floor of I − ϑ at a spike
KICK_MIN_SLOPE = 0.3  # its floor at a spike whose neuron started the step at or above ϑ


def floored_slopes(ref):
    return np.maximum(ref.spike_slope, np.where(ref.spike_kicked, KICK_MIN_SLOPE, MIN_SLOPE))
N_IN, N_HID, N_OUT = 30, 20, 4
N_STEPS = 200
TOL = 1e-9  # the kernel is compiled with reassociating fast-math


# ---------------------------------------------------------------------------------------- helpers

def make_taus(rng, n, kind):
    """Per-neuron (tau_mem, tau_syn). 'hetero': random, with neuron 0 at τ_m == τ_s exactly and
    neuron 1 at τ_m = τ_s(1 + 1e-7); 'equal': τ_m == τ_s for every neuron, τ shared."""
    if kind == "equal":
        return np.full(n, 10.0), np.full(n, 10.0)
    tm = rng.uniform(10.0, 30.0, n)
    ts = rng.uniform(3.0, 10.0, n)
    ts[0] = tm[0]
    tm[1] = ts[1] * (1 + 1e-7)
    if n > 2:
        ts[2] = tm[2] * 1.5  # τ_s > τ_m as well
    return tm, ts


def make_params(seed, recurrent=False, spiking_readout=False, taus="hetero", w_in=0.3):
    """A small random network whose hidden neurons fire several spikes on make_samples input."""
    rng = np.random.default_rng(seed)
    W_in = rng.normal(w_in, 0.2, (N_IN, N_HID))
    W_rec = rng.normal(0.0, 0.15, (N_HID, N_HID)) if recurrent else None
    W_out = rng.normal(0.45 if spiking_readout else 0.1, 0.2, (N_HID, N_OUT))
    tm, ts = make_taus(rng, N_HID, taus)
    tmo, tso = make_taus(rng, N_OUT, taus)
    return kernels.Params(W_in, W_rec, W_out, tm, ts, tmo, tso)


def make_samples(seed, trial_ms, rate_hz=30.0):
    """Five Poisson samples of different lengths: full, 3/4, EMPTY, 0.45, and one running past the
    trial end (its late events are cropped)."""
    rng = np.random.default_rng(seed + 1000)
    out = []
    for frac in (1.0, 0.75, 0.0, 0.45, 1.15):
        length = frac * trial_ms
        n = rng.poisson(rate_hz * length / 1000.0 * N_IN) if length > 0 else 0
        out.append((np.sort(rng.uniform(0.0, length, n)), rng.integers(0, N_IN, n)))
    return out


def run_engine(params, samples, dt, n_steps=N_STEPS, spiking_readout=False, engine=None):
    engine = engine or kernels.get_engine("numba")
    batch = kernels.make_batch(samples, params.n_in, dt, n_steps)
    return engine.forward(params, batch, spiking_readout=spiking_readout,
                          record_readout_current=True, record_state=True)


def reference(params, samples, dt, n_steps=N_STEPS, spiking_readout=False, ordered=True):
    plain = [None if x is None else np.asarray(x, np.float64) for x in params]
    return forward_reference(samples, dt, n_steps, *plain, spiking_readout=spiking_readout, ordered=ordered)


def assert_sample_matches(rec, s, ref, tol=TOL):
    n = int(rec.n_spikes[s])
    assert n == ref.n_spikes, f"sample {s}: {n} spikes, reference {ref.n_spikes}"
    np.testing.assert_array_equal(rec.spike_step[s, :n], ref.spike_step, err_msg=f"sample {s} steps")
    np.testing.assert_array_equal(rec.spike_id[s, :n], ref.spike_id, err_msg=f"sample {s} ids")
    np.testing.assert_allclose(rec.spike_slope[s, :n], floored_slopes(ref),
                               rtol=tol, atol=tol, err_msg=f"sample {s} slopes")
    np.testing.assert_allclose(rec.spike_lag[s, :n], ref.spike_lag, rtol=tol, atol=tol,
                               err_msg=f"sample {s} lags")
    np.testing.assert_array_equal(rec.counts[s], ref.counts, err_msg=f"sample {s} counts")
    for name in ("mean_v", "trace_v", "trace_i", "state_v", "state_i"):
        np.testing.assert_allclose(getattr(rec, name)[s], getattr(ref, name), rtol=tol, atol=tol,
                                   err_msg=f"sample {s} {name}")
    if ref.first_step is not None:
        np.testing.assert_array_equal(rec.first_step[s], ref.first_step, err_msg=f"sample {s} first_step")
        spiked = ref.first_step >= 0
        np.testing.assert_allclose(rec.first_slope[s][spiked],
                                   np.maximum(ref.first_slope[spiked], MIN_SLOPE),
                                   rtol=tol, atol=tol, err_msg=f"sample {s} first_slope")
        np.testing.assert_allclose(rec.first_lag[s][spiked], ref.first_lag[spiked],
                                   rtol=tol, atol=tol, err_msg=f"sample {s} first_lag")


def assert_record_matches(rec, refs, tol=TOL):
    assert len(rec.n_spikes) == len(refs)
    for s, ref in enumerate(refs):
        assert_sample_matches(rec, s, ref, tol)


def assert_fires_enough(refs, min_total=20, min_active=8):
    """Guard against vacuous passes: the longest sample has many spikes spread over neurons."""
    best = max(refs, key=lambda r: r.n_spikes)
    assert best.n_spikes >= min_total, f"only {best.n_spikes} hidden spikes"
    assert np.count_nonzero(best.counts >= 2) >= min_active, best.counts


# ------------------------------------------------------------------------ the reference itself

@pytest.mark.parametrize("tm, ts", [(20.0, 5.0), (5.0, 20.0), (10.0, 10.0), (10.0 * (1 + 1e-7), 10.0),
                                    (10.0, 10.0 * (1 + 1e-7)), (3.0, 2.999)])
@pytest.mark.parametrize("dt", [1.0, 0.5, 0.1])
def test_reference_step_is_the_exact_solution(tm, ts, dt):
    """(a, b, c) of the reference are exp(dt·A) of the linear ODE τ_m V' = −V + I, τ_s I' = −I."""
    A = np.array([[-1.0 / tm, 1.0 / tm], [0.0, -1.0 / ts]])
    E = scipy.linalg.expm(A * dt)
    a, b, c = step_coefficients([tm], [ts], dt)
    np.testing.assert_allclose([a[0], c[0], b[0]], [E[0, 0], E[0, 1], E[1, 1]], rtol=1e-12)


@pytest.mark.parametrize("tm, ts", [(20.0, 5.0), (5.0, 20.0), (10.0, 10.0), (10.0 * (1 + 1e-7), 10.0),
                                    (3.0, 2.999)])
@pytest.mark.parametrize("dt", [1.0, 0.5, 0.1])
def test_reference_mean_coefficients_integrate_the_exact_solution(tm, ts, dt):
    """mv·V + mi·I is (1/dt)∫₀^dt V(u) du for V(u) = [exp(u·A)(V, I)]₀, by adaptive quadrature."""
    A = np.array([[-1.0 / tm, 1.0 / tm], [0.0, -1.0 / ts]])
    mv, mi = mean_coefficients([tm], [ts], dt)
    for k, coef in ((0, mv[0]), (1, mi[0])):  # start from (V, I) = (1, 0) and (0, 1)
        integral, _ = scipy.integrate.quad(lambda u: scipy.linalg.expm(A * u)[0, k], 0.0, dt,
                                           epsabs=1e-15, epsrel=1e-13)
        assert coef == pytest.approx(integral / dt, rel=1e-11)


def test_engine_step_coefficients_match_reference():
    rng = np.random.default_rng(0)
    tm, ts = make_taus(rng, 50, "hetero")
    tm = np.concatenate([tm, [7.0, 7.0 * (1 + 1e-9), 7.0 * (1 - 1e-5)]])
    ts = np.concatenate([ts, [7.0, 7.0, 7.0]])
    for dt in (1.0, 0.5, 0.1):
        a, b, c = step_coefficients(tm, ts, dt)
        co = kernels.StepCoefficients(tm, ts, dt)
        np.testing.assert_allclose(co.a, a, rtol=1e-14)
        np.testing.assert_allclose(co.b, b, rtol=1e-14)
        np.testing.assert_allclose(co.c, c, rtol=1e-12)
        mv, mi = mean_coefficients(tm, ts, dt)
        np.testing.assert_allclose(co.mv, mv, rtol=1e-12)
        np.testing.assert_allclose(co.mi, mi, rtol=1e-11)


def test_reference_event_binning():
    assert event_step(0.0, 1.0) == 0
    assert event_step(0.999, 1.0) == 0
    assert event_step(1.0, 1.0) == 1
    assert event_step(0.3, 0.1) == 3  # 0.3/0.1 = 2.9999999999999996 in floating point
    assert event_step(1.25, 0.5) == 2


# ------------------------------------------------------------------ engine against the reference

@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "plain"])
@pytest.mark.parametrize("spiking_readout", [False, True], ids=["readout", "spiking_readout"])
@pytest.mark.parametrize("dt", [1.0, 0.5])
@pytest.mark.parametrize("recurrent", [False, True], ids=["ff", "rec"])
def test_forward_matches_reference(recurrent, dt, spiking_readout, ordered):
    """ordered: the engine's default, spikes of a step in time order; plain: in_step_order=False,
    the scheme the GeNN backend computes."""
    seed = 10 + 2 * recurrent + 4 * (dt == 0.5) + spiking_readout
    params = make_params(seed, recurrent=recurrent, spiking_readout=spiking_readout)
    samples = make_samples(seed, N_STEPS * dt)
    refs = reference(params, samples, dt, spiking_readout=spiking_readout, ordered=ordered)
    assert_fires_enough(refs)
    rec = run_engine(params, samples, dt, spiking_readout=spiking_readout,
                     engine=kernels.get_engine("numba", in_step_order=ordered))
    assert rec.trace_v.dtype == np.float64 and rec.trace_v.shape == (5, N_STEPS, N_OUT)
    assert rec.dt == dt and rec.n_steps == N_STEPS
    assert_record_matches(rec, refs)
    # the empty sample: nothing happens
    assert rec.n_spikes[2] == 0 and not rec.counts[2].any()
    assert not rec.trace_v[2].any() and not rec.mean_v[2].any() and not rec.state_v[2].any() and not rec.state_i[2].any()
    # the neurons with τ_m == τ_s and τ_m ≈ τ_s are driven (their V is compared through state_v)
    assert np.abs(rec.state_v[0, :, :2]).max() > 0.3
    if spiking_readout:
        assert (rec.first_step >= 0).sum() >= 2, rec.first_step
        assert (rec.first_step == -1).any()  # a silent readout too (the empty sample)
        assert not np.isnan(rec.first_slope).any()


@pytest.mark.parametrize("spiking_readout", [False, True], ids=["readout", "spiking_readout"])
def test_forward_matches_reference_all_taus_equal(spiking_readout):
    """Every neuron, hidden and readout, in the τ_m == τ_s case."""
    params = make_params(31, recurrent=True, spiking_readout=spiking_readout, taus="equal")
    samples = make_samples(31, N_STEPS * 1.0)
    refs = reference(params, samples, 1.0, spiking_readout=spiking_readout)
    assert_fires_enough(refs)
    rec = run_engine(params, samples, 1.0, spiking_readout=spiking_readout)
    assert_record_matches(rec, refs)
    if spiking_readout:
        assert (rec.first_step >= 0).any()


def test_float32_params_mostly_agree():
    """float32 parameters: the engine runs in float32; against the float64 reference (run on the
    same float32-rounded parameters) a spike at the threshold's edge may flip, but ≥ 99 % of the
    spikes agree, and where a sample's spikes all agree its voltages agree to ~1e-2: the time of a
    slow crossing within its step is the voltage's rounding error over a small slope, and the
    reset and PSPs start from that time."""
    n_same = n_total = 0
    n_samples_compared = 0
    for seed, recurrent in ((40, False), (41, True), (42, False), (43, True)):
        params = make_params(seed, recurrent=recurrent, spiking_readout=True).astype(np.float32)
        samples = make_samples(seed, N_STEPS * 1.0)
        refs = reference(params, samples, 1.0, spiking_readout=True)
        assert_fires_enough(refs)
        rec = run_engine(params, samples, 1.0, spiking_readout=True)
        assert rec.trace_v.dtype == np.float32 and rec.spike_slope.dtype == np.float32
        for s, ref in enumerate(refs):
            n = int(rec.n_spikes[s])
            eng = set(zip(rec.spike_step[s, :n].tolist(), rec.spike_id[s, :n].tolist()))
            want = set(zip(ref.spike_step.tolist(), ref.spike_id.tolist()))
            n_same += len(eng & want)
            n_total += max(len(eng), len(want))
            if eng == want and (rec.first_step[s] == ref.first_step).all():
                n_samples_compared += 1
                np.testing.assert_allclose(rec.trace_v[s], ref.trace_v, atol=1e-2)
                np.testing.assert_allclose(rec.mean_v[s], ref.mean_v, atol=1e-2)
                np.testing.assert_allclose(rec.state_v[s], ref.state_v, atol=1e-2)
                np.testing.assert_allclose(rec.state_i[s], ref.state_i, atol=1e-2)
                np.testing.assert_allclose(rec.spike_slope[s, :n], floored_slopes(ref), atol=1e-2)
    assert n_total > 200
    assert n_same >= 0.99 * n_total, (n_same, n_total)
    assert n_samples_compared >= 15


# ------------------------------------------------------------------------------ input binning

def test_events_at_or_after_trial_end_are_cropped():
    dt, n_steps = 0.5, 40  # T = 20 ms
    T = dt * n_steps
    params = make_params(50, recurrent=True, w_in=0.6)
    rng = np.random.default_rng(5)
    t_in = np.sort(rng.uniform(0, T, 60))
    c_in = rng.integers(0, N_IN, 60)
    late_t = np.array([T, T, T + 1e-6, T + 0.25, T + dt, 3 * T, 1e6])
    late_c = rng.integers(0, N_IN, len(late_t))
    samples_late = [(np.concatenate([t_in, late_t]), np.concatenate([c_in, late_c])), (late_t, late_c)]
    samples_cut = [(t_in, c_in), (np.zeros(0), np.zeros(0, np.int64))]
    batch = kernels.make_batch(samples_late, N_IN, dt, n_steps)
    assert batch.ptr.tolist() == [0, 60, 60]
    assert batch.step.max() < n_steps
    engine = kernels.get_engine("numba")
    rec_late = engine.forward(params, batch, record_readout_current=True, record_state=True)
    rec_cut = run_engine(params, samples_cut, dt, n_steps, engine=engine)
    assert rec_late.n_spikes[0] > 0
    for name in ("n_spikes", "counts", "mean_v", "trace_v", "trace_i", "state_v", "state_i"):
        np.testing.assert_array_equal(getattr(rec_late, name), getattr(rec_cut, name), err_msg=name)
    n = int(rec_late.n_spikes[0])
    np.testing.assert_array_equal(rec_late.spike_step[0, :n], rec_cut.spike_step[0, :n])
    np.testing.assert_array_equal(rec_late.spike_id[0, :n], rec_cut.spike_id[0, :n])
    assert_record_matches(rec_late, reference(params, samples_late, dt, n_steps))


def test_events_far_beyond_trial_end_are_cropped():
    batch = kernels.make_batch([(np.array([1e20]), np.array([3])), (np.array([2.0, 1e30]), np.array([1, 2]))],
                               N_IN, 1.0, 10)
    assert batch.ptr.tolist() == [0, 0, 1]
    assert batch.step.tolist() == [2]


@pytest.mark.parametrize("dt", [1.0, 0.5, 0.25, 0.1])
def test_events_on_grid_times_go_to_their_own_step(dt):
    n_steps = 30
    k = np.arange(n_steps)
    times = np.array([float(f"{x * dt:.10g}") for x in k])  # as a user writes them, e.g. 0.3
    channels = k % N_IN
    batch = kernels.make_batch([(times, channels)], N_IN, dt, n_steps)
    np.testing.assert_array_equal(batch.step, k)
    # an event just before a grid time stays in the step before
    batch = kernels.make_batch([(times[1:] - 1e-3 * dt, channels[1:])], N_IN, dt, n_steps)
    np.testing.assert_array_equal(batch.step, k[:-1])


def test_event_on_grid_time_is_applied_at_that_time():
    """One event at t = 5 ms with dt = 0.5 raises the hidden currents at step 10, not 9 or 11."""
    params = make_params(51)
    rec = run_engine(params, [(np.array([5.0]), np.array([7]))], 0.5, 30)
    np.testing.assert_array_equal(rec.state_i[0, :10], 0.0)
    np.testing.assert_allclose(rec.state_i[0, 10], params.W_in[7], rtol=1e-15)
    np.testing.assert_array_equal(rec.state_v[0, :11], 0.0)
    assert (rec.state_v[0, 11] != 0).all()


def test_same_channel_events_in_one_step_each_add_their_weight():
    dt = 1.0
    params = make_params(52)
    times = np.array([2.0, 2.2, 2.7, 2.99, 4.5])
    channels = np.array([3, 3, 3, 5, 3])
    batch = kernels.make_batch([(times, channels)], N_IN, dt, 10)
    assert batch.step.tolist() == [2, 2, 2, 2, 4]
    rec = kernels.get_engine("numba").forward(params, batch, record_readout_current=True, record_state=True)
    np.testing.assert_allclose(rec.state_i[0, 2], 3 * params.W_in[3] + params.W_in[5], rtol=1e-14)
    _, b, _ = step_coefficients(params.tau_mem, params.tau_syn, dt)
    if rec.n_spikes[0] == 0 or rec.spike_step[0, 0] > 4:  # no recurrence here; only decay + input
        np.testing.assert_allclose(rec.state_i[0, 4], rec.state_i[0, 2] * b**2 + params.W_in[3], rtol=1e-13)
    assert_record_matches(rec, reference(params, [(times, channels)], dt, 10))


# ---------------------------------------------------------------------------- the spike store

def test_spike_store_overflow_grows_and_reruns():
    params = make_params(60, recurrent=True, w_in=0.45)
    samples = make_samples(60, N_STEPS * 1.0, rate_hz=40.0)
    refs = reference(params, samples, 1.0)
    most = max(r.n_spikes for r in refs)
    assert most > 8 * 4, most  # far beyond the initial store
    engine = kernels.get_engine("numba", initial_capacity=8)
    rec = run_engine(params, samples, 1.0, engine=engine)
    assert rec.spike_step.shape[1] >= most
    assert rec.spike_step.shape == rec.spike_id.shape == rec.spike_slope.shape
    assert_record_matches(rec, refs)
    # the grown store is kept: a second batch needs no rerun and is still right
    rec2 = run_engine(params, samples[::-1], 1.0, engine=engine)
    assert_record_matches(rec2, refs[::-1])
    # and agrees with an engine whose store was big enough from the start
    rec_big = run_engine(params, samples, 1.0)
    np.testing.assert_array_equal(rec.n_spikes, rec_big.n_spikes)
    np.testing.assert_array_equal(rec.trace_v, rec_big.trace_v)


def test_hidden_spikes_in_ms():
    dt = 0.5
    params = make_params(70, recurrent=True)
    samples = make_samples(70, N_STEPS * dt)
    refs = reference(params, samples, dt)
    rec = run_engine(params, samples, dt)
    assert_fires_enough(refs)
    for s, ref in enumerate(refs):
        times, ids = rec.hidden_spikes(s)
        assert len(times) == len(ids) == ref.n_spikes
        np.testing.assert_allclose(times, ref.spike_step * dt, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(ids, ref.spike_id)
        if len(times):
            assert np.issubdtype(np.asarray(times).dtype, np.floating)
            assert np.all(np.diff(times) >= 0)
            assert times.max() <= N_STEPS * dt and times.min() >= dt
            assert np.any(times % 1.0 == 0.5)  # half-ms spike times: really ms, not steps


def test_threshold_is_inclusive_and_resets_to_zero():
    """A neuron driven to V(t_1) ≥ ϑ by the smallest such weight spikes at step 1 (V ≥ ϑ, not V > ϑ)
    and restarts from V = 0; one ulp less weight and it does not spike at step 1. (Built on the
    engine's own c, since the reference's may differ in the last bit.)"""
    dt = 1.0
    tm, ts = np.array([10.0]), np.array([5.0])
    c = kernels.StepCoefficients(tm, ts, dt).c[0]
    b = np.exp(-dt / ts[0])
    w = THRESHOLD / c
    while c * w < THRESHOLD:  # the smallest weight with V(t_1) = c·w ≥ ϑ in float64
        w = np.nextafter(w, np.inf)
    while c * np.nextafter(w, 0.0) >= THRESHOLD:
        w = np.nextafter(w, 0.0)
    w_below = np.nextafter(w, 0.0)
    params = kernels.Params(np.array([[w], [w_below]]), None, np.array([[0.5]]), tm, ts,
                            np.array([10.0]), np.array([5.0]))
    samples = [(np.array([0.0]), np.array([0])), (np.array([0.0]), np.array([1]))]
    rec = run_engine(params, samples, dt, 5)
    assert rec.spike_step[0, 0] == 1 and rec.spike_id[0, 0] == 0 and rec.state_v[0, 1, 0] == 0.0
    assert rec.spike_slope[0, 0] == pytest.approx(b * w - THRESHOLD, rel=1e-13)
    assert rec.n_spikes[1] == 0 or rec.spike_step[1, 0] > 1
    assert 1 - 1e-12 < rec.state_v[1, 1, 0] < THRESHOLD


def test_step_coefficients_are_shared_and_never_stale():
    """The engine reuses the coefficients of time constants it has seen (kernels.grid.step_coefficients):
    a forward and backward pass leave the shared arrays as computed, and new time constants (as
    when tau is trained) get coefficients of their own."""
    from kernels.grid import step_coefficients

    p = make_params(3, recurrent=True)
    dt = 0.5
    batch = kernels.make_batch(make_samples(4, 100.0), N_IN, dt, N_STEPS)
    engine = kernels.get_engine("numba")
    record = engine.forward(p, batch, record_state=True)
    T, K = N_STEPS, p.W_out.shape[1]
    source = kernels.LossSource(dl_dmean=np.ones((len(batch.ptr) - 1, T, K)))
    engine.backward(p, batch, record, source, train_tau=True)
    shared = step_coefficients(p.tau_mem, p.tau_syn, dt)
    assert shared is step_coefficients(p.tau_mem.copy(), p.tau_syn.copy(), dt)
    fresh = kernels.StepCoefficients(p.tau_mem, p.tau_syn, dt)
    for name, value in vars(fresh).items():
        assert np.array_equal(getattr(shared, name), value), name
    moved = step_coefficients(p.tau_mem * 1.01, p.tau_syn, dt)
    assert moved is not shared and np.array_equal(moved.a, np.exp(-dt / (p.tau_mem * 1.01)))
    assert not np.array_equal(step_coefficients(p.tau_mem, p.tau_syn, 2 * dt).a, shared.a)


def test_a_spike_train_keeps_the_intervals_of_its_continuous_dynamics():
    """One neuron driven by input spikes on the grid fires a train: between grid points nothing else
    happens, so with the crossing found by root and the reset integrated exactly the grid's spike
    times are the continuous ones, however many spikes follow. (The first-order reset, Δ·I*/τ_m,
    shortened every interval of a short-τ_m neuron and the train drifted ahead: docs/engine.md.)"""
    try:
        from exact_reference import simulate
    except ImportError:
        from tests.exact_reference import simulate
    rng = np.random.default_rng()
    tau_m, tau_s, drive = rng.uniform(4.0, 8.0), rng.uniform(8.0, 15.0), rng.uniform(1.5, 3.0)
    w = drive * -np.expm1(-2.0 / tau_s)  # an input every 2 ms holds I near `drive`
    case = f"tau_m {tau_m:.3f}, tau_s {tau_s:.3f}, drive {drive:.3f}"
    f64 = lambda x: np.array(x, np.float64)  # noqa: E731
    p = {"W_in": f64([[w]]), "W_rec": None, "W_out": f64([[0.0]]), "tau_mem": f64([tau_m]),
         "tau_syn": f64([tau_s]), "tau_mem_out": f64([20.0]), "tau_syn_out": f64([5.0])}
    t_in = np.arange(0.0, 100.0, 2.0)
    exact = simulate(p, t_in, np.zeros(len(t_in), int), 100.0).hid_t
    assert len(exact) >= 5, case
    params = kernels.Params(p["W_in"], None, p["W_out"], p["tau_mem"], p["tau_syn"], p["tau_mem_out"], p["tau_syn_out"])
    rec = kernels.get_engine("numba").forward(params, kernels.make_batch([(t_in, np.zeros(len(t_in), int))], 1, 1.0, 100))
    n = int(rec.n_spikes[0])
    times = rec.spike_step[0, :n] * 1.0 - rec.spike_lag[0, :n]
    assert n == len(exact), f"{case}: {n} spikes on the grid, {len(exact)} exact"
    np.testing.assert_allclose(times, exact, atol=1e-6, err_msg=case)


def _psp(t, tm, ts):
    """V at t of a unit current started at 0."""
    return (np.exp(-t / tm) - np.exp(-t / ts)) / (tm * (1.0 / ts - 1.0 / tm))


def test_a_kick_that_finds_a_neuron_over_threshold_fires_it_where_its_voltage_ends_the_step():
    """Neuron A's exact voltage rises just over ϑ and falls back within one step, so that it is
    not due to fire there; neuron B fires while A is over ϑ, and its PSP puts A's first-order
    voltage at the step's end over ϑ while the exact one stays under. Like any graze, A fires at
    the step's end (lag 0), as the reference places it: not at B's crossing, where the kick
    found it already over ϑ. Cases drawn from a seed sequence, each built to hold that state."""
    for child in np.random.SeedSequence(4101).spawn(6):
        rng = np.random.default_rng(child)
        tm_a, ts_a = rng.uniform(12.0, 30.0), rng.uniform(3.0, 8.0)
        tm_b, ts_b = (tm_a, ts_a) if rng.random() < 0.5 else (rng.uniform(12.0, 30.0), rng.uniform(3.0, 8.0))
        eps = 10 ** rng.uniform(-6, -4)  # A's peak over ϑ, relative
        t_peak = np.log(tm_a / ts_a) / (1.0 / ts_a - 1.0 / tm_a)
        n = int(t_peak)
        dt = t_peak / (n + 0.5)  # A's peak in the middle of step n, A's input at 0
        w_a = THRESHOLD * (1 + eps) / _psp(t_peak, tm_a, ts_a)
        m = n - 2  # B's input two steps before, so that B rises steeply through ϑ at A's peak
        w_b = THRESHOLD / _psp(t_peak - m * dt, tm_b, ts_b)
        u = t_peak - n * dt
        deficit = THRESHOLD - w_a * _psp((n + 1) * dt, tm_a, ts_a)
        lo, hi = deficit / ((dt - u) / tm_a), deficit / _psp(dt - u, tm_a, ts_a)
        assert 0 < deficit and lo < hi
        w_ba = 0.5 * (lo + hi)  # first order over ϑ at the step's end, exact under
        params = kernels.Params(np.array([[w_a, 0.0], [0.0, w_b]]), np.array([[0.0, 0.0], [w_ba, 0.0]]),
                                np.array([[0.3], [0.2]]), np.array([tm_a, tm_b]), np.array([ts_a, ts_b]),
                                np.array([20.0]), np.array([5.0]))
        samples = [(np.array([0.0, m * dt]), np.array([0, 1]))]
        n_steps = n + 5
        rec = run_engine(params, samples, dt, n_steps, engine=kernels.get_engine("numba", in_step_order=True))
        refs = reference(params, samples, dt, n_steps)
        assert_record_matches(rec, refs)
        ids = list(rec.spike_id[0, :rec.n_spikes[0]])
        assert ids[:2] == [1, 0], ids  # B, then A in the same step (B may fire again later)
        assert rec.spike_step[0, 0] == rec.spike_step[0, 1] == n + 1
        assert rec.spike_lag[0, 0] == pytest.approx(dt - u, abs=1e-9)
        assert rec.spike_lag[0, 1] == 0.0
        assert rec.spike_slope[0, 1] >= KICK_MIN_SLOPE
