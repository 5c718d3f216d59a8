"""Sweep specs: cells from base, list, grid, seeds and folds; a bad spec names each problem's line."""
import pytest

from eventprop_lab.cli import main
from eventprop_lab.sweep_spec import SpecError, parse_spec


def _spec(tmp_path, text, suffix=".yaml"):
    path = tmp_path / f"spec{suffix}"
    path.write_text(text)
    return path


def _problems(path):
    with pytest.raises(SpecError) as info:
        parse_spec(path)
    return info.value.problems


def test_cells_are_list_times_grid_with_grid_values_winning(tmp_path):
    spec = parse_spec(_spec(tmp_path, """
base: {epochs: 3, n_hidden: 16, lr: 2e-3}  # 2e-3: a float, though YAML 1.1 reads it as text
list:
  - {name: plain}
  - {name: paper, preset: paper, lr: 0.0005}
grid: {loss: [sum_exp, max], shift: [false, true]}
seeds: [1, 2]
folds: loso
fold_speakers: [0, 3]
"""))
    assert [v.label for v in spec.variants][:2] == ["plain,loss=sum_exp,shift=false", "plain,loss=sum_exp,shift=true"]
    assert len(spec.variants) == 8 and spec.seeds == [1, 2] and spec.folds == "loso" and spec.fold_speakers == [0, 3]
    paper = spec.variants[-1]
    assert paper.preset == "paper" and paper.varied == {"variant": "paper", "preset": "paper", "lr": 0.0005,
                                                        "loss": "max", "shift": True}
    assert paper.settings == {"epochs": 3, "n_hidden": 16, "lr": 0.0005, "loss": "max", "shift": True}


def test_yaml_spec_errors_name_line_and_option(tmp_path):
    problems = _problems(_spec(tmp_path, """base:
  epoch: 2
  n-hidden: 16
grid:
  loss: [sum_exp, maxx]
  lr: 0.1
list:
  - {name: a, seed: 3}
  - {name: b, preset: papr}
seeds: [1, 1]
folds: kfold
batch_size: 3
"""))
    assert problems == [
        "line 2: base.epoch: unknown option 'epoch' (did you mean epochs?)",
        "line 3: base.n-hidden: unknown option 'n-hidden' (options are written with underscores: n_hidden)",
        "line 5: grid.loss: loss='maxx' refused: loss takes one of sum, sum_exp, sum_linear, sum_sigmoid, max, "
        "first_spike, avg_xentropy",
        "line 6: grid.lr: a grid option takes a non-empty list of values, got 0.1",
        "line 8: list[0].seed: seed is not an option here: give seeds as `seeds: [1, 2]`",
        "line 9: list[1].preset: unknown preset 'papr'; presets: default, paper",
        "line 10: seeds: lists a value twice: [1, 1]",
        "line 11: folds: folds takes `loso` (one fold per training speaker), got 'kfold'",
        "line 12: batch_size: unknown key 'batch_size' (options go under base:, grid: or list:, e.g. "
        "`base: {batch_size: ...}`); a spec has out, base, grid, list, seeds, folds, fold_speakers",
    ]


def test_toml_spec_errors_name_line_and_option(tmp_path):
    problems = _problems(_spec(tmp_path, """seeds = [1, 2]
list = [
  {name = "plain"},
  {name = "paper", preset = "paper", lr = 5.0},
]

[base]
epochs = 2
n_hiden = 3

[grid]
jitter_sigma = [1.0, -2.0]
""", ".toml"))
    assert problems == [
        "line 4: list[1].lr: lr=5.0 refused: lr takes a number > 0 and ≤ 1",
        "line 9: base.n_hiden: unknown option 'n_hiden' (did you mean n_hidden?)",
        "line 12: grid.jitter_sigma: jitter_sigma=-2.0 refused: jitter_sigma takes a number ≥ 0.0 and ≤ 100.0",
    ]


def test_unparsable_spec_names_its_line(tmp_path):
    assert _problems(_spec(tmp_path, "base: {epochs: 2\ngrid: [1]\n"))[0] == "line 2: expected ',' or '}', but got ':'"
    assert "line 2" in _problems(_spec(tmp_path, "seeds = [1]\nbase = {\n", ".toml"))[0]
    assert "not .json" in _problems(_spec(tmp_path, "{}", ".json"))[0]


def test_sweep_command_prints_the_problems_and_fails(tmp_path, capsys):
    path = _spec(tmp_path, "base: {epochs: 0}\n")
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "1 problem in the sweep spec" in err and "line 1: base.epochs: epochs=0 refused" in err
    assert not (tmp_path / "out").exists()
