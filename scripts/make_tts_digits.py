"""Spoken digits synthesised with espeak-ng: two development sets of speech-like audio.

Synthetic speech, not recordings. Two sets (--set):

digits  "zero".."nine" (labels 0-9) said by 20 speakers, each an espeak-ng English voice with a voice
        variant (en-us+m3, en-gb-x-rp+f2, ...), at 5 speaking rates x 3 pitches, with a seeded gain,
        onset and faint noise per clip: 3000 clips. Easy: mlGeNN scores ~100 % on held-out speakers.

words   SHD-like, 20 classes: English "zero".."nine" (labels 0-9) and German "null".."neun" (labels
        10-19; see KEYS for the names). A speaker is an espeak-ng voice variant (m3, f2, Annie, ...)
        that says the English digits with one English accent voice (en-gb-x-gbclan+m3) and the German ones
        with the German voice (de+m3), as SHD's speakers say both. Each speaker has its own seeded
        habits (speaking rate, pitch, pitch range, vocal-tract length); every clip then draws its own
        rate, pitch, pitch range (SSML prosody), intonation (. ? ! ,), vocal-tract warp, onset, room
        reverberation (exponential-noise impulse response, RT60 0.1-0.6 s, in 60 % of clips),
        additive noise at 0-20 dB SNR (white, pink, brown, or babble of 3-6 espeak-ng talkers saying
        sentences without digits), band-limiting (telephone 300-3400 Hz or a low-pass, in 45 % of
        clips) and gain. 16 speakers x 20 classes x 16 clips = 5120 clips; clips.tsv beside them
        holds each clip's draws and classes.tsv the class names.

The clips are 16 kHz mono 16-bit WAV, at most 0.98 s long (inside the encoder's 1 s trial), named
{label}_{speaker}_{index}.wav, the default naming of `eventprop-lab encode`:

    python scripts/make_tts_digits.py                       # into data_cache/tts-digits/wav
    eventprop-lab encode data_cache/tts-digits/wav --out data_cache/tts-digits/tts_digits.h5 \\
        --split test=speaker:en-gb+m6,en-gb-x-rp+f1
    python scripts/make_tts_digits.py --set words           # into data_cache/tts-words/wav
    eventprop-lab encode data_cache/tts-words/wav --out data_cache/tts-words/tts_words.h5 \\
        --split test=speaker:m6,f3,Annie

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
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt

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


# ---- the words set: English and German digits, 20 classes, SHD-like ---------------------------------

GERMAN_WORDS = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
KEYS = tuple(f"english_{w}" for w in WORDS) + tuple(f"german_{w}" for w in GERMAN_WORDS)  # label i is KEYS[i]
# voice variants (espeak-ng-data/voices/!v): the speakers of the words set, in order; --speakers n takes the first n
WORD_SPEAKERS = ("m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4", "m5", "f5", "m6", "Annie", "m7", "steph", "m8",
                 "klatt2")
GERMAN_VOICE = "de"
MAX_WORD_SECONDS = 0.98  # the whole clip, reverberation tail included
MAX_SPEECH_SECONDS = 0.80  # the word itself; longer takes are said again faster
NOISES = ("white", "pink", "brown", "babble")
NOISE_P = (0.15, 0.25, 0.2, 0.4)
# babble: espeak-ng talkers saying sentences without digits, mixed 3-6 at a time
BABBLE_EN = ("the weather was pleasant and the market was busy this morning",
             "could you please pass me the salt and the bread",
             "we walked along the river until the light was gone",
             "she said that the train had left much earlier than planned",
             "my brother likes to read old books about ships and the sea",
             "turn left at the church and then follow the narrow road",
             "there is coffee in the kitchen if anybody wants some",
             "the children were playing football in the park after school")
BABBLE_DE = ("das wetter war heute morgen schön und der markt war voll",
             "kannst du mir bitte das salz und das brot geben",
             "wir sind am fluss entlang gegangen bis es dunkel wurde",
             "sie hat gesagt dass der zug schon lange weg war",
             "mein bruder liest gern alte bücher über schiffe und das meer",
             "an der kirche links und dann die schmale straße hinauf",
             "in der küche gibt es kaffee wenn jemand welchen möchte",
             "die kinder haben nach der schule im park fußball gespielt")


def word_speakers(n=len(WORD_SPEAKERS)):
    if not 1 <= n <= len(WORD_SPEAKERS):
        raise SystemExit(f"--speakers {n}: choose 1 to {len(WORD_SPEAKERS)} for --set words")
    return list(WORD_SPEAKERS[:n])


def english_voice(speaker):
    """The English accent of a words-set speaker: voices are dealt out in WORD_SPEAKERS order."""
    return VOICES[WORD_SPEAKERS.index(speaker) % len(VOICES)]


def word_clips(speaker_names, per_class=16):
    """(file name, speaker, label, espeak-ng voice, word) of every clip of the words set."""
    for speaker in speaker_names:
        for label, word in enumerate(WORDS + GERMAN_WORDS):
            voice = f"{english_voice(speaker) if label < 10 else GERMAN_VOICE}+{speaker}"
            for index in range(per_class):
                yield f"{label}_{speaker}_{index:02d}.wav", speaker, label, voice, word


def speaker_habits(seed, speaker):
    """A speaker's own seeded centre of speaking rate (wpm), pitch (0-99), pitch range (%) and
    vocal-tract warp (formants and voice pitch scaled by it)."""
    rng = clip_rng(seed, f"speaker\0{speaker}")
    return dict(rate=rng.uniform(130, 220), pitch=rng.uniform(25, 75), range=rng.uniform(50, 150),
                warp=rng.uniform(0.9, 1.1))


def word_draws(seed, name, speaker):
    """Every random choice of one clip, from the seed, its name and its speaker's habits."""
    h, rng = speaker_habits(seed, speaker), clip_rng(seed, name)
    d = dict(rate=float(np.clip(h["rate"] * np.exp(rng.normal(0, 0.2)), 90, 320)),
             pitch=float(np.clip(h["pitch"] + rng.uniform(-20, 20), 0, 99)),
             range=float(np.clip(h["range"] * np.exp(rng.normal(0, 0.4)), 10, 200)),
             punct=str(rng.choice([".", "?", "!", ","])),
             warp=float(h["warp"] * np.exp(rng.normal(0, 0.03))),
             onset=float(rng.uniform(0.02, 0.2)),
             reverb=bool(rng.random() < 0.6), rt60=float(rng.uniform(0.1, 0.6)), drr_db=float(rng.uniform(-3, 12)),
             noise=str(rng.choice(NOISES, p=NOISE_P)), snr_db=float(rng.uniform(0, 20)),
             band=str(rng.choice(["full", "telephone", "lowpass"], p=[0.55, 0.2, 0.25])),
             cutoff=float(rng.uniform(2000, 6000)), gain=float(rng.uniform(0.05, 0.95)))
    d["rng"] = rng  # the rest of the stream: impulse responses, noise samples, babble offsets
    return d


