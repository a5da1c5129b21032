"""Pretrained transformer encoders (Hugging Face `transformers`) with a task head.

The encoder is built from its configuration alone (`encoder_config`, the repository's
config.json as a dict), with random weights: models never read files. The task fills it
from the verified pretrained weights (`taskzoo.hf.encoders.load_encoder`), so a released
fine-tune needs to carry only the tensors that changed.

    >>> net = build("minilm", num_classes=2)                   # doctest: +SKIP
    >>> net(ids, lengths).shape                                # [B, 2]  # doctest: +SKIP

Inputs are the zoo's text convention: token ids [B, T] padded at the end and lengths [B]
(the attention mask is built from the lengths, so the padding id does not matter).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from taskzoo.models import MODELS

# config.json of sentence-transformers/all-MiniLM-L6-v2 (its bookkeeping keys dropped): the
# default of the minilm builders, so a card or a test can build the shape without the files.
MINILM_CONFIG: dict[str, Any] = {
    "model_type": "bert", "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "hidden_size": 384, "initializer_range": 0.02,
    "intermediate_size": 1536, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
    "num_attention_heads": 12, "num_hidden_layers": 6, "pad_token_id": 0,
    "position_embedding_type": "absolute", "type_vocab_size": 2, "vocab_size": 30522,
}
Pooling = Literal["mean", "cls"]


def build_encoder(encoder_config: dict[str, Any]) -> nn.Module:
    """A randomly initialised `transformers` encoder of this configuration."""
    from transformers import AutoConfig, AutoModel

    kwargs = dict(encoder_config)
    model_type = kwargs.pop("model_type")
    config = AutoConfig.for_model(model_type, **kwargs)
    encoder = AutoModel.from_config(config)
    if getattr(encoder, "pooler", None) is not None:  # BERT's NSP pooler: unused, untrained here
        encoder.pooler = None
    return encoder


def _mask(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return (torch.arange(ids.shape[1], device=ids.device)[None, :]
            < lengths.to(ids.device)[:, None]).long()


class EncoderBase(nn.Module):
    """Holds `encoder` and says how it splits into layers (for freezing and lr decay)."""

    encoder: nn.Module

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Parameters bottom to top: embeddings, each transformer layer; the head is the rest."""
        layers = getattr(getattr(self.encoder, "encoder", None), "layer", None)
        embeddings = getattr(self.encoder, "embeddings", None)
        if layers is None or embeddings is None:
            raise TypeError(f"{type(self.encoder).__name__}: no .embeddings and .encoder.layer "
                            "to split into layers")
        return [list(embeddings.parameters()), *[list(layer.parameters()) for layer in layers]]

    def hidden(self, ids: torch.Tensor, lengths: torch.Tensor,
               types: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Last hidden states [B, T, H] and the mask; `types` are segment ids of a text pair."""
        mask = _mask(ids, lengths)
        extra = {} if types is None else {"token_type_ids": types}
        return self.encoder(input_ids=ids, attention_mask=mask, **extra).last_hidden_state, mask

    def pooled(self, h: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
        if pooling == "cls":
            return h[:, 0]
        m = mask.unsqueeze(-1).to(h.dtype)  # mean over real tokens, as sentence-transformers
        return (h * m).sum(1) / m.sum(1).clamp_min(1)


class TransformerClassifier(EncoderBase):
    """(ids [B, T], lengths [B]) -> class scores [B, K]: encoder, pooling, dropout, linear."""

    def __init__(self, *, encoder_config: dict[str, Any], num_classes: int, pooling: Pooling,
                 dropout: float) -> None:
        super().__init__()
        self.encoder = build_encoder(encoder_config)
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.config.hidden_size, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor,
                types: torch.Tensor | None = None) -> torch.Tensor:
        h, mask = self.hidden(ids, lengths, types)
        return self.head(self.dropout(self.pooled(h, mask, self.pooling)))


class TransformerSpan(EncoderBase):
    """(ids [B, T], lengths [B], types [B, T]) -> start and end scores [B, T, 2] of an answer
    span over a question + context pair (BERT's SQuAD head: one linear layer per token)."""

    def __init__(self, *, encoder_config: dict[str, Any], dropout: float) -> None:
        super().__init__()
        self.encoder = build_encoder(encoder_config)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.config.hidden_size, 2)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor,
                types: torch.Tensor | None = None) -> torch.Tensor:
        h, _ = self.hidden(ids, lengths, types)
        return self.head(self.dropout(h))


class TransformerEmbedder(EncoderBase):
    """(ids [B, T], lengths [B]) -> unit-length text embeddings [B, H] (a bi-encoder: texts
    are embedded apart, so a collection's embeddings are computed once and cached)."""

    def __init__(self, *, encoder_config: dict[str, Any], pooling: Pooling) -> None:
        super().__init__()
        self.encoder = build_encoder(encoder_config)
        self.pooling = pooling

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h, mask = self.hidden(ids, lengths)
        return nn.functional.normalize(self.pooled(h, mask, self.pooling), dim=-1)


