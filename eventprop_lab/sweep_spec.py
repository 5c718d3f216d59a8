"""A sweep's spec file (YAML or TOML): which settings every run shares, which it varies (a grid,
a list of named variants, or both), the seeds, and leave-one-speaker-out folds.

    base: {dataset: randman-shd, epochs: 20, n_hidden: 128}
    grid: {loss: [sum_exp, max], shift: [false, true]}
    list: [{name: plain}, {name: paper, preset: paper}]
    seeds: [1, 2, 3]
    folds: loso                  # one run per training speaker, held out as validation
    fold_speakers: [0, 1]        # optional: only these folds

Every option is a setting of eventprop_lab/settings.py (the names of `eventprop-lab train`'s
flags, with underscores), checked against its config's param; `preset` names a recipe. The cells
are list x grid x seeds (x folds): a list entry's values override base, the grid's override
both. A spec with problems is refused whole, each problem with its line."""
import difflib
import itertools
import re
from pathlib import Path
from typing import NamedTuple

from .config import PRESETS
from .settings import SETTINGS, SettingError

TOP_KEYS = ("out", "base", "grid", "list", "seeds", "folds", "fold_speakers")
OWNED = {"seed": "give seeds as `seeds: [1, 2]`", "out_dir": "each cell's folder is chosen by the sweep"}


class SpecError(ValueError):
    """A refused spec: `problems` holds one line per problem, each naming its line and option."""

    def __init__(self, path, problems):
        self.path, self.problems = path, list(problems)
        head = f"{path}: {len(self.problems)} problem{'s' if len(self.problems) > 1 else ''} in the sweep spec"
        super().__init__(head + "\n" + "\n".join("  " + p for p in self.problems))


class Variant(NamedTuple):
    """One configuration of a sweep: its label, the options it varies, and all its settings."""

    label: str
    varied: dict
    preset: str  # or None
    settings: dict


class Spec(NamedTuple):
    path: Path
    text: str
    out: str  # or None
    variants: list
    seeds: list
    folds: str  # "loso" or None
    fold_speakers: list  # or None


# ---- reading, with the line of every key -------------------------------------------------------
def _loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """YAML 1.1 reads 1e-3 (no dot) as text; a learning rate is written so, so it is a float here."""

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                 list("-+0123456789"))
    return Loader


