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
is the apex (about 100 Hz). So in SHD, as in lauscher and here, low channel ids are high pitches: a
300 Hz tone peaks near channel 558, 1 kHz near 398, 3 kHz near 250, and the first ~125 channels,
tuned above 8 kHz, hear little of speech.

Every sound is resampled to Cochlea.audio_rate (48 kHz) first, because the chain's spike counts
depend on the rate it runs at (see Cochlea). Speed: about 0.6 s of CPU per second of audio
(benchmarks/bench_cochlea.py), spread over Cochlea.threads threads in blocks of places, plus about
3 s once per process to design the filter bank and load the kernels (Cochlea.warm_up does it ahead
of time). Each place draws from a random stream of its own, so the spikes do not depend on the
number of threads or the block size.

Written from the papers and checked against the published implementation (lauscher, commit 16db85f;
tests/test_audio.py, tests/data/lauscher_reference.json), sharing no code with it.
"""
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
import param
from scipy import signal as ssignal

from .cochlea import HairCellParams, MembraneParams, NerveParams, membrane_velocity, run_nerve
from .cochlea.nerve import place_seeds

SILENCE_PEAK = 1e-6  # below this peak amplitude a signal is treated as silent: there is nothing to normalise
MIN_SAMPLE_RATE = 2000
BLOCK_VALUES = 4_000_000  # about 50 MB of spectra and filters per block of places


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
    try:
        rate_ok = float(sample_rate) >= MIN_SAMPLE_RATE and np.isfinite(float(sample_rate))
    except (TypeError, ValueError):
        rate_ok = False
    if not rate_ok:
        raise AudioError(f"{where}sample rate {sample_rate!r} Hz is unusable; give a number of at least "
                         f"{MIN_SAMPLE_RATE} Hz")
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


def as_mono(samples):
    """float64 1-d samples from a 1-d signal or a (frames, channels) block as soundfile reads it."""
    try:
        samples = np.asarray(samples, np.float64)
    except (TypeError, ValueError) as exc:
        raise AudioError(f"samples must be an array of numbers ({exc})") from exc
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if samples.ndim != 1:
        raise AudioError(f"expected samples of shape (frames,) or (frames, channels), got {samples.shape}")
    return samples


def hann_fade(n):
    """Fade in over the first half and out over the second, as the SHD chain does."""
    half = n // 2
    rise = np.hanning(2 * half)[:half]
    window = np.ones(n)
    window[:half] = rise
    window[n - half:] = rise[::-1]
    return window


class Cochlea(param.Parameterized):
    """Sound to SHD-layout spikes; holds the model's parameters. Seeded: the same seed and sound give
    the same spikes.

    Every input is first resampled to audio_rate. The chain's explicit time steps make its spike
    counts depend on the rate it runs at (lauscher, like this cochlea, gives a 0.3 s 1 kHz tone
    about 2600 spikes at 16 kHz but 670 at 48 kHz), so one fixed rate keeps a file's own rate from
    changing its spikes. The default, 48 kHz, is the rate of the Heidelberg Digits recordings that
    SHD was made from (the spoken digit in lauscher's tests is a 48 kHz recording; this cochlea gives
    it 7200 spikes at 48 kHz, 14000 at 16 kHz).

        cochlea = Cochlea(seed=1)
        times_ms, channels = cochlea.encode(samples, 16000)    # or encode_file("digit.wav", cochlea)
    """

    n_channels = param.Integer(700, bounds=(1, 10_000), doc="places along the membrane, base (0) to apex")
    seed = param.Integer(0, bounds=(0, None), doc="seed of the fibres' random numbers")
    audio_rate = param.Number(48000.0, bounds=(MIN_SAMPLE_RATE, 384_000), allow_None=True,
                              doc="Hz; inputs are resampled to this rate. None: each input's own rate, as "
                                  "lauscher (below 16 kHz its hair-cell step is then unstable)")
    rms_level = param.Number(0.3, bounds=(0.0, None), inclusive_bounds=(False, True),
                             doc="RMS the signal is scaled to before the membrane (SHD: 0.3)")
    fade = param.Boolean(True, doc="fade in and out with a Hann window over the whole signal, as SHD")
    # 32: a block's spectra (about 20 MB for 1 s) stay near the cache; with 64, two threads encoding a
    # 1 s clip on a busy 2-core machine took 0.64 s against 0.49 (benchmarks/README.md, bench_speak)
    channel_block = param.Integer(32, bounds=(1, None), doc="places computed at once, at most")
    threads = param.Integer(None, bounds=(1, None), allow_None=True,
                            doc="blocks of places encoded at once, each on a thread (None: numba's thread "
                                "count, NUMBA_NUM_THREADS); the spikes are the same for any number")

    def __init__(self, n_channels=700, n_fibres=40, seed=0, membrane=None, hair_cell=None, nerve=None, **params):
        super().__init__(n_channels=n_channels, seed=seed, **params)
        if int(n_fibres) < 1:
            raise ValueError(f"n_fibres must be at least 1, got {n_fibres}")
        self.membrane = membrane or MembraneParams()
        self.hair_cell = hair_cell or HairCellParams()
        self.nerve = nerve or NerveParams(n_fibres=int(n_fibres))

    @property
    def n_fibres(self):
        return self.nerve.n_fibres

    def warm_up(self, sample_rate=16000):
        """Design the filter bank and load the compiled kernels now (about 3 s of CPU at 48 kHz, once
        per process), so that the first sound heard is encoded as fast as the rest."""
        t = np.arange(int(0.05 * sample_rate)) / sample_rate
        self.encode(np.sin(2 * np.pi * 1000.0 * t), sample_rate)

    def resample(self, samples, sample_rate):
        """(samples, rate) at audio_rate (unchanged if audio_rate is None or already the rate)."""
        if self.audio_rate is None or float(sample_rate) == float(self.audio_rate):
            return samples, float(sample_rate)
        ratio = Fraction(float(self.audio_rate) / float(sample_rate)).limit_denominator(1000)
        return ssignal.resample_poly(samples, ratio.numerator, ratio.denominator), float(self.audio_rate)

    def prepare(self, samples):
        """The signal that drives the membrane: scaled to rms_level, then faded."""
        x = samples * (self.rms_level / np.sqrt(np.mean(samples**2)))
        return x * hann_fade(len(x)) if self.fade else x

    def membrane_velocity(self, x, sample_rate, channels):
        """Membrane velocity of the prepared signal at the given places, at half the audio rate."""
        return membrane_velocity(x, sample_rate, channels, self.n_channels, self.membrane)

    def n_threads(self):
        if self.threads is not None:
            return self.threads
        import numba

        return numba.config.NUMBA_NUM_THREADS

    def encode(self, samples, sample_rate, seed=None):
        """(times_ms float64 sorted ascending, channels int64 in [0, n_channels)).

        samples: 1-d, or (frames, channels) which is averaged to mono. seed overrides self.seed.
        Spikes with equal times come in channel order. Raises AudioError on empty, silent or
        non-finite input."""
        samples = as_mono(samples)
        check_signal(samples, sample_rate)
        samples, rate = self.resample(samples, sample_rate)
        # one random stream per place, so that neither the blocks nor the threads change the spikes
        seeds = place_seeds(self.seed if seed is None else seed, self.n_channels)
        x = self.prepare(samples)
        inner_rate = rate / 2.0
        # places per block: at most channel_block, and few enough that a block's spectra stay near
        # BLOCK_VALUES numbers however long the sound is
        block = max(1, min(self.channel_block, BLOCK_VALUES // (len(x) + 1)))
        blocks = [np.arange(start, min(start + block, self.n_channels)) for start in range(0, self.n_channels, block)]

        def encode_block(channels):
            steps, places = run_nerve(self.membrane_velocity(x, rate, channels), inner_rate, self.hair_cell,
                                      self.nerve, seeds[channels])
            return steps, places + channels[0]

        threads = min(self.n_threads(), len(blocks))
        if threads > 1:
            # whole blocks per thread (the FFTs and the nerve kernel release the GIL): a thread that
            # the machine's other work holds up leaves more blocks to the others, where splitting
            # each block's places among threads would wait for it at every block
            with ThreadPoolExecutor(threads, thread_name_prefix="cochlea") as pool:
                done = list(pool.map(encode_block, blocks))
        else:
            done = [encode_block(channels) for channels in blocks]
        all_steps, all_places = zip(*done)
        steps, places = np.concatenate(all_steps), np.concatenate(all_places)
        order = np.lexsort((places, steps))
        return steps[order] * (1000.0 / inner_rate), places[order].astype(np.int64)


def encode_file(path, cochlea=None, seed=None):
    """Spikes (times_ms, channels) of a sound file; see Cochlea.encode.

    cochlea: a Cochlea (default: Cochlea()); seed: None uses the cochlea's own seed (0 by default)."""
    samples, rate = read_audio(path)
    return (cochlea or Cochlea()).encode(samples, rate, seed=seed)
