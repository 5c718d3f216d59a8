"""Speak a digit: what the network makes of a sound, on a snapshot of a session's weights while it
trains (eventprop_lab.infer), and the panel that shows it (app/speak.py), without a browser."""
import io
import re
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from eventprop_lab import infer
from eventprop_lab.infer import InferenceError, describe, hear, hear_in_session, snapshot
from eventprop_lab.losses import get_loss
from eventprop_lab.session import TrainingSession
from test_session import configs, toy_data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for `app`
audio = pytest.importorskip("eventprop_lab.data.audio", reason="the cochlea (eventprop_lab.data.audio) is needed")

RATE = 16000


def vowel_wav(seconds=0.6, lead=0.2, rate=RATE, f0=140.0, amplitude=0.4):
    """A vowel-like sound (harmonics of f0 under two formants) after `lead` s of quiet, as 16-bit WAV bytes."""
    t = np.arange(int(seconds * rate)) / rate
    x = np.zeros_like(t)
    for k in range(1, 30):
        weight = np.exp(-((k * f0 - 700) / 200) ** 2) + 0.5 * np.exp(-((k * f0 - 1200) / 250) ** 2) + 0.02
        x += weight * np.sin(2 * np.pi * k * f0 * t)
    x *= np.hanning(len(x)) ** 0.3 * amplitude / np.abs(x).max()
    x = np.concatenate([np.zeros(int(lead * rate)), x, np.zeros(int(0.1 * rate))])
    return wav_bytes(x, rate)


def wav_bytes(x, rate=RATE):
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def make_session(tmp_path, delay_line=False):
    run_cfg, net, training, augment = configs(tmp_path)
    training.trial_ms = 600.0  # long enough for a word; short enough to train quickly
    net.delay_line, net.n_delays, net.delay_ms = delay_line, 3, 30.0
    return TrainingSession.from_configs(run_cfg, net, training, augment, data=toy_data())


@pytest.fixture
def session(tmp_path):
    s = make_session(tmp_path)
    yield s
    s.stop()


def test_listening_while_training_uses_a_snapshot_and_the_training_thread_keeps_going(session):
    session.start()
    assert session.wait(until=lambda p: p["step"] >= 2, timeout=120)
    wav = vowel_wav()
    snap = snapshot(session)
    frozen = {k: None if v is None else np.array(v, copy=True) for k, v in snap.params._asdict().items()}
    before = session.progress["step"]
    for _ in range(3):
        heard = hear_in_session(wav, ".wav", session)
        assert heard.probabilities.shape == (4,)
    assert session.wait(until=lambda p: p["step"] >= before + 3, timeout=120), "training stalled while listening"
    assert session.status == "running" and session.last_error is None
    # the weights the snapshot holds never change under it, though training has moved on
    assert session.params is not snap.params
    for name, value in snap.params._asdict().items():
        if value is not None:
            np.testing.assert_array_equal(value, frozen[name])


def test_what_is_heard_has_the_shapes_the_panel_draws(session):
    heard = hear_in_session(vowel_wav(), ".wav", session)
    snap = heard.snapshot
    assert heard.readout_v.ndim == 2 and heard.readout_v.shape[1] == 4
    assert heard.readout_v.shape[0] == len(heard.trace_t) <= infer.MAX_TRACE_POINTS
    assert heard.trace_t[-1] < snap.trial_ms
    assert heard.probabilities.shape == (4,) and abs(heard.probabilities.sum() - 1) < 1e-9
    assert 0 <= heard.prediction < 4 and len(snap.class_names) == 4
    assert len(heard.input_times) == len(heard.input_channels) > 0
    assert heard.input_channels.max() < snap.n_channels == 40
    assert np.all(np.diff(heard.input_times) >= 0)
    # the quiet before the vowel was trimmed: 0.6 s of it (plus margins) was encoded, not 0.9 s
    assert 0.55 <= heard.audio_seconds <= 0.75 and any("trimmed" in n for n in heard.notes)
    assert set(heard.seconds) == {"decode", "encode", "network"} and all(v > 0 for v in heard.seconds.values())
    assert re.fullmatch(r"encoded \d\.\d\d s of audio in \d+\.\d\d s, network \d+\.\d\d s", describe(heard))


