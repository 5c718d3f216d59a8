"""Datasets: the embedded synthetic default, SHD/SSC and SHD-layout HDF5 files; augmentations."""
from .augment import Compose, DelayLine, Dilate, IdJitter, RandomShift, blend, blend_group, concat
from .events import EVENT_DTYPE, SpikeDataset, events_to_ms, make_events
from .hdf5 import read_shd_h5, write_shd_h5
from .sources import Splits, load_dataset
from .splits import batches, epoch_batches, leave_one_speaker_out, train_validation_split
from .synthetic import RandmanConfig, generate, load_embedded

__all__ = ["EVENT_DTYPE", "Compose", "DelayLine", "Dilate", "IdJitter", "RandmanConfig", "RandomShift", "SpikeDataset",
           "Splits", "batches", "blend", "blend_group", "concat", "epoch_batches", "events_to_ms", "generate",
           "leave_one_speaker_out", "load_dataset", "load_embedded", "make_events", "read_shd_h5",
           "train_validation_split", "write_shd_h5"]
