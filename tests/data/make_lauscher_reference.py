"""Regenerate lauscher_reference.json: lauscher's numbers for the signals of cochlea/signals.py.

Run with lauscher importable and NOT with this project's venv (lauscher is LGPL; neither it nor its
output files belong in this repository, only the numbers below):

    python3 -m venv /tmp/lvenv && /tmp/lvenv/bin/pip install numpy scipy numba soundfile matplotlib
    mkdir -p /tmp/lauscher_src && git -C <lauscher clone> archive 16db85f | tar -x -C /tmp/lauscher_src
    PYTHONPATH=/tmp/lauscher_src /tmp/lvenv/bin/python tests/data/make_lauscher_reference.py [names...]
    PYTHONPATH=/tmp/lauscher_src /tmp/lvenv/bin/python tests/data/make_lauscher_reference.py --rate 48000 \
        --seeds 0 1 tone_1000 vowel_a_120

Results at 16 kHz go to "signals", at any other rate to "signals_<rate>"; running again updates
only the signals named (all if none). vowel_a_120 at 48 kHz also ran with --seeds 2 3 --out
other.json, merged by hand (totals appended, per-channel counts added; the deterministic fields
were identical).

The chain is lauscher's Wave2Spike(700) (RmsNormalizer(0.3), HanningWindow, BasilarMembrane,
HairCell, BushyCell) run stage by stage, so that the deterministic stages can be summarised too
and the stochastic last stage repeated with several seeds (np.random.seed, lauscher's global RNG).
"""
import argparse
import importlib.util
import json
import re
import subprocess
import time
from pathlib import Path

import numpy as np

from lauscher.audiowaves import MonoAudioWave
from lauscher.transformations import BasilarMembrane, BushyCell, HairCell, HanningWindow, RmsNormalizer

HERE = Path(__file__).resolve().parent
OUT = HERE / "lauscher_reference.json"
SEEDS = (0, 1, 2, 3)
N_CHANNELS = 700


def load_signals():
    path = HERE.parents[1] / "eventprop_lab" / "data" / "cochlea" / "signals.py"
    spec = importlib.util.spec_from_file_location("signals", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lauscher_commit():
    import lauscher
    try:
        return subprocess.run(["git", "-C", str(Path(lauscher.__file__).parents[1]), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "16db85f (from git archive)"


def peak_channel(counts):
    """Argmax of the profile after a 21-channel moving average (tone profiles have flat tops)."""
    return int(np.argmax(np.convolve(np.asarray(counts, np.float64), np.ones(21) / 21, mode="same")))


TRANSFER_FREQS_HZ = (1.0, 50.0, 100.0, 300.0, 1000.0, 3000.0, 8000.0, 20000.0)
TRANSFER_CHANNELS = (0, 100, 200, 300, 400, 500, 600, 699)


def membrane_transfer():
    """Lauscher's complex membrane response at a few places and frequencies (700 places)."""
    bm = BasilarMembrane(channels=N_CHANNELS)
    omega = 2 * np.pi * np.array(TRANSFER_FREQS_HZ)
    v = np.array([bm._v(omega, bm.ch[i]) for i in TRANSFER_CHANNELS])  # pylint: disable=protected-access
    return {"freqs_hz": list(TRANSFER_FREQS_HZ), "channels": list(TRANSFER_CHANNELS),
            "real": v.real.tolist(), "imag": v.imag.tolist()}


def run_one(samples, rate, seeds):
    t0 = time.process_time()
    wave = MonoAudioWave(samples.copy(), rate)
    wave = HanningWindow()(RmsNormalizer(0.3)(wave))
    velocity = BasilarMembrane(channels=N_CHANNELS)(wave)
    probability = HairCell()(velocity)
    t_det = time.process_time() - t0
    counts, totals = np.zeros(N_CHANNELS, np.int64), []
    for seed in seeds:
        np.random.seed(seed)
        spikes = BushyCell()(probability)
        labels = spikes.spike_labels.astype(np.int64)
        counts += np.bincount(labels, minlength=N_CHANNELS)
        totals.append(int(len(labels)))
    return {
        "membrane_rms": [float(f"{v:.5g}") for v in np.sqrt(np.mean(velocity.channels**2, axis=1))],
        "fibre_rate_hz": [float(f"{v:.5g}") for v in np.mean(probability.channels, axis=1) * probability.sample_rate],
        "spike_count_per_seed": totals,
        "spike_counts_all_seeds": counts.tolist(),
        "inner_rate_hz": probability.sample_rate,
        "cpu_s_main_process": round(time.process_time() - t0, 1),
        "cpu_s_deterministic_stages_main_process": round(t_det, 1),
    }


def dump(ref):
    """JSON with one line per list of numbers, so that the file reads and diffs by signal."""
    text = json.dumps(ref, indent=1)
    return re.sub(r"\[\s*([-0-9.eE,\s]+?)\s*\]", lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]",
                  text) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--out", type=Path, default=OUT, help="JSON file to update (default: the committed one)")
    args = parser.parse_args()
    signals = load_signals()
    key = "signals" if args.rate == signals.RATE else f"signals_{args.rate}"
    ref = json.loads(args.out.read_text()) if args.out.exists() else {}
    ref.setdefault(key, {})
    ref["membrane_transfer"] = membrane_transfer()
    ref["how"] = {
        "lauscher_commit": lauscher_commit(),
        "chain": "RmsNormalizer(0.3) -> HanningWindow() -> BasilarMembrane(channels=700) -> HairCell() -> BushyCell()",
        "seeds": "0 1 2 3 at 16 kHz; 0 1 at 48 kHz (spike_count_per_seed has one entry per seed)",
        "sample_rate": "signals: 16000; signals_48000: the same recipes evaluated at 48000",
        "command": "PYTHONPATH=/tmp/lauscher_src /tmp/lvenv/bin/python tests/data/make_lauscher_reference.py; "
                   "... make_lauscher_reference.py --rate 48000 --seeds 0 1 tone_1000 vowel_a_120",
        "numpy": np.__version__,
        "fields": {
            "membrane_rms": "RMS of the basilar-membrane velocity per channel (deterministic)",
            "fibre_rate_hz": "mean hair-cell firing probability per channel times the inner rate: spikes/s of a fibre without refractoriness (deterministic)",
            "spike_count_per_seed": "bushy-cell spikes in all, one entry per seed",
            "spike_counts_all_seeds": "bushy-cell spikes per channel, summed over the seeds",
            "membrane_transfer": "BasilarMembrane(700)._v(2π f, place) at the channels and frequencies listed",
            "peak_channel": "tones only: argmax of spike_counts_all_seeds after a 21-channel moving average",
        },
    }
    for name, samples in signals.reference_signals(args.rate).items():
        if args.names and name not in args.names:
            continue
        t0 = time.time()
        entry = run_one(samples, args.rate, args.seeds)
        if name in signals.TONES:
            entry["peak_channel"] = peak_channel(entry["spike_counts_all_seeds"])
        ref[key][name] = entry
        print(f"{name}: {entry['spike_count_per_seed']} spikes, {time.time() - t0:.0f} s wall", flush=True)
        args.out.write_text(dump(ref))
    for name, entry in ref[key].items():  # entries made before peak_channel was recorded
        if name in signals.TONES:
            entry["peak_channel"] = peak_channel(entry["spike_counts_all_seeds"])
    args.out.write_text(dump(ref))


if __name__ == "__main__":
    main()
