"""Adam with the paper's warm-up and plateau-halving schedule (spec §6)."""
import numpy as np


class Adam:
    """Adam over a dict of named arrays; each step replaces the dict's entries with new arrays."""

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, lr_scale=None):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        # per-parameter factors on the learning rate: Adam's step is about lr whatever a weight's
        # scale, so a matrix initialised 10x smaller (W_in with the delay line) moves 10x faster
        # relative to its size unless its rate is scaled with it
        self.lr_scale = dict(lr_scale or {})
        self.t = 0
        self.m = {}
        self.v = {}

    def step(self, params: dict, grads: dict, lr=None):
        """One update, all or nothing; names missing from grads (or None) are left alone.

        Returns the names of the parameters the update would make NaN or infinite (an overflow);
        then neither the parameters nor the moments change. An empty list: the update was applied."""
        lr = self.lr if lr is None else lr
        t = self.t + 1
        c1 = 1.0 - self.beta1**t
        c2 = 1.0 - self.beta2**t
        new = {}
        for name, g in grads.items():
            if g is None:
                continue
            x = params[name]
            m = self.m[name] if name in self.m else np.zeros_like(x)
            v = self.v[name] if name in self.v else np.zeros_like(x)
            m = (self.beta1 * m + (1.0 - self.beta1) * g).astype(x.dtype, copy=False)
            # g**2 of a float32 gradient overflows above 1.8e19; an infinite second moment would
            # freeze that weight for good, so square in float64 and cap at the dtype's range
            g2 = np.square(g, dtype=np.float64)
            np.minimum(g2, np.finfo(v.dtype).max / 2, out=g2)
            v = self.beta2 * v + ((1.0 - self.beta2) * g2).astype(v.dtype)
            with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported, not warned about
                step = lr * self.lr_scale.get(name, 1.0) / c1
                x = (x - step * m / (np.sqrt(v / c2) + self.eps)).astype(x.dtype, copy=False)
            new[name] = x, m, v
        bad = [name for name, (x, _, _) in new.items() if not np.all(np.isfinite(x))]
        if bad:
            return bad
        self.t = t
        for name, (x, m, v) in new.items():
            params[name], self.m[name], self.v[name] = x, m, v
        return []

    def state_dict(self):
        out = {"t": np.array(self.t)}
        out.update({f"m/{k}": v for k, v in self.m.items()})
        out.update({f"v/{k}": v for k, v in self.v.items()})
        return out

    def load_state_dict(self, state):
        self.t = int(state["t"])
        self.m = {k[2:]: np.array(v) for k, v in state.items() if k.startswith("m/")}
        self.v = {k[2:]: np.array(v) for k, v in state.items() if k.startswith("v/")}


class NormClip:
    """Scale a gradient down when its global norm is more than `factor` times the median norm of
    the last `window` batches (factor 0: never). One batch with a norm orders above the rest,
    taken whole, moved every weight by several Adam steps at once and sent the hidden layer into a
    runaway (docs/results.md, "Sudden runaways"). The first `min_history` batches set the scale
    and are never clipped."""

    def __init__(self, factor=5.0, window=100, min_history=10):
        self.factor, self.window, self.min_history = float(factor), int(window), int(min_history)
        self.history = []

    def scale(self, norm):
        """The factor (<= 1) to multiply this batch's gradient by; records the norm after it."""
        out = 1.0
        if self.factor > 0 and len(self.history) >= self.min_history and np.isfinite(norm):
            limit = self.factor * float(np.median(self.history))
            if norm > limit > 0:
                out = limit / norm
        if np.isfinite(norm):
            # the clipped norm: a streak of outliers must not lift the median it is judged by (it
            # did: 50 batches of 1e3-1e6 made a norm of 418 look normal, and it was taken whole)
            self.history = (self.history + [float(norm * out)])[-self.window:]
        return out


class LearningRateSchedule:
    """Warm-up from lr/1000 by x1.05 per batch, then halve when validation accuracy plateaus.

    Once per epoch the fast (alpha 0.8) and slow (alpha 0.85) moving averages of validation
    accuracy are updated; if fast <= slow and more than `patience` epochs have passed since the
    last change, the rate halves."""

    def __init__(self, lr=1e-3, warmup=True, warmup_factor=1.05, alpha_fast=0.8, alpha_slow=0.85,
                 patience=50):
        self.base = lr
        self.lr = lr / 1000.0 if warmup else lr
        self.warmup_factor = warmup_factor
        self.alpha_fast, self.alpha_slow = alpha_fast, alpha_slow
        self.patience = patience
        self.fast = self.slow = None
        self.epochs_since_change = 0

    def after_batch(self):
        if self.lr < self.base:
            self.lr = min(self.lr * self.warmup_factor, self.base)
        return self.lr

    def after_epoch(self, val_accuracy):
        if self.fast is None:
            self.fast = self.slow = float(val_accuracy)
        else:
            self.fast = self.alpha_fast * self.fast + (1 - self.alpha_fast) * val_accuracy
            self.slow = self.alpha_slow * self.slow + (1 - self.alpha_slow) * val_accuracy
        self.epochs_since_change += 1
        if self.fast <= self.slow and self.epochs_since_change > self.patience:
            self.base *= 0.5
            self.lr = min(self.lr, self.base)
            self.epochs_since_change = 0
        return self.lr

    def halve(self):
        """Halve the rate and its base (after a non-finite batch): a warm-up goes on towards the
        lower base, and the plateau rule waits its patience again."""
        self.base *= 0.5
        self.lr *= 0.5
        self.epochs_since_change = 0
        return self.lr

    def set_base(self, lr):
        """A user's change of learning rate (dashboard hot change)."""
        self.base = self.lr = float(lr)


def format_rate(lr):
    """A learning rate as people write it: 0.001 as 1e-3, 0.0003125 as 3.125e-4."""
    mantissa, exponent = f"{float(lr):.3e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
