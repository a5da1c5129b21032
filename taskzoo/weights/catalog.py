"""The released weights' cards: their schema, the list shipped in the package, lookup by
weights or task name, and a verified local copy of each card's file."""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from taskzoo import hub
from taskzoo.errors import CheckpointError, RunFileError, UnknownNameError, did_you_mean

# Base URL of the release assets; TASKZOO_HUB_URL overrides it (a web server, a mirror).
HUB_URL = "https://github.com/taskzoo/taskzoo/releases/download/weights-v1"
RELEASED = Path(__file__).parent.parent / "released"  # cards and the default weights, shipped
GROUP = "weights"  # mirror folder: <mirror>/weights/<file>
DTYPES = ("float16", "float32")
NAME_RE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def hub_url() -> str:
    """Base URL of released weights: $TASKZOO_HUB_URL, else HUB_URL.

    >>> hub_url().startswith("http")
    True
    """
    return (os.environ.get("TASKZOO_HUB_URL") or HUB_URL).rstrip("/")


@dataclass(frozen=True)
class WeightCard:
    """What one released weights file is, and how to check and rebuild it."""

    name: str  # arch.tag, e.g. "bilstm.sst2"
    task: str  # registered task name
    arch: str  # model registry name
    arch_kwargs: dict[str, Any]  # the builder's keyword arguments, exactly as built
    config: dict[str, Any]  # the task config of the run that trained it (the recipe)
    data: dict[str, Any]  # the task's data_state: vocabulary, labels, spaces
    file: str  # weights file name
    sha256: str  # lowercase hex sha256 of the file
    size: int  # bytes
    dtype: str  # float16 or float32: how floating tensors are stored
    metrics: dict[str, float]  # measured by the project on these weights
    dataset: dict[str, Any]  # name, files (name, sha256, size) and license of the data
    recipe: str  # the command that trained the run
    library: dict[str, str]  # taskzoo and torch versions that exported it
    default: bool = False  # the weights taskzoo.load(task) uses
    url: str = ""  # canonical URL of the file; "" = hub_url()/file
    notes: str = ""  # anything a user should know (measurement, caveats)
    extra: dict[str, Any] = field(default_factory=dict)  # room for later fields

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "card") -> WeightCard:
        """Validate a card's schema; a bad card is a RunFileError (a CheckpointError)
        naming `source` and the field."""
        if not isinstance(d, dict):
            raise RunFileError(f"{source}: holds a JSON {type(d).__name__}, not a weights card "
                               "(an object with name, task, config, data, ...)")
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls)
                    if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(d))
        unknown = sorted(set(d) - names)
        if missing or unknown:
            raise RunFileError(f"{source}: missing fields {missing}, unknown fields {unknown}")
        # each field's JSON type first: the checks below and every reader take them as given
        wrong = [f"{f.name} is not {_KINDS[f.type][1]}" for f in fields(cls)
                 if f.name in d and not _of_kind(d[f.name], _KINDS[f.type][0])]
        if wrong:
            raise RunFileError(f"{source}: " + "; ".join(wrong))
        card = cls(**d)
        problems = []
        if not NAME_RE.match(card.name):
            problems.append(f"name {card.name!r} is not arch.tag (lower_snake.lower_snake)")
        if not SHA_RE.match(card.sha256):
            problems.append("sha256 is not 64 lowercase hex digits")
        if not isinstance(card.size, int) or card.size <= 0:
            problems.append(f"size {card.size!r} is not a positive integer")
        if card.dtype not in DTYPES:
            problems.append(f"dtype {card.dtype!r} is not one of {DTYPES}")
        if not card.file.endswith(".safetensors") or "/" in card.file:
            problems.append(f"file {card.file!r} is not a bare *.safetensors name")
        if not all(isinstance(v, (int, float)) for v in card.metrics.values()):
            problems.append("metrics values are not numbers")
        if problems:
            raise RunFileError(f"{source}: " + "; ".join(problems))
        return card

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def remote(self) -> hub.RemoteFile:
        """The pinned file, with its canonical URL."""
        return hub.RemoteFile(self.file, self.sha256, self.size,
                              (self.url or f"{hub_url()}/{self.file}",))

    @property
    def headline(self) -> tuple[str, float] | None:
        """The task's main figure (the card's `extra.headline`, else the first one), for tables."""
        key = self.extra.get("headline")
        if key in self.metrics:
            return key, float(self.metrics[key])
        for key, value in self.metrics.items():
            if not key.startswith(("train/", "total/")):
                return key, float(value)
        return None


