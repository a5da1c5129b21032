"""The tasks: one package per task, whose `task` module registers one Task class in TASKS."""

from __future__ import annotations

import importlib
from typing import Any

from taskzoo.registry import Registry

TASKS: Registry[Any] = Registry("task")

# Every task package; its `task` module registers the task, imported on first lookup so
# `import taskzoo` stays light.
_PACKAGES = ("sentiment", "pos", "cartpole", "acrobot", "lunarlander", "frozenlake", "taxi",
             "image_classification", "autoencoder", "detection", "captioning", "qa",
             "answer_selection", "summarization")


def _load_all() -> None:
    for package in _PACKAGES:
        importlib.import_module(f"taskzoo.tasks.{package}.task")


def get_task(name: str) -> Any:
    """The Task class for a name or alias; UnknownNameError with a suggestion otherwise."""
    key = name.strip().lower().replace("-", "_")
    # import modules only until the name registers: loading a sentiment predictor should not
    # import gymnasium; an unknown name imports them all for the suggestion
    for package in _PACKAGES:
        if key in TASKS:
            break
        importlib.import_module(f"taskzoo.tasks.{package}.task")
    return TASKS.get(name)


def names(pattern: str = "*") -> list[str]:
    _load_all()
    return TASKS.names(pattern)
