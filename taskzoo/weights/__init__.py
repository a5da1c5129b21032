"""Released weights: cards, lookup, verified loading, export and the cache check.

A released weight is two files: `bilstm.sst2.safetensors` and its card `bilstm.sst2.json`.
The card says what the weights are (task, architecture and its kwargs, the vocabulary and
labels the predictor needs, the recipe, the data and its hashes, the figures measured on
these very weights) and pins the file by sha256 and size. Default weights ship inside the
package (`taskzoo/released/`); others are fetched on demand through the hub (cache, then
TASKZOO_MIRROR's `<mirror>/weights/<file>`, then the canonical URL) and verified.

    >>> clf = taskzoo.load("sentiment")                         # doctest: +SKIP
    >>> clf(["a gripping , beautiful film"])[0]["label"]        # doctest: +SKIP
    'positive'

Weights are read with safetensors only: nothing is ever unpickled.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from taskzoo import hub
from taskzoo.errors import CheckpointError, ConfigError, UnknownNameError, UsageError, did_you_mean

# Base URL of the release assets; TASKZOO_HUB_URL overrides it (a web server, a mirror).
HUB_URL = "https://github.com/taskzoo/taskzoo/releases/download/weights-v1"
RELEASED = Path(__file__).parent.parent / "released"  # cards and the default weights, shipped
GROUP = "weights"  # mirror folder: <mirror>/weights/<file>
DTYPES = ("float16", "float32")
_NAME_RE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


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
        """Validate a card's schema; a bad card is a CheckpointError naming the field."""
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls)
                    if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(d))
        unknown = sorted(set(d) - names)
        if missing or unknown:
            raise CheckpointError(f"{source}: missing fields {missing}, unknown fields {unknown}")
        card = cls(**d)
        problems = []
        if not _NAME_RE.match(card.name):
            problems.append(f"name {card.name!r} is not arch.tag (lower_snake.lower_snake)")
        if not _SHA_RE.match(card.sha256):
            problems.append("sha256 is not 64 lowercase hex digits")
        if not isinstance(card.size, int) or card.size <= 0:
            problems.append(f"size {card.size!r} is not a positive integer")
        if card.dtype not in DTYPES:
            problems.append(f"dtype {card.dtype!r} is not one of {DTYPES}")
        if not card.file.endswith(".safetensors") or "/" in card.file:
            problems.append(f"file {card.file!r} is not a bare *.safetensors name")
        for key in ("arch_kwargs", "config", "data", "metrics", "dataset", "library"):
            if not isinstance(getattr(card, key), dict):
                problems.append(f"{key} is not an object")
        if not all(isinstance(v, (int, float)) for v in card.metrics.values()):
            problems.append("metrics values are not numbers")
        if problems:
            raise CheckpointError(f"{source}: " + "; ".join(problems))
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


def read_card(path: Path) -> WeightCard:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable weights card ({exc})") from None
    return WeightCard.from_dict(data, source=str(path))


@functools.lru_cache(maxsize=1)
def _released() -> dict[str, WeightCard]:
    cards = {}
    for path in sorted(RELEASED.glob("*.json")):
        card = read_card(path)
        cards[card.name] = card
    return cards


def cards() -> list[WeightCard]:
    """Every released weight's card, by name.

    >>> [c.name for c in cards() if c.task == "sentiment"]   # doctest: +SKIP
    ['bilstm.sst2']
    """
    return list(_released().values())


def resolve(name: str) -> WeightCard:
    """A card by weights name (`bilstm.sst2`) or by task name or alias (its default weights)."""
    released = _released()
    if name in released:
        return released[name]
    task = name if any(c.task == name for c in released.values()) else _canonical_task(name, released)
    defaults = [c for c in released.values() if c.task == task and c.default]
    if not defaults:
        others = [c.name for c in released.values() if c.task == task]
        raise UnknownNameError(
            f"Task '{task}' has no default released weights"
            + (f"; released for it: {', '.join(others)}." if others else
               f"; train some with `taskzoo run {task}` and load them with taskzoo.load_run(DIR)."))
    return defaults[0]


def _canonical_task(name: str, released: dict[str, WeightCard]) -> str:
    from taskzoo.tasks import TASKS
    from taskzoo.tasks import names as task_names

    task_names()  # registers every task, so aliases resolve
    try:
        return TASKS.canonical(name)
    except UnknownNameError:
        valid = sorted([*released, *task_names()])
        raise UnknownNameError(f"Unknown weights or task '{name}'.{did_you_mean(name, valid)} "
                               f"Released weights: {', '.join(sorted(released)) or 'none'}.") from None


def local_state(card: WeightCard) -> str:
    """'packaged', 'cached' or 'remote': where load() would find the file now."""
    if (RELEASED / card.file).is_file():
        return "packaged"
    path = hub.cached_path(card.remote())
    # hashes only a cached file that changed since it was verified (or never was)
    return "cached" if hub.verified_file(path, card.sha256, card.size) else "remote"


