"""The summaries a run scores beside its model's, on the same documents: Lead-3 and Lead-k
(a document's first sentences), TextRank (the most central sentences, Mihalcea & Tarau
2004) and the greedy ROUGE oracle's labels, the ceiling an extractive summary can reach."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from taskzoo.tasks.summarization.data import FEATURES, textrank, top_k


def baseline_picks(docs: Sequence[Any], length: Callable[[int], int]) -> dict[str, list[list[int]]]:
    """{baseline: the positions it picks in each document}; Lead-k and TextRank keep
    `length(n)` of a document's n sentences, the model's own summary length."""
    n = [len(d.sentences) for d in docs]
    return {
        "lead3": [list(range(min(3, k))) for k in n],
        "lead": [list(range(length(k))) for k in n],
        # the sentence embeddings, without the features appended to them
        "textrank": [top_k(textrank(d.vectors[:, :-FEATURES]), length(k))
                     for d, k in zip(docs, n)],
        "oracle": [torch.nonzero(d.labels).flatten().tolist() or [0] for d in docs],
    }