# A card field's annotation -> the JSON type its value must have, and how errors call it.
_KINDS = {"str": (str, "a string"), "int": (int, "a whole number"), "bool": (bool, "true or false"),
          "dict[str, Any]": (dict, "an object"), "dict[str, float]": (dict, "an object"),
          "dict[str, str]": (dict, "an object")}


def _of_kind(value: Any, kind: type) -> bool:
    # JSON true/false are Python ints too: not a size
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def read_card(path: Path) -> WeightCard:
    """The card at `path`, validated; RunFileError when it is unreadable or malformed."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFileError(f"{path} is missing: a weights file needs its card (NAME.json, as "
                           "`taskzoo export` writes it) beside it") from None
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not JSON
        why = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise RunFileError(f"{path}: not a readable weights card ({why}); restore it, or "
                           "export the weights again with `taskzoo export`") from None
    return WeightCard.from_dict(data, source=str(path))


def card_path(weights_path: Path) -> Path:
    """Where a local weights file's card lies: beside it, `.safetensors` -> `.json`."""
    return weights_path.with_name(weights_path.name.removesuffix(".safetensors") + ".json")


@functools.lru_cache(maxsize=1)
def released_cards() -> dict[str, WeightCard]:
    """The cards shipped in the package (RELEASED), by weights name; read once."""
    found = {}
    for path in sorted(RELEASED.glob("*.json")):
        card = read_card(path)
        found[card.name] = card
    return found


def cards() -> list[WeightCard]:
    """Every released weight's card, by name.

    >>> [c.name for c in cards() if c.task == "sentiment"]   # doctest: +SKIP
    ['bilstm.sst2']
    """
    return list(released_cards().values())


def resolve(name: str) -> WeightCard:
    """A card by weights name (`bilstm.sst2`) or by task name or alias (its default weights)."""
    released = released_cards()
    if name in released:
        return released[name]
    task = name if any(c.task == name for c in released.values()) else canonical_task(name)
    defaults = [c for c in released.values() if c.task == task and c.default]
    if not defaults:
        others = [c.name for c in released.values() if c.task == task]
        raise UnknownNameError(
            f"Task '{task}' has no default released weights"
            + (f"; released for it: {', '.join(others)}." if others else
               f"; train some with `taskzoo run {task}` and load them with taskzoo.load_run(DIR)."))
    return defaults[0]


def canonical_task(name: str) -> str:
    """The registered name of task `name` (or an alias); an unknown one is an
    UnknownNameError that lists the released weights too."""
    from taskzoo.api import resolve_task

    try:
        return resolve_task(name).name
    except UnknownNameError:
        raise unknown_name(name) from None


def unknown_name(name: str) -> UnknownNameError:
    """The error for a name that is neither released weights nor a task, with the closest."""
    from taskzoo.api import list_tasks

    released = released_cards()
    valid = sorted([*released, *list_tasks()])
    return UnknownNameError(f"Unknown weights or task '{name}'.{did_you_mean(name, valid)} "
                            f"Released weights: {', '.join(sorted(released)) or 'none'}.")


def from_package(card: WeightCard) -> bool:
    """Whether the card's file is made from a pip package's (`extra.source.package`), not
    downloaded: third-party weights taskzoo does not redistribute."""
    source = card.extra.get("source")
    return isinstance(source, dict) and "package" in source


def local_state(card: WeightCard) -> str:
    """'packaged', 'cached', 'pip package' (convertible from the installed package),
    'not installed' (a package card without its package) or 'remote': where load() would
    find the file now."""
    if (RELEASED / card.file).is_file():
        return "packaged"
    path = hub.cached_path(card.remote())
    # hashes only a cached file that changed since it was verified (or never was)
    if hub.verified_file(path, card.sha256, card.size):
        return "cached"
    if from_package(card):
        from taskzoo.weights.thirdparty import package_installed

        return "pip package" if package_installed(card) else "not installed"
    return "remote"


def weights_file(card: WeightCard, *, progress: bool | None = None) -> Path:
    """A verified local copy of the card's file: the packaged one, else through the hub
    (a pip package's third-party weights: the cache, a mirror, else the package)."""
    packaged = RELEASED / card.file
    if packaged.is_file():
        # Hashed once, then again only if the file changes: not on every load().
        if not hub.verified_file(packaged, card.sha256, card.size):
            raise CheckpointError(f"{packaged} does not match its card (sha256 {card.sha256[:12]}...): "
                                  "the installation is damaged; reinstall taskzoo")
        return packaged
    if from_package(card):  # the cache or a mirror, else converted from the pip package
        from taskzoo.weights.thirdparty import package_weights

        return package_weights(card, progress=progress)
    return hub.fetch(card.remote(), group=GROUP, progress=progress)
