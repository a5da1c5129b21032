"""Sequence taggers: word embeddings + a character CNN per word -> BiLSTM/BiGRU -> tag scores.

The word embedding and the recurrent encoder are the sentiment models' blocks
(`token_embedding`, `RNNEncoder` from models/rnn.py), not copies. Characters give unseen words
a representation from their spelling (suffixes like -ly/-ed, capitals, digits, hyphens).

Batches carry the characters of each *distinct* word of the batch once ([U, L]) and an index
[B, T] into them: in running text most tokens repeat ("the", ",", "."), so the character CNN
runs on far fewer rows than there are tokens.
"""

from __future__ import annotations

import torch
from torch import nn

from taskzoo.models import MODELS
from taskzoo.models.rnn import Cell, RNNEncoder, token_embedding


class CharCNN(nn.Module):
    """[U, L] character ids (0 = padding) -> [U, filters]: embed, convolve, max over positions."""

    def __init__(self, *, num_chars: int, char_dim: int = 32, filters: int = 64, width: int = 3,
                 padding_idx: int = 0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=padding_idx)
        self.conv = nn.Conv1d(char_dim, filters, kernel_size=width, padding=width // 2)
        self.out_dim = filters

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        x = self.embedding(chars).transpose(1, 2)  # [U, C, L]
        h = self.conv(x)  # [U, F, L]
        pad = (chars == 0).unsqueeze(1)
        return torch.relu(h.masked_fill(pad, torch.finfo(h.dtype).min).amax(dim=2))


class RNNTagger(nn.Module):
    """(words [B, T], lengths [B], chars [U, L], char_index [B, T]) -> tag scores [B, T, K].

    `word_dropout` replaces word ids by <unk> (id `unk_idx`) while training, so the tagger
    learns to tag from characters and context alone, as it must for unseen words."""

    def __init__(
        self, *, vocab_size: int, num_chars: int, num_tags: int, embed_dim: int, char_dim: int,
        char_filters: int, char_width: int, hidden_dim: int, cell: Cell, num_layers: int,
        dropout: float, embed_dropout: float, word_dropout: float, padding_idx: int = 0,
        unk_idx: int = 1,
    ) -> None:
        super().__init__()
        self.embedding = token_embedding(vocab_size, embed_dim, padding_idx)
        self.chars = CharCNN(num_chars=num_chars, char_dim=char_dim, filters=char_filters,
                             width=char_width, padding_idx=padding_idx)
        self.embed_dropout = nn.Dropout(embed_dropout)
        self.encoder = RNNEncoder(input_dim=embed_dim + self.chars.out_dim, hidden_dim=hidden_dim,
                                  cell=cell, num_layers=num_layers, bidirectional=True,
                                  dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.out_dim, num_tags)
        self.word_dropout, self.unk_idx, self.padding_idx = word_dropout, unk_idx, padding_idx

    def forward(self, words: torch.Tensor, lengths: torch.Tensor, chars: torch.Tensor,
                char_index: torch.Tensor) -> torch.Tensor:
        if self.training and self.word_dropout > 0:
            drop = torch.rand(words.shape, device=words.device) < self.word_dropout
            words = words.masked_fill(drop & (words != self.padding_idx), self.unk_idx)
        x = torch.cat([self.embedding(words), self.chars(chars)[char_index]], dim=-1)
        out, _ = self.encoder(self.embed_dropout(x), lengths)
        return self.head(self.dropout(out))


def _tagger(cell: Cell):
    def builder(
        *, vocab_size: int, num_chars: int, num_tags: int, embed_dim: int = 100,
        char_dim: int = 32, char_filters: int = 200, char_width: int = 3, hidden_dim: int = 128,
        num_layers: int = 2, dropout: float = 0.33, embed_dropout: float = 0.33,
        word_dropout: float = 0.4,
    ) -> RNNTagger:
        return RNNTagger(vocab_size=vocab_size, num_chars=num_chars, num_tags=num_tags,
                         embed_dim=embed_dim, char_dim=char_dim, char_filters=char_filters,
                         char_width=char_width, hidden_dim=hidden_dim, cell=cell,
                         num_layers=num_layers, dropout=dropout, embed_dropout=embed_dropout,
                         word_dropout=word_dropout)

    builder.__doc__ = f"A Bi{cell.upper()} sequence tagger over words and their characters."
    builder.__name__ = f"bi{cell}_tagger"
    return builder


bilstm_tagger = MODELS.register("bilstm_tagger")(_tagger("lstm"))
bigru_tagger = MODELS.register("bigru_tagger")(_tagger("gru"))
