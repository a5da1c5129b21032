"""What the POS task and its predictor share: sentences as word ids plus a character table
of their forms (each distinct form encoded once), batches of them, the task's data bundle and
the model's tag scores.
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
    (tasks/pos/subword.py)."""
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
