"""The observation stream between a training thread and its readers: a bounded ring buffer with
sequence numbers, and a cursor per reader (a browser session, a progress bar, a notebook)."""
import threading
from collections import deque
from typing import NamedTuple

from .observe import Observation


class Since(NamedTuple):
    cursor: int  # pass it to the next since()
    items: list  # [(seq, Observation)], oldest first
    missed: int  # observations after the old cursor that were dropped (capacity) before this read
    cleared: bool  # the buffer was cleared (a session reset) after the old cursor


class ObservationBuffer:
    """Bounded ring of observations, numbered 1, 2, ... as they are appended.

    Probes carry large arrays (adjoint traces, histograms), so they live in their own, smaller
    ring: they neither hold much memory nor push batch metrics out. Both rings share one sequence,
    so a reader still sees one ordered stream. The lock is held only to append or to copy
    references out; readers do their work outside it, so the writer never waits on a slow reader.
    Observations are shared between readers: treat them as read-only."""

    def __init__(self, capacity=2000, probe_capacity=20):
        if capacity < 1 or probe_capacity < 1:
            raise ValueError("buffer capacities must be at least 1")
        self._main, self._probes = deque(maxlen=capacity), deque(maxlen=probe_capacity)
        self._lock = threading.Lock()
        self._seq = 0
        self._floor = 0  # seq taken by the last clear(): what came before was discarded, not missed

    def append(self, obs: Observation):
        with self._lock:
            self._seq += 1
            (self._probes if obs.kind == "probe" else self._main).append((self._seq, obs))
            return self._seq

    @property
    def newest(self):
        return self._seq

    def __len__(self):
        return len(self._main) + len(self._probes)

    def clear(self):
        with self._lock:
            self._main.clear()
            self._probes.clear()
            self._seq += 1  # the clear takes a number, so every earlier cursor lies before it
            self._floor = self._seq

    def since(self, cursor=None) -> Since:
        """What is newer than `cursor` (None: the start of the current history) and still held."""
        with self._lock:
            newest, low = self._seq, max(cursor or 0, self._floor)
            cleared = cursor is not None and cursor < self._floor
            items = []
            for ring in (self._main, self._probes):
                for item in reversed(ring):  # newest first: a reader that keeps up costs O(new)
                    if item[0] <= low:
                        break
                    items.append(item)
        items.sort(key=lambda item: item[0])
        return Since(newest, items, max(newest - low - len(items), 0), cleared)


class Reader:
    """One consumer's cursor into a buffer (a browser session, a progress bar, a notebook)."""

    def __init__(self, buffer: ObservationBuffer, from_start=True):
        self.buffer = buffer
        self.cursor = None if from_start else buffer.newest
        self.missed = 0  # how many were dropped before this reader got to them, in all
        self.cleared = False  # the last poll crossed a reset: start the plots afresh

    def poll(self, kinds=None):
        """The observations that arrived since the last poll (optionally only some kinds)."""
        got = self.buffer.since(self.cursor)
        self.cursor, self.cleared = got.cursor, got.cleared
        self.missed += got.missed
        return [obs for _, obs in got.items if kinds is None or obs.kind in kinds]
