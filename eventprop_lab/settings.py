"""One table of the settings a run has: for each, its config section, when a change takes effect
(hot: at the next batch boundary, by which session command; else on reset), whether the dashboard
shows it and to whom, and its widget's options. Type, bounds, default and doc are the config's own
param (eventprop_lab/config.py), never repeated here. The CLI's options, the dashboard's controls,
the parsing of links and the session's routing of changes are all generated from this table."""
import copy
import difflib
import math
from dataclasses import dataclass, field

import numpy as np
import param

from .config import PRESETS, SECTIONS, preset_values

FROM_DATA = ("n_in", "n_out")  # set by the run from its dataset, never by hand


class ClassroomConfig(param.Parameterized):
    """What the teacher allows: the session's, not the run's (no CLI flag, not in checkpoints, kept
    across reset)."""

    students_may_steer = param.Boolean(False, doc="pages opened with ?mode=classroom may change the "
                                                  "settings they show (off: they watch)")


_SECTIONS = {**SECTIONS, "classroom": ClassroomConfig}


@dataclass(frozen=True)
class Setting:
    name: str
    section: str  # a key of config.SECTIONS
    hot: str = None  # the session command that applies it at the next batch boundary; None: on reset
    shown: bool = False  # a dashboard control (and so a link parameter)
    classroom: bool = False  # shown to students too (?mode=classroom pages)
    widget: dict = field(default_factory=dict)  # Panel widget options; "type" names a pn.widgets class

    @property
    def param(self):
        return _SECTIONS[self.section].param[self.name]

    @property
    def default(self):
        return self.param.default

    @property
    def doc(self):
        return self.param.doc or ""

    def allowed(self):
        """What values this setting takes, in words (for error messages)."""
        p = self.param
        if isinstance(p, param.Boolean):
            return "true or false (in a link: 1/0, yes/no, on/off)"
        if isinstance(p, param.Selector):
            return "one of " + ", ".join(map(str, p.objects))
        if isinstance(p, (param.List, param.Range)):
            return "numbers separated by commas"
        if isinstance(p, param.Number):
            kind = "an integer" if isinstance(p, param.Integer) else "a number"
            lo, hi = p.bounds or (None, None)
            inc = getattr(p, "inclusive_bounds", (True, True))
            parts = [f"{'≥' if inc[0] else '>'} {lo}" if lo is not None else "",
                     f"{'≤' if inc[1] else '<'} {hi}" if hi is not None else ""]
            return " ".join([kind, " and ".join(x for x in parts if x)]).strip()
        return "text"

    def check(self, value):
        """The value as the config stores it; SettingError naming the setting, the value and what
        is allowed if the config's param refuses it."""
        p = self.param
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(p, param.Number) and not (value is None and p.allow_None):
            # param takes True for a number and NaN within any bounds; a setting does not
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SettingError([self.refusal(value)])
            if isinstance(p, param.Integer):
                if float(value) != int(value):
                    raise SettingError([self.refusal(value)])
                value = int(value)
            else:
                value = float(value)
        if isinstance(p, param.Range) and isinstance(value, list):
            value = tuple(value)
        try:
            setattr(_SECTIONS[self.section](), self.name, value)  # the config's own check
        except (ValueError, TypeError):
            raise SettingError([self.refusal(value)]) from None
        return value

    def refusal(self, value):
        return f"{self.name}={value!r} refused: {self.name} takes {self.allowed()}"

    def from_text(self, text):
        """A value from a link's text (then check() it)."""
        p, low = self.param, text.strip().lower()
        try:
            if isinstance(p, param.Boolean):
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if isinstance(p, (param.List, param.Range)):
                return [float(x) for x in text.split(",") if x.strip()]
            if isinstance(p, param.Integer):
                return int(text)
            if isinstance(p, param.Number):
                return float(text)
        except ValueError:
            raise SettingError([self.refusal(text)]) from None
        return text

    @staticmethod
    def to_text(value):
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, (list, tuple)):
            return ",".join(str(x) for x in value)
        return str(value)


