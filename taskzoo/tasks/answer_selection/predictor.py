"""The answer selection predictor: a question and candidate sentences in, the candidates
ranked best first out."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from taskzoo.data.user_files import utf8_argument
from taskzoo.errors import InputError
from taskzoo.tasks.answer_selection.data import collate_pairs, encode_pairs, pair_scores
from taskzoo.tasks.base import Predictor, json_argument


class SelectionPredictor(Predictor):
    """(question, [candidate sentences]) -> the candidates best first, each
    {"text", "index", "score"} (score: the model's probability that it answers).

    >>> rank = taskzoo.load("answer_selection")                            # doctest: +SKIP
    >>> rank(("who wrote hamlet ?", ["Hamlet is a play .", "Shakespeare wrote it ."]))[0]  # doctest: +SKIP
    {'text': 'Shakespeare wrote it .', 'index': 1, 'score': 0.91}
    """

    input_noun = "(question, candidates) pair"
    serve_input: ClassVar[str] = "question-candidates"  # {"question", "candidates": [...]}

    def __init__(self, model: nn.Module, subwords: Any, pairing: str, runtime: Any, *,
                 max_tokens: int, scale: float, batch_size: int = 128) -> None:
        super().__init__(model, runtime, batch_size=1)  # one question (its candidates) at a time
        self.subwords, self.pairing, self.max_tokens, self.scale = subwords, pairing, max_tokens, scale
        self.pair_batch = batch_size

    def items(self, inputs: Any, **options: Any) -> tuple[list[Any], bool]:
        if isinstance(inputs, (tuple, dict)):
            return [inputs], True
        return super().items(inputs, **options)

    def preprocess(self, item: Any, index: int, ctx: dict[str, Any]) -> tuple[str, list[str]]:
        if isinstance(item, dict):
            item = (item.get("question"), item.get("candidates"))
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise InputError(f"input {index}: expected (question, [candidate sentences]) or a "
                             f"dict with 'question' and 'candidates', got {type(item).__name__}")
        question, cands = item
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"input {index}: the question is empty or not a string")
        if isinstance(cands, str) or not cands or not all(isinstance(c, str) for c in cands):
            raise InputError(f"input {index}: candidates must be a non-empty list of strings")
        return question, list(cands)

    def score(self, question: str, candidates: list[str]) -> list[float]:
        """The relevance logit of each candidate (for callers that rank themselves)."""
        rows = encode_pairs(self.subwords, self.pairing, [question] * len(candidates),
                            candidates, [0] * len(candidates), self.max_tokens)
        out = []
        with self.runtime.inference():
            for at in range(0, len(rows), self.pair_batch):
                batch = self.runtime.to_device(collate_pairs(rows[at:at + self.pair_batch],
                                                             self.pairing))
                out += pair_scores(self.model, batch, self.scale).float().cpu().tolist()
        return out

    def collate(self, examples: list[Any], ctx: dict[str, Any]) -> list[Any]:
        return examples

    def forward(self, batch: list[Any], ctx: dict[str, Any]) -> list[Any]:
        return [self.score(q, cands) for q, cands in batch]

    def postprocess(self, scores: list[float], example: Any, ctx: dict[str, Any]) -> Any:
        _, cands = example
        order = sorted(range(len(cands)), key=lambda i: -scores[i])
        return [{"text": cands[i], "index": i, "score": round(float(torch.sigmoid(
            torch.tensor(scores[i]))), 4)} for i in order]

    def parse_cli(self, args: list[str]) -> list[Any]:
        """QUESTION CANDIDATE [CANDIDATE ...]: one question and its candidate sentences; or one
        JSON argument, ["question", ["candidate", ...]] or {"question": ..., "candidates": [...]}."""
        args = [utf8_argument(a, "the question" if i == 0 else f"candidate {i}")
                for i, a in enumerate(args)]
        item = json_argument(args)
        if item is not None:
            return [tuple(item) if isinstance(item, list) else item]
        if len(args) < 2:
            raise InputError("expected a QUESTION and at least one CANDIDATE sentence")
        return [(args[0], list(args[1:]))]

    def format(self, text: Any, output: list[dict[str, Any]]) -> str:
        """score<TAB>sentence per candidate, best first."""
        return "\n".join(f"{o['score']}\t{o['text']}" for o in output)
