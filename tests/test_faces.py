"""The faces task end to end on the released networks: photos, a gallery, a video, the
command line and `taskzoo run faces` on a few ORL people."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import taskzoo
from taskzoo.errors import InputError

PHOTO = "coco128/images/train2017/000000000110.jpg"  # a woman and a girl, both facing the camera


@pytest.fixture
def mirror(shared_data, monkeypatch):
    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    return shared_data


@pytest.fixture(scope="module")
def faces():
    return taskzoo.load("faces", device="cpu")


@pytest.fixture
def people(mirror, tmp_path) -> Path:
    """A gallery of three ORL people, photos 1-3 each (photos 4-10 stay unseen)."""
    import shutil

    root = tmp_path / "people"
    for s in (1, 2, 3):
        (root / f"s{s}").mkdir(parents=True)
        for k in (1, 2, 3):
            shutil.copy(mirror / "att_faces" / f"s{s}" / f"{k}.pgm", root / f"s{s}" / f"{k}.pgm")
    return root


def test_a_photo_gives_boxes_scores_and_landmarks_inside_each_face(mirror, faces):
    out = faces(str(mirror / PHOTO))
    assert len(out["boxes"]) == 2 and all(s > 0.7 for s in out["scores"])
    for box, marks in zip(out["boxes"], out["landmarks"]):
        x1, y1, x2, y2 = box
        pts = np.array(marks)
        assert pts.shape == (5, 2)
        assert ((pts[:, 0] > x1) & (pts[:, 0] < x2) & (pts[:, 1] > y1) & (pts[:, 1] < y2)).all()
        # eyes above the nose above the mouth; the image-left eye left of the other
        assert pts[:2, 1].max() < pts[2, 1] < pts[3:, 1].min() and pts[0, 0] < pts[1, 0]
    assert "names" not in out and out.image.shape[0] == 3
    # O-Net's verification only removes boxes; a 640x480 input finds these faces too
    assert len(faces(str(mirror / PHOTO), verify=0.9999)["boxes"]) <= 2
    assert len(faces(str(mirror / PHOTO), size=640)["boxes"]) >= 2
    with pytest.raises(InputError, match="size=100: expected"):
        faces(str(mirror / PHOTO), size=100)


def test_mtcnn_finds_the_same_faces(mirror, faces):
    a = faces(str(mirror / PHOTO))
    b = faces(str(mirror / PHOTO), detector="mtcnn")
    # MTCNN also finds a small face in the background; its two largest are RFB-320's two

    def centres(r: dict, n: int) -> list[float]:
        big = sorted(r["boxes"], key=lambda bx: (bx[2] - bx[0]) * (bx[3] - bx[1]))[-n:]
        return sorted((bx[0] + bx[2]) / 2 for bx in big)

    assert len(b["boxes"]) >= 2 and np.allclose(centres(a, 2), centres(b, 2), atol=15)
    with pytest.raises(InputError, match="detector='mtcn': expected one of rfb320, slim320, mtcnn"):
        faces(str(mirror / PHOTO), detector="mtcn")


def test_a_gallery_names_known_people_and_calls_others_unknown(mirror, faces, people):
    queries = [str(mirror / "att_faces" / f"s{s}" / f"{k}.pgm") for s in (1, 2, 3) for k in (8, 9)]
    out = faces(queries + [str(mirror / "att_faces" / "s9" / "9.pgm"), str(mirror / PHOTO)],
                gallery=str(people))
    assert [o["names"][0] for o in out[:6]] == ["s1", "s1", "s2", "s2", "s3", "s3"]
    assert all(o["distances"][0] < 0.6 for o in out[:6])
    assert out[6]["names"] == ["unknown"] and out[6]["distances"][0] > 0.6
    assert out[7]["names"] == ["unknown", "unknown"]
    # a stricter threshold turns known faces unknown; nothing was written beside the photos
    strict = faces(queries[0], gallery=str(people), threshold=0.05)
    assert strict["names"] == ["unknown"]
    assert sorted(p.name for p in (people / "s1").iterdir()) == ["1.pgm", "2.pgm", "3.pgm"]


def test_videos_are_tracked_and_names_carried(mirror, faces, people, tmp_path):
    """A camera panning over a real photo: each face keeps one track id."""
    import av
    from PIL import Image

    photo = Image.open(mirror / PHOTO).convert("RGB").resize((960, 720))
    clip = tmp_path / "pan.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(12):
            x = 20 * i
            frame = av.VideoFrame.from_ndarray(np.asarray(photo.crop((x, 60, x + 640, 540))),
                                               format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    target = tmp_path / "out.mp4"
    [summary] = faces.stream_cli([str(clip)], str(target), gallery=str(people))
    assert summary.frames == 12 and target.is_file()
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    # the girl leaves on the left as the woman comes in on the right: two faces, two ids
    ids = [t for r in rows for t in r["track_ids"]]
    assert len(set(ids)) == 2 and len(ids) >= 10
    assert {n for r in rows for n in r["labels"]} == {"unknown"}


def test_run_faces_measures_orl_without_training(mirror, tmp_path):
    result = taskzoo.run("faces", people=5, out=tmp_path / "run", progress=False)
    m = result.metrics
    assert m["train/steps"] == 0
    assert m["test/one_face_share"] >= 0.96 and m["test/accuracy_k5"] >= 0.96
    assert m["test/accuracy_k1"] <= m["test/accuracy_k5"] + 1e-9
    assert 0.9 <= m["test/verify_auc"] <= 1.0 and 0 < m["test/verify_threshold"] < 1.5
    for f in ("best.safetensors", "metrics.json", "faces_orl.png", "config.json"):
        assert (tmp_path / "run" / f).is_file(), f
    again = taskzoo.load_run(tmp_path / "run")
    assert len(again(str(mirror / PHOTO))["boxes"]) == 2
    # exported as float16 but for MTCNN (the model's export_float32), which stays float32
    from safetensors import safe_open

    from taskzoo.weights.export import export

    weights, _ = export(tmp_path / "run", name="face_pipeline.orl_test", out=tmp_path / "exp",
                        evaluate=False)
    with safe_open(str(weights), "pt") as f:
        kinds = {k: f.get_slice(k).get_dtype() for k in f.keys()}
    assert {d for k, d in kinds.items() if k.startswith("mtcnn.")} == {"F32"}
    assert {d for k, d in kinds.items() if not k.startswith("mtcnn.") and "num_batches" not in k} \
        == {"F16"}


def test_command_line_predicts_saves_and_refuses_bad_options(mirror, tmp_path, cli_env):
    cli_env["TASKZOO_MIRROR"] = str(mirror)
    run = [sys.executable, "-m", "taskzoo.cli", "predict", "faces", str(mirror / PHOTO)]
    done = subprocess.run([*run, "--save", str(tmp_path / "out")], env=cli_env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "000000000110.png").is_file()
    done = subprocess.run([*run, "--json"], env=cli_env, capture_output=True, text=True,
                          timeout=120)
    assert len(json.loads(done.stdout)["boxes"]) == 2
    bad = subprocess.run([*run, "--detector", "yunet"], env=cli_env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "expected one of rfb320, slim320, mtcnn" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_release_keeps_each_network_as_its_source_has_it():
    """Detectors float16, MTCNN float32 (its cascade moves by pixels in float16), the
    descriptor uint8 with a scale and a minimum a tensor, as face-api publishes it."""
    from safetensors import safe_open

    from taskzoo.weights import resolve, weights_file

    card = resolve("face_pipeline.widerface_dlib")
    assert card.size <= 10_000_000 and card.default and card.task == "faces"
    with safe_open(str(weights_file(card)), "pt") as f:
        kinds = {k: f.get_slice(k).get_dtype() for k in f.keys()}
    floats = {k: d for k, d in kinds.items() if "num_batches" not in k}
    assert {d for k, d in floats.items() if k.startswith(("rfb320.", "slim320."))} == {"F16"}
    assert {d for k, d in floats.items() if k.startswith("mtcnn.")} == {"F32"}
    quantised = [k for k in kinds if k.endswith(".q8")]
    assert len(quantised) > 100 and all(kinds[k] == "U8" for k in quantised)
    assert all(kinds[k.removesuffix(".q8") + ".q8_scale"] == "F64" for k in quantised)


def test_bad_images_get_input_errors(faces):
    with pytest.raises(InputError, match="no such file"):
        faces("nope.jpg")
    with pytest.raises(InputError, match="image array must be"):
        faces(np.zeros((4, 4, 7), np.uint8))
    from taskzoo.tasks.faces.pipeline import check_image

    with pytest.raises(InputError, match="uint8 tensor"):
        check_image(torch.zeros(3, 8, 8))


@pytest.mark.gpu
def test_faces_on_cuda_match_the_cpu(mirror, faces, people):
    """The pipeline on CUDA: the same faces, landmarks and names as on the CPU."""
    assert torch.cuda.is_available(), "gpu tests need CUDA"
    cuda = taskzoo.load("faces", device="cuda")
    assert next(cuda.model.parameters()).device.type == "cuda"
    query = [str(mirror / PHOTO), str(mirror / "att_faces" / "s2" / "9.pgm")]
    for detector in ("rfb320", "mtcnn"):
        a = faces(query, detector=detector, gallery=str(people))
        b = cuda(query, detector=detector, gallery=str(people))
        for x, y in zip(a, b):
            assert len(x["boxes"]) == len(y["boxes"]) and x["names"] == y["names"]
            assert np.allclose(x["boxes"], y["boxes"], atol=1.0)
            assert np.allclose(x["landmarks"], y["landmarks"], atol=1.0)
