"""What the sentiment task and its predictor share: the labels, a batch of token ids, the data bundle and collate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch.nn.utils.rnn import pad_sequence

from taskzoo.data.text import Vocab
from taskzoo.tasks.base import DataBundle

LABELS = ["negative", "positive"]


class TextBatch(NamedTuple):
    ids: torch.Tensor  # [B, T] token ids, 0-padded
    lengths: torch.Tensor  # [B]
    labels: torch.Tensor  # [B]; -1 for an augmented sentence (no gold label)
    teacher: torch.Tensor | None = None  # [B, K] a teacher's scores when distilling


@dataclass
class SentimentData(DataBundle):
    vocab: Vocab = field(default_factory=lambda: Vocab([Vocab.PAD, Vocab.UNK]))
    subwords: Any = None  # a pretrained encoder's Subwords tokenizer (then vocab is unused)
    teacher: dict[str, Any] | None = None  # what the student was distilled from
    lengths: dict[str, list[int]] = field(default_factory=dict)  # token counts per split


def collate(rows: list[tuple[Any, ...]]) -> TextBatch:
    """rows of (ids, label) or, when distilling, (ids, label, teacher scores)."""
    ids = [r[0] for r in rows]
    return TextBatch(
        ids=pad_sequence(ids, batch_first=True, padding_value=0),
        lengths=torch.tensor([len(i) for i in ids]),
        labels=torch.tensor([r[1] for r in rows]),
        teacher=torch.stack([r[2] for r in rows]) if len(rows[0]) > 2 else None,
    )
