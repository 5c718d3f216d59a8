"""Inner hair cells, auditory-nerve fibres and bushy cells: numba kernels over each place.

- Inner hair cell: the transmitter-reservoir model of Meddis (1986, 1988). Free transmitter q in the
  cell is released into the cleft (c) at a rate k(t) that grows with the stimulus; from the cleft it
  is lost (l) or taken back (r) into a reprocessing store (w) that returns it (x) to q, and the
  factory replenishes q towards M (y). A fibre fires with probability h·c per unit time.
- Auditory-nerve fibres: n_fibres independent fibres per place, each spiking with that probability
  in each time step unless it spiked within its refractory period (Cramer et al. 2020).
- Bushy cell: one leaky integrate-and-fire neuron per place, driven by the summed exponentially
  decaying currents of its fibres, with an absolute refractory period (Cramer et al. 2020).

Rates are per second and time constants in seconds; the kernels discretise them at the rate they are
given with the same explicit steps as the SHD chain. Those steps are coarse for the cleft (its time
constant 1/(l+r) is 0.11 ms) and the synapses, so the spike statistics depend on the rate: hence
the cochlea runs them at one fixed rate whatever the input's (see audio.Cochlea.audio_rate).

nerve_kernel runs all three stages in one pass; the per-stage kernels run the same step functions
with the same random numbers and exist to time and test the stages one by one.

Random numbers: each place has a stream of its own (splitmix64, seeded from place_seeds), so the
places are independent: blocks of them may run in any order, on any number of threads, and give
the same spikes.
"""
from dataclasses import astuple, dataclass

import numba
import numpy as np


@dataclass(frozen=True)
class HairCellParams:
    """Meddis (1988) inner-hair-cell constants, as in the SHD chain."""

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
        """Firing rate of one fibre in silence, spikes/s, before refractoriness (about 65)."""
        return self.firing_gain * self.resting_state()[1]

    def as_array(self):
        """The constants in field order, then the resting q, c, w: what the kernels take."""
        return np.array([*astuple(self), *self.resting_state()], np.float64)


@dataclass(frozen=True)
class NerveParams:
    """Fibres and bushy cells (Cramer et al. 2020, Sec. III)."""

    n_fibres: int = 40                   # fibres converging on each bushy cell
    fibre_refractory: float = 1e-3       # s
    tau_mem: float = 1e-3                # s, bushy-cell membrane
    tau_syn: float = 5e-4                # s, fibre synapses
    bushy_refractory: float = 1e-3       # s
    total_weight: float = 13e3           # summed weight of all fibres onto a bushy cell (threshold 1, per s)

    def as_array(self):
        return np.array(astuple(self), np.float64)


# ---- random numbers: one splitmix64 stream per place ----

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def place_seeds(rng, n_places):
    """The starting states of n_places streams, drawn from a numpy Generator (or an int seed)."""
    return np.random.default_rng(rng).integers(0, 2**64, size=n_places, dtype=np.uint64, endpoint=False)


@numba.njit(cache=True, inline="always")
def _uniform(state):
    """(u in [0, 1), next state): splitmix64 (Steele, Lea & Flood 2014), 53 bits of its output."""
    state = state + _GOLDEN
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0), state


# ---- one time step of each stage: state in and out as scalars, which numba keeps in registers ----

@numba.njit(cache=True, inline="always")
def _hair_cell_step(hc, dt, q, c, w, velocity):
    """Meddis (1988): one explicit Euler step of the pools q, c, w; returns them and the firing probability."""
    s = velocity + hc[0]
    k = hc[2] * dt * s / (s + hc[1]) if s > 0.0 else 0.0   # permeability of the membrane to q
    refill = hc[3] * dt * (hc[8] - q) if q < hc[8] else 0.0
    release = k * q
    back = hc[6] * dt * w
    q_next = max(q + refill - release + back, 0.0)
    c_next = max(c + release - (hc[4] + hc[5]) * dt * c, 0.0)
    w_next = max(w + hc[5] * dt * c - back, 0.0)
    return q_next, c_next, w_next, hc[7] * dt * c_next


