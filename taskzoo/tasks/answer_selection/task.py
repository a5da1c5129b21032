"""Answer sentence selection: rank a question's candidate sentences so the ones that answer
it come first (WikiQA). Two models on a pretrained encoder:

- `minilm_cross` (default, accurate): a cross-encoder reads question and sentence together,
  one relevance score per pair;
- `minilm_bi` (fast): a bi-encoder embeds question and sentences apart, cosine is the score,
  so a collection's embeddings are computed once (the chatbot's retrieval).

The run also scores two baselines on the same questions: word overlap (non-stopword question
words in the sentence, Yang et al. 2015's Word Cnt) and the zero-shot cosine of the
encoder's own sentence embeddings.

    taskzoo run answer_selection                   # cross-encoder, WikiQA, filtered test
    taskzoo run answer_selection model=minilm_bi   # bi-encoder
    taskzoo predict answer_selection "who wrote hamlet ?" "Hamlet is a play." "Shakespeare wrote it."
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.config import PositiveFloat, Range
from taskzoo.data.loader import LoaderSource, eval_batches
from taskzoo.models import build
from taskzoo.tasks import TASKS
from taskzoo.tasks.answer_selection.data import (
    PairBatch,
    SelectionData,
    collate_pairs,
    encode_pairs,
    pair_scores,
)
from taskzoo.tasks.answer_selection.predictor import SelectionPredictor
from taskzoo.tasks.base import Reference, Task
from taskzoo.tasks.common.pretrained_text import FinetuneConfig
from taskzoo.train.types import StepOutput


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True, kw_only=True)
class SelectionConfig(FinetuneConfig):
    dataset: Literal["wikiqa", "tiny"] = "wikiqa"  # wikiqa (official splits) or tiny (embedded)
    model: str = "minilm_cross"  # minilm_cross, minilm_bi or hf:<repo>@<commit>
    pairing: Literal["cross", "bi"] = "cross"  # hf:<repo> models: read pairs together or apart
    epochs: int = 2  # passes over the training pairs
    warmup_steps: int = 50  # linear warm-up steps
    scale: PositiveFloat = 20.0  # bi-encoder: cosine x scale is the pair's logit
    pos_weight: PositiveFloat = 1.0  # weight of a right answer in the loss (they are ~1 in 9)
    max_tokens: Annotated[int, Range(8, 512)] = 128  # subword tokens per text (a pair: both)
    # <= 8192: a batch is padded and held in memory at once
    eval_batch_size: Annotated[int, Range(1, 8192)] = 128  # pairs per evaluation batch


def ranking_metrics(questions: list[Any], scores: list[list[float]]) -> tuple[float, float]:
    """(MAP, MRR) over questions with candidates' scores; ties keep the corpus's order."""
    from torchmetrics.functional.retrieval import (
        retrieval_average_precision,
        retrieval_reciprocal_rank,
    )

    aps, rrs = [], []
    for q, s in zip(questions, scores):
        # ranks as positive scores: torchmetrics counts a candidate scored <= 0 as not
        # retrieved (logits often are); of equal scores the earlier sentence ranks first
        order = sorted(range(len(s)), key=lambda i: (-s[i], i))
        preds = torch.empty(len(s))
        preds[order] = torch.arange(len(s), 0, -1, dtype=torch.float32)
        target = torch.tensor(q.labels, dtype=torch.bool)
        aps.append(float(retrieval_average_precision(preds, target)))
        rrs.append(float(retrieval_reciprocal_rank(preds, target)))
    return sum(aps) / len(aps), sum(rrs) / len(rrs)


def overlap_scores(question: str, sentences: tuple[str, ...]) -> list[float]:
    """Non-stopword question words each sentence contains (Yang et al. 2015's Word Cnt)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = {w for w in question.lower().split() if w.isalnum() and w not in ENGLISH_STOP_WORDS}
    return [float(len(words & set(s.lower().split()))) for s in sentences]


# ---------------------------------------------------------------------------- task
@TASKS.register("answer_selection", aliases=("wikiqa", "answer_sentence_selection"))
class SelectionTask(Task[SelectionConfig]):
    name = "answer_selection"
    Config = SelectionConfig
    description = "rank a question's candidate sentences (WikiQA): cross- and bi-encoders"
    throughput_unit = "pairs"
    monitor = "dev/map"
    models = ("minilm_cross", "minilm_bi")
    model_schemes = ("hf",)
    eval_splits = ("dev",)
    final_splits = ("dev", "test")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"epochs": 3, "batch_size": 16, "warmup_steps": 10, "train_layers": -1},
    }
    quick: ClassVar[dict[str, Any]] = {"dataset": "tiny", "epochs": 1}
    references = (
        Reference("test/map", 0.652, "Yang et al. 2015, CNN-Cnt (WikiQA filtered test)"),
        Reference("test/map", 0.4891, "Yang et al. 2015, Word Cnt (WikiQA filtered test)",
                  "the word-overlap baseline; ours is test/map_overlap"),
        Reference("test/map", 0.8307, "Garg et al. 2020, TANDA RoBERTa-large (WikiQA)",
                  "355M parameters, transferred from ASNQ first"),
    )

    @property
    def pairing(self) -> str:
        m = self.cfg.model
        return "bi" if m == "minilm_bi" else "cross" if m == "minilm_cross" else self.cfg.pairing

    # -- data
    def _questions(self) -> dict[str, list[Any]]:
        if self.cfg.dataset == "tiny":
            from taskzoo.data.tiny_qa import load_tiny_selection

            return load_tiny_selection()
        from taskzoo.data.wikiqa import load_wikiqa

        return {s: load_wikiqa(s) for s in ("train", "dev", "test")}

    def _pairs(self, data: SelectionData, questions: list[Any]) -> list[tuple[Any, ...]]:
        flat = [(q.question, s, y) for q in questions for s, y in zip(q.sentences, q.labels)]
        return encode_pairs(data.subwords, data.pairing, [f[0] for f in flat],
                            [f[1] for f in flat], [f[2] for f in flat], self.cfg.max_tokens)

    def build_data(self, state: dict[str, Any] | None = None) -> SelectionData:
        from taskzoo.hf.encoders import Subwords
        from taskzoo.tasks.common.pretrained_text import pretrained_repo, repo_from_state

        repo = repo_from_state(state) if state else pretrained_repo(self.cfg.model)
        qs = self._questions()
        # questions no sentence answers teach nothing a ranking uses (the standard practice)
        train = [q for q in qs["train"] if any(q.labels)]
        evals = {s: [q for q in qs[s] if q.filtered] for s in ("dev", "test")}
        data = SelectionData(train=None, subwords=Subwords.from_repo(repo), pairing=self.pairing,
                             questions=evals)
        data.train = self._pairs(data, train)
        data.splits = {s: self._pairs(data, v) for s, v in evals.items()}
        return data

    def data_state(self, data: SelectionData) -> dict[str, Any]:
        from taskzoo.hf.encoders import describe

        return {"labels": [], "pairing": data.pairing, "encoder": describe(data.subwords.repo)}

    def data_from_state(self, state: dict[str, Any]) -> SelectionData:
        from taskzoo.hf.encoders import Subwords
        from taskzoo.tasks.common.pretrained_text import repo_from_state

        return SelectionData(train=None, subwords=Subwords.from_repo(repo_from_state(state)),
                             pairing=state["pairing"])

    def _lengths(self, rows: list[tuple[Any, ...]]) -> list[int]:
        return [len(r[0]) + (len(r[1]) if self.pairing == "bi" else 0) for r in rows]

    def batches(self, data: SelectionData, model: nn.Module) -> LoaderSource:
        return self.loader(data.train, collate=lambda rows: collate_pairs(rows, data.pairing),
                           lengths=self._lengths(data.train))

    def dataset_card(self) -> dict[str, Any]:
        if self.cfg.dataset == "tiny":
            return {"name": "tiny (invented people, written by the project)", "files": [],
                    "license": "Apache-2.0 (taskzoo)"}
        from taskzoo import hub
        from taskzoo.data.wikiqa import FILES

        return {"name": "WikiQA (Yang et al. 2015): train questions with an answer; filtered "
                        "dev 122 / test 237", "files": hub.describe(FILES),
                "license": "Microsoft Research Data License Agreement (research use)"}

    def example_inputs(self, n: int) -> list[Any]:
        from taskzoo.data.tiny_qa import load_tiny_selection

        qs = load_tiny_selection()["dev"]
        return [(qs[i % len(qs)].question, list(qs[i % len(qs)].sentences)) for i in range(n)]

    # -- model
    def build_model(self, data: SelectionData) -> nn.Module:
        from taskzoo.hf.encoders import encoder_config
        from taskzoo.tasks.common.pretrained_text import attach_base, layer_recipe

        c, repo = self.cfg, data.subwords.repo
        config = encoder_config(repo)
        if data.pairing == "cross":
            model = (build("minilm_cross", encoder_config=config, dropout=c.dropout)
                     if not c.model.startswith("hf:") else
                     build("hf_classifier", num_classes=1, encoder_config=config,
                           encoder_pooling="cls", dropout=c.dropout))
        else:
            model = build("minilm_bi" if not c.model.startswith("hf:") else "hf_bi",
                          encoder_config=config)
        attach_base(model, repo)
        layer_recipe(model, train_layers=c.train_layers, train_embeddings=c.train_embeddings,
                     layer_decay=c.layer_decay)
        return model

    # -- step
    def step(self, model: nn.Module, batch: PairBatch) -> StepOutput:
        logits = pair_scores(model, batch, self.cfg.scale)
        weight = torch.tensor(self.cfg.pos_weight, device=logits.device)
        loss = F.binary_cross_entropy_with_logits(logits, batch.labels, pos_weight=weight)
        return StepOutput(loss=loss, size=len(batch.labels))

    # -- evaluate
    def _scores(self, model: nn.Module, data: SelectionData, split: str) -> list[list[float]]:
        rows = data.splits[split]
        flat = torch.empty(len(rows))
        for idx, batch in eval_batches(rows, batch_size=self.cfg.eval_batch_size,
                                       collate=lambda r: collate_pairs(r, data.pairing),
                                       lengths=self._lengths(rows)):
            flat[idx] = pair_scores(model, self.runtime.to_device(batch), self.cfg.scale).float().cpu()
        out, at = [], 0
        for q in data.questions[split]:
            out.append(flat[at:at + len(q.sentences)].tolist())
            at += len(q.sentences)
        return out

    def evaluate(self, model: nn.Module, data: SelectionData, split: str) -> dict[str, float]:
        ap, rr = ranking_metrics(data.questions[split], self._scores(model, data, split))
        return {f"{split}/map": ap, f"{split}/mrr": rr}

    def final_metrics(self, model: nn.Module, data: SelectionData) -> dict[str, float]:
        """The two baselines on the same questions: word overlap, zero-shot cosine."""
        from taskzoo.tasks.common.pretrained_text import load_embedder

        zero_shot = load_embedder(data.subwords, self.runtime)
        bi = SelectionData(train=None, subwords=data.subwords, pairing="bi",
                           questions=data.questions)
        bi.splits = {s: self._pairs(bi, qs) for s, qs in data.questions.items()}
        out = {}
        with self.runtime.inference():
            for split, qs in data.questions.items():
                for name, scores in (("overlap", [overlap_scores(q.question, q.sentences) for q in qs]),
                                     ("cosine", self._scores(zero_shot, bi, split))):
                    ap, rr = ranking_metrics(qs, scores)
                    out[f"{split}/map_{name}"], out[f"{split}/mrr_{name}"] = ap, rr
        return out

    # -- predictor
    def predictor(self, model: nn.Module, data: SelectionData) -> SelectionPredictor:
        return SelectionPredictor(model, data.subwords, data.pairing, self.runtime,
                                  max_tokens=self.cfg.max_tokens, scale=self.cfg.scale,
                                  batch_size=self.cfg.eval_batch_size)