def test_the_probabilities_are_the_softmax_of_what_the_sum_loss_classifies_by(session):
    snap = snapshot(session)
    times, channels = np.sort(np.random.default_rng(0).uniform(0, 500, 400)), np.arange(400) % 40
    readout_v, probs, decision, _ = infer.predict(snap, times, channels)
    loss = get_loss(snap.loss)
    w = loss.weights(readout_v.shape[0], snap.dt)
    stat = (readout_v * w[:, None]).sum(0) / readout_v.shape[0]
    expected = np.exp(stat - stat.max()) / np.exp(stat - stat.max()).sum()
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-9)
    assert decision == int(np.argmax(stat))


def test_a_run_with_the_delay_line_hears_through_its_own_expansion(tmp_path):
    s = make_session(tmp_path, delay_line=True)
    try:
        snap = snapshot(s)
        assert snap.params.n_in == 4 * 40 and snap.n_channels == 40  # 3 delayed copies + the undelayed one
        heard = hear(vowel_wav(), ".wav", snap)
        assert heard.probabilities.shape == (4,) and heard.input_channels.max() < 40
    finally:
        s.stop()


def test_trimming_keeps_the_word_with_its_inner_gap_and_leaves_out_a_click_and_the_quiet():
    rate = 16000
    tone = lambda sec, amp: amp * np.sin(2 * np.pi * 300 * np.arange(int(sec * rate)) / rate)
    quiet = lambda sec: np.zeros(int(sec * rate))
    # a click, quiet, "si", a 100 ms closure, "ks", quiet
    x = np.concatenate([quiet(0.1), tone(0.01, 0.9), quiet(0.5), tone(0.25, 0.5), quiet(0.1), tone(0.1, 0.3),
                        quiet(0.6)])
    kept = infer.trim_silence(x, rate)
    assert len(kept) / rate == pytest.approx(0.45 + 2 * infer.TRIM_MARGIN_MS / 1000, abs=0.02)
    assert np.abs(kept[:int(0.04 * rate)]).max() == 0  # the margin before the word, not the click


def test_a_browsers_48khz_recording_is_heard_like_a_16khz_file(session):
    heard = hear_in_session(vowel_wav(rate=48000), ".wav", session)
    assert 0.55 <= heard.audio_seconds <= 0.75 and heard.probabilities.shape == (4,)


def test_a_long_recording_is_cropped_to_the_trial_and_says_so(session):
    heard = hear_in_session(vowel_wav(seconds=1.5, lead=0.0), ".wav", session)
    assert heard.audio_seconds == pytest.approx(0.6, abs=0.01)
    assert any("first 0.6 s" in n for n in heard.notes)


@pytest.mark.parametrize("data, words", [
    (b"", "no audio"),
    (b"RIFF....WAVEnot really a wav file at all", ""),
    (wav_bytes(np.zeros(RATE)), ""),  # silence
])
def test_bad_audio_is_an_inference_error_with_a_message(session, data, words):
    with pytest.raises(InferenceError) as err:
        hear_in_session(data, ".wav", session)
    assert words in str(err.value) and str(err.value)


def test_no_session_yet_is_said_plainly():
    with pytest.raises(InferenceError, match="still loading"):
        hear_in_session(vowel_wav(), ".wav", None)


def _listening_waits_while_training(trainer, session):
    """`trainer` (the session or a branch of it) trains: listening on `session` is refused; paused: it answers."""
    trainer.start()
    assert trainer.wait(until=lambda p: p["step"] >= 1, timeout=120)
    with pytest.raises(InferenceError, match="pause the training"):
        hear_in_session(vowel_wav(), ".wav", session)
    trainer.pause()
    trainer.wait()
    assert hear_in_session(vowel_wav(), ".wav", session).probabilities.shape == (4,)


def test_under_numbas_workqueue_layer_listening_waits_for_a_pause(session, monkeypatch):
    monkeypatch.setattr(infer, "_threading_layer", lambda: "workqueue")
    _listening_waits_while_training(session, session)


