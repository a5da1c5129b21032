"""The extractive QA predictor: (question, context) pairs in, the answer span of the context
out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from taskzoo.data.user_files import read_utf8, utf8_argument
from taskzoo.errors import InputError
from taskzoo.tasks.base import CallOption, Predictor, json_argument
from taskzoo.tasks.qa.data import SpanBatch, Window, best_answer, collate, windows


class QAPredictor(Predictor):
    """(question, context) pairs -> {"answer", "score", "start", "end"} (character offsets into
    the context, end exclusive); one pair gives one dict.

    >>> qa = taskzoo.load("qa")                                            # doctest: +SKIP
    >>> qa(("Who wrote it?", "It was written by Ann Lee in 1990."))        # doctest: +SKIP
    {'answer': 'Ann Lee', 'score': 0.93, 'start': 18, 'end': 25}
    """

    input_noun = "(question, context) pair"
    call_options: ClassVar[tuple[CallOption, ...]] = (
        CallOption("max_answer_tokens", int, default=0, help="longest answer in subword tokens",
                   metavar="N"),
    )
    serve_input: ClassVar[str] = "text-pair"
    hf_task: ClassVar[str] = "question-answering"
    hf_parameters: ClassVar[dict[str, str]] = {"max_answer_len": "max_answer_tokens"}

    def __init__(self, model: nn.Module, subwords: Any, runtime: Any, *, max_tokens: int,
                 stride: int, max_answer_tokens: int, batch_size: int = 16) -> None:
        super().__init__(model, runtime, batch_size=batch_size)
        self.subwords, self.max_tokens, self.stride = subwords, max_tokens, stride
        self.max_answer_tokens = max_answer_tokens

    def items(self, inputs: Any, **options: Any) -> tuple[list[Any], bool]:
        if isinstance(inputs, dict) or (isinstance(inputs, tuple) and len(inputs) == 2
                                        and all(isinstance(x, str) for x in inputs)):
            return [inputs], True
        if isinstance(inputs, list) and inputs and all(isinstance(x, str) for x in inputs):
            raise InputError("got a list of strings: give a (question, context) tuple, a dict "
                             "with 'question' and 'context', or a list of those")
        return super().items(inputs)

    def preprocess(self, item: Any, index: int, ctx: dict[str, Any]) -> tuple[str, list[Window]]:
        if isinstance(item, dict):
            missing = {"question", "context"} - set(item)
            if missing:
                raise InputError(f"pair {index}: missing {', '.join(sorted(missing))}; expected "
                                 "keys 'question' and 'context'")
            question, context = item["question"], item["context"]
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            question, context = item
        else:
            raise InputError(f"pair {index}: expected a (question, context) tuple or a dict, got "
                             f"{type(item).__name__}")
        for what, text in (("question", question), ("context", context)):
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"pair {index}: the {what} is empty or not a string")
        return context, windows(self.subwords.tok, [question], [context],
                                max_tokens=self.max_tokens, stride=self.stride)

    def length(self, example: tuple[str, list[Window]]) -> int:
        return sum(len(w.ids) for w in example[1])

    def collate(self, examples: list[Any], ctx: dict[str, Any]) -> tuple[SpanBatch, list[int]]:
        return collate([w for _, ws in examples for w in ws]), [len(ws) for _, ws in examples]

    def forward(self, batch: tuple[SpanBatch, list[int]], ctx: dict[str, Any]) -> list[Any]:
        spans, counts = batch
        out = self.model(spans.ids, spans.lengths, spans.types).float().cpu()
        return list(out.split(counts))

    def postprocess(self, logits: torch.Tensor, example: Any, ctx: dict[str, Any]) -> Any:
        context, wins = example
        limit = int(ctx["max_answer_tokens"])
        return best_answer(context, list(zip(logits, wins)), limit)

    def parse_cli(self, args: list[str]) -> list[Any]:
        """QUESTION CONTEXT [QUESTION CONTEXT ...]; a context "@file.txt" is read from the file.
        One JSON argument works too: ["question", "context"] or {"question": ..., "context": ...}."""
        # an @path is a file name, which may be any bytes; the rest is text for the tokenizer
        args = [a if a.startswith("@") else utf8_argument(a, f"argument {i + 1}")
                for i, a in enumerate(args)]
        item = json_argument(args)
        if item is not None:
            return [tuple(item) if isinstance(item, list) else item]
        if not args or len(args) % 2:
            raise InputError(f"expected QUESTION CONTEXT pairs, got {len(args)} argument(s); a "
                             "context may be @path to read it from a text file")
        pairs = []
        for q, c in zip(args[::2], args[1::2]):
            if c.startswith("@"):
                # one line for a missing, special (a FIFO would block) or non-UTF-8 file
                c = read_utf8(Path(c[1:]), "context file")
            pairs.append((q, c))
        return pairs

    def format(self, text: Any, output: dict[str, Any]) -> str:
        """answer<TAB>score<TAB>character span, for the command line."""
        return f"{output['answer']}\t{output['score']}\t{output['start']}:{output['end']}"
