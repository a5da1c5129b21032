"""The topic task's predictor: sentences in, {"label", "score"} out."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from taskzoo.data.text import Vocab, as_text, tokenize
from taskzoo.errors import InputError
from taskzoo.tasks.base import CallOption, Predictor

from .data import TextBatch, collate


class TopicPredictor(Predictor):
    """texts -> [{"label": "food", "score": 0.97}, ...]; one string gives one dict.

    >>> clf(["the chef burnt the soup"])          # doctest: +SKIP
    [{'label': 'food', 'score': 0.97}]
    """

    input_noun = "text"
    # each option is checked by the base and becomes a `taskzoo predict` flag (--top-k)
    call_options: ClassVar[tuple[CallOption, ...]] = (
        CallOption("top_k", int, default=0, low=0, metavar="K",
                   help="also the K most likely topics"),
    )

    def __init__(self, model: nn.Module, vocab: Vocab, labels: list[str], runtime: Any, *,
                 batch_size: int = 256) -> None:
        super().__init__(model, runtime, batch_size=batch_size)
        self.vocab, self.labels = vocab, labels

    def preprocess(self, item: Any, index: int, ctx: dict[str, Any]) -> tuple[torch.Tensor, int]:
        text = as_text(item, f"text {index}")
        if not text.strip():
            raise InputError(f"text {index} is empty: nothing to classify")
        return torch.tensor(self.vocab.encode(tokenize(text)) or [self.vocab.unk_id]), 0

    def length(self, example: tuple[torch.Tensor, int]) -> int:
        return len(example[0])

    def collate(self, examples: list[Any], ctx: dict[str, Any]) -> TextBatch:
        return collate(examples)

    def forward(self, batch: TextBatch, ctx: dict[str, Any]) -> list[torch.Tensor]:
        return list(self.model(batch.ids, batch.lengths).softmax(-1).float().cpu())

    def postprocess(self, probs: torch.Tensor, example: Any, ctx: dict[str, Any]) -> Any:
        best = int(probs.argmax())
        out: dict[str, Any] = {"label": self.labels[best], "score": round(float(probs[best]), 4)}
        k = int(ctx.get("top_k") or 0)  # the call's option, else configure()'s, else 0
        if k:
            top = probs.topk(min(k, len(self.labels)))
            out["top"] = [{"label": self.labels[int(i)], "score": round(float(p), 4)}
                            for p, i in zip(top.values, top.indices)]
        return out
