"""What the network makes of one sound: decode, cochlea, then a forward pass on a snapshot of a
running session's weights. Forward only: nothing here touches the trainer, its optimiser or its
batches, so it may run in any thread while the session trains.

    snap = snapshot(session)                  # weights, loss and grid, frozen at one moment
    heard = hear(wav_bytes, ".wav", snap)     # spikes, readout voltages, probabilities, timings
"""
import functools
import importlib
import os
import tempfile
import threading
import time
from typing import Callable, NamedTuple, Optional

import numpy as np

from kernels import Params, get_engine, make_batch

from .losses import get_loss

MAX_TRACE_POINTS = 500  # readout traces are returned thinned to this many points (a plot's width)
SILENCE_DB = -30.0  # frames this far below the loudest are trimmed from the ends
TRIM_MARGIN_MS = 50.0  # kept before and after the sound: the spoken digits start 20-120 ms in
MAX_GAP_MS = 250.0  # quiet within a word (a stop consonant's closure) is shorter than this


class InferenceError(ValueError):
    """Something the user can act on (no session yet, unreadable sound, a run being reset)."""


class Snapshot(NamedTuple):
    """Everything a forward pass needs, frozen at one moment of a run."""

    params: Params  # the trainer never mutates these in place (session.py), so no copy is needed
    loss: str
    dt: float
    n_steps: int
    n_channels: int  # input channels before the delay line: what the cochlea must produce
    inputs: Callable  # the run's own input expansion (the delay line), as used for evaluation
    class_names: tuple
    step: int  # training steps behind these weights
    dataset: str

    @property
    def trial_ms(self):
        return self.n_steps * self.dt


class Heard(NamedTuple):
    """One sound as the network heard it."""

    audio_seconds: float  # after trimming silence and cropping to the trial
    input_times: np.ndarray  # cochlea spikes (ms), sorted
    input_channels: np.ndarray
    trace_t: np.ndarray  # (T',) ms, thinned
    readout_v: np.ndarray  # (T', n_out): each readout's voltage, averaged over each step
    probabilities: np.ndarray  # (n_out,)
    prediction: int  # the loss's own decision (the highlighted class)
    hidden_spikes: int
    seconds: dict  # {"decode", "encode", "network"}: wall time of each stage
    notes: tuple  # what the user should know (cropped, trimmed)
    snapshot: Snapshot


def class_names(dataset, n_classes):
    """The class names of a run's data (its SpikeDataset's class_names, from an SHD-layout file's
    extra/keys), else "class 0", "class 1", ..."""
    names = getattr(dataset, "class_names", None)
    if names is not None and len(names) == n_classes:
        return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return tuple(f"class {k}" for k in range(n_classes))


def snapshot(session, attempts=3) -> Snapshot:
    """The session's current weights with what is needed to run them. Reads only what the
    session's threading contract allows from another thread: `params` and `progress`, plus parts
    of the run fixed until a reset (grid, delay line, data); a reset in between is retried."""
    for _ in range(attempts):
        run = session.run
        params = session.params
        progress = session.progress
        if session.run is not run:  # reset while we read
            continue
        train = run.train_set
        names = class_names(train, params.n_out)
        return Snapshot(params=params, loss=progress["loss"], dt=float(run.training.dt),
                        n_steps=int(run.training.n_steps), n_channels=int(train.n_channels),
                        inputs=run._inputs, class_names=names, step=int(progress["step"]),
                        dataset=str(run.run_cfg.dataset))
    raise InferenceError("the run is being reset; try again in a moment")


def _threading_layer():
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process
        return None


def check_can_run_beside(session):
    """numba's workqueue threading layer aborts the whole process when two threads launch parallel
    kernels at once (tbb and omp do not); there, inference waits for the training, and that of
    the session's branches, to pause."""
    running = any(s.status == "running" for s in (session, *getattr(session, "branches", ())))
    if _threading_layer() == "workqueue" and running:
        raise InferenceError("pause the training to try the network: numba's workqueue threading layer "
                             "cannot run it beside training (`pip install tbb` lifts this)")


def probabilities(loss, record, params):
    """Class probabilities as the loss itself scores them: p_k ∝ exp(-loss if the label were k).
    For the sum losses this is exactly softmax of the readout statistic they classify by; for the
    others it is their cross-entropy's view, so every loss gets bars that add up to one."""
    n_out = record.mean_v.shape[2]
    per_class = np.array([loss.evaluate(record, np.array([k]), params).per_sample[0] for k in range(n_out)],
                         np.float64)
    z = -(per_class - per_class.min())
    p = np.exp(z)
    return p / p.sum()


def predict(snap: Snapshot, times_ms, channels):
    """Forward pass of one sample on the snapshot's weights: (readout_v (T, n_out), probabilities,
    prediction, hidden spike count)."""
    samples = snap.inputs([(np.asarray(times_ms, np.float64), np.asarray(channels, np.int64))])
    batch = make_batch(samples, snap.params.n_in, snap.dt, snap.n_steps)
    loss = get_loss(snap.loss)
    record = _engine().forward(snap.params, batch, **loss.record_options())
    decision = int(loss.evaluate(record, np.zeros(1, np.int64), snap.params).prediction[0])
    return record.mean_v[0], probabilities(loss, record, snap.params), decision, int(record.n_spikes[0])


