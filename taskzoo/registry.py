"""One generic Registry for tasks, models (and later weights): names, aliases, "did you mean"."""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from taskzoo.errors import UnknownNameError, UsageError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps lower_snake names (and aliases) to objects.

    >>> models = Registry("model")
    >>> @models.register("mlp", aliases=("perceptron",))
    ... def mlp(*, width: int = 8): ...
    >>> models.get("perceptron") is mlp
    True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._origin: dict[str, str] = {}

    def register(self, name: str, *, aliases: Sequence[str] = ()) -> Callable[[T], T]:
        """Decorator registering `obj` under `name` and `aliases`."""

        def deco(obj: T) -> T:
            origin = _origin_of(obj)
            for key in (name, *aliases):
                if not key or key != key.lower() or " " in key:
                    raise UsageError(f"{self.kind} name {key!r} must be lower_snake case")
                owner = self._aliases.get(key, key if key in self._items else None)
                if owner is not None:
                    previous = self._origin[owner]
                    # Re-importing the same module (importlib.reload, notebooks) re-registers
                    # silently; two modules claiming one name is a packaging bug worth failing on.
                    if previous != origin:
                        raise UsageError(
                            f"{self.kind} {key!r} is registered twice: by {previous} and by {origin}"
                        )
            self._items[name] = obj
            self._origin[name] = origin
            for alias in aliases:
                self._aliases[alias] = name
            return obj

        return deco

    def canonical(self, name: str) -> str:
        """The registered name for `name` or one of its aliases; UnknownNameError otherwise."""
        key = name.strip().lower().replace("-", "_")
        if key in self._items:
            return key
        if key in self._aliases:
            return self._aliases[key]
        valid = sorted(self._items)
        hint = did_you_mean(key, [*valid, *self._aliases])
        if hint and key not in self._items:
            # Point at the canonical name even when the closest match was an alias.
            target = hint.split("'")[1]
            hint = f" Did you mean '{self._aliases.get(target, target)}'?"
        raise UnknownNameError(
            f"Unknown {self.kind} '{name}'.{hint} Valid {self.kind}s: {', '.join(valid)}."
        )

    def get(self, name: str) -> T:
        """The object registered under `name` (or an alias)."""
        return self._items[self.canonical(name)]

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching a glob pattern (aliases excluded)."""
        return sorted(n for n in self._items if fnmatch.fnmatchcase(n, pattern))

    def aliases_of(self, name: str) -> list[str]:
        canonical = self.canonical(name)
        return sorted(a for a, n in self._aliases.items() if n == canonical)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._items or name in self._aliases)

    def __len__(self) -> int:
        return len(self._items)


def _origin_of(obj: object) -> str:
    module = inspect.getmodule(obj)
    return module.__name__ if module is not None else repr(obj)