class SettingError(ValueError):
    """Refused settings; `problems` holds one sentence per refused value."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


# What differs from a plain on-reset setting that the dashboard does not show. The order of the
# shown ones is the order of the dashboard's controls.
_FLOAT = {"type": "FloatInput"}
_INT = {"type": "IntInput"}
_TABLE = {
    # hot: the session applies them between two batches, keeping the network (blend and
    # blend_probs build the training set, so they take effect with the next epoch)
    "loss": dict(hot="loss", shown=True, classroom=True),
    "lr": dict(hot="lr", shown=True, classroom=True, widget={**_FLOAT, "step": 1e-4, "format": "0.[0000]"}),
    "reg_strength": dict(hot="regulariser", shown=True, classroom=True, widget={**_FLOAT, "step": 1e-9}),
    "reg_nu": dict(hot="regulariser", shown=True),
    "shift": dict(hot="augment", shown=True, classroom=True),
    "max_shift": dict(hot="augment", shown=True, widget=_INT),
    "blend": dict(hot="augment", shown=True, classroom=True),
    "dilate": dict(hot="augment", shown=True, classroom=True),
    "jitter": dict(hot="augment", shown=True, classroom=True),
    "jitter_sigma": dict(hot="augment", shown=True),
    "blend_probs": dict(hot="augment"),
    "dilate_range": dict(hot="augment"),
    # on reset: a new network, or new data
    "dataset": dict(shown=True, widget={"type": "TextInput"}),
    "backend": dict(shown=True),
    "n_hidden": dict(shown=True, widget=_INT),
    "recurrent": dict(shown=True),
    "heterogeneous_tau": dict(shown=True),
    "delay_line": dict(shown=True),
    "train_tau": dict(shown=True),
    "batch_size": dict(shown=True, widget=_INT),
}


def _build():
    table = {}
    for section, cls in SECTIONS.items():
        for name in cls.param:
            if name == "name" or name in FROM_DATA:
                continue
            if name in table:
                raise RuntimeError(f"setting {name} is in two config sections")  # flags and links need one name
            table[name] = Setting(name, section, **_TABLE.get(name, {}))
    unknown = set(_TABLE) - set(table)
    if unknown:
        raise RuntimeError(f"the settings table names no config parameter {sorted(unknown)}")
    return table


SETTINGS = _build()  # every setting, section by section, in the configs' order (the CLI's order)
SHOWN = tuple(n for n in _TABLE if _TABLE[n].get("shown"))  # the dashboard's controls, in order
# the session's own settings: set() and `settings` take them like the others, a run never sees them
ROLES = {name: Setting(name, "classroom") for name in ClassroomConfig.param if name != "name"}
DATA_SETTINGS = ("dataset", "data_dir", "max_train_samples", "validation_fraction")  # a change loads the data again


def check_settings(changes):
    """{name: value} as the configs store them; one SettingError naming every refused value."""
    out, problems = {}, []
    for name, value in changes.items():
        setting = SETTINGS.get(name) or ROLES.get(name)
        if setting is None:
            close = difflib.get_close_matches(name, [*SETTINGS, *ROLES], n=1)
            problems.append(f"unknown setting {name!r}" + (f" (did you mean {close[0]}?)" if close else ""))
            continue
        try:
            out[name] = setting.check(value)
        except SettingError as exc:
            problems += exc.problems
    if problems:
        raise SettingError(problems)
    return out


def configs_with(configs, changes):
    """Copies of {section: config object} with {name: value} changes made; the originals untouched."""
    out = {sec: type(obj)(**copy.deepcopy({k: v for k, v in obj.param.values().items() if k != "name"}))
           for sec, obj in configs.items()}
    for name, value in changes.items():
        setattr(out[SETTINGS[name].section], name, value)
    return out


def settings_of(configs):
    """{name: value} of every setting of {section: config object}."""
    return {name: getattr(configs[s.section], name) for name, s in SETTINGS.items()}


def preset_settings(name):
    """{name: value} of a preset (and the defaults it implies, config.preset_values)."""
    return {key.split(".")[1]: value for key, value in preset_values(name).items()}


def matching_preset(settings):
    """The preset whose every value `settings` has, or None; "paper" wins over "default" (which
    sets fewer)."""
    for name in sorted(PRESETS, key=lambda n: -len(PRESETS[n])):
        if all(settings.get(k) == v for k, v in preset_settings(name).items()):
            return name
    return None
