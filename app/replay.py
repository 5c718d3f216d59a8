"""The replay of a session: one self-contained HTML page (Bokeh's resources inline, so it opens
without a network or Python) with the learning curves, the markers and the probes recorded
(eventprop_lab/replay.py), a slider scrubbing through the probes in the browser itself, and the
data as JSON that `eventprop_lab.replay.read_replay` reads back. In the dashboard: "Export replay"
downloads it, and a file opened there is shown read-only, apart from the live run."""
import html
import io
import json
import re

import numpy as np
import panel as pn
from bokeh.embed import file_html
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, CustomJS, Div, Slider
from bokeh.resources import INLINE

from eventprop_lab.network import atomic_write
from eventprop_lab.replay import BLOCK_ID, Replay, ReplayError, embed, read_replay, session_replay, to_json

from .curves import LearningCurves
from .plots import PROJECTIONS, TOP_COLORS, AdjointView, ProbeView, WeightView, grid

# What the slider does in the browser; probe_columns() below does the same in Python for the first
# probe shown. `probes` is null in an exported file, which reads them from its JSON block.
SHOW_PROBE_JS = """
const all = probes ?? (window.eventpropReplay ??= JSON.parse(document.getElementById(block).textContent)).probes;
const p = all[slider.value];
const colour = new Map(p.top.map((j, i) => [j, colours[i]]));
const rest = {t: [], id: []}, top = {t: [], id: [], color: []};
p.hidden_t.forEach((t, k) => {
  const j = p.hidden_id[k];
  if (colour.has(j)) { top.t.push(t); top.id.push(j); top.color.push(colour.get(j)); }
  else { rest.t.push(t); rest.id.push(j); }
});
sources.inputs.data = {t: p.input_t, id: p.input_ch};
sources.hidden.data = rest;
sources.top.data = top;
sources.voltages.data = {t: p.trace_t, lo: p.v_lo, hi: p.v_hi, correct: p.v_correct};
sources.adjoint.data = {t: p.trace_t, lo: p.diff_lo, hi: p.diff_hi, correct: p.diff_correct};
for (const [name, bars] of Object.entries(histograms)) {
  const w = p.weights[name];
  bars.data = w ? {left: w.edges.slice(0, -1), right: w.edges.slice(1), count: w.counts}
                : {left: [], right: [], count: []};
}
const thinned = p.input_every > 1 ? `\\n1 in ${p.input_every} of ${p.input_total} spikes shown` : "";
titles.input.text = `input spikes: step ${p.step}, class ${p.label}${thinned}`;
titles.hidden.text = `hidden spikes: step ${p.step}\\ncolour: the 5 most active`;
titles.voltage.text = `readout voltages: class ${p.label}`;
titles.adjoint.text = `λ_V − λ_I of the readouts: class ${p.label}\\nread right to left: the adjoint runs backwards`;
slider.title = `probe ${slider.value + 1} of ${all.length}: step ${p.step}`;
"""


def probe_columns(p):
    """{view source: data} that show replay probe `p` (as SHOW_PROBE_JS does in the browser)."""
    colour = {int(j): TOP_COLORS[i] for i, j in enumerate(p["top"])}
    t, ids = np.asarray(p["hidden_t"], float), np.asarray(p["hidden_id"], int)
    top = np.array([int(j) in colour for j in ids], bool)
    out = {"inputs": {"t": np.asarray(p["input_t"], float), "id": np.asarray(p["input_ch"], int)},
           "hidden": {"t": t[~top], "id": ids[~top]},
           "top": {"t": t[top], "id": ids[top], "color": [colour[int(j)] for j in ids[top]]},
           "voltages": {"t": p["trace_t"], "lo": p["v_lo"], "hi": p["v_hi"], "correct": p["v_correct"]},
           "adjoint": {"t": p["trace_t"], "lo": p["diff_lo"], "hi": p["diff_hi"], "correct": p["diff_correct"]}}
    for name in PROJECTIONS:
        w = p["weights"].get(name)
        edges = np.asarray(w["edges"], float) if w else np.zeros(1)
        out[name] = {"left": edges[:-1], "right": edges[1:], "count": np.asarray(w["counts"]) if w else []}
    return {k: {c: np.asarray(v, float) if k != "top" or c != "color" else v for c, v in cols.items()}
            for k, cols in out.items()}


