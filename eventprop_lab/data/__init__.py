"""Datasets: the embedded synthetic default, SHD/SSC and SHD-layout HDF5 files; augmentations."""
from .augment import Compose, DelayLine, Dilate, IdJitter, RandomShift, blend, blend_group, concat
from .events import EVENT_DTYPE, SpikeDataset, events_to_ms, make_events
from .splits import batches, epoch_batches, leave_one_speaker_out, train_validation_split

__all__ = ["EVENT_DTYPE", "Compose", "DelayLine", "Dilate", "IdJitter", "RandomShift", "SpikeDataset", "batches",
           "blend", "blend_group", "concat", "epoch_batches", "events_to_ms", "leave_one_speaker_out",
           "make_events", "train_validation_split"]