def say(voice, text, rate, pitch, range_pct, workdir, tag):
    """espeak-ng's samples (float64, its own rate) and that rate, with the pitch range set by SSML."""
    raw = Path(workdir, f"{tag}.wav")
    ssml = f'<speak><prosody range="{range_pct:.0f}%">{text}</prosody></speak>'
    done = subprocess.run(["espeak-ng", "-m", "-v", voice, "-s", str(int(round(rate))), "-p", str(int(round(pitch))),
                           "-w", str(raw), ssml], capture_output=True, text=True)
    if done.returncode != 0 or not raw.exists():
        raise RuntimeError(f"espeak-ng -v {voice} failed: {done.stderr.strip() or done.returncode}")
    sr, x = wavfile.read(raw)
    raw.unlink()
    return x.astype(np.float64) / 32768.0, sr


def to_rate(x, sr, warp=1.0):
    """x resampled to 16 kHz, played warp times faster: formants and pitch up by warp, duration down."""
    target = int(round(RATE / warp / 50)) * 50  # a multiple of 50 Hz keeps the polyphase ratio small
    g = np.gcd(target, sr)
    return resample_poly(x, target // g, sr // g)


def coloured(kind, n, rng):
    """n samples of unit-rms white, pink (1/f) or brown (1/f^2) noise."""
    spec = np.fft.rfft(rng.normal(size=n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    f[0] = f[1]
    spec *= {"white": 1.0, "pink": f**-0.5, "brown": f**-1.0}[kind]
    x = np.fft.irfft(spec, n)
    x -= x.mean()
    return x / np.sqrt(np.mean(x**2))


def babble_bank(seed, workdir, tracks=8, seconds=4.0):
    """tracks of babble: each 3-6 talkers (random variant, language, rate, pitch) saying sentences."""
    bank = []
    for t in range(tracks):
        rng = clip_rng(seed, f"babble\0{t}")
        mix = np.zeros(int(seconds * RATE))
        for k in range(rng.integers(3, 7)):
            variant = str(rng.choice(WORD_SPEAKERS))
            german = rng.random() < 0.5
            voice = f"{GERMAN_VOICE if german else str(rng.choice(VOICES))}+{variant}"
            lines = BABBLE_DE if german else BABBLE_EN
            text = " ".join(lines[i] for i in rng.permutation(len(lines))[:3])
            x, sr = say(voice, text, rng.uniform(140, 220), rng.uniform(20, 80), 100, workdir, f"babble-{t}-{k}")
            x = to_rate(x, sr, rng.uniform(0.92, 1.08))
            x = x / (np.sqrt(np.mean(x**2)) + 1e-12) * 10 ** (rng.uniform(-6, 6) / 20)
            x = np.roll(np.resize(x, len(mix)), rng.integers(len(mix)))  # loop it over the track
            mix += x
        bank.append(mix / np.sqrt(np.mean(mix**2)))
    return bank


def room(x, rt60, drr_db, rng):
    """x in a room: the direct sound plus a tail of exponentially decaying noise (RT60 seconds) at
    drr_db below it in energy."""
    t = np.arange(int(rt60 * RATE)) / RATE
    tail = rng.normal(size=len(t)) * np.exp(-6.908 * t / rt60)  # -60 dB at rt60
    tail[: int(0.002 * RATE)] = 0  # the first reflections arrive after 2 ms
    tail *= 10 ** (-drr_db / 20) / np.sqrt(np.sum(tail**2))
    tail[0] = 1.0
    return fftconvolve(x, tail)


def band_limit(x, band, cutoff):
    if band == "telephone":
        return sosfilt(butter(4, (300, 3400), "bandpass", fs=RATE, output="sos"), x)
    if band == "lowpass":
        return sosfilt(butter(6, cutoff, "lowpass", fs=RATE, output="sos"), x)
    return x


def shape_word(x, d, bank):
    """A trimmed take -> the clip: onset, room, noise at the drawn SNR, band, gain. Also returns
    the seconds of speech."""
    rng = d["rng"]
    x = x / np.abs(x).max()
    speech = len(x)
    if d["reverb"]:
        x = room(x, d["rt60"], d["drr_db"], rng)
    onset = min(int(d["onset"] * RATE), int(MAX_WORD_SECONDS * RATE) - speech - int(0.02 * RATE))
    n = min(onset + len(x) + int(rng.uniform(0.03, 0.15) * RATE), int(MAX_WORD_SECONDS * RATE))
    clip = np.zeros(n)
    part = x[: n - onset]
    if len(part) < len(x):  # a reverberation tail cut at the clip's end fades out over 20 ms
        fade = min(int(0.02 * RATE), len(part))
        part[-fade:] *= np.linspace(1, 0, fade)
    clip[onset:onset + len(part)] = part
    level = np.sqrt(np.mean(clip[onset:onset + speech] ** 2))  # the speech's power while it lasts
    if d["noise"] == "babble":
        track = bank[rng.integers(len(bank))]
        start = rng.integers(len(track) - n)
        noise = track[start:start + n]
    else:
        noise = coloured(d["noise"], n, rng)
    clip = clip + noise * level * 10 ** (-d["snr_db"] / 20)
    clip = band_limit(clip, d["band"], d["cutoff"])
    clip = clip / np.abs(clip).max() * d["gain"]
    return clip, speech / RATE


def make_word_clip(out, name, speaker, label, voice, word, seed, workdir, bank):
    """(seconds of the clip, its draws) written, or (seconds, None) if it was there."""
    path = out / name
    if path.exists():
        sr, x = wavfile.read(path)
        return len(x) / sr, None
    d = word_draws(seed, name, speaker)
    rate = d["rate"]
    for _ in range(8):  # a take too long for the clip is said again 20 % faster
        x, sr = say(voice, word + d["punct"], rate, d["pitch"], d["range"], workdir, name)
        x = to_rate(x, sr, d["warp"])
        loud = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())
        x = x[max(loud[0] - 80, 0):loud[-1] + 160]
        if len(x) <= MAX_SPEECH_SECONDS * RATE:
            break
        rate *= 1.2
    else:
        raise RuntimeError(f"{name}: {word!r} lasts {len(x) / RATE:.2f} s even at {rate:.0f} wpm")
    d["rate"] = rate
    x, d["speech_s"] = shape_word(x, d, bank)
    tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
    wavfile.write(tmp, RATE, np.round(x * 32767).astype(np.int16))
    os.replace(tmp, path)
    del d["rng"]
    return len(x) / RATE, d


COLUMNS = ("file", "speaker", "label", "key", "voice", "rate", "pitch", "range", "punct", "warp", "speech_s",
           "onset", "reverb", "rt60", "drr_db", "noise", "snr_db", "band", "cutoff", "gain")


def write_tables(out, todo, made):
    """classes.tsv (label, key, word, voice language) and clips.tsv (every clip's draws; rows of clips
    made by earlier runs are kept)."""
    rows = (f"{i}\t{k}\t{w}\t{'en' if i < 10 else 'de'}" for i, (k, w) in enumerate(zip(KEYS, WORDS + GERMAN_WORDS)))
    (out / "classes.tsv").write_text("label\tkey\tword\tlanguage\n" + "\n".join(rows) + "\n")
    table = out / "clips.tsv"
    old = {}
    if table.exists():
        lines = table.read_text().splitlines()
        old = {line.split("\t", 1)[0]: line for line in lines[1:]}
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
    for (name, speaker, label, voice, _), d in zip(todo, made):
        if d is not None:
            d = dict(d, file=name, speaker=speaker, label=label, key=KEYS[label], voice=voice)
            old[name] = "\t".join(fmt(d[c]) for c in COLUMNS)
    tmp = table.with_name(".clips.tsv.tmp")
    tmp.write_text("\t".join(COLUMNS) + "\n" + "\n".join(old[k] for k in sorted(old)) + "\n")
    os.replace(tmp, table)


def summarise(out):
    """Per-clip statistics of clips.tsv."""
    lines = (out / "clips.tsv").read_text().splitlines()
    cols = lines[0].split("\t")
    rows = [dict(zip(cols, line.split("\t"))) for line in lines[1:]]
    num = lambda c, rs=rows: np.array([float(r[c]) for r in rs])
    share = lambda c: ", ".join(f"{v} {np.mean([r[c] == v for r in rows]):.0%}"
                                for v in sorted({r[c] for r in rows}))
    rev = [r for r in rows if r["reverb"] == "True"]
    print(f"{len(rows)} clips in clips.tsv: rate {num('rate').min():.0f}-{num('rate').max():.0f} wpm "
          f"(median {np.median(num('rate')):.0f}), pitch {num('pitch').min():.0f}-{num('pitch').max():.0f}, "
          f"range {num('range').min():.0f}-{num('range').max():.0f} %, "
          f"warp {num('warp').min():.2f}-{num('warp').max():.2f}, "
          f"speech {num('speech_s').min():.2f}-{num('speech_s').max():.2f} s "
          f"(mean {num('speech_s').mean():.2f}); "
          f"noise: {share('noise')}, SNR {num('snr_db').min():.1f}-{num('snr_db').max():.1f} dB; "
          f"reverb in {len(rev) / len(rows):.0%} (RT60 {num('rt60', rev).min():.2f}-{num('rt60', rev).max():.2f} s); "
          f"band: {share('band')}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=("digits", "words"), default="digits",
                        help="digits: English digits, 20 speakers, easy (default); "
                             "words: English and German digits, 20 classes, SHD-like and harder")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder of the WAVs (default: data_cache/tts-digits/wav or data_cache/tts-words/wav)")
    parser.add_argument("--speakers", type=int, default=None,
                        help=f"digits: voice+variant speakers, each saying every digit {len(RATES) * len(PITCHES)} "
                             f"ways (default: 20, so 3000 clips; at most 24); words: the first n of "
                             f"{', '.join(WORD_SPEAKERS)} (default: all {len(WORD_SPEAKERS)})")
    parser.add_argument("--per-class", type=int, default=16,
                        help="words: clips of each class per speaker (default: 16, so 5120 clips)")
    parser.add_argument("--mbrola", action="store_true",
                        help="digits: add the MBROLA voices " + ", ".join(MBROLA) +
                             " (needs mbrola and its voices installed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default: 0)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="espeak-ng processes at once (default: all cores)")
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng not found: install it (Debian/Ubuntu: apt-get install espeak-ng) and run again")
    words = args.set == "words"
    if args.out is None:
        args.out = Path(f"data_cache/tts-{args.set}/wav")
    if words:
        if args.mbrola:
            sys.exit("--mbrola is for --set digits")
        names = word_speakers(len(WORD_SPEAKERS) if args.speakers is None else args.speakers)
        todo = list(word_clips(names, args.per_class))
    else:
        names = speakers(20 if args.speakers is None else args.speakers, args.mbrola)
        todo = list(clips(names))
    if args.mbrola:
        with tempfile.TemporaryDirectory() as tmp:
            for voice in MBROLA:
                try:
                    synthesise(voice, "one", 175, 50, tmp)
                except RuntimeError as exc:
                    sys.exit(f"--mbrola: {exc}. Install mbrola and its voice (Debian: mbrola-us1 ...) or drop --mbrola")
    from tqdm import tqdm

    args.out.mkdir(parents=True, exist_ok=True)
    seconds, made = [], []
    with tempfile.TemporaryDirectory() as workdir, ThreadPoolExecutor(max(1, args.jobs)) as pool:
        # threads suffice: the work is in the espeak-ng processes
        if words:
            bank = babble_bank(args.seed, workdir) if any(not (args.out / c[0]).exists() for c in todo) else None
            futures = [pool.submit(make_word_clip, args.out, *clip, args.seed, workdir, bank) for clip in todo]
        else:
            futures = [pool.submit(make_clip, args.out, *clip, args.seed, workdir) for clip in todo]
        for future in tqdm(futures, total=len(todo), unit="clip", desc="synthesising", dynamic_ncols=True):
            if words:
                s, d = future.result()
                seconds.append(s)
                made.append(d)
            else:
                seconds.append(future.result())
    s = np.array(seconds)
    print(f"{len(todo)} clips of {len(names)} speakers in {args.out}: {s.sum():.0f} s of speech, "
          f"{s.min():.2f}-{s.max():.2f} s per clip (mean {s.mean():.2f})")
    if words:
        write_tables(args.out, todo, made)
        summarise(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
