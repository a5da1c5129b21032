"""Tiny question-answering sets written by the project, offline, for tests and demos
(`dataset=tiny` of `qa` and `answer_selection`). Never a substitute for SQuAD or WikiQA.

Each paragraph tells of two or three invented people (where they were born, when, what they
worked as and where); questions ask about one of them, so a reader must find the right name,
not just the right kind of word. Train, dev and test use disjoint people.

    >>> train, dev, test = load_tiny_qa()
    >>> ex = train[0]; ex.context[ex.answers[0][1]:].startswith(ex.answers[0][0])
    True
"""

from __future__ import annotations

import random

from taskzoo.data.squad import SquadExample
from taskzoo.data.wikiqa import WikiQAQuestion

FIRST = ["anna", "boris", "clara", "david", "elena", "felix", "greta", "hugo", "irene", "jonas",
         "karla", "leon", "maria", "nils", "olga", "paul", "rosa", "simon", "tina", "victor",
         "wanda", "yusuf", "zara", "omar", "lena", "igor", "nora", "emil", "vera", "otto"]
LAST = ["berg", "costa", "dahl", "ek", "frost", "gale", "holm", "ivers", "lund", "marsh",
        "north", "stone", "vance", "wolfe"]
CITIES = ["paris", "lisbon", "oslo", "vienna", "cairo", "lima", "quito", "dublin", "prague",
          "madrid", "athens", "riga", "tunis", "hanoi", "sofia", "kyiv"]
JOBS = ["baker", "pilot", "nurse", "teacher", "painter", "farmer", "doctor", "sailor",
        "lawyer", "singer", "chemist", "miner"]
QUESTIONS = {  # question template -> the fact that answers it
    "where was {name} born ?": "city", "in which city was {name} born ?": "city",
    "when was {name} born ?": "year", "in what year was {name} born ?": "year",
    "what did {name} work as ?": "job", "what was the job of {name} ?": "job",
    "where did {name} work ?": "work", "in which city did {name} work ?": "work",
}


def _person(rng: random.Random, name: str) -> dict[str, str]:
    return {"name": name, "city": rng.choice(CITIES), "year": str(rng.randint(1900, 1999)),
            "job": rng.choice(JOBS), "work": rng.choice(CITIES)}


def _sentences(p: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    """Sentences about person p, each with the facts it states."""
    return [(f"{p['name']} was born in {p['city']} in {p['year']} .",
             {"city": p["city"], "year": p["year"]}),
            (f"later {p['name']} worked as a {p['job']} in {p['work']} .",
             {"job": p["job"], "work": p["work"]})]


def _paragraphs(names: list[str], rng: random.Random) -> list[list[dict[str, str]]]:
    people = [_person(rng, n) for n in names]
    groups, i = [], 0
    while i < len(people):
        k = rng.choice((2, 3))
        groups.append(people[i:i + k])
        i += k
    return groups


def _names(rng: random.Random) -> list[str]:
    names = [f"{f} {l}" for f in FIRST for l in LAST]
    rng.shuffle(names)
    return names


def load_tiny_qa(seed: int = 0) -> tuple[list[SquadExample], list[SquadExample], list[SquadExample]]:
    """(train, dev, test) SQuAD-style examples over 240 / 40 / 40 invented people."""
    rng = random.Random(seed)
    names = _names(rng)
    splits = []
    for split, chunk in (("train", names[:240]), ("dev", names[240:280]), ("test", names[280:320])):
        rows = []
        for g, group in enumerate(_paragraphs(chunk, rng)):
            sents = [s for p in group for s in _sentences(p)]
            rng.shuffle(sents)
            context = " ".join(s for s, _ in sents)
            for p in group:
                for template in rng.sample(sorted(QUESTIONS), 3):
                    fact = QUESTIONS[template]
                    answer = p[fact]
                    # the answer where this person's sentence states it
                    sentence = next(s for s, facts in sents if p["name"] in s and fact in facts)
                    at = context.index(sentence)
                    at += sentence.index(f" {answer} " if fact != "year" else answer,
                                         len(p["name"])) + (1 if fact != "year" else 0)
                    assert context[at:at + len(answer)] == answer
                    rows.append(SquadExample(id=f"tiny-{split}-{len(rows)}", title=f"{split}-{g}",
                                             context=context,
                                             question=template.format(name=p["name"]),
                                             answers=((answer, at),)))
        splits.append(rows)
    return splits[0], splits[1], splits[2]


def load_tiny_selection(seed: int = 0) -> dict[str, list[WikiQAQuestion]]:
    """WikiQA-style sets from the same people: each question's candidates are its paragraph's
    sentences, the one stating the asked fact labelled 1; every dev and test question has a
    right answer, so all are in the filtered sets."""
    out = {}
    for split, rows in zip(("train", "dev", "test"), load_tiny_qa(seed)):
        questions = []
        for ex in rows:
            sentences = [s.strip() + " ." for s in ex.context.split(" .") if s.strip()]
            start = ex.answers[0][1]
            ends, pos = [], 0
            for s in sentences:  # each sentence's end offset in the context
                pos = ex.context.index(s, pos) + len(s)
                ends.append(pos)
            gold = next(i for i, e in enumerate(ends) if start < e)
            questions.append(WikiQAQuestion(qid=len(questions), question=ex.question,
                                            sentences=tuple(sentences),
                                            labels=tuple(int(i == gold) for i in range(len(sentences))),
                                            filtered=split != "train"))
        out[split] = questions
    return out


FILLER = ["the weather was mild that year .", "many visitors came to the region .",
          "the local paper printed the story on a monday .", "prices in the shops rose a little .",
          "a new road was opened near the river .", "the trains were often late .",
          "the town held a market every week .", "it rained for most of the spring .",
          "the old bridge was painted green .", "a school was built on the hill ."]


def load_tiny_summaries(seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """(document, reference summary) pairs: a person's facts among filler sentences; the
    summary is the fact sentences (so position alone does not find them). 120 / 30 / 30."""
    rng = random.Random(seed)
    names = _names(rng)
    cased = lambda s: s[0].upper() + s[1:].removesuffix(" .") + "."  # noqa: E731
    out = {}
    for split, chunk in (("train", names[:120]), ("dev", names[120:150]), ("test", names[150:180])):
        docs = []
        for name in chunk:
            facts = [cased(s) for s, _ in _sentences(_person(rng, name))]
            sents = facts + [cased(s) for s in rng.sample(FILLER, rng.randint(3, 6))]
            rng.shuffle(sents)
            docs.append((f"The life of {name.title()}\n\n" + " ".join(sents), " ".join(facts)))
        out[split] = docs
    return out
