"""POS tagging with a pretrained transformer (`model=minilm_tagger` or `hf:<repo>@<commit>`):
words become subword tokens through the encoder's own tokenizer, and each word is tagged
from its first subword (the fast tokenizer's `word_ids` say where each word starts).

Rows are (subword ids, first-subword position of each word, tag ids); batches pad both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from taskzoo.data.ud import TaggedSentence
from taskzoo.tasks.pos.data import PosData, sentence_tags


class SubTagBatch(NamedTuple):
    ids: torch.Tensor  # [B, T] subword ids, 0-padded
    sub_lengths: torch.Tensor  # [B] subword tokens per sentence, specials included
    first: torch.Tensor  # [B, W] position of each word's first subword, 0 at padding
    lengths: torch.Tensor  # [B] words per sentence
    tags: torch.Tensor  # [B, W] tag ids, -100 at padding
    teacher: torch.Tensor | None = None  # [B, W, K] a teacher's tag scores when distilling


def encode(subwords: Any, sentences: Sequence[Sequence[str]], *,
           what: str = "sentence") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(subword ids, first positions) of each sentence of words."""
    return [(torch.tensor(ids), torch.tensor(first))
            for ids, first in subwords.encode_words(sentences, what=what)]


def collate(rows: list[tuple[torch.Tensor, ...]]) -> SubTagBatch:
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
        pieces = encode(subwords, [s.words for s in ss], what=f"{split} sentence")
        # a tag train never shows: ignored by the loss, counted wrong in scores
        encoded[split] = [
            (ids, first, torch.tensor([tag_ids.get(t, -100) for t in sentence_tags(s, cfg.tagset)]))
            for (ids, first), s in zip(pieces, ss)]
    # batches are bucketed by subword length, what their cost depends on
    lengths = {k: [len(r[0]) for r in v] for k, v in encoded.items()}
    return PosData(train=encoded.pop("train"), splits=encoded, labels=labels, subwords=subwords,
                   train_words=frozenset(w.lower() for s in train for w in s.words),
                   sentences={k: v for k, v in sents.items() if k != "train"}, lengths=lengths)


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
