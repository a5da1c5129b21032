"""What the POS task and its predictor share: sentences as word ids plus a character table
of their forms (each distinct form encoded once), batches of them, the task's data bundle and
the model's tag scores; and the same for a pretrained transformer (`model=minilm_tagger` or
`hf:<repo>@<commit>`), where words become subword tokens through the encoder's own tokenizer
and each word is tagged from its first subword (the fast tokenizer's `word_ids` say where
each word starts): rows of (subword ids, first-subword position of each word, tag ids).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from taskzoo.data.text import Vocab
from taskzoo.data.ud import TaggedSentence
from taskzoo.tasks.base import DataBundle

CHAR_SPECIALS = ["<pad>", "<unk>", "<w>", "</w>"]  # padding, unknown char, word start, word end


def normalize(word: str) -> str:
    """Word-embedding key: lower case, digits as 0 ('1987' and '2024' share a vector), ’ as '."""
    return re.sub(r"\d", "0", word.lower()).replace("\u2019", "'")


def sentence_tags(sentence: TaggedSentence, tagset: str) -> tuple[str, ...]:
    """The sentence's gold tags in `tagset`: "upos" (universal) or "xpos" (the treebank's)."""
    return sentence.upos if tagset == "upos" else sentence.xpos


class TagBatch(NamedTuple):
    words: torch.Tensor  # [B, T] word ids, 0-padded
    lengths: torch.Tensor  # [B]
    chars: torch.Tensor  # [U, L] character ids of the batch's distinct words
    char_index: torch.Tensor  # [B, T] row of `chars` for each position
    tags: torch.Tensor  # [B, T] tag ids, -100 at padding
    teacher: torch.Tensor | None = None  # [B, T, K] a teacher's tag scores when distilling


class CharTable:
    """Character ids of word forms, each form encoded once: `<w> c1 .. cn </w>`, 0-padded."""

    def __init__(self, chars: Vocab, max_chars: int) -> None:
        self.chars, self.max_chars = chars, max_chars
        self.ids: dict[str, int] = {"": 0}  # form -> row; row 0 is padding (all zeros)
        self.rows: list[list[int]] = [[]]

    def add(self, form: str) -> int:
        """The row of `form`, encoded on its first sight."""
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


def collate(rows: list[tuple[torch.Tensor, ...]], *,
            table: tuple[torch.Tensor, torch.Tensor]) -> TagBatch:
    """rows of (word ids, form rows, tag ids[, teacher scores]) -> TagBatch with each
    distinct form's chars once."""
    char_ids, char_lens = table
    forms = pad_sequence([r[1] for r in rows], batch_first=True)
    unique, inverse = torch.unique(forms, return_inverse=True)
    return TagBatch(
        words=pad_sequence([r[0] for r in rows], batch_first=True),
        lengths=torch.tensor([len(r[0]) for r in rows]),
        chars=char_ids[unique, : int(char_lens[unique].max())],
        char_index=inverse,
        tags=pad_sequence([r[2] for r in rows], batch_first=True, padding_value=-100),
        teacher=pad_sequence([r[3] for r in rows], batch_first=True) if len(rows[0]) > 3 else None,
    )


def tag_scores(model: nn.Module, batch: Any) -> torch.Tensor:
    """Tag scores [B, W, K] of a TagBatch, or of a pretrained tagger's SubTagBatch
    (see below)."""
    if isinstance(batch, TagBatch):
        return model(batch.words, batch.lengths, batch.chars, batch.char_index)
    return model(batch.ids, batch.sub_lengths, batch.first, batch.lengths)


@dataclass
class PosData(DataBundle):
    vocab: Vocab = field(default_factory=lambda: Vocab([Vocab.PAD, Vocab.UNK]))
    chars: Vocab = field(default_factory=lambda: Vocab(CHAR_SPECIALS))
    sentences: dict[str, list[TaggedSentence]] = field(default_factory=dict)  # eval splits, raw
    lengths: dict[str, list[int]] = field(default_factory=dict)  # words per sentence, per split
    table: tuple[torch.Tensor, torch.Tensor] | None = None  # CharTable.tensor() of every form
    subwords: Any = None  # a pretrained encoder's Subwords tokenizer (then vocab, chars unused)
    teacher: dict[str, Any] | None = None  # what the student was distilled from
    train_words: frozenset[str] = frozenset()  # lower-cased train forms: the OOV test