@numba.njit(cache=True, inline="always")
def _fibre_step(n_fibres, p, state, recent, refractory, hazard, threshold, slot):
    """Spikes among the fibres not refractory, each firing with probability p in this step.

    Exact, with few random numbers: the chance that none of the free fibres fires is
    (1-p)^free = exp(-free·λ), λ = -log(1-p), so the first step with a spike is where the summed
    hazard free·λ crosses an exponential threshold. Only there is the count drawn, from the
    binomial given at least one, by inversion. recent rings the counts of the last refractory
    steps (their sum is `refractory`, this step's slot is `slot`): a fibre that fired at step j
    may fire again from step j + len(recent) + 1 on.
    state is the place's random stream. Returns (spikes, refractory, hazard, threshold, slot, state)."""
    free = n_fibres - refractory
    n = 0
    if p > 0.0 and free > 0:
        if p < 0.01:  # -log(1-p) by its series: relative error below p^4/5 = 2e-9
            lam = p * (1.0 + p * (0.5 + p * (1.0 / 3.0 + p * 0.25)))
        elif p < 1.0:
            lam = -np.log1p(-p)
        else:
            lam = np.inf
        hazard += free * lam
        if hazard >= threshold:
            if p >= 1.0:
                n = free
            else:
                none = np.exp(-free * lam)
                u, state = _uniform(state)
                u = none + u * (1.0 - none)  # uniform over the CDF above P(0)
                odds = p / (1.0 - p)
                prob = none
                cdf = none
                while u > cdf and n < free:
                    prob *= odds * (free - n) / (n + 1)
                    n += 1
                    cdf += prob
                n = max(n, 1)
            hazard = 0.0
            threshold, state = _threshold(state)
    if len(recent) > 0:
        refractory += n - recent[slot]
        recent[slot] = n
        slot = slot + 1 if slot + 1 < len(recent) else 0  # not t % len: integer division is slow
    return n, refractory, hazard, threshold, slot, state


@numba.njit(cache=True, inline="always")
def _bushy_step(t, n_in, v, current, blocked, decay_mem, decay_syn, weight_dt, dead_steps):
    """LIF step; returns (fired at step t - 1, v, current, blocked).

    As in the SHD chain the membrane is compared with threshold one step after it is charged, and a
    cell that fired ignores its input for dead_steps steps."""
    fired = False
    if t > 0:
        if blocked <= 0.0:
            if v < 1.0:
                v *= decay_mem
            else:
                fired = True
                v = 0.0
                blocked = dead_steps
        current *= decay_syn
    current += n_in
    if blocked <= 0.0:
        v = min(v + current * weight_dt, 1.0)
    return fired, v, current, blocked - 1.0


@numba.njit(cache=True)
def _constants(rate, nv):
    dt = 1.0 / rate
    fibre_dead = int(np.ceil(nv[1] * rate)) - 1  # steps j+1 .. j+fibre_dead after a spike at j are refractory
    return (dt, int(nv[0]), max(fibre_dead, 0), np.exp(-dt / nv[2]), np.exp(-dt / nv[3]),
            nv[5] / nv[0] * dt, nv[4] * rate)


@numba.njit(cache=True, inline="always")
def _threshold(state):
    """An exponential threshold for the summed hazard, and the next state."""
    u, state = _uniform(state)
    return -np.log(1.0 - u), state


# ---- the fused kernel: what the cochlea runs ----

@numba.njit(cache=True)
def _nerve_place(i, velocity, hc, nv_constants, seeds, recent, out_steps, out_count):
    """Hair cell, fibres and bushy cell of place i over the whole sound."""
    dt, n_fibres, fibre_dead, decay_mem, decay_syn, weight_dt, dead_steps = nv_constants
    q, c, w = hc[9], hc[10], hc[11]
    recent[:] = 0
    state = seeds[i]
    threshold, state = _threshold(state)
    refractory, hazard, slot = 0, 0.0, 0
    v, current, blocked = 0.0, 0.0, 0.0
    n_out = 0
    for t in range(velocity.shape[1]):
        q, c, w, p = _hair_cell_step(hc, dt, q, c, w, velocity[i, t])
        n_in, refractory, hazard, threshold, slot, state = _fibre_step(n_fibres, p, state, recent, refractory,
                                                                       hazard, threshold, slot)
        fired, v, current, blocked = _bushy_step(t, n_in, v, current, blocked, decay_mem, decay_syn,
                                                 weight_dt, dead_steps)
        if fired:
            out_steps[i, n_out] = t - 1
            n_out += 1
    out_count[i] = n_out


