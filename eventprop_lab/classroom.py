"""The classroom demos of spec §3 ("Why loss shaping helps; classroom demo"), computed with the
project's engine: the cliff (the paper's Fig. 1), the gedankenexperiment (Fig. 2) and where the
adjoint signal goes (Fig. 3). Every number comes from the engine's forward and adjoint passes;
app/classroom.py and notebooks/02_accidental_gradient_ascent.ipynb only plot what is returned here.

Units are the engine's (docs/engine.md): ms, threshold 1, reset 0, a spike adds w to I, and
tau_m dV/dt = -V + I, so one input spike of weight w gives V(t) = w * psp(t) with
psp(t) = tau_s/(tau_m - tau_s) (exp(-t/tau_m) - exp(-t/tau_s)). (The factor is tau_s/(tau_m - tau_s),
not tau_m/(tau_m - tau_s): with tau_m = 20 ms, tau_s = 5 ms the critical weight is about 6.35.)"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import param

from kernels import LossSource, Params, get_engine, make_batch
from kernels.numba_backend import THRESHOLD

from .gradient import loss_and_gradients
from .losses import get_loss
from .network import NetworkConfig, init_params
from .observe import probe_data
from .toy import spike_patterns
from .training import Trainer, TrainingConfig

TAU_MEM, TAU_SYN = 20.0, 5.0  # ms, spec §1
CLASSROOM_LOSSES = ("sum", "sum_exp", "avg_xentropy")


def _engine(engine):
    return engine if engine is not None else get_engine("numba")


def _check_taus(tau_mem, tau_syn):
    for name, x in (("tau_mem", tau_mem), ("tau_syn", tau_syn)):
        if not (np.isfinite(x) and x > 0):
            raise ValueError(f"{name} must be a positive number of ms, got {x!r}")


# ---- 1. The cliff ---------------------------------------------------------------------------
def psp(t, tau_mem=TAU_MEM, tau_syn=TAU_SYN):
    """V at time t after one input spike of unit weight (0 before it), in the engine's units."""
    _check_taus(tau_mem, tau_syn)
    t = np.asarray(t, np.float64)
    tp = np.maximum(t, 0.0)
    if tau_mem == tau_syn:
        k = tp / tau_mem * np.exp(-tp / tau_mem)
    else:
        k = tau_syn / (tau_mem - tau_syn) * (np.exp(-tp / tau_mem) - np.exp(-tp / tau_syn))
    return np.where(t > 0, k, 0.0)


def psp_peak(tau_mem=TAU_MEM, tau_syn=TAU_SYN):
    """(time after the input spike, height) of the maximum of psp."""
    _check_taus(tau_mem, tau_syn)
    if tau_mem == tau_syn:
        t = tau_mem
    else:
        t = tau_mem * tau_syn / (tau_mem - tau_syn) * np.log(tau_mem / tau_syn)
    return float(t), float(psp(t, tau_mem, tau_syn))


def critical_weight(tau_mem=TAU_MEM, tau_syn=TAU_SYN, threshold=THRESHOLD):
    """The weight below which one input spike no longer makes the neuron fire: threshold / PSP peak."""
    return threshold / psp_peak(tau_mem, tau_syn)[1]


def grid_tolerance(dt, tau_mem=TAU_MEM, tau_syn=TAU_SYN):
    """Relative amount by which a time-stepped engine can overestimate the critical weight.

    The engine tests V >= threshold only at step ends, which lie at most dt/2 from the peak; there
    V = V_peak (1 - (t - t_peak)^2 / (2 tau_m tau_s) + ...), so the height it can miss is
    dt^2 / (8 tau_m tau_s) of the peak."""
    return dt * dt / (8.0 * tau_mem * tau_syn)