def _header(data, note):
    """The page's title and what it holds; every value from the file is escaped (a file may come from anyone)."""
    def text(key):
        return html.escape(str(data.get(key, "?")))

    settings = html.escape(", ".join(f"{k} {v}" for k, v in (data.get("settings") or {}).items()))
    return Div(text=f"<h2>Eventprop Lab — replay</h2><p><b>{note}</b> Exported {text('created')} at "
                    f"step {text('step')}. Read-only: nothing here trains.</p>"
                    f"<p>Curves: {text('curves_note')}. Probes: {text('probes_note')}.</p>"
                    f"<p style='font-size:smaller'>Settings: {settings}</p>", sizing_mode="stretch_width")


def replay_layout(data, probes_in_page=False, note=""):
    """The replay's Bokeh layout: curves with their markers, and the probe views with a slider.
    probes_in_page: the slider's callback carries the probes (a served page); otherwise it reads
    them from the page's JSON block (an exported file)."""
    replay = Replay(data)
    curves = LearningCurves()
    curves.show_older(replay.columns())
    curves.add(replay.observations())
    probe, adjoint = ProbeView(), AdjointView()
    weights = {name: WeightView(name) for name in PROJECTIONS}
    probes = data["probes"]
    for view in weights.values():
        view.add([(p["step"], {n: w["percentiles"] for n, w in p["weights"].items() if "percentiles" in w})
                  for p in probes])
    sources = {"inputs": probe.inputs, "hidden": probe.hidden, "top": probe.top, "voltages": probe.voltages.source,
               "adjoint": adjoint.lines.source}
    histograms = {name: view.bars for name, view in weights.items()}
    n = len(probes)
    slider = Slider(start=0, end=max(n - 1, 1), value=max(n - 1, 0), step=1, disabled=n < 2, name="replay_slider",
                    title="no probes recorded" if not n else "probe", sizing_mode="stretch_width")
    if n:
        for key, cols in probe_columns(probes[-1]).items():
            (histograms.get(key) or sources[key]).data = cols
        p = probes[-1]
        slider.title = f"probe {n} of {n}: step {p['step']}"
        probe.input_fig.title.text = f"input spikes: step {p['step']}, class {p['label']}"
        probe.hidden_fig.title.text = f"hidden spikes: step {p['step']}\ncolour: the 5 most active"
        probe.voltage_fig.title.text = f"readout voltages: class {p['label']}"
        adjoint.fig.title.text = (f"λ_V − λ_I of the readouts: class {p['label']}\n"
                                  "read right to left: the adjoint runs backwards")
    slider.js_on_change("value", CustomJS(code=SHOW_PROBE_JS, args=dict(
        probes=json.loads(to_json(probes)) if probes_in_page else None, block=BLOCK_ID, slider=slider,
        colours=list(TOP_COLORS), sources=sources, histograms=histograms,
        titles={"input": probe.input_fig.title, "hidden": probe.hidden_fig.title,
                "voltage": probe.voltage_fig.title, "adjoint": adjoint.fig.title})))
    layout = column(
        _header(data, note), grid(*curves.layout()),
        Div(text="<h3>Probed samples</h3>Move the slider through the probes recorded: the spikes, the readout "
                 "voltages, λ_V − λ_I, and the weights at that step.", sizing_mode="stretch_width"),
        slider, grid(*probe.layout()), grid(*adjoint.layout()),
        *(grid(*view.layout()) for view in weights.values()), sizing_mode="stretch_width")
    for source in layout.select({"type": ColumnDataSource}):  # apart from the live views' names
        if source.name:
            source.name = "replay_" + source.name
    return layout