def test_under_numbas_workqueue_layer_a_running_branch_also_makes_listening_wait(session, monkeypatch):
    monkeypatch.setattr(infer, "_threading_layer", lambda: "workqueue")
    branch = session.branch(loss="sum").result(timeout=60)  # the run stays idle
    try:
        _listening_waits_while_training(branch, session)
    finally:
        branch.stop()


def test_class_names_come_from_the_dataset_and_so_from_its_files_keys(tmp_path):
    class Named:
        class_names = [b"zero", b"one"]

    assert infer.class_names(Named(), 2) == ("zero", "one")
    assert infer.class_names(object(), 3) == ("class 0", "class 1", "class 2")
    assert infer.class_names(Named(), 3) == ("class 0", "class 1", "class 2")  # names that do not fit are not used
    from eventprop_lab.data import write_shd_h5
    from eventprop_lab.data.sources import load_dataset

    path = tmp_path / "digits_train.h5"
    write_shd_h5(path, [(np.array([1.0]), np.array([3]))] * 2, np.array([0, 1]), np.array([0, 0]),
                 keys=["zero", "one"])
    assert infer.class_names(load_dataset(f"h5:{path}").train, 2) == ("zero", "one")


# ---- the panel, without a browser ----------------------------------------------------------

pn = pytest.importorskip("panel", reason="the dashboard needs panel")


@pytest.fixture
def speak(session):
    from app.speak import Speak

    panel = Speak(session=session)
    panel.__panel__()
    return panel


def test_the_panel_draws_raster_readouts_and_probabilities_with_the_answer_highlighted(speak):
    t0 = time.perf_counter()
    speak.listen(vowel_wav(), ".wav")
    took = time.perf_counter() - t0
    heard = speak.heard
    assert heard is not None and took < 10
    raster, readout, probs = speak.raster.data, speak.readout.data, speak.probabilities.data
    assert len(raster["t"]) == len(raster["channel"]) > 0
    assert len(readout["xs"]) == len(readout["ys"]) == 4 and len(readout["ys"][0]) == len(heard.trace_t)
    names = list(heard.snapshot.class_names)
    assert list(probs["name"]) == names and len(probs["p"]) == 4
    k = heard.prediction
    assert probs["color"][k] != probs["color"][(k + 1) % 4]
    assert readout["name"][-1] == names[k] and readout["width"][-1] == 3.0  # drawn last, on top
    assert list(speak.prob_fig.y_range.factors) == names[::-1]
    assert "encoded" in speak.status.object and "weights of step" in speak.status.object
    assert "synthetic" not in speak.note.object  # the toy set is not randman-shd


def test_the_panel_says_what_went_wrong_and_keeps_working(speak):
    speak.listen(b"", ".wav")
    assert speak.status.object.startswith("⚠") and "no audio" in speak.status.object
    speak._problem("the browser was not allowed to use the microphone")
    assert "not allowed" in speak.status.object
    speak.listen(vowel_wav(), ".wav")
    assert speak.status.object.startswith("**encoded")
    speak.upload.filename = "notes.txt"
    speak.upload.value = b"hello"
    assert "choose a .wav or .flac" in speak.status.object


def test_the_panel_without_a_session_says_it_is_loading():
    from app.speak import Speak

    panel = Speak()
    panel.listen(vowel_wav(), ".wav")
    assert "still loading" in panel.status.object


def test_the_recorder_hands_a_base64_wav_or_a_problem_to_the_panel(speak):
    import base64

    speak.recorder._handle_msg({"kind": "wav", "data": base64.b64encode(vowel_wav()).decode()})
    assert speak.status.object.startswith("**encoded")
    speak.recorder._handle_msg({"kind": "error", "message": "no microphone was found (upload a file instead)"})
    assert "no microphone" in speak.status.object
    speak.recorder._handle_msg({"kind": "wav", "data": "%%% not base64"})
    assert "no audio" in speak.status.object


def test_the_panel_holds_the_runs_branches_too_while_it_listens(speak, session, monkeypatch):
    branch = session.branch(loss="sum").result(timeout=60)
    held, hold = [], branch.hold

    def recorded(*args, **kwargs):
        held.append(True)
        return hold(*args, **kwargs)

    monkeypatch.setattr(branch, "hold", recorded)
    speak.listen(vowel_wav())
    assert held == [True] and not branch.progress["held"]
