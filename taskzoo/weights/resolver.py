"""One resolver of a weights spec: a released name, a finished run directory, a local
.safetensors with its card beside it, or an https URL pinned by sha256. `load(weights=)`,
`init=`, a distillation's `teacher=` and captioning's `encoder_init=` all read their spec
through `resolve_spec`; each declares which kinds it takes and how it words a refusal
(`SpecRules`).

    >>> src = resolve_spec("bilstm.sst2", task="sentiment")    # doctest: +SKIP
    >>> src.card.name, src.path.name                            # doctest: +SKIP
    ('bilstm.sst2', 'bilstm.sst2.safetensors')
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskzoo import hub
from taskzoo.errors import CheckpointError, ConfigError, UsageError
from taskzoo.weights.catalog import (
    GROUP,
    SHA_RE,
    WeightCard,
    canonical_task,
    card_path,
    read_card,
    released_cards,
    weights_file,
)
from taskzoo.weights.tensors import read_weights


def _no_weights(spec: str, task: str | None) -> Exception:
    return UsageError(f"weights={spec!r}: no such file, released name or https URL")


def _not_the_card(spec: str, path: Path) -> Exception:
    return CheckpointError(f"{path} does not match its card {card_path(path)}")


@dataclass(frozen=True)
class SpecRules:
    """Which kinds of spec an option takes (a released name and a local file always) and how
    it words what it refuses."""

    option: str = "weights"  # the option's name: weights, init, teacher, encoder_init
    run_dirs: bool = False  # a finished run directory
    urls: bool = False  # an https URL with sha256=
    # (spec, task) -> the error for a spec that names nothing this option takes
    missing: Callable[[str, str | None], Exception] = _no_weights
    # (spec, path) -> the error for a local file its card does not describe
    mismatch: Callable[[str, Path], Exception] = _not_the_card
    option_in_task_error: bool = False  # "init=X: weights ... are for task ..."


WEIGHTS = SpecRules(urls=True)  # taskzoo.load(task, weights=...)


@dataclass(frozen=True)
class WeightsSource:
    """What a weights spec names: a card (released, local or at a URL) or a run directory's
    records, and the tensors file (verified for a card; None when not fetched)."""

    spec: str
    config: dict[str, Any]  # the task config that trained the weights
    data: dict[str, Any]  # the task's data state: vocabulary, labels, normalisation
    path: Path | None
    card: WeightCard | None = None
    run_dir: Path | None = None
    card_file: str = ""  # where a local card lies, for errors about its config or data

    @property
    def task(self) -> str:
        return self.card.task if self.card else str(self.config.get("_task", ""))

    @property
    def name(self) -> str:
        """What errors call these weights: the card's name, else the run's weights file."""
        return self.card.name if self.card else str(self.path)

    @property
    def base(self) -> dict[str, Any] | None:
        """The card's `extra.base`: the pretrained encoder the file holds changes over."""
        return self.card.extra.get("base") if self.card else None

    @property
    def metrics(self) -> dict[str, float]:
        if self.card:
            return self.card.metrics
        from taskzoo.restore import read_json

        return read_json(self.run_dir / "metrics.json")

    def tensors(self) -> dict[str, Any]:
        if self.path is None:
            raise UsageError(f"{self.spec}: resolved without fetching its weights file")
        return read_weights(self.path)

    def restore(self, *, device: str = "auto") -> Any:
        """The task rebuilt with these weights in its model (`taskzoo.restore.Restored`)."""
        from taskzoo.restore import restore

        config = {**self.config, "device": device} if self.card else self.config
        return restore(config, self.data, self.tensors(), source=self.name, task=self.task,
                       device=device, base=self.base, records=self._records())

    def _records(self) -> tuple[str, str]:
        """The files errors name when the config or the data state is not what was saved."""
        if self.run_dir is not None:
            return str(self.run_dir / "config.json"), str(self.run_dir / "data.json")
        where = self.card_file or f"the card of {self.name}"
        return f'{where} ("config")', f'{where} ("data")'


def resolve_spec(spec: str | os.PathLike[str], *, task: str | None, sha256: str | None = None,
                 rules: SpecRules = WEIGHTS, fetch: bool = True) -> WeightsSource:
    """The weights `spec` names, tried in this order: a released name, a run directory
    (`rules.run_dirs`), an https URL (`rules.urls`, pinned by `sha256`), a local file with
    its card beside it. A card must be for `task` (a task, alias or weights name; None:
    any). With `fetch` the file is made local and verified (a local one is hashed only
    when it changed since it last was); without, only the card is read."""
    text = str(spec)
    path = Path(text).expanduser()
    released = released_cards()
    if text in released:
        card = released[text]
        _check_task(card, task, text, rules)
        return WeightsSource(text, card.config, card.data, weights_file(card) if fetch else None,
                             card=card)
    if rules.run_dirs and path.is_dir():
        return _run_source(text, path)
    if rules.urls and re.match(r"^https?://", text):
        card = _url_card(text, sha256)
        _check_task(card, task, text, rules)
        remote = hub.RemoteFile(card.file, card.sha256, card.size, (text,))
        return WeightsSource(text, card.config, card.data,
                             hub.fetch(remote, group=GROUP) if fetch else None, card=card)
    if not path.is_file():
        raise rules.missing(text, task)
    card = read_card(card_path(path))
    _check_task(card, task, text, rules)
    if fetch:
        _check_local(path, card, text, sha256, rules)
    return WeightsSource(text, card.config, card.data, path if fetch else None, card=card,
                         card_file=str(card_path(path)))


def _run_source(spec: str, run_dir: Path) -> WeightsSource:
    from taskzoo.restore import check_run_dir, read_json

    check_run_dir(run_dir)
    return WeightsSource(spec, read_json(run_dir / "config.json"),
                         read_json(run_dir / "data.json"), run_dir / "best.safetensors",
                         run_dir=run_dir)


def _check_local(path: Path, card: WeightCard, spec: str, sha256: str | None,
                 rules: SpecRules) -> None:
    """A local weights file must be the one its card (and the caller, if given) pins.

    The file is hashed only when it changed since it was last verified."""
    if not hub.verified_file(path, card.sha256, card.size):
        raise rules.mismatch(spec, path)
    if sha256 is not None and sha256.lower() != card.sha256:  # the file is the card's
        raise CheckpointError(f"{path}: sha256 differs from the one given")


def _url_card(url: str, sha256: str | None) -> WeightCard:
    if not sha256 or not SHA_RE.match(sha256.lower()):
        raise UsageError("weights=<https URL> needs sha256=<64 hex digits> to verify the file")
    card_url = url.removesuffix(".safetensors") + ".json"
    # The card is not pinned (its hash is not known in advance), so it is read, not cached,
    # and only trusted to describe a file whose sha256 the caller gave.
    card = WeightCard.from_dict(json.loads(hub.read_url(card_url)), source=card_url)
    if card.sha256 != sha256.lower():
        raise CheckpointError(f"{card_url} describes sha256 {card.sha256}, not the {sha256} given")
    return card


def _check_task(card: WeightCard, task: str | None, spec: str, rules: SpecRules) -> None:
    if task is None or task in (card.name, card.task):
        return
    canonical = canonical_task(task)
    if canonical != card.task:
        prefix = f"{rules.option}={spec}: " if rules.option_in_task_error else ""
        raise ConfigError(f"{prefix}weights {card.name} are for task {card.task}, not {canonical}")
