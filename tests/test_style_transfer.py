"""Style transfer: the perceptual loss on EfficientNet-Lite, the per-image optimisation, the
image transformation network, the paintings through the hub, `taskzoo run style` on the
tiny shapes set, the predictor (photos, another painting, a video) and the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import taskzoo
from taskzoo.errors import ConfigError, InputError, UnknownNameError, UsageError
from taskzoo.models import build
from taskzoo.tasks.style_transfer.optimize import optimize_image, total_variation
from taskzoo.tasks.style_transfer.perceptual import (
    LossNetwork,
    StyleTargets,
    gram,
    relative_losses,
    swag,
)

PHOTO = "coco128/images/train2017/000000000025.jpg"  # a giraffe under trees


@pytest.fixture
def mirror(shared_data, monkeypatch):
    monkeypatch.setenv("TASKZOO_MIRROR", str(shared_data))
    return shared_data


@pytest.fixture(scope="module")
def lite0() -> LossNetwork:
    torch.manual_seed(0)
    return LossNetwork(build("efficientnet_lite0"), content=(4,), style=(1, 2, 3, 4))


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    """One tiny run (shapes, 12 steps), shared by the tests that only read it."""
    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "style_paintings" / "starry_night.jpg").is_file():
        pytest.skip(f"needs the shared paintings in a mirror ({SHARED_DATA})")
    mp = pytest.MonkeyPatch()
    mp.setenv("TASKZOO_MIRROR", str(SHARED_DATA))
    mp.setenv("TASKZOO_HOME", str(tmp_path_factory.mktemp("home")))
    try:
        yield taskzoo.run("style", dataset="shapes", max_steps=12, progress=False,
                          out=tmp_path_factory.mktemp("runs") / "style")
    finally:
        mp.undo()


# ---------------------------------------------------------------- the loss
def test_stage_maps_are_the_features_at_the_same_depth_and_stop_there():
    net = build("efficientnet_lite0").eval()
    x = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        feats = net.features(x)
        maps = net.stage_maps(x, (3, 5, 8))
    for a, b in zip(feats, maps):
        assert torch.equal(a, b)
    calls = []
    hook = net._conv_head.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        shallow = net.stage_maps(x, (0, 2))
    hook.remove()
    assert not calls and [m.shape[1] for m in shallow] == [32, 24]
    with pytest.raises(ValueError, match="0..8"):
        net.stage_maps(x, (9,))


def test_gram_ignores_where_things_are():
    maps = torch.rand(2, 5, 6, 7)
    shuffled = maps.flatten(2)[..., torch.randperm(42)].reshape(2, 5, 6, 7)
    assert torch.allclose(gram(maps), gram(shuffled), atol=1e-6)
    assert gram(maps).shape == (2, 5, 5)


def test_swag_is_a_softmax_over_every_entry_scaled_to_mean_one():
    maps = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0)) * 30
    out = swag(maps, temperature=1.0)
    assert torch.allclose(out.flatten(1).mean(1), torch.ones(2))
    assert out.flatten(1).max(1).values.min() > 20  # at T=1 these maps are nearly one-hot
    smooth = swag(maps)  # T = each map's own deviation
    assert smooth.flatten(1).max(1).values.max() < out.flatten(1).max(1).values.min()


def test_relative_losses_are_zero_on_their_targets_and_positive_elsewhere(lite0):
    photo, painting = torch.rand(2, 3, 64, 64), torch.zeros(1, 3, 80, 60)
    painting[:, 0, ::4] = 1  # red stripes: nothing like the noise photos
    targets = StyleTargets.of(lite0, photo, painting)
    with torch.no_grad():
        c, s = relative_losses(lite0, photo, targets)
        _, s_self = relative_losses(lite0, painting, StyleTargets.of(lite0, painting, painting))
    assert c.shape == (2,) and torch.allclose(c, torch.zeros(2), atol=1e-6)
    assert (s > 0.01).all() and float(s_self) < 1e-6


def test_the_loss_network_stays_frozen_and_in_eval_mode(lite0):
    lite0.train()
    assert not lite0.backbone.training
    assert not any(p.requires_grad for p in lite0.parameters())
    with pytest.raises(ValueError, match="softmax"):
        LossNetwork(build("efficientnet_lite0"), content=(4,), style=(1,), transform="gumbel")


# ---------------------------------------------------------------- per-image optimisation
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimizing_the_pixels_lowers_the_objective_and_keeps_them_in_range(lite0, optimizer):
    torch.manual_seed(1)
    photo, painting = torch.rand(1, 3, 48, 48), torch.rand(1, 3, 64, 64)
    targets = StyleTargets.of(lite0, photo, painting)
    with torch.no_grad():
        c0, s0 = relative_losses(lite0, photo, targets)
    rng = torch.get_rng_state()
    with torch.inference_mode():  # as a run's final figures call it
        res = optimize_image(lite0, photo, targets, steps=15, style_weight=3.0,
                             optimizer=optimizer, progress=False)
    assert torch.equal(torch.get_rng_state(), rng) and torch.is_grad_enabled()
    assert res.evaluations == 15 and res.image.shape == photo.shape
    assert 0 <= float(res.image.min()) and float(res.image.max()) <= 1
    assert res.content + 3.0 * res.style < float(c0 + 3.0 * s0)
    assert res.style < float(s0)


def test_total_variation_is_zero_for_a_flat_image_only():
    assert float(total_variation(torch.full((1, 3, 8, 8), 0.3))) == 0
    assert float(total_variation(torch.rand(1, 3, 8, 8))) > 0


# ---------------------------------------------------------------- the network
def test_the_transformation_network_keeps_any_size_and_has_johnsons_parameters():
    net = build("style_net", width=8, blocks=2).eval()
    for h, w in ((64, 48), (37, 53)):
        assert tuple(net(torch.rand(2, 3, h, w)).shape) == (2, 3, h, w)
    assert sum(p.numel() for p in build("style_net", width=32).parameters()) == 1_679_235
    with pytest.raises(ValueError, match="at least 16"):
        net(torch.rand(1, 3, 12, 40))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        net(torch.rand(1, 1, 32, 32))
    net.train()
    net(torch.rand(2, 3, 32, 32)).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        # a conv bias under instance norm is subtracted away (kept: the published layout)
        assert p.grad.abs().sum() > 0 or (name.endswith(".bias") and ".1." in name), name


# ---------------------------------------------------------------- paintings
def test_every_shared_painting_comes_verified_through_the_hub(mirror):
    from taskzoo.tasks.style_transfer.paintings import PAINTINGS, painting_card, painting_image

    for name in PAINTINGS:
        im = painting_image(name)
        assert im.mode == "RGB" and max(im.size) == 1024
    card = painting_card("great_wave")
    assert card["artist"] == "Katsushika Hokusai" and card["file"]["sha256"].startswith("d4310b")


def test_a_style_is_a_painting_name_or_an_image_file(tmp_path):
    from PIL import Image

    from taskzoo.tasks.style_transfer.paintings import painting_image, painting_name

    path = tmp_path / "My Art.png"
    Image.new("RGB", (30, 20), (200, 10, 10)).save(path)
    assert painting_image(str(path)).size == (30, 20)
    assert painting_name(str(path)) == "my_art" and painting_name("The_Scream") == "the_scream"
    with pytest.raises(UnknownNameError, match="Did you mean 'starry_night'"):
        painting_image("stary_night")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="broken.jpg"):
        painting_image(str(tmp_path / "broken.jpg"))


# ---------------------------------------------------------------- the task
def test_the_run_reports_network_and_baseline_figures_and_a_grid(shapes_run):
    m = shapes_run.metrics
    for key in ("dev/loss", "test/content", "test/style", "test/photo_style",
                "test/objective_style", "test/images_per_s", "test/optimized_content",
                "test/optimized_style", "test/optimized_seconds", "test/random_style"):
        assert key in m and np.isfinite(m[key]), key
    assert m["test/images_per_s"] > 0 and m["test/optimized_seconds"] > 0
    assert m["test/optimized_content"] < m["test/content"] + 1  # the photo was its start
    png = shapes_run.run_dir / "grid.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(png) as im:
        assert im.width > 4 * 150  # four columns: photo, network, two baselines


def test_the_predictor_stylises_photos_of_any_size_in_one_pass(shapes_run, tmp_path):
    from PIL import Image

    style = shapes_run.predictor
    photos = [np.full((40, 50, 3), 120, np.uint8), np.zeros((64, 64, 3), np.uint8),
              np.full((40, 50, 3), 30, np.uint8)]
    out = style(photos)
    assert [im.size for im in out] == [(50, 40), (64, 64), (50, 40)]
    assert style(photos[0], size=100).size == (100, 80)
    again = taskzoo.load_run(shapes_run.run_dir, device="cpu")(photos[1])
    assert np.array_equal(np.asarray(again), np.asarray(out[1]))
    saved = style.save(out[0], tmp_path / "a")
    assert saved.name == "a.png" and Image.open(saved).size == (50, 40)
    with pytest.raises(InputError, match="image 0"):
        style(str(tmp_path / "missing.jpg"))


def test_another_painting_optimises_the_photo_instead(shapes_run, mirror):
    style = shapes_run.predictor
    photo = np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8)
    out = style(photo, style="the_scream", steps=4, size=56)
    assert out.size == (47, 56) or out.size == (46, 56)
    with pytest.raises(UnknownNameError, match="the_kiss"):
        style(photo, style="the_kis", steps=2)
    with pytest.raises(InputError, match="optimizer"):
        style(photo, style="the_scream", optimizer="sgd")


def test_a_video_goes_through_the_network_frame_by_frame(shapes_run, tmp_path):
    import av

    src = tmp_path / "in.mp4"
    with av.open(str(src), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(6):
            frame = np.full((48, 64, 3), 20 * i, np.uint8)
            c.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        c.mux(s.encode())
    style = shapes_run.predictor
    out = tmp_path / "out.mp4"
    [summary] = style.stream_cli([str(src)], str(out))
    assert summary.frames == 6 and out.is_file() and summary.size == (64, 48)
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 6
    mine = tmp_path / "mine.mp4"
    mine.write_bytes(b"my own file")
    with pytest.raises(UsageError, match="not a video taskzoo wrote"):
        style.stream_cli([str(src)], str(mine))
    assert mine.read_bytes() == b"my own file"
    with pytest.raises(UsageError, match="trained network"):
        style.stream_cli([str(src)], str(out), style="the_scream")
    # a folder of frames; a jsonl of the user's beside it is neither needed nor touched
    notes = tmp_path / "frames.jsonl"
    notes.write_text("my notes\n")
    from taskzoo.video.transform import map_video

    summary = map_video(lambda fr: [255 - f for f in fr], src, tmp_path / "frames", batch=4)
    assert summary.frames == 6 and len(list((tmp_path / "frames").glob("*.png"))) == 6
    assert notes.read_text() == "my notes\n"


def test_bad_configs_say_what_is_valid(mirror):
    with pytest.raises(ConfigError, match="style_layers"):
        taskzoo.run("style", dataset="shapes", style_layers=(1, 12), progress=False)
    with pytest.raises(UnknownNameError, match="great_wave"):
        taskzoo.run("style", dataset="shapes", style="grate_wave", max_steps=1, progress=False)


def test_taskzoo_predict_style_writes_pngs_and_never_over_an_input(shapes_run, mirror,
                                                                     tmp_path, cli_env):
    import shutil

    photo = tmp_path / "photo.jpg"
    shutil.copy(mirror / PHOTO, photo)
    before = photo.read_bytes()
    cli_env["TASKZOO_MIRROR"] = str(mirror)
    cmd = [sys.executable, "-m", "taskzoo.cli", "predict", "style", "--from",
           str(shapes_run.run_dir), str(photo), "--size", "96", "--save", str(tmp_path),
           "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=cli_env, timeout=300)
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout.splitlines()[0])
    assert row["size"] == [96, 64] and photo.read_bytes() == before
    assert (tmp_path / "photo.png").is_file()


@pytest.mark.gpu
def test_the_network_trains_in_bf16_on_cuda(mirror, tmp_path):
    """A few hundred steps of the default recipe on CUDA in bf16, with its speed printed."""
    assert torch.cuda.is_available(), "gpu tests need CUDA"
    res = taskzoo.run("style", device="cuda", precision="bf16-mixed", max_steps=300,
                      eval_photos=20, baseline_photos=2, image_size=256, progress=False,
                      out=tmp_path / "run")
    name = torch.cuda.get_device_name()
    print(f"\n{name}: {res.metrics['train/samples_per_s']:.1f} photos/s training at 256 px in "
          f"bf16; {res.metrics['test/images_per_s']:.1f} images/s stylising")
    assert res.metrics["test/style"] < res.metrics["test/photo_style"]