# ---------------------------------------------------------------- pretrained subword taggers
class SubTagBatch(NamedTuple):
    ids: torch.Tensor  # [B, T] subword ids, 0-padded
    sub_lengths: torch.Tensor  # [B] subword tokens per sentence, specials included
    first: torch.Tensor  # [B, W] position of each word's first subword, 0 at padding
    lengths: torch.Tensor  # [B] words per sentence
    tags: torch.Tensor  # [B, W] tag ids, -100 at padding
    teacher: torch.Tensor | None = None  # [B, W, K] a teacher's tag scores when distilling


def encode_subwords(subwords: Any, sentences: Sequence[Sequence[str]], *,
           what: str = "sentence") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(subword ids, first positions) of each sentence of words."""
    return [(torch.tensor(ids), torch.tensor(first))
            for ids, first in subwords.encode_words(sentences, what=what)]


def collate_subwords(rows: list[tuple[torch.Tensor, ...]]) -> SubTagBatch:
    """rows of (subword ids, first positions, tag ids[, teacher scores]) -> SubTagBatch."""
    return SubTagBatch(
        ids=pad_sequence([r[0] for r in rows], batch_first=True),
        sub_lengths=torch.tensor([len(r[0]) for r in rows]),
        first=pad_sequence([r[1] for r in rows], batch_first=True),
        lengths=torch.tensor([len(r[1]) for r in rows]),
        tags=pad_sequence([r[2] for r in rows], batch_first=True, padding_value=-100),
        teacher=pad_sequence([r[3] for r in rows], batch_first=True) if len(rows[0]) > 3 else None,
    )


def implied_recipe(overrides: dict[str, Any]) -> dict[str, Any]:
    """What model=minilm_tagger / hf:... implies before the user's overrides."""
    from taskzoo.tasks.common.pretrained_text import FINETUNE_RECIPE, is_pretrained

    if not is_pretrained(str(overrides.get("model", ""))):
        return {}
    recipe = {**FINETUNE_RECIPE, "epochs": 4}
    if overrides.get("dataset") == "tiny":  # 300 sentences: more passes, small batches
        recipe.update(epochs=6, batch_size=8, warmup_steps=10)
    return recipe


def subword_data(cfg: Any, sents: dict[str, list[TaggedSentence]],
                 state: dict[str, Any] | None) -> PosData:
    """The task's PosData with every split through the pretrained encoder's tokenizer."""
    from taskzoo.hf.encoders import Subwords
    from taskzoo.tasks.common.pretrained_text import pretrained_repo, repo_from_state

    train = sents["train"]
    repo = repo_from_state(state) if state else pretrained_repo(cfg.model)
    labels = (list(state["labels"]) if state else
              sorted({t for s in train for t in sentence_tags(s, cfg.tagset)}))
    subwords = Subwords.from_repo(repo)
    tag_ids = {t: i for i, t in enumerate(labels)}
    encoded = {}
    for split, ss in sents.items():
        pieces = encode_subwords(subwords, [s.words for s in ss], what=f"{split} sentence")
        # a tag train never shows: ignored by the loss, counted wrong in scores
        encoded[split] = [
            (ids, first, torch.tensor([tag_ids.get(t, -100) for t in sentence_tags(s, cfg.tagset)]))
            for (ids, first), s in zip(pieces, ss)]
    # batches are bucketed by subword length, what their cost depends on
    lengths = {k: [len(r[0]) for r in v] for k, v in encoded.items()}
    return PosData(train=encoded.pop("train"), splits=encoded, labels=labels, subwords=subwords,
                   train_words=frozenset(w.lower() for s in train for w in s.words),
                   sentences={k: v for k, v in sents.items() if k != "train"}, lengths=lengths)