class TransformerTagger(EncoderBase):
    """(ids [B, T], lengths [B], first [B, W], words [B]) -> tag scores [B, W, K].

    `first` holds the position of each word's first subword token (0 at word padding); the
    word's vector is that token's, as in BERT's NER recipe. `head="bilstm"` adds a small
    BiLSTM over the word vectors before the linear layer."""

    def __init__(self, *, encoder_config: dict[str, Any], num_tags: int,
                 head: Literal["linear", "bilstm"], hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.encoder = build_encoder(encoder_config)
        width = self.encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.rnn = (nn.LSTM(width, hidden_dim, batch_first=True, bidirectional=True)
                    if head == "bilstm" else None)
        self.head = nn.Linear(2 * hidden_dim if self.rnn is not None else width, num_tags)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, first: torch.Tensor,
                words: torch.Tensor) -> torch.Tensor:
        h, _ = self.hidden(ids, lengths)
        index = first.unsqueeze(-1).expand(-1, -1, h.shape[-1])
        x = self.dropout(torch.gather(h, 1, index))  # [B, W, H]
        if self.rnn is not None:
            packed = pack_padded_sequence(x, words.cpu(), batch_first=True, enforce_sorted=False)
            x, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True,
                                       total_length=first.shape[1])
            x = self.dropout(x)
        return self.head(x)


@MODELS.register("minilm")
def minilm(*, num_classes: int, encoder_config: dict[str, Any] | None = None,
           encoder_pooling: Pooling = "mean", dropout: float = 0.1) -> TransformerClassifier:
    """MiniLM-L6 (all-MiniLM-L6-v2, 6 layers, 384 wide) with mean pooling and a linear head."""
    return TransformerClassifier(encoder_config=encoder_config or MINILM_CONFIG,
                                 num_classes=num_classes, pooling=encoder_pooling, dropout=dropout)


@MODELS.register("minilm_tagger")
def minilm_tagger(*, num_tags: int, encoder_config: dict[str, Any] | None = None,
                  tag_head: Literal["linear", "bilstm"] = "linear", hidden_dim: int = 128,
                  dropout: float = 0.1) -> TransformerTagger:
    """MiniLM-L6 over subwords, each word tagged from its first subword (linear or BiLSTM head)."""
    return TransformerTagger(encoder_config=encoder_config or MINILM_CONFIG, num_tags=num_tags,
                             head=tag_head, hidden_dim=hidden_dim, dropout=dropout)


@MODELS.register("hf_classifier")
def hf_classifier(*, num_classes: int, encoder_config: dict[str, Any],
                  encoder_pooling: Pooling = "mean", dropout: float = 0.1) -> TransformerClassifier:
    """Any Hugging Face encoder (`model=hf:<repo>@<revision>`) with pooling and a linear head."""
    return TransformerClassifier(encoder_config=encoder_config, num_classes=num_classes,
                                 pooling=encoder_pooling, dropout=dropout)


@MODELS.register("hf_tagger")
def hf_tagger(*, num_tags: int, encoder_config: dict[str, Any],
              tag_head: Literal["linear", "bilstm"] = "linear", hidden_dim: int = 128,
              dropout: float = 0.1) -> TransformerTagger:
    """Any Hugging Face encoder (`model=hf:<repo>@<revision>`) as a first-subword tagger."""
    return TransformerTagger(encoder_config=encoder_config, num_tags=num_tags, head=tag_head,
                             hidden_dim=hidden_dim, dropout=dropout)


@MODELS.register("minilm_qa")
def minilm_qa(*, encoder_config: dict[str, Any] | None = None,
              dropout: float = 0.1) -> TransformerSpan:
    """MiniLM-L6 reading a question + context pair, with a start/end span head (SQuAD)."""
    return TransformerSpan(encoder_config=encoder_config or MINILM_CONFIG, dropout=dropout)


@MODELS.register("hf_qa")
def hf_qa(*, encoder_config: dict[str, Any], dropout: float = 0.1) -> TransformerSpan:
    """Any Hugging Face encoder (`model=hf:<repo>@<revision>`) with a start/end span head."""
    return TransformerSpan(encoder_config=encoder_config, dropout=dropout)


@MODELS.register("minilm_cross")
def minilm_cross(*, encoder_config: dict[str, Any] | None = None, encoder_pooling: Pooling = "cls",
                 dropout: float = 0.1) -> TransformerClassifier:
    """A cross-encoder: MiniLM-L6 reads a (question, candidate) pair, one relevance score out."""
    return TransformerClassifier(encoder_config=encoder_config or MINILM_CONFIG, num_classes=1,
                                 pooling=encoder_pooling, dropout=dropout)


@MODELS.register("minilm_bi")
def minilm_bi(*, encoder_config: dict[str, Any] | None = None,
              encoder_pooling: Pooling = "mean") -> TransformerEmbedder:
    """A bi-encoder: MiniLM-L6 embeds question and candidate apart; cosine is the score."""
    return TransformerEmbedder(encoder_config=encoder_config or MINILM_CONFIG,
                               pooling=encoder_pooling)


@MODELS.register("hf_bi")
def hf_bi(*, encoder_config: dict[str, Any], encoder_pooling: Pooling = "mean") -> TransformerEmbedder:
    """Any Hugging Face encoder (`model=hf:<repo>@<revision>`) as a bi-encoder of unit vectors."""
    return TransformerEmbedder(encoder_config=encoder_config, pooling=encoder_pooling)
