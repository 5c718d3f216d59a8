"""Engine gradients against exact ones on random networks: shared by tests/test_gradient_order.py and
benchmarks/gradient_fidelity.py."""
import numpy as np

import exact_reference as ref
from fd import fd_derivative

T = 100.0
KINDS = ("W_in", "W_rec", "W_out", "tau_mem", "tau_syn")
STAT_LOSSES = ("sum", "sum_exp", "sum_linear", "sum_sigmoid", "max", "avg_xentropy")
ALL_LOSSES = STAT_LOSSES + ("first_spike",)
FD_FLOOR = 1e-9


def min_separation(results):
    """Smallest interval between two hidden spikes (any neurons) over the samples' exact runs."""
    sep = np.inf
    for res in results:
        t = np.sort(res.hid_t)
        if len(t) > 1:
            sep = min(sep, float(np.diff(t).min()))
    return sep


def exact_gradients(params, samples, labels, losses, entries, rng):
    """{loss: {kind: {index: dL/dθ}}} by finite differences; one simulation serves every loss."""
    spiking = "first_spike" in losses
    out = {name: {} for name in losses}
    for kind in KINDS:
        base = np.asarray(params[kind], float)
        scale = float(np.sqrt(np.mean(base ** 2))) or 1.0
        flat = rng.choice(base.size, size=min(entries, base.size), replace=False)
        for name in losses:
            out[name][kind] = {}
        for index in (np.unravel_index(i, base.shape) for i in flat):
            cache = {}

            def simulated(x, index=index):
                if x not in cache:
                    arr = base.copy()
                    arr[index] = x
                    p = dict(params, **{kind: arr})
                    cache[x] = [ref.simulate(p, tm, ch, T, spiking_readout=spiking) for tm, ch in samples]
                return cache[x]

            x0 = float(base[index])
            for name in losses:
                def f(x, name=name):
                    rs = simulated(x)
                    return (float(np.mean([ref.loss_from_result(name, r, lab) for r, lab in zip(rs, labels)])),
                            tuple(ref.signature_from_result(r, name) for r in rs))
                value, _ = fd_derivative(f, None, x0, 1e-3 * max(abs(x0), scale))
                if value is not None:
                    out[name][kind][index] = value
    return out


def engine_errors(params, samples, labels, name, exact, dts, in_step_order=True):
    """Per dt: {kind: relative error}, and whether the grid network fired as the exact one."""
    from kernels import Params, get_engine, make_batch

    from eventprop_lab.gradient import loss_and_gradients
    from eventprop_lab.losses import get_loss

    engine, loss, p = get_engine("numba", in_step_order=in_step_order), get_loss(name), Params(**params)
    expected = [ref.simulate(params, tm, ch, T).counts.sum() for tm, ch in samples]
    rows = []
    for dt in dts:
        batch = make_batch(samples, p.n_in, dt, int(round(T / dt)))
        res = loss_and_gradients(engine, p, batch, labels, loss, train_tau=True)
        same = res.record.counts.sum(1).tolist() == expected
        g = res.gradients._asdict()
        err = {}
        for kind, entries in exact.items():
            if not entries:
                continue
            # below FD_FLOOR a finite difference is rounding noise (1e-11 where the loss does not
            # depend on the entry at all, e.g. W_rec after every first spike of first_spike)
            b = np.array(list(entries.values()))
            b = np.where(np.abs(b) < FD_FLOOR, 0.0, b)
            if not b.any():
                continue
            a = np.array([g[kind][i] for i in entries])
            err[kind] = float(np.linalg.norm(a - b) / np.linalg.norm(b))
        rows.append((err, same))
    return rows


def fitted_order(dts, errs, upto=0.1):
    """Least-squares slope of log(err) against log(dt) over the dts ≤ upto ms (all if fewer than 2)."""
    dts, errs = np.asarray(dts, float), np.asarray(errs, float)
    use = (dts <= upto + 1e-12) & (errs > 0) & np.isfinite(errs)
    if use.sum() < 2:
        use = (errs > 0) & np.isfinite(errs)
    if use.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(dts[use]), np.log(errs[use]), 1)[0])


def draw(seed_seq, name, input_grid=1.0, n_samples=2):
    """A random network (W_out = |W_out| + 1 for first_spike, so that readouts fire), its samples,
    labels, and the rng that goes on to pick the checked entries."""
    rng = np.random.default_rng(seed_seq)
    params, samples = ref.random_network(rng, T=T, n_samples=n_samples, input_grid=input_grid)
    if name == "first_spike":
        params["W_out"] = np.abs(params["W_out"]) + 1.0
    labels = np.arange(len(samples)) % 3
    return params, samples, labels, rng


def skip_reason(params, samples, labels, gap):
    """Why the network cannot be used, or None: hidden spikes closer than gap ms in the exact run
    (the grid cannot resolve them), or a label readout that never fires (first_spike: infinite loss)."""
    results = [ref.simulate(params, tm, ch, T, spiking_readout=True) for tm, ch in samples]
    if min_separation(results) < gap:
        return "close spikes"
    if not all(np.isfinite(r.out_first_spike[lab]) for r, lab in zip(results, labels)):
        return "silent label readout"
    return None
