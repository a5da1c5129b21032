"""WikiQA (Yang, Yih and Meek 2015): answer sentence selection, pinned files and a reader.

Each split is the corpus's tokenized `WikiQA-<split>.txt` (question TAB sentence TAB label,
one candidate sentence per line) with its `.ref` file (`qid 0 sentence-index label`, the
TREC qrels that group the lines into questions). The original train `.tsv` is not on the
mirror, so the tokenized files are read for every split alike. `filtered` marks the
standard evaluation questions (`*-filtered.ref`: at least one right and one wrong sentence;
122 dev, 237 test).

    >>> test = load_wikiqa("test")                               # doctest: +SKIP
    >>> sum(q.filtered for q in test), len(test)                 # doctest: +SKIP
    (237, 633)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taskzoo import hub
from taskzoo.errors import DataError

GROUP = "WikiQA/WikiQACorpus"
_RAW = ("https://raw.githubusercontent.com/JasonRui/WikiQA-LSTM-Keras/"
        "0d6a84041d906458d48e4504a264d1c19d11a054/WikiQACorpus/")
_PINS = {
    "WikiQA-train.txt": ("942d65db8ca780cf38905d403f17606274329a4f3c2037973ce6b3fabb0e61b2", 3_671_710),
    "WikiQA-train.ref": ("aed4d2e086c1b8736b30c6914934a81bff997f2259f1c80a70f41d1575ecde7d", 217_757),
    "WikiQA-dev.txt": ("ef7b38990d479fbfae5a1cd4a01b75a7f0cc5c277d15c9cddb888c6f0197d543", 483_564),
    "WikiQA-dev.ref": ("ea76242babd382499c6a1490f2a799c7a7420f6d9828c3b488e19c82db36f01e", 26_846),
    "WikiQA-dev-filtered.ref": ("f79cb9958ed6ed5fd734d4b8957aa3398c33a4cd204469a25b020f7c72fc36da", 11_188),
    "WikiQA-test.txt": ("957a23816df4c13056e0069fc30afbc6b56f676ba025b6c9c027fb71379e84e8", 1_103_628),
    "WikiQA-test.ref": ("a91e7aa065c350d9935a98de880c8a53825747c553a416b28ad3e1ba5a677d42", 62_167),
    "WikiQA-test-filtered.ref": ("b54e30ce1311138309a9417b8ea018b9d26b58404f835d321338182ff0dabbe4", 23_699),
}
FILES = {name: hub.RemoteFile(name, sha, size, (_RAW + name,)) for name, (sha, size) in _PINS.items()}
# (questions, sentences, right sentences, filtered questions) as published
COUNTS = {"train": (2_118, 20_360, 1_040, None), "dev": (296, 2_733, 140, 122),
          "test": (633, 6_165, 293, 237)}


@dataclass(frozen=True)
class WikiQAQuestion:
    qid: int  # the question's number in its split's .ref file
    question: str
    sentences: tuple[str, ...]  # candidate sentences, in the corpus's order
    labels: tuple[int, ...]  # 1 = the sentence answers the question
    filtered: bool  # in the standard evaluation set (dev / test only)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def load_wikiqa(split: str) -> list[WikiQAQuestion]:
    """One split ('train', 'dev' or 'test'), verified, questions in file order."""
    if split not in COUNTS:
        raise DataError(f"WikiQA split {split!r}: expected train, dev or test")
    fetch = lambda name: hub.fetch(FILES[name], group=GROUP)  # noqa: E731
    rows = _lines(fetch(f"WikiQA-{split}.txt"))
    refs = _lines(fetch(f"WikiQA-{split}.ref"))
    kept = ({int(line.split()[0]) for line in _lines(fetch(f"WikiQA-{split}-filtered.ref"))}
            if split != "train" else set())
    if len(rows) != len(refs):
        raise DataError(f"WikiQA {split}: {len(rows)} sentences but {len(refs)} .ref lines")
    groups: dict[int, list[tuple[str, str, int]]] = {}
    for n, (row, ref) in enumerate(zip(rows, refs), start=1):
        parts, qrel = row.split("\t"), ref.split()
        if len(parts) != 3 or len(qrel) != 4 or parts[2] != qrel[3]:
            raise DataError(f"WikiQA-{split}.txt line {n} and its .ref line disagree: "
                            f"{row[:60]!r} / {ref!r}")
        groups.setdefault(int(qrel[0]), []).append((parts[0], parts[1], int(parts[2])))
    out = []
    for qid, items in groups.items():
        if len({q for q, _, _ in items}) != 1:
            raise DataError(f"WikiQA {split} question {qid}: its lines name different questions")
        out.append(WikiQAQuestion(qid, items[0][0], tuple(s for _, s, _ in items),
                                  tuple(y for _, _, y in items), qid in kept))
    found = (len(out), len(rows), sum(sum(q.labels) for q in out),
             sum(q.filtered for q in out) if split != "train" else None)
    if found != COUNTS[split]:
        raise DataError(f"WikiQA {split}: expected (questions, sentences, right, filtered) "
                        f"{COUNTS[split]}, read {found}")
    return out
