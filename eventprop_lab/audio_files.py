"""Which audio files an encode takes, and their labels, speakers and splits: from the file names
(a pattern or a regex) or a CSV. Problems with the inputs or options are EncodeErrors."""
import csv
import re
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
DEFAULT_PATTERN = "{label}_{speaker}_{index}"
SPLIT_NAMES = ("test", "valid")  # the names load_dataset picks up beside <stem>_train.h5


class EncodeError(ValueError):
    """A problem with the inputs or options, reported as one line (exit code 2)."""


class FileRecord(NamedTuple):
    key: str  # path below the folder given (posix), or the bare name of a file given directly
    path: Path
    label: Optional[str] = None
    speaker: Optional[str] = None
    index: Optional[int] = None
    skipped: Optional[str] = None


def natural_key(text):
    """Sort numbers numerically, and before words."""
    return (0, int(text), text) if text.isdigit() else (1, 0, text)


def _pattern_regex(pattern):
    parts, fields, pos = [], set(), 0
    for m in re.finditer(r"\{([^{}]*)\}", pattern):
        name = m.group(1)
        if name not in ("label", "speaker", "index"):
            raise EncodeError(f"--pattern {pattern!r}: unknown field {{{name}}}; use {{label}}, {{speaker}}, {{index}}")
        if name in fields:
            raise EncodeError(f"--pattern {pattern!r}: {{{name}}} appears twice")
        fields.add(name)
        parts.append(re.escape(pattern[pos:m.start()]))
        parts.append(r"(?P<index>\d+)" if name == "index" else rf"(?P<{name}>[^/]+?)")
        pos = m.end()
    parts.append(re.escape(pattern[pos:]))
    if "label" not in fields:
        raise EncodeError(f"--pattern {pattern!r} has no {{label}} field")
    return re.compile("".join(parts))


class Namer:
    """Label, speaker and index of a file from its key, by pattern, regex or CSV."""

    def __init__(self, pattern=None, regex=None, csv_path=None):
        self.rows = None
        self.describe = ""
        if csv_path is not None:
            self.rows, self.by_name = _read_csv(Path(csv_path))
            self.describe = f"not in {csv_path}"
        elif regex is not None:
            try:
                self.regex = re.compile(regex)
            except re.error as exc:
                raise EncodeError(f"--regex {regex!r}: {exc}") from None
            if "label" not in self.regex.groupindex:
                raise EncodeError(f"--regex {regex!r} needs a named group (?P<label>...)")
            self.describe = f"does not match --regex {regex!r}"
            self.search = True
        else:
            pattern = pattern or DEFAULT_PATTERN
            self.regex = _pattern_regex(pattern)
            self.with_path = "/" in pattern
            self.describe = f"does not match --pattern {pattern!r}"
            self.search = False

    def __call__(self, key):
        """(label, speaker, index); raises LookupError with the reason the file is skipped."""
        if self.rows is not None:
            row = self.rows.get(key) or self.by_name.get(key.rsplit("/", 1)[-1])
            if row is None:
                raise LookupError(self.describe)
            if row["label"] == "":
                raise LookupError("label missing in the CSV")
            fields = row
        else:
            if self.search:
                m = self.regex.search(key)
            else:
                text = key if self.with_path else key.rsplit("/", 1)[-1]
                m = self.regex.fullmatch(text.rsplit(".", 1)[0])
            if m is None or not m.groupdict().get("label"):
                raise LookupError(self.describe)
            fields = m.groupdict()
        index = fields.get("index")
        if index not in (None, ""):
            try:
                index = int(index)
            except ValueError:
                raise LookupError(f"index {index!r} is not a whole number") from None
        else:
            index = None
        return fields["label"], fields.get("speaker") or "", index


def _read_csv(path):
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
    except OSError as exc:
        raise EncodeError(f"--csv {path}: cannot read it ({exc.strerror})") from None
    missing = [c for c in ("file", "label") if c not in columns]
    if missing:
        raise EncodeError(f"--csv {path}: no column {' or '.join(missing)}; the first line must name the columns "
                          f"file,label,speaker (found: {','.join(columns) or 'nothing'})")
    by_key, by_name, names = {}, {}, {}
    for row in rows:
        key = row["file"].replace("\\", "/")
        key = key[2:] if key.startswith("./") else key
        if key in by_key:
            raise EncodeError(f"--csv {path}: {row['file']!r} is listed twice")
        by_key[key] = row
        name = key.rsplit("/", 1)[-1]
        names[name] = names.get(name, 0) + 1
        by_name[name] = row
    # a bare name stands for a file only where it is unique in the CSV
    return by_key, {n: r for n, r in by_name.items() if names[n] == 1}


