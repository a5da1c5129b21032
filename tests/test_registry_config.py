from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from taskzoo.api import make_config, resolve_task
from taskzoo.config import (
    SupervisedConfig,
    apply_overrides,
    describe,
    from_dict,
    parse_overrides,
    to_json,
)
from taskzoo.errors import ConfigError, UnknownNameError, UsageError
from taskzoo.registry import Registry


def test_registry_aliases_and_suggestions():
    reg: Registry[object] = Registry("widget")
    obj = object()
    reg.register("big_widget", aliases=("bigw",))(obj)
    assert reg.get("big_widget") is obj
    assert reg.get("BIGW") is obj  # case-insensitive, aliases resolve
    assert reg.get("big-widget") is obj
    with pytest.raises(UnknownNameError) as err:
        reg.get("big_widgte")
    msg = str(err.value)
    assert "Unknown widget 'big_widgte'" in msg and "Did you mean 'big_widget'?" in msg
    assert "Valid widgets: big_widget" in msg
    with pytest.raises(UnknownNameError) as err:
        reg.get("zzzzzz")
    assert "Did you mean" not in str(err.value)


def test_registry_refuses_one_name_from_two_modules():
    reg: Registry[object] = Registry("thing")

    def a(): ...

    a.__module__ = "pkg.one"

    def b(): ...

    reg.register("x")(a)
    with pytest.raises(UsageError, match="registered twice"):
        # b lives in this test module, a claims pkg.one: two different owners
        reg.register("x")(b)
    with pytest.raises(UsageError, match="lower_snake"):
        reg.register("Bad Name")(b)


def test_registry_names_pattern():
    reg: Registry[int] = Registry("n")
    for name in ("bilstm", "bigru", "lstm"):
        reg.register(name)(len(name))
    assert reg.names("bi*") == ["bigru", "bilstm"]
    assert reg.names() == ["bigru", "bilstm", "lstm"]


@dataclass(frozen=True, kw_only=True)
class _Cfg(SupervisedConfig):
    mode: Literal["fast", "slow"] = "fast"  # speed
    flag: bool = False  # a switch
    sizes: tuple[int, ...] = (1, 2)  # widths
    maybe: float | None = None  # optional


def test_overrides_parse_every_type():
    cfg = apply_overrides(_Cfg(), parse_overrides(
        ["lr=0.5", "epochs=1e2", "mode=slow", "flag=yes", "sizes=3,4,5", "maybe=none", "seed=7"]
    ))
    assert (cfg.lr, cfg.epochs, cfg.mode, cfg.flag, cfg.sizes, cfg.maybe, cfg.seed) == (
        0.5, 100, "slow", True, (3, 4, 5), None, 7)
    assert apply_overrides(_Cfg(), {"maybe": "0.25"}).maybe == 0.25
    # python values through the API are type-checked too
    assert apply_overrides(_Cfg(), {"lr": 1}).lr == 1.0
    with pytest.raises(ConfigError, match="lr='abc': expected float"):
        apply_overrides(_Cfg(), {"lr": "abc"})
    with pytest.raises(ConfigError, match="epochs=2.5: expected int"):
        apply_overrides(_Cfg(), {"epochs": 2.5})
    with pytest.raises(ConfigError, match="expected bool"):
        apply_overrides(_Cfg(), {"flag": "maybe"})


def test_override_errors_name_key_and_closest_match():
    with pytest.raises(ConfigError) as err:
        apply_overrides(_Cfg(), {"lrr": "1"})
    assert "Unknown config key 'lrr'" in str(err.value) and "Did you mean 'lr'?" in str(err.value)
    with pytest.raises(ConfigError) as err:
        apply_overrides(_Cfg(), {"mode": "slwo"})
    assert "one of 'fast', 'slow'" in str(err.value) and "Did you mean 'slow'?" in str(err.value)
    with pytest.raises(ConfigError, match="not of the form key=value"):
        parse_overrides(["epochs"])


def test_config_is_frozen_and_round_trips_json():
    import json

    cfg = apply_overrides(_Cfg(), {"sizes": "7,8", "lr": "0.1"})
    with pytest.raises(Exception):
        cfg.lr = 1.0  # type: ignore[misc]
    again = from_dict(_Cfg, json.loads(to_json(cfg)))
    assert again == cfg
    rows = {r[0]: r for r in describe(_Cfg)}
    assert rows["flag"][3] == "a switch" and rows["seed"][1] == "int >= 0"


