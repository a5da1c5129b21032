"""Autoencoders: reconstruct, denoise, a VAE, colorization, and codes as features versus PCA.

    taskzoo run autoencoder                               # Fashion-MNIST, 32-d code
    taskzoo run autoencoder mode=denoise noise_sigma=0.3  # a U-Net cleans noisy images
    taskzoo run autoencoder mode=vae                      # MNIST, ELBO in nats, samples
    taskzoo run autoencoder mode=colorize                 # Flickr8k photos: ab from L
    taskzoo run autoencoder mode=features stack=3         # codes vs PCA under a linear probe
    taskzoo predict autoencoder --from runs/x old_photo.jpg --save out/

Every mode trains one model on (input, target) pairs (`taskzoo.data.pairs`) whose noise is
drawn from the per-sample seeded generator, so runs and resumes are reproducible and the
test images always get the same noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taskzoo.config import NonNegativeInt, Probability, Range, SupervisedConfig
from taskzoo.data import pairs, vision
from taskzoo.data.loader import LoaderSource, eval_batches
from taskzoo.errors import ConfigError, DataError
from taskzoo.models import build
from taskzoo.tasks import TASKS
from taskzoo.tasks.autoencoder.predictor import AutoencoderPredictor
from taskzoo.tasks.base import DataBundle, Reference
from taskzoo.tasks.common.image_task import ImageTask
from taskzoo.train.types import StepOutput

MODES = ("reconstruct", "denoise", "vae", "colorize", "features")
MODELS_OF = {"reconstruct": ("conv_ae",), "features": ("conv_ae",), "vae": ("vae",),
             "denoise": ("unet_small", "conv_ae"), "colorize": ("unet_small",)}


# ---------------------------------------------------------------------------- config
# the side of each dataset's images when image_size=0 (folder: resized to 64 px)
NATIVE_SIDE = {"fashion_mnist": 28, "mnist": 28, "digits": 16, "flickr8k": 128, "folder": 64}
Mode = Literal["reconstruct", "denoise", "vae", "colorize", "features"]
Dataset = Literal["fashion_mnist", "mnist", "digits", "flickr8k", "folder"]

@dataclass(frozen=True, kw_only=True)
class AutoencoderConfig(SupervisedConfig):
    mode: Mode = "reconstruct"  # what to learn (see the module docstring)
    dataset: Dataset = "fashion_mnist"  # digits: tiny, offline; flickr8k: colour photos
    data: str = ""  # a folder of your own images (any layout; classes are not needed)
    model: str = "conv_ae"  # conv_ae, vae or unet_small (the mode's preset picks one)
    # <= 1024: stack=3 makes a dense layer of 16x code_dim from the trunk's features
    code_dim: Annotated[int, Range(1, 1024)] = 32  # conv_ae: size of the (last) code layer
    stack: Annotated[int, Range(1, 3)] = 1  # conv_ae: dense code layers, probed one by one
    # <= 1024: a latent as wide as a 32 px image; more only slows the linear heads
    latent_dim: Annotated[int, Range(1, 1024)] = 16  # vae: Gaussian latent dimensions
    # <= 256: stages go up to 8x width channels (2048), the trunk's flat features with them
    width: Annotated[int, Range(1, 256)] = 16  # channels of the first conv stage
    depth: Annotated[int, Range(1, 5)] = 2  # unet_small: down/up levels (side % 2**depth == 0)
    noise: Literal["gaussian", "salt_pepper", "mask"] = "gaussian"  # denoise: the corruption
    noise_sigma: Annotated[float, Range(0, 2)] = 0.3  # gaussian noise std (pixels in [0, 1])
    noise_amount: Probability = 0.25  # salt_pepper / mask: fraction of pixels hit
    binarize: bool = True  # vae: Bernoulli pixels, as the published MNIST figures use
    # >= 8: conv_ae and vae encode to a grid of side <= 8; <= 1024: a 100000 px side is
    # 10 GB per decoded image (unet_small also needs a multiple of 2**depth: validate())
    image_size: Annotated[int, Range(8, 1024, or_zero=True)] = 0  # resize to a square of this side; 0 = the data's own size
    # the same bounds as image_size; at most the image's side (validate())
    train_crop: Annotated[int, Range(8, 1024, or_zero=True)] = 0  # random square crops (and flips) of this side in training
    dev_fraction: Annotated[float, Range(0, 0.5)] = 0.0833  # of train held out as dev
    split_seed: NonNegativeInt = 0  # the seeded dev split
    workers: Annotated[int, Range(-1)] = -1  # loader processes; -1 = 1 for arrays, more for files
    channels_last: bool = True  # NHWC layout: faster convolutions on CPU
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"  # torch.optim class
    lr: float = 2e-3  # peak learning rate
    weight_decay: float = 1e-4  # decoupled weight decay
    decay_1d: bool = False  # no weight decay on biases and norm weights
    schedule: Literal["constant", "linear", "cosine"] = "cosine"  # lr after warm-up
    warmup_steps: int = 200  # linear warm-up steps
    epochs: int = 10  # passes over the training set
    batch_size: int = 128  # images per step
    keep: Literal["best", "last"] = "last"  # deliver the final weights: dev only watches
    # <= 8192: generous for 28 px images; a batch is decoded and held at once
    eval_batch_size: Annotated[int, Range(1, 8192)] = 256  # images per evaluation batch

    def validate(self) -> None:
        super().validate()
        if self.mode == "colorize" and self.dataset in ("fashion_mnist", "mnist", "digits"):
            return  # grey images: build_data's "needs colour photos" is the reason that matters
        side = self.image_size or NATIVE_SIDE[self.dataset]
        where = f"image_size={self.image_size}" if self.image_size else \
            f"dataset={self.dataset} ({side} px)"
        if self.train_crop > side:
            raise ConfigError(f"train_crop={self.train_crop}: expected at most the image side, "
                              f"{side} ({where})")
        if self.model == "unet_small":
            m = 2 ** self.depth
            for name, value in (("image_size", side), ("train_crop", self.train_crop)):
                if value % m:
                    shown = where if name == "image_size" else f"train_crop={value}"
                    raise ConfigError(f"{shown}: unet_small with depth={self.depth} needs a side "
                                      f"divisible by 2**depth = {m}")
        elif self.train_crop not in (0, side):
            # conv_ae and vae have a dense code of a size fixed by the image's side
            raise ConfigError(f"train_crop={self.train_crop}: {self.model} takes only whole "
                              f"{side} px images ({where}); crops need model=unet_small")


@dataclass
class AEData(DataBundle):
    mode: str = "reconstruct"  # the config's mode (what the predictor does)
    channels: int = 1  # of the images the model sees (colorize: RGB data, 1-channel input)
    size: tuple[int, int] = (28, 28)  # (H, W) every image is resized to
    name: str = ""  # what the data is, for a weights card
    files: list[Any] = field(default_factory=list)  # pinned files, for a weights card


# ---------------------------------------------------------------------------- the task
@TASKS.register("autoencoder", aliases=("autoencoders", "ae"))
class Autoencoder(ImageTask[AutoencoderConfig]):
    name = "autoencoder"
    Config = AutoencoderConfig
    description = "autoencoders: reconstruct, denoise, VAE, colorize photos, codes vs PCA"
    dev_metric = "dev/psnr"
    models = ("conv_ae", "vae", "unet_small")
    preset_key = "mode"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "denoise": {"model": "unet_small", "depth": 2, "epochs": 6},
        "vae": {"model": "vae", "dataset": "mnist", "width": 32, "epochs": 12, "lr": 1e-3},
        # 7,000 photos in 64 px crops (the U-Net is fully convolutional; tests use 128 px)
        "colorize": {"model": "unet_small", "dataset": "flickr8k", "depth": 3, "train_crop": 64,
                     "dev_fraction": 0.0, "batch_size": 32, "epochs": 12, "warmup_steps": 100},
        "features": {"epochs": 10},
    }
    quick: ClassVar[dict[str, Any]] = {"dataset": "digits", "epochs": 2, "batch_size": 32,
                                       "warmup_steps": 10}
    references = (
        Reference("test/elbo", -84.08, "Kingma et al. 2016 (IAF), Table 1: ResNet conv VAE, "
                  "diagonal Gaussian posterior", "ELBO on dynamically binarised MNIST; a far "
                  "deeper net, 32-d latent"),
    )

    @classmethod
    def implied_overrides(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        return {"dataset": "folder"} if overrides.get("data") else {}

    # -- data
    def _images(self) -> tuple[dict[str, Any], str, list[Any]]:
        """({split: Dataset of (uint8 image, label)}, a name, pinned files)."""
        from taskzoo import hub
        from taskzoo.data import images
        from taskzoo.data.image_files import load_image_files

        c = self.cfg
        size = (c.image_size, c.image_size) if c.image_size else None
        if c.dataset in ("mnist", "fashion_mnist", "digits"):
            if c.dataset == "digits":  # 8x8, upsampled: two conv stages need room
                digits = images.load_digits()
                rest, test = vision.stratified_split(digits.labels, 0.2, c.split_seed)
                train = test_set = digits
                size = size or (16, 16)
            else:
                load = images.load_mnist if c.dataset == "mnist" else images.load_fashion_mnist
                train, test_set = load("train"), load("test")
                rest, test = list(range(len(train))), list(range(len(test_set)))
            kept, dev = vision.stratified_split(np.asarray(train.labels)[rest], c.dev_fraction,
                                                c.split_seed)
            index = {"train": [rest[i] for i in kept], "dev": [rest[i] for i in dev]}
            sets = {k: vision.ImageExamples(train, channels=1, size=size, index=v)
                    for k, v in index.items() if v}
            sets["test"] = vision.ImageExamples(test_set, channels=1, size=size, index=test)
            files = {"mnist": images.MNIST_FILES, "fashion_mnist": images.FASHION_MNIST_FILES}
            names = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST",
                     "digits": "scikit-learn digits (8x8 -> 16x16)"}
            return sets, names[c.dataset], hub.describe(list(files.get(c.dataset, {}).values()))
        if c.dataset == "flickr8k":
            from taskzoo.data.flickr8k import load_flickr8k

            parts = {k: load_flickr8k(k).images for k in ("train", "dev", "test")}
            sets = {k: vision.ImageExamples(v, channels=3, size=size) for k, v in parts.items()}
            if c.dev_fraction == 0:  # the standard train + dev images, as captioning does
                sets["train"] = torch.utils.data.ConcatDataset([sets["train"], sets.pop("dev")])
                return sets, "Flickr8k 128x128 (train + dev 7,000; test 1,000)", []
            return sets, "Flickr8k 128x128 (train 6,000; dev 1,000; test 1,000)", []
        if not c.data:
            raise DataError("dataset=folder needs data=PATH (a folder of images)")
        found = load_image_files(Path(c.data).expanduser())
        size = size or (64, 64)
        rest, test = vision.random_split(len(found), 0.1, c.split_seed)
        kept, dev = vision.random_split(len(rest), c.dev_fraction or 0.1, c.split_seed + 1)
        sets = {"train": [rest[i] for i in kept], "dev": [rest[i] for i in dev], "test": test}
        return ({k: vision.ImageExamples(found, channels=found.channels, size=size, index=v)
                 for k, v in sets.items() if v}, f"images in {c.data}", [])

    def build_data(self, state: dict[str, Any] | None = None) -> AEData:
        c = self.cfg
        if c.model not in MODELS_OF[c.mode]:
            raise ConfigError(f"mode={c.mode} trains {' or '.join(MODELS_OF[c.mode])}, not "
                              f"model={c.model}" + (" (its skip connections would copy the "
                                                    "input)" if c.model == "unet_small" else ""))
        sets, name, files = self._images()
        first = sets["train"][0][0]
        channels, size = int(first.shape[0]), tuple(first.shape[1:])
        if c.mode == "colorize" and channels != 3:
            raise DataError(f"mode=colorize needs colour photos; {name} is grey")
        classes = list(getattr(getattr(sets["test"], "images", None), "classes", [])) or ["image"]
        self._data = AEData(train=sets.pop("train"), splits=sets, labels=classes, mode=c.mode,
                            channels=channels, size=size, name=name, files=files)
        return self._data

    def monitor_of(self, data: AEData | None) -> str:
        """A VAE's data is scored by its ELBO, the other modes' by PSNR; before the data is
        built, the class's PSNR."""
        return "dev/elbo" if data is not None and data.mode == "vae" else self.dev_metric

    @property
    def final_splits(self) -> tuple[str, ...]:  # type: ignore[override]
        """The dev and test splits the data has; a finished run's figures read back without
        its data (`taskzoo export --no-evaluate`) are dev's alone."""
        return super().final_splits if self._data is not None else ("dev",)

    def _pairs(self, training: bool) -> pairs.Clean:
        c = self.cfg
        augment = None
        if training and c.train_crop:
            from torchvision.transforms import v2

            augment = v2.Compose([v2.RandomCrop(c.train_crop), v2.RandomHorizontalFlip()])
        if c.mode == "denoise":
            return pairs.Corrupt(c.noise, sigma=c.noise_sigma, amount=c.noise_amount,
                                 augment=augment)
        if c.mode == "vae" and c.binarize:
            return pairs.Binarize(augment)
        return pairs.LabPair(augment) if c.mode == "colorize" else pairs.Clean(augment)

    def in_memory(self, data: AEData) -> bool:
        return self.cfg.dataset not in ("flickr8k", "folder")  # photos are files

    def batches(self, data: AEData, model: nn.Module) -> LoaderSource:
        return self.loader(data.train, collate=pairs.PairCollate(), transform=self._pairs(True),
                           workers=self._workers(data))

    # -- model
    def build_model(self, data: AEData) -> nn.Module:
        c = self.cfg
        if c.mode == "colorize":
            return build("unet_small", in_channels=1, out_channels=2, width=c.width,
                         depth=c.depth)
        return build(c.model, in_channels=data.channels, out_channels=data.channels,
                     image_size=data.size[0], code_dim=c.code_dim, stack=c.stack,
                     latent_dim=c.latent_dim, width=c.width, depth=c.depth)

    # -- step
    def _vae_terms(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Per image: the Bernoulli reconstruction term (nats) and the KL to N(0, I), with one
        reparameterised sample of z (the ELBO's standard one-sample estimate)."""
        mu, logvar = model.encode(x)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device="cpu")
        z = mu + (0.5 * logvar).exp() * eps.to(mu.device)
        logits = model.decode(z).float()
        recon = F.binary_cross_entropy_with_logits(logits, target.float(),
                                                   reduction="none").flatten(1).sum(1)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).float().sum(1)
        return recon, kl, logits

    def step(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> StepOutput:
        x, target, _ = batch
        if self.cfg.mode == "vae":
            recon, kl, _ = self._vae_terms(model, x, target)
            return StepOutput((recon + kl).mean(), size=len(x),
                              logs={"recon_bce": recon.mean().detach(), "kl": kl.mean().detach()})
        out = model(x)
        if self.cfg.mode != "colorize":
            out = torch.sigmoid(out)
        return StepOutput(F.mse_loss(out.float(), target.float()), size=len(x))

    # -- evaluate
    def _outputs(self, model: nn.Module, data: AEData, split: str):
        """(input, output, target, extra) batches on the CPU, outputs as images in [0, 1]
        (colorize: the predicted ab, scaled)."""
        gen = torch.Generator().manual_seed(1234)  # the VAE's z draws: the same every call
        for _, (x, target, extra) in eval_batches(
                data.splits[split], batch_size=self.cfg.eval_batch_size,
                collate=pairs.PairCollate(), transform=self._pairs(False),
                workers=self._workers(data, training=False)):
            xd = self.runtime.to_device(x)
            if self.cfg.mode == "vae":
                recon, kl, logits = self._vae_terms(model, xd, self.runtime.to_device(target), gen)
                yield x, torch.sigmoid(logits).cpu(), target, (recon.cpu(), kl.cpu())
            else:
                out = model(xd).float().cpu()
                yield x, out if self.cfg.mode == "colorize" else torch.sigmoid(out), target, extra

    def evaluate(self, model: nn.Module, data: AEData, split: str) -> dict[str, float]:
        from taskzoo.data.color import gray_rgb, merge_lab
        from taskzoo.tasks.autoencoder.report import image_figures

        sums: dict[str, float] = {}
        n = 0
        for x, out, target, extra in self._outputs(model, data, split):
            if self.cfg.mode == "vae":
                recon, kl = extra
                figures = {"elbo": -(recon + kl), "recon_bce": recon, "kl": kl}
            elif self.cfg.mode == "colorize":
                truth = extra.permute(0, 2, 3, 1).numpy()
                pred = torch.from_numpy(merge_lab(x, out)).permute(0, 3, 1, 2).float()
                gray = torch.from_numpy(np.stack([gray_rgb(t) for t in truth])).permute(0, 3, 1, 2)
                figures = image_figures(pred, extra.float(), data_range=255.0)
                figures["psnr_gray"] = image_figures(gray.float(), extra.float(),
                                                     data_range=255.0)["psnr"]
            else:
                figures = image_figures(out, target)
                if self.cfg.mode == "denoise":
                    figures["psnr_noisy"] = image_figures(x, target)["psnr"]
            for k, v in figures.items():
                sums[k] = sums.get(k, 0.0) + float(v.double().sum())
            n += len(x)
        metrics = {f"{split}/{k}": v / n for k, v in sums.items()}
        if self.cfg.mode == "features" and split == "test":
            from taskzoo.tasks.autoencoder.report import probe_metrics

            metrics.update(probe_metrics(self, model, data))
        return metrics

    def reports(self, model: nn.Module, data: AEData) -> dict[str, bytes | str]:
        from taskzoo.tasks.autoencoder.report import mode_pictures

        return mode_pictures(self, model, data)

    # -- predictor
    def predictor(self, model: nn.Module, data: AEData) -> AutoencoderPredictor:
        return AutoencoderPredictor(model, self.runtime, mode=data.mode, channels=data.channels,
                                    size=data.size, batch_size=self.cfg.eval_batch_size)

    def data_state(self, data: AEData) -> dict[str, Any]:
        return {"mode": data.mode, "channels": data.channels, "size": list(data.size),
                "labels": data.labels}

    def data_from_state(self, state: dict[str, Any]) -> AEData:
        return AEData(train=None, labels=list(state["labels"]), mode=str(state["mode"]),
                      channels=int(state["channels"]), size=tuple(state["size"]))