@functools.lru_cache(maxsize=1)
def _engine():
    # an engine of our own, whatever the trainer's backend: a GeNN model is compiled for the trainer's
    # batches, and numba gives the same spikes (README, the GeNN backend). The numba engine's only
    # state is the size of its spike store, which only grows, so threads may share it.
    return get_engine("numba")


def _audio():
    # imported when first needed, so that the rest works (and tests can stand in a fake) without it
    return importlib.import_module("eventprop_lab.data.audio")


_cochlea_lock = threading.Lock()


@functools.lru_cache(maxsize=2)
def _cochlea(n_channels):
    return _audio().Cochlea(n_channels=n_channels)


def cochlea(n_channels=700):
    """One cochlea per channel count, shared (building one sets up its filter bank). It encodes
    blocks of places on as many threads as numba has, with the spikes of one thread."""
    with _cochlea_lock:
        return _cochlea(int(n_channels))


def decode(data: bytes, suffix=".wav"):
    """(mono float64 samples, rate) of an audio file's bytes; InferenceError if unreadable, empty
    or silent. Through a temporary file, so that it is read exactly as read_audio reads files."""
    if not data:
        raise InferenceError("no audio arrived (an empty recording or file)")
    audio = _audio()
    fd, path = tempfile.mkstemp(suffix=suffix if suffix.startswith(".") else "." + suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return audio.read_audio(path)
    except audio.AudioError as exc:
        raise InferenceError(str(exc)) from exc
    finally:
        os.unlink(path)


def trim_silence(samples, rate, floor_db=SILENCE_DB, margin_ms=TRIM_MARGIN_MS, gap_ms=MAX_GAP_MS):
    """The word in a recording: the loudest stretch of sound, quiet gaps shorter than gap_ms
    included (the closure in "six"), with margin_ms on either side. A recording starts whenever the
    button was pressed, and the spoken digits a network learns from start at their onset; a click
    or a cough apart from the word is left out, and the cochlea's cost follows the length kept."""
    samples = np.asarray(samples, np.float64)
    frame = max(int(rate * 0.01), 1)
    n = len(samples) // frame
    if n < 2:
        return samples
    rms = np.sqrt(np.mean(samples[:n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (floor_db / 20))
    breaks = np.flatnonzero(np.diff(loud) > gap_ms / 10) + 1
    stretches = np.split(loud, breaks)
    word = max(stretches, key=lambda frames: np.sum(rms[frames[0]:frames[-1] + 1] ** 2))
    margin = int(rate * margin_ms / 1000)
    start = max(word[0] * frame - margin, 0)
    stop = min((word[-1] + 1) * frame + margin, len(samples))
    return samples[start:stop]


def hear(data: bytes, suffix: str, snap: Snapshot, trim=True) -> Heard:
    """Decode, trim, encode with the cochlea (at whatever rate the sound has: the cochlea brings
    every sound to its own rate) and run the network: everything the Speak panel shows."""
    t0 = time.perf_counter()
    samples, rate = decode(data, suffix)
    notes = []
    if trim:
        kept = trim_silence(samples, rate)
        if len(kept) < len(samples) - rate * 0.1:
            notes.append(f"trimmed {(len(samples) - len(kept)) / rate:.2f} s of quiet")
        samples = kept
    limit = int(round(rate * snap.trial_ms / 1000))
    if len(samples) > limit:
        notes.append(f"the network hears the first {snap.trial_ms / 1000:g} s (its trial length)")
        samples = samples[:limit]
    t1 = time.perf_counter()
    try:
        times, channels = cochlea(snap.n_channels).encode(samples, rate)
    except _audio().AudioError as exc:
        raise InferenceError(str(exc)) from exc
    t2 = time.perf_counter()
    readout_v, probs, decision, n_hidden = predict(snap, times, channels)
    t3 = time.perf_counter()
    if n_hidden == 0:
        notes.append("no hidden neuron fired, so every readout stayed at rest and the answer is a tie")
    every = -(-readout_v.shape[0] // MAX_TRACE_POINTS)
    trace_t = (np.arange(0, readout_v.shape[0], every) * snap.dt).astype(np.float32)
    return Heard(audio_seconds=len(samples) / rate, input_times=np.asarray(times), input_channels=np.asarray(channels),
                 trace_t=trace_t, readout_v=np.ascontiguousarray(readout_v[::every], np.float32),
                 probabilities=probs, prediction=decision, hidden_spikes=n_hidden,
                 seconds={"decode": t1 - t0, "encode": t2 - t1, "network": t3 - t2}, notes=tuple(notes),
                 snapshot=snap)


def hear_in_session(data: bytes, suffix: str, session) -> Heard:
    """hear() on a snapshot of `session` taken now; InferenceError when it cannot run yet."""
    if session is None:
        raise InferenceError("no network yet: the training session is still loading its data")
    check_can_run_beside(session)
    return hear(data, suffix, snapshot(session))


def describe(heard: Optional[Heard]):
    """One line of timings, e.g. "encoded 0.62 s of audio in 0.21 s, network 0.03 s"."""
    s = heard.seconds
    return (f"encoded {heard.audio_seconds:.2f} s of audio in {s['decode'] + s['encode']:.2f} s, "
            f"network {s['network']:.2f} s")
