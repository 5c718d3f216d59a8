"""The kernels never read or write outside their arrays: every option, run with numba's bounds
checking on (in a subprocess, so the checked build does not replace the fast one)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import numpy as np
    from kernels import Params, get_engine, make_batch
    from eventprop_lab.gradient import loss_and_gradients
    from eventprop_lab.losses import LOSSES, get_loss
    from eventprop_lab.regularisers import SpikeCountRegulariser

    rng = np.random.default_rng(0)
    n_in, N, K = 12, 9, 3
    samples = [(np.sort(rng.uniform(0, 60, 80)), rng.integers(0, n_in, 80)) for _ in range(3)]
    samples.append((np.zeros(0), np.zeros(0, int)))  # an empty sample
    batch = make_batch(samples, n_in, 0.5, 120)
    labels = np.array([0, 1, 2, 1])
    reg = SpikeCountRegulariser(2.0, 1e-3, 1e-3)
    for recurrent in (True, False):
        for dtype in (np.float32, np.float64):
            p = Params(rng.normal(0.5, 0.3, (n_in, N)), rng.normal(0, 0.2, (N, N)) if recurrent else None,
                       np.abs(rng.normal(0, 1.0, (N, K))) + 0.8, rng.uniform(8, 30, N), rng.uniform(2, 8, N),
                       np.full(K, 20.0), np.full(K, 5.0)).astype(dtype)
            engine = get_engine("numba", initial_capacity=4)  # the store must grow
            for name in LOSSES:
                for train_tau in (False, True):
                    res = loss_and_gradients(engine, p, batch, labels, get_loss(name), reg,
                                             train_tau=train_tau, probe_samples=[3, 0])
                    assert all(np.all(np.isfinite(g)) for g in res.gradients if g is not None), name
                    assert res.record.n_spikes.max() > 4
    print("bounds checked: ok")
""")


def test_kernels_stay_in_bounds_for_every_option(tmp_path):
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path))
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=repo, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "bounds checked: ok" in out.stdout
