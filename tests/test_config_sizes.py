"""Size-like config fields declare the range their models take (issue 28, case 5).

`image_size=100000` used to decode 10 GB images until the process was killed, and
`image_size=1` or `3` failed deep inside a model after the data was built. The ranges are
checked when the config is made, before any data, and the smallest allowed sizes do run."""

from __future__ import annotations

import re

import pytest
import torch

from taskzoo.api import make_config
from taskzoo.cli import main
from taskzoo.errors import ConfigError
from taskzoo.tasks import get_task

pytestmark = pytest.mark.timeout(120)

LOWEST = {"image_classification": 4, "autoencoder": 8}


@pytest.mark.parametrize("task", sorted(LOWEST))
@pytest.mark.parametrize("size", [1, 3, 100000])
def test_image_size_out_of_range_is_a_config_error(task, size):
    with pytest.raises(ConfigError) as err:
        make_config(get_task(task), {"image_size": str(size)})
    assert str(err.value) == f"image_size={size}: expected 0 or in [{LOWEST[task]}, 1024]"


@pytest.mark.parametrize("task", sorted(LOWEST))
def test_image_size_bounds_and_native_are_accepted(task):
    for size in (0, LOWEST[task], 1024):
        assert make_config(get_task(task), {"image_size": size}).image_size == size


def test_unet_sides_and_crops_are_checked_before_the_data():
    ae = get_task("autoencoder")
    for overrides, says in [
        ({"mode": "denoise", "depth": 3}, "dataset=fashion_mnist (28 px): unet_small with "
                                          "depth=3 needs a side divisible by 2**depth = 8"),
        ({"mode": "denoise", "image_size": 30}, "image_size=30: unet_small with depth=2"),
        ({"mode": "colorize", "image_size": 48}, "train_crop=64: expected at most the image "
                                                 "side, 48"),
        ({"train_crop": 16}, "conv_ae takes only whole 28 px images"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(says)):
            make_config(ae, overrides)
    assert make_config(ae, {"mode": "denoise", "dataset": "digits", "depth": 4}).depth == 4


@pytest.mark.parametrize("model", get_task("image_classification").models)
def test_every_classifier_trains_at_the_smallest_image_size(model):
    from taskzoo.tasks.image_classification.task import ImageData

    task_cls = get_task("image_classification")
    side = LOWEST["image_classification"]
    cfg = make_config(task_cls, {"model": model, "image_size": side})
    task = task_cls(cfg)
    net = task.build_model(ImageData(train=None, labels=["a", "b", "c"], channels=1,
                                     size=(side, side)))
    net.train()
    torch.manual_seed(0)
    out = task.step(net, (torch.randn(4, 1, side, side), torch.tensor([0, 1, 2, 0])))
    out.loss.backward()
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("mode", ["reconstruct", "vae", "denoise", "colorize"])
def test_every_autoencoder_runs_at_the_smallest_image_size(mode):
    from taskzoo.tasks.autoencoder.task import AEData

    task_cls = get_task("autoencoder")
    side = LOWEST["autoencoder"]
    # the U-Net at the smallest side takes depth 3 (8 = 2**3); colorize's preset crop is
    # larger than the image, so it is turned off
    extra = {"depth": 3, "train_crop": 0} if mode in ("denoise", "colorize") else {}
    cfg = make_config(task_cls, {"mode": mode, "image_size": side, **extra})
    channels = 3 if mode == "colorize" else 1
    task = task_cls(cfg)
    net = task.build_model(AEData(train=None, mode=mode, channels=channels, size=(side, side)))
    x = torch.rand(4, 1, side, side)
    with torch.no_grad():
        out = net.eval()(x)
    out = out[0] if isinstance(out, tuple) else out
    assert out.shape == (4, 2 if mode == "colorize" else 1, side, side)


def test_the_cli_refuses_a_huge_image_size_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "image_classification", "image_size=100000"]) == 2
    err = capsys.readouterr().err
    assert err == "taskzoo: error: image_size=100000: expected 0 or in [4, 1024]\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("task", "key", "value", "says"), [
    # each of these allocated memory in proportion to the value before training started
    ("cartpole", "n_envs", 100_000, "n_envs=100000: expected in [1, 1024]"),
    ("frozenlake", "n_envs", 5_000, "n_envs=5000: expected in [1, 1024]"),
    ("cartpole", "buffer_size", 10**12, "buffer_size=1000000000000: expected in [1, 10000000]"),
    ("cartpole", "hidden", "100000000", "hidden=100000000: expected each item in [1, 8192]"),
    ("cartpole", "n_steps", 10**6, "n_steps=1000000: expected in [1, 65536]"),
    ("sentiment", "batch_size", 10**8, "batch_size=100000000: expected in [1, 65536]"),
    ("image_classification", "batch_size", 10**8, "batch_size=100000000: expected in [1, 65536]"),
    ("pos", "accumulate", 10**6, "accumulate=1000000: expected in [1, 4096]"),
])
def test_memory_sized_fields_have_an_upper_bound(task, key, value, says):
    with pytest.raises(ConfigError) as err:
        make_config(get_task(task), {key: str(value)})
    assert str(err.value) == says
    # the bound itself is valid
    top = int(re.search(r"(\d+)\]$", says).group(1))
    assert getattr(make_config(get_task(task), {key: str(top)}), key) in (top, (top,))


def test_every_task_accepts_its_own_defaults_presets_and_quick_budgets():
    # the bounds must not refuse a recipe a task ships with
    from taskzoo.tasks import names

    checked = 0
    for name in names():
        task_cls = get_task(name)
        for value in [None, *task_cls.presets]:
            overrides = {} if value is None else {task_cls.preset_key: value}
            make_config(task_cls, overrides)
            make_config(task_cls, {**overrides, **task_cls.quick})
            checked += 1
    assert checked > 2 * len(names())
