"""Careful finite differences for losses that are smooth only while no spike appears or vanishes.

A 4th-order central stencil is evaluated at steps h0, h0/10, h0/100; a step is discarded if any
stencil point changes the spike-count signature relative to x0, and the estimate is accepted only
where two successive valid steps agree (spec §10: a single fixed step gave errors up to 1e-4).
"""
import numpy as np

STEP_DIVISORS = (1.0, 10.0, 100.0)


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def fd_derivative(f, counts, x0, h0, rtol=1e-4, atol=1e-10):
    """Derivative of f at x0, or None when it cannot be trusted; returns (value, info).

    f(x) -> float. counts(x) -> comparable signature (spike counts); if counts is None, f(x) must
    return (value, signature) so one simulation serves both. Two successive valid step estimates
    D1, D2 agree when |D1 − D2| ≤ rtol·max(|D1|, |D2|) + atol; of the best-agreeing pair the
    smaller-step estimate is returned (its truncation error is ~1e-4 of the measured disagreement).
    info: steps, estimates (None where discarded), disagreement (relative), reason.
    """
    def evaluate(x):
        if counts is None:
            return f(x)
        return f(x), counts(x)

    _, c0 = evaluate(x0)
    steps = [h0 / m for m in STEP_DIVISORS]
    estimates = []
    for h in steps:
        vals = []
        for x in (x0 - 2 * h, x0 - h, x0 + h, x0 + 2 * h):
            v, c = evaluate(x)
            if not _same(c, c0):
                vals = None
                break
            vals.append(v)
        estimates.append(None if vals is None else
                         (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h))
    info = dict(steps=steps, estimates=estimates, disagreement=None, reason="")
    valid = [d for d in estimates if d is not None and np.isfinite(d)]
    if len(valid) < 2:
        info["reason"] = "fewer than two valid steps (spike counts change)"
        return None, info
    best, best_score = None, np.inf
    for d1, d2 in zip(valid[:-1], valid[1:]):
        score = abs(d1 - d2) / (rtol * max(abs(d1), abs(d2)) + atol)
        if score < best_score:
            best, best_score = (d1, d2), score
    d1, d2 = best
    scale = max(abs(d1), abs(d2))
    info["disagreement"] = abs(d1 - d2) / scale if scale > 0 else 0.0
    if best_score > 1.0:
        info["reason"] = "successive steps disagree"
        return None, info
    info["reason"] = "ok"
    return d2, info


def fd_gradient(loss_of_params, counts_of_params, params, key, indices, rel_step=1e-3,
                return_info=False, **fd_kw):
    """Finite-difference dL/dparams[key][index] for each index; dict index -> value or None.

    loss_of_params(params) -> float; counts_of_params(params) -> signature (or None, then
    loss_of_params returns (value, signature)). The step is rel_step·max(|x|, rms of the array),
    so weights near zero still get a step on their array's scale. params is not modified.
    """
    base = np.asarray(params[key], dtype=float)
    scale = float(np.sqrt(np.mean(base ** 2))) or 1.0
    out, infos = {}, {}
    for index in indices:
        x0 = float(base[index])

        def with_value(x, index=index):
            p = dict(params)
            arr = base.copy()
            arr[index] = x
            p[key] = arr
            return p

        f = lambda x: loss_of_params(with_value(x))
        c = None if counts_of_params is None else (lambda x: counts_of_params(with_value(x)))
        out[index], infos[index] = fd_derivative(f, c, x0, rel_step * max(abs(x0), scale), **fd_kw)
    return (out, infos) if return_info else out
