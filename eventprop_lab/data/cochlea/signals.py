"""Fixed synthetic sounds on which the cochlea is checked against the published SHD chain.

Everything is computed from closed formulas (the noise from a seeded PCG64 stream), so the same
signals come back anywhere; tests/data/lauscher_reference.json holds lauscher's spikes for them."""
import numpy as np
from scipy import signal as ssignal

RATE = 16000


def _burst(core, rate, seconds, onset=0.03, ramp=0.01):
    """core placed at onset with raised-cosine ramps, silence around it, in a clip `seconds` long."""
    out = np.zeros(int(round(seconds * rate)))
    n_ramp = int(ramp * rate)
    ramp_up = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_ramp) / n_ramp)
    core = core.copy()
    core[:n_ramp] *= ramp_up
    core[-n_ramp:] *= ramp_up[::-1]
    start = int(onset * rate)
    out[start:start + len(core)] = core
    return out


def tone_burst(freq, rate=RATE, seconds=0.3, length=0.24):
    t = np.arange(int(length * rate)) / rate
    return _burst(0.5 * np.sin(2 * np.pi * freq * t), rate, seconds)


def chirp(rate=RATE, seconds=0.4, f0=200.0, f1=5000.0):
    """Exponential sweep from f0 to f1 over the clip."""
    t = np.arange(int(seconds * rate)) / rate
    return 0.5 * ssignal.chirp(t, f0, seconds, f1, method="logarithmic")


def vowel(f0, formants, bandwidths, rate=RATE, seconds=0.4, length=0.34):
    """A glottal pulse train at f0 through second-order formant resonators in series (Klatt 1980)."""
    n = int(length * rate)
    pulses = np.zeros(n)
    pulses[(np.arange(0, length, 1.0 / f0) * rate).astype(int)] = 1.0
    out = pulses
    for f, bw in zip(formants, bandwidths):
        r = np.exp(-np.pi * bw / rate)
        a = [1.0, -2 * r * np.cos(2 * np.pi * f / rate), r * r]
        out = ssignal.lfilter([sum(a)], a, out)  # unit gain at 0 Hz
    return _burst(0.5 * out / np.max(np.abs(out)), rate, seconds)


def noise_burst(rate=RATE, seconds=0.3, seed=1234):
    rng = np.random.Generator(np.random.PCG64(seed))
    return _burst(0.3 * rng.standard_normal(int(0.24 * rate)), rate, seconds)


def reference_signals(rate=RATE):
    """name -> samples at `rate` (the reference was computed at 16 kHz)."""
    return {
        "tone_300": tone_burst(300.0, rate),
        "tone_1000": tone_burst(1000.0, rate),
        "tone_3000": tone_burst(3000.0, rate),
        "chirp_200_5000": chirp(rate),
        "vowel_a_120": vowel(120.0, (730.0, 1090.0, 2440.0), (90.0, 110.0, 170.0), rate),
        "vowel_i_220": vowel(220.0, (270.0, 2290.0, 3010.0), (60.0, 100.0, 120.0), rate),
        "noise": noise_burst(rate),
    }


TONES = {"tone_300": 300.0, "tone_1000": 1000.0, "tone_3000": 3000.0}


def speech_like(seconds, rate=RATE):
    """A clip of any length cycling through the reference sounds (for timing, not for reference)."""
    parts = list(reference_signals(rate).values())
    out, i = [], 0
    while sum(map(len, out)) < seconds * rate:
        out.append(parts[i % len(parts)])
        i += 1
    return np.concatenate(out)[:int(round(seconds * rate))]