# Bokeh lists the files of every model class imported (Panel's Tabulator, ...), used or not, as
# <script src>/<link href> lines of their own; the replay uses Bokeh's own models only, all inline.
_EXTERNAL = re.compile(r'^[ \t]*(<script src="[^"<>]*"></script>|<link rel="stylesheet" href="[^"<>]*"[^<>]*>)[ \t]*\n',
                       re.M)


def replay_page(data):
    """The exported file's text: the replay's layout with Bokeh inline, and its JSON block."""
    layout = replay_layout(data, note="A recorded session.")
    page = file_html(layout, resources=INLINE, title=f"Eventprop Lab replay, step {data.get('step')}")
    return embed(_EXTERNAL.sub("", page), data)


def export_replay(session, path=None):
    """The replay of a TrainingSession as HTML text, also written (atomically) to `path` if given."""
    text = replay_page(session_replay(session))
    if path is not None:
        atomic_write(path, lambda f: f.write(text.encode()))
    return text


class ReplayTools(pn.viewable.Viewer):
    """The dashboard's replay part: "Export replay" (downloads the session shown as a file), and
    opening such a file, shown read-only below the live views, never touching the run."""

    def __init__(self, session=lambda: None, **params):
        super().__init__(**params)
        self._session = session
        self.export = pn.widgets.FileDownload(
            callback=self._export, filename="eventprop-replay.html", label="Export replay", color="primary",
            sizing_mode="stretch_width", disabled=True,
            description="the whole session as one HTML file: curves, markers and probes; opens without a network")
        self.upload = pn.widgets.FileInput(accept=".html,.htm", multiple=False, sizing_mode="stretch_width",
                                           css_classes=["replay-upload"])
        self.upload.param.watch(self._opened, "value")
        self.message = pn.pane.Markdown("", sizing_mode="stretch_width", css_classes=["replay-message"])
        self.close_button = pn.widgets.Button(label="close the replay", width=140)
        self.close_button.on_click(lambda event: self.close())
        self.view = pn.Column(sizing_mode="stretch_width", visible=False)
        self.shown = None  # the Replay shown, if any

    def poll(self):
        """Take in the probes the session recorded (its album keeps a bounded set for export)."""
        session = self._session()
        if session is not None:
            from eventprop_lab.replay import album_for
            album_for(session).update()
        self.export.disabled = session is None

    def _export(self):
        session = self._session()
        if session is None:
            raise RuntimeError("no session to export yet")
        text = export_replay(session)
        self.export.filename = f"eventprop-replay-step{session.progress['step']}.html"
        self.message.object = f"exported {self.export.filename} ({len(text) / 1e6:.1f} MB)"
        return io.BytesIO(text.encode())

    def _opened(self, event):
        if not event.new:
            return
        name = self.upload.filename or "the file"
        try:
            replay = read_replay(event.new, name=name)
        except ReplayError as exc:
            self.message.object = f"⚠ **{html.escape(name)} not opened:** {html.escape(str(exc))}"
            return
        self.show(replay)

    def show(self, replay):
        """Show a Replay read-only below the live views."""
        self.shown = replay
        name = html.escape(replay.name)
        note = f"Replay of {name}: a recorded session, not the live run."
        self.view.objects = [pn.pane.Markdown(f"## ⏪ Replay: {name}\n_{note} Close it to leave only the live "
                                              "run on the page._", css_classes=["replay-title"]),
                             self.close_button,
                             pn.pane.Bokeh(replay_layout(replay.data, probes_in_page=True, note=note),
                                           sizing_mode="stretch_width")]
        self.view.visible = True
        self.message.object = (f"showing the replay of {name} below ({len(replay.probes)} probes, step "
                               f"{replay.data.get('step')})")

    def close(self):
        self.shown, self.view.objects, self.view.visible = None, [], False
        self.message.object = ""

    def controls(self):
        return pn.Column("**Replay**", self.export, "Open a replay (read-only):", self.upload, self.message,
                         sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Column(self.controls(), self.view, sizing_mode="stretch_width")
