"""A client nobody here wrote: Hugging Face's `InferenceClient`, pointed at a task's URL on a
loopback `taskzoo serve`, parses its answers for five kinds of task."""

from __future__ import annotations

import io

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e .[serve]")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e .[serve]")
hub = pytest.importorskip("huggingface_hub",
                          reason="huggingface_hub (the test extra) is not installed")

import taskzoo  # noqa: E402
from taskzoo.serve import background, make_app  # noqa: E402

CONTEXT = "The bridge was designed by Anna Berg in 1950. It crosses the river at Lima."


@pytest.fixture(scope="module")
def predictors():
    return {name: taskzoo.load(name, device="cpu")
            for name in ("sentiment", "pos", "detection", "captioning")}


@pytest.fixture(scope="module")
def url(predictors):
    with background(make_app(predictors), timeout=30) as base:
        yield base


@pytest.fixture
def client(monkeypatch):
    # a model given as a URL is posted to directly: nothing reaches the Hub, and no token
    # goes to the loopback server; the client refuses every request in offline mode
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    return hub.InferenceClient(timeout=60)


@pytest.fixture(scope="module")
def photo() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (200, 150), (90, 140, 60))
    ImageDraw.Draw(image).rectangle((60, 20, 140, 140), fill=(200, 40, 40))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def test_text_classification(client, url, predictors):
    out = client.text_classification("a gripping , beautiful film", model=f"{url}/v1/sentiment/predict")
    assert isinstance(out, list) and out
    assert out[0].label == "positive" and 0.5 < out[0].score <= 1
    assert {o.label for o in out} <= set(predictors["sentiment"].labels)


def test_token_classification(client, url, predictors):
    text = "The old man saw a dog in the park."
    out = client.token_classification(text, model=f"{url}/v1/pos/predict")
    assert [o.word for o in out] == ["The", "old", "man", "saw", "a", "dog", "in", "the", "park",
                                     "."]
    assert all(text[o.start:o.end] == o.word for o in out)
    assert {o.entity_group for o in out} <= set(predictors["pos"].labels)
    assert out[5].entity_group == "NOUN" and all(0 < o.score <= 1 for o in out)


def test_object_detection(client, url, predictors, photo):
    model = f"{url}/v1/detection/predict"
    loose = client.object_detection(photo, model=model, threshold=0.01)  # base64 JSON
    assert loose
    labels = set(predictors["detection"].labels)
    for o in loose:
        assert o.label in labels and 0.01 <= o.score <= 1
        assert 0 <= o.box.xmin <= o.box.xmax <= 200 and 0 <= o.box.ymin <= o.box.ymax <= 150
    default = client.object_detection(photo, model=model)  # the raw image as the body
    assert all(o.score >= 0.25 for o in default) and len(default) <= len(loose)


def test_image_to_text(client, url, photo):
    out = client.image_to_text(photo, model=f"{url}/v1/captioning/predict")
    assert isinstance(out.generated_text, str) and len(out.generated_text.split()) >= 2


def test_question_answering(client, shared_data, monkeypatch):
    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))  # the encoder's files (MiniLM)
    qa = taskzoo.load("qa", device="cpu")
    with background(make_app({"qa": qa}), timeout=30) as base:
        out = client.question_answering(question="Who designed the bridge?", context=CONTEXT,
                                        model=f"{base}/v1/qa/predict")
    assert out.answer and out.answer in CONTEXT
    assert CONTEXT[out.start:out.end] == out.answer and 0 < out.score <= 1
