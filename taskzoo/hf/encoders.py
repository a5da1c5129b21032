"""Pretrained text encoders for the tasks: which repository a model name stands for, its
configuration, its verified weights loaded into a zoo model, and its subword tokenizer.

    >>> from taskzoo.hf.encoders import encoder_repo, Subwords
    >>> repo = encoder_repo("minilm")                        # MiniLM-L6 at its pinned commit
    >>> tok = Subwords.from_repo(repo)                       # doctest: +SKIP
    >>> tok.encode("a gripping film")                        # doctest: +SKIP
    [101, 1037, 13940, 2143, 102]

The files come through `taskzoo.hf.hf_folder` (verified by sha256, mirror or cache), so
`transformers` itself never touches the network.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from torch import nn

from taskzoo.errors import CheckpointError, InputError
from taskzoo.hf import MINILM, HFRepo, hf_folder, repo_for

# zoo models whose encoder is a pinned pretrained repository
PRETRAINED = {name: MINILM for name in ("minilm", "minilm_tagger", "minilm_qa", "minilm_cross",
                                          "minilm_bi")}
# keys of config.json that describe how it was saved, not the network
_BOOKKEEPING = {"_name_or_path", "architectures", "transformers_version", "torch_dtype",
                "dtype", "gradient_checkpointing", "use_cache"}


def encoder_repo(model: str) -> HFRepo | None:
    """The pretrained repository behind model name `model`: MiniLM for the minilm models,
    the pinned repository of `hf:<repo>@<revision>`, None for models trained from scratch."""
    if model.startswith("hf:"):
        return repo_for(model)
    return PRETRAINED.get(model)


def describe(repo: HFRepo) -> dict[str, Any]:
    """What a weights card records about the base encoder: name, commit, weights sha256."""
    sha = {n: s for n, s, _ in repo.files}
    return {"repo": repo.repo, "revision": repo.revision, "file": "model.safetensors",
            "sha256": sha.get("model.safetensors", ""), "license": repo.license}


def encoder_config(repo: HFRepo) -> dict[str, Any]:
    """The repository's config.json without its bookkeeping keys (the network's shape)."""
    raw = json.loads((hf_folder(repo) / "config.json").read_text(encoding="utf-8"))
    return {k: v for k, v in raw.items() if k not in _BOOKKEEPING}


def load_encoder(module: nn.Module, repo: HFRepo) -> dict[str, Any]:
    """Fill the `transformers` model `module` with `repo`'s verified pretrained weights.

    Checkpoints saved from a task model carry the base model's prefix (`bert.`): it is
    stripped. Every tensor of `module` must be filled, else a CheckpointError names them.
    Returns `describe(repo)` plus the names filled, which an export leaves out."""
    from taskzoo.weights import read_weights

    tensors = read_weights(hf_folder(repo) / "model.safetensors")
    prefix = f"{getattr(module, 'base_model_prefix', '')}."
    tensors = {k.removeprefix(prefix): v for k, v in tensors.items()}
    own = module.state_dict()
    missing = sorted(k for k in own if k not in tensors)
    shapes = [k for k in own if k in tensors and tensors[k].shape != own[k].shape]
    if missing or shapes:
        raise CheckpointError(f"{repo.repo}@{repo.revision[:12]}: its weights do not fit the "
                              f"encoder built from its config: missing {missing[:5]}, "
                              f"other shapes {shapes[:5]}")
    module.load_state_dict({k: tensors[k].to(own[k].dtype) for k in own})
    return {**describe(repo), "names": sorted(own)}


class Subwords:
    """A repository's fast tokenizer: text -> ids, or words -> ids and each word's first
    subword position (for taggers)."""

    def __init__(self, tokenizer: Any, repo: HFRepo) -> None:
        self.tok, self.repo = tokenizer, repo
        self.max_length = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)

    @classmethod
    def from_repo(cls, repo: HFRepo) -> Subwords:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(hf_folder(repo), local_files_only=True, use_fast=True)
        if not getattr(tok, "is_fast", False):
            raise CheckpointError(f"{repo.repo}: no fast tokenizer (tokenizer.json or a "
                                  "convertible vocabulary); word alignment needs one")
        return cls(tok, repo)

    def encode(self, texts: Sequence[str], *, max_tokens: int = 512) -> list[list[int]]:
        """Token ids of each text, special tokens included, truncated to `max_tokens`."""
        limit = max(2, min(max_tokens, self.max_length))
        return self.tok(list(texts), truncation=True, max_length=limit)["input_ids"]

    def encode_words(self, sentences: Sequence[Sequence[str]], *,
                     what: str = "sentence") -> list[tuple[list[int], list[int]]]:
        """(ids, first subword position of each word) per sentence of words. A sentence longer
        than the encoder's positions is an InputError: truncating would drop words' tags."""
        enc = self.tok([list(s) for s in sentences], is_split_into_words=True)
        out = []
        for i, words in enumerate(sentences):
            ids = enc["input_ids"][i]
            if len(ids) > self.max_length:
                raise InputError(f"{what} {i}: {len(words)} words make {len(ids)} subword "
                                 f"tokens; this encoder reads at most {self.max_length}")
            first: list[int] = [-1] * len(words)
            for pos, w in enumerate(enc.word_ids(i)):
                if w is not None and first[w] < 0:
                    first[w] = pos
            # a word the tokenizer drops entirely (a lone control character) reads [CLS]
            out.append((ids, [p if p >= 0 else 0 for p in first]))
        return out
