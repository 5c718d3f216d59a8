"""The per-batch curves of a whole run in bounded memory: every batch of the recent past, and
means over blocks of k batches before it, so that the rate before a change made an hour ago is
still there to compare with."""
import threading
from collections import deque

import numpy as np

FIELDS = ("step", "loss", "accuracy", "rate_hz", "silent_fraction")


class LongHistory:
    """Every batch of the last `recent`; older ones as means over blocks of k batches, at most
    `capacity` blocks: when there would be more, neighbouring blocks merge and k doubles. A block's
    step is the mean of its batches' steps. Thread-safe: the training thread adds, pages read."""

    def __init__(self, recent=2000, capacity=1000):
        if recent < 1 or capacity < 2:
            raise ValueError("recent must be at least 1 and capacity at least 2")
        self.capacity = capacity
        self._recent = deque(maxlen=recent)
        self._lock = threading.Lock()
        self.clear()

    def clear(self):
        with self._lock:
            self._recent.clear()
            self._blocks = []  # [(sums, counts)] per field: NaNs (a metric a batch lacks) are left out
            self._open = None  # the block being filled
            self.k = 1
            self.version = 0  # grows whenever a block is closed or merged

    def add(self, row):
        """One batch's metrics ({field: value}; missing ones count as NaN)."""
        values = np.array([row.get(f, np.nan) for f in FIELDS], float)
        with self._lock:
            if len(self._recent) == self._recent.maxlen:
                self._to_blocks(self._recent[0])
            self._recent.append(values)

    def _to_blocks(self, values):
        ok = np.isfinite(values)
        if self._open is None:
            self._open = (np.zeros(len(FIELDS)), np.zeros(len(FIELDS)), 0)
        sums, counts, n = self._open
        self._open = (sums + np.where(ok, values, 0.0), counts + ok, n + 1)
        if n + 1 < self.k:
            return
        self._blocks.append(self._open[:2])
        self._open = None
        if len(self._blocks) > self.capacity:
            pairs = zip(self._blocks[0::2], self._blocks[1::2])
            merged = [(a[0] + b[0], a[1] + b[1]) for a, b in pairs]
            if len(self._blocks) % 2:
                merged.append(self._blocks[-1])  # a half block: it merges at the next doubling
            self._blocks, self.k = merged, self.k * 2
        self.version += 1

    def __len__(self):
        with self._lock:
            return len(self._blocks) + len(self._recent)

    def columns(self, before=None):
        """{field: array}, oldest first: the blocks (the one being filled too), then every recent
        batch; only points with step < `before` if given."""
        with self._lock:
            blocks = self._blocks + ([self._open[:2]] if self._open else [])
            rows = [s / np.maximum(c, 1) + np.where(c > 0, 0.0, np.nan) for s, c in blocks] + list(self._recent)
        table = np.array(rows, float).reshape(-1, len(FIELDS))
        if before is not None:
            table = table[table[:, 0] < before]
        return {f: table[:, i] for i, f in enumerate(FIELDS)}
