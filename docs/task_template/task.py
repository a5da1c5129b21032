"""Topic of a short sentence, the template task: config, data, model, step, evaluate,
predictor, read top to bottom.

    taskzoo run topic                       # trains in seconds on the embedded sentences
    taskzoo predict topic --from DIR "the chef burnt the soup"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.config import PositiveInt, Probability, SupervisedConfig
from taskzoo.data.loader import LoaderSource, eval_batches
from taskzoo.data.text import Vocab, tokenize
from taskzoo.models import build
from taskzoo.tasks import TASKS
from taskzoo.tasks.base import Reference, Task
from taskzoo.train.types import StepOutput

from .data import LABELS, TextBatch, TopicData, collate, load_rows
from .predictor import TopicPredictor


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True, kw_only=True)
class TopicConfig(SupervisedConfig):
    dataset: Literal["tiny"] = "tiny"  # tiny (embedded, 150 sentences)
    model: str = "textcnn"  # textcnn, lstm, gru, bilstm or bigru (the zoo's text classifiers)
    epochs: int = 15  # passes over the training set
    batch_size: int = 16  # sentences per step
    lr: float = 3e-3  # AdamW peak learning rate
    embed_dim: PositiveInt = 32  # word embedding size
    hidden_dim: PositiveInt = 32  # RNN hidden size per direction
    num_filters: PositiveInt = 16  # textcnn: filters per kernel size
    dropout: Probability = 0.2  # dropout before the classifier


# ---------------------------------------------------------------------------- task
@TASKS.register("topic", aliases=("sentence_topic",))
class TopicTask(Task[TopicConfig]):
    name = "topic"
    Config = TopicConfig
    description = "topic of a short sentence (sport, food, weather): the template task"
    throughput_unit = "sentences"
    monitor = "dev/accuracy"  # picks the best checkpoint
    models = ("textcnn", "lstm", "gru", "bilstm", "bigru")
    quick: ClassVar[dict[str, Any]] = {"epochs": 3}  # `taskzoo bench --quick`
    references = (Reference("dev/accuracy", 1.0, "the sentences are separable by their words"),)

    # -- data
    def build_data(self, state: dict[str, Any] | None = None) -> TopicData:
        rows = {split: load_rows(split, seed=self.cfg.seed) for split in ("train", "dev")}
        words = {s: [tokenize(text) for text, _ in r] for s, r in rows.items()}
        # the vocabulary comes from train only (no dev leak), or from the starting weights
        vocab = Vocab.from_list(state["vocab"]) if state else Vocab.build(words["train"])
        encoded = {s: [(torch.tensor(vocab.encode(w) or [vocab.unk_id]), label)
                       for w, (_, label) in zip(words[s], rows[s])] for s in rows}
        return TopicData(train=encoded["train"], splits={"dev": encoded["dev"]},
                         labels=list(LABELS), vocab=vocab)

    def data_state(self, data: TopicData) -> dict[str, Any]:
        return {"labels": data.labels, "vocab": data.vocab.to_list()}

    def data_from_state(self, state: dict[str, Any]) -> TopicData:
        return TopicData(train=None, labels=list(state["labels"]),
                         vocab=Vocab.from_list(state["vocab"]))

    def batches(self, data: TopicData, model: nn.Module) -> LoaderSource:
        return self.loader(data.train, collate=collate)

    def example_inputs(self, n: int) -> list[Any]:
        texts = [text for text, _ in load_rows("dev")]
        return [texts[i % len(texts)] for i in range(n)]

    # -- model
    def build_model(self, data: TopicData) -> nn.Module:
        c = self.cfg
        return build(c.model, vocab_size=len(data.vocab), num_classes=len(data.labels),
                     embed_dim=c.embed_dim, hidden_dim=c.hidden_dim, num_filters=c.num_filters,
                     kernel_sizes=(1, 2), dropout=c.dropout)

    # -- step
    def step(self, model: nn.Module, batch: TextBatch) -> StepOutput:
        logits = model(batch.ids, batch.lengths)
        return StepOutput(loss=F.cross_entropy(logits, batch.labels), size=len(batch.labels))

    # -- evaluate
    def evaluate(self, model: nn.Module, data: TopicData, split: str) -> dict[str, float]:
        from sklearn.metrics import accuracy_score

        rows = data.splits[split]
        preds = torch.empty(len(rows), dtype=torch.long)
        for idx, batch in eval_batches(rows, batch_size=256, collate=collate):
            batch = self.runtime.to_device(batch)
            preds[idx] = model(batch.ids, batch.lengths).argmax(-1).cpu()
        return {f"{split}/accuracy": float(accuracy_score([y for _, y in rows], preds.numpy()))}

    # -- predictor
    def predictor(self, model: nn.Module, data: TopicData) -> TopicPredictor:
        return TopicPredictor(model, data.vocab, data.labels, self.runtime)
