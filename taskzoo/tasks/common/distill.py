"""Knowledge distillation for the text tasks: a small student learns from a teacher's soft
labels (Hinton et al. 2015) over the training set, optionally plus augmented sentences the
teacher labels (Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT into Simple
Neural Networks": masking, POS-guided word replacement, n-gram sampling).

    taskzoo run sentiment model=bigru teacher=runs/sentiment/MINILM_RUN augment=1

The teacher is a run directory or released weights of the same task, loaded as its
predictor; it reads the same words the student does (`teacher_logits(word lists)`), so any
model family can teach any other. The loss is

    distill_alpha * T^2 * KL(teacher_T || student_T) + (1 - distill_alpha) * CE(gold)

with both softmaxes at temperature T; augmented sentences have no gold label and take the
soft term only.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from taskzoo.config import PositiveFloat, Probability
from taskzoo.errors import ConfigError
from taskzoo.weights import SpecRules, resolve_spec, unknown_name

MASK = "[MASK]"  # a masked word: the student's <unk>, a BERT teacher's mask token
# Tang et al. 2019's probabilities: mask a word, swap it for another of its POS tag, and
# keep only an n-gram (n in 1..5) of the whole sentence
P_MASK, P_POS, P_NGRAM = 0.1, 0.1, 0.25


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """The distillation fields of a text task's config (sentiment, pos). The task's config
    names it first among its bases, before a class with the task's own fields: dataclass
    fields follow the bases from the last to the first, so these come after the task's own,
    in `taskzoo run TASK --help` too."""

    teacher: str = ""  # distil from a run dir or weights of this task (tasks/common/distill.py); "" = gold labels only
    temperature: PositiveFloat = 2.0  # distillation: softmax temperature of teacher and student
    distill_alpha: Probability = 0.5  # distillation: weight of the soft labels; the rest is gold labels


def load_teacher(spec: str, task: str, *, device: str,
                 labels: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """The teacher's predictor (a run directory, a released weights name or a .safetensors
    file with its card) and what a student's card says of it: model and figures. A teacher
    with other `labels` than the student's is a ConfigError."""
    source = resolve_spec(spec, task=task, rules=TEACHER)
    teacher = source.restore(device=device).predictor()
    if source.run_dir is not None:
        about = {"run": str(source.run_dir), "model": source.config.get("model"),
                 "task": source.config.get("_task")}
    else:
        card = source.card
        about = {"weights": card.name, "sha256": card.sha256, "model": card.config.get("model")}
    if not hasattr(teacher, "teacher_logits"):
        raise ConfigError(f"teacher={spec!r}: a {type(teacher).__name__} cannot teach "
                          "(it has no teacher_logits)")
    if list(teacher.labels) != list(labels):
        raise ConfigError(f"teacher={spec}: it predicts {list(teacher.labels)}, not this "
                          f"run's {list(labels)}")
    about["metrics"] = {k: v for k, v in source.metrics.items() if k.startswith(("dev/", "test/"))}
    return teacher, about


def _no_teacher(spec: str, task: str | None) -> Exception:
    if Path(spec).suffix != ".safetensors" and spec.count(".") == 1:
        return unknown_name(spec)  # a mistyped released name: the closest ones
    return ConfigError(f"teacher={spec!r}: expected a run directory, a released weights "
                       "name (minilm.sst2) or a .safetensors file with its card beside it")


TEACHER = SpecRules(option="teacher", run_dirs=True, missing=_no_teacher)


def teacher_logits(teacher: Any, sentences: Sequence[Sequence[str]], *, chunk: int = 2048,
                   desc: str = "teacher") -> Any:
    """The teacher's scores of every sentence (word lists), in chunks, with a progress bar:
    one tensor [N, K] (a sentence each) or a list of [W, K] (a word each)."""
    import sys

    from tqdm import tqdm

    rows: list[torch.Tensor] = []  # one [K] per sentence
    words: list[torch.Tensor] = []  # one [W, K] per sentence
    show = bool(sys.stderr and sys.stderr.isatty())
    for start in tqdm(range(0, len(sentences), chunk), desc=desc, unit="chunk", disable=not show,
                      leave=False):
        got = teacher.teacher_logits(list(sentences[start:start + chunk]))
        if isinstance(got, torch.Tensor):
            rows.append(got.float())
        else:
            words += [g.float() for g in got]
    return torch.cat(rows) if rows else words


def pos_tags(sentences: Sequence[Sequence[str]]) -> list[list[str]]:
    """UPOS tags of word lists from taskzoo's own released EWT tagger (for POS-guided
    replacement)."""
    import taskzoo

    tagger = taskzoo.load("pos", device="cpu")
    return [out["tags"] for out in tagger([list(s) for s in sentences], tokenized=True)]


def augment(sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]], *, copies: int,
            seed: int) -> list[list[str]]:
    """`copies` new sentences from each one, as in Tang et al. 2019: each word is masked with
    P_MASK, else with P_POS replaced by a word of the same tag drawn from the corpus's
    unigram counts; then with P_NGRAM only an n-gram (n in 1..5) is kept. A copy equal to
    its source is drawn again (up to 10 tries)."""
    rng = random.Random(seed)
    by_tag: dict[str, Counter[str]] = defaultdict(Counter)
    for words, ts in zip(sentences, tags):
        for w, t in zip(words, ts):
            by_tag[t][w] += 1
    pools = {t: (list(c), list(c.values())) for t, c in by_tag.items()}
    out: list[list[str]] = []
    for words, ts in zip(sentences, tags):
        for _ in range(copies):
            for _try in range(10):
                new = []
                for w, t in zip(words, ts):
                    x = rng.random()
                    if x < P_MASK:
                        new.append(MASK)
                    elif x < P_MASK + P_POS and t in pools:
                        new.append(rng.choices(*pools[t])[0])
                    else:
                        new.append(w)
                if len(new) > 1 and rng.random() < P_NGRAM:
                    n = rng.randint(1, min(5, len(new)))
                    start = rng.randrange(len(new) - n + 1)
                    new = new[start:start + n]
                if new != list(words):
                    break
            out.append(new)
    return out


def distill_loss(logits: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, *,
                 temperature: float, alpha: float) -> torch.Tensor:
    """Mean over rows of alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(gold);
    a row without a gold label (label -1: an augmented sentence) takes the soft term alone.
    The T^2 keeps the soft term's gradients on the scale of the hard one's (Hinton et al.)."""
    t = temperature
    log_p = F.log_softmax(logits.float() / t, -1)
    log_q = F.log_softmax(teacher.float() / t, -1)
    soft = (log_q.exp() * (log_q - log_p)).sum(-1) * t * t  # [B]
    gold = labels >= 0
    hard = F.cross_entropy(logits.float(), labels.clamp_min(0), reduction="none")
    mixed = torch.where(gold, alpha * soft + (1 - alpha) * hard, soft)
    return mixed.mean()
