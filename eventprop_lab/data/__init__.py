"""Datasets: the embedded synthetic default, SHD/SSC and SHD-layout HDF5 files; augmentations."""
from .events import EVENT_DTYPE, SpikeDataset, events_to_ms, make_events

__all__ = ["EVENT_DTYPE", "SpikeDataset", "events_to_ms", "make_events"]
