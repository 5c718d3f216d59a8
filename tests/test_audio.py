"""The artificial cochlea (eventprop_lab.data.audio): agreement with lauscher, API, errors.

The lauscher numbers come from tests/data/lauscher_reference.json (made by
tests/data/make_lauscher_reference.py with lauscher 16db85f, which is not needed here): for each
fixed signal of eventprop_lab/data/cochlea/signals.py, the RMS membrane velocity and mean fibre
firing rate per channel (deterministic stages) and the bushy-cell spike counts per channel summed
over 4 seeds (the stochastic output)."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile

from eventprop_lab.data.audio import AudioError, Cochlea, encode_file, read_audio
from eventprop_lab.data.cochlea import HairCellParams, MembraneParams, NerveParams, velocity_response
from eventprop_lab.data.cochlea.nerve import (bushy_kernel, fibre_kernel, flatten_spikes, hair_cell_kernel,
                                              place_seeds, run_nerve, spike_buffers)
from eventprop_lab.data.cochlea.signals import RATE, TONES, reference_signals, tone_burst, vowel

REFERENCE = json.loads((Path(__file__).parent / "data" / "lauscher_reference.json").read_text())
SIGNALS = reference_signals(RATE)
SMOOTH = 5  # channels: the spike-count profiles are compared after a moving average this wide
OUR_SEEDS = range(8)  # more seeds than lauscher's 4, so that most of the remaining noise is lauscher's


def smooth(profile, width=SMOOTH):
    return np.convolve(np.asarray(profile, np.float64), np.ones(width) / width, mode="same")


def correlation(a, b):
    return float(np.corrcoef(a, b)[0, 1])


@pytest.fixture(scope="module")
def cochlea16():
    """At the reference's own rate: what lauscher computes for a 16 kHz file."""
    return Cochlea(audio_rate=None)


@pytest.fixture(scope="module")
def ours(cochlea16):
    """Per reference signal: membrane velocity, fibre rate and spike counts of our cochlea."""
    out = {}
    for name, samples in SIGNALS.items():
        x = cochlea16.prepare(samples)
        velocity = cochlea16.membrane_velocity(x, RATE, np.arange(700))
        probability = hair_cell_kernel(velocity, RATE / 2, cochlea16.hair_cell.as_array())
        per_seed = []
        for seed in OUR_SEEDS:
            rng = np.random.default_rng(seed)
            _, places = run_nerve(velocity, RATE / 2, cochlea16.hair_cell, cochlea16.nerve, rng)
            per_seed.append(np.bincount(places, minlength=700))
        per_seed = np.array(per_seed, np.float64)
        half = len(per_seed) // 2
        out[name] = dict(membrane_rms=np.sqrt(np.mean(velocity**2, axis=1)),
                         fibre_rate_hz=probability.mean(axis=1) * RATE / 2,
                         counts=per_seed.mean(axis=0), total=per_seed.sum(axis=1).mean(),
                         halves=(per_seed[:half].mean(axis=0), per_seed[half:].mean(axis=0)))
    return out


def reference(name):
    return REFERENCE["signals"][name]


def test_membrane_response_equals_lauschers_to_rounding():
    ref = REFERENCE["membrane_transfer"]
    theirs = np.array(ref["real"]) + 1j * np.array(ref["imag"])
    mine = velocity_response(ref["freqs_hz"], MembraneParams().places(700)[ref["channels"]])
    assert np.max(np.abs(mine - theirs)) < 1e-10 * np.max(np.abs(theirs))


# Lauscher convolves circularly over the clip and its filters ring before an impulse (see
# basilar_membrane.impulse_responses), so the response to a clip's first milliseconds wraps round to
# its end; ours is a linear convolution and drops it. Only the chirp, whose lowest frequencies come
# only at its very start, has enough there to show it: at the places tuned to them (about 560-640).
EDGE_DOMINATED = {"chirp_200_5000"}

# At 8 kHz a 1 or 3 kHz tone repeats every 8 samples, so a place's hair cell sees the same few
# phases of it all the time, and its mean rate depends on them (up to 4 % from place to place).
# Lauscher's inner ear runs on a time axis stretched by (N + 2) / N (its inverse FFT is N/2 + 1 long),
# which slides the phases; we do not copy that quirk, so for these tones the places agree on average.
PHASE_LOCKED = {"tone_1000", "tone_3000"}

# Taking every second sample folds frequencies above a quarter of the audio rate (4 kHz here) onto
# lower ones. Lauscher's inverse FFT is N/2 + 1 long, ours N/2, so each frequency folds onto a partner
# one FFT bin away from ours, and where a sound has energy up there the two add with other phases.
# For noise this moves the level of the places tuned above about 4 kHz (channels 0-240) by up to 7 %
# either way, with the same mean; the other sounds have too little up there to show it.
ALIASED = {"noise"}
ABOVE_QUARTER_RATE = slice(0, 240)


