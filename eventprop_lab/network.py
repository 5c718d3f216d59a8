"""Network parameters: initialisation (spec §6), heterogeneous time constants (spec §1), and
saving/loading as .npz written atomically."""
import os
import tempfile
from pathlib import Path

import numpy as np
import param

from kernels import Params, check_params


class NetworkConfig(param.Parameterized):
    """Shape and initialisation of input -> LIF hidden -> readout."""

    n_in = param.Integer(700, bounds=(1, None), doc="input channels of the data (before the delay line)")
    n_hidden = param.Integer(256, bounds=(1, 100_000), doc="hidden LIF neurons")
    n_out = param.Integer(20, bounds=(1, 10_000), doc="readout neurons (classes)")
    recurrent = param.Boolean(True, doc="dense hidden-to-hidden connections")
    delay_line = param.Boolean(False, doc="add delayed copies of every input channel; input init is scaled by 1/10")
    n_delays = param.Integer(10, bounds=(1, 50), doc="delayed copies per channel (delay line)")
    delay_ms = param.Number(30.0, bounds=(0.1, 500.0), doc="delay between copies in ms (delay line)")
    include_undelayed = param.Boolean(True, doc="the delay line keeps an undelayed copy too (11 copies, as the "
                                                "paper's code; off: 10 copies from 0 ms, as mlGeNN)")
    heterogeneous_tau = param.Boolean(False, doc="draw hidden tau_mem, tau_syn from Gamma distributions")
    het_weight_norm = param.Boolean(False, doc="with heterogeneous tau, scale each hidden neuron's incoming "
                                              "weights by (tau_syn/tau_syn_j)*sqrt(tau_mem_j/tau_mem) so all "
                                              "start at similar rates")
    tau_mem = param.Number(20.0, bounds=(0.1, 1000.0), doc="hidden membrane time constant (ms)")
    tau_syn = param.Number(5.0, bounds=(0.1, 1000.0), doc="hidden synaptic time constant (ms)")
    tau_mem_out = param.Number(20.0, bounds=(0.1, 1000.0), doc="readout membrane time constant (ms)")
    tau_syn_out = param.Number(5.0, bounds=(0.1, 1000.0), doc="readout synaptic time constant (ms)")
    w_in_mean = param.Number(0.03, doc="mean of input weights")
    w_in_std = param.Number(0.01, bounds=(0, None), doc="std of input weights")
    w_rec_mean = param.Number(0.0, doc="mean of recurrent weights")
    w_rec_std = param.Number(0.02, bounds=(0, None), doc="std of recurrent weights")
    w_out_mean = param.Number(None, allow_None=True,
                              doc="mean of readout weights (unset: 1.2 for first_spike, 0 for the other losses)")
    w_out_std = param.Number(None, allow_None=True, bounds=(0, None),
                             doc="std of readout weights (unset: 0.6 for first_spike, 0.03 for the other losses)")
    init_rate_hz = param.Number(0.0, bounds=(0.0, 1000.0),
                                doc="after init, scale input weights by one factor so the hidden layer fires this "
                                    "many Hz on 64 training samples (0: off)")


def n_inputs(config: NetworkConfig):
    """Rows of W_in: the data's channels, times the copies of the delay line when it is on."""
    if not config.delay_line:
        return config.n_in
    copies = config.n_delays + (1 if config.include_undelayed else 0)
    return config.n_in * copies


# Readout weights per loss (spec §3, §6). first_spike's readouts are spiking LIF: from N(0, 0.03)
# they never spike, no first-spike time exists and the loss gives no gradient (chance accuracy).
READOUT_INIT = {"first_spike": (1.2, 0.6)}
READOUT_INIT_DEFAULT = (0.0, 0.03)


def readout_init(config: NetworkConfig, loss=None):
    """(mean, std) of the readout weights: the config's where set, else the loss's default."""
    mean, std = READOUT_INIT.get(loss, READOUT_INIT_DEFAULT)
    return (mean if config.w_out_mean is None else config.w_out_mean,
            std if config.w_out_std is None else config.w_out_std)


def het_gain(config: NetworkConfig, tau_mem, tau_syn):
    """Per hidden neuron, the factor het_weight_norm puts on its incoming weights at init."""
    return (config.tau_syn / np.asarray(tau_syn, np.float64)) * np.sqrt(np.asarray(tau_mem, np.float64) / config.tau_mem)


