"""The topic task's data: labelled sentences, encoded as word ids, and their batches.

Replace `load_rows` with your dataset. A real dataset comes through the verified hub: pin each
file as `hub.RemoteFile(name, sha256, size, urls)` and read what `hub.fetch(...)` returns (see
taskzoo/data/sst2.py). This template embeds its own small set so it runs offline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch.nn.utils.rnn import pad_sequence

from taskzoo.data.text import Vocab
from taskzoo.tasks.base import DataBundle

LABELS = ["sport", "food", "weather"]
WORDS = {  # (subjects, verbs, objects) of each topic's made-up sentences
    "sport": (["the team", "our striker", "the keeper", "the coach"],
              ["won", "lost", "scored in", "trained for"], ["the match", "the final", "the league"]),
    "food": (["my aunt", "the chef", "the bakery", "our cook"],
             ["baked", "served", "burnt", "tasted"], ["the bread", "a soup", "the pasta"]),
    "weather": (["the wind", "the storm", "the sun", "a cold front"],
                ["hit", "warmed", "soaked", "cooled"], ["the coast", "the valley", "the city"]),
}


def load_rows(split: str, *, seed: int = 0) -> list[tuple[str, int]]:
    """(sentence, label id) rows of one split: "train" (120) or "dev" (30), seeded."""
    rng = random.Random(f"{split}-{seed}")
    rows = []
    for label, topic in enumerate(LABELS):
        subjects, verbs, objects = WORDS[topic]
        for _ in range(40 if split == "train" else 10):
            rows.append((f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}", label))
    rng.shuffle(rows)
    return rows


class TextBatch(NamedTuple):
    ids: torch.Tensor  # [B, T] word ids, 0-padded
    lengths: torch.Tensor  # [B] words per sentence
    labels: torch.Tensor  # [B] label ids


@dataclass
class TopicData(DataBundle):
    vocab: Vocab = field(default_factory=lambda: Vocab([Vocab.PAD, Vocab.UNK]))


def collate(rows: list[tuple[torch.Tensor, int]]) -> TextBatch:
    """rows of (word ids, label id) -> one padded batch."""
    ids = [r[0] for r in rows]
    return TextBatch(ids=pad_sequence(ids, batch_first=True, padding_value=0),
                     lengths=torch.tensor([len(i) for i in ids]),
                     labels=torch.tensor([r[1] for r in rows]))
