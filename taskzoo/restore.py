"""One restore path: a task's config, its data state and a weights file's tensors -> the
model -> the predictor, with no dataset read. `taskzoo.load` (released weights, a local
file, a URL), `taskzoo.load_run` (a run directory), export, teachers and encoders rebuild
through it; `init=` fills its model with the same `load_into`.

    >>> restored = restore_run("runs/demo", device="cpu")   # doctest: +SKIP
    >>> restored.predictor()("a gripping , beautiful film")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskzoo import config as cfgmod
from taskzoo.errors import RunFileError, TaskzooError, UsageError

RUN_FILES = ("config.json", "data.json", "best.safetensors")  # what a run directory restores from
# What to do about a damaged run file: taskzoo cannot rebuild what was lost from the rest.
FIX = "restore the file from a copy, or train the run again with `taskzoo run`"
# The same for a record that may be a run's or a weights card's.
REMAKE = ("restore the file from a copy, or write it again (`taskzoo run` for a run, "
          "`taskzoo export` for a weights card)")


@dataclass
class Restored:
    """A task rebuilt from its config and data state, and its model."""

    task: Any  # the Task instance, on `runtime`
    data: Any  # its DataBundle from the data state (no splits)
    model: Any  # the torch module, on the CPU
    runtime: Any  # full precision on the requested device

    def predictor(self) -> Any:
        """The task's predictor over the model, placed on the runtime's device."""
        return self.task.predictor(self.runtime.place(self.model).eval(), self.data)


def check_run_dir(run_dir: Path, needed: tuple[str, ...] = RUN_FILES) -> None:
    """RunFileError naming what a finished run directory should hold but `run_dir` lacks."""
    missing = [n for n in needed if not (run_dir / n).is_file()]
    if missing:
        raise RunFileError(f"{run_dir} is not a finished run directory: missing "
                           f"{', '.join(missing)} (expected the --out folder of `taskzoo run`)")


def read_json(path: Path) -> dict[str, Any]:
    """A run directory's JSON record (config.json, data.json, metrics.json): a JSON object,
    else a one-line RunFileError naming the file and what is wrong with it."""
    record, problem = json_record(Path(path))
    if problem:
        raise RunFileError(f"{path} {problem}; {FIX}")
    return record


def json_record(path: Path) -> tuple[dict[str, Any], str]:
    """(the JSON object in `path`, "") or ({}, what is wrong with the file: "is missing",
    "is not valid JSON (...)", "holds a JSON list, ...")."""
    from taskzoo.data.user_files import UnreadableText, utf8_text

    try:  # a regular file only: a FIFO in its place would block the reader forever
        text = utf8_text(path)
    except FileNotFoundError:
        return {}, "is missing"
    except UnreadableText as exc:
        return {}, f"{exc}, so not the JSON taskzoo wrote" if "UTF-8" in str(exc) else str(exc)
    except OSError as exc:
        return {}, f"cannot be read ({exc.strerror or exc})"
    if not text.strip():
        return {}, "is empty, not the JSON object taskzoo wrote"
    try:
        record = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or a number too long to convert
        where = f" at line {exc.lineno} column {exc.colno}" if hasattr(exc, "lineno") else ""
        return {}, f"is not valid JSON ({getattr(exc, 'msg', exc)}{where})"
    if not isinstance(record, dict):
        return {}, f"holds a JSON {_json_kind(record)}, not the object taskzoo wrote"
    return record, ""


def _json_kind(value: Any) -> str:
    kinds = {list: "list", str: "string", bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "number")


def reason(exc: BaseException) -> str:
    """What a malformed record made a reader fail with, in one short line."""
    if isinstance(exc, KeyError):
        return f"missing key {exc.args[0]!r}" if exc.args else "a key is missing"
    lines = [line for line in str(exc).splitlines() if line.strip()]
    text = lines[0].strip() if lines else ""
    text = text[:197] + "..." if len(text) > 200 else text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def rebuild(config: Mapping[str, Any], state: Mapping[str, Any], *, task: str | None = None,
            device: str = "auto", channels_last: bool | None = None,
            records: tuple[str, str] = ("the config", "the data state")) -> Restored:
    """The task of `config` (config.json's `_task` unless `task` names it), its data from
    `state` and its freshly built model (a pretrained base filled in; the rest initialised
    without touching the caller's random streams). `channels_last` None: the config's.
    `records` names where `config` and `state` come from: a RunFileError names that file
    when either is not what taskzoo wrote."""
    from taskzoo.runtime import Runtime, preserved_rng

    config_src, state_src = records
    task_cls, cfg = _task_and_config(config, task, config_src)
    if channels_last is None:
        channels_last = getattr(cfg, "channels_last", False)
    runtime = Runtime.create(device=device, precision="32", channels_last=channels_last)
    task_obj = task_cls(cfg, runtime)
    try:
        data = task_obj.data_from_state(dict(state))
    except RunFileError:
        raise
    except UsageError as exc:  # a value in the saved state the task refuses
        raise RunFileError(f"{state_src}: {exc}; {REMAKE}") from exc
    except TaskzooError:  # a download or a file the state names: its own message
        raise
    # a malformed state fails wherever the task reads it: a missing key, a wrong type
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise RunFileError(f"{state_src} is not a {task_cls.name} data state as taskzoo wrote "
                           f"it ({reason(exc)}); {REMAKE}") from exc
    try:
        with preserved_rng():  # initialising layers draws random numbers: not the caller's
            model = task_obj.build_model(data)
    except RunFileError:
        raise
    except UsageError as exc:  # the config names a model or a size the task refuses
        raise RunFileError(f"{config_src}: {exc}; {REMAKE}") from exc
    except TaskzooError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise RunFileError(f"{config_src} and {state_src} do not build a {task_cls.name} model "
                           f"({reason(exc)}); {REMAKE}") from exc
    return Restored(task=task_obj, data=data, model=model, runtime=runtime)


def _task_and_config(config: Mapping[str, Any], task: str | None, source: str) -> tuple[Any, Any]:
    """The task class named by `task` or config's `_task`, and its config from `config`; a
    RunFileError naming `source` when either is missing or invalid."""
    from taskzoo.api import resolve_task

    name = task or config.get("_task")
    if not isinstance(name, str) or not name:
        raise RunFileError(f"{source} names no task (its \"_task\" is {name!r}); {REMAKE}")
    try:
        task_cls = resolve_task(name)
        return task_cls, cfgmod.from_dict(task_cls.Config, config)
    except UsageError as exc:  # an unknown task, a value of the wrong type or range
        raise RunFileError(f"{source}: {exc}; {REMAKE}") from exc
    except (TypeError, ValueError) as exc:  # a field the config class cannot take
        raise RunFileError(f"{source}: {reason(exc)}; {REMAKE}") from exc


def restore(config: Mapping[str, Any], state: Mapping[str, Any], tensors: dict[str, Any], *,
            source: str, task: str | None = None, device: str = "auto",
            base: dict[str, Any] | None = None,
            records: tuple[str, str] | None = None) -> Restored:
    """`rebuild`, then the model filled with `tensors` (`source` names them in errors; `base`
    is a card's `extra.base` when they hold only what fine-tuning changed; `records` names
    where the config and the data state come from, by default `source`'s)."""
    from taskzoo.weights import load_into

    records = records or (f"the config of {source}", f"the data state of {source}")
    restored = rebuild(config, state, task=task, device=device, records=records)
    load_into(restored.model, tensors, source=source, base=base)
    return restored


def restore_run(run_dir: str | os.PathLike[str], *, device: str = "auto") -> Restored:
    """The task and best model of a finished run directory (config.json, data.json,
    best.safetensors)."""
    from taskzoo.weights import read_weights

    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    config, state, weights = (run_dir / n for n in RUN_FILES)
    return restore(read_json(config), read_json(state), read_weights(weights),
                   source=str(weights), device=device, records=(str(config), str(state)))