def init_params(config: NetworkConfig, rng, dtype=np.float32, loss=None) -> Params:
    """Draw initial weights and time constants (spec §6; hetLIF per spec §1); `loss` picks the
    readout init where the config leaves it unset."""
    rng = np.random.default_rng(rng)
    scale = 0.1 if config.delay_line else 1.0
    W_in = rng.normal(config.w_in_mean * scale, config.w_in_std * scale, (n_inputs(config), config.n_hidden))
    W_rec = (rng.normal(config.w_rec_mean, config.w_rec_std, (config.n_hidden, config.n_hidden))
             if config.recurrent else None)
    W_out = rng.normal(*readout_init(config, loss), (config.n_hidden, config.n_out))
    if config.heterogeneous_tau:
        tau_mem = np.clip(rng.gamma(3.0, config.tau_mem / 3.0, config.n_hidden), 3.0, 60.0)
        tau_syn = np.clip(rng.gamma(3.0, config.tau_syn / 3.0, config.n_hidden), 1.0, 15.0)
        if config.het_weight_norm:
            # A neuron's initial rate grows about as tau_syn^2 / tau_mem (fit on randman-shd:
            # exponents 2.1 and -0.85), so the Gamma draws alone leave a tail of 100+ Hz neurons
            # next to silent ones; in a recurrent layer the regulariser's adjoint of that tail,
            # carried back through W_rec, outweighs each neuron's own term and the regulariser
            # pushes about half the neurons the wrong way (docs/results.md, "Why training was
            # unstable"). Scaling the incoming weights keeps the tau diversity but not the spread.
            gain = het_gain(config, tau_mem, tau_syn)
            W_in = W_in * gain[None, :]
            if W_rec is not None:
                W_rec = W_rec * gain[None, :]
    else:
        tau_mem = np.full(config.n_hidden, config.tau_mem)
        tau_syn = np.full(config.n_hidden, config.tau_syn)
    return Params(W_in, W_rec, W_out, tau_mem, tau_syn, np.full(config.n_out, config.tau_mem_out),
                  np.full(config.n_out, config.tau_syn_out)).astype(dtype)


def atomic_write(path, write):
    """Call write(file_object) on a temp file beside path, then rename it over path.

    A crash or Ctrl-C leaves either the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_npz(path, what):
    """All arrays of an .npz file (no pickles), or an error naming the file and what it should be."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile/ValueError/OSError: all mean the file is unusable
        raise ValueError(f"{path} is not a readable {what} ({exc})") from exc


def save_params(path, params: Params, **extra):
    """Save parameters (and extra named arrays) as .npz, atomically."""
    arrays = {k: v for k, v in params._asdict().items() if v is not None}
    for k, v in extra.items():
        arrays[f"extra/{k}"] = np.asarray(v)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_params(path):
    """Load parameters saved by save_params; returns (Params, extra dict)."""
    data = read_npz(path, ".npz parameter file")
    missing = [k for k in Params._fields if k != "W_rec" and k not in data]
    if missing:
        raise ValueError(f"{path} lacks parameter arrays {missing}")
    params = Params(**{k: data.get(k) for k in Params._fields})
    check_params(params)
    extra = {k[len("extra/"):]: v for k, v in data.items() if k.startswith("extra/")}
    return params, extra


def calibrate_input_gain(params: Params, forward_counts, target_spikes, low=1 / 64, high=16.0, rel_tol=0.05,
                         max_iter=20):
    """Scale W_in by one factor so that the hidden layer's mean spike count per trial on some
    training data is `target_spikes`; returns (new params, factor, mean count reached).

    forward_counts(params) -> (B, N) spike counts of a forward pass on a fixed batch. The count
    grows monotonically with the factor in practice, so the factor is found by bisection in log
    space. Why: the paper's input init (N(0.03, 0.01)) was tuned on SHD; input as dense as the
    synthetic spoken digits starts the hidden layer at 65-100 Hz for a target of 14 spikes, and
    the regulariser's first steps then move every input weight at once (docs/results.md, "Why
    training was unstable")."""
    def mean_count(g):
        return float(np.mean(forward_counts(params._replace(W_in=(params.W_in * g).astype(params.W_in.dtype)))))

    lo, hi = np.log(low), np.log(high)
    g, reached = 1.0, mean_count(1.0)
    for _ in range(max_iter):
        if abs(reached - target_spikes) <= rel_tol * target_spikes:
            break
        if reached > target_spikes:
            hi = np.log(g)
        else:
            lo = np.log(g)
        g = float(np.exp(0.5 * (lo + hi)))
        reached = mean_count(g)
    return params._replace(W_in=(params.W_in * g).astype(params.W_in.dtype)), g, reached