def assert_membrane_close(mine, theirs):
    """Where a sound is heard (RMS over 1 % of its loudest place), within 0.5 %, mostly within 0.1 %.

    The 0.5 % is lauscher's DC bin against our filters' at the apex, for sounds with little there."""
    heard = theirs > 0.01 * theirs.max()
    err = np.abs(mine[heard] / theirs[heard] - 1)
    assert err.max() < 5e-3 and np.median(err) < 1e-3


@pytest.mark.parametrize("name", sorted(REFERENCE["signals"]))
def test_membrane_velocity_matches_lauscher(ours, name):
    mine, theirs = ours[name]["membrane_rms"], np.array(reference(name)["membrane_rms"])
    heard = theirs > 0.01 * theirs.max()
    err = np.abs(mine[heard] / theirs[heard] - 1)
    if name in EDGE_DOMINATED:
        assert np.mean(err < 2e-3) > 0.9 and err.max() < 0.2
    elif name in ALIASED:
        signed = mine / theirs - 1
        assert np.abs(signed[ABOVE_QUARTER_RATE]).max() < 0.08 and abs(signed[ABOVE_QUARTER_RATE].mean()) < 0.005
        assert np.abs(signed[ABOVE_QUARTER_RATE.stop:]).max() < 2e-3
    else:
        assert_membrane_close(mine, theirs)


@pytest.mark.parametrize("name", sorted(REFERENCE["signals"]))
def test_hair_cell_rates_match_lauscher(ours, name):
    mine, theirs = ours[name]["fibre_rate_hz"], np.array(reference(name)["fibre_rate_hz"])
    err = np.abs(mine / theirs - 1)
    if name in PHASE_LOCKED:
        assert err.max() < 0.05
        assert np.max(np.abs(smooth(mine, 9)[4:-4] / smooth(theirs, 9)[4:-4] - 1)) < 0.015
    elif name in ALIASED:
        assert err[ABOVE_QUARTER_RATE].max() < 0.03 and err[ABOVE_QUARTER_RATE.stop:].max() < 0.01
    else:
        assert err.max() < 0.01 and np.median(err) < 1e-3


@pytest.mark.parametrize("name", sorted(REFERENCE["signals"]))
def test_spike_count_matches_lauscher(ours, name):
    # lauscher's own totals vary by about 1 % (s.d.) from seed to seed; ours are within 1.2 % of its mean
    assert ours[name]["total"] == pytest.approx(np.mean(reference(name)["spike_count_per_seed"]), rel=0.03)


# Noise excites every place alike, so its profile is flat and its correlation is all sampling
# noise: two sets of 4 of our own seeds correlate at about 0.96 (5-channel average). For it the
# test is that lauscher's profile correlates with ours as well as ours does with itself.
FLAT = {"noise"}


@pytest.mark.parametrize("name", sorted(REFERENCE["signals"]))
def test_spike_profile_matches_lauscher(ours, name):
    ref = reference(name)
    theirs = np.array(ref["spike_counts_all_seeds"]) / len(ref["spike_count_per_seed"])
    r = correlation(smooth(ours[name]["counts"]), smooth(theirs))
    a, b = ours[name]["halves"]  # each as many seeds as lauscher's, so a fair bound for the noise
    own = correlation(smooth(a), smooth(b))
    assert r >= own - 0.01, (r, own)
    if name not in FLAT:
        assert r >= 0.99


@pytest.mark.parametrize("name", sorted(REFERENCE.get("signals_48000", {})))
def test_default_cochlea_matches_lauscher_at_48k(name):
    # The default runs the chain at 48 kHz, as lauscher does for a 48 kHz file: there a 1 kHz tone
    # gives about a quarter of the spikes it gives at 16 kHz, in both. Lauscher ran 2 or 4 seeds here.
    ref = REFERENCE["signals_48000"][name]
    samples = reference_signals(48000)[name]
    cochlea = Cochlea()
    per_seed = np.array([np.bincount(cochlea.encode(samples, 48000, seed=s)[1], minlength=700) for s in range(4)])
    theirs = np.array(ref["spike_counts_all_seeds"]) / len(ref["spike_count_per_seed"])
    assert per_seed.sum(axis=1).mean() == pytest.approx(np.mean(ref["spike_count_per_seed"]), rel=0.06)
    r = correlation(smooth(per_seed.mean(axis=0), 9), smooth(theirs, 9))
    own = correlation(smooth(per_seed[:2].mean(axis=0), 9), smooth(per_seed[2:].mean(axis=0), 9))
    assert r >= own - 0.02, (r, own)
    velocity = cochlea.membrane_velocity(cochlea.prepare(samples), 48000, np.arange(700))
    membrane_rms = np.sqrt(np.mean(np.square(velocity, dtype=np.float64), axis=1))
    assert_membrane_close(membrane_rms, np.array(ref["membrane_rms"]))
    fibre_rate = hair_cell_kernel(velocity, 24000.0, cochlea.hair_cell.as_array()).mean(axis=1) * 24000.0
    assert np.max(np.abs(fibre_rate / np.array(ref["fibre_rate_hz"]) - 1)) < 5e-3


