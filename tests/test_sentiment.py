"""Sentiment end to end on the tiny set, the SST-2 reader on the real files, the predictor."""

from __future__ import annotations

import http.server
import json
import threading
from functools import partial

import pytest
import torch

import taskzoo
from taskzoo.data.sst2 import FILES, load_sst2
from taskzoo.data.text import Vocab, tokenize
from taskzoo.data.tiny_sentiment import load_tiny_sentiment
from taskzoo.errors import InputError


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    return taskzoo.run("sentiment", dataset="tiny", epochs=8, out=out, device="cpu", progress=False)


def test_tiny_run_learns_and_writes_the_run_directory(tiny_run):
    assert tiny_run.metrics["dev/accuracy"] >= 0.9  # chance is 0.5
    for name in ("config.json", "metrics.json", "metrics.jsonl", "best.safetensors", "last.ckpt",
                 "data.json"):
        assert (tiny_run.run_dir / name).is_file(), name
    saved = json.loads((tiny_run.run_dir / "metrics.json").read_text())
    assert saved["dev/accuracy"] == tiny_run.metrics["dev/accuracy"]
    config = json.loads((tiny_run.run_dir / "config.json").read_text())
    assert config["_task"] == "sentiment" and config["dataset"] == "tiny" and config["epochs"] == 8
    assert not list(tiny_run.run_dir.glob("*.tmp")), "no temporary files left behind"


def test_predictor_accuracy_on_the_tiny_dev_set(tiny_run):
    """Raw text in, labels out: accuracy over 64 labelled sentences, not a few hand-picked ones."""
    clf = tiny_run.predictor
    dev = load_tiny_sentiment()[1]
    out = clf([text for text, _ in dev])
    assert len(out) == len(dev)
    assert all(o["label"] in clf.labels and 0.5 <= o["score"] <= 1.0 for o in out)
    correct = sum(o["label"] == ("negative", "positive")[y] for o, (_, y) in zip(out, dev))
    assert correct / len(dev) >= 0.9  # seeds 0-2 reach 1.0; 0.9 leaves 6 sentences of slack
    # one string gives one dict, utf-8 bytes are decoded: the same answers as the batch
    assert clf(dev[0][0]) == out[0] and clf(dev[1][0].encode()) == out[1]


def test_predictor_reads_unknown_words_as_unk_and_cuts_long_texts(tiny_run):
    clf = tiny_run.predictor

    def on_unk(n):  # the model itself on n <unk> ids: what any all-unknown text must get
        with torch.no_grad():
            p = clf.model(torch.full((1, n), clf.vocab.unk_id), torch.tensor([n]))[0].softmax(-1)
        return clf.labels[int(p.argmax())], float(p.max())

    for text, n in [("zzqx unknownword", 2),
                    (" ".join(["great"] * 10_000), clf.max_tokens)]:  # "great": not in tiny train
        label, score = on_unk(n)
        out = clf(text)
        assert out["label"] == label and out["score"] == pytest.approx(score, abs=1e-3), text[:20]
    # only the first max_tokens words count: 10,000 words of the opposite verdict after them
    # change nothing (uncut, they flip the label or move the score, measured on seeds 0-2)
    for first, rest, label in [("brilliant", "awful", "positive"),
                               ("awful", "brilliant", "negative")]:
        out = clf(" ".join([first] * clf.max_tokens + [rest] * 10_000))
        assert out == clf(" ".join([first] * clf.max_tokens)) and out["label"] == label


def test_predictor_bad_inputs_are_clear_errors(tiny_run):
    clf = tiny_run.predictor
    for bad, match in [("", "empty"), ("   \n", "empty"), ([], "at least one"),
                       (b"\xff\xfe bad", "not valid UTF-8"), ("bad \udcff", "not valid UTF-8"), (42, "expected a string"),
                       (["ok", None], "text 1")]:
        with pytest.raises(InputError, match=match):
            clf(bad)


