"""Predictions of every released weight on its task's example inputs, as JSON: a check that a
change which should not change behaviour (a refactor) did not.

    python benchmarks/released_predictions.py before.json      # on the old commit
    python benchmarks/released_predictions.py after.json       # on the new one
    cmp before.json after.json

One thread, CPU; floats rounded to 5 digits, images as their sha256. Needs the mirror for the
weights over a pretrained encoder (TASKZOO_MIRROR).
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

import torch

import taskzoo
from taskzoo.api import make_config, resolve_task
from taskzoo.weights import cards


def plain(x: Any) -> Any:
    """A JSON-able, comparable form of a predictor's output."""
    if isinstance(x, float):
        return round(x, 5)
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "tobytes") and hasattr(x, "mode"):  # a PIL image
        return f"image {x.mode} {x.size} " + hashlib.sha256(x.tobytes()).hexdigest()[:16]
    if hasattr(x, "tolist"):
        return plain(x.tolist())
    return x if isinstance(x, (str, int, bool, type(None))) else repr(x)


def main(out: str) -> None:
    torch.set_num_threads(1)
    results: dict[str, Any] = {}
    for card in sorted(cards(), key=lambda c: c.name):
        task_cls = resolve_task(card.task)
        try:
            predictor = taskzoo.load(task_cls.name, weights=card.name, device="cpu")
            inputs = task_cls(make_config(task_cls, {})).example_inputs(3)
            results[card.name] = plain(predictor(inputs[:3]))
        except Exception as exc:  # recorded: an error that changes is a change too
            results[card.name] = f"ERROR {type(exc).__name__}: {exc}"[:300]
        print(card.name, str(results[card.name])[:120], flush=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
