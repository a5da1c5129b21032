"""Part-of-speech tagging: UPOS (or XPOS) tags for every word, on UD English-EWT.

    taskzoo run pos                            # UD EWT r2.16 through the hub, default recipe
    taskzoo run pos dataset=tiny               # 400 generated sentences, offline
    taskzoo predict pos --from DIR "The old man the boats."

Words feed the model twice: a word embedding (lower-cased, digits as 0) and a character CNN
over the exact spelling, so a word never seen in training is tagged from its shape and its
context. Metrics are token accuracy over all words and over words unseen in training.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from taskzoo.config import PositiveInt, Probability, Range, SupervisedConfig
from taskzoo.data.loader import LoaderSource, eval_batches
from taskzoo.data.text import Vocab, as_text, split_words
from taskzoo.data.ud import TaggedSentence
from taskzoo.errors import InputError
from taskzoo.models import build
from taskzoo.tasks import TASKS
from taskzoo.tasks.base import DataBundle, Predictor, Reference, Task
from taskzoo.trainer import StepOutput

CHAR_SPECIALS = ["<pad>", "<unk>", "<w>", "</w>"]  # padding, unknown char, word start, word end


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True, kw_only=True)
class PosConfig(SupervisedConfig):
    dataset: Literal["ewt", "tiny"] = "ewt"  # ewt (UD English-EWT r2.16, downloaded) or tiny
    model: str = "bilstm_tagger"  # bilstm_tagger or bigru_tagger
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
    embed_dim: PositiveInt = 100  # word embedding size
    char_dim: PositiveInt = 32  # character embedding size
    char_filters: PositiveInt = 200  # character CNN output size per word
    char_width: PositiveInt = 3  # character CNN window
    hidden_dim: PositiveInt = 128  # RNN hidden size per direction
    num_layers: PositiveInt = 2  # stacked BiRNN layers
    dropout: Probability = 0.33  # dropout between RNN layers and before the tag layer
    embed_dropout: Probability = 0.33  # dropout on the word + character vector
    word_dropout: Probability = 0.4  # share of word ids replaced by <unk> in training
    min_freq: PositiveInt = 2  # rarer train words map to <unk>, so <unk> is learned from real rare words
    max_word_chars: Annotated[int, Range(2)] = 20  # longer words keep their first and last 10 characters
    eval_batch_size: PositiveInt = 256  # sentences per evaluation batch


def normalize(word: str) -> str:
    """Word-embedding key: lower case, digits as 0 ('1987' and '2024' share a vector), ’ as '."""
    return re.sub(r"\d", "0", word.lower()).replace("\u2019", "'")


class TagBatch(NamedTuple):
    words: torch.Tensor  # [B, T] word ids, 0-padded
    lengths: torch.Tensor  # [B]
    chars: torch.Tensor  # [U, L] character ids of the batch's distinct words
    char_index: torch.Tensor  # [B, T] row of `chars` for each position
    tags: torch.Tensor  # [B, T] tag ids, -100 at padding


class CharTable:
    """Character ids of word forms, each form encoded once: `<w> c1 .. cn </w>`, 0-padded."""

    def __init__(self, chars: Vocab, max_chars: int) -> None:
        self.chars, self.max_chars = chars, max_chars
        self.ids: dict[str, int] = {"": 0}  # form -> row; row 0 is padding (all zeros)
        self.rows: list[list[int]] = [[]]

    def add(self, form: str) -> int:
        row = self.ids.get(form)
        if row is None:
            if len(form) > self.max_chars:
                half = self.max_chars // 2
                form_chars = form[:half] + form[-half:]
            else:
                form_chars = form
            row = self.ids[form] = len(self.rows)
            self.rows.append([2, *self.chars.encode(list(form_chars)), 3])
        return row

    def tensor(self) -> tuple[torch.Tensor, torch.Tensor]:
        """([N, L] padded ids, [N] lengths) of every form added so far."""
        lens = torch.tensor([len(r) for r in self.rows])
        return pad_sequence([torch.tensor(r, dtype=torch.long) for r in self.rows],
                            batch_first=True), lens


