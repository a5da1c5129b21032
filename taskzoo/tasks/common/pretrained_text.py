"""What the text tasks share when their model is a pretrained transformer encoder
(`model=minilm`, `minilm_tagger` or `hf:<repo>@<revision>`): the recipe a pretrained
encoder wants, the base weights loaded into it, and which layers train at which rate.

A task asks `is_pretrained(cfg.model)`; if not, the model trains from scratch on the task's
own vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from torch import nn

from taskzoo.config import Probability, Range, SupervisedConfig
from taskzoo.errors import CheckpointError
from taskzoo.hf import HFRepo, repo_for
from taskzoo.hf.encoders import PRETRAINED, describe, encoder_repo, load_encoder

# Fine-tuning a pretrained encoder wants a small learning rate with warm-up and linear decay,
# light dropout and short training (Devlin et al. 2019; Sun et al. 2019 for the layer decay).
# Implied by model=minilm / hf:...; a user's own overrides still win.
FINETUNE_RECIPE: dict[str, Any] = {
    "lr": 2e-4, "batch_size": 32, "epochs": 1, "schedule": "linear", "warmup_steps": 120,
    "weight_decay": 0.01, "grad_clip": 1.0, "dropout": 0.1, "eval_batch_size": 128,
}


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(SupervisedConfig):
    """The fields of a task whose model is always a pretrained encoder, fine-tuned (qa,
    answer_selection); a task's own config changes the defaults it needs."""

    epochs: int = 1  # passes over the training data
    batch_size: int = 32  # examples per step
    lr: float = 1e-4  # AdamW peak learning rate
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    schedule: Literal["constant", "linear", "cosine"] = "linear"  # decay to 0 over the run
    warmup_steps: int = 30  # linear warm-up steps
    grad_clip: float = 1.0  # max gradient norm
    keep: Literal["best", "last"] = "last"  # the final weights: dev is not used to select
    train_layers: Annotated[int, Range(-1)] = -1  # top k encoder layers trained; -1 = all
    train_embeddings: bool = False  # fine-tune the embeddings too (else frozen, left to the base)
    layer_decay: Annotated[float, Range(0, 1, open_lo=True)] = 1.0  # lr factor per layer down
    dropout: Probability = 0.1  # dropout before the task's head


def is_pretrained(model: str) -> bool:
    """Whether model name `model` stands for a pretrained encoder (no file is read)."""
    return model.startswith("hf:") or model in PRETRAINED


def pretrained_repo(model: str) -> HFRepo:
    """The pinned repository of a pretrained model name (`is_pretrained(model)` is true)."""
    repo = encoder_repo(model)
    assert repo is not None, model
    return repo


def repo_from_state(state: dict[str, Any]) -> HFRepo:
    """The base encoder a run's data state (or a card's) names, checked against its pin."""
    base = state["encoder"]
    repo = repo_for(f"hf:{base['repo']}@{base['revision']}")
    if describe(repo)["sha256"] != base["sha256"]:
        raise CheckpointError(f"these weights were fine-tuned from {base['repo']}@"
                              f"{base['revision'][:12]} whose model.safetensors has sha256 "
                              f"{base['sha256'][:12]}..., but that pin now says "
                              f"{describe(repo)['sha256'][:12]}...")
    return repo


def arch_name(model: str, generic: str) -> str:
    """The zoo builder of a pretrained model name: itself, or `generic` for hf:<repo>."""
    return generic if model.startswith("hf:") else model


def attach_base(model: nn.Module, repo: HFRepo) -> None:
    """Load `repo`'s verified weights into `model.encoder` and record them as the model's
    base, so an export writes only what fine-tuning changed."""
    info = load_encoder(model.encoder, repo)
    model.pretrained_base = {**info, "prefix": "encoder."}


def layer_recipe(model: nn.Module, *, train_layers: int, train_embeddings: bool,
                 layer_decay: float) -> None:
    """Train the top `train_layers` transformer layers (-1, or more than there are: all) and
    the head; the embeddings only with `train_embeddings` (frozen, they keep the pretrained
    geometry of words the task data never shows, and an export leaves them to the base).
    The learning rate decays layer-wise (ELECTRA's rule): the head trains at lr, the top
    layer at lr * layer_decay, each layer below at one more factor, the embeddings lowest."""
    from taskzoo.train.optim import scale_lr

    embeddings, *layers = model.layer_groups()
    # k beyond the encoder's depth trains all of it: the recipe's k=3 suits any small encoder
    first = 0 if train_layers < 0 else max(0, len(layers) - train_layers)
    for p in embeddings:
        p.requires_grad_(train_embeddings)
    if train_embeddings and layer_decay != 1.0:
        scale_lr(embeddings, layer_decay ** (len(layers) + 1))
    for i, params in enumerate(layers):
        for p in params:
            p.requires_grad_(i >= first)
        if i >= first and layer_decay != 1.0:
            scale_lr(params, layer_decay ** (len(layers) - i))


def load_embedder(subwords: Any, runtime: Any) -> nn.Module:
    """The frozen sentence encoder: the pretrained encoder, mean-pooled, unit vectors."""
    from taskzoo.hf.encoders import encoder_config
    from taskzoo.models import build

    model = build("hf_bi", encoder_config=encoder_config(subwords.repo))
    attach_base(model, subwords.repo)
    return runtime.to_device(model.eval().requires_grad_(False))


def embed(embedder: nn.Module, subwords: Any, runtime: Any, texts: list[str], *,
          max_tokens: int, batch_size: int) -> torch.Tensor:
    """Embeddings [N, E] of texts (batched by length; inference mode)."""
    from torch.nn.utils.rnn import pad_sequence

    from taskzoo.data.loader import eval_batches

    ids = [torch.tensor(i) for i in subwords.encode(texts, max_tokens=max_tokens)]
    out = torch.empty(len(texts), embedder.encoder.config.hidden_size)
    pad = lambda rows: (pad_sequence(rows, batch_first=True), torch.tensor([len(r) for r in rows]))  # noqa: E731
    with runtime.inference():
        for idx, (x, n) in eval_batches(ids, batch_size=batch_size, collate=pad,
                                        lengths=[len(i) for i in ids]):
            x, n = runtime.to_device((x, n))
            out[idx] = embedder(x, n).float().cpu()
    return out
