"""A tiny sentiment dataset written by the project: 320 review snippets, offline, for tests
and demos (`taskzoo run sentiment dataset=tiny`). Never a substitute for SST-2.

Sentences are built from hand-written subjects and verdicts in SST-2's style (lower-cased,
PTB tokens). Dev uses verdicts that share words, never whole sentences, with train, so a
model must generalise from words, not memorise lines.
"""

from __future__ import annotations

import random

SUBJECTS = [
    "the film", "this movie", "the acting", "the script", "the soundtrack", "the director 's latest",
    "the story", "the cast", "this picture", "the ending", "the screenplay", "the whole thing",
    "the performances", "the dialogue", "the cinematography", "this sequel",
]

POSITIVE = [
    "is a gripping , beautiful ride", "is warm , funny and wise", "is a triumph",
    "is smart and moving", "is one of the year 's best", "is touching and sincere",
    "is a delight from start to finish", "is brilliant", "is charming and witty",
    "is a wonderful surprise", "works beautifully", "is thoroughly enjoyable",
    "is fresh and exciting", "is powerful and honest", "is a joy to watch",
    "is clever , tender and funny", "is an absolute gem", "is well worth your time",
    "is superb", "is a moving , memorable experience",
]

NEGATIVE = [
    "is dull and lifeless", "is a waste of two hours", "is a mess",
    "is boring and predictable", "is one of the year 's worst", "is flat and tedious",
    "is a chore from start to finish", "is awful", "is bland and witless",
    "is a painful disappointment", "never works", "is thoroughly unpleasant",
    "is stale and lazy", "is shallow and dishonest", "is a slog to watch",
    "is clumsy , cold and unfunny", "is an utter failure", "is not worth your time",
    "is terrible", "is a tiresome , forgettable experience",
]

# Held-out verdicts for dev: recombine words seen in train in new sentences.
DEV_POSITIVE = [
    "is funny , smart and beautiful", "is a wonderful , moving triumph", "is honest and charming",
    "is a gem worth your time",
]
DEV_NEGATIVE = [
    "is dull , stale and predictable", "is a boring , painful mess", "is lazy and tedious",
    "is a failure not worth your time",
]


def load_tiny_sentiment(seed: int = 13) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(train, dev) lists of (sentence, label), label 1 = positive.

    >>> train, dev = load_tiny_sentiment()
    >>> len(train), len(dev)
    (256, 64)
    """
    rng = random.Random(seed)
    train: list[tuple[str, int]] = []
    for verdicts, label in ((POSITIVE, 1), (NEGATIVE, 0)):
        pairs = [(s, v) for s in SUBJECTS for v in verdicts]
        rng.shuffle(pairs)
        train += [(f"{s} {v} .", label) for s, v in pairs[:128]]
    dev: list[tuple[str, int]] = []
    for verdicts, label in ((DEV_POSITIVE, 1), (DEV_NEGATIVE, 0)):
        pairs = [(s, v) for s in SUBJECTS[:8] for v in verdicts]
        dev += [(f"{s} {v} .", label) for s, v in pairs]
    rng.shuffle(train)
    rng.shuffle(dev)
    return train, dev