def weights_file(card: WeightCard, *, progress: bool | None = None) -> Path:
    """A verified local copy of the card's file: the packaged one, else through the hub."""
    packaged = RELEASED / card.file
    if packaged.is_file():
        # Hashed once, then again only if the file changes: not on every load().
        if not hub.verified_file(packaged, card.sha256, card.size):
            raise CheckpointError(f"{packaged} does not match its card (sha256 {card.sha256[:12]}...): "
                                  "the installation is damaged; reinstall taskzoo")
        return packaged
    return hub.fetch(card.remote(), group=GROUP, progress=progress)


def read_weights(path: Path) -> dict[str, Any]:
    """Tensors of a safetensors file. Anything else (a pickle, a torch.save zip) is refused
    before any byte of it is interpreted: taskzoo never unpickles weights."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(9)
    # safetensors: an 8-byte little-endian header length, then the JSON header (that length
    # may well start with byte 0x80, a pickle's mark: the file's shape decides first)
    header_len = int.from_bytes(head[:8], "little") if len(head) >= 9 else 0
    if head[8:9] != b"{" or not 0 < header_len <= path.stat().st_size:
        kind = ("a pickle" if head[:1] == b"\x80" else "a zip archive (torch.save?)"
                if head[:2] == b"PK" else "something else")
        raise CheckpointError(f"{path} is not a safetensors file (it looks like {kind}); "
                              "taskzoo only reads safetensors and never unpickles weights")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: damaged safetensors file ({exc})") from None


def build_predictor(card: WeightCard, tensors: dict[str, Any], *, device: str = "auto") -> Any:
    """The task's predictor with `tensors` loaded, from the card alone (no dataset needed)."""
    from taskzoo import config as cfgmod
    from taskzoo.api import resolve_task
    from taskzoo.runtime import Runtime, preserved_rng

    task_cls = resolve_task(card.task)
    cfg = cfgmod.from_dict(task_cls.Config, {**card.config, "device": device})
    runtime = Runtime.create(device=device, precision="32",
                             channels_last=getattr(cfg, "channels_last", False))
    task_obj = task_cls(cfg, runtime)
    data = task_obj.data_from_state(card.data)
    with preserved_rng():  # initialising layers draws random numbers: not the caller's
        model = task_obj.build_model(data)
    load_into(model, tensors, source=card.name, base=card.extra.get("base"))
    return task_obj.predictor(runtime.place(model).eval(), data)


def load_into(model: Any, tensors: dict[str, Any], *, source: str,
              reinit_mismatched: bool = False,
              base: dict[str, Any] | None = None) -> dict[str, tuple[list[int], list[int]]]:
    """Copy `tensors` into `model`, cast to each parameter's dtype (fp16 files into fp32 nets).

    Names missing on either side mean another architecture: a CheckpointError. A tensor of
    another shape (a head for another number of classes) is an error too, unless
    `reinit_mismatched`: then the model keeps its fresh initialisation there, and the
    returned {name: (shape in the file, shape in the model)} says which ones.

    `base` is a card's `extra.base`: the file holds only what fine-tuning changed, the rest
    is the pretrained encoder the model was built with (`model.pretrained_base`, filled by
    the task), which must be the very one the weights were fine-tuned from."""
    own = model.state_dict()
    filled = _base_names(model, base, source)
    if base and base.get("delta_rank"):  # changes stored as low-rank factors over the base
        tensors = dict(tensors)
        for key in [k for k in tensors if k.endswith(".delta_u")]:
            name = key.removesuffix(".delta_u")
            v = tensors.pop(f"{name}.delta_v", None)
            if name not in own or v is None:
                raise CheckpointError(f"{source}: low-rank factor {key} has no match in this "
                                      "model or no .delta_v beside it")
            tensors[name] = own[name].float() + tensors.pop(key).float() @ v.float()
    missing = sorted(set(own) - set(tensors) - filled)
    unexpected = sorted(set(tensors) - set(own))
    shapes = {k: (list(tensors[k].shape), list(own[k].shape)) for k in own
              if k in tensors and tuple(own[k].shape) != tuple(tensors[k].shape)}
    if missing or unexpected or (shapes and not reinit_mismatched):
        raise CheckpointError(
            f"{source} does not fit this model: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}, shape mismatch {list(shapes)[:5]}")
    model.load_state_dict({k: own[k] if k in shapes or k not in tensors
                           else tensors[k].to(own[k].dtype) for k in own})
    return shapes


def _base_names(model: Any, base: dict[str, Any] | None, source: str) -> set[str]:
    """The state-dict names the model's pretrained base filled, when the weights say they
    were fine-tuned from that same base (by its weights' sha256); else none."""
    if not base:
        return set()
    have = getattr(model, "pretrained_base", None)
    if not have:
        raise CheckpointError(f"{source} was fine-tuned from {base.get('repo')} and holds only "
                              "what changed, but this model was built without that encoder")
    if have.get("sha256") != base.get("sha256"):
        raise CheckpointError(
            f"{source} was fine-tuned from {base.get('repo')}@{str(base.get('revision'))[:12]} "
            f"(weights sha256 {str(base.get('sha256'))[:12]}...), but the encoder here is "
            f"{have.get('repo')}@{str(have.get('revision'))[:12]} (sha256 "
            f"{str(have.get('sha256'))[:12]}...)")
    return {have["prefix"] + n for n in have["names"]}


