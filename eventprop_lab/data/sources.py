"""Named datasets: the embedded "randman-shd", SHD and SSC (through tonic, from files the user
placed in data_dir; nothing is downloaded), and a user's own SHD-layout HDF5 file."""
import warnings
from pathlib import Path
from typing import NamedTuple, Optional

from .events import SpikeDataset
from .hdf5 import read_shd_h5

SOURCE_PAGE = "https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/"
SPLITS = {"shd": ("train", "test"), "ssc": ("train", "valid", "test")}


class Splits(NamedTuple):
    """The parts of a dataset; validation is None where the dataset has no official one (SHD, randman-shd)."""

    train: SpikeDataset
    validation: Optional[SpikeDataset]
    test: Optional[SpikeDataset]


def load_dataset(name, data_dir="data_cache", n_channels=700, progress=None) -> Splits:
    """Splits of a named dataset.

    name: "randman-shd" (generated, cached in data_dir), "shd", "ssc" (the official files in
    data_dir/SHD/ and data_dir/SSC/), or "h5:<path>" / a path ending in .h5 for an SHD-layout file.
    A file named like <stem>_train.h5 picks up <stem>_valid.h5 and <stem>_test.h5 beside it, if
    present; otherwise the file is the training set and validation and test are None.
    progress, if given, is called with a line of text during slow first loads."""
    key = str(name).strip()
    if key.lower() == "randman-shd":
        from .synthetic import RandmanConfig, load_embedded

        train, test = load_embedded(RandmanConfig(n_channels=n_channels), cache_dir=data_dir, progress=progress)
        return Splits(train, None, test)
    if key.lower() in SPLITS:
        kind = key.lower()
        parts = {split: _load_heidelberg(kind, split, data_dir, n_channels, progress) for split in SPLITS[kind]}
        return Splits(parts["train"], parts.get("valid"), parts["test"])
    if key.lower().startswith("h5:") or key.lower().endswith((".h5", ".hdf5")):
        return _load_own_file(Path(key[3:] if key.lower().startswith("h5:") else key), n_channels)
    raise ValueError(f"unknown dataset {name!r}: use randman-shd, shd, ssc, or h5:<path to an SHD-layout file>")


def _load_own_file(path, n_channels):
    stem = path.name[:-len("_train" + path.suffix)] if path.stem.endswith("_train") else None
    found = {}
    for split in ("valid", "test"):
        other = path.with_name(f"{stem}_{split}{path.suffix}") if stem is not None else None
        found[split] = read_shd_h5(other, n_channels) if other is not None and other.is_file() else None
    return Splits(read_shd_h5(path, n_channels), found["valid"], found["test"])


def _missing_message(kind, path):
    files = ", ".join(f"{kind}_{s}.h5" for s in SPLITS[kind])
    return (f"{kind.upper()} file not found: {path}. Download {files} (as .h5.zip; unzipped or not) from the "
            f"Heidelberg spiking datasets page of the Zenke lab, {SOURCE_PAGE}, and put them in {path.parent}/. "
            f"Nothing is downloaded automatically.")


def _tonic_class(kind):
    """tonic's SHD or SSC, told to look for the .h5 (or unzip the .h5.zip) and never to download.

    tonic finds files at <save_to>/<class name>/, so the subclass keeps tonic's class name."""
    import tonic.datasets  # imports torch: only paid by those who load SHD or SSC

    def _check_exists(self):
        return Path(self.location_on_system, self.data_filename).is_file()

    def download(self):
        archive = Path(self.location_on_system, self.filename)
        if archive.is_file():  # the .h5.zip as downloaded by hand: unpack it, as tonic would
            from tonic.download_utils import extract_archive

            try:
                extract_archive(str(archive), self.location_on_system)
            except Exception as exc:
                raise ValueError(f"{archive}: could not be unzipped ({exc})") from exc
            if _check_exists(self):
                return
        raise FileNotFoundError(_missing_message(kind, Path(self.location_on_system, self.data_filename)))

    parent = tonic.datasets.SHD if kind == "shd" else tonic.datasets.SSC
    return type(parent.__name__, (parent,), {"_check_exists": _check_exists, "download": download})


def _open_with_tonic(kind, split, data_dir, n_channels=700):
    cls = _tonic_class(kind)
    try:
        return cls(str(data_dir), train=split == "train") if kind == "shd" else cls(str(data_dir), split=split)
    except FileNotFoundError:
        raise
    except (OSError, KeyError) as exc:  # h5py's errors: tonic reads extra/keys and extra/speaker on opening
        path = Path(data_dir, cls.__name__, f"{kind}_{split}.h5")
        read_shd_h5(path, n_channels, require_extra=True)  # names the problem in the file
        raise ValueError(f"{path}: tonic could not open it ({exc!r})") from exc


def _load_heidelberg(kind, split, data_dir, n_channels, progress):
    """One split of SHD or SSC, converted once to a SpikeDataset and cached beside the file.

    tonic opens the file anew for every sample (8 s for SHD's training set, about ten times that
    for SSC's) and casts times to integer microseconds, where a NaN would pass unseen; so the
    conversion reads the arrays tonic would read, in bulk, from the file tonic located, and
    checks them (2-3 s for SHD's training set)."""
    source = _open_with_tonic(kind, split, data_dir, n_channels)
    path = Path(source.location_on_system, source.data_filename)
    stat = path.stat()
    # keyed by size and modification time: a replaced file is read again; "k": with the class names
    # (caches written before datasets kept them are converted again)
    cache = path.with_name(f"{path.stem}.{stat.st_size}-{stat.st_mtime_ns}-{n_channels}k.npz")
    if cache.exists():
        try:
            return SpikeDataset.load(cache)
        except ValueError as exc:
            warnings.warn(f"unreadable cache ({exc}); converting {path} again", stacklevel=3)
    if progress is not None:
        progress(f"{kind.upper()}: converting {path} once (it is cached as {cache.name})")
    data = read_shd_h5(path, n_channels, name=f"{kind}-{split}", require_extra=True)
    if len(data) != len(source):
        raise ValueError(f"{path}: tonic counts {len(source)} samples, the file's arrays {len(data)}")
    data.save(cache)
    for stale in path.parent.glob(f"{path.stem}.*.npz"):
        if stale != cache:
            stale.unlink(missing_ok=True)
    return data
