"""Frozen dataclass configs and "key=value" overrides.

A task's config class *is* its tuned recipe: the defaults are what `taskzoo run TASK` uses.
Overrides are parsed against each field's type annotation; unknown keys fail with the
closest valid key and wrong types name the key and the expected type.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from taskzoo.errors import ConfigError, did_you_mean

C = TypeVar("C")

Precision = Literal["32", "tf32", "bf16-mixed", "16-mixed"]


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric config field, declared in its annotation:
    `lr: Annotated[float, Range(0, open_lo=True)]` (or the aliases below). A tuple field's
    range applies to each item. Floats must also be finite.

    >>> Range(0, 1).describe()
    'in [0, 1]'
    >>> Range(0, open_lo=True).describe()
    '> 0'
    >>> Range(4, 1024, or_zero=True).describe()
    '0 or in [4, 1024]'
    """

    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False  # lo < x rather than lo <= x
    open_hi: bool = False  # x < hi rather than x <= hi
    or_zero: bool = False  # 0 is valid too: an "off" or "the data's own" value below lo

    def describe(self) -> str:
        def num(x: float) -> str:  # 10000000, not 1e+07: the user types the value back
            return str(int(x)) if float(x).is_integer() else f"{x:g}"

        if self.or_zero:
            return f"0 or {dataclasses.replace(self, or_zero=False).describe()}"
        if self.lo is not None and self.hi is not None:
            return (f"in {'(' if self.open_lo else '['}{num(self.lo)}, {num(self.hi)}"
                    f"{')' if self.open_hi else ']'}")
        if self.lo is not None:
            return f"{'>' if self.open_lo else '>='} {num(self.lo)}"
        if self.hi is not None:
            return f"{'<' if self.open_hi else '<='} {num(self.hi)}"
        return "any value"

    def contains(self, x: float) -> bool:
        # written so that NaN fails every comparison
        if self.or_zero and x == 0:
            return True
        if self.lo is not None and not (x > self.lo if self.open_lo else x >= self.lo):
            return False
        if self.hi is not None and not (x < self.hi if self.open_hi else x <= self.hi):
            return False
        return True


PositiveInt = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
PositiveFloat = Annotated[float, Range(0, open_lo=True)]
NonNegativeFloat = Annotated[float, Range(0)]
Probability = Annotated[float, Range(0, 1)]
PositiveFraction = Annotated[float, Range(0, 1, open_lo=True)]  # (0, 1]: discounts, step sizes


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Fields every task has, supervised or not.

    Every config checks itself when made (defaults, presets, overrides, config.json): each
    field's declared Range, then the class's `validate()` for rules across fields."""

    seed: NonNegativeInt = 0  # seeds python, numpy, torch and the data order
    device: str = "auto"  # auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps
    precision: Precision = "32"  # 32 (true fp32), tf32 (NVIDIA Ampere+), bf16-mixed or 16-mixed
    threads: NonNegativeInt = 0  # CPU threads torch may use during the run; 0 keeps the caller's
    logger: Literal["jsonl", "tensorboard"] = "jsonl"  # tensorboard: TensorBoard event files beside metrics.jsonl too

    def __post_init__(self) -> None:
        check_ranges(self)
        self.validate()

    def validate(self) -> None:
        """Rules across fields; subclasses extend it (and call super().validate())."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig(RunConfig):
    """What the Trainer reads: optimisation, schedule, evaluation and checkpoint cadence."""

    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"  # torch.optim class
    lr: PositiveFloat = 1e-3  # peak learning rate
    weight_decay: NonNegativeFloat = 0.0  # decoupled for adamw, L2 for adam/sgd
    decay_1d: bool = True  # weight decay on biases and norm weights too (false: on matrices only)
    momentum: Annotated[float, Range(0, 1, open_hi=True)] = 0.9  # sgd only
    nesterov: bool = False  # sgd only: Nesterov momentum
    schedule: Literal["constant", "linear", "cosine"] = "constant"  # lr after warm-up
    warmup_steps: NonNegativeInt = 0  # linear warm-up from 0 to lr
    grad_clip: NonNegativeFloat = 0.0  # max global gradient norm; 0 disables clipping
    batch_size: Annotated[int, Range(1, 65536)] = 64  # examples per batch
    accumulate: Annotated[int, Range(1, 4096)] = 1  # batches whose gradients add up to one optimizer step
    ema: Annotated[float, Range(0, 1, open_hi=True)] = 0.0  # EMA decay of the weights (evaluated, delivered); 0 = off
    epochs: int = 1  # passes over the training data, >= 1 (ignored when max_steps > 0)
    max_steps: NonNegativeInt = 0  # optimizer steps budget; 0 means epochs decide
    eval_every: NonNegativeInt = 0  # evaluate every N steps; 0 means at the end of each epoch
    patience: NonNegativeInt = 0  # stop after N evaluations without improvement; 0 disables
    keep: Literal["best", "last"] = "best"  # weights a run delivers: best evaluation or last step
    save_every: NonNegativeInt = 0  # also write last.ckpt every N optimizer steps; 0 = at evaluations
    save_minutes: NonNegativeFloat = 0.0  # also write last.ckpt every M minutes; 0 = off
    log_every: PositiveInt = 50  # steps between train/loss records in metrics.jsonl
    init: str = ""  # start from weights: a released name (bilstm.sst2), a .safetensors + card; none = fresh

    def validate(self) -> None:
        super().validate()
        if self.epochs < 0 or (self.epochs == 0 and self.max_steps == 0):
            raise ConfigError(f"epochs={self.epochs}: expected >= 1 (or max_steps > 0, which "
                              "then decides the length of training)")


