"""Extractive QA's two halves that do not train: a (question, context) pair cut into windows
of subword tokens (a long context slides, its windows overlapping by `stride`), and the best
answer span read back out of the windows' start/end scores, as character offsets.

The `qa` task, its predictor and the chatbot share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch.nn.utils.rnn import pad_sequence


@dataclass(frozen=True)
class Window:
    """One window of one (question, context) pair."""

    ids: list[int]  # [CLS] question [SEP] context piece [SEP]
    types: list[int]  # 0 for the question part, 1 for the context part
    offsets: list[tuple[int, int] | None]  # a context token's characters; None elsewhere
    example: int  # which pair it came from
    start: int = 0  # token of the answer's first character; 0 ([CLS]) if not in this window
    end: int = 0  # token of the answer's last character


class SpanBatch(NamedTuple):
    ids: torch.Tensor  # [B, T]
    lengths: torch.Tensor  # [B]
    types: torch.Tensor  # [B, T]
    starts: torch.Tensor  # [B] gold start token (0 = no answer here)
    ends: torch.Tensor  # [B]


def windows(tok: Any, questions: Sequence[str], contexts: Sequence[str], *, max_tokens: int,
            stride: int, answers: Sequence[tuple[str, int] | None] | None = None) -> list[Window]:
    """Windows of each pair; with `answers` ((text, character start) or None per pair) each
    window carries its gold start/end tokens. Questions are cut to a third of `max_tokens`."""
    limit = max(8, min(max_tokens, getattr(tok, "model_max_length", 512) or 512, 512))
    q_offsets = tok(list(questions), add_special_tokens=False,
                    return_offsets_mapping=True)["offset_mapping"]
    # a question too long to leave room for context is cut at a token boundary
    questions = [q[: o[limit // 3][0]] if len(o) > limit // 3 else q
                 for q, o in zip(questions, q_offsets)]
    enc = tok(list(questions), list(contexts), truncation="only_second", max_length=limit,
              stride=min(stride, limit // 2), return_overflowing_tokens=True,
              return_offsets_mapping=True, return_token_type_ids=True)
    out = []
    for w, ids in enumerate(enc["input_ids"]):
        example = enc["overflow_to_sample_mapping"][w]
        seq = enc.sequence_ids(w)
        offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][w], seq)]
        types = [1 if s == 1 else 0 for s in seq]
        if types[-1] == 0 and seq[-1] is None:  # the closing [SEP] belongs to the context
            types[-1] = 1
        start = end = 0
        if answers is not None and answers[example] is not None:
            text, at = answers[example]
            inside = [i for i, o in enumerate(offsets) if o is not None]
            if inside and offsets[inside[0]][0] <= at and at + len(text) <= offsets[inside[-1]][1]:
                start = next(i for i in inside if offsets[i][1] > at)
                end = next(i for i in reversed(inside) if offsets[i][0] < at + len(text))
        out.append(Window(ids, types, offsets, example, start, end))
    return out


def collate(rows: Sequence[Window]) -> SpanBatch:
    return SpanBatch(
        ids=pad_sequence([torch.tensor(w.ids) for w in rows], batch_first=True),
        lengths=torch.tensor([len(w.ids) for w in rows]),
        types=pad_sequence([torch.tensor(w.types) for w in rows], batch_first=True),
        starts=torch.tensor([w.start for w in rows]),
        ends=torch.tensor([w.end for w in rows]),
    )


def window_span(logits: torch.Tensor, window: Window,
                max_answer_tokens: int) -> tuple[float, float, int, int] | None:
    """The best span of one window: (raw score, probability, first token, last token), or
    None if the window has no context. Raw scores (start + end logits) compare across
    windows; the probability is start x end softmax over this window's context tokens."""
    ctx = torch.tensor([o is not None for o in window.offsets])
    if not ctx.any():
        return None
    s, e = logits[: len(window.offsets), 0].float(), logits[: len(window.offsets), 1].float()
    s, e = s.masked_fill(~ctx, float("-inf")), e.masked_fill(~ctx, float("-inf"))
    n = len(s)
    i = torch.arange(n)
    allowed = (i[None, :] >= i[:, None]) & (i[None, :] - i[:, None] < max_answer_tokens)
    scores = (s[:, None] + e[None, :]).masked_fill(~allowed, float("-inf"))
    best = int(scores.argmax())
    first, last = divmod(best, n)
    prob = float((s.log_softmax(0)[first] + e.log_softmax(0)[last]).exp())
    return float(scores.flatten()[best]), prob, first, last


def best_answer(context: str, results: Sequence[tuple[torch.Tensor, Window]],
                max_answer_tokens: int) -> dict[str, Any]:
    """The highest-scoring span over one pair's windows: {"answer", "score", "start", "end"}
    (`score` a probability within its window; `start`/`end` character offsets, end exclusive)."""
    best = None
    for logits, window in results:
        span = window_span(logits, window, max_answer_tokens)
        if span is not None and (best is None or span[0] > best[0][0]):
            best = (span, window)
    if best is None:
        return {"answer": "", "score": 0.0, "start": 0, "end": 0}
    (_, prob, first, last), window = best
    start, end = window.offsets[first][0], window.offsets[last][1]
    return {"answer": context[start:end], "score": round(prob, 4), "start": start, "end": end}
