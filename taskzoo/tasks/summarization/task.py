"""Extractive summarization: pick the sentences of a document that make its summary
(BBC News Summary). A frozen pretrained encoder embeds each sentence; a SummaRuNNer-style
BiGRU reads the document's sentence vectors and scores each one, trained on labels from a
greedy ROUGE oracle; beside each embedding it reads the sentence's TextRank centrality,
similarity to the document, position and length. The run scores Lead-3 and TextRank
(PageRank over the sentences' embedding similarities) on the same documents, and the oracle
as the ceiling (baselines.py).

    taskzoo run summarization                         # BBC News Summary, seeded topic split
    taskzoo run summarization dataset=tiny            # invented biographies, offline
    taskzoo predict summarization --sentences 3 @article.txt
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.config import NonNegativeInt, Probability, Range, SupervisedConfig
from taskzoo.data.loader import LoaderSource, eval_batches
from taskzoo.models import build
from taskzoo.tasks import TASKS
from taskzoo.tasks.base import Reference, Task
from taskzoo.tasks.common.pretrained_text import embed, load_embedder
from taskzoo.tasks.summarization.baselines import baseline_picks
from taskzoo.tasks.summarization.data import (
    FEATURES,
    Doc,
    DocBatch,
    SummaryData,
    collate,
    greedy_oracle,
    length_of,
    rouge,
    split_sentences,
    top_k,
    unjoin,
    with_features,
)
from taskzoo.tasks.summarization.predictor import SummaryPredictor
from taskzoo.train.types import StepOutput


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True, kw_only=True)
class SummarizationConfig(SupervisedConfig):
    dataset: Literal["bbc", "tiny"] = "bbc"  # bbc (BBC News Summary) or tiny (embedded)
    model: str = "summarunner"  # the sentence scorer
    encoder: str = "minilm"  # frozen sentence encoder: minilm or hf:<repo>@<commit>
    split_seed: NonNegativeInt = 0  # which articles train, tune and test
    epochs: int = 10  # passes over the training documents
    batch_size: int = 16  # documents per step
    lr: float = 1e-3  # AdamW peak learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    schedule: Literal["constant", "linear", "cosine"] = "linear"  # decay to 0 over the run
    warmup_steps: int = 20  # linear warm-up steps
    grad_clip: float = 1.0  # max gradient norm
    # <= 4096: generous (the recipes use 32-512); a 4096 x 4096 matrix is already 64 MB
    hidden_dim: Annotated[int, Range(1, 4096)] = 128  # BiGRU hidden size per direction
    # <= 1000: learnt slots; a document has far fewer sentences
    positions: Annotated[int, Range(1, 1000)] = 50  # learnt position slots; later sentences share the last
    dropout: Probability = 0.1  # dropout on sentence vectors and BiGRU states
    sentences: NonNegativeInt = 0  # summary length in sentences; 0 = `ratio` of the document
    ratio: Annotated[float, Range(0, 1, open_lo=True)] = 0.4  # summary length as a fraction of the sentences
    max_tokens: Annotated[int, Range(8, 512)] = 128  # subword tokens per sentence embedded
    # <= 8192: a batch is padded and held in memory at once
    embed_batch_size: Annotated[int, Range(1, 8192)] = 128  # sentences per encoder batch
    # <= 8192: a batch is padded and held in memory at once
    eval_batch_size: Annotated[int, Range(1, 8192)] = 64  # documents per evaluation batch


# ---------------------------------------------------------------------------- task
@TASKS.register("summarization", aliases=("summarize", "summarisation", "extractive_summarization"))
class SummarizationTask(Task[SummarizationConfig]):
    name = "summarization"
    Config = SummarizationConfig
    description = "extractive summarization (BBC News): a BiGRU sentence scorer over encoder embeddings"
    throughput_unit = "documents"
    monitor = "dev/rouge2"
    models = ("summarunner",)
    eval_splits = ("dev",)
    final_splits = ("dev", "test")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"epochs": 15, "batch_size": 8, "warmup_steps": 5},
    }
    quick: ClassVar[dict[str, Any]] = {"dataset": "tiny", "epochs": 2}
    references = (
        Reference("test/rouge2", 0.263, "Nallapati et al. 2017, SummaRuNNer (CNN/DailyMail, "
                  "full-length ROUGE-2 F1)", "another corpus: CNN/DailyMail, abstractive "
                  "references; ours is BBC News with extractive ones"),
    )

    # -- data
    def _rows(self) -> dict[str, list[tuple[str, str]]]:
        """(document text without its title, reference summary) per split."""
        if self.cfg.dataset == "tiny":
            from taskzoo.data.tiny_qa import load_tiny_summaries

            return {s: [(t.split("\n", 1)[1], r) for t, r in v]
                    for s, v in load_tiny_summaries().items()}
        from taskzoo.data.bbc import load_bbc, split_articles

        splits = split_articles(load_bbc(), seed=self.cfg.split_seed)
        return {s: [(a.text.split("\n", 1)[1], unjoin(a.summary)) for a in v]
                for s, v in splits.items()}

    def build_data(self, state: dict[str, Any] | None = None) -> SummaryData:
        from taskzoo.hf.encoders import Subwords
        from taskzoo.tasks.common.pretrained_text import pretrained_repo, repo_from_state

        repo = repo_from_state(state) if state else pretrained_repo(self.cfg.encoder)
        data = SummaryData(train=None, subwords=Subwords.from_repo(repo))
        data.embedder = load_embedder(data.subwords, self.runtime)
        rows = self._rows()
        sents = {s: [split_sentences(text) for text, _ in v] for s, v in rows.items()}
        flat = [x for v in sents.values() for doc in v for x in doc]
        vectors = embed(data.embedder, data.subwords, self.runtime, flat,
                        max_tokens=self.cfg.max_tokens, batch_size=self.cfg.embed_batch_size)
        at = 0
        for split, v in rows.items():
            docs = []
            for (_, reference), ss in zip(v, sents[split]):
                chosen = set(greedy_oracle(ss, reference))
                labels = torch.tensor([float(i in chosen) for i in range(len(ss))])
                docs.append(Doc(ss, reference, with_features(vectors[at:at + len(ss)], ss),
                                labels))
                at += len(ss)
            data.docs[split] = [d for d in docs if d.sentences]
        data.train = data.docs["train"]
        data.splits = {s: data.docs[s] for s in ("dev", "test")}
        return data

    def data_state(self, data: SummaryData) -> dict[str, Any]:
        from taskzoo.hf.encoders import describe

        return {"labels": [], "encoder": describe(data.subwords.repo)}

    def data_from_state(self, state: dict[str, Any]) -> SummaryData:
        from taskzoo.hf.encoders import Subwords
        from taskzoo.tasks.common.pretrained_text import repo_from_state

        subwords = Subwords.from_repo(repo_from_state(state))
        return SummaryData(train=None, subwords=subwords,
                           embedder=load_embedder(subwords, self.runtime))

    def batches(self, data: SummaryData, model: nn.Module) -> LoaderSource:
        return self.loader(data.train, collate=collate, lengths=[len(d.vectors) for d in data.train])

    def dataset_card(self) -> dict[str, Any]:
        if self.cfg.dataset == "tiny":
            return {"name": "tiny (invented biographies, written by the project)", "files": [],
                    "license": "Apache-2.0 (taskzoo)"}
        from taskzoo.data.bbc import KAGGLE

        return {"name": f"BBC News Summary (2,127 distinct articles, split 80/10/10 by topic, "
                        f"split_seed {self.cfg.split_seed})", "files": [KAGGLE],
                "license": "research use; the BBC keeps copyright (Greene & Cunningham 2006)"}

    def example_inputs(self, n: int) -> list[Any]:
        from taskzoo.data.tiny_qa import load_tiny_summaries

        docs = load_tiny_summaries()["dev"]
        return [docs[i % len(docs)][0] for i in range(n)]

    # -- model
    def build_model(self, data: SummaryData) -> nn.Module:
        c = self.cfg
        return build(c.model, input_dim=data.embedder.encoder.config.hidden_size + FEATURES,
                     hidden_dim=c.hidden_dim, positions=c.positions, dropout=c.dropout,
                     features=FEATURES)

    # -- step
    def step(self, model: nn.Module, batch: DocBatch) -> StepOutput:
        logits = model(batch.vectors, batch.lengths)
        real = batch.labels >= 0
        loss = F.binary_cross_entropy_with_logits(logits[real], batch.labels[real])
        return StepOutput(loss=loss, size=len(batch.lengths))

    # -- evaluate
    def _k(self, n: int) -> int:
        return length_of(n, sentences=self.cfg.sentences, ratio=self.cfg.ratio)

    def scores(self, model: nn.Module, docs: list[Doc]) -> list[list[float]]:
        out: list[list[float]] = [[] for _ in docs]
        for idx, batch in eval_batches(docs, batch_size=self.cfg.eval_batch_size, collate=collate,
                                       lengths=[len(d.vectors) for d in docs]):
            batch = self.runtime.to_device(batch)
            logits = model(batch.vectors, batch.lengths).float().cpu()
            for j, i in enumerate(idx):
                out[i] = logits[j, : len(docs[i].vectors)].tolist()
        return out

    def _rouge(self, docs: list[Doc], picks: list[list[int]], split: str,
               suffix: str = "") -> dict[str, float]:
        pairs = [(" ".join(d.sentences[i] for i in p), d.reference) for d, p in zip(docs, picks)]
        return {f"{split}/{k}{suffix}": v for k, v in rouge(pairs).items()}

    def evaluate(self, model: nn.Module, data: SummaryData, split: str) -> dict[str, float]:
        docs = data.splits[split]
        picks = [top_k(s, self._k(len(s))) for s in self.scores(model, docs)]
        return self._rouge(docs, picks, split)

    def final_metrics(self, model: nn.Module, data: SummaryData) -> dict[str, float]:
        """Lead-3, Lead-k (the model's length), TextRank (the model's length) and the oracle."""
        out: dict[str, float] = {}
        for split, docs in data.splits.items():
            for name, picks in baseline_picks(docs, self._k).items():
                out.update(self._rouge(docs, picks, split, f"_{name}"))
        return out

    # -- predictor
    def predictor(self, model: nn.Module, data: SummaryData) -> SummaryPredictor:
        return SummaryPredictor(model, data.embedder, data.subwords, self.runtime,
                                sentences=self.cfg.sentences, ratio=self.cfg.ratio,
                                max_tokens=self.cfg.max_tokens,
                                embed_batch_size=self.cfg.embed_batch_size)