def load(name: str, *, weights: str | os.PathLike[str] | None = None, sha256: str | None = None,
         device: str = "auto", **options: Any) -> Any:
    """A ready predictor from released weights, a local file or an https URL.

    `name` is a task (its default weights) or a weights name. `weights` overrides the file:
    a released name, a local `.safetensors` (its card `.json` beside it) or an https URL
    with `sha256=` (the card is read from the same URL with `.json`).

    >>> clf = taskzoo.load("sentiment")                                     # doctest: +SKIP
    >>> clf = taskzoo.load("sentiment", weights="exports/bilstm.sst2.safetensors")  # doctest: +SKIP
    >>> det = taskzoo.load("detection", conf=0.5, iou=0.6)  # call options' defaults  # doctest: +SKIP
    """
    if weights is None:
        card = resolve(name)
        return build_predictor(card, read_weights(weights_file(card)),
                               device=device).configure(**options)
    spec = str(weights)
    if _NAME_RE.match(spec) and spec in _released():
        card = _released()[spec]
        path = weights_file(card)
    elif re.match(r"^https?://", spec):
        card, path = _fetch_url(spec, sha256)
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise UsageError(f"weights={spec!r}: no such file, released name or https URL")
        card = read_card(_card_path(path))
        _check_local(path, card, sha256)
    _check_task(name, card)
    return build_predictor(card, read_weights(path), device=device).configure(**options)


def _check_local(path: Path, card: WeightCard, sha256: str | None = None) -> None:
    """A local weights file must be the one its card (and the caller, if given) pins.

    The file is hashed only when it changed since it was last verified."""
    if not hub.verified_file(path, card.sha256, card.size):
        raise CheckpointError(f"{path} does not match its card {_card_path(path)}")
    if sha256 is not None and sha256.lower() != card.sha256:  # the file is the card's
        raise CheckpointError(f"{path}: sha256 differs from the one given")


def _card_path(weights_path: Path) -> Path:
    return weights_path.with_name(weights_path.name.removesuffix(".safetensors") + ".json")


def _fetch_url(url: str, sha256: str | None) -> tuple[WeightCard, Path]:
    if not sha256 or not _SHA_RE.match(sha256.lower()):
        raise UsageError("weights=<https URL> needs sha256=<64 hex digits> to verify the file")
    card_url = url.removesuffix(".safetensors") + ".json"
    # The card is not pinned (its hash is not known in advance), so it is read, not cached,
    # and only trusted to describe a file whose sha256 the caller gave.
    card = WeightCard.from_dict(json.loads(hub.read_url(card_url)), source=card_url)
    if card.sha256 != sha256.lower():
        raise CheckpointError(f"{card_url} describes sha256 {card.sha256}, not the {sha256} given")
    remote = hub.RemoteFile(card.file, card.sha256, card.size, (url,))
    return card, hub.fetch(remote, group=GROUP)


def _check_task(name: str, card: WeightCard) -> None:
    if name in (card.name, card.task):
        return
    task = _canonical_task(name, _released())
    if task != card.task:
        raise ConfigError(f"weights {card.name} are for task {card.task}, not {task}")


# Config fields a fine-tuning run takes from the card it starts from (besides the builder's
# kwargs): they decide the network's shape or the meaning of its outputs.
_INIT_FIELDS = ("model", "tagset", "algo", "env", "hidden", "activation")


def init_card(spec: str, task: str) -> WeightCard:
    """The card of `init=`: a released name, or a local .safetensors with its card beside it."""
    if spec in _released():
        card = _released()[spec]
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            valid = sorted(c.name for c in _released().values() if c.task == task)
            raise UnknownNameError(f"init={spec!r}: not a released weights name or a file."
                                   f"{did_you_mean(spec, valid)} Released for {task}: "
                                   f"{', '.join(valid) or 'none'}.")
        card = read_card(_card_path(path))
    if card.task != task:
        raise ConfigError(f"init={spec}: weights {card.name} are for task {card.task}, not {task}")
    return card


def init_overrides(task_cls: Any, spec: str) -> dict[str, Any]:
    """What `init=` sets before the user's overrides: the card's architecture."""
    from taskzoo.config import fields_of

    card = init_card(spec, task_cls.name)
    valid = fields_of(task_cls.Config)
    keys = {*card.arch_kwargs, *_INIT_FIELDS} & set(card.config) & set(valid)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in card.config.items() if k in keys}


def init_tensors(spec: str, task: str) -> tuple[WeightCard, dict[str, Any]]:
    """Card and verified tensors of `init=`."""
    card = init_card(spec, task)
    if spec in _released():
        return card, read_weights(weights_file(card))
    path = Path(spec).expanduser()
    _check_local(path, card)
    return card, read_weights(path)
