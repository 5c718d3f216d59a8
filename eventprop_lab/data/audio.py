"""Sound to spikes in the layout of the Spiking Heidelberg Digits: an artificial cochlea.

Re-states the conversion chain of Cramer, Stradmann, Schemmel & Zenke, "The Heidelberg spiking
data sets for the systematic evaluation of spiking neural networks", IEEE TNNLS (2020), Sec. III:

1. the signal is scaled to an RMS of 0.3 and faded in and out by a Hann window over its whole length;
2. a hydrodynamic basilar-membrane model (Sieroka, Dosch & Rupp 2006) gives the membrane velocity at
   700 places, evenly spaced from the base to the apex, sampled at half the audio rate;
3. a Meddis (1986, 1988) inner hair cell at each place turns velocity into a firing probability;
4. 40 auditory-nerve fibres per place fire with that probability, each with a 1 ms refractory period;
5. one bushy cell per place, a leaky integrate-and-fire neuron, is driven by its 40 fibres; its
   spikes are the output.

Channel 0 is the base of the cochlea, where the highest frequencies peak (about 20 kHz); channel 699
is the apex (about 100 Hz). So in SHD, as here, low channel ids are high pitches: a 300 Hz tone
peaks near channel 560, 1 kHz near 400, 3 kHz near 255.

Written from the papers and checked against the published implementation (lauscher, commit 16db85f;
tests/test_audio.py, tests/data/lauscher_reference.json) but sharing no code with it.
"""
from pathlib import Path

import numpy as np
from scipy import fft as sfft

from .cochlea import HairCellParams, MembraneParams, NerveParams, impulse_responses, run_nerve

SILENCE_PEAK = 1e-6  # below this peak amplitude a signal is treated as silent: there is nothing to normalise
MIN_SAMPLE_RATE = 2000


class AudioError(ValueError):
    """A sound that cannot be read or encoded; the message says which file, what, and what to do."""


def _where(source):
    return f"{source}: " if source else ""


def read_audio(path):
    """(samples, sample_rate) of a sound file: float64 mono (channels averaged), any rate.

    Reads what libsndfile reads (WAV, FLAC, OGG/Vorbis, AIFF, ...). Integer formats land in
    [-1, 1]; float files come as stored. Raises AudioError if the file is missing, not audio,
    empty, silent or holds non-finite values."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file; check the path")
    try:
        samples, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:  # libsndfile's errors are not one class across versions
        raise AudioError(f"{path}: not a readable sound file ({exc}); convert it to WAV or FLAC "
                         "(e.g. ffmpeg -i in.mp3 out.wav)") from exc
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    check_signal(mono, rate, path)
    return np.ascontiguousarray(mono), int(rate)


def check_signal(samples, sample_rate, source=None):
    """Raise AudioError unless samples is a non-empty, finite, audible 1-d signal at a usable rate."""
    where = _where(source)
    if samples.ndim != 1:
        raise AudioError(f"{where}expected a 1-d (mono) signal, got shape {samples.shape}")
    if len(samples) == 0:
        raise AudioError(f"{where}the sound is empty (0 samples); record or export it again")
    if not np.all(np.isfinite(samples)):
        bad = int(np.flatnonzero(~np.isfinite(samples))[0])
        raise AudioError(f"{where}sample {bad} is {samples[bad]}: the signal must be finite; "
                         "check how it was made")
    peak = float(np.max(np.abs(samples)))
    if peak < SILENCE_PEAK:
        raise AudioError(f"{where}the sound is silent (peak amplitude {peak:.2g} < {SILENCE_PEAK:g}); "
                         "a cochlea needs something to hear: check the recording level")
    if not np.isfinite(sample_rate) or sample_rate < MIN_SAMPLE_RATE:
        raise AudioError(f"{where}sample rate {sample_rate} Hz is too low; use at least {MIN_SAMPLE_RATE} Hz")


def as_mono(samples):
    """float64 1-d samples from a 1-d signal or a (frames, channels) block as soundfile reads it."""
    samples = np.asarray(samples, np.float64)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    return samples


def hann_fade(n):
    """Fade in over the first half and out over the second, as the SHD chain does."""
    half = n // 2
    rise = np.hanning(2 * half)[:half]
    window = np.ones(n)
    window[:half] = rise
    window[n - half:] = rise[::-1]
    return window


class Cochlea:
    """Sound to SHD-layout spikes; holds the model parameters. Seeded and deterministic."""

    def __init__(self, n_channels=700, n_fibres=40, seed=0, rms_level=0.3, fade=True,
                 membrane=MembraneParams(), hair_cell=HairCellParams(), nerve=None, channel_block=64):
        self.n_channels = int(n_channels)
        self.seed = seed
        self.rms_level = float(rms_level)
        self.fade = bool(fade)
        self.membrane = membrane
        self.hair_cell = hair_cell
        self.nerve = nerve if nerve is not None else NerveParams(n_fibres=int(n_fibres))
        self.channel_block = int(channel_block)  # places filtered at once: bounds memory

    @property
    def n_fibres(self):
        return self.nerve.n_fibres

    def prepare(self, samples, sample_rate):
        """The normalised, faded signal that drives the membrane."""
        x = samples * (self.rms_level / np.sqrt(np.mean(samples**2)))
        return x * hann_fade(len(x)) if self.fade else x

    def membrane_velocity(self, x, sample_rate, channels):
        """Membrane velocity at the given places (rows), sampled at half the audio rate."""
        h = impulse_responses(float(sample_rate), self.n_channels, self.membrane)[channels]
        n, n_ir = len(x), h.shape[1]
        nfft = sfft.next_fast_len(n + n_ir, real=True)
        # lag 0 first, negative lags wrapped to the end, as impulse_responses lays them out
        padded = np.zeros((len(channels), nfft))
        padded[:, :n_ir // 2] = h[:, :n_ir // 2]
        padded[:, nfft - (n_ir - n_ir // 2):] = h[:, n_ir // 2:]
        spectrum = sfft.rfft(padded, axis=1) * sfft.rfft(x, nfft)[None, :]
        # every second sample, without an anti-alias filter, as the SHD chain runs its inner ear at half rate
        return sfft.irfft(spectrum, nfft, axis=1)[:, :n:2]

    def encode(self, samples, sample_rate, seed=None):
        """(times_ms float64 sorted ascending, channels int64 in [0, n_channels)).

        samples: 1-d, or (frames, channels) which is averaged to mono. seed overrides self.seed.
        Raises AudioError on empty, silent or non-finite input."""
        samples = as_mono(samples)
        check_signal(samples, sample_rate)
        rng = np.random.default_rng(self.seed if seed is None else seed)
        x = self.prepare(samples, sample_rate)
        rate = sample_rate / 2.0
        all_steps, all_places = [], []
        for start in range(0, self.n_channels, self.channel_block):
            channels = np.arange(start, min(start + self.channel_block, self.n_channels))
            velocity = self.membrane_velocity(x, sample_rate, channels)
            steps, places = run_nerve(velocity, rate, self.hair_cell, self.nerve, rng)
            all_steps.append(steps)
            all_places.append(places + start)
        steps, places = np.concatenate(all_steps), np.concatenate(all_places)
        order = np.lexsort((places, steps))
        return steps[order] * (1000.0 / rate), places[order].astype(np.int64)


def encode_file(path, cochlea=None, seed=0):
    """Spikes (times_ms, channels) of a sound file; see Cochlea.encode."""
    samples, rate = read_audio(path)
    return (cochlea or Cochlea()).encode(samples, rate, seed=seed)
