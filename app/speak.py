"""Speak a digit: record a word in the browser (or upload a .wav/.flac), see the cochlea's spikes of
it, and what the network being trained makes of it — forward only, on a snapshot of its weights
(eventprop_lab.infer), so the training thread's batches are never disturbed.

Recording uses the Web Audio API, not MediaRecorder: MediaRecorder gives webm/opus (ogg/opus in
Firefox), which soundfile cannot decode, and decoding it on the server would need ffmpeg. Raw
Float32 samples from an AudioWorklet (a ScriptProcessorNode where worklets are missing) become a
16-bit WAV in the page, sent to Python with `model.send_msg`.

Browsers allow the microphone only on https or localhost pages: a classroom served over plain http
on a LAN address can upload files but not record (serve with --ssl-certfile/--ssl-keyfile for that).

Threading: the work (decode, cochlea, forward pass) runs on one worker thread shared by all browser
sessions, never on the server's event loop; its result is drawn in a next-tick callback of the
browser session's document, where Bokeh models may be changed. Meanwhile the training waits at its
next batch boundary (TrainingSession.hold, a few seconds at most), so that the cochlea has the CPUs:
its batches are only delayed, never changed."""
import base64
import binascii
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, FactorRange, HoverTool
from bokeh.plotting import figure

from eventprop_lab.infer import InferenceError, cochlea, describe, hear_in_session
from eventprop_lab.session import TrainingSession

from .plots import QUIET, grid

MAX_RASTER_POINTS = 6000  # cochlea spikes drawn; more are thinned (every k-th), and the title says so
HIGHLIGHT = "#d62728"
SYNTHETIC = ("randman-shd",)  # datasets with no speech in them: the note says what that means

# one worker: requests queue instead of taking CPU from the training two at a time
_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eventprop-speak")
_warming = None  # (Future of the warm-up run, whether it ran without a network); see warm_up
_warm_lock = threading.Lock()


def _tone_wav(seconds=0.3, rate=16000):
    import io
    import wave

    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def _warm(session):
    try:
        if session is not None:
            hear_in_session(_tone_wav(), ".wav", session)
        else:  # no network yet: the cochlea is most of the wait anyway
            cochlea().encode(np.sin(np.arange(1600) * 0.1), 16000)
        return True
    except Exception:  # a warm-up only: a real request will say what is wrong
        return False


def warm_up(session):
    """A Future of one run of the whole pipeline on a short tone, once per server process (again
    if it failed, or ran before the session existed): the cochlea's filters and numba's kernels
    load on first use, seconds that the first word would otherwise wait."""
    global _warming
    with _warm_lock:
        if _warming is not None:
            future, without_network = _warming
            if not (future.done() and (not future.result() or without_network) and session is not None):
                return future
        _warming = (_pool.submit(_warm, session), session is None)
        return _warming[0]


