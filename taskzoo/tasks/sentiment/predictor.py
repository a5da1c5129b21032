"""The sentiment predictor: texts in, a label and its probability out; word lists in, the
scores a distilled student learns from."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from taskzoo.data.text import Vocab, as_text, tokenize
from taskzoo.errors import InputError
from taskzoo.tasks.base import Predictor
from taskzoo.tasks.sentiment.data import TextBatch, collate


class SentimentPredictor(Predictor):
    """texts -> [{"label": "positive", "score": 0.97}, ...]; one string gives one dict.

    >>> clf(["a gripping , beautiful film", "dull"])   # doctest: +SKIP
    [{'label': 'positive', 'score': 0.97}, {'label': 'negative', 'score': 0.91}]
    """

    hf_task: ClassVar[str] = "text-classification"

    def __init__(self, model: nn.Module, vocab: Vocab, labels: list[str], runtime: Any, *,
                 max_tokens: int = 256, batch_size: int = 512, subwords: Any = None) -> None:
        super().__init__(model, runtime, batch_size=batch_size)
        self.vocab, self.labels, self.max_tokens = vocab, labels, max_tokens
        self.subwords = subwords

    def teacher_logits(self, sentences: list[list[str]]) -> torch.Tensor:
        """Scores [N, K] of sentences given as word lists in SST-2's tokenisation ("[MASK]" a
        masked word): what a distilled student learns from (tasks/common/distill.py)."""
        return torch.stack(self.run(list(sentences), {"words": True}))

    def items(self, inputs: Any, **options: Any) -> tuple[list[Any], bool]:
        if isinstance(inputs, (str, bytes)):
            return [inputs], True
        if not isinstance(inputs, (list, tuple)):
            raise InputError(f"expected a string or a list of strings, got {type(inputs).__name__}")
        if not inputs:
            raise InputError("expected at least one text, got an empty list")
        return list(inputs), False

    def preprocess(self, item: Any, index: int, ctx: dict[str, Any]) -> tuple[torch.Tensor, int]:
        if ctx.get("words"):
            words = list(item)
        else:
            text = as_text(item, f"text {index}")
            words = tokenize(text)  # SST-2's tokenisation, as in training
            if not words:  # control characters are spaces: "\0\0" holds no word either
                raise InputError(f"text {index} is empty, or only whitespace and control "
                                 "characters: nothing to classify")
        if self.subwords is not None:
            ids = self.subwords.encode([" ".join(words)], max_tokens=self.max_tokens)[0]
        else:
            ids = self.vocab.encode(words[: self.max_tokens]) or [self.vocab.unk_id]
        return torch.tensor(ids), 0

    def length(self, example: tuple[torch.Tensor, int]) -> int:
        return len(example[0])

    def collate(self, examples: list[Any], ctx: dict[str, Any]) -> TextBatch:
        return collate(examples)

    def forward(self, batch: TextBatch, ctx: dict[str, Any]) -> list[torch.Tensor]:
        return list(self.model(batch.ids, batch.lengths).float().cpu())

    def postprocess(self, logits: torch.Tensor, example: Any, ctx: dict[str, Any]) -> Any:
        if ctx.get("words"):
            return logits
        probs = logits.softmax(-1)
        return {"label": self.labels[int(probs.argmax())], "score": round(float(probs.max()), 4)}

    def serve_json(self, output: Any, item: Any = None) -> list[dict[str, Any]]:
        """Hugging Face's text-classification shape: the labels with scores, best first."""
        return [dict(output)]

    def serve_response(self, outputs: list[Any], items: list[Any], single: bool) -> Any:
        # that API answers one list of labels per text, one text too ([[...]]): its client
        # takes the first
        return [self.serve_json(o) for o in outputs]

    def format(self, text: str, output: dict[str, Any]) -> str:
        """label<TAB>score<TAB>text, for the command line."""
        return f"{output['label']}\t{output['score']}\t{text}"
