"""SummaRuNNer-style extractive summarizer (Nallapati et al. 2017): a BiGRU reads a
document's sentence vectors in order and scores each sentence for the summary from its
content, its salience to the whole document, and its position.

Inputs are sentence embeddings (a frozen pretrained encoder's, computed by the task), so
the model stays small: [B, S, E] plus the number of sentences [B] -> logits [B, S].

    >>> net = build("summarunner", input_dim=388, features=4)        # doctest: +SKIP
    >>> net(torch.randn(2, 20, 388), torch.tensor([20, 12])).shape   # [2, 20]  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import nn

from taskzoo.models import MODELS
from taskzoo.models.rnn import RNNEncoder, length_mask


class SummaRuNNer(nn.Module):
    def __init__(self, *, input_dim: int, hidden_dim: int, positions: int, dropout: float,
                 features: int) -> None:
        super().__init__()
        self.features = features
        # the last `features` input columns (hand-made cues such as centrality) also reach the
        # score through one linear layer, undropped: a prior the rest of the model corrects
        self.prior = nn.Linear(features, 1) if features else None
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(input_dim, hidden_dim), nn.Tanh())
        self.rnn = RNNEncoder(input_dim=hidden_dim, hidden_dim=hidden_dim, cell="gru",
                              bidirectional=True)
        width = self.rnn.out_dim
        self.doc = nn.Linear(width, width)
        self.position = nn.Embedding(positions, width)  # later sentences share the last slot
        self.content = nn.Linear(width, 1)
        self.salience = nn.Bilinear(width, width, 1)
        self.pos_score = nn.Linear(width, 1, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.proj(x), lengths)
        h = self.dropout(h)
        mask = length_mask(lengths, x.shape[1]).unsqueeze(-1).to(h.dtype)
        doc = torch.tanh(self.doc((h * mask).sum(1) / mask.sum(1).clamp_min(1)))  # [B, W]
        pos = torch.arange(x.shape[1], device=x.device).clamp_max(self.position.num_embeddings - 1)
        # the Bilinear's own weights applied by einsum rather than on `doc` expanded to h's
        # shape: ONNX export bakes that expansion's shape in, fixing the sentence count
        salience = torch.einsum("bsi,oij,bj->bso", h, self.salience.weight, doc)
        score = (self.content(h) + salience + self.salience.bias
                 + self.pos_score(self.position(pos)).unsqueeze(0))
        if self.prior is not None:
            score = score + self.prior(x[..., -self.features:])
        return score.squeeze(-1)


@MODELS.register("summarunner")
def summarunner(*, input_dim: int = 388, hidden_dim: int = 128, positions: int = 50,
                dropout: float = 0.3, features: int = 4) -> SummaRuNNer:
    """A BiGRU over a document's sentence vectors scoring each sentence (SummaRuNNer); the
    last `features` columns of each vector also feed the score directly."""
    return SummaRuNNer(input_dim=input_dim, hidden_dim=hidden_dim, positions=positions,
                       dropout=dropout, features=features)
