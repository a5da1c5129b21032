"""The task modules. Each registers one Task class in TASKS on import."""

from __future__ import annotations

import importlib
from typing import Any

from taskzoo.registry import Registry

TASKS: Registry[Any] = Registry("task")

# Every task module, imported on first lookup so `import taskzoo` stays light.
_MODULES = ("sentiment", "pos", "control", "tabular", "image_classification", "autoencoder",
            "detection", "captioning", "qa",
            "answer_selection", "summarization")


def _load_all() -> None:
    for module in _MODULES:
        importlib.import_module(f"taskzoo.tasks.{module}")


def get_task(name: str) -> Any:
    """The Task class for a name or alias; UnknownNameError with a suggestion otherwise."""
    key = name.strip().lower().replace("-", "_")
    # import modules only until the name registers: loading a sentiment predictor should not
    # import gymnasium; an unknown name imports them all for the suggestion
    for module in _MODULES:
        if key in TASKS:
            break
        importlib.import_module(f"taskzoo.tasks.{module}")
    return TASKS.get(name)


def names(pattern: str = "*") -> list[str]:
    _load_all()
    return TASKS.names(pattern)