def init_spec(value: Any) -> str:
    """`init=`'s weights, or "" for none ("" or "none": a preset's starting weights declined).

    >>> init_spec("none"), init_spec("bilstm.sst2")
    ('', 'bilstm.sst2')
    """
    text = str(value or "").strip()
    return "" if text.lower() == "none" else text


@dataclass(frozen=True, kw_only=True)
class SupervisedConfig(TrainConfig):
    """Adds what every supervised task has: a dataset and a model name."""

    dataset: str = "tiny"  # dataset name; each task lists its valid values
    model: str = ""  # model registry name


def fields_of(cls_or_obj: Any) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls_or_obj)}


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def ranges(cls: type) -> dict[str, Range]:
    """The declared Range of each field; a subclass that re-declares a field with a plain
    type (to change its default) keeps the base class's range."""
    out: dict[str, Range] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        for name, tp in typing.get_type_hints(klass, include_extras=True).items():
            if typing.get_origin(tp) is Annotated:
                found = [m for m in tp.__metadata__ if isinstance(m, Range)]
                if found:
                    out[name] = found[0]
    return out


def check_ranges(cfg: Any) -> None:
    """ConfigError naming the first field whose value is outside its range (or not finite)."""
    limits = ranges(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            shown = f"{f.name}={_show(value)}"
            if isinstance(item, float) and not math.isfinite(item):
                rule = f" ({limits[f.name].describe()})" if f.name in limits else ""
                raise ConfigError(f"{shown}: expected a finite number{rule}")
            if f.name in limits and not limits[f.name].contains(item):
                what = "each item " if isinstance(value, tuple) else ""
                raise ConfigError(f"{shown}: expected {what}{limits[f.name].describe()}")


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_show(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


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
    # the new config checks its ranges and cross-field rules as it is made (__post_init__)
    return dataclasses.replace(cfg, **changes)


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
    """(name, type and range, default, comment) rows for --help output."""
    hints = _type_hints(cls)
    limits = ranges(cls)
    comments = field_comments(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else "(required)"
        kind = type_name(hints[f.name])
        if f.name in limits:
            kind += f" {limits[f.name].describe()}"
        rows.append((f.name, kind, str(default), comments.get(f.name, "")))
    return rows