def find_audio(inputs):
    """Sorted (key, path) of the audio files under folders and of the files given."""
    found = {}
    for item in map(Path, inputs):
        if item.is_dir():
            pairs = [(p.relative_to(item).as_posix(), p) for p in item.rglob("*")
                     if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".") and p.is_file()]
        elif item.is_file():
            pairs = [(item.name, item)]
        else:
            raise EncodeError(f"{item}: no such file or folder")
        for key, path in pairs:
            if key in found and found[key].resolve() != path.resolve():
                raise EncodeError(f"{found[key]} and {path} would both be named {key!r} in the output; "
                                  "give their common folder instead")
            found[key] = path
    if not found:
        raise EncodeError(f"no {'/'.join(AUDIO_SUFFIXES)} files in {', '.join(map(str, inputs))}")
    return sorted(found.items())


# ---- splits -------------------------------------------------------------------------------------


def parse_split(text):
    """("test" | "valid", kind, values) from NAME=KIND:VALUES."""
    name, eq, spec = text.partition("=")
    kind, colon, values = spec.partition(":")
    usage = "write --split test=speaker:A,B, test=index:0,1 or test=fraction:0.1 (or valid=...)"
    if not eq or not colon or name not in SPLIT_NAMES or kind not in ("speaker", "index", "fraction"):
        raise EncodeError(f"--split {text!r}: {usage}")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not items:
        raise EncodeError(f"--split {text!r}: no {kind} given; {usage}")
    try:
        if kind == "index":
            items = [int(v) for v in items]
        elif kind == "fraction":
            if len(items) != 1 or not 0 < float(items[0]) < 1:
                raise ValueError
            items = [float(items[0])]
    except ValueError:
        raise EncodeError(f"--split {text!r}: {'one number between 0 and 1' if kind == 'fraction' else 'whole numbers'}"
                          f" expected after {kind}:") from None
    return name, kind, items


def assign_splits(records, specs, seed):
    """Split name of each record: test first, valid from the rest, train the remainder."""
    split = np.array(["train"] * len(records), dtype=object)
    by_name = {}
    for name, kind, items in map(parse_split, specs):
        if name in by_name:
            raise EncodeError(f"--split {name}= is given twice")
        by_name[name] = (kind, items)
    for name in SPLIT_NAMES:
        if name not in by_name:
            continue
        kind, items = by_name[name]
        free = np.flatnonzero(split == "train")
        if kind == "speaker":
            known = sorted({r.speaker for r in records}, key=natural_key)
            unknown = [s for s in items if s not in known]
            if unknown:
                raise EncodeError(f"--split {name}=speaker: no files of {', '.join(unknown)}; speakers are "
                                  f"{', '.join(known[:30])}{' ...' if len(known) > 30 else ''}")
            chosen = [i for i in free if records[i].speaker in items]
        elif kind == "index":
            lacking = [r.key for r in records if r.index is None]
            if lacking:
                raise EncodeError(f"--split {name}=index: {lacking[0]} (and {len(lacking) - 1} more) has no index; "
                                  "use a pattern with {index}, a regex group index or a CSV column index")
            chosen = [i for i in free if records[i].index in items]
        else:
            from .data.events import SpikeDataset
            from .data.splits import train_validation_split

            # the stratified draw of validation splits, on a stand-in dataset of labels only
            ids = {k: j for j, k in enumerate(sorted({records[i].label for i in free}, key=natural_key))}
            labels = np.array([ids[records[i].label] for i in free], np.int64)
            stand_in = SpikeDataset(np.zeros(0), np.zeros(0, int), np.zeros(len(free) + 1, int), labels)
            _, held = train_validation_split(stand_in, items[0], rng=[seed, SPLIT_NAMES.index(name)])
            chosen = free[held]
        if len(chosen) == 0:
            raise EncodeError(f"--split {name}={kind}:{','.join(map(str, items))} selects no file")
        split[chosen] = name
    if not (split == "train").any():
        raise EncodeError("--split leaves no file for training")
    return split
