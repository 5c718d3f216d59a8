"""`eventprop-lab encode`: audio files → one SHD-layout .h5 (or a train/test pair), through the cochlea
of eventprop_lab.data.audio.

Labels and speakers come from the file names (a pattern or a regex) or from a CSV. Files that cannot
be used are named, skipped and counted; --strict refuses instead. Nothing is written until every
file is encoded, and then every output goes to a temporary name first, so a failed run leaves the
files of an earlier run as they were."""
import argparse
import hashlib
import json
import os
import sys
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from .audio_files import (DEFAULT_PATTERN, SPLIT_NAMES, EncodeError, FileRecord, Namer, assign_splits, find_audio,
                          natural_key, parse_split)

SHOWN_SKIPS = 50

EPILOG = """\
labels and speakers (one of):
  --pattern P   fields {label}, {speaker} and {index} in the file name without its extension,
                e.g. the default {label}_{speaker}_{index} reads 7_alice_03.flac as label 7,
                speaker alice, index 3. {index} matches digits only; the other fields take the
                shortest text that lets the rest of the name match, so a speaker may contain "_".
                With a "/" the pattern matches the path below the folder given:
                {speaker}/{label}_{index}.
  --regex R     a Python regex with named groups label (required), speaker and index, searched in
                the path below the folder given, extension included:
                '^(?P<speaker>[a-z]+)-(?P<label>\\w+)-(?P<index>\\d+)\\.wav$'
  --csv FILE    columns file,label,speaker (index optional); file is the path below the folder
                given, or the bare file name. A found file that the CSV lacks is skipped.

class ids are the distinct labels sorted (numbers numerically: 2 before 10), kept in extra/keys;
speaker ids likewise. <out stem>.json beside the output holds both name lists and a record per
file (its label, speaker, split and sample number, or why it was skipped).

--split NAME=SPEC (NAME test or valid; give each at most once; the rest is train):
  speaker:A,B     every file of speakers A and B
  index:0,1       every file whose index is 0 or 1 (needs {index} or an index column)
  fraction:0.1    a tenth of each class, drawn with --seed
  test is taken first and valid from what is left. The outputs are then <stem>_train.h5,
  <stem>_test.h5 (and <stem>_valid.h5), so `train --dataset <stem>_train.h5` finds the others.

examples:
  eventprop-lab encode data_cache/tts-digits/wav --out data_cache/tts-digits/tts_digits.h5 \\
      --split test=speaker:en-gb+m6,en-gb-x-rp+f1
  eventprop-lab encode clips/ --regex '(?P<label>yes|no)/(?P<speaker>\\w+)_' --out yesno.h5 \\
      --split test=fraction:0.2
"""


