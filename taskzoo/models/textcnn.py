"""TextCNN (Kim 2014): parallel 1-D convolutions over word embeddings, max-pooled over time."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.models import MODELS
from taskzoo.models.rnn import length_mask, token_embedding


class TextCNN(nn.Module):
    """Batches are (ids [B, T], lengths [B]) like the RNN classifiers, so tasks swap freely."""

    def __init__(
        self, *, vocab_size: int, num_classes: int, embed_dim: int, num_filters: int,
        kernel_sizes: tuple[int, ...], dropout: float, embed_dropout: float, padding_idx: int = 0,
    ) -> None:
        super().__init__()
        self.embedding = token_embedding(vocab_size, embed_dim, padding_idx)
        self.embed_dropout = nn.Dropout(embed_dropout)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, num_filters, k) for k in kernel_sizes)
        self.max_kernel = max(kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(num_filters * len(kernel_sizes), num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] < self.max_kernel:  # a 2-word input still fits the widest filter
            ids = F.pad(ids, (0, self.max_kernel - ids.shape[1]), value=0)
        x = self.embed_dropout(self.embedding(ids)).transpose(1, 2)  # [B, D, T]
        lengths = lengths.to(ids.device)
        pooled = []
        for conv in self.convs:
            h = F.relu(conv(x))  # [B, F, T-k+1]
            # Only windows lying wholly on real tokens count, so extra padding changes nothing;
            # an input shorter than k keeps window 0. ReLU >= 0, so 0 is a safe fill for max.
            mask = length_mask(lengths - conv.kernel_size[0] + 1, h.shape[2])
            mask[:, 0] = True
            pooled.append(h.masked_fill(~mask.unsqueeze(1), 0.0).amax(dim=2))
        return self.head(self.dropout(torch.cat(pooled, dim=1)))


@MODELS.register("textcnn", aliases=("cnn_text", "kim_cnn"))
def textcnn(
    *, vocab_size: int, num_classes: int, embed_dim: int = 128, num_filters: int = 100,
    kernel_sizes: tuple[int, ...] = (3, 4, 5), dropout: float = 0.5, embed_dropout: float = 0.2,
    padding_idx: int = 0,
) -> TextCNN:
    """Kim's CNN-rand: filters of widths `kernel_sizes`, `num_filters` each."""
    return TextCNN(vocab_size=vocab_size, num_classes=num_classes, embed_dim=embed_dim,
                   num_filters=num_filters, kernel_sizes=tuple(kernel_sizes), dropout=dropout,
                   embed_dropout=embed_dropout, padding_idx=padding_idx)
