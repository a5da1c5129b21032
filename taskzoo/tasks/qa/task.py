"""Extractive question answering: a pretrained encoder reads a question with a context and
points at the answer's first and last token (BERT's SQuAD recipe); long contexts are read in
overlapping windows and the best span over all of them wins.

    taskzoo run qa                                  # MiniLM on SQuAD v1.1 dev, split by article
    taskzoo run qa dataset=tiny                     # invented people, offline, seconds
    taskzoo predict qa "Who wrote it?" "It was written by Ann Lee in 1990."

Only SQuAD's dev set is on the mirror: training, tuning and testing use disjoint articles of
it (38 / 5 / 5, `split_seed`), so the figures are on held-out SQuAD dev articles, not
comparable with the leaderboard's, whose models train on 87,599 train questions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.config import NonNegativeInt, PositiveInt, Range
from taskzoo.data.loader import LoaderSource, eval_batches
from taskzoo.models import build
from taskzoo.tasks import TASKS
from taskzoo.tasks.base import DataBundle, Reference, Task
from taskzoo.tasks.common.pretrained_text import FinetuneConfig
from taskzoo.tasks.qa.data import SpanBatch, Window, best_answer, collate, windows
from taskzoo.tasks.qa.predictor import QAPredictor
from taskzoo.train.types import StepOutput


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True, kw_only=True)
class QAConfig(FinetuneConfig):
    dataset: Literal["squad", "tiny"] = "squad"  # squad (v1.1 dev, split by article) or tiny (embedded)
    model: str = "minilm_qa"  # minilm_qa or hf:<repo>@<commit>
    split_seed: NonNegativeInt = 0  # which SQuAD articles train, tune and test
    # FinetuneConfig's recipe, decided on dev (README): one epoch of all 6 layers at 1e-4
    # (training only the top 2 left dev F1 at 0.29; all 6 reached 0.51 by 2/3 of the epoch)
    max_tokens: Annotated[int, Range(16, 512)] = 384  # window length in subword tokens
    stride: PositiveInt = 128  # tokens consecutive windows of a long context share
    # <= 512: no span is longer than max_tokens' window
    max_answer_tokens: Annotated[int, Range(1, 512)] = 30  # longest answer span considered
    # <= 8192: a batch is padded and held in memory at once
    eval_batch_size: Annotated[int, Range(1, 8192)] = 64  # windows per evaluation batch


@dataclass
class QAData(DataBundle):
    subwords: Any = None  # the encoder's Subwords tokenizer
    examples: dict[str, list[Any]] = field(default_factory=dict)  # SquadExamples per split


def _windows(cfg: QAConfig, tok: Any, rows: list[Any], train: bool) -> list[Window]:
    return windows(tok, [r.question for r in rows], [r.context for r in rows],
                   max_tokens=cfg.max_tokens, stride=cfg.stride,
                   answers=[r.answers[0] for r in rows] if train else None)


# ---------------------------------------------------------------------------- task
@TASKS.register("qa", aliases=("question_answering", "squad"))
class QATask(Task[QAConfig]):
    name = "qa"
    Config = QAConfig
    description = "extractive question answering (SQuAD v1.1): a span head on a pretrained encoder"
    throughput_unit = "windows"
    monitor = "dev/f1"
    models = ("minilm_qa",)
    model_schemes = ("hf",)
    eval_splits = ("dev",)
    final_splits = ("dev", "test")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"epochs": 6, "batch_size": 16, "warmup_steps": 10, "max_tokens": 128,
                 "train_layers": -1, "lr": 3e-4},
    }
    quick: ClassVar[dict[str, Any]] = {"dataset": "tiny", "epochs": 1}
    references = (
        Reference("test/f1", 0.51, "Rajpurkar et al. 2016, logistic regression (SQuAD v1.1 dev)",
                  "trained on the 87,599 train questions; ours on 38 dev articles, tested on 5 others"),
        Reference("test/f1", 0.885, "Devlin et al. 2019, BERT-base (SQuAD v1.1 dev)",
                  "110M parameters, the full train set; MiniLM-L6 has 22M"),
        Reference("test/f1", 0.912, "Rajpurkar et al. 2016, human performance (SQuAD v1.1 test)"),
    )

    # -- data
    def _rows(self) -> dict[str, list[Any]]:
        if self.cfg.dataset == "tiny":
            from taskzoo.data.tiny_qa import load_tiny_qa

            return dict(zip(("train", "dev", "test"), load_tiny_qa()))
        from taskzoo.data.squad import load_squad, split_articles

        return split_articles(load_squad(), seed=self.cfg.split_seed)

    def build_data(self, state: dict[str, Any] | None = None) -> QAData:
        from taskzoo.hf.encoders import Subwords
        from taskzoo.tasks.common.pretrained_text import pretrained_repo, repo_from_state

        repo = repo_from_state(state) if state else pretrained_repo(self.cfg.model)
        subwords = Subwords.from_repo(repo)
        rows = self._rows()
        return QAData(train=_windows(self.cfg, subwords.tok, rows["train"], train=True),
                      splits={s: _windows(self.cfg, subwords.tok, rows[s], train=False)
                              for s in ("dev", "test")},
                      subwords=subwords, examples={s: rows[s] for s in ("dev", "test")})

    def data_state(self, data: QAData) -> dict[str, Any]:
        from taskzoo.hf.encoders import describe

        return {"labels": [], "encoder": describe(data.subwords.repo)}

    def data_from_state(self, state: dict[str, Any]) -> QAData:
        from taskzoo.hf.encoders import Subwords
        from taskzoo.tasks.common.pretrained_text import repo_from_state

        return QAData(train=None, subwords=Subwords.from_repo(repo_from_state(state)))

    def batches(self, data: QAData, model: nn.Module) -> LoaderSource:
        return self.loader(data.train, collate=collate, lengths=[len(w.ids) for w in data.train])

    def dataset_card(self) -> dict[str, Any]:
        if self.cfg.dataset == "tiny":
            return {"name": "tiny (invented people, written by the project)", "files": [],
                    "license": "Apache-2.0 (taskzoo)"}
        from taskzoo import hub
        from taskzoo.data.squad import JSON, SPLIT

        return {"name": f"SQuAD v1.1 dev, articles split {SPLIT} (split_seed "
                        f"{self.cfg.split_seed})", "files": hub.describe([JSON]),
                "license": "CC BY-SA 4.0 (Rajpurkar et al. 2016)"}

    def example_inputs(self, n: int) -> list[Any]:
        from taskzoo.data.tiny_qa import load_tiny_qa

        rows = load_tiny_qa()[1]
        return [(rows[i % len(rows)].question, rows[i % len(rows)].context) for i in range(n)]

    # -- model
    def build_model(self, data: QAData) -> nn.Module:
        from taskzoo.hf.encoders import encoder_config
        from taskzoo.tasks.common.pretrained_text import arch_name, attach_base, layer_recipe

        c, repo = self.cfg, data.subwords.repo
        model = build(arch_name(c.model, "hf_qa"), encoder_config=encoder_config(repo),
                      dropout=c.dropout)
        attach_base(model, repo)
        layer_recipe(model, train_layers=c.train_layers, train_embeddings=c.train_embeddings,
                     layer_decay=c.layer_decay)
        return model

    # -- step
    def step(self, model: nn.Module, batch: SpanBatch) -> StepOutput:
        logits = model(batch.ids, batch.lengths, batch.types)
        # padding never holds an answer
        pad = torch.arange(logits.shape[1], device=logits.device)[None] >= batch.lengths[:, None]
        logits = logits.masked_fill(pad.unsqueeze(-1), -1e4)
        loss = (F.cross_entropy(logits[..., 0], batch.starts)
                + F.cross_entropy(logits[..., 1], batch.ends)) / 2
        return StepOutput(loss=loss, size=len(batch.starts))

    # -- evaluate
    def answers(self, model: nn.Module, data: QAData, split: str) -> list[dict[str, Any]]:
        """The model's answer to each question of `split` (best span over its windows)."""
        wins = data.splits[split]
        logits: list[torch.Tensor | None] = [None] * len(wins)
        for idx, batch in eval_batches(wins, batch_size=self.cfg.eval_batch_size, collate=collate,
                                       lengths=[len(w.ids) for w in wins]):
            batch = self.runtime.to_device(batch)
            out = model(batch.ids, batch.lengths, batch.types).float().cpu()
            for j, i in enumerate(idx):
                logits[i] = out[j]
        per_example: dict[int, list[tuple[torch.Tensor, Window]]] = {}
        for lg, w in zip(logits, wins):
            per_example.setdefault(w.example, []).append((lg, w))
        rows = data.examples[split]
        return [best_answer(r.context, per_example.get(i, []), self.cfg.max_answer_tokens)
                for i, r in enumerate(rows)]

    def evaluate(self, model: nn.Module, data: QAData, split: str) -> dict[str, float]:
        from torchmetrics.functional.text import squad  # the official SQuAD v1.1 normalisation

        rows, preds = data.examples[split], self.answers(model, data, split)
        self._last = {split: preds}
        scores = squad([{"prediction_text": p["answer"], "id": r.id} for p, r in zip(preds, rows)],
                       [{"answers": {"answer_start": [a for _, a in r.answers],
                                     "text": [t for t, _ in r.answers]}, "id": r.id} for r in rows])
        return {f"{split}/exact_match": float(scores["exact_match"]) / 100,
                f"{split}/f1": float(scores["f1"]) / 100}

    def reports(self, model: nn.Module, data: QAData) -> dict[str, str | bytes]:
        """predictions_test.jsonl: each test question, the answer given and the gold ones."""
        import json

        preds = getattr(self, "_last", {}).get("test") or self.answers(model, data, "test")
        lines = [json.dumps({"id": r.id, "title": r.title, "question": r.question, **p,
                             "gold": sorted({t for t, _ in r.answers})}, ensure_ascii=False)
                 for r, p in zip(data.examples["test"], preds)]
        return {"predictions_test.jsonl": "\n".join(lines) + "\n"}

    # -- predictor
    def predictor(self, model: nn.Module, data: QAData) -> QAPredictor:
        return QAPredictor(model, data.subwords, self.runtime, max_tokens=self.cfg.max_tokens,
                           stride=self.cfg.stride, max_answer_tokens=self.cfg.max_answer_tokens,
                           batch_size=max(1, self.cfg.eval_batch_size // 4))