@numba.njit(cache=True, nogil=True)
def nerve_kernel(velocity, rate, hc, nv, seeds, out_steps, out_count):
    """Bushy-cell spike steps per place from membrane velocity (places, steps) sampled at `rate`.

    hc: HairCellParams.as_array(); nv: NerveParams.as_array(); seeds: place_seeds, one per row.
    Writes the steps of place i to out_steps[i, :out_count[i]]. Releases the GIL, so that blocks of
    places may run on threads of their own."""
    constants = _constants(rate, nv)
    recent = np.zeros(constants[2], np.int64)
    for i in range(velocity.shape[0]):
        _nerve_place(i, velocity, hc, constants, seeds, recent, out_steps, out_count)


# ---- the same stages one at a time ----

@numba.njit(cache=True)
def hair_cell_kernel(velocity, rate, hc):
    """Firing probability per step of one fibre, (places, steps)."""
    out = np.empty(velocity.shape)
    for i in range(velocity.shape[0]):
        q, c, w = hc[9], hc[10], hc[11]
        for t in range(velocity.shape[1]):
            q, c, w, out[i, t] = _hair_cell_step(hc, 1.0 / rate, q, c, w, velocity[i, t])
    return out


@numba.njit(cache=True)
def fibre_kernel(probability, rate, nv, seeds):
    """Spikes per step summed over the fibres of each place, (places, steps); seeds as in nerve_kernel."""
    _, n_fibres, fibre_dead, _, _, _, _ = _constants(rate, nv)
    out = np.empty(probability.shape, np.int64)
    recent = np.zeros(fibre_dead, np.int64)
    for i in range(probability.shape[0]):
        recent[:] = 0
        threshold, state = _threshold(seeds[i])
        refractory, hazard, slot = 0, 0.0, 0
        for t in range(probability.shape[1]):
            out[i, t], refractory, hazard, threshold, slot, state = _fibre_step(
                n_fibres, probability[i, t], state, recent, refractory, hazard, threshold, slot)
    return out


@numba.njit(cache=True)
def bushy_kernel(fibre_spikes, rate, nv, out_steps, out_count):
    """Bushy-cell spike steps per place from summed fibre spikes; output as in nerve_kernel."""
    _, _, _, decay_mem, decay_syn, weight_dt, dead_steps = _constants(rate, nv)
    for i in range(fibre_spikes.shape[0]):
        v, current, blocked = 0.0, 0.0, 0.0
        n_out = 0
        for t in range(fibre_spikes.shape[1]):
            fired, v, current, blocked = _bushy_step(t, fibre_spikes[i, t], v, current, blocked, decay_mem,
                                                     decay_syn, weight_dt, dead_steps)
            if fired:
                out_steps[i, n_out] = t - 1
                n_out += 1
        out_count[i] = n_out


def spike_buffers(n_places, n_steps, rate, nerve):
    """Output arrays big enough for the most a bushy cell can fire: once per dead time plus a step."""
    cap = n_steps // (int(np.ceil(nerve.bushy_refractory * rate)) + 1) + 2
    return np.empty((n_places, cap), np.int64), np.zeros(n_places, np.int64)


def flatten_spikes(out_steps, out_count):
    """(steps, places) from the per-place buffers."""
    places = np.repeat(np.arange(len(out_count)), out_count)
    steps = np.concatenate([out_steps[i, :n] for i, n in enumerate(out_count)]) if len(out_count) else \
        np.zeros(0, np.int64)
    return steps, places


def run_nerve(velocity, rate, hair_cell, nerve, seeds):
    """(steps, places) of all bushy-cell spikes for a (places, steps) velocity block.

    seeds: place_seeds, one per row (or a numpy Generator or int to draw them from)."""
    if not (isinstance(seeds, np.ndarray) and seeds.dtype == np.uint64):
        seeds = place_seeds(seeds, velocity.shape[0])
    if len(seeds) != velocity.shape[0]:
        raise ValueError(f"{len(seeds)} seeds for {velocity.shape[0]} places")
    out_steps, out_count = spike_buffers(*velocity.shape, rate, nerve)
    nerve_kernel(np.ascontiguousarray(velocity), float(rate), hair_cell.as_array(), nerve.as_array(),
                 np.ascontiguousarray(seeds), out_steps, out_count)
    return flatten_spikes(out_steps, out_count)