def test_every_task_config_has_the_required_fields():
    from taskzoo.config import RunConfig, TrainConfig, field_comments, fields_of
    from taskzoo.tasks import TASKS, names

    trained = 0
    for name in names():
        cfg = TASKS.get(name).Config()
        assert isinstance(cfg, RunConfig) and hasattr(cfg, "seed"), name
        # supervised tasks read a dataset, RL tasks an environment
        assert hasattr(cfg, "dataset") or hasattr(cfg, "env"), name
        missing = set(fields_of(cfg)) - set(field_comments(type(cfg)))
        assert not missing, f"{name} config fields without a one-line comment: {missing}"
        if not isinstance(cfg, TrainConfig):  # pretrained networks only (faces): no optimiser
            continue
        trained += 1
        for key in ("lr", "batch_size"):
            assert hasattr(cfg, key), f"{name} config lacks {key}"
        assert hasattr(cfg, "epochs") or hasattr(cfg, "max_steps")
    assert trained == len(names()) - 1


def test_dataset_preset_then_user_overrides():
    cls = resolve_task("sst2")  # an alias
    assert cls.name == "sentiment"
    cfg = make_config(cls, {"dataset": "tiny"})
    assert cfg.epochs == cls.presets["tiny"]["epochs"]
    cfg = make_config(cls, {"dataset": "tiny", "epochs": 2})
    assert cfg.epochs == 2  # the user's word wins over the preset
    with pytest.raises(UnknownNameError, match="Did you mean 'sentiment'"):
        resolve_task("sentimnet")


def test_model_aliases_resolve_and_unknown_models_fail_before_any_data():
    cls = resolve_task("sentiment")
    assert make_config(cls, {"model": "bi_lstm"}).model == "bilstm"
    with pytest.raises(UnknownNameError, match="Did you mean 'bigru'"):
        make_config(cls, {"model": "bigur", "dataset": "sst2"})


# Fields whose valid values are not one interval: epochs depends on max_steps (checked by
# TrainConfig.validate); a solved threshold may be any return, negative ones included.
_NO_RANGE = {"epochs", "solved_return"}


def test_every_numeric_field_of_every_task_declares_its_range():
    import dataclasses
    import typing

    from taskzoo.config import ranges
    from taskzoo.tasks import names

    for task in names():
        cls = resolve_task(task).Config
        limits, hints = ranges(cls), typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            numeric = any(t in (int, float) for t in (hints[f.name], *typing.get_args(hints[f.name])))
            if numeric and f.name not in _NO_RANGE:
                assert f.name in limits, f"{task}: {f.name} declares no Range"


@pytest.mark.parametrize("task, key, value, message", [
    ("sentiment", "batch_size", "0", "batch_size=0: expected in [1, 65536]"),
    ("sentiment", "epochs", "-1", "epochs=-1: expected >= 1 (or max_steps > 0"),
    ("sentiment", "epochs", "0", "epochs=0: expected >= 1"),
    ("sentiment", "lr", "nan", "lr=nan: expected a finite number (> 0)"),
    ("sentiment", "lr", "-0.1", "lr=-0.1: expected > 0"),
    ("sentiment", "lr", "0", "lr=0: expected > 0"),
    ("sentiment", "lr", "inf", "lr=inf: expected a finite number"),
    ("sentiment", "dropout", "1.5", "dropout=1.5: expected in [0, 1]"),
    ("sentiment", "kernel_sizes", "3,0", "kernel_sizes=3,0: expected each item >= 1"),
    ("pos", "word_dropout", "-0.1", "word_dropout=-0.1: expected in [0, 1]"),
    ("cartpole", "gamma", "0", "gamma=0: expected in (0, 1]"),
    ("cartpole", "eps_end", "2", "eps_end=2: expected in [0, 1]"),
    ("cartpole", "n_envs", "0", "n_envs=0: expected in [1, 1024]"),
    ("taxi", "lr", "1.5", "lr=1.5: expected in (0, 1]"),
    ("sentiment", "momentum", "1", "momentum=1: expected in [0, 1)"),
])
def test_out_of_range_values_are_config_errors_naming_key_and_range(task, key, value, message):
    with pytest.raises(ConfigError) as err:
        make_config(resolve_task(task), {key: value})
    assert message in str(err.value)


def test_ranges_hold_for_python_values_and_max_steps_frees_epochs():
    cls = resolve_task("sentiment")
    with pytest.raises(ConfigError, match="batch_size=0"):
        make_config(cls, {"batch_size": 0})
    with pytest.raises(ConfigError, match="lr=nan"):
        make_config(cls, {"lr": float("nan")})
    with pytest.raises(ConfigError, match="batch_size=-3"):
        cls.Config(batch_size=-3)  # made directly, not through overrides
    assert make_config(cls, {"epochs": 0, "max_steps": 5}).max_steps == 5
    help_rows = {r[0]: r[1] for r in describe(cls.Config)}
    assert help_rows["lr"] == "float > 0" and help_rows["dropout"] == "float in [0, 1]"
