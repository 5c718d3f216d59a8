"""The settings table (eventprop_lab/settings.py) and the session's set(): one source of truth,
checked all before any is applied, every change published."""
import argparse

import pytest

from eventprop_lab.cli import add_config_options
from eventprop_lab.config import PRESETS, SECTIONS
from eventprop_lab.session import TrainingSession
from eventprop_lab.settings import (SETTINGS, SHOWN, SettingError, check_settings, matching_preset,
                                    preset_settings)
from test_session import configs, kinds, toy_data


@pytest.fixture
def session(tmp_path):
    s = TrainingSession.from_configs(*configs(tmp_path), data=toy_data())
    yield s
    s.stop()


def test_the_table_covers_every_config_parameter_once_and_takes_its_bounds_from_param():
    for section, cls in SECTIONS.items():
        for name in cls.param:
            if name not in ("name", "n_in", "n_out"):
                assert SETTINGS[name].section == section and SETTINGS[name].param is cls.param[name]
    lr = SETTINGS["lr"]
    assert lr.doc == SECTIONS["training"].param["lr"].doc and lr.default == 1e-3
    assert "> 0" in lr.allowed() and "≤ 1" in lr.allowed()
    for key in (k for preset in PRESETS.values() for k in preset):  # a preset only sets what the table has
        assert key.split(".")[1] in SETTINGS
    assert {SETTINGS[n].hot for n in SHOWN} == {None, "loss", "lr", "regulariser", "augment"}
    assert all(SETTINGS[n].shown for n in SHOWN) and not SETTINGS["seed"].shown


def test_the_cli_has_one_option_per_setting():
    parser = argparse.ArgumentParser()
    add_config_options(parser)
    dests = {a.dest for a in parser._actions if "." in a.dest}
    assert dests == {f"{s.section}.{name}" for name, s in SETTINGS.items()}


def test_check_settings_names_every_refused_value_and_what_is_allowed():
    with pytest.raises(SettingError) as info:
        check_settings({"lr": "abc", "loss": "nope", "n_hidden": -5, "foo": 1, "reg_nu": float("nan"),
                        "shift": "yes", "batch_size": 2.5, "lr ": 0.1})
    problems = info.value.problems
    assert len(problems) == 8
    text = str(info.value)
    for part in ("lr='abc'", "a number > 0 and ≤ 1", "loss='nope'", "sum_exp", "n_hidden=-5", "≥ 1",
                 "unknown setting 'foo'", "reg_nu=nan", "shift='yes'", "batch_size=2.5", "did you mean lr?"):
        assert part in text, part
    assert check_settings({"lr": 1, "n_hidden": 8.0, "reg_nu": 5}) == {"lr": 1.0, "n_hidden": 8, "reg_nu": 5.0}


def test_links_text_round_trips_through_the_table():
    for name, text, value in (("shift", "on", True), ("shift", "0", False), ("lr", "3e-3", 3e-3),
                              ("n_hidden", "8", 8), ("loss", "sum", "sum"), ("blend_probs", "0.2,0.8", [0.2, 0.8])):
        s = SETTINGS[name]
        assert s.check(s.from_text(text)) == value
        assert s.check(s.from_text(s.to_text(value))) == value
    with pytest.raises(SettingError, match="n_hidden='x'"):
        SETTINGS["n_hidden"].from_text("x")


def test_set_applies_nothing_when_one_change_is_refused(session):
    before = (session.settings, session.settings_version, session.buffer.newest, session.progress["pending"])
    with pytest.raises(SettingError) as info:
        session.set(loss="sum", lr=0.5, n_hidden=8, max_shift=-1, bogus=1)
    assert "max_shift=-1" in str(info.value) and "'bogus'" in str(info.value)
    assert (session.settings, session.settings_version, session.buffer.newest,
            session.progress["pending"]) == before
    assert session.pending_reset == {}


def test_set_routes_hot_changes_to_the_next_batch_and_the_rest_to_reset(session):
    session.step(1)
    session.wait()
    version = session.settings_version
    changed = session.set(loss="sum", lr=3e-3, shift=True, max_shift=5, n_hidden=8, delay_line=True)
    assert changed == {"loss": "sum", "lr": 3e-3, "shift": True, "max_shift": 5, "n_hidden": 8, "delay_line": True}
    assert session.settings_version == version + 1
    (event,) = [e for e in kinds(session, "event") if e.what == "settings"]  # published at once
    assert event.extra["changes"] == changed and event.extra["on_reset"] == ["delay_line", "n_hidden"]
    assert session.settings["loss"] == "sum" and session.settings["n_hidden"] == 8
    assert session.pending_reset == {"n_hidden": 8, "delay_line": True}
    session.step(1)
    session.wait()
    run = session.run
    assert (run.training.loss, run.training.lr, run.augment.shift, run.augment.max_shift) == ("sum", 3e-3, True, 5)
    assert run.net.n_hidden == 16  # not before the reset
    assert session.set(loss="sum", n_hidden=16) == {"n_hidden": 16}  # back to the run's: nothing waits
    assert session.pending_reset == {"delay_line": True}
    session.reset()
    assert session.run.net.delay_line and session.pending_reset == {} and session.settings["loss"] == "sum"


def test_reset_takes_hot_changes_sent_while_no_thread_ran(session):
    session.set(loss="sum", shift=True, n_hidden=8)
    assert session.progress["pending"] == 2 and session.run.training.loss == "sum_exp"
    session.reset()
    assert session.progress["pending"] == 0
    run = session.run
    assert (run.training.loss, run.augment.shift, run.net.n_hidden) == ("sum", True, 8)
    assert session.params.W_out.shape == (8, 4)


def test_a_reset_that_cannot_build_the_run_drops_what_waited_for_it(session, monkeypatch):
    import eventprop_lab.training as training

    real = training.get_engine

    def no_genn(name="numba", **kw):
        if name == "genn":
            raise ImportError("pygenn cannot be imported (test)")
        return real(name, **kw)

    monkeypatch.setattr(training, "get_engine", no_genn)
    session.step(1)
    session.wait()
    session.set(backend="genn", lr=3e-3)
    run = session.run
    with pytest.raises(ImportError):
        session.reset()
    assert session.run is run and session.progress["step"] == 1 and session.pending_reset == {}
    assert session.settings["backend"] == "numba" and session.settings["lr"] == 3e-3
    reverted = [e for e in kinds(session, "event") if e.extra.get("source") == "reset failed"]
    assert reverted[-1].extra["changes"] == {"backend": "numba"} and "pygenn" in reverted[-1].extra["why"]
    session.step(1)
    session.wait()
    assert session.run.training.lr == 3e-3  # the hot change was kept for the old run


def test_a_preset_goes_through_set_and_its_network_waits_for_reset(session):
    assert matching_preset(session.settings) is None  # the toy's lr 1e-2 is neither preset's
    changed = session.apply_preset("paper")
    assert changed["loss" if "loss" in changed else "lr"] is not None
    assert matching_preset(session.settings) == "paper"
    assert {"delay_line", "heterogeneous_tau", "het_weight_norm", "w_in_lr_scale", "lift_silent"} <= set(
        session.pending_reset)
    events = [e for e in kinds(session, "event") if e.what == "settings"]
    assert events[-1].extra["source"] == "preset paper"
    session.apply_preset("default")
    assert matching_preset(session.settings) == "default"
    assert all(session.settings[k] == v for k, v in preset_settings("default").items())
