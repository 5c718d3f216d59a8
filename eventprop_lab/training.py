"""One training step and evaluation on prepared batches: gradient, Adam, constraints."""
import numpy as np
import param

from kernels import BACKENDS, Params, get_engine, make_batch

from .gradient import loss_and_gradients
from .losses import LOSSES, get_loss
from .optim import Adam, LearningRateSchedule, NormClip
from .regularisers import SpikeCountRegulariser

TAU_MEM_MIN = 3.0  # ms, spec §1 (trainable time constants)
TAU_SYN_MIN = 1.0


class TrainingConfig(param.Parameterized):
    """How a network is trained (spec §6 defaults)."""

    loss = param.Selector(objects=list(LOSSES), default="sum_exp", doc="loss function (spec §3)")
    backend = param.Selector(objects=list(BACKENDS), default="numba",
                             doc="engine: numba (CPU, default) or genn (needs pygenn, built from GeNN's source)")
    lr = param.Number(1e-3, bounds=(0, 1), inclusive_bounds=(False, True), doc="Adam learning rate")
    warmup = param.Boolean(True, doc="start at lr/1000 and grow x1.05 per batch")
    batch_size = param.Integer(32, bounds=(1, 4096), doc="samples per batch")
    dt = param.Number(1.0, bounds=(0.01, 20.0), doc="time step (ms)")
    in_step_order = param.Boolean(True, doc="the hidden spikes of a step reach each other at their crossings, in time "
                                            "order (off: only at the step's end, as the genn backend always computes)")
    trial_ms = param.Number(1000.0, bounds=(1.0, 100_000.0), doc="trial length (ms); events after it are cropped")
    train_tau = param.Boolean(False, doc="train hidden tau_mem and tau_syn")
    reg_nu = param.Number(14.0, bounds=(0, None), doc="target spikes per hidden neuron per trial")
    reg_strength = param.Number(1e-8, bounds=(0, None),
                                doc="spike-count regulariser strength (0 = off); the paper's 5e-10 times tau_mem 20 ms, "
                                    "since our loss sources carry no extra 1/tau_mem (docs/choices.md)")
    w_in_lr_scale = param.Number(1.0, bounds=(0.0, 10.0), inclusive_bounds=(False, True),
                                 doc="Adam's learning rate for input weights times this (0.1 with the delay line, "
                                     "whose input weights start 10x smaller)")
    het_lr_norm = param.Boolean(False, doc="with het_weight_norm, scale Adam's learning rate for each hidden neuron's "
                                           "incoming weights (W_in, W_rec) by the factor its weights got at init")
    grad_clip = param.Number(5.0, bounds=(0.0, None),
                             doc="scale a batch's gradient down to this many times the median gradient norm of the "
                                 "last 100 batches (0: off); single outlier batches set off runaways")
    seed = param.Integer(0, doc="random seed")

    @property
    def n_steps(self):
        return int(round(self.trial_ms / self.dt))


class NonFiniteStep(FloatingPointError):
    """A batch whose loss, gradient or update is NaN or infinite; the trainer's parameters and
    Adam state are as they were before it. `what`: "loss", "gradient", "update" (the weights the
    update would give) or "weights" (the weights before it: no batch can repair those)."""

    def __init__(self, what, names=()):
        self.what, self.names = what, tuple(names)
        super().__init__(f"{self.describe()} (NaN or infinite); parameters and Adam state left unchanged")

    def describe(self):
        """'non-finite gradient (W_in)'"""
        kind = {"loss": "loss", "gradient": "gradient", "update": "weights after the update",
                "weights": "weights"}[self.what]
        return f"non-finite {kind}" + (f" ({', '.join(self.names)})" if self.names else "")

    def source(self):
        """'the gradient of W_in'"""
        names = f" of {', '.join(self.names)}" if self.names else ""
        return "the loss" if self.what == "loss" else f"the {self.what}{names}"