def encode_words(words: Sequence[str], vocab: Vocab,
                 table: CharTable) -> tuple[torch.Tensor, torch.Tensor]:
    """(word ids, form rows in `table`) of one sentence; new forms are added to the table."""
    return (torch.tensor(vocab.encode([normalize(w) for w in words])),
            torch.tensor([table.add(w) for w in words]))


def collate(rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], *,
            table: tuple[torch.Tensor, torch.Tensor]) -> TagBatch:
    """rows of (word ids, form rows, tag ids) -> TagBatch with each distinct form's chars once."""
    char_ids, char_lens = table
    forms = pad_sequence([r[1] for r in rows], batch_first=True)
    unique, inverse = torch.unique(forms, return_inverse=True)
    return TagBatch(
        words=pad_sequence([r[0] for r in rows], batch_first=True),
        lengths=torch.tensor([len(r[0]) for r in rows]),
        chars=char_ids[unique, : int(char_lens[unique].max())],
        char_index=inverse,
        tags=pad_sequence([r[2] for r in rows], batch_first=True, padding_value=-100),
    )


@dataclass
class PosData(DataBundle):
    vocab: Vocab = field(default_factory=lambda: Vocab([Vocab.PAD, Vocab.UNK]))
    chars: Vocab = field(default_factory=lambda: Vocab(CHAR_SPECIALS))
    sentences: dict[str, list[TaggedSentence]] = field(default_factory=dict)  # eval splits, raw
    lengths: dict[str, list[int]] = field(default_factory=dict)  # words per sentence, per split
    table: tuple[torch.Tensor, torch.Tensor] | None = None  # CharTable.tensor() of every form
    train_words: frozenset[str] = frozenset()  # lower-cased train forms: the OOV test


