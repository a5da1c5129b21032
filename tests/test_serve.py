"""`taskzoo serve`: the HTTP API on a loopback server (uvicorn in a thread), dynamic batching,
and hostile requests, each a 4xx JSON error after which the server keeps answering."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import zlib
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e .[serve]")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e .[serve]")
httpx = pytest.importorskip("httpx", reason="httpx (the test extra) is not installed")

import taskzoo  # noqa: E402
from taskzoo.serve import Limits, background, make_app  # noqa: E402
from taskzoo.serve.app import PAGE  # noqa: E402

LIMITS = Limits(max_body_bytes=256 << 10, max_pixels=2_000_000, max_request_pixels=4_000_000,
                max_video_frames=12, max_items=8)


class Counting:
    """A predictor that counts its calls and their sizes (everything else is the predictor's)."""

    def __init__(self, inner):
        self.inner, self.sizes = inner, []

    def __call__(self, inputs, **options):
        self.sizes.append(len(inputs))
        return self.inner(inputs, **options)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def predictors():
    return {"sentiment": Counting(taskzoo.load("sentiment", device="cpu")),
            "detection": taskzoo.load("detection", device="cpu"),
            "pos": taskzoo.load("pos", device="cpu")}


@pytest.fixture(scope="module")
def url(predictors):
    # a generous window: the 16 concurrent requests below all arrive within it
    app = make_app(predictors, limits=LIMITS, max_batch=32, max_wait_ms=150)
    with background(app, timeout=30) as base:
        yield base


@pytest.fixture
def client(url):
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as c:
        yield c


def png(w: int = 96, h: int = 64, colour=(120, 90, 60)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, "PNG")
    return buf.getvalue()


def bomb_png(w: int, h: int) -> bytes:
    """A tiny PNG whose header declares w x h pixels (its data holds one row)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_health_and_the_task_list(client):
    assert client.get("/health").json() == {"status": "ok",
                                            "tasks": ["sentiment", "detection", "pos"]}
    tasks = {t["task"]: t for t in client.get("/v1/tasks").json()}
    assert tasks["detection"]["input"] == "image"
    assert tasks["detection"]["hf_task"] == "object-detection"
    conf = {o["name"]: o for o in tasks["detection"]["options"]}["conf"]
    assert conf["type"] == "float" and conf["default"] == 0.25 and conf["high"] == 1
    assert "overwrite" not in {o["name"] for o in tasks["detection"]["options"]}  # writes files
    assert tasks["sentiment"]["input"] == "text" and tasks["pos"]["hf_task"] == \
        "token-classification"


def test_the_openapi_schema_documents_each_task_and_its_parameters(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/detection/predict"]["post"]
    body = op["requestBody"]["content"]
    params = body["application/json"]["schema"]["properties"]["parameters"]["properties"]
    assert params["conf"]["maximum"] == 1 and params["conf"]["default"] == 0.25
    assert "threshold" in params  # Hugging Face's name of conf
    assert "multipart/form-data" in body and "image/*" in body
    assert "/v1/sentiment/predict" in spec["paths"]


def test_sentiment_one_text_and_a_list(client):
    one = client.post("/v1/sentiment/predict", json={"inputs": "a gripping , beautiful film"})
    assert one.status_code == 200
    assert one.json()[0][0]["label"] == "positive" and 0.5 < one.json()[0][0]["score"] <= 1
    many = client.post("/v1/sentiment/predict",
                       json={"inputs": ["a gripping , beautiful film", "dull , tedious and bad"]})
    assert [r[0]["label"] for r in many.json()] == ["positive", "negative"]


def test_pos_tags_with_character_offsets(client):
    text = "The dog can't run."
    out = client.post("/v1/pos/predict", json={"inputs": text}).json()
    assert [t["word"] for t in out] == ["The", "dog", "ca", "n't", "run", "."]
    assert all(text[t["start"]:t["end"]] == t["word"] for t in out)
    assert out[1]["entity_group"] == "NOUN"


def test_detection_upload_json_raw_and_options(client):
    image = png(160, 120)
    low = client.post("/v1/detection/predict", files={"file": ("x.png", image, "image/png")},
                      data={"parameters": json.dumps({"conf": 0.01})})
    assert low.status_code == 200, low.text
    boxes = low.json()
    assert boxes and all(set(b) == {"label", "score", "box"} for b in boxes)
    assert all(0 <= b["box"]["xmin"] <= b["box"]["xmax"] <= 160 and
               0 <= b["box"]["ymin"] <= b["box"]["ymax"] <= 120 for b in boxes)
    assert min(b["score"] for b in boxes) >= 0.01
    strict = client.post("/v1/detection/predict",
                         json={"inputs": b64(image), "parameters": {"threshold": 0.9}}).json()
    assert len(strict) < len(boxes) and all(b["score"] >= 0.9 for b in strict)
    raw = client.post("/v1/detection/predict", content=image,
                      headers={"content-type": "image/png"})
    data_url = client.post("/v1/detection/predict",
                           json={"inputs": "data:image/png;base64," + b64(image)})
    assert raw.json() == data_url.json()
    two = client.post("/v1/detection/predict", json={"inputs": [b64(image), b64(png(40, 30))]})
    assert len(two.json()) == 2 and all(isinstance(x, list) for x in two.json())


def test_a_video_upload_is_answered_frame_by_frame_up_to_its_limit(client, tmp_path):
    av = pytest.importorskip("av")

    def video(frames: int) -> bytes:
        import numpy as np

        path = tmp_path / f"clip{frames}.mp4"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("mpeg4", rate=10)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for i in range(frames):
                frame = np.full((48, 64, 3), i * 10 % 255, np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        return path.read_bytes()

    ok = client.post("/v1/detection/predict", files={"file": ("c.mp4", video(5), "video/mp4")})
    assert ok.status_code == 200, ok.text
    assert len(ok.json()) == 5
    long = client.post("/v1/detection/predict", files={"file": ("c.mp4", video(20), "video/mp4")})
    assert long.status_code == 413 and "12 frames" in long.json()["error"]


async def _concurrently(url: str, bodies: list[dict]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as c:
        return await asyncio.gather(*(c.post("/v1/sentiment/predict", json=b) for b in bodies))


def test_concurrent_requests_are_batched(url, predictors):
    counting = predictors["sentiment"]
    counting.sizes.clear()
    texts = ["a gripping , beautiful film", "dull , tedious and bad"] * 8
    answers = asyncio.run(_concurrently(url, [{"inputs": t} for t in texts]))
    assert all(r.status_code == 200 for r in answers)
    assert [r.json()[0][0]["label"] for r in answers] == ["positive", "negative"] * 8
    assert sum(counting.sizes) == 16
    assert len(counting.sizes) < 16  # some predictor call answered several requests
    assert max(counting.sizes) > 1


def test_a_bad_request_in_a_batch_fails_alone(url, predictors):
    bodies = [{"inputs": "a fine , moving film"}] * 6 + [{"inputs": " \t "}] + \
        [{"inputs": ["dull", "boring"]}]
    answers = asyncio.run(_concurrently(url, bodies))
    assert [r.status_code for r in answers] == [200] * 6 + [400, 200]
    assert "text 0 is empty" in answers[6].json()["error"]  # its own input's index
    assert [r[0]["label"] for r in answers[7].json()] == ["negative", "negative"]


def hostile_requests(tmp_path: Path) -> list[tuple[str, dict, int, str]]:
    """(task, httpx keywords (or a function making them), expected status, a phrase of the
    error) each."""
    real = tmp_path / "real.png"
    real.write_bytes(png())
    return [
        ("sentiment", {"content": b'{"inputs": "x",', "headers": {"content-type":
                                                                  "application/json"}},
         422, "not valid JSON"),
        ("sentiment", {"content": b'{"inputs": NaN}', "headers": {"content-type":
                                                                  "application/json"}},
         422, "not valid JSON"),
        ("sentiment", {"content": b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                       "headers": {"content-type": "application/json"}}, 422, "not valid JSON"),
        ("sentiment", {"json": {"inputs": 5}}, 400, "got int"),
        ("sentiment", {"json": {"inputs": {"text": "x"}}}, 400, "got dict"),
        ("sentiment", {"json": ["not", "an", "object"]}, 400, "expected a JSON object"),
        ("sentiment", {"json": {"inputs": "x", "parameters": {"temperature": 2}}}, 400,
         "not taken by sentiment"),
        ("sentiment", {"json": {"inputs": ["x"] * 9}}, 413, "limit is 8"),
        ("sentiment", {"content": png(), "headers": {"content-type": "image/png"}}, 415,
         "not an upload"),
        ("sentiment", {"content": b"a,b", "headers": {"content-type": "text/csv"}}, 415,
         "unsupported media type"),
        ("detection", {"json": {"inputs": b64(png()), "parameters": {"conf": 2}}}, 400,
         "expected a number in [0, 1]"),
        ("detection", {"json": {"inputs": b64(png()), "parameters": {"conf": "nan"}}}, 400,
         "conf"),
        ("detection", {"json": {"inputs": b64(png()), "parameters": {"overwrite": True}}}, 400,
         "files of the server's machine"),
        ("detection", {"json": {"inputs": "x" * (300 << 10)}}, 413, "larger than the limit"),
        ("detection", lambda: {"content": (b"0" * 4096 for _ in range(100)),  # chunked
                               "headers": {"content-type": "image/png"}}, 413,
         "larger than the limit"),
        ("detection", {"content": bomb_png(100_000, 100_000),
                       "headers": {"content-type": "image/png"}}, 413, "pixels"),
        ("detection", {"json": {"inputs": b64(bomb_png(3000, 3000))}}, 413, "pixels"),
        ("detection", {"files": {"file": ("a.png", b"hello, not an image", "image/png")}}, 415,
         "not an image"),
        ("detection", {"files": {"file": ("a.png", png()[:60], "image/png")}}, 400,
         "cannot be decoded"),
        ("detection", {"json": {"inputs": "/etc/passwd"}}, 400, "never as a file name"),
        ("detection", {"json": {"inputs": "../../x.png"}}, 400, "never as a file name"),
        ("detection", {"json": {"inputs": str(real)}}, 400, "never as a file name"),
        ("detection", {"json": {"inputs": "https://example.com/a.png"}}, 400,
         "never as a file name"),
        ("detection", {"json": {"inputs": [1, 2]}}, 400, "base64 string"),
        ("detection", {"data": {"parameters": "{}"}, "files": {"other": ("a", b"x")}}, 400,
         "unknown form field"),
        ("sentimnet", {"json": {"inputs": "x"}}, 404, "Did you mean 'sentiment'?"),
    ]


def test_hostile_requests_get_4xx_json_and_the_server_keeps_serving(client, tmp_path,
                                                                    monkeypatch):
    from PIL import Image

    opened = []
    real_open = Image.open

    def spy(fp, *args, **kwargs):  # the server decodes bytes only: never a name
        if isinstance(fp, (str, Path)):
            opened.append(fp)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", spy)
    cases = hostile_requests(tmp_path)
    sent = 0
    while sent < 100:  # the hundred, every kind several times
        for task, kwargs, status, phrase in cases:
            kwargs = kwargs() if callable(kwargs) else kwargs  # a generator is sent once
            r = client.post(f"/v1/{task}/predict", **kwargs)
            assert r.status_code == status, (task, kwargs.keys(), r.status_code, r.text[:300])
            body = r.json()
            assert set(body) == {"error", "type"} and phrase in body["error"], body
            sent += 1
    assert not opened
    assert client.get("/health").json()["status"] == "ok"
    again = client.post("/v1/sentiment/predict", json={"inputs": "a fine film"})
    assert again.status_code == 200


def test_unknown_routes_and_the_page_folder(client):
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and "no such endpoint" in r.json()["error"]
    assert client.get("/v1/sentiment/predict").status_code == 405
    assert client.get("/page/..%2F..%2Fpyproject.toml").status_code == 404
    page = client.get("/")
    if (PAGE / "index.html").is_file():
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    else:
        assert page.status_code == 404 and "not installed" in page.json()["error"]


def test_the_cli_names_an_unknown_task_in_one_line(capsys):
    from taskzoo.cli import main

    assert main(["serve", "sentimnet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("taskzoo: error:") and "sentiment" in err and err.count("\n") == 1


def test_serve_binds_loopback_and_warns_for_other_hosts(monkeypatch, capsys):
    import uvicorn

    from taskzoo.serve import server

    runs = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: runs.append(kw))
    monkeypatch.setattr(server, "load_predictors", lambda tasks, device="auto": {})
    server.serve(["sentiment"])
    assert runs[-1]["host"] == "127.0.0.1" and "warning" not in capsys.readouterr().err
    server.serve(["sentiment"], host="0.0.0.0", port=9)
    assert runs[-1]["host"] == "0.0.0.0" and "warning" in capsys.readouterr().err