@dataclass(frozen=True)
class OneNeuron:
    """One input spike at t_input into LIF neurons that differ only in their input weight (spec §3
    recipe, step 1). Several weights are simulated at once as several independent neurons."""

    tau_mem: float = TAU_MEM
    tau_syn: float = TAU_SYN
    dt: float = 0.05
    t_input: float = 5.0
    trial_ms: float = 60.0

    def __post_init__(self):
        _check_taus(self.tau_mem, self.tau_syn)
        if not (np.isfinite(self.dt) and 0 < self.dt <= 1.0):
            raise ValueError(f"dt must lie in (0, 1] ms for this demo, got {self.dt!r}")
        if not (0 <= self.t_input < self.trial_ms):
            raise ValueError(f"t_input must lie in [0, trial_ms), got {self.t_input!r} with trial_ms {self.trial_ms!r}")
        if self.t_input + psp_peak(self.tau_mem, self.tau_syn)[0] + self.dt >= self.trial_ms:
            raise ValueError("the trial ends before the PSP peaks; lengthen trial_ms")

    @property
    def n_steps(self):
        return int(round(self.trial_ms / self.dt))

    def params(self, weights):
        w = np.asarray(weights, np.float64).reshape(-1)
        if len(w) == 0 or not np.all(np.isfinite(w)):
            raise ValueError("weights must be a non-empty array of finite numbers")
        n = len(w)
        # one readout with zero weights: the engine needs one, and it must not feed anything back
        return Params(w[None, :].copy(), None, np.zeros((n, 1)), np.full(n, self.tau_mem), np.full(n, self.tau_syn),
                      np.full(1, self.tau_mem), np.full(1, self.tau_syn))

    def batch(self):
        return make_batch([(np.array([self.t_input]), np.array([0]))], 1, self.dt, self.n_steps)


class CliffSweep(NamedTuple):
    weights: np.ndarray
    spike_time: np.ndarray  # first spike (ms), NaN where the neuron is silent
    dt_dw: np.ndarray  # d(first spike time)/dw from the engine's adjoint, NaN where silent
    n_spikes: np.ndarray


def _spike_times(record, sample=0):
    n = int(record.n_spikes[sample])
    t = record.spike_step[sample, :n] * record.dt - record.spike_lag[sample, :n]
    return t, record.spike_id[sample, :n]


def cliff_sweep(weights, neuron=OneNeuron(), engine=None):
    """First spike time t*(w) and its exact gradient dt*/dw for each weight, from one forward and one
    adjoint pass."""
    eng = _engine(engine)
    p, batch = neuron.params(weights), neuron.batch()
    rec = eng.forward(p, batch, record_readout_samples=False)
    times, ids = _spike_times(rec)
    n = p.n_hidden
    first = np.full(n, -1)
    for q in range(len(ids) - 1, -1, -1):
        first[ids[q]] = q
    spiked = first >= 0
    # the "loss" is the sum of first spike times: through spec §2's dl/dt_k slot of the jump, the
    # adjoint then returns dL/dw_j = dt*_j/dw_j (the neurons are independent)
    dl_dspike = np.zeros(rec.spike_step.shape)
    dl_dspike[0, first[spiked]] = 1.0
    grads, _ = eng.backward(p, batch, rec, LossSource(dl_dspike=dl_dspike))
    t_first = np.full(n, np.nan)
    t_first[spiked] = times[first[spiked]]
    return CliffSweep(p.W_in[0].copy(), t_first, np.where(spiked, grads.W_in[0], np.nan), rec.counts[0].copy())


_critical_cache = {}


def critical_weight_numeric(neuron=OneNeuron(), n_spikes=1, rel_tol=1e-10, engine=None):
    """The smallest weight at which the engine's neuron fires n_spikes times, by bisection on its
    forward pass (n_spikes=2: where a second spike is created). Remembered per setting, since
    every page of the app asks for the same ones."""
    if int(n_spikes) != n_spikes or n_spikes < 1:
        raise ValueError(f"n_spikes must be a positive integer, got {n_spikes!r}")
    if not 0 < rel_tol < 1e-2:
        raise ValueError(f"rel_tol must lie in (0, 0.01), got {rel_tol!r}")
    eng = _engine(engine)
    key = (neuron, int(n_spikes), float(rel_tol), eng.name, getattr(eng, "min_slope", None))
    if key not in _critical_cache:
        _critical_cache[key] = _bisect_spike_count(neuron, int(n_spikes), rel_tol, eng)
    return _critical_cache[key]


def _bisect_spike_count(neuron, n_spikes, rel_tol, eng):
    batch = neuron.batch()

    def fires(w):
        return eng.forward(neuron.params([w]), batch, record_readout_samples=False).counts[0, 0] >= n_spikes

    lo, hi = 0.0, critical_weight(neuron.tau_mem, neuron.tau_syn)
    for _ in range(40):
        if fires(hi):
            break
        lo, hi = hi, 2 * hi
    else:
        raise ValueError(f"no weight up to {hi:.3g} gives {n_spikes} spikes within the trial")
    while hi - lo > rel_tol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if fires(mid) else (mid, hi)
    return hi


class VoltageTrace(NamedTuple):
    t: np.ndarray  # grid times t_n (ms)
    v: np.ndarray  # V(t_n) as the engine holds it (after any reset)
    spike_times: np.ndarray