def test_load_run_rebuilds_the_same_predictor(tiny_run):
    texts = ["the story is brilliant .", "this sequel is a mess ."]
    again = taskzoo.load_run(tiny_run.run_dir, device="cpu")
    assert again(texts) == tiny_run.predictor(texts)


def test_load_run_on_a_wrong_directory(tmp_path):
    with pytest.raises(taskzoo.CheckpointError, match="missing config.json"):
        taskzoo.load_run(tmp_path)


def test_tiny_dataset_shape_and_no_leak():
    train, dev = load_tiny_sentiment()
    assert len(train) == 256 and len(dev) == 64
    assert {label for _, label in train} == {0, 1}
    assert not {s for s, _ in train} & {s for s, _ in dev}


def test_tokenizer_matches_sst_preprocessing():
    assert tokenize("It's a WONDERFUL film, isn't it?") == [
        "it", "'s", "a", "wonderful", "film", ",", "is", "n't", "it", "?"]
    # already-tokenised SST-2 text passes through unchanged
    sst = "the film is n't ( quite ) as good as it 's cracked up to be -- but ca n't miss ."
    assert tokenize(sst) == sst.split()
    vocab = Vocab.build([["a", "b", "b"]], min_freq=2)
    assert vocab.encode(["b", "a"]) == [2, vocab.unk_id]
    assert Vocab.from_list(vocab.to_list()).stoi == vocab.stoi


def test_control_characters_are_spaces_between_words(monkeypatch):
    """issue 28 case 13: NUL bytes glued to a word made it unknown, so "bad\\0\\0" was
    positive (0.81) while "bad" is negative (0.999). Control characters read as spaces."""
    from taskzoo.data.text import split_words

    assert tokenize("bad\0\0") == ["bad"] and tokenize("so\x01bad\x7f!") == ["so", "bad", "!"]
    assert split_words("bad\0movie\x9f") == ["bad", "movie"]
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")  # the released default weights, in the package
    clf = taskzoo.load("sentiment", device="cpu")
    bad = clf("bad")
    assert bad["label"] == "negative"
    assert clf(["bad\0\0", "\0bad\0", "bad\x1b"]) == [bad] * 3
    for blank in ("\0\0", " \x01\t", ""):  # no word left: refused, not read as <unk>
        with pytest.raises(InputError, match="nothing to classify"):
            clf(blank)


def test_sst2_through_a_directory_mirror(shared_data, monkeypatch):
    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    dev = load_sst2("dev")
    assert len(dev) == 872
    assert sum(label for _, label in dev) == 444  # published: 444 positive, 428 negative
    assert not any(s != s.strip() for s, _ in dev)


def test_sst2_over_http_on_loopback(shared_data, monkeypatch):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(shared_data))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("TASKZOO_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
        train = load_sst2("train")
        assert len(train) == 67_349
        assert sum(label for _, label in train) == 37_569
    finally:
        server.shutdown()
        server.server_close()


def test_sst2_offline_without_mirror_names_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("TASKZOO_OFFLINE", "1")
    with pytest.raises(taskzoo.OfflineError) as err:
        load_sst2("dev")
    msg = str(err.value)
    assert "dev.tsv" in msg and FILES["dev"].sha256[:12] in msg and "TASKZOO_MIRROR" in msg


def test_evaluate_counts_every_dev_sentence(tiny_run):
    from taskzoo.api import resolve_task
    from taskzoo.runtime import Runtime

    task = resolve_task("sentiment")(tiny_run.config, Runtime.create(device="cpu"))
    data = task.build_data()
    model = tiny_run.model
    metrics = task.evaluate(model, data, "dev")
    with torch.no_grad():
        preds = [tiny_run.predictor(s)["label"] == ("positive" if y else "negative")
                 for s, y in load_tiny_sentiment()[1]]
    assert metrics["dev/accuracy"] == pytest.approx(sum(preds) / len(preds))
