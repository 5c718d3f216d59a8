"""Inner hair cells, auditory-nerve fibres and bushy cells: one numba kernel over each place.

- Inner hair cell: the transmitter-reservoir model of Meddis (1986, 1988). Free transmitter q in the
  cell is released into the cleft (c) at a rate k(t) that grows with the stimulus; from the cleft it
  is lost (l) or taken back (r) into a reprocessing store (w) that returns it (x) to q, and the
  factory replenishes q towards M (y). The firing probability of a fibre is h·c per unit time.
- Auditory-nerve fibres: n_fibres independent fibres per place, each spiking with that probability
  in each time step unless it spiked within its refractory period (Cramer et al. 2020).
- Bushy cell: one leaky integrate-and-fire neuron per place, driven by the summed exponentially
  decaying currents of its fibres, with an absolute refractory period (Cramer et al. 2020).

Every rate is per second and every time constant in seconds; the kernel discretises them at the
rate it is given, with the same explicit steps as the SHD conversion chain, so that its spikes
follow that chain's statistics at its own sampling rate.
"""
from dataclasses import dataclass

import numba
import numpy as np


@dataclass(frozen=True)
class HairCellParams:
    """Meddis (1988) inner-hair-cell constants, "high spontaneous rate" set."""

    permeability_offset: float = 5.0     # A: stimulus level at which release starts
    permeability_half: float = 300.0     # B: release saturates as (s+A)/(s+A+B)
    release_rate: float = 2000.0         # g, /s
    replenish_rate: float = 5.05         # y, /s
    loss_rate: float = 2500.0            # l, /s
    reuptake_rate: float = 6580.0        # r, /s
    reprocess_rate: float = 66.3         # x, /s
    firing_gain: float = 50000.0         # h, /s: firing rate per unit cleft transmitter
    max_free_transmitter: float = 1.0    # M

    def resting_state(self):
        """(q, c, w) at rest: the fixed point with no stimulus."""
        k = self.release_rate * self.permeability_offset / (self.permeability_offset + self.permeability_half)
        c = (self.max_free_transmitter * self.replenish_rate * k
             / (self.loss_rate * k + self.replenish_rate * (self.loss_rate + self.reuptake_rate)))
        return c * (self.loss_rate + self.reuptake_rate) / k, c, c * self.reuptake_rate / self.reprocess_rate

    def spontaneous_rate(self):
        """Firing rate of one fibre in silence, spikes/s (before refractoriness)."""
        return self.firing_gain * self.resting_state()[1]


@dataclass(frozen=True)
class NerveParams:
    """Fibres and bushy cells (Cramer et al. 2020, Sec. III)."""

    n_fibres: int = 40                   # fibres converging on each bushy cell
    fibre_refractory: float = 1e-3       # s
    tau_mem: float = 1e-3                # s, bushy-cell membrane
    tau_syn: float = 5e-4                # s, fibre synapses
    bushy_refractory: float = 1e-3       # s
    total_weight: float = 13e3           # summed weight of all fibres (threshold 1, per s); shared equally


@numba.njit(cache=True)
def nerve_kernel(velocity, rate, hc, nv, rng, out_steps, out_count):
    """Bushy-cell spike steps of each place; velocity: (places, steps) membrane velocity.

    hc: the HairCellParams as a float64 array (field order), then its resting state q, c, w.
    nv: n_fibres, fibre_refractory, tau_mem, tau_syn, bushy_refractory, total_weight as float64.
    Writes the steps of place i to out_steps[i, :out_count[i]]."""
    dt = 1.0 / rate
    a_off, b_half, g, y, l, r, x, h, m = hc[0], hc[1], hc[2], hc[3], hc[4], hc[5], hc[6], hc[7], hc[8]
    n_fibres = int(nv[0])
    # A fibre that spiked at step j may spike again at j + d only for d >= refractory/dt.
    fibre_dead = int(np.ceil(nv[1] * rate)) - 1
    decay_mem = np.exp(-dt / nv[2])
    decay_syn = np.exp(-dt / nv[3])
    bushy_dead = nv[4] * rate
    weight_dt = nv[5] / n_fibres * dt
    recent = np.zeros(max(fibre_dead, 1), np.int64)
    for i in range(velocity.shape[0]):
        q, c, w = hc[9], hc[10], hc[11]
        recent[:] = 0
        refractory_fibres = 0
        current = 0.0
        v = 0.0
        blocked = 0.0
        n_out = 0
        for t in range(velocity.shape[1]):
            # Meddis (1988), explicit Euler step of the three transmitter pools
            s = velocity[i, t] + a_off
            k = g * dt * s / (s + b_half) if s > 0.0 else 0.0
            refill = y * dt * (m - q) if q < m else 0.0
            release = k * q
            back = x * dt * w
            q_next = max(q + refill - release + back, 0.0)
            w = max(w + r * dt * c - back, 0.0)
            c = max(c + release - (l + r) * dt * c, 0.0)
            q = q_next
            p = h * dt * c
            # the fibres not in their refractory period each fire with probability p: binomial, by inversion
            free = n_fibres - refractory_fibres
            n_spk = 0
            if p > 0.0 and free > 0:
                u = rng.random()
                if p >= 1.0:
                    n_spk = free
                else:
                    odds = p / (1.0 - p)
                    prob = (1.0 - p) ** free
                    cdf = prob
                    while u > cdf and n_spk < free:
                        prob *= odds * (free - n_spk) / (n_spk + 1)
                        n_spk += 1
                        cdf += prob
            if fibre_dead > 0:
                slot = t % fibre_dead
                refractory_fibres += n_spk - recent[slot]
                recent[slot] = n_spk
            # bushy cell: the membrane is checked against threshold one step after it is charged
            if t > 0:
                if blocked <= 0.0:
                    if v < 1.0:
                        v *= decay_mem
                    else:
                        out_steps[i, n_out] = t - 1
                        n_out += 1
                        v = 0.0
                        blocked = bushy_dead
                current *= decay_syn
            current += n_spk
            if blocked <= 0.0:
                v = min(v + current * weight_dt, 1.0)
            blocked -= 1.0
        out_count[i] = n_out


def run_nerve(velocity, rate, hair_cell, nerve, rng):
    """(steps, places) of all bushy-cell spikes for a (places, steps) velocity block."""
    hc = np.array([hair_cell.permeability_offset, hair_cell.permeability_half, hair_cell.release_rate,
                   hair_cell.replenish_rate, hair_cell.loss_rate, hair_cell.reuptake_rate,
                   hair_cell.reprocess_rate, hair_cell.firing_gain, hair_cell.max_free_transmitter,
                   *hair_cell.resting_state()], np.float64)
    nv = np.array([nerve.n_fibres, nerve.fibre_refractory, nerve.tau_mem, nerve.tau_syn,
                   nerve.bushy_refractory, nerve.total_weight], np.float64)
    n_places, n_steps = velocity.shape
    # a bushy cell fires at most once per refractory period plus one step
    cap = n_steps // max(int(np.ceil(nerve.bushy_refractory * rate)) + 1, 1) + 2
    out_steps = np.empty((n_places, cap), np.int64)
    out_count = np.zeros(n_places, np.int64)
    nerve_kernel(np.ascontiguousarray(velocity, np.float64), float(rate), hc, nv, rng, out_steps, out_count)
    places = np.repeat(np.arange(n_places), out_count)
    steps = np.concatenate([out_steps[i, :out_count[i]] for i in range(n_places)]) if n_places else np.zeros(0, np.int64)
    return steps, places