class Trainer:
    """Owns parameters, optimiser and schedule; trains on (samples, labels) batches."""

    def __init__(self, params: Params, config: TrainingConfig, engine=None, neuron_lr_scale=None):
        self.config = config
        self.engine = engine or get_engine(config.backend, **(
            {"in_step_order": config.in_step_order} if config.backend == "numba" else {}))
        if config.train_tau and not getattr(self.engine, "trains_tau", True):
            raise ValueError(f"the {self.engine.name} backend does not train time constants; "
                             "use backend numba or train_tau off")
        check_loss_supported(self.engine, config.loss)
        self.params = params
        lr_scale = {"W_in": config.w_in_lr_scale}
        if neuron_lr_scale is not None:
            # Adam moves every weight by about lr whatever its size: a neuron whose weights start
            # smaller gets a rate as much smaller, else its inputs move further relative to its drive
            g = np.asarray(neuron_lr_scale, np.float32)
            lr_scale = {"W_in": config.w_in_lr_scale * g, "W_rec": g}
        self.optimiser = Adam(lr=config.lr, lr_scale=lr_scale)
        self.schedule = LearningRateSchedule(config.lr, warmup=config.warmup)
        self.clip = NormClip(config.grad_clip)
        self.loss = get_loss(config.loss)

    def set_loss(self, name):
        check_loss_supported(self.engine, name)
        self.loss = get_loss(name)
        self.config.loss = name

    @property
    def regulariser(self):
        c = self.config.reg_strength
        return SpikeCountRegulariser(self.config.reg_nu, c, c) if c > 0 else None

    def batch(self, samples):
        return make_batch(samples, self.params.n_in, self.config.dt, self.config.n_steps)

    def train_batch(self, samples, labels, probe_samples=()):
        """One gradient step; returns metrics (and the step result for observers)."""
        broken = [k for k, v in self.params._asdict().items() if v is not None and not np.all(np.isfinite(v))]
        if broken:  # the engine would refuse them; a named reason lets a run stop cleanly
            raise NonFiniteStep("weights", broken)
        batch = self.batch(samples)
        res = loss_and_gradients(self.engine, self.params, batch, labels, self.loss, self.regulariser,
                                 train_tau=self.config.train_tau, probe_samples=probe_samples)
        grads = {k: v for k, v in res.gradients._asdict().items() if v is not None}
        bad = [k for k, g in grads.items() if not np.all(np.isfinite(g))]
        if not np.isfinite(res.loss.value):
            raise NonFiniteStep("loss")
        if bad:
            raise NonFiniteStep("gradient", bad)
        norm = float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grads.values())))
        self.clip.factor = self.config.grad_clip  # a hot change from the dashboard
        history = list(self.clip.history)
        scale = self.clip.scale(norm)
        if scale < 1.0:
            grads = {k: g * g.dtype.type(scale) for k, g in grads.items()}
        p = self.params._asdict()  # Adam puts new arrays in it: the old Params stay as they were
        bad = self.optimiser.step(p, grads, lr=self.schedule.lr)
        if bad:
            self.clip.history = history
            raise NonFiniteStep("update", bad)
        if self.config.train_tau:
            np.maximum(p["tau_mem"], TAU_MEM_MIN, out=p["tau_mem"])
            np.maximum(p["tau_syn"], TAU_SYN_MIN, out=p["tau_syn"])
        self.params = Params(**p)
        self.schedule.after_batch()
        metrics = _metrics(res, labels, self.config)
        metrics.update(grad_norm=norm, grad_scale=scale)  # the norm before clipping
        return metrics, res

    def evaluate(self, samples, labels, params=None):
        """Loss, accuracy and activity on a set, in batches, without learning (with `params`:
        those weights instead of the trainer's)."""
        params = self.params if params is None else params
        totals = {"loss": 0.0, "correct": 0, "spikes": 0.0, "silent": 0.0}
        n = len(samples)
        bs = self.config.batch_size
        for start in range(0, n, bs):
            batch = self.batch(samples[start:start + bs])
            rec = self.engine.forward(params, batch, **self.loss.record_options())
            out = self.loss.evaluate(rec, labels[start:start + bs], params)
            m = len(out.per_sample)
            totals["loss"] += out.per_sample.sum()
            totals["correct"] += int((out.prediction == labels[start:start + bs]).sum())
            totals["spikes"] += rec.counts.sum()
            totals["silent"] += (rec.counts.sum(0) == 0).mean() * m
        return {"loss": totals["loss"] / n, "accuracy": totals["correct"] / n,
                "rate_hz": totals["spikes"] / (n * params.n_hidden * self.config.trial_ms / 1000.0),
                "silent_fraction": totals["silent"] / n}


def check_loss_supported(engine, name):
    """ValueError if the engine cannot train this loss (the GeNN backend has fewer)."""
    get_loss(name)
    allowed = getattr(engine, "supported_losses", None)
    if allowed is not None and name not in allowed:
        raise ValueError(f"the {engine.name} backend cannot train the loss {name!r}; it supports "
                         f"{', '.join(allowed)} (use backend numba for the others)")


def _metrics(res, labels, config):
    counts = res.record.counts
    return {
        "loss": float(res.loss.value),
        "accuracy": float((res.loss.prediction == labels).mean()),
        "rate_hz": float(counts.mean() / (config.trial_ms / 1000.0)),
        "silent_fraction": float((counts.sum(0) == 0).mean()),
    }