class Recorder(pn.custom.JSComponent):
    """Record/stop button with a level meter and timer; stops itself after max_seconds. Sends the
    recording to Python as {"kind": "wav", "data": base64 WAV} or a problem as {"kind": "error"}."""

    max_seconds = param.Number(2.0, bounds=(0.2, 10.0), doc="recording stops by itself after this long")
    busy = param.Boolean(False, doc="the server is working on the last recording")

    _esm = """
const TAP = `class SpeakTap extends AudioWorkletProcessor {
  process(inputs) { const c = inputs[0] && inputs[0][0]; if (c) this.port.postMessage(c.slice(0)); return true; }
}
registerProcessor("speak-tap", SpeakTap);`;

function wav16(chunks, rate) {
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const buf = new ArrayBuffer(44 + 2 * n), v = new DataView(buf);
  const text = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  text(0, "RIFF"); v.setUint32(4, 36 + 2 * n, true); text(8, "WAVE"); text(12, "fmt ");
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, 2 * rate, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
  text(36, "data"); v.setUint32(40, 2 * n, true);
  let o = 44;
  for (const c of chunks) for (let i = 0; i < c.length; i++, o += 2) {
    const s = Math.max(-1, Math.min(1, c[i])); v.setInt16(o, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Uint8Array(buf);
}

function base64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function why(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError")
    return "the browser was not allowed to use the microphone (allow it in the address bar, or upload a file)";
  if (name === "NotFoundError" || name === "OverconstrainedError") return "no microphone was found (upload a file instead)";
  if (name === "NotReadableError") return "the microphone is busy in another program";
  return `could not record: ${name || "error"}: ${err && err.message}`;
}

export function render({ model, el }) {
  el.innerHTML = `<div style="display:flex;align-items:center;gap:10px;font-family:sans-serif">
    <button class="speak-record" style="min-width:110px;padding:6px 10px;font-size:14px;cursor:pointer">● record</button>
    <div title="input level" style="width:120px;height:10px;background:#e3e7ec;border-radius:5px;overflow:hidden">
      <div class="speak-level" style="width:0%;height:100%;background:#2ca02c"></div></div>
    <span class="speak-timer" style="font-size:13px;color:#555;min-width:230px"></span></div>`;
  const button = el.querySelector(".speak-record"), level = el.querySelector(".speak-level");
  const timer = el.querySelector(".speak-timer");
  let rec = null, stoppedAt = null;

  const idle = () => { button.textContent = "● record"; button.disabled = model.busy; level.style.width = "0%"; };
  const fail = (message) => { model.send_msg({ kind: "error", message }); timer.textContent = ""; idle(); };

  async function start() {
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      fail("this page may not use the microphone: browsers allow it only on https or localhost pages (upload a file instead)");
      return;
    }
    button.disabled = true;
    let stream, ctx;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false,
        noiseSuppression: false, autoGainControl: false } });
      ctx = new AudioContext();
      await ctx.resume();
    } catch (err) {
      if (stream) stream.getTracks().forEach((t) => t.stop());
      fail(why(err));
      return;
    }
    const chunks = [], limit = model.max_seconds * ctx.sampleRate;
    let n = 0;
    const take = (data) => {
      if (!rec) return;
      chunks.push(new Float32Array(data));
      n += data.length;
      let sum = 0;
      for (let i = 0; i < data.length; i++) sum += data[i] * data[i];
      const db = 20 * Math.log10(Math.sqrt(sum / Math.max(data.length, 1)) + 1e-9);
      level.style.width = `${Math.max(0, Math.min(100, (db + 60) * 100 / 60))}%`;
      timer.textContent = `recording… ${(n / ctx.sampleRate).toFixed(1)} s of ${model.max_seconds} s`;
      if (n >= limit) stop();
    };
    const source = ctx.createMediaStreamSource(stream);
    const mute = ctx.createGain();  // nodes must reach the destination to be processed; the user hears nothing
    mute.gain.value = 0;
    mute.connect(ctx.destination);
    let node;
    try {
      const url = URL.createObjectURL(new Blob([TAP], { type: "application/javascript" }));
      await ctx.audioWorklet.addModule(url);
      URL.revokeObjectURL(url);
      node = new AudioWorkletNode(ctx, "speak-tap");
      node.port.onmessage = (e) => take(e.data);
    } catch (err) {  // no AudioWorklet here
      node = ctx.createScriptProcessor(4096, 1, 1);
      node.onaudioprocess = (e) => take(e.inputBuffer.getChannelData(0));
    }
    source.connect(node);
    node.connect(mute);
    rec = { stream, ctx, chunks, source, node };
    button.textContent = "■ stop";
    button.disabled = false;
    timer.textContent = "recording…";
  }

  function release() {  // the browser's "recording" indicator goes off
    const { stream, ctx, source, node } = rec;
    rec = null;
    source.disconnect(); node.disconnect();
    stream.getTracks().forEach((t) => t.stop());
    ctx.close();
  }

  function stop() {
    if (!rec) return;
    const { ctx, chunks } = rec;
    const rate = ctx.sampleRate;
    stoppedAt = performance.now();
    release();
    const samples = chunks.reduce((a, c) => a + c.length, 0);
    if (!samples) { fail("nothing was recorded (is the microphone muted?)"); return; }
    model.send_msg({ kind: "wav", data: base64(wav16(chunks, rate)), rate, seconds: samples / rate });
    timer.textContent = `sent ${(samples / rate).toFixed(2)} s; listening…`;
    idle();
  }

  button.addEventListener("click", () => (rec ? stop() : start()));
  model.on("remove", () => { if (rec) release(); });  // the tab was closed while recording
  model.on("busy", () => { if (!rec) idle(); });
  // the answer comes as a message, not a parameter: the same answer twice must still show
  model.on("msg:custom", (msg) => {
    if (!msg || msg.kind !== "answer") return;
    const took = stoppedAt === null ? "" : ` (${((performance.now() - stoppedAt) / 1000).toFixed(2)} s after stop)`;
    timer.textContent = msg.text ? msg.text + took : "";
    stoppedAt = null;
  });
  idle();
}
"""

    def __init__(self, on_wav=None, on_error=None, **params):
        super().__init__(**params)
        self.on_wav, self.on_error = on_wav, on_error

    def tell(self, text):
        """Show text beside the button (with the time since the recording stopped, if it was one)."""
        self._send_msg({"kind": "answer", "text": text})

    def _handle_msg(self, msg):
        kind = msg.get("kind") if isinstance(msg, dict) else None
        if kind == "wav" and self.on_wav is not None:
            try:
                data = base64.b64decode(msg.get("data") or "", validate=True)
            except (binascii.Error, TypeError, ValueError):
                data = b""  # said as "no audio arrived" by the next step
            self.on_wav(data)
        elif kind == "error" and self.on_error is not None:
            self.on_error(str(msg.get("message") or "the recording failed"))


