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
from taskzoo.errors import CheckpointError

RUN_FILES = ("config.json", "data.json", "best.safetensors")  # what a run directory restores from


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
    """CheckpointError naming what a finished run directory should hold but `run_dir` lacks."""
    missing = [n for n in needed if not (run_dir / n).is_file()]
    if missing:
        raise CheckpointError(f"{run_dir} is not a finished run directory: missing "
                              f"{', '.join(missing)} (expected the --out folder of `taskzoo run`)")


def read_json(path: Path) -> Any:
    """A run directory's JSON record (config.json, data.json, metrics.json)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def rebuild(config: Mapping[str, Any], state: Mapping[str, Any], *, task: str | None = None,
            device: str = "auto", channels_last: bool | None = None) -> Restored:
    """The task of `config` (config.json's `_task` unless `task` names it), its data from
    `state` and its freshly built model (a pretrained base filled in; the rest initialised
    without touching the caller's random streams). `channels_last` None: the config's."""
    from taskzoo.api import resolve_task
    from taskzoo.runtime import Runtime, preserved_rng

    task_cls = resolve_task(task or str(config.get("_task", "")))
    cfg = cfgmod.from_dict(task_cls.Config, config)
    if channels_last is None:
        channels_last = getattr(cfg, "channels_last", False)
    runtime = Runtime.create(device=device, precision="32", channels_last=channels_last)
    task_obj = task_cls(cfg, runtime)
    data = task_obj.data_from_state(dict(state))
    with preserved_rng():  # initialising layers draws random numbers: not the caller's
        model = task_obj.build_model(data)
    return Restored(task=task_obj, data=data, model=model, runtime=runtime)


def restore(config: Mapping[str, Any], state: Mapping[str, Any], tensors: dict[str, Any], *,
            source: str, task: str | None = None, device: str = "auto",
            base: dict[str, Any] | None = None) -> Restored:
    """`rebuild`, then the model filled with `tensors` (`source` names them in errors; `base`
    is a card's `extra.base` when they hold only what fine-tuning changed)."""
    from taskzoo.weights import load_into

    restored = rebuild(config, state, task=task, device=device)
    load_into(restored.model, tensors, source=source, base=base)
    return restored


def restore_run(run_dir: str | os.PathLike[str], *, device: str = "auto") -> Restored:
    """The task and best model of a finished run directory (config.json, data.json,
    best.safetensors)."""
    from taskzoo.weights import read_weights

    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    weights = run_dir / "best.safetensors"
    return restore(read_json(run_dir / "config.json"), read_json(run_dir / "data.json"),
                   read_weights(weights), source=str(weights), device=device)