def _yaml(text):
    import yaml

    try:
        root = yaml.compose(text, Loader=_loader())
        data = yaml.load(text, Loader=_loader())  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ValueError(where + str(getattr(exc, "problem", None) or exc).strip()) from None
    lines = {}

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[path + (key.value,)] = key.start_mark.line + 1
                walk(value, path + (key.value,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    if root is not None:
        walk(root, ())
    return data, lines


_TOML_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
_TOML_KEY = re.compile(r"^\s*\"?([A-Za-z0-9_\-]+)\"?\s*=")
_TOML_INLINE_KEY = re.compile(r"([A-Za-z0-9_\-]+)\s*=")


def _toml(text):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(str(exc)) from None
    # tomllib keeps no positions: tables, keys and the inline tables of `list = [{...}, ...]`
    # are found by their text
    lines, prefix, tables, item, depth = {}, (), {}, -1, 0
    for n, line in enumerate(text.split("\n"), 1):
        code = line.split("#", 1)[0]
        header = _TOML_HEADER.match(code) if depth == 0 else None
        if header:
            prefix = tuple(header.group(2).split("."))
            if header.group(1) == "[[":
                tables[prefix] = tables.get(prefix, -1) + 1
                lines.setdefault(prefix, n)
                prefix += (tables[prefix],)
            lines.setdefault(prefix, n)
            continue
        key = _TOML_KEY.match(code) if depth == 0 else None
        if key:
            lines.setdefault(prefix + (key.group(1),), n)
            if prefix == () and key.group(1) == "list":
                depth = 0
                code = code[key.end():]
                if "[" in code:
                    depth = 1
                    code = code[code.index("[") + 1:]
        if depth:
            for chunk in code.split("{")[1:] if "{" in code else ():
                item += 1
                lines.setdefault(("list", item), n)
                for k in _TOML_INLINE_KEY.findall(chunk.split("}")[0]):
                    lines.setdefault(("list", item, k), n)
            depth += code.count("[") - code.count("]")
            depth = max(depth, 0)
    return data, lines


def read_spec_file(path):
    """(data, {key path: line}) of a .yaml/.yml or .toml file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        data, lines = _yaml(text)
    elif path.suffix.lower() == ".toml":
        data, lines = _toml(text)
    else:
        raise SpecError(path, [f"a sweep spec is a .yaml, .yml or .toml file, not {path.suffix or 'no suffix'}"])
    return text, data, lines


# ---- checking ----------------------------------------------------------------------------------
class _Problems:
    def __init__(self, lines):
        self.lines, self.items = lines, []

    def add(self, path, message):
        line = None
        for n in range(len(path), -1, -1):  # the key's own line, else its nearest parent's
            line = self.lines.get(tuple(path[:n]))
            if line is not None:
                break
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        self.items.append((line or 0, f"line {line}: " if line else "", where, message))

    def __bool__(self):
        return bool(self.items)

    def lines_out(self):
        return [f"{lead}{where}: {msg}" if where else f"{lead}{msg}" for _, lead, where, msg in sorted(self.items)]


def _suggest(name, names):
    close = difflib.get_close_matches(str(name), list(names), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _check_options(options, path, problems, allow_name=False):
    """{name: value} as the configs store them, and the preset; problems added, not raised."""
    if not isinstance(options, dict):
        problems.add(path, f"wants options as `name: value` pairs, got {options!r}")
        return {}, None
    out, preset = {}, None
    for name, value in options.items():
        where = path + (name,)
        if allow_name and name == "name":
            if not isinstance(value, (str, int)) or not re.fullmatch(r"[A-Za-z0-9_.+-]+", str(value)):
                problems.add(where, f"a variant's name is letters, digits and _.+- only, got {value!r}")
            continue
        if name == "preset":
            if value not in PRESETS:
                problems.add(where, f"unknown preset {value!r}; presets: {', '.join(PRESETS)}")
            preset = value
            continue
        if name in OWNED:
            problems.add(where, f"{name} is not an option here: {OWNED[name]}")
            continue
        setting = SETTINGS.get(name)
        if setting is None:
            hint = _suggest(name, list(SETTINGS) + ["preset"])
            if name.replace("-", "_") in SETTINGS:
                hint = f" (options are written with underscores: {name.replace('-', '_')})"
            problems.add(where, f"unknown option {name!r}{hint}")
            continue
        try:
            out[name] = setting.check(value)
        except SettingError as exc:
            problems.add(where, "; ".join(exc.problems))
    return out, preset


def _text(value):
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "+".join(_text(v) for v in value)
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", str(value))


def _variants(data, problems):
    base, base_preset = _check_options(data.get("base") or {}, ("base",), problems)
    entries = data.get("list")
    if entries is None:
        entries = [{}]
    elif not isinstance(entries, list) or not entries:
        problems.add(("list",), "wants a non-empty list of variants, each `{name: ..., option: value, ...}`")
        entries = [{}]
    listed = []
    for i, entry in enumerate(entries):
        options, preset = _check_options(entry, ("list", i), problems, allow_name=True)
        name = entry.get("name") if isinstance(entry, dict) else None
        listed.append((name, entry if isinstance(entry, dict) else {}, options, preset))
    grid = data.get("grid") or {}
    axes = []
    if not isinstance(grid, dict):
        problems.add(("grid",), "wants `option: [value, value, ...]` pairs")
        grid = {}
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            problems.add(("grid", name), f"a grid option takes a non-empty list of values, got {values!r}")
            continue
        checked = []
        for value in values:
            options, preset = _check_options({name: value}, ("grid",), problems)
            if name in options or name == "preset" and preset is not None:
                checked.append(options.get(name, preset))
        axes.append((name, checked))
    variants = []
    for (name, entry, options, preset), combo in itertools.product(listed, itertools.product(*[v for _, v in axes])):
        varied = {k: v for k, v in entry.items() if k != "name"}
        varied.update({axis: value for (axis, _), value in zip(axes, combo)})
        grid_options = {axis: value for (axis, _), value in zip(axes, combo) if axis != "preset"}
        chosen_preset = dict(zip([a for a, _ in axes], combo)).get("preset") or preset or base_preset
        parts = ([str(name)] if name is not None else [f"{k}={_text(v)}" for k, v in entry.items() if k != "name"])
        parts += [f"{axis}={_text(value)}" for (axis, _), value in zip(axes, combo)]
        if name is not None:
            varied = {"variant": str(name), **varied}
        variants.append(Variant(",".join(parts) or "base", varied, chosen_preset,
                                {**base, **options, **grid_options}))
    labels = [v.label for v in variants]
    for label in sorted({x for x in labels if labels.count(x) > 1}):
        problems.add(("list",), f"two variants have the label {label!r}: give each list entry its own name")
    return variants


def _int_list(data, key, problems):
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(x, int) and not isinstance(x, bool)
                                                          for x in value):
        problems.add((key,), f"wants a list of integers, e.g. `{key}: [1, 2, 3]`, got {value!r}")
        return None
    if len(set(value)) != len(value):
        problems.add((key,), f"lists a value twice: {value}")
    return value


def parse_spec(path):
    """The checked Spec of a file; SpecError naming every problem with its line."""
    path = Path(path)
    try:
        text, data, lines = read_spec_file(path)
    except ValueError as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError(path, [str(exc)]) from None
    if not isinstance(data, dict):
        raise SpecError(path, ["a sweep spec is a mapping of keys (base, grid, list, seeds, folds, ...)"])
    problems = _Problems(lines)
    for key in data:
        if key not in TOP_KEYS:
            hint = _suggest(key, TOP_KEYS)
            if key in SETTINGS or key == "preset":
                hint = f" (options go under base:, grid: or list:, e.g. `base: {{{key}: ...}}`)"
            problems.add((key,), f"unknown key {key!r}{hint}; a spec has {', '.join(TOP_KEYS)}")
    variants = _variants(data, problems)
    seeds = _int_list(data, "seeds", problems) or [0]
    folds = data.get("folds")
    if folds not in (None, "loso"):
        problems.add(("folds",), f"folds takes `loso` (one fold per training speaker), got {folds!r}")
    fold_speakers = _int_list(data, "fold_speakers", problems)
    if fold_speakers is not None and folds != "loso":
        problems.add(("fold_speakers",), "fold_speakers needs `folds: loso`")
    out = data.get("out")
    if out is not None and not isinstance(out, str):
        problems.add(("out",), f"out is a folder name, got {out!r}")
    if problems:
        raise SpecError(path, problems.lines_out())
    return Spec(path, text, out, variants, seeds, folds, fold_speakers)