def voltage_trace(w, neuron=OneNeuron(), engine=None):
    """The engine's membrane potential of one neuron with input weight w, and its spikes."""
    p = neuron.params([w])
    rec = _engine(engine).forward(p, neuron.batch(), record_readout_samples=False, record_state=True)
    return VoltageTrace(np.arange(neuron.n_steps) * neuron.dt, rec.state_v[0, :, 0].copy(), _spike_times(rec)[0])


# ---- 2. The gedankenexperiment --------------------------------------------------------------
class GedankenState(NamedTuple):
    step: int
    w_b: float  # input weight of hidden neuron B, the one that learns
    loss: float
    grad_w_b: float  # dL/dw_B from the engine's adjoint
    spikes_a: np.ndarray  # spike times (ms) of hidden neuron A
    spikes_b: np.ndarray
    transported_b: np.ndarray  # sum_k w_Bk (lambda_V - lambda_I)_k arriving at B's spikes
    readout_v: np.ndarray  # (n_steps, 2): readout voltage averaged over each step; class 0 is correct


class Landscape(NamedTuple):
    weights: np.ndarray
    loss: np.ndarray
    grad: np.ndarray  # dL/dw_B from the engine at each weight
    n_spikes_b: np.ndarray


class Gedankenexperiment:
    """Exact gradient descent, one step at a time, on a minimal two-class network (spec §3).

    Channel 0 fires at 2 ms into hidden neuron A, channel 1 at 12 ms into hidden neuron B; the
    network has two readouts and the sample's class is 0. A drives the correct readout (weight 4).
    - "deletion": B drives the correct readout too, so its spike helps. With avg_xentropy the
      exact gradient asks for that spike to come later (its PSP would then cover more of the silent
      tail); descent lowers w_B, the spike moves later ever faster, falls off the cliff, and the loss
      jumps up. From then on the gradient is exactly zero: it cannot bring the spike back.
    - "creation": B drives the wrong readout, so its spike hurts, and the gradient asks for it to
      come earlier; descent raises w_B until a second (also harmful) spike appears, which the
      gradient could not see: the loss jumps up.
    Choices where the spec is silent: only B's input weight learns (readout weights and A are
    fixed, so the loss along w_B, `landscape()`, is the whole story); plain gradient descent
    w_B <- w_B - lr dL/dw_B; B starts at 1.15 critical weights (deletion) or 0.97 of the weight that
    gives a second spike (creation), both found with the engine; the default learning rates (100
    and 200) make the jump come after about nine steps with avg_xentropy."""

    SCENARIOS = ("deletion", "creation")
    START = {"deletion": 1.15, "creation": 0.97}  # times the event weight (critical, or two-spike)
    LEARNING_RATE = {"deletion": 100.0, "creation": 200.0}
    W_OUT = 4.0

    def __init__(self, scenario="deletion", loss="avg_xentropy", learning_rate=None, dt=0.1, trial_ms=100.0,
                 engine=None):
        if scenario not in self.SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(self.SCENARIOS)}")
        if loss not in CLASSROOM_LOSSES:
            raise ValueError(f"loss must be one of {', '.join(CLASSROOM_LOSSES)}, got {loss!r}")
        lr = self.LEARNING_RATE[scenario] if learning_rate is None else learning_rate
        if not (np.isfinite(lr) and lr > 0):
            raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
        if trial_ms < 40.0:
            raise ValueError(f"trial_ms must be at least 40 ms (the spikes come at up to ~30 ms), got {trial_ms!r}")
        self.scenario, self.loss_name, self.learning_rate = scenario, loss, float(lr)
        self.engine = _engine(engine)
        self.loss = get_loss(loss)
        self.dt, self.trial_ms = float(dt), float(trial_ms)
        self.batch = make_batch([(np.array([2.0, 12.0]), np.array([0, 1]))], 2, self.dt, int(round(trial_ms / dt)))
        self.labels = np.array([0])
        single = OneNeuron(dt=self.dt, t_input=2.0, trial_ms=self.trial_ms)
        self.critical = critical_weight_numeric(single, 1, engine=self.engine)
        if scenario == "deletion":
            self.event_weight = self.critical  # the spike vanishes below it
            target = 0
        else:
            self.event_weight = critical_weight_numeric(single, 2, engine=self.engine)  # a second spike above it
            target = 1
        W_out = np.zeros((2, 2))
        W_out[0, 0] = self.W_OUT
        W_out[1, target] = self.W_OUT
        tau = np.full(2, TAU_MEM), np.full(2, TAU_SYN)
        self._base = Params(np.diag([1.3 * self.critical, 0.0]), None, W_out, *tau, *tau)
        self.history = [self._evaluate(self.START[scenario] * self.event_weight, 0)]

    def params(self, w_b):
        W_in = self._base.W_in.copy()
        W_in[1, 1] = w_b
        return self._base._replace(W_in=W_in)

    def _evaluate(self, w_b, step):
        res = loss_and_gradients(self.engine, self.params(w_b), self.batch, self.labels, self.loss, probe_samples=[0])
        times, ids = _spike_times(res.record)
        transported = res.probe.transported[0, :len(ids)]
        return GedankenState(step, float(w_b), float(res.loss.value), float(res.gradients.W_in[1, 1]),
                             times[ids == 0], times[ids == 1], transported[ids == 1], res.record.mean_v[0].copy())

    @property
    def state(self):
        return self.history[-1]

    def step(self):
        """One exact gradient descent step on w_B; returns the new state."""
        s = self.state
        self.history.append(self._evaluate(s.w_b - self.learning_rate * s.grad_w_b, s.step + 1))
        return self.state

    def reset(self):
        del self.history[1:]
        return self.state

    def events(self):
        """Steps at which B's number of spikes changed (deleted or created)."""
        counts = [len(s.spikes_b) for s in self.history]
        return [k for k in range(1, len(counts)) if counts[k] != counts[k - 1]]

    def landscape(self, weights=None, with_gradient=False):
        """Loss along w_B (everything else fixed): smooth, then a jump; with_gradient adds the
        engine's dL/dw_B at each weight (an adjoint pass each, so twice the time)."""
        if weights is None:
            lo, hi = (0.9, 1.25) if self.scenario == "deletion" else (0.9, 1.06)
            weights = np.linspace(lo, hi, 71) * self.event_weight
        weights = np.asarray(weights, np.float64).reshape(-1)
        if len(weights) == 0 or not np.all(np.isfinite(weights)):
            raise ValueError("weights must be a non-empty array of finite numbers")
        loss, grad, n = np.empty(len(weights)), np.full(len(weights), np.nan), np.empty(len(weights), int)
        for i, w in enumerate(weights):
            p = self.params(w)
            if with_gradient:
                res = loss_and_gradients(self.engine, p, self.batch, self.labels, self.loss)
                rec, loss[i], grad[i] = res.record, res.loss.value, res.gradients.W_in[1, 1]
            else:
                rec = self.engine.forward(p, self.batch, **self.loss.record_options())
                loss[i] = self.loss.evaluate(rec, self.labels, p).value
            n[i] = rec.counts[0, 1]
        return Landscape(weights, loss, grad, n)


