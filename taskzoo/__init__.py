"""taskzoo: classic deep-learning applications behind one API.

    >>> import taskzoo
    >>> result = taskzoo.run("sentiment", dataset="tiny")   # doctest: +SKIP
    >>> result.metrics["dev/accuracy"]                       # doctest: +SKIP

Importing taskzoo is light: torch and everything else load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskzoo.errors import (  # noqa: F401  (public)
    CheckpointError,
    ConfigError,
    DataError,
    DivergenceError,
    DownloadError,
    InputError,
    IntegrityError,
    OfflineError,
    TaskzooError,
    UnknownNameError,
    UsageError,
)

__version__ = "0.1.0"

_LAZY = {"run": "taskzoo.api", "load_run": "taskzoo.api", "list_tasks": "taskzoo.api",
         "list_models": "taskzoo.api", "RunResult": "taskzoo.api", "load": "taskzoo.weights",
         "chatbot": "taskzoo.apps.chat"}

if TYPE_CHECKING:
    from taskzoo.api import RunResult, list_models, list_tasks, load_run, run  # noqa: F401
    from taskzoo.apps.chat import chatbot  # noqa: F401
    from taskzoo.weights import load  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'taskzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["run", "load", "load_run", "list_tasks", "list_models", "RunResult", "__version__"]
