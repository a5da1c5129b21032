"""Sentiment analysis: binary polarity of a sentence (SST-2), with RNN or CNN classifiers
trained from scratch, or a pretrained transformer encoder fine-tuned.

    taskzoo run sentiment                      # SST-2 through the hub, default recipe
    taskzoo run sentiment dataset=tiny         # 320 project-written sentences, offline
    taskzoo run sentiment model=minilm         # fine-tune MiniLM-L6 (pretrained, pinned)
    taskzoo run sentiment model=hf:<repo>@<commit>        # any Hugging Face encoder
    taskzoo predict sentiment --from DIR "a gripping , beautiful film"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.config import (
    NonNegativeInt,
    PositiveInt,
    Probability,
    Range,
    SupervisedConfig,
)
from taskzoo.data.loader import LoaderSource, eval_batches
from taskzoo.data.text import Vocab, tokenize
from taskzoo.errors import CheckpointError
from taskzoo.models import build
from taskzoo.tasks import TASKS
from taskzoo.tasks.base import Reference, Task
from taskzoo.tasks.common.distill import DistillConfig
from taskzoo.tasks.common.pretrained_text import is_pretrained
from taskzoo.tasks.sentiment.data import LABELS, SentimentData, TextBatch, collate
from taskzoo.tasks.sentiment.predictor import SentimentPredictor
from taskzoo.train.types import StepOutput


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True, kw_only=True)
class SentimentFields(SupervisedConfig):
    """The sentiment task's own fields; SentimentConfig adds distillation's after them."""

    dataset: Literal["sst2", "tiny"] = "sst2"  # sst2 (GLUE SST-2, downloaded) or tiny (embedded)
    model: str = "bigru"  # lstm, gru, bilstm, bigru, textcnn, minilm or hf:<repo>@<commit>
    epochs: int = 2  # passes over the training set
    batch_size: int = 64  # sentences per step
    lr: float = 2e-3  # AdamW peak learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    schedule: Literal["constant", "linear", "cosine"] = "linear"  # decay to 0 over the run
    warmup_steps: int = 100  # linear warm-up steps
    grad_clip: float = 5.0  # max gradient norm
    eval_every: int = 0  # steps between dev evaluations; 0 = at the end of each epoch
    keep: Literal["best", "last"] = "last"  # deliver the final weights: dev is not used to select
    # <= 4096: generous (the recipes use 32-512); a 4096 x 4096 matrix is already 64 MB
    embed_dim: Annotated[int, Range(1, 4096)] = 128  # word embedding size
    # <= 4096: generous (the recipes use 32-512); a 4096 x 4096 matrix is already 64 MB
    hidden_dim: Annotated[int, Range(1, 4096)] = 128  # RNN hidden size per direction
    # <= 8: generous (the recipes use 1-2); each layer is one more full RNN pass and its memory
    num_layers: Annotated[int, Range(1, 8)] = 1  # stacked RNN layers
    # <= 4096: generous (the recipes use 32-512); a 4096 x 4096 matrix is already 64 MB
    num_filters: Annotated[int, Range(1, 4096)] = 100  # textcnn: filters per kernel size
    kernel_sizes: Annotated[tuple[int, ...], Range(1)] = (3, 4, 5)  # textcnn: filter widths
    pooling: Literal["max", "mean", "last"] = "max"  # RNN: how token states become one vector
    encoder_pooling: Literal["mean", "cls"] = "mean"  # transformer: mean of tokens or [CLS]
    train_layers: Annotated[int, Range(-1)] = -1  # transformer: top k layers trained; -1 = all
    train_embeddings: bool = False  # transformer: fine-tune the embeddings too (else frozen, left to the base)
    layer_decay: Annotated[float, Range(0, 1, open_lo=True)] = 1.0  # transformer: lr factor per layer down
    dropout: Probability = 0.5  # dropout before the classifier
    embed_dropout: Probability = 0.3  # dropout on word embeddings
    min_freq: PositiveInt = 1  # words seen fewer times in train map to <unk>
    max_tokens: PositiveInt = 256  # longer inputs are truncated
    # <= 8192: a batch is padded and held in memory at once
    eval_batch_size: Annotated[int, Range(1, 8192)] = 512  # sentences per evaluation batch


@dataclass(frozen=True, kw_only=True)
class SentimentConfig(DistillConfig, SentimentFields):
    """The sentiment task's config: its own fields, then distillation's."""

    augment: NonNegativeInt = 0  # distillation: teacher-labelled augmented copies per sentence


# ---------------------------------------------------------------------------- task
@TASKS.register("sentiment", aliases=("sentiment_analysis", "sst2", "sst"))
class SentimentTask(Task[SentimentConfig]):
    name = "sentiment"
    Config = SentimentConfig
    description = "binary sentiment of a sentence (SST-2); RNN / TextCNN classifiers, fine-tuned MiniLM"
    throughput_unit = "sentences"
    monitor = "dev/accuracy"
    models = ("lstm", "gru", "bilstm", "bigru", "textcnn", "minilm")
    model_schemes = ("hf",)  # model=hf:<repo>@<commit> (built as hf_classifier)
    eval_splits = ("dev",)
    final_splits = ("dev",)
    # The tiny set has 256 training sentences: more epochs and small batches, or nothing learns.
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"epochs": 10, "batch_size": 16, "warmup_steps": 10},
    }
    references = (
        Reference("dev/accuracy", 0.827, "Kim 2014, CNN-rand (SST-2 test)",
                  "random init, test split; our figure is dev"),
        Reference("dev/accuracy", 0.875, "BiLSTM + GloVe (GLUE baseline, Wang et al. 2019)",
                  "pretrained embeddings"),
    )

    # -- data
    def _load_rows(self) -> dict[str, list[tuple[str, int]]]:
        if self.cfg.dataset == "tiny":
            from taskzoo.data.tiny_sentiment import load_tiny_sentiment

            train, dev = load_tiny_sentiment()
            return {"train": train, "dev": dev}
        from taskzoo.data.sst2 import load_sst2

        return {"train": load_sst2("train"), "dev": load_sst2("dev")}

    @classmethod
    def implied_overrides(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        from taskzoo.tasks.common.pretrained_text import FINETUNE_RECIPE, is_pretrained

        if not is_pretrained(str(overrides.get("model", ""))):
            return {}
        # SST-2, decided on dev (README, Results): one epoch of the top 4 of MiniLM's 6 layers
        # reached 0.897 in 7.5 min; the top 3, 0.878-0.892; all 6 at 1e-4, 0.888 in 9+ min
        recipe = {**FINETUNE_RECIPE, "train_layers": 4}
        # 256 tiny sentences: a few epochs of small batches, a short warm-up
        tiny = {"epochs": 4, "batch_size": 16, "warmup_steps": 10}
        return {**recipe, **(tiny if overrides.get("dataset") == "tiny" else {})}

    def build_data(self, state: dict[str, Any] | None = None) -> SentimentData:
        rows = self._load_rows()
        data = (self._subword_data(rows, state) if is_pretrained(self.cfg.model)
                else self._word_data(rows, state))
        if state and "teacher" in state:  # rebuilt from a distilled run: its teacher, not again
            data.teacher = state["teacher"]
        elif self.cfg.teacher:
            self._distil(data, [tokenize(text)[: self.cfg.max_tokens] for text, _ in rows["train"]],
                         [label for _, label in rows["train"]])
        return data

    def _word_data(self, rows: dict[str, list[tuple[str, int]]],
                   state: dict[str, Any] | None) -> SentimentData:
        tokens = {s: [tokenize(text)[: self.cfg.max_tokens] for text, _ in r] for s, r in rows.items()}
        vocab = (Vocab.from_list(state["vocab"]) if state else
                 Vocab.build(tokens["train"], min_freq=self.cfg.min_freq))  # train only: no dev leak
        if state and list(state["labels"]) != list(LABELS):
            raise CheckpointError(f"the starting weights predict {state['labels']}, not {list(LABELS)}")
        encoded = {
            s: [(torch.tensor(vocab.encode(t) or [vocab.unk_id]), label)
                for t, (_, label) in zip(tokens[s], rows[s])]
            for s in rows
        }
        return SentimentData(
            train=encoded["train"], splits={"dev": encoded["dev"]}, labels=list(LABELS),
            vocab=vocab, lengths={s: [len(e[0]) for e in encoded[s]] for s in encoded},
        )

    quick: ClassVar[dict[str, Any]] = {"dataset": "tiny"}

    def example_inputs(self, n: int) -> list[Any]:
        from taskzoo.data.tiny_sentiment import load_tiny_sentiment

        texts = [text for text, _ in load_tiny_sentiment()[1]]
        return [texts[i % len(texts)] for i in range(n)]

    def dataset_card(self) -> dict[str, Any]:
        if self.cfg.dataset == "tiny":
            return {"name": "tiny (320 sentences written by the project)", "files": [],
                    "license": "Apache-2.0 (taskzoo)"}
        from taskzoo import hub
        from taskzoo.data.sst2 import FILES

        return {"name": "GLUE SST-2 (train 67,349 / dev 872)", "files": hub.describe(FILES),
                "license": "no explicit license, research use; cite Socher et al. 2013 and "
                           "Wang et al. 2019 (GLUE)"}

    def _encode_words(self, data: SentimentData, sentences: list[list[str]]) -> list[torch.Tensor]:
        """Student ids of word lists (augmented sentences; "[MASK]" is an unknown word)."""
        if data.subwords is not None:
            ids = data.subwords.encode([" ".join(w) for w in sentences], max_tokens=self.cfg.max_tokens)
            return [torch.tensor(i) for i in ids]
        return [torch.tensor(data.vocab.encode(w) or [data.vocab.unk_id]) for w in sentences]

    def _distil(self, data: SentimentData, words: list[list[str]], labels: list[int]) -> None:
        """Train rows get the teacher's scores; `augment` copies of each sentence join them."""
        from taskzoo.tasks.common import distill

        teacher, data.teacher = distill.load_teacher(self.cfg.teacher, self.name,
                                                     device=str(self.runtime.device),
                                                     labels=data.labels)
        extra = (distill.augment(words, distill.pos_tags(words), copies=self.cfg.augment,
                                 seed=self.cfg.seed) if self.cfg.augment else [])
        scores = distill.teacher_logits(teacher, words + extra)
        rows = [(ids, label, scores[i]) for i, (ids, label) in enumerate(data.train)]
        rows += [(ids, -1, scores[len(words) + i])
                 for i, ids in enumerate(self._encode_words(data, extra))]
        data.train = rows
        data.lengths["train"] = [len(r[0]) for r in rows]
        data.teacher["augmented"] = len(extra)

    def _subword_data(self, rows: dict[str, list[tuple[str, int]]],
                      state: dict[str, Any] | None) -> SentimentData:
        """Rows through the pretrained encoder's own tokenizer (SST-2 text is already
        PTB-tokenised; the predictor tokenises user text the same way first)."""
        from taskzoo.hf.encoders import Subwords
        from taskzoo.tasks.common.pretrained_text import pretrained_repo, repo_from_state

        if state and list(state["labels"]) != list(LABELS):
            raise CheckpointError(f"the starting weights predict {state['labels']}, not {list(LABELS)}")
        repo = repo_from_state(state) if state else pretrained_repo(self.cfg.model)
        subwords = Subwords.from_repo(repo)
        encoded = {s: [(torch.tensor(ids), label) for ids, (_, label) in
                       zip(subwords.encode([t for t, _ in r], max_tokens=self.cfg.max_tokens), r)]
                   for s, r in rows.items()}
        return SentimentData(train=encoded["train"], splits={"dev": encoded["dev"]},
                             labels=list(LABELS), subwords=subwords,
                             lengths={s: [len(e[0]) for e in encoded[s]] for s in encoded})

    def data_state(self, data: SentimentData) -> dict[str, Any]:
        taught = {"teacher": data.teacher} if data.teacher else {}  # a distilled card names it
        if data.subwords is not None:
            from taskzoo.hf.encoders import describe

            return {"labels": data.labels, "encoder": describe(data.subwords.repo), **taught}
        return {"labels": data.labels, "vocab": data.vocab.to_list(), **taught}

    def data_from_state(self, state: dict[str, Any]) -> SentimentData:
        if "encoder" in state:
            from taskzoo.hf.encoders import Subwords
            from taskzoo.tasks.common.pretrained_text import repo_from_state

            return SentimentData(train=None, labels=list(state["labels"]),
                                 subwords=Subwords.from_repo(repo_from_state(state)))
        return SentimentData(train=None, labels=list(state["labels"]),
                             vocab=Vocab.from_list(state["vocab"]))

    def batches(self, data: SentimentData, model: nn.Module) -> LoaderSource:
        return self.loader(data.train, collate=collate, lengths=data.lengths["train"])

    # -- model
    def build_model(self, data: SentimentData) -> nn.Module:
        c = self.cfg
        if data.subwords is not None:
            from taskzoo.hf.encoders import encoder_config
            from taskzoo.tasks.common.pretrained_text import arch_name, attach_base, layer_recipe

            repo = data.subwords.repo
            model = build(arch_name(c.model, "hf_classifier"), num_classes=len(data.labels),
                          encoder_config=encoder_config(repo), encoder_pooling=c.encoder_pooling,
                          dropout=c.dropout)
            attach_base(model, repo)
            layer_recipe(model, train_layers=c.train_layers,
                         train_embeddings=c.train_embeddings, layer_decay=c.layer_decay)
            return model
        return build(c.model, vocab_size=len(data.vocab), num_classes=len(data.labels),
                     embed_dim=c.embed_dim, hidden_dim=c.hidden_dim, num_layers=c.num_layers,
                     num_filters=c.num_filters, kernel_sizes=c.kernel_sizes, pooling=c.pooling,
                     dropout=c.dropout, embed_dropout=c.embed_dropout)

    # -- step
    def step(self, model: nn.Module, batch: TextBatch) -> StepOutput:
        logits = model(batch.ids, batch.lengths)
        if batch.teacher is not None:
            from taskzoo.tasks.common.distill import distill_loss

            loss = distill_loss(logits, batch.teacher, batch.labels,
                                temperature=self.cfg.temperature, alpha=self.cfg.distill_alpha)
            return StepOutput(loss=loss, size=len(batch.labels))
        return StepOutput(loss=F.cross_entropy(logits, batch.labels), size=len(batch.labels))

    # -- evaluate
    def evaluate(self, model: nn.Module, data: SentimentData, split: str) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, f1_score  # lazy: ~1 s of import on load()

        rows = data.splits[split]
        preds = torch.empty(len(rows), dtype=torch.long)
        for idx, batch in eval_batches(rows, batch_size=self.cfg.eval_batch_size, collate=collate,
                                       lengths=data.lengths.get(split)):
            batch = self.runtime.to_device(batch)
            preds[idx] = model(batch.ids, batch.lengths).argmax(-1).cpu()
        gold = [label for _, label in rows]
        return {
            f"{split}/accuracy": float(accuracy_score(gold, preds.numpy())),
            f"{split}/f1": float(f1_score(gold, preds.numpy())),
        }

    # -- predictor
    def predictor(self, model: nn.Module, data: SentimentData) -> SentimentPredictor:
        return SentimentPredictor(model, data.vocab, data.labels, self.runtime,
                                  max_tokens=self.cfg.max_tokens,
                                  batch_size=self.cfg.eval_batch_size, subwords=data.subwords)