def peak_place(counts):
    """Where a tone's profile peaks: its maximum after a 21-channel moving average, and the centre of
    the channels above half that maximum (the profiles have a flat top and a steep apical edge)."""
    s = smooth(counts, 21)
    top = s >= 0.5 * s.max()
    return int(np.argmax(s)), float(np.sum(np.flatnonzero(top) * s[top]) / np.sum(s[top]))


@pytest.mark.parametrize("name", sorted(set(TONES) & set(REFERENCE["signals"])))
def test_tone_peaks_at_lauschers_place(ours, name):
    mine, theirs = peak_place(ours[name]["counts"]), peak_place(reference(name)["spike_counts_all_seeds"])
    assert abs(mine[0] - theirs[0]) <= 4 and abs(mine[1] - theirs[1]) <= 3, (mine, theirs)
    assert theirs[0] == reference(name).get("peak_channel", theirs[0])


def test_low_tones_peak_towards_the_apex_at_high_channel_ids():
    # the profile of 4 seeds: one seed's peak scatters by about 4 channels (s.d., 16 seeds), which
    # put it at the edge of the bound for some seeds
    cochlea = Cochlea()
    peaks = []
    for freq in (300.0, 1000.0, 3000.0):
        counts = sum(np.bincount(cochlea.encode(tone_burst(freq), RATE, seed=s)[1], minlength=700) for s in range(4))
        peaks.append(peak_place(counts)[0])
    assert peaks[0] > peaks[1] > peaks[2]
    # the membrane's best places for these frequencies
    best = np.abs(velocity_response([300.0, 1000.0, 3000.0], MembraneParams().places(700))).argmax(axis=0)
    assert np.all(np.abs(np.array(peaks) - best) <= 10), (peaks, best)


def test_same_seed_same_spikes_other_seed_other_spikes():
    cochlea = Cochlea(seed=7)
    x = SIGNALS["vowel_a_120"]
    a, b = cochlea.encode(x, RATE), cochlea.encode(x, RATE)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    c = cochlea.encode(x, RATE, seed=8)
    assert len(c[0]) != len(a[0]) or not np.array_equal(c[1], a[1])
    d = Cochlea(seed=8).encode(x, RATE)
    assert np.array_equal(c[0], d[0]) and np.array_equal(c[1], d[1])


def test_fused_kernel_equals_the_stages_run_one_by_one(cochlea16):
    velocity = cochlea16.membrane_velocity(cochlea16.prepare(SIGNALS["chirp_200_5000"]), RATE,
                                           np.arange(300, 340))
    hc, nerve, rate = HairCellParams(), NerveParams(), RATE / 2
    fused = run_nerve(velocity, rate, hc, nerve, np.random.default_rng(5))
    fibres = fibre_kernel(hair_cell_kernel(velocity, rate, hc.as_array()), rate, nerve.as_array(),
                          place_seeds(np.random.default_rng(5), len(velocity)))
    out_steps, out_count = spike_buffers(*velocity.shape, rate, nerve)
    bushy_kernel(fibres, rate, nerve.as_array(), out_steps, out_count)
    staged = flatten_spikes(out_steps, out_count)
    assert len(fused[0]) > 100
    assert np.array_equal(fused[0], staged[0]) and np.array_equal(fused[1], staged[1])


def test_threads_and_blocks_do_not_change_the_spikes():
    # each place draws from a stream of its own, so the places may run in any order on any thread
    x = SIGNALS["vowel_i_220"]
    serial = Cochlea(threads=1, channel_block=64).encode(x, RATE, seed=3)
    for other in (Cochlea(threads=2, channel_block=64), Cochlea(threads=3, channel_block=7)):
        spikes = other.encode(x, RATE, seed=3)
        assert np.array_equal(spikes[0], serial[0]) and np.array_equal(spikes[1], serial[1])


def test_fibres_fire_at_the_spontaneous_rate_in_silence():
    rate = 24000.0
    probability = np.full((4, int(rate)), HairCellParams().spontaneous_rate() / rate)
    fibres = fibre_kernel(probability, rate, NerveParams().as_array(), place_seeds(0, len(probability)))
    # refractoriness lowers a rate r to r / (1 + r * dead time)
    r = HairCellParams().spontaneous_rate()
    assert fibres.sum(axis=1).mean() / 40 == pytest.approx(r / (1 + r * 1e-3), rel=0.03)


