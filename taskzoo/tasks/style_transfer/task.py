"""Artistic style transfer: a photo repainted in a painting's style, by optimising its pixels
(Gatys, Ecker & Bethge 2016) or in one pass of a network trained once per painting (Johnson,
Alahi & Fei-Fei 2016), with ImageNet EfficientNet-Lite0 as the loss network.

    taskzoo run style                              # the network for The Starry Night, Flickr8k photos
    taskzoo run style style=great_wave             # a shared painting by name
    taskzoo run style style=~/art/mine.jpg         # or any image
    taskzoo predict style photo.jpg --save out/    # the released network, one pass
    taskzoo predict style clip.mp4 --save out.mp4  # every frame of a video
    taskzoo predict style photo.jpg --style the_scream --size 384 --save out/
                                                   # Gatys: the photo's pixels optimised (L-BFGS)

The loss (`perceptual.py`) reads Lite0's stage ends: content at stage 4 (stride 16), style
as the Gram matrices of stages 1-5, each relative to its target. The recipe was chosen on dev
pictures (docs/tasks/style_transfer.md): the maps as they are, because SWAG's softmax
transform (which the paper needs for ResNets) is one-hot on these linear maps at its
temperature and weaker at any other; the network trains on Flickr8k's own 128 px.

A run trains the network on Flickr8k's training photos, then scores it with a network it
never saw, EfficientNet-Lite2 (`score_net`), on `eval_photos` test photos beside two
baselines on the same photos: the per-image optimisation (what one pass costs in quality)
and the same optimisation with the loss network at random weights (what ImageNet features
buy). `grid.png` shows them: photos down; the painting, the network, the optimisation and
the random network's optimisation across.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import torch
from torch import nn

from taskzoo.config import NonNegativeFloat, PositiveFloat, Range, SupervisedConfig
from taskzoo.errors import ConfigError
from taskzoo.models import build
from taskzoo.tasks import TASKS
from taskzoo.tasks.base import DataBundle
from taskzoo.tasks.common.image_task import ImageTask
from taskzoo.tasks.style_transfer import evaluate as ev
from taskzoo.tasks.style_transfer.data import StyleData, load_style_data
from taskzoo.tasks.style_transfer.perceptual import (
    LossNetwork,
    StyleTargets,
    relative_losses,
)
from taskzoo.tasks.style_transfer.predictor import StylePredictor
from taskzoo.train.types import StepOutput


# ---------------------------------------------------------------------------- config
@dataclass(frozen=True, kw_only=True)
class StyleConfig(SupervisedConfig):
    # content photos: Flickr8k's training images (128 px), tiny generated shapes, or data=PATH
    dataset: Literal["flickr8k", "shapes", "folder"] = "flickr8k"
    data: str = ""  # a folder (or zip) of your photos, for dataset=folder
    style: str = "starry_night"  # the painting: a shared one by name (great_wave, the_scream, ...) or an image's path
    model: Literal["style_net"] = "style_net"  # Johnson et al.'s image transformation network
    width: Annotated[int, Range(4, 128)] = 16  # channels of its first conv (32 is Johnson's; 16 is 4x faster)
    blocks: Annotated[int, Range(0, 16)] = 5  # its residual blocks
    loss_net: Literal["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"] = "efficientnet_lite0"  # the loss network
    loss_init: Literal["imagenet", "random"] = "imagenet"  # its weights: ImageNet or random (the baseline)
    content_layers: Annotated[tuple[int, ...], Range(0, 8)] = (4,)  # stage ends whose maps are the content (0 stem, 1-7 stages, 8 head)
    style_layers: Annotated[tuple[int, ...], Range(0, 8)] = (1, 2, 3, 4, 5)  # stage ends whose Gram matrices are the style
    transform: Literal["none", "softmax"] = "none"  # softmax: SWAG's smoothing of the style maps (Wang et al. 2021)
    content_weight: NonNegativeFloat = 1.0  # weight of the relative content loss
    style_weight: PositiveFloat = 2.0  # weight of the relative style loss (mean over style layers)
    tv_weight: NonNegativeFloat = 0.0  # weight of total variation (smoothness) of the output
    image_size: Annotated[int, Range(32, 1024)] = 128  # training crops (Flickr8k's own 128 px)
    style_size: Annotated[int, Range(32, 2048)] = 256  # the painting's long side: sets the stroke size in pixels
    eval_size: Annotated[int, Range(32, 1024)] = 256  # side the dev/test photos are stylised and scored at
    score_net: Literal["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"] = "efficientnet_lite2"  # the scoring network (ImageNet)
    dev_photos: Annotated[int, Range(1)] = 20  # dev photos scored at each evaluation
    eval_photos: Annotated[int, Range(1)] = 100  # test photos scored at the end
    baseline_photos: Annotated[int, Range(0)] = 100  # of those, optimised per image for the baselines (0: none)
    steps: Annotated[int, Range(1, 10000)] = 300  # evaluations of the loss network when optimising one image
    baseline_steps: Annotated[int, Range(1, 10000)] = 100  # the same for the baselines' photos
    optimize_size: Annotated[int, Range(32, 2048)] = 384  # long side of a photo optimised by the predictor
    workers: Annotated[int, Range(-1)] = -1  # loader processes; -1 = by the number of cores
    optimizer: Literal["adamw", "adam", "sgd"] = "adam"  # torch.optim class
    lr: PositiveFloat = 1e-3  # learning rate (Johnson et al.'s)
    schedule: Literal["constant", "linear", "cosine"] = "constant"  # lr after warm-up
    epochs: int = 2  # passes over the training photos (3,000 steps of 4 on Flickr8k)
    batch_size: int = 4  # photos per step (Johnson et al.'s)
    eval_batch_size: Annotated[int, Range(1, 1024)] = 8  # photos per stylising batch in evaluation
    eval_every: int = 500  # steps between dev evaluations
    keep: Literal["best", "last"] = "last"  # the network after its last step (dev scores only report)
    channels_last: bool = True  # NHWC convolutions (faster on CPUs and tensor cores)

    def validate(self) -> None:
        super().validate()
        for name in ("content_layers", "style_layers"):
            layers = getattr(self, name)
            if not layers:  # each item's range is checked before
                raise ConfigError(f"{name} is empty: expected one or more stage ends in 0..8 "
                                  "(0 the stem, 1-7 the stages, 8 the head conv)")
        if not self.style.strip():
            raise ConfigError("style is empty: name a painting (starry_night, ...) or an image")


# ---------------------------------------------------------------------------- the task
@TASKS.register("style_transfer", aliases=("style", "neural_style", "style_transfer_fast"))
class StyleTransfer(ImageTask[StyleConfig]):
    name = "style_transfer"
    Config = StyleConfig
    description = "a photo repainted in a painting's style (Gatys; Johnson's one-pass network)"
    dev_metric = "dev/style"  # scored in Lite2; the run keeps its last weights (keep=last)
    mode = "min"
    models = ("style_net",)
    weights_fields = ("model", "style")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "shapes": {"image_size": 64, "eval_size": 64, "style_size": 96, "dev_photos": 4,
                   "eval_photos": 4, "baseline_photos": 2, "baseline_steps": 5, "steps": 10,
                   "optimize_size": 64, "width": 8, "blocks": 1, "eval_every": 0,
                   "batch_size": 4},
    }
    quick: ClassVar[dict[str, Any]] = {"dataset": "shapes", "max_steps": 10}

    def __init__(self, cfg: StyleConfig, runtime: Any = None) -> None:
        super().__init__(cfg, runtime)
        self._loss: LossNetwork | None = None
        self._scorer: LossNetwork | None = None
        self._grams: dict[int, list[torch.Tensor]] = {}  # id(network) -> the painting's Grams
        # the per-image baselines' images on the first test photos (for grid.png)
        self.baseline_images: dict[str, list[torch.Tensor]] = {}

    @classmethod
    def implied_overrides(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        return {"dataset": "folder"} if overrides.get("data") else {}

    def weights_tag(self) -> str:
        from taskzoo.tasks.style_transfer.paintings import painting_name

        return painting_name(self.cfg.style)

    def dataset_card(self) -> dict[str, Any]:
        from taskzoo.tasks.style_transfer.paintings import painting_card

        data = self._data
        return {"name": data.name if data else self.cfg.dataset, "files": [],
                "license": data.license if data else "", "style": painting_card(self.cfg.style)}

    # -- data
    def build_data(self, state: dict[str, Any] | None = None) -> StyleData:
        self._data = load_style_data(self.cfg)
        return self._data

    def batches(self, data: StyleData, model: nn.Module) -> Any:
        from taskzoo.tasks.style_transfer.data import RandomFlip

        return self.loader(data.train, collate=torch.stack, transform=RandomFlip(),
                           workers=0 if self.cfg.workers == -1 else self.cfg.workers)

    # -- model
    def build_model(self, data: DataBundle) -> nn.Module:
        return build(self.cfg.model, width=self.cfg.width, blocks=self.cfg.blocks)

    def loss_network(self) -> LossNetwork:
        """The frozen loss network of the recipe, on the runtime's device (built once)."""
        if self._loss is None:
            c = self.cfg
            self._loss = ev.loss_network(c.loss_net, c.loss_init, content=c.content_layers,
                                         style=c.style_layers, transform=c.transform,
                                         runtime=self.runtime)
        return self._loss

    def scoring_network(self) -> LossNetwork:
        """The network figures are scored in: `score_net` with ImageNet weights, plain maps,
        the recipe's layers (built once)."""
        if self._scorer is None:
            c = self.cfg
            self._scorer = ev.loss_network(c.score_net, "imagenet", content=c.content_layers,
                                           style=c.style_layers, runtime=self.runtime)
        return self._scorer

    def painting_grams(self, net: LossNetwork | None = None) -> list[torch.Tensor]:
        """The painting's Gram matrices in `net` (the loss network by default; the scoring
        network), computed once per network."""
        net = net if net is not None else self.loss_network()
        if id(net) not in self._grams:
            painting = self.runtime.to_device(self._painting())
            self._grams[id(net)] = StyleTargets.of(net, None, painting).grams
        return self._grams[id(net)]

    def _painting(self) -> torch.Tensor:
        data = self._data
        if data is not None and data.painting is not None:
            return data.painting
        from taskzoo.tasks.style_transfer.data import painting_tensor

        return painting_tensor(self.cfg.style, self.cfg.style_size)

    # -- step
    def losses(self, model: nn.Module, photos: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(stylised, content loss [B], style loss [B]) of the network on `photos`."""
        net = self.loss_network()
        targets = StyleTargets.for_photo(net, photos, self.painting_grams())
        out = model(photos)
        c, s = relative_losses(net, out, targets)
        return out, c, s

    def step(self, model: nn.Module, batch: torch.Tensor) -> StepOutput:
        from taskzoo.tasks.style_transfer.optimize import total_variation

        cfg = self.cfg
        out, c, s = self.losses(model, batch)
        loss = cfg.content_weight * c.mean() + cfg.style_weight * s.mean()
        if cfg.tv_weight:
            loss = loss + cfg.tv_weight * total_variation(out.float()).mean()
        return StepOutput(loss, size=len(batch),
                          logs={"content": c.mean().detach(), "style": s.mean().detach()})

    # -- evaluate
    def evaluate(self, model: nn.Module, data: StyleData, split: str) -> dict[str, float]:
        return ev.network_figures(self, model, data, split)

    def final_metrics(self, model: nn.Module, data: StyleData) -> dict[str, float]:
        if "test" not in data.splits:
            return {}
        figures, self.baseline_images = ev.baseline_figures(self, model, data)
        return figures

    def reports(self, model: nn.Module, data: StyleData) -> dict[str, str | bytes]:
        from taskzoo.tasks.style_transfer.report import run_grid

        return run_grid(self, model, data)

    def example_inputs(self, n: int) -> list[Any]:
        from taskzoo.data.caption_shapes import caption_shapes

        return list(caption_shapes(n, seed=0).arrays)

    # -- predictor
    def predictor(self, model: nn.Module, data: StyleData) -> StylePredictor:
        return StylePredictor(model, self.runtime, recipe=ev.recipe(self.cfg),
                              style=data.style, batch_size=self.cfg.eval_batch_size)

    def data_state(self, data: StyleData) -> dict[str, Any]:
        return {"style": data.style, "labels": data.labels}

    def data_from_state(self, state: dict[str, Any]) -> StyleData:
        return StyleData(train=None, labels=list(state.get("labels") or ["image"]),
                         style=str(state["style"]))