class Speak(pn.viewable.Viewer):
    """Record or upload a word; show its cochlea spikes, the readout voltages and the class
    probabilities of the network as it is now, with the time each stage took."""

    session = param.ClassSelector(class_=TrainingSession, allow_None=True,
                                  doc="the session whose network listens (default: the dashboard's)")
    dashboard = param.Parameter(None, doc="a Dashboard whose session (or session being loaded) is used")
    max_seconds = param.Number(2.0, bounds=(0.2, 10.0), doc="longest recording (s)")
    message = param.String("", doc="the last outcome or problem, shown under the recorder")

    def __init__(self, **params):
        super().__init__(**params)
        self.recorder = Recorder(on_wav=lambda data: self.submit(data, ".wav"), on_error=self._problem,
                                 max_seconds=self.max_seconds, width=520, height=44)
        self.upload = pn.widgets.FileInput(accept=".wav,.flac", multiple=False)
        self.upload.param.watch(self._uploaded, "value")
        self.status = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.note = pn.pane.Markdown("", sizing_mode="stretch_width", styles={"color": "#666"})
        self.heard = None  # the last eventprop_lab.infer.Heard shown
        self._doc = None  # this browser session's document, where results are drawn

        self.raster = ColumnDataSource({"t": np.zeros(0, np.float32), "channel": np.zeros(0, np.int32)},
                                       name="speak_raster")
        self.readout = ColumnDataSource({"xs": [], "ys": [], "name": [], "color": [], "width": [], "alpha": []},
                                        name="speak_readout")
        self.probabilities = ColumnDataSource({"name": [], "p": [], "color": []}, name="speak_probabilities")
        self.raster_fig = _figure("cochlea spikes", x_axis_label="time (ms)", y_axis_label="channel")
        self.raster_fig.scatter("t", "channel", source=self.raster, size=2, color="#444444")
        self.readout_fig = _figure("readout voltages", x_axis_label="time (ms)", y_axis_label="V")
        lines = self.readout_fig.multi_line("xs", "ys", source=self.readout, color="color", line_width="width",
                                            alpha="alpha")
        self.readout_fig.add_tools(HoverTool(renderers=[lines], tooltips=[("class", "@name")]))
        self.prob_fig = _figure("class probabilities", x_axis_label="probability", y_range=FactorRange(factors=[]),
                                x_range=(0, 1))
        self.prob_fig.hbar(y="name", right="p", height=0.8, source=self.probabilities, color="color")
        self.prob_fig.add_tools(HoverTool(tooltips=[("class", "@name"), ("p", "@p{0.000}")]))

    # ---- the session -------------------------------------------------------------------
    def current_session(self):
        """The session to listen with: our own, else the dashboard's (attached, or built by its loader)."""
        if self.session is not None:
            return self.session
        d = self.dashboard
        if d is None:
            return None
        if d.session is not None:
            return d.session
        loader = d.loader
        if loader is not None and loader.done() and loader.exception() is None:
            return loader.result()
        return None

    # ---- the work ------------------------------------------------------------------------
    def listen(self, data, suffix=".wav"):
        """Run everything now, in this thread, and draw the result (tests, notebooks)."""
        self._finish(self._work(data, suffix, time.perf_counter()))

    def _work(self, data, suffix, received):
        try:
            session = self.current_session()
            # the training, and its branches', waits at its next batch boundary meanwhile: the
            # cochlea has the CPUs
            with contextlib.ExitStack() as holds:
                for s in (session, *list(getattr(session, "branches", ()))) if session is not None else ():
                    holds.enter_context(s.hold())
                heard = hear_in_session(data, suffix, session)
            return heard, None, time.perf_counter() - received
        except InferenceError as exc:
            return None, str(exc), None
        except Exception as exc:  # a bug or an odd file: said in the panel, the page keeps working
            return None, f"could not run the network: {type(exc).__name__}: {exc}", None

    def submit(self, data, suffix=".wav"):
        """Do the work on the worker thread; draw the result on this browser session's event loop."""
        doc = self._doc or pn.state.curdoc
        if doc is None or doc.session_context is None:
            return self.listen(data, suffix)
        received = time.perf_counter()
        self._set_busy(True, "listening…")

        def done(future):
            _on_loop(doc, lambda: self._finish(future.result()))

        _pool.submit(self._work, data, suffix, received).add_done_callback(done)

    def _uploaded(self, event):
        if not event.new:
            return
        name = self.upload.filename or "upload.wav"
        # emptied, so that choosing the same file again is a new upload
        with param.parameterized.discard_events(self.upload):
            self.upload.value = None
        self.upload.clear()
        suffix = Path(name).suffix.lower() or ".wav"
        if suffix not in (".wav", ".flac"):
            self._problem(f"{name}: choose a .wav or .flac file")
            return
        self.submit(event.new, suffix)

    def _set_busy(self, busy, text):
        self.recorder.busy = busy
        self.upload.disabled = busy
        self.status.object = text

    def _problem(self, text):
        self.message = text
        self._set_busy(False, f"⚠ {text}")
        self.recorder.tell("")

    def _finish(self, outcome):
        heard, problem, server_seconds = outcome
        if heard is None:
            self._problem(problem)
            return
        with pn.io.hold():
            self.show(heard)
            s = heard.snapshot
            extra = [f"weights of step {s.step}", f"loss {s.loss}", f"{heard.hidden_spikes} hidden spikes"]
            if server_seconds is not None:
                extra.append(f"{server_seconds:.2f} s on the server in all")
            self.message = describe(heard)
            self._set_busy(False, f"**{self.message}** · " + " · ".join(extra + list(heard.notes)))
            self.recorder.tell(f"heard “{s.class_names[heard.prediction]}”")

    def show(self, heard):
        """Draw a Heard: raster, readout voltages (predicted class highlighted), probabilities."""
        self.heard = heard
        names = list(heard.snapshot.class_names)
        t, c = heard.input_times, heard.input_channels
        every = -(-len(t) // MAX_RASTER_POINTS) if len(t) else 1
        self.raster.data = {"t": np.asarray(t[::every], np.float32), "channel": np.asarray(c[::every], np.int32)}
        self.raster_fig.title.text = (f"cochlea spikes: {len(t)} spikes in {heard.audio_seconds:.2f} s"
                                      + (f" (every {every}th drawn)" if every > 1 else ""))
        k = heard.prediction
        n_out = heard.readout_v.shape[1]
        xs = heard.trace_t
        order = [i for i in range(n_out) if i != k] + [k]  # the highlighted line drawn last, on top
        self.readout.data = {"xs": [xs for _ in order], "ys": [heard.readout_v[:, i] for i in order],
                             "name": [names[i] for i in order],
                             "color": [HIGHLIGHT if i == k else QUIET for i in order],
                             "width": [3.0 if i == k else 1.0 for i in order],
                             "alpha": [1.0 if i == k else 0.6 for i in order]}
        self.readout_fig.title.text = f"readout voltages (red: “{names[k]}”, the network's answer)"
        if list(self.prob_fig.y_range.factors) != names[::-1]:
            self.prob_fig.y_range.factors = names[::-1]  # the first class on top
            self.prob_fig.height = max(250, 18 * len(names) + 60)
        self.prob_fig.title.text = f"class probabilities (“{names[k]}”: {heard.probabilities[k]:.2f})"
        self.probabilities.data = {"name": names, "p": heard.probabilities.astype(np.float32),
                                   "color": [HIGHLIGHT if i == k else "#1f77b4" for i in range(len(names))]}
        self.note.object = self._note(heard.snapshot)

    @staticmethod
    def _note(snap):
        if snap.dataset.lower() in SYNTHETIC:
            return (f"_The network is training on **{snap.dataset}**, a synthetic stand-in with no speech in it, so its "
                    f"answers to speech mean nothing yet: the classes are its {len(snap.class_names)} synthetic ones. "
                    "Train it on spoken digits to hear sense: dataset `shd`, or the synthesised "
                    "`data_cache/tts-digits/tts_digits_train.h5` that `make tts-digits` writes; then reset._")
        return (f"_The network as it is now, trained on **{snap.dataset}** for {snap.step} steps "
                f"({len(snap.class_names)} classes)._")

    def _warm_up(self):
        """Once the pipeline has run on a short tone (see warm_up), say that the panel is ready."""
        doc = self._doc

        def ready(future):
            if doc is not None and doc.session_context is not None:
                _on_loop(doc, self._ready)
            else:
                self._ready()

        warm_up(self.current_session()).add_done_callback(ready)

    def _ready(self):
        if not self.status.object:  # an answer or a problem shown already says more
            self.status.object = "ready: press record and say a digit, or upload a file"

    # ---- layout --------------------------------------------------------------------------
    def __panel__(self):
        self._doc = pn.state.curdoc
        pn.state.onload(self._warm_up)
        self.note.object = ("_Speak a word (up to {:g} s) or upload a .wav/.flac file; the quiet around the word is "
                            "cut off before the cochlea hears it. The network being trained listens with its "
                            "weights as they are at that moment; training waits for the answer, then goes "
                            "on._".format(self.max_seconds))
        return pn.Column(
            pn.pane.Markdown("## Speak a digit", disable_anchors=True),
            self.note,
            pn.Row(self.recorder, pn.pane.Markdown("or upload a file", margin=(8, 10)), self.upload,
                   align="center", sizing_mode="stretch_width"),
            self.status,
            pn.pane.Bokeh(grid(self.raster_fig, self.prob_fig), sizing_mode="stretch_width"),
            pn.pane.Bokeh(grid(self.readout_fig), sizing_mode="stretch_width"),
            sizing_mode="stretch_width")


def _on_loop(doc, callback):
    """Run callback on the document's event loop, where its models may change (from any thread)."""
    try:
        doc.add_next_tick_callback(callback)
    except Exception:  # the page was closed meanwhile: nobody is left to show it to
        pass


def _figure(title, height=280, **kw):
    fig = figure(title=title, height=height, sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset", **kw)
    for r in (fig.x_range, fig.y_range):
        r.syncable = False  # the browser ranges itself; the server never needs the ranges back
    return fig
