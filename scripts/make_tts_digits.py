"""Spoken digits "zero".."nine" synthesised with espeak-ng: a real-speech development set.

Synthetic speech, not recordings: every speaker is an espeak-ng English voice with a voice variant
(en-us+m3, en-gb-x-rp+f2, ...), said at several speaking rates and pitches, with a seeded gain, onset
and faint noise per clip. The clips are 16 kHz mono 16-bit WAV named {label}_{speaker}_{index}.wav,
the default naming of `eventprop-lab encode`:

    python scripts/make_tts_digits.py                       # into data_cache/tts-digits/wav
    eventprop-lab encode data_cache/tts-digits/wav --out data_cache/tts-digits/tts_digits.h5 \\
        --split test=speaker:en-gb+m6,en-gb-x-rp+f1

Needs espeak-ng (Debian: apt-get install espeak-ng). Runs again without redoing clips that exist;
each clip is written under a temporary name and renamed, so an interrupted run leaves none half
written. The same espeak-ng version and --seed give the same files."""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# espeak-ng's English voices (`espeak-ng --voices=en`, less the MBROLA ones)
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
          "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
MBROLA = ("mb-us1", "mb-us2", "mb-us3", "mb-en1")
RATES = (140, 160, 180, 200, 220)  # words per minute; espeak-ng's default is 175
PITCHES = (35, 50, 65)  # 0-99, default 50
RATE = 16000
MAX_SECONDS = 0.9  # well inside the encoder's 1 s trial


def speakers(n, mbrola=False):
    """n voice+variant pairs, cycling voices and variants together so both are spread evenly."""
    # (k mod 8, k mod 12) repeats only after 24 pairs, so up to 24 are all different
    if not 1 <= n <= 24:
        raise SystemExit(f"--speakers {n}: choose 1 to 24")
    names = [f"{VOICES[k % len(VOICES)]}+{VARIANTS[k % len(VARIANTS)]}" for k in range(n)]
    return names + (list(MBROLA) if mbrola else [])


def clips(speaker_names):
    """(file name, speaker, word, rate, pitch) of every clip."""
    for speaker in speaker_names:
        for label, word in enumerate(WORDS):
            for index, (rate, pitch) in enumerate((r, p) for r in RATES for p in PITCHES):
                yield f"{label}_{speaker}_{index:02d}.wav", speaker, word, rate, pitch


def clip_rng(seed, name):
    return np.random.default_rng(int.from_bytes(hashlib.blake2b(f"{seed}\0{name}".encode(), digest_size=8).digest(),
                                                 "little"))


def synthesise(voice, word, rate, pitch, workdir):
    """float64 samples at 16 kHz of espeak-ng saying word."""
    raw = Path(workdir, f"{voice}-{word}-{rate}-{pitch}.wav")
    # -w rather than --stdout: the streamed header carries no length
    done = subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(raw), word],
                          capture_output=True, text=True)
    if done.returncode != 0 or not raw.exists():
        raise RuntimeError(f"espeak-ng -v {voice} failed: {done.stderr.strip() or done.returncode}")
    sr, x = wavfile.read(raw)
    raw.unlink()
    x = x.astype(np.float64) / 32768.0
    g = np.gcd(RATE, sr)
    return resample_poly(x, RATE // g, sr // g)


def shape(x, rng, name):
    """Trim espeak's silences, then a seeded onset (20-120 ms, less where the word is long), gain and
    faint white noise (30-45 dB below the speech)."""
    loud = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())
    x = x[max(loud[0] - 80, 0):loud[-1] + 160]  # keep 5 ms before and 10 ms after the speech
    tail = int(0.03 * RATE)
    room = int(MAX_SECONDS * RATE) - len(x) - tail
    if room < 0.01 * RATE:
        raise RuntimeError(f"{name}: the word alone lasts {len(x) / RATE:.2f} s, too long for {MAX_SECONDS} s clips")
    x = x / np.abs(x).max() * rng.uniform(0.3, 0.9)
    onset = min(int(rng.uniform(0.02, 0.12) * RATE), room)
    x = np.concatenate([np.zeros(onset), x, np.zeros(tail)])
    snr_db = rng.uniform(30, 45)
    x = x + rng.normal(0, np.sqrt(np.mean(x**2)) * 10 ** (-snr_db / 20), len(x))
    return np.clip(x, -1, 1)


def make_clip(out, name, speaker, word, rate, pitch, seed, workdir):
    """Seconds of the clip written (or found)."""
    path = out / name
    if path.exists():
        sr, x = wavfile.read(path)
        return len(x) / sr
    voice = speaker  # espeak-ng takes voice+variant as one name
    x = shape(synthesise(voice, word, rate, pitch, workdir), clip_rng(seed, name), name)
    tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
    wavfile.write(tmp, RATE, np.round(x * 32767).astype(np.int16))
    os.replace(tmp, path)
    return len(x) / RATE


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data_cache/tts-digits/wav"), help="folder of the WAVs")
    parser.add_argument("--speakers", type=int, default=20,
                        help=f"voice+variant speakers, each saying every digit {len(RATES) * len(PITCHES)} ways "
                             "(default: 20, so 3000 clips; at most 24)")
    parser.add_argument("--mbrola", action="store_true",
                        help="add the MBROLA voices " + ", ".join(MBROLA) + " (needs mbrola and its voices installed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of gains, onsets and noise (default: 0)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="espeak-ng processes at once (default: all cores)")
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng not found: install it (Debian/Ubuntu: apt-get install espeak-ng) and run again")
    names = speakers(args.speakers, args.mbrola)
    if args.mbrola:
        with tempfile.TemporaryDirectory() as tmp:
            for voice in MBROLA:
                try:
                    synthesise(voice, "one", 175, 50, tmp)
                except RuntimeError as exc:
                    sys.exit(f"--mbrola: {exc}. Install mbrola and its voice (Debian: mbrola-us1 ...) or drop --mbrola")
    from tqdm import tqdm

    args.out.mkdir(parents=True, exist_ok=True)
    todo = list(clips(names))
    seconds = []
    with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(max(1, args.jobs)) as pool:
        # threads suffice: the work is in the espeak-ng processes
        futures = [pool.submit(make_clip, args.out, *clip, args.seed, workdir) for clip in todo]
        for future in tqdm(futures, total=len(todo), unit="clip", desc="synthesising", dynamic_ncols=True):
            seconds.append(future.result())
    s = np.array(seconds)
    print(f"{len(todo)} clips of {len(names)} speakers in {args.out}: {s.sum():.0f} s of speech, "
          f"{s.min():.2f}-{s.max():.2f} s per clip (mean {s.mean():.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
