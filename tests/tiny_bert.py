"""A tiny random BERT written into a temporary mirror, standing in for a Hugging Face
repository (`model=hf:taskzoo-tests/tiny-bert@<commit>`) so the pretrained-encoder tasks run
offline in seconds. Its WordPiece vocabulary holds the tiny datasets' words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import taskzoo
from taskzoo.data.tiny_pos import load_tiny_pos
from taskzoo.data.tiny_qa import load_tiny_qa, load_tiny_summaries
from taskzoo.data.tiny_sentiment import load_tiny_sentiment

REVISION = "0123456789abcdef0123456789abcdef01234567"
SPEC = f"hf:taskzoo-tests/tiny-bert@{REVISION}"


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower()))


def write_tiny_bert(folder: Path) -> None:
    """A 2-layer, 32-wide BERT with random weights and a WordPiece vocabulary of the tiny
    sets' words, saved as transformers saves any model."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words: set[str] = set()
    for text, _ in [*load_tiny_sentiment()[0], *load_tiny_sentiment()[1]]:
        words.update(text.lower().split())
    for split in load_tiny_pos().values():
        words.update(w.lower() for s in split for w in s.words)
    for split in load_tiny_qa():
        for ex in split:
            words |= _words(ex.context) | _words(ex.question)
    for split in load_tiny_summaries().values():
        for doc, _ in split:
            words |= _words(doc)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)]
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(folder)  # config.json + model.safetensors


def offline_run(tiny_mirror: Path, tmp: Path, task: str, **overrides):
    """taskzoo.run with the tiny mirror, offline, in a cache of its own (module fixtures)."""
    overrides = {"model": SPEC, **overrides}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TASKZOO_HOME", str(tmp / "home"))
        mp.setenv("TASKZOO_MIRROR", str(tiny_mirror))
        mp.setenv("TASKZOO_OFFLINE", "1")
        return taskzoo.run(task, dataset="tiny", out=tmp / task, device="cpu", progress=False,
                           **overrides)


@pytest.fixture(scope="module")
def tiny_mirror(tmp_path_factory) -> Path:
    """A mirror folder holding the tiny BERT (once per test module)."""
    mirror = tmp_path_factory.mktemp("hf_mirror")
    write_tiny_bert(mirror / "tiny-bert")
    return mirror


@pytest.fixture
def hf_env(tiny_mirror, monkeypatch, tmp_path):
    """An empty cache each test, the tiny mirror, no network."""
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TASKZOO_MIRROR", str(tiny_mirror))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    return tiny_mirror
