"""The extractive summarization predictor: documents in, their best sentences (in document
order) out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from taskzoo.data.user_files import read_utf8, utf8_argument
from taskzoo.errors import InputError
from taskzoo.tasks.base import CallOption, Predictor
from taskzoo.tasks.common.pretrained_text import embed
from taskzoo.tasks.summarization.data import (
    Doc,
    DocBatch,
    collate,
    length_of,
    split_sentences,
    top_k,
    with_features,
)


class SummaryPredictor(Predictor):
    """documents -> {"summary": text, "sentences": [{"text", "position", "score"}, ...]} (the
    chosen sentences in document order); `sentences=` or `ratio=` sets the length.

    >>> summarize = taskzoo.load("summarization")                         # doctest: +SKIP
    >>> summarize(article, sentences=3)["summary"]                        # doctest: +SKIP
    """

    input_noun = "document"
    # the pretrained sentence encoder is the predictor's, not the task's network: it stays torch
    onnx_python = "sentence splitting, the MiniLM sentence embeddings (on torch) and the choice"
    call_options: ClassVar[tuple[CallOption, ...]] = (
        CallOption("sentences", int, help="keep N sentences", low=0, metavar="N",
                   expect="0 (use ratio) or more"),
        CallOption("ratio", float, help="keep this fraction of the sentences", low=0, high=1,
                   low_open=True, metavar="R", expect="a fraction in (0, 1]"),
    )
    hf_task: ClassVar[str] = "summarization"

    def __init__(self, model: nn.Module, embedder: nn.Module, subwords: Any, runtime: Any, *,
                 sentences: int, ratio: float, max_tokens: int, embed_batch_size: int) -> None:
        super().__init__(model, runtime, batch_size=16)
        self.embedder, self.subwords = embedder, subwords
        self.sentences, self.ratio, self.max_tokens = sentences, ratio, max_tokens
        self.embed_batch_size = embed_batch_size

    def context(self, items: list[Any], **options: Any) -> dict[str, Any]:
        # a ratio given alone is the length: the predictor's sentence count no longer applies
        sentences = options.get("sentences", 0 if "ratio" in options else self.sentences)
        return {"ratio": float(options.get("ratio", self.ratio)), "sentences": int(sentences)}

    def preprocess(self, item: Any, index: int, ctx: dict[str, Any]) -> Doc:
        if not isinstance(item, str):
            raise InputError(f"document {index}: expected a string, got {type(item).__name__}")
        sents = split_sentences(item)
        if not sents:
            raise InputError(f"document {index} is empty: nothing to summarize")
        vectors = embed(self.embedder, self.subwords, self.runtime, sents,
                        max_tokens=self.max_tokens, batch_size=self.embed_batch_size)
        return Doc(sents, "", with_features(vectors, sents), torch.zeros(len(sents)))

    def length(self, example: Doc) -> int:
        return len(example.sentences)

    def collate(self, examples: list[Doc], ctx: dict[str, Any]) -> DocBatch:
        return collate(examples)

    def forward(self, batch: DocBatch, ctx: dict[str, Any]) -> list[Any]:
        logits = self.model(batch.vectors, batch.lengths).float().cpu()
        return [logits[i, :n] for i, n in enumerate(batch.lengths.tolist())]

    def postprocess(self, logits: torch.Tensor, example: Doc, ctx: dict[str, Any]) -> Any:
        k = length_of(len(example.sentences), sentences=ctx["sentences"], ratio=ctx["ratio"])
        probs = torch.sigmoid(logits).tolist()
        chosen = top_k(probs, k)
        return {"summary": " ".join(example.sentences[i] for i in chosen),
                "sentences": [{"text": example.sentences[i], "position": i,
                               "score": round(probs[i], 4)} for i in chosen]}

    def parse_cli(self, args: list[str]) -> list[Any]:
        """Documents as text, or @path to read one from a file."""
        docs = []
        for a in args:
            if a.startswith("@"):
                # one line for a missing, special (a FIFO would block) or non-UTF-8 file
                a = read_utf8(Path(a[1:]), "document file")
            else:  # text typed on the command line, which a tokenizer takes only as UTF-8
                a = utf8_argument(a, f"document {len(docs) + 1}")
            docs.append(a)
        return docs

    def serve_json(self, output: dict[str, Any], item: Any = None) -> list[dict[str, Any]]:
        """Hugging Face's summarization shape: [{"summary_text": ...}] (with the chosen
        sentences beside it)."""
        return [{"summary_text": output["summary"], "sentences": output["sentences"]}]

    def format(self, text: str, output: dict[str, Any]) -> str:
        """One line per chosen sentence: its position<TAB>text."""
        return "\n".join(f"{s['position']}\t{s['text']}" for s in output["sentences"])
