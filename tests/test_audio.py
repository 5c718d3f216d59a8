"""The artificial cochlea (eventprop_lab.data.audio): API, errors, and agreement with lauscher."""
import numpy as np
import pytest

from eventprop_lab.data.audio import AudioError, Cochlea, encode_file, read_audio


def tone(freq, seconds=0.3, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return np.sin(2 * np.pi * freq * t)


def test_encode_returns_sorted_ms_times_and_int64_channels():
    times, channels = Cochlea().encode(tone(1000), 16000)
    assert times.dtype == np.float64 and channels.dtype == np.int64
    assert len(times) == len(channels) > 100
    assert np.all(np.diff(times) >= 0) and times[0] >= 0 and times[-1] < 300
    assert channels.min() >= 0 and channels.max() < 700


def test_empty_signal_raises_audio_error():
    with pytest.raises(AudioError, match="empty"):
        Cochlea().encode(np.zeros(0), 16000)
