"""Issue 19's datasets through the hub, read from the mirror like any dataset: SQuAD v1.1 dev
(a verified zip member, split by article) and WikiQA (tokenized files with their qrels)."""

from __future__ import annotations

import pytest

from taskzoo.errors import OfflineError


def test_squad_dev_verifies_its_member_and_splits_by_whole_articles(shared_data, monkeypatch):
    from taskzoo.data.squad import load_squad, split_articles

    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    rows = load_squad()
    assert len(rows) == 10_570 and len({r.id for r in rows}) == 10_570
    r = rows[0]
    text, start = r.answers[0]
    assert r.context[start:start + len(text)] == text
    splits = split_articles(rows, seed=0)
    titles = {k: {x.title for x in v} for k, v in splits.items()}
    assert [len(titles[k]) for k in ("train", "dev", "test")] == [38, 5, 5]
    assert not (titles["train"] & titles["dev"] or titles["train"] & titles["test"]
                or titles["dev"] & titles["test"])
    assert sum(len(v) for v in splits.values()) == len(rows)
    assert split_articles(rows, seed=0)["test"] == splits["test"]  # seeded
    assert {x.title for x in split_articles(rows, seed=1)["test"]} != titles["test"]


def test_squad_without_a_source_says_what_is_missing(monkeypatch, tmp_path):
    from taskzoo.data.squad import load_squad

    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    with pytest.raises(OfflineError, match="dev-v1.1.json.zip"):
        load_squad()


def test_wikiqa_groups_sentences_by_question_and_marks_the_filtered_sets(shared_data,
                                                                          monkeypatch):
    from taskzoo.data.wikiqa import load_wikiqa

    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    test = load_wikiqa("test")
    kept = [q for q in test if q.filtered]
    assert len(test) == 633 and len(kept) == 237
    # the filtered questions are exactly those with a right and a wrong candidate
    assert all((1 in q.labels and 0 in q.labels) == q.filtered for q in test)
    assert all(len(q.sentences) == len(q.labels) for q in test)
    train = load_wikiqa("train")
    assert len(train) == 2_118 and not any(q.filtered for q in train)
    assert train[0].question == "how are glacier caves formed ?"


def test_bbc_drops_duplicates_reads_latin1_and_splits_by_topic(shared_data, monkeypatch):
    from collections import Counter

    from taskzoo.data.bbc import load_bbc, split_articles

    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    articles = load_bbc()
    assert len(articles) == 2_225 - 98 and len({a.text for a in articles}) == len(articles)
    pound = next(a for a in articles if (a.topic, a.name) == ("sport", "199.txt"))
    assert "\u00a3" in pound.text  # the one Latin-1 byte, decoded as the pound sign
    splits = split_articles(articles, seed=0)
    assert sum(len(v) for v in splits.values()) == len(articles)
    assert not {a.text for a in splits["train"]} & {a.text for a in splits["test"]}
    share = {k: Counter(a.topic for a in v) for k, v in splits.items()}
    for topic, n in Counter(a.topic for a in articles).items():  # stratified: same shares
        assert abs(share["test"][topic] / len(splits["test"]) - n / len(articles)) < 0.01
    # a summary is sentences of its article (here: its first sentence-ish piece is in it)
    a = articles[0]
    assert a.summary.split(".")[0].strip() in a.text
