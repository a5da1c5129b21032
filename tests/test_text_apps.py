"""Question answering, answer selection, summarization and the retrieval chatbot, offline:
the tiny random BERT (tests/tiny_bert.py) stands in for MiniLM and the tiny project-written
sets for SQuAD, WikiQA and BBC News; the chat test in a terminal uses the real MiniLM from
the shared mirror."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from tiny_bert import SPEC, offline_run

import taskzoo
from taskzoo.data.tiny_qa import load_tiny_qa, load_tiny_selection
from taskzoo.errors import InputError, UsageError


def _tokenizer():
    from taskzoo.hf.encoders import Subwords, encoder_repo

    return Subwords.from_repo(encoder_repo(SPEC)).tok


# ---------------------------------------------------------------------------- qa
def test_windows_slide_over_long_contexts_and_map_answers_back_to_characters(hf_env):
    from taskzoo.tasks.qa.data import best_answer, windows

    rows = load_tiny_qa()[0][:30]
    wins = windows(_tokenizer(), [r.question for r in rows], [r.context for r in rows],
                   max_tokens=40, stride=12, answers=[r.answers[0] for r in rows])
    assert len(wins) > 2 * len(rows)  # contexts of ~60 tokens need several 40-token windows
    found = set()
    for w in wins:
        assert len(w.ids) <= 40 and len(w.types) == len(w.ids) == len(w.offsets)
        if w.start:
            text, at = rows[w.example].answers[0]
            assert w.start <= w.end and w.offsets[w.start][0] == at
            assert rows[w.example].context[w.offsets[w.start][0]:w.offsets[w.end][1]] == text
            found.add(w.example)
    assert found == set(range(len(rows)))  # every answer lies whole in some window
    # the best span over an example's windows wins, read back as characters of the context
    ex = [w for w in wins if w.example == 0]
    good = next(w for w in ex if w.start)
    logits = [torch.zeros(len(w.ids), 2) for w in ex]
    for lg, w in zip(logits, ex):
        lg[:, :] = -5.0
        if w is good:
            lg[w.start, 0] = lg[w.end, 1] = 6.0
        else:  # a weaker span elsewhere
            ctx = [i for i, o in enumerate(w.offsets) if o is not None]
            lg[ctx[0], 0] = lg[ctx[0], 1] = 2.0
    out = best_answer(rows[0].context, list(zip(logits, ex)), max_answer_tokens=30)
    assert out["answer"] == rows[0].answers[0][0] and out["start"] == rows[0].answers[0][1]
    assert 0.5 < out["score"] <= 1.0


@pytest.fixture(scope="module")
def qa_run(tiny_mirror, tmp_path_factory):
    return offline_run(tiny_mirror, tmp_path_factory.mktemp("qa"), "qa", epochs=3, lr=1e-3,
                       train_embeddings=True)


def test_qa_trains_a_span_head_and_answers_with_character_spans(qa_run, hf_env):
    m = qa_run.metrics
    assert {"dev/exact_match", "dev/f1", "test/exact_match", "test/f1"} <= set(m)
    assert 0 <= m["test/exact_match"] <= m["test/f1"] <= 1
    first = json.loads((qa_run.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    last = [json.loads(x) for x in (qa_run.run_dir / "metrics.jsonl").read_text().splitlines()
            if "train/loss" in x][-1]
    assert last["train/loss"] < first["train/loss"]  # the span head learns
    lines = (qa_run.run_dir / "predictions_test.jsonl").read_text().splitlines()
    assert len(lines) == len(load_tiny_qa()[2])
    qa = taskzoo.load_run(qa_run.run_dir, device="cpu")
    context = "Anna Berg was born in Oslo in 1950. Later she worked as a pilot in Lima."
    one = qa(("where was anna berg born ?", context))
    assert context[one["start"]:one["end"]] == one["answer"] and one["answer"]
    many = qa([{"question": "when was anna berg born ?", "context": context}] * 3)
    assert len(many) == 3 and many[0] == many[2]
    for bad in (["a question", "a context"], ("", context), {"question": "q"}):
        with pytest.raises(InputError):
            qa(bad)
    assert qa.parse_cli(["q1", "c1", "q2", "c2"]) == [("q1", "c1"), ("q2", "c2")]
    with pytest.raises(InputError, match="pairs"):
        qa.parse_cli(["only a question"])


def test_squad_scores_use_the_official_answer_normalisation(qa_run, hf_env):
    from taskzoo.tasks.qa.task import QAConfig, QATask

    task = QATask(QAConfig(dataset="tiny", model=SPEC))
    data = task.build_data()
    rows = data.examples["dev"][:2]
    data.examples["dev"] = rows
    task.answers = lambda model, data, split: [  # type: ignore[method-assign]
        {"answer": f"The {rows[0].answers[0][0].upper()}!"}, {"answer": "nowhere at all"}]
    m = task.evaluate(None, data, "dev")  # articles, case and punctuation do not count
    assert m["dev/exact_match"] == pytest.approx(0.5) and m["dev/f1"] == pytest.approx(0.5)


# ---------------------------------------------------------------------------- answer selection
def test_ranking_metrics_and_the_overlap_baseline():
    from taskzoo.data.wikiqa import WikiQAQuestion
    from taskzoo.tasks.answer_selection.task import overlap_scores, ranking_metrics

    qs = [WikiQAQuestion(1, "q", ("a", "b", "c"), (0, 1, 1), True),
          WikiQAQuestion(2, "q", ("a", "b"), (1, 0), True)]
    # q1: right answers ranked 2nd and 3rd -> AP (1/2 + 2/3) / 2, RR 1/2; q2: first -> 1, 1
    ap, rr = ranking_metrics(qs, [[0.9, 0.5, 0.1], [0.7, 0.2]])
    assert ap == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1) / 2) and rr == pytest.approx(0.75)
    ap_tie, _ = ranking_metrics(qs[:1], [[1.0, 1.0, 1.0]])  # ties keep the corpus's order
    assert ap_tie == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert overlap_scores("Who wrote the play Hamlet ?",
                          ("Hamlet is a play .", "The sky is blue .")) == [2.0, 0.0]


@pytest.mark.parametrize("model", ["cross", "bi"])
def test_answer_selection_ranks_candidates_with_both_baselines_beside(model, tiny_mirror,
                                                                      tmp_path, hf_env):
    r = offline_run(tiny_mirror, tmp_path, "answer_selection", pairing=model,
                    epochs=2 if model == "bi" else 1, lr=3e-4, train_embeddings=True)
    m = r.metrics
    for key in ("map", "mrr", "map_overlap", "mrr_overlap", "map_cosine", "mrr_cosine"):
        assert 0 < m[f"test/{key}"] <= 1
    if model == "bi":  # trained beats the random encoder's cosine (a 2-layer random
        # cross-encoder does not learn to match names across the pair in two epochs)
        assert m["test/map"] > m["test/map_cosine"] + 0.05
    assert json.loads((r.run_dir / "data.json").read_text())["pairing"] == model
    rank = taskzoo.load_run(r.run_dir, device="cpu")
    q = load_tiny_selection()["test"][0]
    out = rank((q.question, list(q.sentences)))
    assert sorted(o["index"] for o in out) == list(range(len(q.sentences)))
    assert [o["score"] for o in out] == sorted((o["score"] for o in out), reverse=True)
    with pytest.raises(InputError, match="candidates"):
        rank(("a question", "not a list"))


# ---------------------------------------------------------------------------- summarization
def test_sentences_oracle_and_textrank():
    from taskzoo.tasks.summarization.data import (
        greedy_oracle,
        length_of,
        rouge,
        split_sentences,
        textrank,
        top_k,
        unjoin,
    )

    text = "Profits rose 5% to $1.1bn. Shares fell.\n\n\"It was fine.\" Mr Lee said so."
    assert split_sentences(text) == ["Profits rose 5% to $1.1bn.", "Shares fell.",
                                     "\"It was fine.\"", "Mr Lee said so."]
    assert unjoin("sales rose to $10.9bn.For the year, it grew.") == \
        "sales rose to $10.9bn. For the year, it grew."
    sents = ["The bank raised rates today.", "It rained in the north.",
             "Rates rose by half a point to 4%.", "A cat sat on a mat."]
    reference = "Rates rose by half a point to 4%. The bank raised rates today."
    assert greedy_oracle(sents, reference) == [0, 2]
    assert rouge([(reference, reference)])["rouge2"] == pytest.approx(1.0)
    assert top_k([0.1, 0.9, 0.5, 0.9], 2) == [1, 3] and length_of(10, sentences=0, ratio=0.4) == 4
    # the sentence most like the others is the most central
    e = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0]])
    ranks = textrank(e)
    assert max(range(4), key=ranks.__getitem__) in (1, 2) and ranks[3] < ranks[1]


def test_summarizer_beats_lead3_and_predicts_sentences_with_positions(tiny_mirror, tmp_path,
                                                                       hf_env):
    r = offline_run(tiny_mirror, tmp_path, "summarization", model="summarunner", encoder=SPEC)
    m = r.metrics
    for name in ("", "_lead3", "_lead", "_textrank", "_oracle"):
        assert {f"test/rouge1{name}", f"test/rouge2{name}", f"test/rougeL{name}"} <= set(m)
    # the facts sit anywhere among the filler: position alone cannot find them
    assert m["test/rouge2"] > m["test/rouge2_lead3"] + 0.1
    assert m["test/rouge2_oracle"] >= m["test/rouge2"]
    summarize = taskzoo.load_run(r.run_dir, device="cpu")
    doc = ("It rained for most of the spring. Nora Holm was born in Riga in 1931. "
           "The trains were often late. Later nora holm worked as a pilot in Lima.")
    out = summarize(doc, sentences=2)
    assert [s["position"] for s in out["sentences"]] == sorted(s["position"] for s in out["sentences"])
    assert len(out["sentences"]) == 2 and out["summary"].startswith(out["sentences"][0]["text"])
    assert len(summarize(doc, ratio=1.0)["sentences"]) == 4
    with pytest.raises(InputError, match="ratio"):
        summarize(doc, ratio=1.5)
    with pytest.raises(InputError, match="empty"):
        summarize("   ")


# ---------------------------------------------------------------------------- chat
FAQ = [
    ("What are your opening hours?", "We are open Monday to Friday from 9am to 6pm."),
    ("How do I reset my password?", "Click Forgot password on the sign-in page."),
    ("Where is the office?", "Our office is at 12 Harbour Street in Bristol."),
    ("How much does shipping cost?", "Shipping is free on orders over 50 euros."),
    ("How long does delivery take?", "Orders arrive within 3 to 5 working days."),
    ("Can I return an item?", "You can return any item within 30 days for a full refund."),
    ("Do you ship abroad?", "We ship to all countries of the European Union."),
    ("How can I pay?", "We accept credit cards, PayPal and bank transfer."),
    ("How do I contact support?", "Write to support@example.com."),
    ("Do you have a student discount?", "Students get 10 percent off with a student card."),
    ("Can I change my order?", "You can change an order until it has been dispatched."),
    ("How do I cancel my subscription?", "Go to Account settings and choose Cancel."),
    ("Is my data safe?", "We store your data encrypted in the EU and never sell it."),
    ("Do you offer gift cards?", "Gift cards from 10 to 200 euros are sold online."),
    ("What is the warranty?", "Every product has a two-year warranty."),
    ("Can I track my parcel?", "A tracking link is emailed when the parcel leaves."),
    ("Do you have a mobile app?", "Our app is available for Android and iOS."),
    ("How do I create an account?", "Click Sign up and enter your email address."),
    ("Are prices including VAT?", "All prices include VAT."),
    ("Can I pick up my order?", "You can collect orders from our Bristol office."),
]


def _faq(path: Path) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "answer"])
        w.writerows(FAQ)
    return path


def test_knowledge_bases_are_read_and_bad_ones_refused(tmp_path):
    from taskzoo.apps.chat import read_kb

    entries = read_kb(_faq(tmp_path / "faq.csv"))
    assert len(entries) == 20 and entries[0].answer == FAQ[0][1] and entries[0].source == "faq.csv:1"
    (tmp_path / "bad.csv").write_text("question,answer\nonly a question\n")
    with pytest.raises(InputError, match="row 1"):
        read_kb(tmp_path / "bad.csv")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("One. Two. Three. Four. Five.")
    passages = read_kb(docs)
    assert [p.source for p in passages] == ["a.txt:1", "a.txt:2"] and passages[0].passage
    with pytest.raises(UsageError, match="does not exist"):
        read_kb(tmp_path / "nope.csv")


def test_the_index_is_cached_verified_and_rebuilt_when_tampered(tmp_path, hf_env, capsys):
    from taskzoo import hub
    from taskzoo.apps.chat import Chatbot

    kb = _faq(tmp_path / "faq.csv")
    bot = Chatbot(kb, encoder=SPEC, span=False)
    cached = list((hub.cache_root() / "chat").glob("*.safetensors"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again = Chatbot(kb, encoder=SPEC, span=False)
    assert cached[0].stat().st_mtime_ns == stamp and torch.equal(again.index, bot.index)
    data = bytearray(cached[0].read_bytes())
    data[-1] ^= 1  # one flipped bit in the cached vectors
    cached[0].write_bytes(bytes(data))
    third = Chatbot(kb, encoder=SPEC, span=False)
    assert "does not match its recorded sha256" in capsys.readouterr().err
    assert torch.equal(third.index, bot.index)
    strict = Chatbot(kb, encoder=SPEC, span=False, threshold=1.0)
    reply = strict("where is the office?")
    assert reply.answer is None and "don't know" in str(reply)


def test_a_reranker_reorders_the_retrieved_entries_and_the_threshold_reads_their_cosine(
        tmp_path, hf_env):
    from taskzoo.apps.chat import Chatbot

    seen = []

    def last_first(pair):  # a stand-in re-ranker: the retrieval's worst candidate first
        question, keys = pair
        seen.append(keys)
        return [{"index": i, "score": 0.99} for i in reversed(range(len(keys)))]

    kb = _faq(tmp_path / "faq.csv")
    plain = Chatbot(kb, encoder=SPEC, span=False, threshold=0.0, top_k=3)
    bot = Chatbot(kb, encoder=SPEC, span=False, threshold=0.0, top_k=3, rerank=last_first)
    q = plain._embed(["where is the office?"])[0]
    order = (plain.index @ q).topk(3)
    reply = bot("where is the office?")
    assert len(seen) == 1 and len(seen[0]) == 3
    assert reply.answer == FAQ[order.indices[2]][1]
    assert reply.score == pytest.approx(float(order.values[2]), abs=1e-5)


def test_chat_answers_in_a_terminal_and_says_when_it_does_not_know(shared_data, tmp_path):
    """`taskzoo chat` in a pseudo-terminal: type a question, read the screen."""
    import pty
    import select
    import subprocess
    import time

    kb = _faq(tmp_path / "faq.csv")
    env = {**os.environ, "TASKZOO_MIRROR": str(shared_data), "TERM": "dumb"}
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "taskzoo.cli", "chat", "--kb", str(kb)],
                            stdin=child, stdout=child, stderr=child, env=env, close_fds=True)
    os.close(child)
    screen = b""

    def read_until(marker: bytes, timeout: float) -> bytes:
        nonlocal screen
        end = time.monotonic() + timeout
        while marker not in screen and time.monotonic() < end and proc.poll() is None:
            if select.select([main], [], [], 0.5)[0]:
                try:
                    screen += os.read(main, 4096)
                except OSError:
                    break
        return screen

    try:
        assert b"you> " in read_until(b"you> ", 120), screen.decode(errors="replace")
        os.write(main, b"when are you open?\r")
        read_until(b"Monday to Friday", 60)
        assert b"We are open Monday to Friday" in screen, screen.decode(errors="replace")
        os.write(main, b"what is the capital of mongolia?\r")
        read_until(b"don't know", 60)
        assert b"I don't know" in screen, screen.decode(errors="replace")
        os.write(main, b"quit\r")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
