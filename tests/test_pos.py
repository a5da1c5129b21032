"""POS tagging end to end on the tiny set, the CoNLL-U reader, EWT through the hub, the tagger."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

import taskzoo
from taskzoo.data.text import split_words
from taskzoo.data.tiny_pos import load_tiny_pos
from taskzoo.data.ud import FILES, UPOS, load_ewt, read_conllu
from taskzoo.errors import InputError


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "pos"
    return taskzoo.run("pos", dataset="tiny", epochs=10, out=out, device="cpu", progress=False)


def test_tiny_run_learns_seen_and_unseen_words(tiny_run):
    m = tiny_run.metrics
    assert m["test/upos_accuracy"] >= 0.95 and m["dev/upos_accuracy"] >= 0.95  # 16 tags
    # about a sixth of test words never occur in train: only characters and context tag them
    assert 0.1 < m["test/oov_share"] < 0.3
    assert m["test/oov_accuracy"] >= 0.8


def test_run_directory_has_the_per_tag_report(tiny_run):
    report = (tiny_run.run_dir / "tags_test.txt").read_text()
    for tag in ("NOUN", "VERB", "PROPN", "precision", "recall", "f1-score"):
        assert tag in report
    assert (tiny_run.run_dir / "tags_dev.txt").is_file()
    saved = json.loads((tiny_run.run_dir / "metrics.json").read_text())
    assert saved["test/upos_accuracy"] == tiny_run.metrics["test/upos_accuracy"]


def as_raw_text(words):
    """A tiny sentence as a person writes it: "They don't want to book that table." """
    text = re.sub(r" ([.,!?]|n't)(?= |$)", r"\1", " ".join(words))
    return text.replace("$ ", "$")


def _accuracy(sentences, outputs):
    pairs = [(g, p) for s, o in zip(sentences, outputs) for g, p in zip(s.upos, o["tags"])]
    return sum(g == p for g, p in pairs) / len(pairs)


def test_tagger_accuracy_on_raw_and_pretokenized_text(tiny_run):
    """The test split (words train never saw included) against gold, both ways of input."""
    tag = tiny_run.predictor
    test = load_tiny_pos()["test"]
    raw = tag([as_raw_text(s.words) for s in test])
    # the tokenizer gives back the stored words: clitics, punctuation and "$" split off again
    assert [o["tokens"] for o in raw] == [list(s.words) for s in test]
    assert all(len(o["tags"]) == len(o["scores"]) == len(o["tokens"]) for o in raw)
    assert all(t in tag.labels and 0 < p <= 1 for o in raw for t, p in zip(o["tags"], o["scores"]))
    assert _accuracy(test, raw) >= 0.95  # seeds 0-2: 0.990, 0.985, 0.994 (16 tags)
    # "that" (DET / SCONJ) and "book" (NOUN / VERB) take their tag from context: 23 test words,
    # the majority tag per word gets 0.57; seeds 0-2 get all 23
    amb = [(g, p) for s, o in zip(test, raw) for w, g, p in zip(s.words, s.upos, o["tags"])
           if w.lower() in ("that", "book")]
    assert len({g for g, _ in amb}) == 4 and sum(g == p for g, p in amb) / len(amb) >= 0.85
    pretokenized = tag([list(s.words) for s in test], tokenized=True)
    assert pretokenized == raw  # same words in, same tags and scores out
    assert _accuracy(test, pretokenized) == pytest.approx(tiny_run.metrics["test/upos_accuracy"])
    assert tag(test[0].words, tokenized=True) == raw[0]  # one sentence gives one dict
    many = tag(["We don't want to book that table.", b"Anna visited Paris."])  # bytes: utf-8
    assert many[0]["tokens"] == ["We", "do", "n't", "want", "to", "book", "that", "table", "."]
    assert many[1]["tokens"] == ["Anna", "visited", "Paris", "."]


def test_evaluation_leaves_out_oov_accuracy_when_no_word_is_unseen(tiny_run):
    """A split of train sentences has no OOV words: oov_accuracy is absent, not 0.0."""
    from taskzoo.api import resolve_task
    from taskzoo.runtime import Runtime

    task = resolve_task("pos")(tiny_run.config, Runtime.create(device="cpu"))
    data = task.build_data()
    train = load_tiny_pos()["train"][:60]
    data.splits["seen"] = data.train[:60]  # the same sentences, encoded as build_data does
    data.sentences["seen"] = train
    data.lengths["seen"] = [len(s.words) for s in train]
    seen = task.evaluate(tiny_run.model, data, "seen")
    assert seen["seen/oov_share"] == 0.0 and "seen/oov_accuracy" not in seen
    assert seen["seen/upos_accuracy"] >= 0.95
    test = task.evaluate(tiny_run.model, data, "test")  # unseen words: the figure is there
    assert test["test/oov_share"] > 0 and 0 < test["test/oov_accuracy"] <= 1
    reported = {k: v for k, v in tiny_run.metrics.items() if k.startswith("test/")}
    assert test == pytest.approx(reported)  # the run's own figures: same model, same split


def test_tagger_bad_and_extreme_inputs(tiny_run):
    tag = tiny_run.predictor
    for bad, kwargs, match in [
        ("", {}, "empty"), (" \t\n", {}, "empty"), ([], {}, "at least one"),
        (b"\xff\xfe bad", {}, "not valid UTF-8"), (3.5, {}, "expected a string"),
        ("caf\udcff", {}, "not valid UTF-8"),  # how sys.argv / stdin carry undecodable bytes
        (["fine", None], {}, "text 1"), ([["ok", ""]], {"tokenized": True}, "non-empty words"),
        (["a", 7], {"tokenized": True}, "sentence 0 word 1: expected str"),
        ([["a"], "b"], {"tokenized": True}, "sentence 0 word 0: expected str"), ([], {"tokenized": True}, "at least one"),
    ]:
        with pytest.raises(InputError, match=match):
            tag(bad, **kwargs)
    long = tag(" ".join(["the dog saw a cat ."] * 1_700))  # 10,200 words, one sequence
    assert len(long["tags"]) == 10_200 and set(long["tags"]) <= set(tiny_run.predictor.labels)
    unusual = tag("Zxqv ☃☃ 東京 ok")  # characters never seen in training map to <unk>
    assert unusual["tokens"] == ["Zxqv", "☃", "☃", "東京", "ok"] and len(unusual["tags"]) == 5


def test_load_run_gives_the_same_tags(tiny_run):
    texts = ["She is reading the book quickly.", "Wow, the phone costs $ 42!"]
    again = taskzoo.load_run(tiny_run.run_dir, device="cpu")
    assert again(texts) == tiny_run.predictor(texts)


def test_xpos_tagset_names_its_metric(tmp_path):
    result = taskzoo.run("pos", dataset="tiny", tagset="xpos", epochs=1, out=tmp_path / "x",
                         device="cpu", progress=False)
    assert "dev/xpos_accuracy" in result.metrics and "dev/upos_accuracy" not in result.metrics
    assert "NNS" in result.predictor.labels and "NOUN" not in result.predictor.labels


def test_tiny_dataset_is_fixed_and_has_unseen_words():
    a, b = load_tiny_pos(), load_tiny_pos()
    assert a == b
    assert {k: len(v) for k, v in a.items()} == {"train": 300, "dev": 50, "test": 50}
    assert all(len(s.words) == len(s.upos) == len(s.xpos) for v in a.values() for s in v)
    train_words = {w.lower() for s in a["train"] for w in s.words}
    assert {w for s in a["test"] for w in s.words} - train_words  # unseen words exist
    assert {t for v in a.values() for s in v for t in s.upos} <= set(UPOS)


def test_conllu_reader_skips_multiword_tokens_and_empty_nodes(tmp_path):
    path = tmp_path / "x.conllu"
    path.write_text(
        "# sent_id = 1\n# text = I don't know.\n"
        "1\tI\tI\tPRON\tPRP\t_\t4\tnsubj\t_\t_\n"
        "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
        "2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_\n"
        "3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_\n"
        "4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_\n"
        "4.1\tknows\tknow\tVERB\tVBZ\t_\t_\t_\t0:root\t_\n"
        "5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_\n\n",
        encoding="utf-8",
    )
    (sent,) = read_conllu(path)
    assert sent.words == ("I", "do", "n't", "know", ".")
    assert sent.upos == ("PRON", "AUX", "PART", "VERB", "PUNCT")
    assert sent.xpos == ("PRP", "VBP", "RB", "VB", ".")


def test_split_words_follows_ud_english():
    assert split_words("I can't go, she's at Dr. Lee's.") == [
        "I", "ca", "n't", "go", ",", "she", "'s", "at", "Dr.", "Lee", "'s", "."]
    assert split_words("Call 713-853-3989 at 10:30 p.m. or see www.enron.com.") == [
        "Call", "713-853-3989", "at", "10:30", "p.m.", "or", "see", "www.enron.com", "."]
    assert split_words("We're gonna pay $3.50... cannot wait!!") == [
        "We", "'re", "gon", "na", "pay", "$", "3.50", "...", "can", "not", "wait", "!", "!"]
    assert split_words(" \n ") == []


def test_ewt_files_match_their_pins_and_counts(shared_data, monkeypatch):
    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    for split, f in FILES.items():
        local = shared_data / "UD_English-EWT" / f.name
        assert local.stat().st_size == f.size
        assert hashlib.sha256(local.read_bytes()).hexdigest() == f.sha256, split
    dev = load_ewt("dev")  # also checks 2,001 sentences / 25,147 words
    assert dev[0].words[:4] == ("From", "the", "AP", "comes")
    assert {t for s in dev for t in s.upos} == set(UPOS)


def test_ewt_offline_names_the_missing_file(monkeypatch, tmp_path):
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    with pytest.raises(taskzoo.OfflineError, match="en_ewt-ud-test.conllu"):
        load_ewt("test")