# ---- 3. Where the signal goes ---------------------------------------------------------------
class SignalConfig(param.Parameterized):
    """A one-class training run for the Fig. 3 picture. Inputs come only in the first input_ms of
    the trial, so the rest is a silent tail (as in SHD); the hidden layer is feed-forward, so what
    arrives at a hidden spike is sum_k W_out[j, k] (lambda_V - lambda_I)_k over the readouts only;
    the spike-count regulariser is off, so any silencing is the loss's own doing."""

    loss = param.Selector(objects=list(CLASSROOM_LOSSES), default="avg_xentropy", doc="loss function (spec §3)")
    epochs = param.Integer(4, bounds=(0, 50), doc="epochs of training before the probe")
    lr = param.Number(1e-2, bounds=(1e-5, 1.0), doc="Adam learning rate (no warm-up)")
    n_samples = param.Integer(64, bounds=(1, 1024), doc="training samples, all of class 0")
    batch_size = param.Integer(16, bounds=(1, 1024), doc="samples per batch")
    n_in = param.Integer(40, bounds=(1, 1000), doc="input channels")
    n_hidden = param.Integer(64, bounds=(5, 1000), doc="hidden LIF neurons")
    n_out = param.Integer(20, bounds=(2, 100), doc="readouts (classes); only class 0 is ever shown")
    trial_ms = param.Number(1000.0, bounds=(50.0, 5000.0), doc="trial length (ms)")
    input_ms = param.Number(300.0, bounds=(10.0, 5000.0), doc="inputs fall in [0, input_ms); the rest is silent")
    dt = param.Number(1.0, bounds=(0.05, 2.0), doc="time step (ms)")
    n_top = param.Integer(5, bounds=(1, 20), doc="most active hidden neurons to mark")
    late_fraction = param.Number(0.25, bounds=(0.01, 1.0),
                                 doc="'late' spikes: the last fraction of the span of hidden activity")
    seed = param.Integer(0, doc="seed of data and initial weights")


