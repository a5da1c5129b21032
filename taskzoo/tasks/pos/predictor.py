"""The POS task's predictor: raw text or word lists in, a tag (and its probability) per word
out, for every model family (character + word RNN taggers, pretrained subword taggers)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from taskzoo.data.text import as_text, split_words
from taskzoo.errors import InputError
from taskzoo.tasks.base import CallOption, Predictor
from taskzoo.tasks.pos.data import CharTable, PosData, TagBatch, collate, encode_words, tag_scores


class Tagger(Predictor):
    """Raw texts (or token lists) -> {"tokens": [...], "tags": [...], "scores": [...]} each.

    Raw text is split by `taskzoo.data.text.split_words` (punctuation and clitics such as
    n't / 's split off, case kept; see its docstring); pass `tokenized=True` with lists of
    words to tag your own tokenisation.

    >>> tagger("The old man the boats.")["tags"]                      # doctest: +SKIP
    ['DET', 'ADJ', 'NOUN', 'DET', 'NOUN', 'PUNCT']
    >>> tagger([["I", "saw", "her", "duck"]], tokenized=True)[0]["tags"]  # doctest: +SKIP
    ['PRON', 'VERB', 'PRON', 'NOUN']
    """

    call_options: ClassVar[tuple[CallOption, ...]] = (
        CallOption("tokenized", bool, help="the inputs are lists of words, not text",
                   cli=False),  # a command-line input is one string: always text
    )
    hf_task: ClassVar[str] = "token-classification"

    def __init__(self, model: nn.Module, data: PosData, runtime: Any, *, max_word_chars: int = 20,
                 batch_size: int = 256) -> None:
        super().__init__(model, runtime, batch_size=batch_size)
        self.vocab, self.chars, self.labels = data.vocab, data.chars, data.labels
        self.max_word_chars, self.subwords = max_word_chars, data.subwords

    def items(self, inputs: Any, **options: Any) -> tuple[list[Any], bool]:
        if {**self.option_defaults(), **options}["tokenized"]:
            # a list holding any string is one sentence; otherwise a list of sentences
            single = isinstance(inputs, (list, tuple)) and any(isinstance(w, (str, bytes))
                                                                for w in inputs)
        else:
            single = isinstance(inputs, (str, bytes))
        batch = [inputs] if single else inputs
        if not isinstance(batch, (list, tuple)):
            raise InputError(f"expected a string or a list of strings, got {type(inputs).__name__}")
        if not batch:
            raise InputError("expected at least one sentence, got an empty list")
        return list(batch), single

    def context(self, items: list[Any], **options: Any) -> dict[str, Any]:
        # one character table for the call: each word form is encoded once, whatever batch
        return {**super().context(items, **options),
                "table": CharTable(self.chars, self.max_word_chars)}

    def preprocess(self, item: Any, index: int, ctx: dict[str, Any]) -> tuple:
        if ctx.get("tokenized"):
            if not isinstance(item, (list, tuple)):
                raise InputError(f"sentence {index}: with tokenized=True expected a list of "
                                 f"words, got {type(item).__name__}")
            words = [as_text(w, f"sentence {index} word {j}") for j, w in enumerate(item)]
            if not words or any(not w.strip() for w in words):
                raise InputError(f"sentence {index}: expected non-empty words, got {item!r:.80}")
        else:
            words = split_words(as_text(item, f"text {index}"))
            if not words:
                raise InputError(f"text {index} is empty or whitespace only: nothing to tag")
        words = [w.strip() for w in words]
        if self.subwords is not None:  # (subword ids, first subword of each word)
            from taskzoo.tasks.pos.data import encode_subwords

            ids, forms = encode_subwords(self.subwords, [words], what=f"sentence {index}")[0]
        else:
            ids, forms = encode_words(words, self.vocab, ctx["table"])
        return ids, forms, torch.zeros(len(words), dtype=torch.long), words

    def length(self, example: tuple) -> int:
        return len(example[3])

    def collate(self, examples: list[tuple], ctx: dict[str, Any]) -> Any:
        if self.subwords is not None:
            from taskzoo.tasks.pos.data import collate_subwords

            return collate_subwords([e[:3] for e in examples])
        if "chars" not in ctx:  # every example is encoded by now: the table is complete
            ctx["chars"] = ctx["table"].tensor()
        return collate([e[:3] for e in examples], table=ctx["chars"])

    def teacher_logits(self, sentences: list[list[str]]) -> list[torch.Tensor]:
        """Tag scores [W, K] of each sentence of words: what a distilled student learns from
        (tasks/common/distill.py)."""
        items = list(sentences)
        return self.run(items, {**self.context(items, tokenized=True), "logits": True})

    def forward(self, batch: TagBatch, ctx: dict[str, Any]) -> list[torch.Tensor]:
        scores = tag_scores(self.model, batch).float().cpu()
        return [scores[j, :n] for j, n in enumerate(batch.lengths.tolist())]

    def postprocess(self, result: torch.Tensor, example: tuple, ctx: dict[str, Any]) -> Any:
        if ctx.get("logits"):
            return result
        score, best = result.softmax(-1).max(-1)
        best, score = best.tolist(), score.tolist()
        return {"tokens": example[3], "tags": [self.labels[k] for k in best],
                "scores": [round(x, 4) for x in score]}

    def serve_json(self, output: dict[str, Any], item: Any = None) -> list[dict[str, Any]]:
        """Hugging Face's token-classification shape: per word {"entity_group": tag, "score",
        "word", "start", "end"} (character offsets into the text; words given as a list are
        placed in their text joined by spaces)."""
        text = item if isinstance(item, str) else " ".join(output["tokens"])
        out, at = [], 0
        for word, tag, score in zip(output["tokens"], output["tags"], output["scores"]):
            found = text.find(word, at)
            start = found if found >= 0 else at  # not found as typed (a control character)
            at = found + len(word) if found >= 0 else at
            out.append({"entity_group": tag, "score": score, "word": word, "start": start,
                        "end": start + len(word)})
        return out

    def format(self, text: str, output: dict[str, Any]) -> str:
        """One line of word/TAG pairs, for the command line."""
        return " ".join(f"{w}/{t}" for w, t in zip(output["tokens"], output["tags"]))
