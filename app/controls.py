"""The dashboard's controls and links, generated from the settings table (eventprop_lab/settings.py).

A page's Controls show the session's settings and follow them (`sync`), whoever changed them; a
change made on a page goes to the session (TrainingSession.set), never to the run directly."""
import copy
import urllib.parse

import panel as pn
import param

from eventprop_lab.config import PRESETS
from eventprop_lab.settings import SETTINGS, SHOWN, SettingError, matching_preset, preset_settings

HOT = tuple(n for n in SHOWN if SETTINGS[n].hot)  # applied at the next batch boundary
ON_RESET = tuple(n for n in SHOWN if not SETTINGS[n].hot)  # need a new network (or new data)
BUTTONS = ("play", "pause", "step", "undo", "reset")
PAGE_ARGS = ("tab", "key")  # read by the page around the dashboard (app/main.py)
CUSTOM = "custom"  # the preset selector's value when the settings match no preset
# what `?mode=classroom` hides: students play with the loss and augmentations, not the set-up
CLASSROOM_HIDES = tuple(n for n in SHOWN if not SETTINGS[n].classroom) + ("preset", "reset")
HIDEABLE = (*SHOWN, "preset", *BUTTONS, "branch")  # "branch": the branch controls (app/branches.py)


class Controls(param.Parameterized):
    """What a page shows of its session's settings: one parameter per shown setting (the config's
    own, so widgets validate as the config does), and the preset the settings match."""

    preset = param.Selector(objects=[CUSTOM, *PRESETS], default=CUSTOM,
                            doc="a named recipe (eventprop_lab/config.py PRESETS); its network settings wait "
                                "for reset")
    syncing = False

    def sync(self, settings):
        """Show `settings` (the session's); the dashboard's watchers ignore what this sets."""
        self.syncing = True
        try:
            with param.parameterized.edit_constant(self):  # a student's greyed-out controls follow too
                self.param.update(**{k: settings[k] for k in SHOWN}, preset=matching_preset(settings) or CUSTOM)
        finally:
            self.syncing = False

    def query(self, base=None):
        """These settings as a URL query string: only what differs from `base` (default: the
        configs' defaults), so that links stay short."""
        base = base or Controls()
        changed = {k: getattr(self, k) for k in SHOWN if getattr(self, k) != getattr(base, k)}
        return urllib.parse.urlencode({k: SETTINGS[k].to_text(v) for k, v in changed.items()})


for _name in SHOWN:
    Controls.param.add_parameter(_name, copy.deepcopy(SETTINGS[_name].param))


def widgets_for(names, extra=None):
    """pn.Param's `widgets` for these settings: the table's widget options, then `extra`'s."""
    out = {}
    for name in names:
        options = {**SETTINGS[name].widget, **(extra or {}).get(name, {})}
        if "type" in options and isinstance(options["type"], str):
            options["type"] = getattr(pn.widgets, options["type"])
        if options:
            out[name] = options
    return out


def parse_url_args(args):
    """Settings and hidden controls from a page's query arguments ({name: [bytes or str]}, as
    pn.state.session_args gives them). Returns (settings, hidden, problems): bad values are
    reported in `problems`, each naming the value and what the setting takes, and left out, never
    raised, so a mistyped link still opens the page. `preset=` gives the preset's settings, which
    the link's own settings override."""
    settings, hidden, problems, preset = {}, set(), [], None
    for key, values in args.items():
        text = values[-1] if isinstance(values, (list, tuple)) else values
        text = text.decode() if isinstance(text, bytes) else str(text)
        if key in PAGE_ARGS:
            continue
        if key == "hide":
            names = [n.strip() for n in text.split(",") if n.strip()]
            bad = [n for n in names if n not in HIDEABLE]
            if bad:
                problems.append(f"hide: unknown name(s) {', '.join(bad)}")
            hidden.update(n for n in names if n not in bad)
        elif key == "mode":
            if text == "classroom":
                hidden.update(CLASSROOM_HIDES)
            else:
                problems.append(f"mode={text!r} is unknown (try mode=classroom)")
        elif key == "preset":
            if text in PRESETS:
                preset = text
            else:
                problems.append(f"preset={text!r} ignored: preset takes one of {', '.join(PRESETS)}")
        elif key in SHOWN:
            s = SETTINGS[key]
            try:
                settings[key] = s.check(s.from_text(text))
            except SettingError:
                problems.append(f"{key}={text!r} ignored: {key} takes {s.allowed()}")
        else:
            problems.append(f"unknown setting {key!r} ignored" +
                            (" (a link changes only what the page shows)" if key in SETTINGS else ""))
    if preset is not None:
        settings = {**preset_settings(preset), **settings}
    return settings, hidden, problems


def describe(changes):
    """'loss → sum (from the next batch); n_hidden → 8: applied on reset'"""
    hot = [f"{k} → {v}" for k, v in changes.items() if SETTINGS[k].hot]
    later = [f"{k} → {v}" for k, v in changes.items() if not SETTINGS[k].hot]
    return "; ".join(([", ".join(hot) + " (from the next batch)"] if hot else []) +
                     ([", ".join(later) + ": applied on reset"] if later else []))