# ---------------------------------------------------------------------------- task
@TASKS.register("pos", aliases=("pos_tagging", "postag", "tagging"))
class PosTask(Task[PosConfig]):
    name = "pos"
    Config = PosConfig
    description = "part-of-speech tags per word (UD English-EWT); char-CNN + BiLSTM/BiGRU taggers"
    throughput_unit = "sentences"
    monitor = "dev/upos_accuracy"
    models = ("bilstm_tagger", "bigru_tagger")
    eval_splits = ("dev",)
    final_splits = ("dev", "test")
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

    def __init__(self, cfg: PosConfig, runtime: Any = None) -> None:
        super().__init__(cfg, runtime)
        self.monitor = f"dev/{cfg.tagset}_accuracy"  # the tag set decides the metric's name

    # -- data
    def _load(self) -> dict[str, list[TaggedSentence]]:
        if self.cfg.dataset == "tiny":
            from taskzoo.data.tiny_pos import load_tiny_pos

            return load_tiny_pos()
        from taskzoo.data.ud import load_ewt

        return {split: load_ewt(split) for split in ("train", "dev", "test")}

    def _tags(self, s: TaggedSentence) -> tuple[str, ...]:
        return s.upos if self.cfg.tagset == "upos" else s.xpos

    def build_data(self, state: dict[str, Any] | None = None) -> PosData:
        sents = self._load()
        train = sents["train"]
        if state:  # fine-tuning: the starting weights' vocabularies and tag set
            vocab, chars = Vocab.from_list(state["vocab"]), Vocab.from_list(state["chars"])
            labels = list(state["labels"])
        else:
            vocab = Vocab.build(([normalize(w) for w in s.words] for s in train),
                                min_freq=self.cfg.min_freq)
            chars = Vocab.build((w for s in train for w in s.words), specials=CHAR_SPECIALS[2:])
            labels = sorted({t for s in train for t in self._tags(s)})
        data = PosData(train=None, labels=labels, vocab=vocab, chars=chars,
                       train_words=frozenset(w.lower() for s in train for w in s.words))
        table = CharTable(chars, self.cfg.max_word_chars)
        tag_ids = {t: i for i, t in enumerate(labels)}
        # a tag train never shows: ignored by the loss, counted wrong in scores
        encoded = {split: [(*encode_words(s.words, vocab, table),
                            torch.tensor([tag_ids.get(t, -100) for t in self._tags(s)]))
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
        return {"labels": data.labels, "vocab": data.vocab.to_list(), "chars": data.chars.to_list()}

    def data_from_state(self, state: dict[str, Any]) -> PosData:
        return PosData(train=None, labels=list(state["labels"]),
                       vocab=Vocab.from_list(state["vocab"]), chars=Vocab.from_list(state["chars"]))

    def batches(self, data: PosData, model: nn.Module) -> LoaderSource:
        return self.loader(data.train, collate=partial(collate, table=data.table),
                           lengths=data.lengths["train"])

    # -- model
    def build_model(self, data: PosData) -> nn.Module:
        c = self.cfg
        return build(c.model, vocab_size=len(data.vocab), num_chars=len(data.chars),
                     num_tags=len(data.labels), embed_dim=c.embed_dim, char_dim=c.char_dim,
                     char_filters=c.char_filters, char_width=c.char_width, hidden_dim=c.hidden_dim,
                     num_layers=c.num_layers, dropout=c.dropout, embed_dropout=c.embed_dropout,
                     word_dropout=c.word_dropout)

    # -- step
    def step(self, model: nn.Module, batch: TagBatch) -> StepOutput:
        scores = model(batch.words, batch.lengths, batch.chars, batch.char_index)
        loss = F.cross_entropy(scores.flatten(0, 1), batch.tags.flatten(), ignore_index=-100)
        return StepOutput(loss=loss, size=int(batch.lengths.sum()))

    # -- evaluate
    def _predict_split(self, model: nn.Module, data: PosData, split: str) -> list[torch.Tensor]:
        rows, preds = data.splits[split], [torch.empty(0)] * len(data.splits[split])
        for idx, batch in eval_batches(rows, batch_size=self.cfg.eval_batch_size,
                                       collate=partial(collate, table=data.table),
                                       lengths=data.lengths[split]):
            batch = self.runtime.to_device(batch)
            best = model(batch.words, batch.lengths, batch.chars, batch.char_index).argmax(-1).cpu()
            for j, i in enumerate(idx):
                preds[i] = best[j, : len(rows[i][0])]
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
    def predictor(self, model: nn.Module, data: PosData) -> Tagger:
        return Tagger(model, data, self.runtime, max_word_chars=self.cfg.max_word_chars,
                      batch_size=self.cfg.eval_batch_size)


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

    def __init__(self, model: nn.Module, data: PosData, runtime: Any, *, max_word_chars: int = 20,
                 batch_size: int = 256) -> None:
        super().__init__(model, runtime, batch_size=batch_size)
        self.vocab, self.chars, self.labels = data.vocab, data.chars, data.labels
        self.max_word_chars = max_word_chars

    def items(self, inputs: Any, *, tokenized: bool = False, **options: Any) -> tuple[list[Any], bool]:
        if tokenized:
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
        return {**options, "table": CharTable(self.chars, self.max_word_chars)}

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
        ids, forms = encode_words(words, self.vocab, ctx["table"])
        return ids, forms, torch.zeros(len(words), dtype=torch.long), words

    def length(self, example: tuple) -> int:
        return len(example[3])

    def collate(self, examples: list[tuple], ctx: dict[str, Any]) -> TagBatch:
        if "chars" not in ctx:  # every example is encoded by now: the table is complete
            ctx["chars"] = ctx["table"].tensor()
        return collate([e[:3] for e in examples], table=ctx["chars"])

    def forward(self, batch: TagBatch, ctx: dict[str, Any]) -> list[tuple[list[int], list[float]]]:
        probs = self.model(batch.words, batch.lengths, batch.chars,
                           batch.char_index).float().softmax(-1).cpu()
        score, best = probs.max(-1)
        return [(best[j, :n].tolist(), score[j, :n].tolist())
                for j, n in enumerate(batch.lengths.tolist())]

    def postprocess(self, result: tuple, example: tuple, ctx: dict[str, Any]) -> dict[str, Any]:
        best, score = result
        return {"tokens": example[3], "tags": [self.labels[k] for k in best],
                "scores": [round(x, 4) for x in score]}

    def format(self, text: str, output: dict[str, Any]) -> str:
        """One line of word/TAG pairs, for the command line."""
        return " ".join(f"{w}/{t}" for w, t in zip(output["tokens"], output["tags"]))
