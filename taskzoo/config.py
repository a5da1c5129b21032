"""Frozen dataclass configs and "key=value" overrides.

A task's config class *is* its tuned recipe: the defaults are what `taskzoo run TASK` uses.
Overrides are parsed against each field's type annotation; unknown keys fail with the
closest valid key and wrong types name the key and the expected type.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from taskzoo.errors import ConfigError, did_you_mean

C = TypeVar("C")

Precision = Literal["32", "bf16-mixed", "16-mixed"]


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Fields every task has, supervised or not."""

    seed: int = 0  # seeds python, numpy, torch and the data order
    device: str = "auto"  # auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps
    precision: Precision = "32"  # 32, bf16-mixed or 16-mixed (autocast + grad scaling)
    threads: int = 0  # CPU threads torch may use; 0 keeps torch's default (all cores)


@dataclass(frozen=True, kw_only=True)
class TrainConfig(RunConfig):
    """What the Trainer reads: optimisation, schedule, evaluation and checkpoint cadence."""

    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"  # torch.optim class
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.0  # decoupled for adamw, L2 for adam/sgd
    momentum: float = 0.9  # sgd only
    schedule: Literal["constant", "linear", "cosine"] = "constant"  # lr after warm-up
    warmup_steps: int = 0  # linear warm-up from 0 to lr
    grad_clip: float = 0.0  # max global gradient norm; 0 disables clipping
    batch_size: int = 64  # examples per optimizer step
    epochs: int = 1  # passes over the training data (ignored when max_steps > 0)
    max_steps: int = 0  # optimizer steps budget; 0 means epochs decide
    eval_every: int = 0  # evaluate every N steps; 0 means at the end of each epoch
    patience: int = 0  # stop after N evaluations without improvement; 0 disables
    keep: Literal["best", "last"] = "best"  # weights a run delivers: best evaluation or last step
    log_every: int = 50  # steps between train/loss records in metrics.jsonl
    init: str = ""  # start from weights: a released name (bilstm.sst2) or a .safetensors + card


@dataclass(frozen=True, kw_only=True)
class SupervisedConfig(TrainConfig):
    """Adds what every supervised task has: a dataset and a model name."""

    dataset: str = "tiny"  # dataset name; each task lists its valid values
    model: str = ""  # model registry name


def fields_of(cls_or_obj: Any) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls_or_obj)}


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def type_name(tp: Any) -> str:
    """Readable name of an annotation: 'float', "one of '32', 'bf16-mixed'", 'int or None'."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "None"
    if origin is tuple:
        return f"comma-separated {type_name(typing.get_args(tp)[0])}s"
    return getattr(tp, "__name__", str(tp))


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_value(key: str, text: str, tp: Any) -> Any:
    """Parse `text` as annotation `tp`; ConfigError naming the key and expected type."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        for choice in choices:
            if text == str(choice):
                return choice
        raise ConfigError(
            f"{key}={text!r}: expected {type_name(tp)}.{did_you_mean(text, [str(c) for c in choices])}"
        )
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and text.lower() in ("none", "null", ""):
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return parse_value(key, text, arg)
            except ConfigError:
                continue
        raise ConfigError(f"{key}={text!r}: expected {type_name(tp)}")
    if origin is tuple:
        (item,) = typing.get_args(tp)[:1]
        parts = [p for p in text.split(",") if p.strip()]
        return tuple(parse_value(key, p.strip(), item) for p in parts)
    if tp is bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"{key}={text!r}: expected bool (true/false, 1/0, yes/no)")
    if tp is int:
        try:
            return int(text.replace("_", ""))
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                as_float = None
            if as_float is not None and as_float.is_integer():
                return int(as_float)  # "1e4" is a fine way to write 10000
            raise ConfigError(f"{key}={text!r}: expected int, e.g. {key}=3") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key}={text!r}: expected float, e.g. {key}=0.001") from None
    if tp is str:
        return text
    raise ConfigError(f"{key}: fields of type {type_name(tp)} cannot be set from the command line")


def _check_value(key: str, value: Any, tp: Any) -> Any:
    """Type-check a Python value given through the API (run("x", lr=1e-3))."""
    if isinstance(value, str) and tp is not str:
        return parse_value(key, value, tp)
    origin = typing.get_origin(tp)
    ok: bool
    if origin is Literal:
        ok = value in typing.get_args(tp)
    elif origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        ok = (value is None and type(None) in args) or any(
            _matches(value, a) for a in args if a is not type(None)
        )
    else:
        ok = _matches(value, tp)
    if not ok:
        raise ConfigError(f"{key}={value!r}: expected {type_name(tp)}, got {type(value).__name__}")
    if tp is float and isinstance(value, int):
        return float(value)
    return value


def _matches(value: Any, tp: Any) -> bool:
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typing.get_origin(tp) is tuple:
        return isinstance(value, (tuple, list))
    if typing.get_origin(tp) is Literal:
        return value in typing.get_args(tp)
    return isinstance(value, tp) if isinstance(tp, type) else True


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """["lr=0.1", "epochs=3"] -> {"lr": "0.1", "epochs": "3"}; ConfigError on a bare word."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Override {item!r} is not of the form key=value (e.g. lr=0.001)")
        out[key.strip()] = value.strip()
    return out


def apply_overrides(cfg: C, overrides: Mapping[str, Any]) -> C:
    """A copy of `cfg` with `overrides` applied; strings are parsed by field type.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True, kw_only=True)
    ... class Cfg:
    ...     lr: float = 0.1  # learning rate
    >>> apply_overrides(Cfg(), {"lr": "0.5"}).lr
    0.5
    """
    valid = fields_of(cfg)
    hints = _type_hints(type(cfg))
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in valid:
            raise ConfigError(
                f"Unknown config key '{key}' for {type(cfg).__name__}.{did_you_mean(key, valid)} "
                f"Valid keys: {', '.join(sorted(valid))}."
            )
        tp = hints[key]
        changes[key] = parse_value(key, value, tp) if isinstance(value, str) else _check_value(
            key, value, tp
        )
    new = dataclasses.replace(cfg, **changes)
    validate = getattr(new, "validate", None)
    if callable(validate):
        validate()
    return new


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_json(cfg: Any) -> str:
    return json.dumps({"_class": type(cfg).__name__, **to_dict(cfg)}, indent=2, sort_keys=True)


def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
    """Rebuild a config from config.json (unknown keys from older versions are ignored)."""
    valid = fields_of(cls)
    kwargs = {}
    hints = _type_hints(cls)
    for key, value in data.items():
        if key in valid:
            if isinstance(value, list):
                value = tuple(value)
            kwargs[key] = _check_value(key, value, hints[key])
    return cls(**kwargs)


def field_comments(cls: type) -> dict[str, str]:
    """The one-line comment after each field in the class bodies (subclasses win)."""
    import inspect
    import re

    pattern = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+)$")
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for line in source.splitlines():
            m = pattern.match(line)
            if m:
                comments[m.group(1)] = m.group(2).strip()
    return comments


def describe(cls: type) -> list[tuple[str, str, str, str]]:
    """(name, type, default, comment) rows for --help output."""
    hints = _type_hints(cls)
    comments = field_comments(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else "(required)"
        rows.append((f.name, type_name(hints[f.name]), str(default), comments.get(f.name, "")))
    return rows
