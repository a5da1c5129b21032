"""Universal Dependencies English-EWT r2.16: pinned files and a CoNLL-U reader.

The canonical source is the raw file at the r2.16 tag's commit of the treebank's GitHub
repository; each file is pinned by the sha256 of its bytes (see ../shared/data/README.md).
Only syntactic words are kept: multiword-token lines ("2-3 don't") and empty nodes ("8.1")
are skipped, so the words are the gold tokenisation that UPOS tags are defined on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import conllu

from taskzoo import hub

GROUP = "UD_English-EWT"
COMMIT = "4c89b5833a70aa5ed3a00bad2f23f57992cc7df8"  # tag r2.16, 2025-05-09
_RAW = f"https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/{COMMIT}/"

FILES = {
    "train": hub.RemoteFile(
        name="en_ewt-ud-train.conllu",
        sha256="3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b",
        size=14_203_025, urls=(_RAW + "en_ewt-ud-train.conllu",),
    ),
    "dev": hub.RemoteFile(
        name="en_ewt-ud-dev.conllu",
        sha256="531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6",
        size=1_805_545, urls=(_RAW + "en_ewt-ud-dev.conllu",),
    ),
    "test": hub.RemoteFile(
        name="en_ewt-ud-test.conllu",
        sha256="e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd",
        size=1_804_515, urls=(_RAW + "en_ewt-ud-test.conllu",),
    ),
}
COUNTS = {"train": 12_544, "dev": 2_001, "test": 2_077}  # sentences, from the treebank's stats.xml
WORDS = {"train": 204_577, "dev": 25_147, "test": 25_094}  # syntactic words

UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
        "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")  # the 17 universal tags

# Only what tagging needs is split into fields; parsing FEATS/DEPS/MISC would double read time.
_FIELDS = ("id", "form", "lemma", "upos", "xpos")


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence: words with their UPOS and XPOS tags (equal lengths)."""

    words: tuple[str, ...]
    upos: tuple[str, ...]
    xpos: tuple[str, ...]


def read_conllu(path: str | Path) -> list[TaggedSentence]:
    """Every sentence of a CoNLL-U file, syntactic words only.

    >>> read_conllu("en_ewt-ud-dev.conllu")[0].words[:4]   # doctest: +SKIP
    ('From', 'the', 'AP', 'comes')
    """
    out: list[TaggedSentence] = []
    with open(path, encoding="utf-8") as fh:
        for sent in conllu.parse_incr(fh, fields=_FIELDS):
            words = [t for t in sent if isinstance(t["id"], int)]  # tuples are MWT ranges / empty nodes
            out.append(TaggedSentence(
                words=tuple(t["form"] for t in words),
                upos=tuple(t["upos"] for t in words),
                xpos=tuple(t["xpos"] or "_" for t in words),
            ))
    return out


def load_ewt(split: str) -> list[TaggedSentence]:
    """Download (or find in cache/mirror), verify and read one split: train, dev or test."""
    sents = read_conllu(hub.fetch(FILES[split], group=GROUP))
    words = sum(len(s.words) for s in sents)
    if (len(sents), words) != (COUNTS[split], WORDS[split]):
        raise ValueError(f"UD EWT {split}: expected {COUNTS[split]} sentences / {WORDS[split]} "
                         f"words, read {len(sents)} / {words}")
    return sents
