"""The long history of per-batch curves: recent batches whole, older ones as block means."""
import numpy as np
import pytest

from eventprop_lab.history import LongHistory


def test_old_batches_become_exact_block_means_and_memory_stays_bounded():
    h = LongHistory(recent=3, capacity=4)
    for step in range(1, 1001):
        h.add({"step": step, "loss": 2.0 * step, "rate_hz": np.nan if step % 2 else 10.0})
    c = h.columns()
    assert len(c["step"]) <= 3 + 4 + 1 and h.k >= 128
    assert list(c["step"][-3:]) == [998, 999, 1000]
    assert np.allclose(c["loss"], 2 * c["step"])  # a block's loss is the mean of its batches'
    assert np.allclose(c["rate_hz"][:-3], 10.0) and np.all(np.isnan(c["accuracy"]))  # NaNs left out
    assert c["step"][0] < 200 and np.all(np.diff(c["step"]) > 0)
    assert list(h.columns(before=999)["step"][-1:]) == [998]


def test_a_long_history_needs_room():
    with pytest.raises(ValueError):
        LongHistory(recent=0)