class SignalResult(NamedTuple):
    loss: str
    label: int
    history: dict  # per epoch (0 = before training): loss, accuracy, rate_hz, silent_fraction
    probe: dict  # observe.probe_data of one training sample after training
    trial_ms: float
    top: np.ndarray  # the most active hidden neurons of the probed sample, most active first
    top_sums: np.ndarray  # sum of the transported values over each top neuron's spikes
    late_from: float  # spikes at or after this time (ms) count as late
    late_sum: float  # transported values summed over the late spikes of all hidden neurons
    early_sum: float
    w_correct: np.ndarray  # W_out[:, label] after training
    rates_hz: np.ndarray  # hidden firing rates over the training set after training
    weight_rate_correlation: float  # corr(W_out[:, label], rate): < 0 when helpers are silenced


def signal_data(config):
    """Training samples (all of class 0, inputs only in [0, input_ms)) and the initial parameters."""
    if config.input_ms > config.trial_ms:
        raise ValueError(f"input_ms ({config.input_ms}) must not exceed trial_ms ({config.trial_ms})")
    samples, labels = spike_patterns(config.n_samples, n_classes=1, n_channels=config.n_in,
                                     duration_ms=config.input_ms, spikes_per_template=5 * config.n_in,
                                     seed=config.seed)
    net = NetworkConfig(n_in=config.n_in, n_hidden=config.n_hidden, n_out=config.n_out, recurrent=False,
                        w_in_mean=0.3, w_in_std=0.15, w_out_mean=0.0, w_out_std=0.3)
    return samples, labels, init_params(net, rng=config.seed, dtype=np.float64)


def where_the_signal_goes(config=None, engine=None, progress=None, **overrides):
    """Train on one class, then probe one training sample (spec §3, Fig. 3).

    progress(epoch, epochs) is called after each epoch (for a status line)."""
    if config is not None and overrides:
        raise ValueError(f"give either a SignalConfig or settings ({', '.join(overrides)}), not both")
    config = SignalConfig(**overrides) if config is None else config
    samples, labels, params = signal_data(config)
    training = TrainingConfig(loss=config.loss, lr=config.lr, warmup=False, batch_size=config.batch_size,
                              dt=config.dt, trial_ms=config.trial_ms, reg_strength=0.0, seed=config.seed)
    trainer = Trainer(params, training, engine=_engine(engine))
    rng = np.random.default_rng(config.seed)
    history = [trainer.evaluate(samples, labels)]
    for epoch in range(config.epochs):
        order = rng.permutation(len(samples))
        for start in range(0, len(order), config.batch_size):
            idx = order[start:start + config.batch_size]
            trainer.train_batch([samples[i] for i in idx], labels[idx])
        history.append(trainer.evaluate(samples, labels))
        if progress is not None:
            progress(epoch + 1, config.epochs)
    history = {k: np.array([h[k] for h in history]) for k in history[0]}
    history["epoch"] = np.arange(len(history["loss"]))
    p = trainer.params
    probed = [samples[0]]
    res = loss_and_gradients(trainer.engine, p, trainer.batch(probed), labels[:1], trainer.loss, probe_samples=[0])
    probe = probe_data(res, probed, p, sample=0)
    label = int(labels[0])
    probe["label"] = label
    ids, times, moved = probe["hidden_ids"], probe["hidden_times"], probe["transported"]
    counts = np.bincount(ids, minlength=p.n_hidden)
    top = np.argsort(-counts, kind="stable")[:config.n_top]
    top = top[counts[top] > 0]
    top_sums = np.array([moved[ids == j].sum() for j in top])
    if len(times):
        late_from = times.max() - config.late_fraction * (times.max() - times.min())
    else:
        late_from = np.nan
    late = times >= late_from
    rec = trainer.engine.forward(p, trainer.batch(samples), record_readout_samples=False)
    rates = rec.counts.mean(0) / (config.trial_ms / 1000.0)
    w = np.asarray(p.W_out[:, label], np.float64)
    corr = float(np.corrcoef(w, rates)[0, 1]) if rates.std() > 0 else np.nan
    return SignalResult(config.loss, label, history, probe, config.trial_ms, top, top_sums, float(late_from),
                        float(moved[late].sum()), float(moved[~late].sum()), w.copy(), rates, corr)
