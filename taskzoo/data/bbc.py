"""BBC News Summary: 2,225 BBC articles (five topics) with extractive reference summaries,
as a pinned folder (the packaged manifest of its 4,450 files), read and split.

The files are in the Kaggle layout, `BBC News Summary/News Articles/<topic>/NNN.txt` with
`BBC News Summary/Summaries/<topic>/NNN.txt`. Oddities handled here (see the shared data
README): `sport/199.txt` holds one Latin-1 byte (a pound sign) and is decoded as Latin-1;
98 articles are byte-identical copies of others and are dropped (the first in path order
is kept), or the test set would hold training articles. No official split exists:
`split_articles` draws one stratified by topic, seeded.

    >>> articles = load_bbc()                                  # doctest: +SKIP
    >>> len(articles), len(split_articles(articles)["test"])   # doctest: +SKIP
    (2127, 213)
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from taskzoo import hub
from taskzoo.errors import DataError, DownloadError

GROUP = "BBC-News-Summary"
_ROOT = "BBC News Summary"
_MANIFEST = "bbc_news_summary.txt.gz"
KAGGLE = "https://www.kaggle.com/datasets/pariza/bbc-news-summary"
TOPICS = {"business": 510, "entertainment": 386, "politics": 417, "sport": 511, "tech": 401}
DUPLICATES = 98  # byte-identical articles dropped


@dataclass(frozen=True)
class Article:
    topic: str  # business, entertainment, politics, sport or tech
    name: str  # "001.txt"
    text: str  # the article: title line, blank line, paragraphs
    summary: str  # the reference summary: sentences of the article, joined without spaces


@functools.lru_cache(maxsize=1)
def bbc_folder() -> hub.RemoteFolder:
    """The pinned folder: the packaged manifest, mirrors and the cache only (Kaggle needs a
    login, so there is no URL to fetch it from)."""
    ref = importlib.resources.files("taskzoo.data") / "manifests" / _MANIFEST
    with importlib.resources.as_file(ref) as path:
        return hub.RemoteFolder(GROUP, hub.read_manifest(path))


def bbc_root() -> Path:
    """The verified folder (copied from a mirror into the cache on first use)."""
    try:
        return hub.fetch_folder(bbc_folder(), group=GROUP)
    except DownloadError as e:
        raise type(e)(f"{e}\nBBC News Summary comes from Kaggle ({KAGGLE}, a login is needed): "
                      f"unzip it so that TASKZOO_MIRROR/{GROUP}/{_ROOT}/News Articles/ and "
                      f".../Summaries/ exist, and set TASKZOO_MIRROR=<dir>.") from None


def _read(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # sport/199.txt: one Latin-1 byte
        return raw.decode("latin-1")


def load_bbc() -> list[Article]:
    """The 2,127 distinct articles with their summaries, in (topic, name) order."""
    root = bbc_root() / _ROOT
    sha = {rel: digest for rel, digest, _ in bbc_folder().manifest}  # verified by fetch_folder
    seen: set[str] = set()
    out: list[Article] = []
    counts = dict.fromkeys(TOPICS, 0)
    for topic in TOPICS:
        for path in sorted((root / "News Articles" / topic).glob("*.txt")):
            counts[topic] += 1
            digest = sha[f"{_ROOT}/News Articles/{topic}/{path.name}"]
            if digest in seen:
                continue
            seen.add(digest)
            summary = root / "Summaries" / topic / path.name
            out.append(Article(topic, path.name, _read(path).strip(), _read(summary).strip()))
    if counts != TOPICS or len(out) != sum(TOPICS.values()) - DUPLICATES:
        raise DataError(f"BBC News Summary: expected {TOPICS} articles and {DUPLICATES} "
                        f"duplicates, read {counts} and {sum(counts.values()) - len(out)}")
    return out


def split_articles(articles: list[Article], *, seed: int = 0, dev: float = 0.1,
                   test: float = 0.1) -> dict[str, list[Article]]:
    """Train / dev / test, stratified by topic (each topic split in the same proportions),
    drawn by `seed`; articles keep their order within a split."""
    from sklearn.model_selection import train_test_split

    idx = list(range(len(articles)))
    topics = [a.topic for a in articles]
    rest, test_idx = train_test_split(idx, test_size=test, stratify=topics, random_state=seed)
    train_idx, dev_idx = train_test_split(rest, test_size=dev / (1 - test),
                                          stratify=[topics[i] for i in rest], random_state=seed)
    return {name: [articles[i] for i in sorted(part)]
            for name, part in (("train", train_idx), ("dev", dev_idx), ("test", test_idx))}