def add_encode_parser(subparsers):
    p = subparsers.add_parser(
        "encode", help="encode audio files (.wav/.flac/.ogg) as spikes into an SHD-layout .h5",
        description="Encode audio files as spikes with the cochlea model into an SHD-layout .h5 file.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="folders (searched recursively) or audio files")
    p.add_argument("--out", required=True, metavar="FILE.h5", help="output file (with --split: its stem names them)")
    names = p.add_mutually_exclusive_group()
    names.add_argument("--pattern", default=None, help=f"file name pattern (default: {DEFAULT_PATTERN})")
    names.add_argument("--regex", help="regex with named groups label, speaker, index")
    names.add_argument("--csv", metavar="FILE", help="CSV with columns file,label,speaker")
    p.add_argument("--split", action="append", default=[], metavar="NAME=SPEC",
                   help="hold out a test (or valid) set: test=speaker:A,B | test=index:0,1 | test=fraction:0.1")
    p.add_argument("--trial-ms", type=float, default=1000.0,
                   help="drop spikes after this time; longer files are counted and warned of (default: 1000)")
    p.add_argument("--seed", type=int, default=0,
                   help="base seed: the cochlea's, each file's (from it and the file's path) and --split fraction's "
                        "(default: 0)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help=f"encoding processes; the output does not depend on it (default: {os.cpu_count()})")
    p.add_argument("--channels", type=int, default=700,
                   help="cochlea channels = input neurons of the network trained on it (default: 700)")
    p.add_argument("--strict", action="store_true",
                   help="refuse (exit code 2, nothing written) if any file would be skipped")
    return p


# ---- encoding -----------------------------------------------------------------------------------


def file_seed(seed, key):
    """A file's seed from the base seed and its key: the same whatever the job count or file order."""
    digest = hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class CochleaEncoder:
    """(times_ms, channels, seconds of audio) of a file, by eventprop_lab.data.audio's cochlea.

    Picklable, and builds its cochlea once per process."""

    def __init__(self, n_channels=700, seed=0, threads=None):
        self.n_channels, self.seed, self.threads = n_channels, seed, threads
        self._cochlea = None

    def __getstate__(self):
        return {"n_channels": self.n_channels, "seed": self.seed, "threads": self.threads, "_cochlea": None}

    def settings(self):
        return {"model": "eventprop_lab.data.audio.Cochlea", "n_channels": self.n_channels, "seed": self.seed}

    def __call__(self, path, seed):
        from .data.audio import Cochlea, read_audio

        if self._cochlea is None:
            self._cochlea = Cochlea(n_channels=self.n_channels, seed=self.seed, threads=self.threads)
        samples, rate = read_audio(path)
        times, channels = self._cochlea.encode(samples, rate, seed=seed)
        return times, channels, len(samples) / rate


_worker_encoder = None


def _init_worker(encoder):
    global _worker_encoder
    _worker_encoder = encoder
    encoder.threads = 1  # the processes share the cores already; the spikes do not depend on it


def _encode_one(path, seed, encoder=None):
    """(times, channels, seconds, None), or (None, None, 0, reason) for a file to skip."""
    encoder = encoder or _worker_encoder
    try:
        times, channels, seconds = encoder(path, seed)
    except (ValueError, OSError) as exc:  # AudioError is a ValueError: unreadable, empty, silent, non-finite
        return None, None, 0.0, str(exc) or type(exc).__name__
    except Exception as exc:
        raise RuntimeError(f"{path}: the cochlea failed ({type(exc).__name__}: {exc})") from exc
    # compact types: a 3000-clip set holds some 36 million spikes until it is written
    return np.asarray(times, np.float32), np.asarray(channels, np.int32), float(seconds), None


def encode_all(records, encoder, seed, jobs, progress=True):
    """Encode the records in their order; results do not depend on jobs."""
    from tqdm import tqdm

    results = [None] * len(records)
    bar = tqdm(total=len(records), unit="file", desc="encoding", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    seconds = 0.0

    def done(i, result):
        nonlocal seconds
        results[i] = result
        seconds += result[2]
        bar.update(1)
        bar.set_postfix_str(f"{seconds:.0f} s of audio", refresh=False)

    try:
        if jobs <= 1:
            for i, r in enumerate(records):
                done(i, _encode_one(r.path, file_seed(seed, r.key), encoder))
        else:
            # spawn: the parent may run numba or tqdm threads, which fork would copy half-held
            with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_init_worker,
                                     initargs=(encoder,)) as pool:
                futures = {pool.submit(_encode_one, r.path, file_seed(seed, r.key)): i for i, r in enumerate(records)}
                try:
                    for future in as_completed(futures):
                        done(futures[future], future.result())
                except BaseException:
                    pool.shutdown(cancel_futures=True)
                    raise
    finally:
        bar.close()
    return results


# ---- writing ------------------------------------------------------------------------------------


def _write_json_atomically(path, data):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_outputs(outputs, manifest, manifest_path):
    """Write every .h5 under a temporary name, then move them all into place, then the manifest."""
    from .data.hdf5 import write_shd_h5

    token = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
    staged = []
    try:
        for path, (samples, labels, speakers, keys) in outputs.items():
            tmp = path.with_name(f".{path.name}.{token}.partial")
            staged.append((tmp, path))
            write_shd_h5(tmp, samples, labels, speakers, keys)
        for tmp, path in staged:
            os.replace(tmp, path)
        _write_json_atomically(manifest_path, manifest)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def output_paths(out, splits):
    out = Path(out)
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise EncodeError(f"--out {out}: the output must end in .h5")
    stem = out.stem[:-len("_train")] if out.stem.endswith("_train") else out.stem
    manifest = out.with_name(stem + ".json")
    if not splits:
        return {"train": out}, manifest
    return {name: out.with_name(f"{stem}_{name}{out.suffix}") for name in ("train",) + SPLIT_NAMES
            if name == "train" or name in splits}, manifest


# ---- the command --------------------------------------------------------------------------------


def run_encode(args, encoder=None) -> int:
    """The `encode` command; 0 on success, 2 on a refusal (nothing written then).

    encoder: a picklable callable (path, seed) -> (times_ms, channels, seconds), the cochlea by default."""
    try:
        return _run(args, encoder)
    except EncodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: nothing written", file=sys.stderr)
        return 130


def _say(text):
    print(text, flush=True)


def _run(args, encoder):
    t0 = time.time()
    if args.jobs < 1:
        raise EncodeError(f"--jobs {args.jobs}: at least 1")
    if args.channels < 1:
        raise EncodeError(f"--channels {args.channels}: at least 1")
    if args.trial_ms <= 0:
        raise EncodeError(f"--trial-ms {args.trial_ms}: must be positive")
    namer = Namer(args.pattern, args.regex, args.csv)
    split_names = [parse_split(s)[0] for s in args.split]
    paths, manifest_path = output_paths(args.out, split_names)
    encoder = encoder or CochleaEncoder(args.channels, args.seed)

    records = []
    for key, path in find_audio(args.inputs):
        try:
            label, speaker, index = namer(key)
            records.append(FileRecord(key, path, label, speaker, index))
        except LookupError as exc:
            records.append(FileRecord(key, path, skipped=exc.args[0]))
    named = [r for r in records if r.skipped is None]
    _refuse_or_report([r for r in records if r.skipped], args.strict, "name")
    if not named:
        raise EncodeError(f"none of the {len(records)} files could be named; check --pattern/--regex/--csv")
    # checked before the slow part: a mistyped held-out speaker should not cost an encoding run
    assign_splits(named, args.split, args.seed)

    _say(f"encoding {len(named)} files with {min(args.jobs, len(named))} process(es) ...")
    results = encode_all(named, encoder, args.seed, args.jobs)
    kept, bad, longer, clipped = [], [], 0, 0
    for r, (times, channels, seconds, reason) in zip(named, results):
        if reason is not None:
            bad.append(r._replace(skipped=reason))
            continue
        inside = times < args.trial_ms
        if seconds * 1000.0 > args.trial_ms:
            longer += 1
        clipped += int((~inside).sum())
        if not inside.any():
            bad.append(r._replace(skipped=f"no spikes in the first {args.trial_ms:g} ms"))
            continue
        kept.append((r, times[inside], channels[inside], seconds))
    _refuse_or_report(bad, args.strict, "audio")
    if not kept:
        raise EncodeError("no file gave spikes; nothing written")

    kept_records = [k[0] for k in kept]
    split = assign_splits(kept_records, args.split, args.seed)  # again: skipped files may change it
    keys = sorted({r.label for r in kept_records}, key=natural_key)
    speakers = sorted({r.speaker for r in kept_records}, key=natural_key)
    label_id, speaker_id = {k: i for i, k in enumerate(keys)}, {s: i for i, s in enumerate(speakers)}

    outputs, file_info, counts = {}, {}, {}
    for name, path in paths.items():
        rows = [k for k, s in zip(kept, split) if s == name]
        counts[name] = len(rows)
        for n, (r, t, c, sec) in enumerate(rows):
            file_info[r.key] = {"file": r.key, "label": r.label, "speaker": r.speaker, "index": r.index,
                                "split": name, "sample": n, "seconds": round(sec, 4), "spikes": len(t)}
        outputs[path] = ([(t, c) for _, t, c, _ in rows], [label_id[r.label] for r, *_ in rows],
                         [speaker_id[r.speaker] for r, *_ in rows], keys)
    for r in [r for r in records if r.skipped] + bad:
        file_info[r.key] = {"file": r.key, "skipped": r.skipped}
    manifest = {
        "written_by": "eventprop-lab encode",
        "inputs": [str(i) for i in args.inputs],
        "naming": ({"csv": args.csv} if args.csv else {"regex": args.regex} if args.regex
                   else {"pattern": args.pattern or DEFAULT_PATTERN}),
        "split": list(args.split), "seed": args.seed, "trial_ms": args.trial_ms,
        "encoder": encoder.settings() if hasattr(encoder, "settings") else repr(encoder),
        "outputs": {name: path.name for name, path in paths.items()},
        "keys": keys, "speakers": speakers,
        "files": [file_info[k] for k in sorted(file_info)],
    }
    write_outputs(outputs, manifest, manifest_path)

    spikes = np.array([len(t) for _, t, _, _ in kept])
    seconds = np.array([s for *_, s in kept])
    n_skipped = len(records) - len(kept)
    _say(f"encoded {len(kept)} of {len(records)} files ({seconds.sum():.1f} s of audio; clips "
         f"{seconds.min():.2f}-{seconds.max():.2f} s, mean {seconds.mean():.2f}) in {time.time() - t0:.1f} s; "
         f"skipped {n_skipped}")
    _say(f"{len(keys)} classes ({', '.join(keys[:20])}{' ...' if len(keys) > 20 else ''}), {len(speakers)} speakers; "
         f"spikes per clip: mean {spikes.mean():.0f}, median {np.median(spikes):.0f}, "
         f"range {spikes.min()}-{spikes.max()}")
    if longer:
        _say(f"warning: {longer} files were longer than --trial-ms {args.trial_ms:g}; "
             f"{clipped} spikes after it were dropped")
    for name, path in paths.items():
        _say(f"wrote {path} ({counts[name]} samples)")
    _say(f"wrote {manifest_path} (class and speaker names, and what became of each file)")
    if split_names:
        stem = paths["train"].name[:-len("_train" + paths["train"].suffix)]
        for name in SPLIT_NAMES:
            other = paths["train"].with_name(f"{stem}_{name}{paths['train'].suffix}")
            if name not in paths and other.exists():
                _say(f"warning: {other} is from an earlier run, and `--dataset {paths['train']}` will load it "
                     "too; delete it if it does not belong")
    return 0


def _refuse_or_report(skipped, strict, stage):
    if not skipped:
        return
    lines = [f"  {r.key}: {r.skipped}" for r in skipped]
    shown = "\n".join(lines[:SHOWN_SKIPS]) + (f"\n  ... and {len(lines) - SHOWN_SKIPS} more" if len(lines) > SHOWN_SKIPS
                                              else "")
    if strict:
        raise EncodeError(f"--strict: {len(skipped)} file(s) cannot be used, nothing written:\n{shown}")
    what = "could not be named" if stage == "name" else "have unusable audio"
    print(f"skipping {len(skipped)} file(s) that {what}:\n{shown}", file=sys.stderr, flush=True)
