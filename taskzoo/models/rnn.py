"""Recurrent building blocks and the RNN text classifiers: lstm, gru, bilstm, bigru.

`RNNEncoder` and `masked_pool` are the shared blocks: the sentiment classifiers use them
here and the POS tagger reuses them instead of keeping a second copy."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from taskzoo.models import MODELS

Cell = Literal["lstm", "gru"]
Pooling = Literal["max", "mean", "last"]


class RNNEncoder(nn.Module):
    """A (bi)LSTM/GRU over padded sequences that respects their true lengths.

    Input [B, T, D] plus lengths [B]; output [B, T, H * directions] with zeros past each
    length, and the final hidden state [B, H * directions]."""

    def __init__(
        self, *, input_dim: int, hidden_dim: int, cell: Cell = "lstm", num_layers: int = 1,
        bidirectional: bool = True, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.rnn = rnn_cls(
            input_dim, hidden_dim, num_layers=num_layers, batch_first=True,
            bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0,
        )
        self.out_dim = hidden_dim * (2 if bidirectional else 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # cuDNN runs packed sequences natively. On CPU, packing forces a slow per-step path
        # (about 1.7x slower for a 2-layer BiLSTM on tagging batches), so there each layer and
        # direction runs as one fused call on the padded batch instead; same weights, same result.
        if x.is_cuda:
            return self.forward_packed(x, lengths)
        return self.forward_padded(x, lengths)

    def forward_packed(self, x: torch.Tensor,
                       lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Through `pack_padded_sequence` and the module itself."""
        # Packing needs CPU lengths >= 1; an empty sequence is given one padding step.
        cpu_lengths = lengths.detach().to("cpu", torch.int64).clamp(min=1)
        packed = pack_padded_sequence(x, cpu_lengths, batch_first=True, enforce_sorted=False)
        out, hidden = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        h = hidden[0] if isinstance(hidden, tuple) else hidden  # LSTM returns (h, c)
        if self.rnn.bidirectional:
            final = torch.cat([h[-2], h[-1]], dim=-1)
        else:
            final = h[-1]
        return out, final

    def forward_padded(self, x: torch.Tensor,
                       lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded batch, one unidirectional call per layer and direction.

        A forward pass never looks ahead, so padding at the end cannot reach real positions.
        The backward direction reads each sequence reversed *within its length* (a gather),
        so it too starts at the last real token. Equal to `forward_packed` up to float error."""
        batch, steps = x.shape[:2]
        lengths = lengths.detach().to(x.device, torch.int64).clamp(min=1, max=steps)
        t = torch.arange(steps, device=x.device).unsqueeze(0)
        rev = torch.where(t < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - t, t).unsqueeze(-1)
        rnn, hidden = self.rnn, self.rnn.hidden_size
        h0 = x.new_zeros(1, batch, hidden)
        out = x
        for layer in range(rnn.num_layers):
            if layer > 0 and rnn.dropout > 0:
                out = F.dropout(out, rnn.dropout, self.training)
            outs = []
            for reverse in ((False, True) if rnn.bidirectional else (False,)):
                sfx = "_reverse" if reverse else ""
                params = [getattr(rnn, f"{n}_l{layer}{sfx}")
                          for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                inp = out.gather(1, rev.expand(-1, -1, out.shape[-1])) if reverse else out
                # the functional kernels nn.LSTM / nn.GRU call, for one layer and direction:
                # (input, h0, weights, has_biases, layers, dropout, train, bidirectional, batch_first)
                if isinstance(rnn, nn.LSTM):
                    y = torch.lstm(inp, (h0, h0), params, True, 1, 0.0, self.training, False, True)
                else:
                    y = torch.gru(inp, h0, params, True, 1, 0.0, self.training, False, True)
                y = y[0]
                outs.append(y.gather(1, rev.expand(-1, -1, hidden)) if reverse else y)
            out = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
        out = out * length_mask(lengths, steps).unsqueeze(-1).to(out.dtype)
        last = out[torch.arange(batch, device=x.device), lengths - 1]
        if not rnn.bidirectional:
            return out, last
        # final states: forward direction at the last real token, backward direction at token 0
        final = torch.cat([last[:, :hidden], out[:, 0, hidden:]], dim=-1)
        return out, final


def token_embedding(vocab_size: int, embed_dim: int, padding_idx: int = 0) -> nn.Embedding:
    """Word embeddings initialised at N(0, 1/dim) rather than torch's N(0, 1).

    With N(0, 1), Adam's small steps barely move rare words away from their random start and
    their noise swamps the signal; at 1/sqrt(dim) scale they learn within an epoch."""
    emb = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
    nn.init.normal_(emb.weight, std=embed_dim**-0.5)
    with torch.no_grad():
        emb.weight[padding_idx].zero_()
    return emb


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """[B, T] True where a position holds a real token."""
    positions = torch.arange(max_len, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)


def masked_pool(out: torch.Tensor, lengths: torch.Tensor, mode: Pooling) -> torch.Tensor:
    """Pool [B, T, H] over real positions only."""
    mask = length_mask(lengths.to(out.device), out.shape[1]).unsqueeze(-1)
    if mode == "max":
        return out.masked_fill(~mask, torch.finfo(out.dtype).min).amax(dim=1)
    if mode == "mean":
        total = (out * mask).sum(dim=1)
        return total / lengths.to(out.device).clamp(min=1).unsqueeze(-1).to(out.dtype)
    raise ValueError(f"pooling={mode!r}: expected 'max' or 'mean' (or 'last' in the classifier)")


class RNNClassifier(nn.Module):
    """Embedding -> RNNEncoder -> pooling -> dropout -> linear. Batches are (ids, lengths)."""

    def __init__(
        self, *, vocab_size: int, num_classes: int, embed_dim: int, hidden_dim: int, cell: Cell,
        bidirectional: bool, num_layers: int, dropout: float, embed_dropout: float,
        pooling: Pooling, padding_idx: int = 0,
    ) -> None:
        super().__init__()
        self.embedding = token_embedding(vocab_size, embed_dim, padding_idx)
        self.embed_dropout = nn.Dropout(embed_dropout)
        self.encoder = RNNEncoder(input_dim=embed_dim, hidden_dim=hidden_dim, cell=cell,
                                  num_layers=num_layers, bidirectional=bidirectional,
                                  dropout=dropout)
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.out_dim, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embed_dropout(self.embedding(ids))
        out, final = self.encoder(x, lengths)
        pooled = final if self.pooling == "last" else masked_pool(out, lengths, self.pooling)
        return self.head(self.dropout(pooled))


def _rnn(cell: Cell, bidirectional: bool):
    def builder(
        *, vocab_size: int, num_classes: int, embed_dim: int = 128, hidden_dim: int = 128,
        num_layers: int = 1, dropout: float = 0.5, embed_dropout: float = 0.2,
        pooling: Pooling = "max", padding_idx: int = 0,
    ) -> RNNClassifier:
        return RNNClassifier(
            vocab_size=vocab_size, num_classes=num_classes, embed_dim=embed_dim,
            hidden_dim=hidden_dim, cell=cell, bidirectional=bidirectional,
            num_layers=num_layers, dropout=dropout, embed_dropout=embed_dropout,
            pooling=pooling, padding_idx=padding_idx,
        )

    direction = "bidirectional " if bidirectional else ""
    builder.__doc__ = f"A {direction}{cell.upper()} text classifier over token ids."
    builder.__name__ = ("bi" if bidirectional else "") + cell
    return builder


lstm = MODELS.register("lstm")(_rnn("lstm", False))
gru = MODELS.register("gru")(_rnn("gru", False))
bilstm = MODELS.register("bilstm", aliases=("bi_lstm",))(_rnn("lstm", True))
bigru = MODELS.register("bigru", aliases=("bi_gru",))(_rnn("gru", True))
