"""The spike-count regulariser and the silent-neuron lift (spec §4)."""
import numpy as np


class SpikeCountRegulariser:
    """Pulls each hidden neuron's batch-mean spike count toward nu.

    A count is not differentiable; following the paper this acts as a jump of lambda_V at every
    spike of neuron j: lambda_V -= c (N_j - nu) / B, with c = strength_upper above nu and
    strength_lower below. It is a surrogate, so it is checked by its effect, not by finite
    differences."""

    def __init__(self, nu=14.0, strength_upper=5e-10, strength_lower=5e-10):
        if nu < 0 or strength_upper < 0 or strength_lower < 0:
            raise ValueError("regulariser target and strengths must be non-negative")
        self.nu = float(nu)
        self.strength_upper = float(strength_upper)
        self.strength_lower = float(strength_lower)

    def jump(self, counts):
        """Per hidden neuron, the amount subtracted from lambda_V at each of its spikes."""
        counts = np.asarray(counts, np.float64)
        B = counts.shape[0]
        excess = counts.mean(0) - self.nu
        c = np.where(excess > 0, self.strength_upper, self.strength_lower)
        return c * excess / B

    def penalty(self, counts):
        """A number to plot: sum_j c (N_j - nu)^2 (the quantity the jump descends)."""
        excess = np.asarray(counts, np.float64).mean(0) - self.nu
        c = np.where(excess > 0, self.strength_upper, self.strength_lower)
        return float((c * excess**2).sum())


def lift_silent(W_in, epoch_counts, amount=0.002):
    """Add `amount` to the input weights of hidden neurons that did not spike in the epoch.

    Returns the new matrix and the mask of lifted neurons."""
    silent = np.asarray(epoch_counts).reshape(-1) == 0
    W = np.array(W_in, copy=True)
    W[:, silent] += amount
    return W, silent
