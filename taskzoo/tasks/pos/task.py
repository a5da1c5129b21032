"""Part-of-speech tagging: UPOS (or XPOS) tags for every word, on UD English-EWT.

    taskzoo run pos                            # UD EWT r2.16 through the hub, default recipe
    taskzoo run pos dataset=tiny               # 400 generated sentences, offline
    taskzoo run pos model=minilm_tagger        # fine-tune MiniLM-L6 (pretrained, pinned)
    taskzoo predict pos --from DIR "The old man the boats."

Words feed the model twice: a word embedding (lower-cased, digits as 0) and a character CNN
over the exact spelling, so a word never seen in training is tagged from its shape and its
context. A pretrained transformer tags each word from its first subword instead
(tasks/pos/data.py). Metrics are token accuracy over all words and over words unseen in
training.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.config import PositiveInt, Probability, Range, SupervisedConfig
from taskzoo.data.loader import LoaderSource, eval_batches
from taskzoo.data.text import Vocab
from taskzoo.data.ud import TaggedSentence
from taskzoo.models import build
from taskzoo.tasks import TASKS
from taskzoo.tasks.base import Predictor, Reference, Task
from taskzoo.tasks.common.distill import DistillConfig
from taskzoo.tasks.common.pretrained_text import is_pretrained
from taskzoo.tasks.pos.data import (
    CHAR_SPECIALS,
    CharTable,
    PosData,
    TagBatch,
    collate,
    encode_words,
    normalize,
    sentence_tags,
    tag_scores,
)
from taskzoo.train.types import StepOutput


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True, kw_only=True)
class PosFields(SupervisedConfig):
    """The POS task's own fields; PosConfig adds distillation's after them."""

    dataset: Literal["ewt", "tiny"] = "ewt"  # ewt (UD English-EWT r2.16, downloaded) or tiny
    model: str = "bilstm_tagger"  # bilstm_tagger, bigru_tagger, minilm_tagger or hf:<repo>@<commit>
    tagset: Literal["upos", "xpos"] = "upos"  # universal tags (17) or the treebank's PTB tags
    epochs: int = 14  # passes over the training set
    batch_size: int = 32  # sentences per step
    lr: float = 2e-3  # AdamW peak learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    schedule: Literal["constant", "linear", "cosine"] = "linear"  # decay to 0 over the run
    warmup_steps: int = 200  # linear warm-up steps
    grad_clip: float = 5.0  # max gradient norm
    eval_every: int = 0  # steps between dev evaluations; 0 = at the end of each epoch
    keep: Literal["best", "last"] = "last"  # deliver the final weights: dev is not used to select
    # <= 4096: generous (the recipes use 32-512); a 4096 x 4096 matrix is already 64 MB
    embed_dim: Annotated[int, Range(1, 4096)] = 100  # word embedding size
    # <= 4096: generous (the recipes use 32-512); a 4096 x 4096 matrix is already 64 MB
    char_dim: Annotated[int, Range(1, 4096)] = 32  # character embedding size
    # <= 4096: generous (the recipes use 32-512); a 4096 x 4096 matrix is already 64 MB
    char_filters: Annotated[int, Range(1, 4096)] = 200  # character CNN output size per word
    # <= 9: a window wider than most words only sees padding
    char_width: Annotated[int, Range(1, 9)] = 3  # character CNN window
    # <= 4096: generous (the recipes use 32-512); a 4096 x 4096 matrix is already 64 MB
    hidden_dim: Annotated[int, Range(1, 4096)] = 128  # RNN hidden size per direction
    # <= 8: generous (the recipes use 1-2); each layer is one more full RNN pass and its memory
    num_layers: Annotated[int, Range(1, 8)] = 2  # stacked BiRNN layers
    dropout: Probability = 0.33  # dropout between RNN layers and before the tag layer
    embed_dropout: Probability = 0.33  # dropout on the word + character vector
    word_dropout: Probability = 0.4  # share of word ids replaced by <unk> in training
    min_freq: PositiveInt = 2  # rarer train words map to <unk>, so <unk> is learned from real rare words
    max_word_chars: Annotated[int, Range(2)] = 20  # longer words keep their first and last 10 characters
    # <= 8192: a batch is padded and held in memory at once
    eval_batch_size: Annotated[int, Range(1, 8192)] = 256  # sentences per evaluation batch
    tag_head: Literal["linear", "bilstm"] = "linear"  # transformer: tags from first subwords, or a BiLSTM over them
    train_layers: Annotated[int, Range(-1)] = -1  # transformer: top k layers trained; -1 = all
    train_embeddings: bool = False  # transformer: fine-tune the embeddings too (else frozen, left to the base)
    layer_decay: Annotated[float, Range(0, 1, open_lo=True)] = 1.0  # transformer: lr factor per layer down


@dataclass(frozen=True, kw_only=True)
class PosConfig(DistillConfig, PosFields):
    """The POS task's config: its own fields, then distillation's."""


# ---------------------------------------------------------------------------- task
@TASKS.register("pos", aliases=("pos_tagging", "postag", "tagging"))
class PosTask(Task[PosConfig]):
    name = "pos"
    Config = PosConfig
    description = "part-of-speech tags per word (UD English-EWT); char-CNN + BiLSTM/BiGRU taggers, MiniLM"
    throughput_unit = "sentences"
    models = ("bilstm_tagger", "bigru_tagger", "minilm_tagger")
    model_schemes = ("hf",)  # model=hf:<repo>@<commit> (built as hf_tagger)
    eval_splits = ("dev",)
    final_splits = ("dev", "test")
    weights_fields = ("model", "tagset")  # the tag set decides what the head outputs
    # 300 tiny sentences repeat each word often: small batches, more epochs, and little word
    # dropout (at 0.4 the few names of the tiny set were tagged from spelling alone).
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"epochs": 15, "batch_size": 8, "warmup_steps": 20, "word_dropout": 0.1,
                 "min_freq": 1, "char_filters": 64},
    }
    references = (
        Reference("test/upos_accuracy", 0.944, "UDPipe 1.2 (Straka & Strakova 2017), EWT UD 2.0",
                  "gold tokenization"),
        Reference("test/upos_accuracy", 0.951, "BiLSTM-CNN-CRF (Ma & Hovy style) on EWT",
                  "random init + char CNN"),
        Reference("test/upos_accuracy", 0.969, "spaCy en_core_web_trf", "transformer, pretrained"),
    )

    @property
    def monitor(self) -> str:  # type: ignore[override]
        """The tag set decides the metric's name: dev/upos_accuracy or dev/xpos_accuracy."""
        return f"dev/{self.cfg.tagset}_accuracy"

    # -- data
    def _load(self) -> dict[str, list[TaggedSentence]]:
        if self.cfg.dataset == "tiny":
            from taskzoo.data.tiny_pos import load_tiny_pos

            return load_tiny_pos()
        from taskzoo.data.ud import load_ewt

        return {split: load_ewt(split) for split in ("train", "dev", "test")}

    @classmethod
    def implied_overrides(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        from taskzoo.tasks.pos.data import implied_recipe

        return implied_recipe(overrides)

    def build_data(self, state: dict[str, Any] | None = None) -> PosData:
        sents = self._load()
        train = sents["train"]
        if is_pretrained(self.cfg.model):
            from taskzoo.tasks.pos.data import subword_data

            data = subword_data(self.cfg, sents, state)
        else:
            data = self._word_data(sents, state)
        if state and "teacher" in state:  # rebuilt from a distilled run: its teacher, not again
            data.teacher = state["teacher"]
        elif self.cfg.teacher:
            from taskzoo.tasks.common.distill import load_teacher, teacher_logits

            teacher, data.teacher = load_teacher(self.cfg.teacher, self.name,
                                                 device=str(self.runtime.device),
                                                 labels=data.labels)
            scores = teacher_logits(teacher, [s.words for s in train], chunk=512)
            data.train = [(*row, scores[i]) for i, row in enumerate(data.train)]
        return data

    def _word_data(self, sents: dict[str, list[TaggedSentence]],
                   state: dict[str, Any] | None) -> PosData:
        train = sents["train"]
        if state:  # fine-tuning: the starting weights' vocabularies and tag set
            vocab, chars = Vocab.from_list(state["vocab"]), Vocab.from_list(state["chars"])
            labels = list(state["labels"])
        else:
            vocab = Vocab.build(([normalize(w) for w in s.words] for s in train),
                                min_freq=self.cfg.min_freq)
            chars = Vocab.build((w for s in train for w in s.words), specials=CHAR_SPECIALS[2:])
            labels = sorted({t for s in train for t in sentence_tags(s, self.cfg.tagset)})
        data = PosData(train=None, labels=labels, vocab=vocab, chars=chars,
                       train_words=frozenset(w.lower() for s in train for w in s.words))
        table = CharTable(chars, self.cfg.max_word_chars)
        tag_ids = {t: i for i, t in enumerate(labels)}
        # a tag train never shows: ignored by the loss, counted wrong in scores
        encoded = {split: [(*encode_words(s.words, vocab, table),
                            torch.tensor([tag_ids.get(t, -100)
                                          for t in sentence_tags(s, self.cfg.tagset)]))
                           for s in ss]
                   for split, ss in sents.items()}
        data.table = table.tensor()
        data.train = encoded.pop("train")
        data.splits = encoded  # dev, test: (word ids, form rows, tag ids) per sentence
        data.sentences = {k: v for k, v in sents.items() if k != "train"}
        data.lengths = {k: [len(s.words) for s in v] for k, v in sents.items()}
        return data

    quick: ClassVar[dict[str, Any]] = {"dataset": "tiny"}

    def example_inputs(self, n: int) -> list[Any]:
        from taskzoo.data.tiny_pos import load_tiny_pos

        texts = [" ".join(s.words) for s in load_tiny_pos()["test"]]
        return [texts[i % len(texts)] for i in range(n)]

    def dataset_card(self) -> dict[str, Any]:
        if self.cfg.dataset == "tiny":
            return {"name": "tiny (400 sentences generated by the project)", "files": [],
                    "license": "Apache-2.0 (taskzoo)"}
        from taskzoo import hub
        from taskzoo.data.ud import COMMIT, FILES

        return {"name": f"UD English-EWT r2.16 (commit {COMMIT[:12]})", "files": hub.describe(FILES),
                "license": "CC BY-SA 4.0"}

    def data_state(self, data: PosData) -> dict[str, Any]:
        taught = {"teacher": data.teacher} if data.teacher else {}  # a distilled card names it
        if data.subwords is not None:
            from taskzoo.hf.encoders import describe

            return {"labels": data.labels, "encoder": describe(data.subwords.repo), **taught}
        return {"labels": data.labels, "vocab": data.vocab.to_list(),
                "chars": data.chars.to_list(), **taught}

    def data_from_state(self, state: dict[str, Any]) -> PosData:
        if "encoder" in state:
            from taskzoo.hf.encoders import Subwords
            from taskzoo.tasks.common.pretrained_text import repo_from_state

            return PosData(train=None, labels=list(state["labels"]),
                           subwords=Subwords.from_repo(repo_from_state(state)))
        return PosData(train=None, labels=list(state["labels"]),
                       vocab=Vocab.from_list(state["vocab"]), chars=Vocab.from_list(state["chars"]))

    def _collate(self, data: PosData) -> Any:
        if data.subwords is not None:
            from taskzoo.tasks.pos.data import collate_subwords

            return collate_subwords
        return partial(collate, table=data.table)

    def batches(self, data: PosData, model: nn.Module) -> LoaderSource:
        return self.loader(data.train, collate=self._collate(data), lengths=data.lengths["train"])

    # -- model
    def build_model(self, data: PosData) -> nn.Module:
        c = self.cfg
        if data.subwords is not None:

            return build_tagger(c, data)
        return build(c.model, vocab_size=len(data.vocab), num_chars=len(data.chars),
                     num_tags=len(data.labels), embed_dim=c.embed_dim, char_dim=c.char_dim,
                     char_filters=c.char_filters, char_width=c.char_width, hidden_dim=c.hidden_dim,
                     num_layers=c.num_layers, dropout=c.dropout, embed_dropout=c.embed_dropout,
                     word_dropout=c.word_dropout)

    # -- step
    def step(self, model: nn.Module, batch: TagBatch) -> StepOutput:
        scores = tag_scores(model, batch)
        if batch.teacher is not None:
            from taskzoo.tasks.common.distill import distill_loss

            real = batch.tags.flatten() != -100
            loss = distill_loss(scores.flatten(0, 1)[real], batch.teacher.flatten(0, 1)[real],
                                batch.tags.flatten()[real], temperature=self.cfg.temperature,
                                alpha=self.cfg.distill_alpha)
            return StepOutput(loss=loss, size=int(batch.lengths.sum()))
        loss = F.cross_entropy(scores.flatten(0, 1), batch.tags.flatten(), ignore_index=-100)
        return StepOutput(loss=loss, size=int(batch.lengths.sum()))

    # -- evaluate
    def _predict_split(self, model: nn.Module, data: PosData, split: str) -> list[torch.Tensor]:
        rows, preds = data.splits[split], [torch.empty(0)] * len(data.splits[split])
        for idx, batch in eval_batches(rows, batch_size=self.cfg.eval_batch_size,
                                       collate=self._collate(data),
                                       lengths=data.lengths[split]):
            batch = self.runtime.to_device(batch)
            best = tag_scores(model, batch).argmax(-1).cpu()
            for j, i in enumerate(idx):
                preds[i] = best[j, : len(rows[i][2])]
        return preds

    def _gold_and_pred(self, model: nn.Module, data: PosData, split: str):
        pred = torch.cat(self._predict_split(model, data, split)).numpy()
        gold = torch.cat([r[2] for r in data.splits[split]]).numpy()
        oov = torch.tensor([w.lower() not in data.train_words
                            for s in data.sentences[split] for w in s.words]).numpy()
        return gold, pred, oov

    def evaluate(self, model: nn.Module, data: PosData, split: str) -> dict[str, float]:
        from sklearn.metrics import accuracy_score  # lazy: ~1 s of import on load()

        gold, pred, oov = self._gold_and_pred(model, data, split)
        out = {f"{split}/{self.cfg.tagset}_accuracy": float(accuracy_score(gold, pred))}
        if oov.any():  # no unseen words: no figure (0.0 would read as "all of them wrong")
            out[f"{split}/oov_accuracy"] = float(accuracy_score(gold[oov], pred[oov]))
        out[f"{split}/oov_share"] = float(oov.mean())
        return out

    def reports(self, model: nn.Module, data: PosData) -> dict[str, str]:
        """Per-tag precision / recall / F1 of every final split (scikit-learn's report)."""
        from sklearn.metrics import classification_report  # lazy: ~1 s of import on load()

        out = {}
        for split in self.final_splits:
            gold, pred, _ = self._gold_and_pred(model, data, split)
            out[f"tags_{split}.txt"] = classification_report(
                gold, pred, labels=list(range(len(data.labels))), target_names=data.labels,
                digits=4, zero_division=0)
        return out

    # -- predictor
    def predictor(self, model: nn.Module, data: PosData) -> Predictor:
        from taskzoo.tasks.pos.predictor import Tagger

        return Tagger(model, data, self.runtime, max_word_chars=self.cfg.max_word_chars,
                      batch_size=self.cfg.eval_batch_size)


def build_tagger(cfg: Any, data: Any) -> nn.Module:
    """The zoo's transformer tagger over the data's encoder, its pretrained weights loaded."""
    from taskzoo.hf.encoders import encoder_config
    from taskzoo.models import build
    from taskzoo.tasks.common.pretrained_text import arch_name, attach_base, layer_recipe

    repo = data.subwords.repo
    model = build(arch_name(cfg.model, "hf_tagger"), num_tags=len(data.labels),
                  encoder_config=encoder_config(repo), tag_head=cfg.tag_head,
                  hidden_dim=cfg.hidden_dim, dropout=cfg.dropout)
    attach_base(model, repo)
    layer_recipe(model, train_layers=cfg.train_layers, train_embeddings=cfg.train_embeddings,
                 layer_decay=cfg.layer_decay)
    return model
