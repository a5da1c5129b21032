"""The tasks: one package per task (`taskzoo/tasks/<name>/`), whose `task` module registers
one Task class in TASKS. A new folder with a `task.py` is a new task: nothing else lists them.
`common/` holds what several tasks share and registers nothing."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from taskzoo.registry import Registry

TASKS: Registry[Any] = Registry("task")

SHARED = ("common",)  # packages that hold shared code, not a task


def packages() -> list[str]:
    """The task packages, found on disk (each imported only when its task is asked for, so
    `import taskzoo` stays light)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if m.ispkg and m.name not in SHARED)


def _load(package: str) -> None:
    importlib.import_module(f"{__name__}.{package}.task")


def get_task(name: str) -> Any:
    """The Task class for a name or alias; UnknownNameError with a suggestion otherwise."""
    key = name.strip().lower().replace("-", "_")
    # a task's own package first, then the others only until an alias registers: loading a
    # sentiment predictor should not import gymnasium; an unknown name imports them all for
    # the suggestion
    found = packages()
    for package in ([key] if key in found else []) + found:
        if key in TASKS:
            break
        _load(package)
    return TASKS.get(name)


def names(pattern: str = "*") -> list[str]:
    for package in packages():
        _load(package)
    return TASKS.names(pattern)
