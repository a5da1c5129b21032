"""Ready predictors from weights (`taskzoo.load`), and what `init=` takes from them: the
architecture before the config is made, the tensors once the model is built."""

from __future__ import annotations

import os
from typing import Any

from taskzoo.errors import ConfigError, UnknownNameError, UsageError, did_you_mean
from taskzoo.weights.catalog import WeightCard, canonical_task, released_cards, resolve
from taskzoo.weights.resolver import SpecRules, resolve_spec


def load(name: str, *, weights: str | os.PathLike[str] | None = None, sha256: str | None = None,
         device: str = "auto", backend: str = "torch", **options: Any) -> Any:
    """A ready predictor from released weights, a local file or an https URL.

    `name` is a task (its default weights) or a weights name. `weights` overrides the file:
    a released name, a local `.safetensors` (its card `.json` beside it) or an https URL
    with `sha256=` (the card is read from the same URL with `.json`). `backend="onnx"` runs
    the predictor's networks on onnxruntime (CPU): weights are exported once into the cache,
    and `weights` may also name a folder `taskzoo export --format onnx` wrote.

    >>> clf = taskzoo.load("sentiment")                                     # doctest: +SKIP
    >>> clf = taskzoo.load("sentiment", weights="exports/bilstm.sst2.safetensors")  # doctest: +SKIP
    >>> det = taskzoo.load("detection", conf=0.5, iou=0.6)  # call options' defaults  # doctest: +SKIP
    >>> det = taskzoo.load("detection", backend="onnx")                     # doctest: +SKIP
    """
    if check_backend(backend, device) == "onnx":
        return _load_onnx(name, weights, sha256, device).configure(**options)
    if weights is None:
        source = resolve_spec(resolve(name).name, task=None)
    else:
        source = resolve_spec(weights, task=name, sha256=sha256)
    return source.restore(device=device).predictor().configure(**options)


BACKENDS = ("torch", "onnx")


def check_backend(backend: str, device: str) -> str:
    """`backend` when it is one taskzoo runs predictors on and `device` suits it; else a
    ConfigError naming the closest backend, or why onnx refuses the device."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r}: expected one of {', '.join(BACKENDS)}."
                          + did_you_mean(str(backend), BACKENDS))
    if backend == "onnx" and device not in ("auto", "cpu"):
        raise ConfigError(f"device={device!r} with backend='onnx': onnxruntime runs here on "
                          "the CPU; use backend='torch' for a GPU")
    return backend


def _load_onnx(name: str, weights: Any, sha256: str | None, device: str) -> Any:
    """The predictor of `name` with its networks on onnxruntime: from an export folder, or
    from weights exported once into the cache."""
    from pathlib import Path

    from taskzoo.deploy import MANIFEST, cached_export, load_onnx, read_manifest

    folder = Path(weights) if weights is not None else None
    if folder is not None and folder.name == MANIFEST:
        folder = folder.parent
    if folder is not None and (folder / MANIFEST).is_file():
        task = read_manifest(folder)["task"]
        try:
            asked = canonical_task(name)
        except UnknownNameError:  # a weights name
            asked = resolve(name).task
        if asked != canonical_task(task):
            raise UsageError(f"{weights} holds an export for {task}, not for {name}")
        return load_onnx(folder)
    if weights is None:
        source = resolve_spec(resolve(name).name, task=None)
    else:
        source = resolve_spec(weights, task=name, sha256=sha256)
    return load_onnx(cached_export(source))


def _no_init(spec: str, task: str | None) -> Exception:
    valid = sorted(c.name for c in released_cards().values() if c.task == task)
    return UnknownNameError(f"init={spec!r}: not a released weights name or a file."
                            f"{did_you_mean(spec, valid)} Released for {task}: "
                            f"{', '.join(valid) or 'none'}.")


INIT = SpecRules(option="init", missing=_no_init, option_in_task_error=True)


def init_overrides(task_cls: Any, spec: str) -> dict[str, Any]:
    """What `init=` sets before the user's overrides: the card's architecture, that is the
    builder's kwargs and the config fields the task says identify its weights."""
    from taskzoo.config import fields_of

    card = resolve_spec(spec, task=task_cls.name, rules=INIT, fetch=False).card
    valid = fields_of(task_cls.Config)
    keys = {*card.arch_kwargs, *task_cls.weights_fields} & set(card.config) & set(valid)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in card.config.items() if k in keys}


def init_tensors(spec: str, task: str) -> tuple[WeightCard, dict[str, Any]]:
    """Card and verified tensors of `init=`."""
    source = resolve_spec(spec, task=task, rules=INIT)
    return source.card, source.tensors()
