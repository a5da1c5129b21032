"""What the answer-selection task and its predictor share: (question, sentence) pairs encoded for a cross- or bi-encoder, their batches, the data bundle and the pair scores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from taskzoo.tasks.base import DataBundle


class PairBatch(NamedTuple):
    ids: torch.Tensor  # [B, T] the pair (cross) or the question (bi)
    lengths: torch.Tensor  # [B]
    types: torch.Tensor | None  # [B, T] segment ids (cross only)
    other: torch.Tensor | None  # [B, S] the sentence (bi only)
    other_lengths: torch.Tensor | None  # [B]
    labels: torch.Tensor  # [B] 1 = the sentence answers the question


@dataclass
class SelectionData(DataBundle):
    subwords: Any = None  # the encoder's Subwords tokenizer
    pairing: str = "cross"  # cross or bi
    questions: dict[str, list[Any]] = field(default_factory=dict)  # WikiQAQuestions per split


def encode_pairs(subwords: Any, pairing: str, questions: list[str], sentences: list[str],
                 labels: list[int], max_tokens: int) -> list[tuple[Any, ...]]:
    """Rows of (ids, types, label) for a cross-encoder, (q ids, s ids, label) for a bi-encoder."""
    if pairing == "cross":
        enc = subwords.tok(questions, sentences, truncation="longest_first",
                           max_length=min(max_tokens, subwords.max_length),
                           return_token_type_ids=True)
        return list(zip(enc["input_ids"], enc["token_type_ids"], labels))
    q = subwords.encode(questions, max_tokens=max_tokens)
    s = subwords.encode(sentences, max_tokens=max_tokens)
    return list(zip(q, s, labels))


def collate_pairs(rows: list[tuple[Any, ...]], pairing: str) -> PairBatch:
    pad = lambda seqs: pad_sequence([torch.tensor(x) for x in seqs], batch_first=True)  # noqa: E731
    labels = torch.tensor([float(r[2]) for r in rows])
    if pairing == "cross":
        return PairBatch(pad([r[0] for r in rows]), torch.tensor([len(r[0]) for r in rows]),
                         pad([r[1] for r in rows]), None, None, labels)
    return PairBatch(pad([r[0] for r in rows]), torch.tensor([len(r[0]) for r in rows]), None,
                     pad([r[1] for r in rows]), torch.tensor([len(r[1]) for r in rows]), labels)


def pair_scores(model: nn.Module, batch: PairBatch, scale: float) -> torch.Tensor:
    """One relevance logit per pair [B]."""
    if batch.other is None:
        return model(batch.ids, batch.lengths, batch.types).squeeze(-1)
    return scale * (model(batch.ids, batch.lengths) * model(batch.other, batch.other_lengths)).sum(-1)