def test_warm_up_prepares_the_filter_bank_of_its_rate():
    from eventprop_lab.data.cochlea import impulse_responses

    cochlea = Cochlea(n_channels=16, audio_rate=32000)
    cochlea.warm_up()
    before = impulse_responses.cache_info().hits
    cochlea.encode(SIGNALS["tone_300"], RATE)
    assert impulse_responses.cache_info().hits > before


def test_output_dtypes_and_ranges():
    times, channels = Cochlea(n_channels=64).encode(SIGNALS["noise"], RATE)
    assert times.dtype == np.float64 and channels.dtype == np.int64
    assert len(times) == len(channels) > 100
    assert np.all(np.diff(times) >= 0)
    assert times.min() >= 0 and times.max() < 1000 * len(SIGNALS["noise"]) / RATE
    assert channels.min() >= 0 and channels.max() < 64
    same_time = np.diff(times) == 0
    assert np.all(np.diff(channels)[same_time] > 0)  # ties in channel order, no duplicates


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_any_sample_rate_gives_the_same_profile_as_16k(rate):
    cochlea = Cochlea()
    make = lambda r: vowel(150.0, (500.0, 1500.0, 2500.0), (80.0, 100.0, 120.0), r)  # noqa: E731
    _, base = cochlea.encode(make(16000), 16000)
    _, other = cochlea.encode(make(rate), rate)
    assert len(other) == pytest.approx(len(base), rel=0.15)
    p, q = np.bincount(base, minlength=700), np.bincount(other, minlength=700)
    assert correlation(smooth(p, 9), smooth(q, 9)) > 0.95


def test_stereo_is_the_mean_of_its_channels(tmp_path):
    left, right = SIGNALS["tone_300"], SIGNALS["tone_3000"]
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), RATE, subtype="FLOAT")
    samples, rate = read_audio(path)
    assert rate == RATE and samples.dtype == np.float64 and samples.ndim == 1
    np.testing.assert_allclose(samples, (left + right) / 2, atol=1e-7)
    cochlea = Cochlea(audio_rate=None)
    a = cochlea.encode(np.stack([left, right], axis=1), RATE)
    b = cochlea.encode((left + right) / 2, RATE)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("fmt,subtype,rate", [("WAV", "PCM_16", 16000), ("FLAC", "PCM_24", 44100),
                                              ("OGG", "VORBIS", 48000), ("WAV", "FLOAT", 8000)])
def test_read_audio_reads_common_formats_at_any_rate(tmp_path, fmt, subtype, rate):
    x = tone_burst(440.0, rate)
    path = tmp_path / f"a.{fmt.lower()}"
    soundfile.write(path, x, rate, format=fmt, subtype=subtype)
    samples, got_rate = read_audio(path)
    assert got_rate == rate and samples.dtype == np.float64 and len(samples) == len(x)
    assert np.abs(samples).max() <= 1.0
    assert correlation(samples, x) > 0.99
    times, channels = encode_file(path, seed=3)
    assert len(times) > 100 and channels.dtype == np.int64


@pytest.mark.parametrize("samples,match", [
    (np.zeros(0), "empty"),
    (np.zeros(1600), "silent"),
    (np.full(1600, 1e-8), "silent"),
    (np.r_[np.ones(10), np.nan, np.ones(10)], r"sample 10 is nan"),
    (np.r_[np.ones(10), np.inf], "finite"),
])
def test_encode_refuses_unusable_signals(samples, match):
    with pytest.raises(AudioError, match=match):
        Cochlea().encode(samples, RATE)


def test_encode_refuses_a_rate_too_low():
    with pytest.raises(AudioError, match="sample rate 100 Hz is unusable"):
        Cochlea().encode(SIGNALS["noise"], 100)


def test_read_audio_errors_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(AudioError, match=r"missing\.wav: no such file"):
        read_audio(tmp_path / "missing.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF but not really a wave file" + bytes(range(256)))
    with pytest.raises(AudioError, match=r"garbage\.wav: not a readable sound file.*convert"):
        read_audio(garbage)
    for name, data, match in (("empty.wav", np.zeros(0), "empty"), ("silent.wav", np.zeros(800), "silent"),
                              ("nan.wav", np.r_[np.zeros(5), np.nan, np.ones(5)], "not finite|nan")):
        path = tmp_path / name
        soundfile.write(path, data, RATE, subtype="FLOAT")
        with pytest.raises(AudioError, match=re.escape(name) + f": .*({match})"):
            read_audio(path)
    assert issubclass(AudioError, ValueError)
