"""SQuAD v1.1: the development set (the only part on the mirror), pinned and split by article.

The mirror holds `SQuAD-v1.1/dev-v1.1.json.zip`, pinned by its sha256; its one member is
checked against the published sha256 of `dev-v1.1.json` before it is parsed. Without the zip
(no mirror, not cached) the canonical `dev-v1.1.json` is fetched instead, pinned by that same
published hash.

Only the 48 dev articles exist here, so a task trains, tunes and tests on disjoint *articles*
of it (`split_articles`): its figures are on held-out SQuAD dev articles, not comparable with
the SQuAD leaderboard's.

    >>> rows = load_squad()                                  # doctest: +SKIP
    >>> splits = split_articles(rows, seed=0)                # doctest: +SKIP
    >>> {k: len({r.title for r in v}) for k, v in splits.items()}  # doctest: +SKIP
    {'train': 38, 'dev': 5, 'test': 5}
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import zipfile
from dataclasses import dataclass

from taskzoo import hub
from taskzoo.errors import DataError, DownloadError, IntegrityError

GROUP = "SQuAD-v1.1"
_MEMBER = "dev-v1.1.json"
ZIP = hub.RemoteFile(
    "dev-v1.1.json.zip", "6cf38c56fc7341bab8a5132f205dd7198148a6be9073ccd8ef07d55ca73b09b7",
    1_051_741,
    ("https://raw.githubusercontent.com/pulakdas1999/QnA_using_BERT/"
     "48925669ea5ebb270348b817d7463b809a381bb9/dev-v1.1.json.zip",))
JSON = hub.RemoteFile(  # the published file, also the zip's member
    _MEMBER, "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9", 4_854_279,
    ("https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v1.1.json",))
COUNTS = {"articles": 48, "paragraphs": 2_067, "questions": 10_570}
SPLIT = {"train": 38, "dev": 5, "test": 5}  # articles per split


@dataclass(frozen=True)
class SquadExample:
    id: str  # SQuAD's question id
    title: str  # the article
    context: str  # the paragraph
    question: str
    answers: tuple[tuple[str, int], ...]  # (text, character start in context), 1 or more


def _json_bytes() -> bytes:
    try:
        path = hub.fetch(ZIP, group=GROUP)
    except DownloadError as zip_error:
        try:
            return hub.fetch(JSON, group=GROUP).read_bytes()
        except DownloadError:
            raise zip_error from None
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(_MEMBER)
        if info.file_size != JSON.size:  # checked before decompressing anything
            raise IntegrityError(f"{path}: member {_MEMBER} is {info.file_size} bytes, "
                                 f"expected {JSON.size}")
        data = zf.read(_MEMBER)
    if hashlib.sha256(data).hexdigest() != JSON.sha256:
        raise IntegrityError(f"{path}: member {_MEMBER} does not match its published sha256 "
                             f"{JSON.sha256[:12]}...")
    return data


def load_squad() -> list[SquadExample]:
    """Every question of SQuAD v1.1 dev, verified, in file order."""
    raw = json.load(io.BytesIO(_json_bytes()))
    rows = []
    for article in raw["data"]:
        for para in article["paragraphs"]:
            ctx = para["context"]
            for qa in para["qas"]:
                answers = tuple((a["text"], int(a["answer_start"])) for a in qa["answers"])
                for text, start in answers:
                    if ctx[start:start + len(text)] != text:
                        raise DataError(f"SQuAD {qa['id']}: answer_start {start} does not "
                                        f"slice back to {text!r}")
                rows.append(SquadExample(qa["id"], article["title"], ctx, qa["question"],
                                         answers))
    found = {"articles": len(raw["data"]),
             "paragraphs": sum(len(a["paragraphs"]) for a in raw["data"]),
             "questions": len(rows)}
    if found != COUNTS:
        raise DataError(f"SQuAD v1.1 dev: expected {COUNTS}, read {found}")
    return rows


def split_articles(rows: list[SquadExample], *, seed: int = 0) -> dict[str, list[SquadExample]]:
    """Disjoint article splits (38 / 5 / 5 of the 48), drawn by `seed`; questions keep their
    file order within each split."""
    titles = sorted({r.title for r in rows})
    random.Random(seed).shuffle(titles)
    cut = {"train": titles[:SPLIT["train"]],
           "dev": titles[SPLIT["train"]:SPLIT["train"] + SPLIT["dev"]],
           "test": titles[SPLIT["train"] + SPLIT["dev"]:]}
    where = {t: split for split, ts in cut.items() for t in ts}
    out: dict[str, list[SquadExample]] = {k: [] for k in cut}
    for r in rows:
        out[where[r.title]].append(r)
    return out
